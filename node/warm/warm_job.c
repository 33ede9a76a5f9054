/* warm_job: parsing and printing a warming job (see the header). */
#include "node/warm/warm_job.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/limits.h"

static void warm_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *warm_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

const char *warm_source_name(warm_source_t s)
{
    switch (s) {
    case WARM_SRC_KEYS: return "keys";
    case WARM_SRC_PATTERN: return "pattern";
    case WARM_SRC_QUERY: return "query";
    case WARM_SRC_HOT: return "hot";
    }
    return "unknown";
}

bool warm_job_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= WARM_NAME_MAX) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

void warm_job_clear(warm_job_t *j)
{
    for (size_t i = 0; i < j->nkeys; i++) free(j->keys[i]);
    free(j->keys);
    free(j->pattern);
    free(j->query);
    free(j->origin);
    free(j->key_prefix);
    memset(j, 0, sizeof *j);
}

static bool warm_source_parse(warm_job_t *j, json_t *src, char *err, size_t errlen)
{
    if (!json_is_object(src) || json_object_size(src) == 0) {
        warm_err(err, errlen, "job %s: \"source\" must be {\"keys\": [...]}, {\"pattern\": ...}, {\"query\": ..., "
                              "\"origin\": ...} or {\"hot\": N}", j->name);
        return false;
    }
    json_t *v;
    if ((v = json_object_get(src, "keys"))) {
        j->source = WARM_SRC_KEYS;
        size_t n = json_array_size(v);
        if (!json_is_array(v) || n == 0 || n > WARM_KEYS_MAX || json_object_size(src) != 1) {
            warm_err(err, errlen, "job %s: \"keys\" must list 1 to %d keys, and nothing else in \"source\"", j->name,
                     WARM_KEYS_MAX);
            return false;
        }
        if (!(j->keys = calloc(n, sizeof *j->keys))) goto nomem;
        for (size_t i = 0; i < n; i++) {
            json_t *k = json_array_get(v, i);
            size_t klen = json_string_length(k);
            if (!json_is_string(k) || klen == 0 || klen > LIMITS_KEY_MAX || memchr(json_string_value(k), 0, klen)) {
                warm_err(err, errlen, "job %s: keys[%zu] must be a string of 1 to %d bytes", j->name, i,
                         LIMITS_KEY_MAX);
                return false;
            }
            if (!(j->keys[j->nkeys++] = warm_strdup(json_string_value(k)))) goto nomem;
        }
        return true;
    }
    if ((v = json_object_get(src, "pattern"))) {
        j->source = WARM_SRC_PATTERN;
        size_t plen = json_string_length(v);
        if (!json_is_string(v) || plen == 0 || plen > LIMITS_KEY_MAX || json_object_size(src) != 1) {
            warm_err(err, errlen, "job %s: \"pattern\" must be a glob of 1 to %d bytes, alone in \"source\"", j->name,
                     LIMITS_KEY_MAX);
            return false;
        }
        if (!(j->pattern = warm_strdup(json_string_value(v)))) goto nomem;
        return true;
    }
    if ((v = json_object_get(src, "query"))) {
        j->source = WARM_SRC_QUERY;
        json_t *o = json_object_get(src, "origin"), *p = json_object_get(src, "key_prefix");
        size_t extra = (o != NULL) + (p != NULL);
        if (!json_is_string(v) || !json_string_length(v) || !json_is_string(o) || (p && !json_is_string(p)) ||
            json_object_size(src) != 1 + extra) {
            warm_err(err, errlen,
                     "job %s: a \"query\" source needs \"origin\" (a postgres origin of the origins file) and may "
                     "have \"key_prefix\"; nothing else", j->name);
            return false;
        }
        if (!(j->query = warm_strdup(json_string_value(v))) || !(j->origin = warm_strdup(json_string_value(o))) ||
            !(j->key_prefix = warm_strdup(p ? json_string_value(p) : "")))
            goto nomem;
        return true;
    }
    if ((v = json_object_get(src, "hot"))) {
        j->source = WARM_SRC_HOT;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > WARM_HOT_MAX ||
            json_object_size(src) != 1) {
            warm_err(err, errlen, "job %s: \"hot\" must be a number of keys from 1 to %d", j->name, WARM_HOT_MAX);
            return false;
        }
        j->hot = (size_t)json_integer_value(v);
        return true;
    }
    warm_err(err, errlen, "job %s: \"source\" must have \"keys\", \"pattern\", \"query\" or \"hot\"", j->name);
    return false;
nomem:
    warm_err(err, errlen, "out of memory");
    return false;
}

