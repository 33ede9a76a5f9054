#include "node/api/api_audit.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/limits.h"
#include "http/http_url.h"
#include "node/api/api_cache.h"
#include "node/api/api_events.h"
#include "node/api/events.h"
#include "node/api/api_http.h"
#include "node/audit/audit.h"
#include "node/audit/audit_pg.h"
#include "node/core/sysinfo.h"

/* Request ids made here: a random prefix per process (so two nodes, or two
 * runs, do not repeat each other) and a counter. */
static char api_audit_prefix[13];
static atomic_uint_fast64_t api_audit_counter;
static pthread_once_t api_audit_once = PTHREAD_ONCE_INIT;

static void api_audit_prefix_init(void)
{
    uint8_t b[6];
    randombytes_buf(b, sizeof b);
    sodium_bin2hex(api_audit_prefix, sizeof api_audit_prefix, b, sizeof b);
}

void api_audit_start(http_request_t *r)
{
    api_req_t *q = api_req(r);
    q->token_slot = UINT32_MAX;
    q->role = TOKENS_ROLE_NONE;
    q->config_action = API_REQ_BY_OP;
    q->audited = false;
    q->matched = q->invalidated = -1;
    q->id[0] = '\0';
}

/* A client's own request id is kept when it is plain text of sane length,
 * so its logs and the trail can be joined; anything else is replaced. */
static bool api_audit_id_ok(const char *s, size_t len)
{
    if (len == 0 || len >= sizeof ((api_req_t *)0)->id) return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._:-", s[i])) return false;
    return true;
}

void api_audit_mark(api_t *a, http_request_t *r)
{
    (void)a;
    api_req_t *q = api_req(r);
    q->audited = true;
    size_t len;
    const char *given = http_request_header(r, "x-request-id", &len);
    if (given && api_audit_id_ok(given, len)) {
        memcpy(q->id, given, len);
        q->id[len] = '\0';
    } else {
        pthread_once(&api_audit_once, api_audit_prefix_init);
        uint64_t n = (uint64_t)atomic_fetch_add_explicit(&api_audit_counter, 1, memory_order_relaxed);
        snprintf(q->id, sizeof q->id, "%s%012" PRIx64, api_audit_prefix, (uint64_t)(n & 0xffffffffffffu));
    }
    char hdr[sizeof q->id + 20];
    int n = snprintf(hdr, sizeof hdr, "X-Request-Id: %s\r\n", q->id);
    http_request_add_headers(r, hdr, (size_t)n);
}

void api_audit_mark_config(api_t *a, http_request_t *r, audit_action_t action)
{
    api_audit_mark(a, r);
    api_req(r)->config_action = (uint8_t)action;
}

/* A key as a JSON string: readable when it is UTF-8, else said to be binary. */
static void api_audit_key_json(sbuf_t *b, const char *key, size_t len)
{
    if (sbuf_utf8_valid(key, len)) sbuf_json_string(b, key, len);
    else sbuf_printf(b, "\"(%zu binary bytes)\"", len);
}

/* The path's last part, decoded, as a one-key JSON array: the key of a
 * DELETE, the name of a job. */
static char *api_audit_path_key(const http_request_t *r, uint64_t *count)
{
    size_t plen;
    const char *path = http_request_path(r, &plen);
    size_t pre = sizeof API_CACHE_PREFIX - 1;
    if (plen < pre || memcmp(path, API_CACHE_PREFIX, pre) != 0) {
        const char *slash = memrchr(path, '/', plen);
        pre = slash ? (size_t)(slash - path) + 1 : plen;
    }
    char decoded[3 * LIMITS_KEY_MAX];
    if (plen <= pre || plen - pre > sizeof decoded) return NULL;
    long klen = http_url_decode(path + pre, plen - pre, decoded, false);
    if (klen <= 0) return NULL;
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "[");
    api_audit_key_json(&b, decoded, (size_t)klen);
    sbuf_puts(&b, "]");
    *count = 1;
    return b.failed ? (sbuf_free(&b), NULL) : sbuf_steal(&b, NULL);
}

