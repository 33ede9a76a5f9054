/* origin_config: parsing --origins FILE (see the header for the format). */
#include "node/origin/origin_config.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/glob.h"
#include "node/core/config.h"
#include "cluster/limits.h"

#define ORIGIN_TTL_DEFAULT_MS 300000u
#define ORIGIN_TIMEOUT_DEFAULT_MS 2000u
#define ORIGIN_CONCURRENCY_DEFAULT 16u
#define ORIGIN_VALUE_MAX_DEFAULT ((size_t)1 << 20)

static void origin_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void origin_def_clear(origin_def_t *d)
{
    free(d->url);
    free(d->conninfo);
    free(d->query);
    for (char **h = d->headers; h && *h; h++) free(*h);
    free(d->headers);
    for (size_t i = 0; i < d->nkeys; i++) free(d->keys[i]);
    free(d->keys);
}

origin_set_t *origin_set_ref(origin_set_t *s)
{
    if (s) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void origin_set_unref(origin_set_t *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < s->n; i++) origin_def_clear(&s->defs[i]);
    free(s->defs);
    free(s->path);
    free(s);
}

/* A duration: "2s", "500ms", or a number of seconds. */
static bool origin_duration(json_t *v, uint64_t *out)
{
    if (json_is_string(v)) return config_parse_duration(json_string_value(v), 1000, out);
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v) * 1000u;
        return true;
    }
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1e12) {
        *out = (uint64_t)(json_real_value(v) * 1000.0);
        return true;
    }
    return false;
}

static bool origin_size(json_t *v, uint64_t *out)
{
    if (json_is_string(v)) return config_parse_size(json_string_value(v), out);
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    return false;
}

static bool origin_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= ORIGIN_NAME_MAX) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

/* A header line's name and value must not smuggle another header in. */
static bool origin_header_ok(const char *name, const char *value)
{
    if (!*name) return false;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p == ':' || *p == 127) return false;
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n') return false;
    return true;
}