bool warm_job_from_json(warm_job_t *out, const json_t *cobj, char *err, size_t errlen)
{
    json_t *obj = (json_t *)(uintptr_t)cobj; /* jansson's getters take no const */
    memset(out, 0, sizeof *out);
    out->batch_size = 1000;
    out->concurrency = 64;
    out->enabled = true;
    if (!json_is_object(obj)) {
        warm_err(err, errlen, "a job must be a JSON object");
        return false;
    }
    const char *name = json_string_value(json_object_get(obj, "name"));
    if (!name || !warm_job_name_ok(name)) {
        warm_err(err, errlen, "a job needs a \"name\" of 1 to 63 letters, digits, '_', '-' or '.'");
        return false;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    const char *field;
    json_t *v;
    bool have_source = false;
    json_object_foreach(obj, field, v) {
        if (strcmp(field, "name") == 0) continue;
        if (strcmp(field, "source") == 0) {
            if (!warm_source_parse(out, v, err, errlen)) goto fail;
            have_source = true;
        } else if (strcmp(field, "schedule") == 0 && (json_is_string(v) || json_is_null(v))) {
            if (json_is_null(v) || !*json_string_value(v)) continue;
            char cerr[200];
            if (!warm_cron_parse(&out->cron, json_string_value(v), cerr, sizeof cerr)) {
                warm_err(err, errlen, "job %s: \"schedule\": %s", name, cerr);
                goto fail;
            }
            out->scheduled = true;
        } else if (strcmp(field, "priority") == 0 && json_is_integer(v) && json_integer_value(v) >= -1000 &&
                   json_integer_value(v) <= 1000) {
            out->priority = (int)json_integer_value(v);
        } else if (strcmp(field, "batch_size") == 0 && json_is_integer(v) && json_integer_value(v) >= 1 &&
                   json_integer_value(v) <= 100000) {
            out->batch_size = (unsigned)json_integer_value(v);
        } else if (strcmp(field, "concurrency") == 0 && json_is_integer(v) && json_integer_value(v) >= 1 &&
                   json_integer_value(v) <= WARM_CONCURRENCY_MAX) {
            out->concurrency = (unsigned)json_integer_value(v);
        } else if (strcmp(field, "enabled") == 0 && json_is_boolean(v)) {
            out->enabled = json_is_true(v);
        } else {
            warm_err(err, errlen,
                     "job %s: \"%s\" is not a field of a job, or its value is out of range (schedule: cron or "
                     "\"@every 30s\"; priority -1000..1000; batch_size 1..100000; concurrency 1..%d; enabled: "
                     "true or false)", name, field, WARM_CONCURRENCY_MAX);
            goto fail;
        }
    }
    if (!have_source) {
        warm_err(err, errlen, "job %s: \"source\" is required", name);
        goto fail;
    }
    return true;
fail:
    warm_job_clear(out);
    return false;
}

bool warm_job_parse(warm_job_t *out, const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        memset(out, 0, sizeof *out);
        warm_err(err, errlen, "not JSON: %s", jerr.text);
        return false;
    }
    bool ok = warm_job_from_json(out, root, err, errlen);
    json_decref(root);
    return ok;
}

void warm_job_json(const warm_job_t *j, sbuf_t *out)
{
    sbuf_puts(out, "{\"name\":");
    sbuf_json_string(out, j->name, strlen(j->name));
    if (j->scheduled) {
        sbuf_puts(out, ",\"schedule\":");
        const char *t = warm_cron_text(&j->cron);
        sbuf_json_string(out, t, strlen(t));
    }
    sbuf_puts(out, ",\"source\":{");
    switch (j->source) {
    case WARM_SRC_KEYS:
        sbuf_puts(out, "\"keys\":[");
        for (size_t i = 0; i < j->nkeys; i++) {
            if (i) sbuf_puts(out, ",");
            sbuf_json_string(out, j->keys[i], strlen(j->keys[i]));
        }
        sbuf_puts(out, "]");
        break;
    case WARM_SRC_PATTERN:
        sbuf_puts(out, "\"pattern\":");
        sbuf_json_string(out, j->pattern, strlen(j->pattern));
        break;
    case WARM_SRC_QUERY:
        sbuf_puts(out, "\"query\":");
        sbuf_json_string(out, j->query, strlen(j->query));
        sbuf_puts(out, ",\"origin\":");
        sbuf_json_string(out, j->origin, strlen(j->origin));
        sbuf_puts(out, ",\"key_prefix\":");
        sbuf_json_string(out, j->key_prefix, strlen(j->key_prefix));
        break;
    case WARM_SRC_HOT: sbuf_printf(out, "\"hot\":%zu", j->hot); break;
    }
    sbuf_printf(out, "},\"priority\":%d,\"batch_size\":%u,\"concurrency\":%u,\"enabled\":%s}", j->priority,
                j->batch_size, j->concurrency, j->enabled ? "true" : "false");
}

bool warm_job_copy(warm_job_t *dst, const warm_job_t *src)
{
    *dst = *src;
    dst->keys = NULL;
    dst->nkeys = 0;
    dst->pattern = dst->query = dst->origin = dst->key_prefix = NULL;
    if (src->nkeys) {
        if (!(dst->keys = calloc(src->nkeys, sizeof *dst->keys))) goto fail;
        for (size_t i = 0; i < src->nkeys; i++)
            if (!(dst->keys[dst->nkeys++] = warm_strdup(src->keys[i]))) goto fail;
    }
    if ((src->pattern && !(dst->pattern = warm_strdup(src->pattern))) ||
        (src->query && !(dst->query = warm_strdup(src->query))) ||
        (src->origin && !(dst->origin = warm_strdup(src->origin))) ||
        (src->key_prefix && !(dst->key_prefix = warm_strdup(src->key_prefix))))
        goto fail;
    return true;
fail:
    warm_job_clear(dst);
    return false;
}