/* The body as the handler read it: {"keys":[...]} or {"pattern":..,"dry_run":..}. */
static json_t *api_audit_body(const http_request_t *r)
{
    size_t len;
    const char *body = http_request_body(r, &len);
    return body && len ? json_loadb(body, len, 0, NULL) : NULL;
}

static char *api_audit_body_keys(json_t *root, uint64_t *count)
{
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) return NULL;
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "[");
    size_t shown = 0, i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        if (!json_is_string(k) || shown == AUDIT_KEYS_MAX) continue;
        if (shown++) sbuf_puts(&b, ",");
        api_audit_key_json(&b, json_string_value(k), json_string_length(k));
    }
    sbuf_puts(&b, "]");
    *count = json_array_size(keys);
    return b.failed ? (sbuf_free(&b), NULL) : sbuf_steal(&b, NULL);
}

void api_audit_actor(api_t *a, const http_request_t *r, char *out, size_t cap)
{
    uint32_t slot = api_req(r)->token_slot;
    if (slot != UINT32_MAX) {
        snprintf(out, cap, "%s", a->auth.names[slot].name);
        return;
    }
    /* Anonymous: where it came from, without the port. */
    const char *peer = http_request_peer(r);
    const char *colon = strrchr(peer, ':');
    size_t len = colon ? (size_t)(colon - peer) : strlen(peer);
    snprintf(out, cap, "%.*s", (int)len, peer);
}

static void api_audit_published(void *ctx, l2_result_t res)
{
    events_stats_t *st = ctx;
    if (res == L2_OK) atomic_fetch_add_explicit(&st->redis_published, 1, memory_order_relaxed);
    else atomic_fetch_add_explicit(&st->redis_failed, 1, memory_order_relaxed);
}

void api_audit_responded(api_worker_t *w, const http_request_t *r, int status)
{
    api_t *a = w->api;
    api_req_t *q = api_req(r);
    if (!q->audited || !a->audit) return;
    audit_record_t rec = {.status = status, .matched = q->matched, .invalidated = q->invalidated};
    uint64_t took_ns = uv_hrtime() - http_request_start_ns(r);
    rec.duration_us = took_ns / 1000;
    rec.time_ms = sysinfo_now_ms() - (int64_t)(took_ns / 1000000);
    snprintf(rec.request_id, sizeof rec.request_id, "%s", q->id);
    api_audit_actor(a, r, rec.actor, sizeof rec.actor);
    metrics_err_t cause;
    if (status < 400) snprintf(rec.result, sizeof rec.result, "ok");
    else if (api_http_error(r, &cause)) snprintf(rec.result, sizeof rec.result, "%s", metrics_err_name(cause));
    else snprintf(rec.result, sizeof rec.result, "http_%d", status);
    json_t *body = NULL;
    if (q->config_action == AUDIT_WARM_JOB) {
        rec.action = AUDIT_WARM_JOB;
        if (http_request_method(r) == HTTP_M_DELETE) {
            rec.keys = api_audit_path_key(r, &rec.key_count);
        } else if ((body = api_audit_body(r))) {
            json_t *name = json_object_get(body, "name");
            if (json_is_string(name)) {
                sbuf_t b;
                sbuf_init(&b);
                sbuf_puts(&b, "[");
                api_audit_key_json(&b, json_string_value(name), json_string_length(name));
                sbuf_puts(&b, "]");
                rec.keys = b.failed ? (sbuf_free(&b), NULL) : sbuf_steal(&b, NULL);
                rec.key_count = 1;
            }
        }
        json_decref(body);
        api_audit_publish(a, &rec, NULL);
        return;
    }
    switch (api_http_op(r)) {
    case METRICS_OP_DELETE:
        rec.action = AUDIT_DELETE;
        rec.keys = api_audit_path_key(r, &rec.key_count);
        break;
    case METRICS_OP_INVALIDATE:
        rec.action = AUDIT_INVALIDATE;
        if ((body = api_audit_body(r))) rec.keys = api_audit_body_keys(body, &rec.key_count);
        break;
    case METRICS_OP_INVALIDATE_PATTERN: {
        rec.action = AUDIT_INVALIDATE_PATTERN;
        body = api_audit_body(r);
        json_t *pat = json_object_get(body, "pattern");
        if (json_is_string(pat)) rec.pattern = strndup(json_string_value(pat), json_string_length(pat));
        rec.dry_run = json_is_true(json_object_get(body, "dry_run"));
        break;
    }
    default: return;
    }
    json_decref(body);
    /* For applications' own caches: what was removed, once, by the node
     * that received it (a dry run removes nothing). */
    api_audit_publish(a, &rec, status < 300 && !rec.dry_run ? w->route.l2 : NULL);
}