static char *origin_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool origin_parse_one(json_t *o, origin_def_t *d, char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || !origin_name_ok(name)) {
        origin_err(err, errlen, "every origin needs a \"name\" of 1 to 63 letters, digits, '_', '-' or '.'");
        return false;
    }
    snprintf(d->name, sizeof d->name, "%s", name);
    d->ttl_ms = ORIGIN_TTL_DEFAULT_MS;
    d->timeout_ms = ORIGIN_TIMEOUT_DEFAULT_MS;
    d->concurrency = ORIGIN_CONCURRENCY_DEFAULT;
    d->max_value_bytes = ORIGIN_VALUE_MAX_DEFAULT;
    d->headers = calloc(1, sizeof *d->headers);
    if (!d->headers) goto nomem;
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type && strcmp(type, "http") == 0) d->kind = ORIGIN_KIND_HTTP;
    else if (type && strcmp(type, "postgres") == 0) d->kind = ORIGIN_KIND_POSTGRES;
    else {
        origin_err(err, errlen, "origin %s: \"type\" must be \"http\" or \"postgres\"", name);
        return false;
    }
    const char *field;
    json_t *v;
    json_object_foreach(o, field, v) {
        uint64_t n;
        if (strcmp(field, "name") == 0 || strcmp(field, "type") == 0) continue;
        if (strcmp(field, "url") == 0 && d->kind == ORIGIN_KIND_HTTP && json_is_string(v)) {
            const char *u = json_string_value(v);
            if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
                origin_err(err, errlen, "origin %s: \"url\" must start with http:// or https://", name);
                return false;
            }
            if (!(d->url = origin_strdup(u))) goto nomem;
        } else if (strcmp(field, "headers") == 0 && d->kind == ORIGIN_KIND_HTTP && json_is_object(v)) {
            size_t count = json_object_size(v), i = 0;
            char **h = calloc(count + 1, sizeof *h);
            if (!h) goto nomem;
            free(d->headers);
            d->headers = h;
            const char *hn;
            json_t *hv;
            json_object_foreach(v, hn, hv) {
                const char *val = json_string_value(hv);
                if (!val || !origin_header_ok(hn, val)) {
                    origin_err(err, errlen, "origin %s: header \"%s\" must be a string without line breaks", name, hn);
                    return false;
                }
                size_t len = strlen(hn) + strlen(val) + 3;
                if (!(h[i] = malloc(len))) goto nomem;
                snprintf(h[i++], len, "%s: %s", hn, val);
            }
        } else if (strcmp(field, "conninfo") == 0 && d->kind == ORIGIN_KIND_POSTGRES && json_is_string(v)) {
            if (!(d->conninfo = origin_strdup(json_string_value(v)))) goto nomem;
        } else if (strcmp(field, "query") == 0 && d->kind == ORIGIN_KIND_POSTGRES && json_is_string(v)) {
            if (!(d->query = origin_strdup(json_string_value(v)))) goto nomem;
        } else if (strcmp(field, "param") == 0 && d->kind == ORIGIN_KIND_POSTGRES && json_is_string(v)) {
            const char *p = json_string_value(v);
            if (strcmp(p, "key") != 0 && strcmp(p, "rest") != 0) {
                origin_err(err, errlen, "origin %s: \"param\" must be \"key\" or \"rest\"", name);
                return false;
            }
            d->param_rest = strcmp(p, "rest") == 0;
        } else if (strcmp(field, "keys") == 0 && json_is_array(v)) {
            size_t count = json_array_size(v);
            if (count == 0 || count > ORIGIN_PATTERNS_MAX) {
                origin_err(err, errlen, "origin %s: \"keys\" must list 1 to %d patterns", name, ORIGIN_PATTERNS_MAX);
                return false;
            }
            if (!(d->keys = calloc(count, sizeof *d->keys))) goto nomem;
            for (size_t i = 0; i < count; i++) {
                const char *p = json_string_value(json_array_get(v, i));
                if (!p || !*p || strlen(p) > LIMITS_KEY_MAX) {
                    origin_err(err, errlen, "origin %s: each of \"keys\" must be a pattern of 1 to %d bytes", name,
                               LIMITS_KEY_MAX);
                    return false;
                }
                if (!(d->keys[d->nkeys++] = origin_strdup(p))) goto nomem;
            }
        } else if (strcmp(field, "ttl") == 0 && origin_duration(v, &n)) {
            d->ttl_ms = n;
        } else if (strcmp(field, "stale_if_error") == 0 && origin_duration(v, &n)) {
            if (n > UINT32_MAX) {
                origin_err(err, errlen, "origin %s: \"stale_if_error\" is at most 49 days", name);
                return false;
            }
            d->stale_ms = n;
        } else if (strcmp(field, "timeout") == 0 && origin_duration(v, &n) && n > 0) {
            d->timeout_ms = n;
        } else if (strcmp(field, "concurrency") == 0 && json_is_integer(v) && json_integer_value(v) >= 1 &&
                   json_integer_value(v) <= ORIGIN_CONCURRENCY_MAX) {
            d->concurrency = (unsigned)json_integer_value(v);
        } else if (strcmp(field, "max_value_bytes") == 0 && origin_size(v, &n) && n > 0) {
            d->max_value_bytes = (size_t)n;
        } else {
            origin_err(err, errlen,
                       "origin %s: \"%s\" is not a field of a %s origin, or its value is malformed "
                       "(durations: \"2s\" or seconds; sizes: \"1mb\" or bytes)",
                       name, field, type);
            return false;
        }
    }
    if (!d->nkeys) {
        origin_err(err, errlen, "origin %s: \"keys\" (the patterns it serves) is required", name);
        return false;
    }
    if (d->kind == ORIGIN_KIND_HTTP && !d->url) {
        origin_err(err, errlen, "origin %s: an http origin needs a \"url\"", name);
        return false;
    }
    if (d->kind == ORIGIN_KIND_POSTGRES && (!d->conninfo || !d->query)) {
        origin_err(err, errlen, "origin %s: a postgres origin needs \"conninfo\" and \"query\"", name);
        return false;
    }
    return true;