void api_audit_publish(api_t *a, audit_record_t *rec, l2_t *channel)
{
    /* The same record, live, on /api/events (keyed by its request id). */
    sbuf_t ev;
    sbuf_init(&ev);
    const char *self = atomic_load(&a->route.self_name);
    audit_record_json(&ev, rec, self ? self : "", rec->request_id);
    if (!ev.failed) api_events_publish(&a->feed, audit_action_name(rec->action), ev.data, ev.len, true);
    if (!ev.failed && channel && a->cfg->events_channel[0] && a->feed.events)
        l2_publish(channel, a->cfg->events_channel, ev.data, ev.len, api_audit_published, events_stats(a->feed.events));
    sbuf_free(&ev);
    if (a->audit) audit_submit(a->audit, rec);
}

/* ---- GET /api/audit ---- */

/* A time bound: epoch milliseconds, an RFC 3339 UTC time
 * (2026-12-02T16:00:00Z), or an age (90s, 30m, 1h, 7d: that long ago). */
static bool api_audit_parse_time(const char *s, int64_t now_ms, int64_t *out)
{
    char *end;
    size_t len = strlen(s);
    if (len == 0) return false;
    if (len >= 20 && s[4] == '-' && s[10] == 'T') {
        struct tm tm = {0};
        const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!rest) return false;
        int ms = 0;
        if (*rest == '.') {
            rest++;
            int digits = 0;
            while (isdigit((unsigned char)*rest)) {
                if (digits++ < 3) ms = ms * 10 + (*rest - '0');
                rest++;
            }
            while (digits++ < 3) ms *= 10;
        }
        if (strcmp(rest, "Z") != 0) return false;
        *out = (int64_t)timegm(&tm) * 1000 + ms;
        return true;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0) return false;
    int64_t unit = 0;
    if (*end == '\0') {
        *out = v;
        return true;
    }
    if (strcmp(end, "s") == 0) unit = 1000;
    else if (strcmp(end, "m") == 0) unit = 60000;
    else if (strcmp(end, "h") == 0) unit = 3600000;
    else if (strcmp(end, "d") == 0) unit = 86400000;
    else return false;
    *out = now_ms - v * unit;
    return true;
}

typedef struct api_audit_work {
    uv_work_t req;
    http_request_t *r;
    char *dir, *node, *db;
    audit_query_t q;
    sbuf_t out;
    bool ok;
    char err[160];
} api_audit_work_t;

/* From PostgreSQL when there is one; when it does not answer, from this
 * node's files, saying so: the trail is still there, only not the whole
 * cluster's. A cursor is of one source or the other. */
static void api_audit_work_run(uv_work_t *req)
{
    api_audit_work_t *x = req->data;
    bool pg_cursor = strncmp(x->q.cursor, "pg.", 3) == 0;
    if (x->db && (pg_cursor || !x->q.cursor[0])) {
        x->ok = audit_pg_query(x->db, &x->q, &x->out, x->err, sizeof x->err);
        if (x->ok || strncmp(x->err, "cursor", 6) == 0 || pg_cursor) return;
        sbuf_free(&x->out);
        sbuf_init(&x->out);
    }
    x->ok = audit_query_file(x->dir, x->node, &x->q, &x->out, x->err, sizeof x->err);
    if (x->ok && x->db && x->out.len > 0 && x->out.data[x->out.len - 1] == '}') {
        /* {..."source":"file"} -> {..."source":"file","degraded":"why"} */
        x->out.len--;
        sbuf_puts(&x->out, ",\"degraded\":");
        sbuf_json_string(&x->out, x->err, strlen(x->err));
        sbuf_puts(&x->out, "}");
    }
}

static void api_audit_work_done(uv_work_t *req, int status)
{
    api_audit_work_t *x = req->data;
    if (status == 0 && x->ok && !x->out.failed) {
        api_http_sbuf(x->r, 200, &x->out);
    } else if (status == 0 && !x->ok && strncmp(x->err, "cursor", 6) == 0) {
        http_respond_error(x->r, 400, "bad_cursor", x->err);
    } else {
        api_http_set_error(x->r, METRICS_ERR_INTERNAL);
        http_respond_error(x->r, 500, "audit_unreadable", x->err[0] ? x->err : "the audit trail could not be read");
    }
    sbuf_free(&x->out);
    free(x->dir);
    free(x->node);
    free(x->db);
    free(x);
}

/* A query parameter as text; false (400 answered) when it is malformed or
 * too long. Absent: buf is "". */
static bool api_audit_param(http_request_t *r, const char *name, char *buf, size_t cap)
{
    size_t qlen;
    const char *query = http_request_query(r, &qlen);
    long n = http_query_get(query, qlen, name, buf, cap);
    if (n == -1) {
        buf[0] = '\0';
        return true;
    }
    if (n < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s is malformed or too long", name);
        http_respond_error(r, 400, "bad_request", msg);
        return false;
    }
    return true;
}

void api_audit_list(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
    if (!a->audit) {
        http_respond_error(r, 404, "no_audit", "this node keeps no audit trail");
        return;
    }
    api_audit_work_t *x = calloc(1, sizeof *x);
    if (!x) {
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    x->q.action = -1;
    char since[64], until[64], action[32];
    uint64_t limit;
    int64_t now = sysinfo_now_ms();
    bool ok = api_audit_param(r, "since", since, sizeof since) && api_audit_param(r, "until", until, sizeof until) &&
              api_audit_param(r, "action", action, sizeof action) &&
              api_audit_param(r, "actor", x->q.actor, sizeof x->q.actor) &&
              api_audit_param(r, "cursor", x->q.cursor, sizeof x->q.cursor) &&
              api_http_query_uint(r, "limit", 100, 1, 1000, &limit);
    if (!ok) {
        free(x);
        return;
    }
    x->q.limit = (unsigned)limit;
    if ((since[0] && !api_audit_parse_time(since, now, &x->q.since_ms)) ||
        (until[0] && !api_audit_parse_time(until, now, &x->q.until_ms))) {
        free(x);
        http_respond_error(r, 400, "bad_time",
                           "since and until are epoch milliseconds, an RFC 3339 UTC time (2026-12-02T16:00:00Z) or "
                           "an age (90s, 30m, 1h, 7d)");
        return;
    }
    if (action[0]) {
        audit_action_t act;
        if (!audit_action_parse(action, strlen(action), &act)) {
            free(x);
            http_respond_error(r, 400, "bad_action",
                               "action is one of delete, invalidate, invalidate_pattern, warm, tokens_reload, warm_job, "
                               "origins_reload");
            return;
        }
        x->q.action = (int)act;
    }
    x->r = r;
    x->dir = strdup(audit_dir(a->audit));
    x->node = strdup(audit_node(a->audit));
    if (a->cfg->audit_db[0]) x->db = strdup(a->cfg->audit_db);
    sbuf_init(&x->out);
    x->req.data = x;
    if (!x->dir || !x->node || uv_queue_work(w->route.loop, &x->req, api_audit_work_run, api_audit_work_done) != 0) {
        free(x->dir);
        free(x->node);
        free(x);
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", "out of memory");
    }
}