nomem:
    origin_err(err, errlen, "out of memory");
    return false;
}

origin_set_t *origin_set_parse(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        origin_err(err, errlen, "not JSON: %s (line %d)", jerr.text, jerr.line);
        return NULL;
    }
    origin_set_t *s = NULL;
    /* "jobs" are the warming module's (node/warm). */
    json_t *list = json_object_get(root, "origins");
    size_t known = (list != NULL) + (json_object_get(root, "jobs") != NULL);
    if (!list) list = json_array();
    else json_incref(list);
    if (!json_is_object(root) || !json_is_array(list) || json_object_size(root) != known) {
        origin_err(err, errlen, "expected {\"origins\": [...], \"jobs\": [...]} and nothing else");
        goto out;
    }
    size_t n = json_array_size(list);
    if (n > ORIGIN_MAX) {
        origin_err(err, errlen, "at most %d origins", ORIGIN_MAX);
        goto out;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->defs = calloc(n ? n : 1, sizeof *s->defs)) || !(s->path = origin_strdup(""))) {
        origin_err(err, errlen, "out of memory");
        goto fail;
    }
    atomic_init(&s->refs, 1);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        if (!json_is_object(o)) {
            origin_err(err, errlen, "origins[%zu] is not an object", i);
            goto fail;
        }
        s->n++;
        if (!origin_parse_one(o, &s->defs[i], err, errlen)) goto fail;
        if (origin_set_find(s, s->defs[i].name) != (int)i) {
            origin_err(err, errlen, "origin %s is declared twice", s->defs[i].name);
            goto fail;
        }
    }
    goto out;
fail:
    if (s) {
        atomic_init(&s->refs, 1);
        origin_set_unref(s);
    }
    s = NULL;
out:
    json_decref(list);
    json_decref(root);
    return s;
}

origin_set_t *origin_set_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        origin_err(err, errlen, "cannot open %s", path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nb = cap <= ((size_t)4 << 20) ? realloc(buf, cap) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                origin_err(err, errlen, "%s is larger than 4 MiB", path);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        origin_err(err, errlen, "cannot read %s", path);
        return NULL;
    }
    char inner[400];
    origin_set_t *s = origin_set_parse(buf, len, inner, sizeof inner);
    free(buf);
    if (!s) {
        origin_err(err, errlen, "%s: %s", path, inner);
        return NULL;
    }
    free(s->path);
    if (!(s->path = origin_strdup(path))) {
        origin_set_unref(s);
        origin_err(err, errlen, "out of memory");
        return NULL;
    }
    return s;
}

/* Where a pattern's literal prefix ends: the rest of a key starts there. */
static size_t origin_literal_prefix(const char *p)
{
    size_t i = 0;
    while (p[i] && p[i] != '*' && p[i] != '?' && p[i] != '[' && p[i] != '\\') i++;
    return i;
}

const origin_def_t *origin_set_match(const origin_set_t *s, const char *key, size_t klen, size_t *rest_off)
{
    if (!s) return NULL;
    for (size_t i = 0; i < s->n; i++) {
        const origin_def_t *d = &s->defs[i];
        for (size_t k = 0; k < d->nkeys; k++) {
            if (!glob_match(d->keys[k], strlen(d->keys[k]), key, klen)) continue;
            if (rest_off) {
                size_t off = origin_literal_prefix(d->keys[k]);
                *rest_off = off <= klen ? off : klen;
            }
            return d;
        }
    }
    return NULL;
}

int origin_set_find(const origin_set_t *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->defs[i].name, name) == 0) return (int)i;
    return -1;
}
