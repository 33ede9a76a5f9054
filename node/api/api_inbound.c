#include "node/api/api_inbound.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/limits.h"
#include "node/api/api_audit.h"
#include "node/api/api_events.h"
#include "node/api/api_http.h"
#include "node/api/events.h"
#include "node/audit/audit.h"
#include "node/core/log.h"
#include "node/core/sysinfo.h"
#include "node/l2/redis_sub.h"
#include "node/pg/pg_uv.h"
#include "node/route/route_local.h"
#include "node/route/route_scatter.h"
#include "node/route/route_serve.h"

#define API_INBOUND_ID_MAX (AUDIT_ID_MAX - 1) /* it is the record's request id */
#define API_INBOUND_KEYS_MAX 10000

#define INBOUND_COUNTER(F, labels, help) \
    METRICS_ATOMIC_COUNTER(api_inbound_stats_t, F, "invalidation_events_total", labels, help)
static const metrics_desc_t api_inbound_metrics_rows[] = {
    INBOUND_COUNTER(carried, "result=\"cluster\"",
                    "Invalidation events heard (NOTIFY, PUBLISH): carried out cluster-wide by this node (the event's "
                    "designated node), applied to this node's L1 only, refused as malformed, or carried out "
                    "incompletely (a member or Redis did not answer)."),
    INBOUND_COUNTER(local, "result=\"local\"", ""),
    INBOUND_COUNTER(malformed, "result=\"malformed\"", ""),
    INBOUND_COUNTER(failed, "result=\"incomplete\"", ""),
    METRICS_ATOMIC_COUNTER(api_inbound_stats_t, gaps, "invalidation_event_gaps_total", NULL,
                           "Times the connection to the event source came back after a loss: this node dropped "
                           "its whole L1, as it may have missed events."),
    METRICS_ATOMIC_COUNTER(api_inbound_stats_t, gap_dropped, "invalidation_event_gap_dropped_total", NULL,
                           "Entries dropped from L1 after such gaps."),
};
const metrics_table_t api_inbound_metrics_table = METRICS_TABLE(api_inbound_metrics_rows);

struct api_inbound {
    uv_loop_t *loop;
    api_t *api;
    route_worker_t rw;            /* the main loop's data path, for the scatter */
    bool rw_up;
    pg_uv_t *pg;                  /* --invalidate-listen, or NULL */
    redis_sub_t *sub;             /* --invalidate-subscribe, or NULL */
    char channel[64];
    unsigned closing;
    void (*done)(void *arg);
    void *done_arg;
};

/* One event being carried out cluster-wide. */
typedef struct api_inbound_job {
    api_inbound_t *in;
    audit_record_t rec;
    int64_t started_ms;
    uint64_t started_ns;
} api_inbound_job_t;

static void api_inbound_record(api_inbound_job_t *j)
{
    api_t *a = j->in->api;
    j->rec.duration_us = (uv_hrtime() - j->started_ns) / 1000;
    api_audit_publish(a, &j->rec, NULL);
    audit_record_clear(&j->rec);
    free(j);
}

static void api_inbound_done(void *ctx, const route_scatter_result_t *res)
{
    api_inbound_job_t *j = ctx;
    api_inbound_stats_t *st = &j->in->api->inbound;
    bool incomplete = res->nunreachable > 0 || res->l2 == ROUTE_SCATTER_L2_UNAVAILABLE;
    j->rec.matched = j->rec.action == AUDIT_INVALIDATE_PATTERN ? (int64_t)res->matched : -1;
    j->rec.invalidated = (int64_t)res->invalidated;
    j->rec.status = incomplete ? 503 : 200;
    snprintf(j->rec.result, sizeof j->rec.result, "%s",
             res->l2 == ROUTE_SCATTER_L2_UNAVAILABLE ? "l2_unavailable"
             : res->nunreachable                     ? "invalidation_incomplete"
                                                     : "ok");
    atomic_fetch_add_explicit(incomplete ? &st->failed : &st->carried, 1, memory_order_relaxed);
    if (incomplete)
        log_warn("an invalidation event did not reach every member or Redis", "\"event\":\"%s\",\"result\":\"%s\"",
                 j->rec.request_id, j->rec.result);
    api_inbound_record(j);
}

/* True when this node is the one to carry the event out cluster-wide. */
static bool api_inbound_designated(api_inbound_t *in, const char *id)
{
    topo_t *t = route_topo(&in->rw);
    if (!t || t->self < 0) return true;
    char key[8 + API_INBOUND_ID_MAX + 1];
    int n = snprintf(key, sizeof key, "event:%s", id);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t no = topo_owners(t, key, (size_t)n, owners, RING_REPLICAS_MAX);
    return no == 0 || (int32_t)owners[0] == t->self;
}

/* The keys of {"keys":[...]}, or false (malformed). */
static bool api_inbound_keys(json_t *keys, peer_bytes_t **out, size_t *n)
{
    *n = json_array_size(keys);
    if (!json_is_array(keys) || *n == 0 || *n > API_INBOUND_KEYS_MAX) return false;
    *out = calloc(*n, sizeof **out);
    if (!*out) return false;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        size_t len = json_string_length(k);
        if (!json_is_string(k) || len == 0 || len > LIMITS_KEY_MAX) {
            free(*out);
            return false;
        }
        (*out)[i] = (peer_bytes_t){(const uint8_t *)json_string_value(k), len};
    }
    return true;
}

static bool api_inbound_pattern_ok(const char *p, size_t len)
{
    size_t wild = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\\') i++;
        else if (p[i] == '*' || p[i] == '?' || p[i] == '[') wild++;
    }
    return len >= 1 && len <= API_HTTP_PATTERN_MAX && wild <= API_HTTP_PATTERN_WILDCARDS_MAX;
}

void api_inbound_event(api_inbound_t *in, const char *source, const char *channel, const char *payload, size_t len)
{
    api_t *a = in->api;
    api_inbound_stats_t *st = &a->inbound;
    json_t *root = json_loadb(payload, len, 0, NULL);
    json_t *keys = json_object_get(root, "keys"), *pat = json_object_get(root, "pattern");
    json_t *idv = json_object_get(root, "id");
    peer_bytes_t *kv = NULL;
    size_t nkeys = 0;
    bool ok = json_is_object(root) && (keys != NULL) != (pat != NULL) &&
              (!idv || (json_is_string(idv) && json_string_length(idv) >= 1 &&
                        json_string_length(idv) <= API_INBOUND_ID_MAX)) &&
              (keys ? api_inbound_keys(keys, &kv, &nkeys)
                    : json_is_string(pat) && api_inbound_pattern_ok(json_string_value(pat), json_string_length(pat)));
    if (!ok) {
        atomic_fetch_add_explicit(&st->malformed, 1, memory_order_relaxed);
        char esc[200], shown[120];
        snprintf(shown, sizeof shown, "%.*s", (int)(len < 100 ? len : 100), payload);
        log_warn("invalidation event ignored: not {\"keys\":[...]} or {\"pattern\":\"...\"}",
                 "\"source\":\"%s\",\"channel\":\"%s\",\"payload\":\"%s\"", source, channel,
                 log_escape(shown, esc, sizeof esc));
        json_decref(root);
        return;
    }
    char id[API_INBOUND_ID_MAX + 1];
    if (idv) {
        snprintf(id, sizeof id, "%s", json_string_value(idv));
    } else {
        uint8_t h[16];
        crypto_generichash_state hs;
        crypto_generichash_init(&hs, NULL, 0, sizeof h);
        crypto_generichash_update(&hs, (const uint8_t *)source, strlen(source) + 1);
        crypto_generichash_update(&hs, (const uint8_t *)channel, strlen(channel) + 1);
        crypto_generichash_update(&hs, (const uint8_t *)payload, len);
        crypto_generichash_final(&hs, h, sizeof h);
        sodium_bin2hex(id, sizeof id, h, sizeof h);
    }
    const char *why = NULL;
    bool refused = route_write_refusal(&in->rw, &why) != ROUTE_ERR_COUNT;
    if (!api_inbound_designated(in, id) || refused) {
        /* Not ours to carry out (or this node may not stamp now): our own
         * copies go at once all the same. */
        uint64_t version = refused ? 0 : route_stamp(&a->route);
        if (kv) {
            route_local_invalidate_keys(&in->rw, kv, nkeys, version);
        } else {
            uint64_t matched, invalidated;
            route_local_invalidate_pattern(&in->rw, json_string_value(pat), json_string_length(pat), false, version,
                                           &matched, &invalidated);
        }
        atomic_fetch_add_explicit(&st->local, 1, memory_order_relaxed);
        free(kv);
        json_decref(root);
        return;
    }
    api_inbound_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        free(kv);
        json_decref(root);
        return;
    }
    j->in = in;
    j->started_ns = uv_hrtime();
    j->rec.time_ms = sysinfo_now_ms();
    j->rec.matched = j->rec.invalidated = -1;
    snprintf(j->rec.request_id, sizeof j->rec.request_id, "%s", id);
    snprintf(j->rec.actor, sizeof j->rec.actor, "%s:%s", source, channel);
    bool started;
    if (kv) {
        j->rec.action = AUDIT_INVALIDATE;
        j->rec.key_count = nkeys;
        sbuf_t b;
        sbuf_init(&b);
        sbuf_puts(&b, "[");
        for (size_t i = 0; i < nkeys && i < AUDIT_KEYS_MAX; i++) {
            if (i) sbuf_puts(&b, ",");
            sbuf_json_string(&b, (const char *)kv[i].p, kv[i].len);
        }
        sbuf_puts(&b, "]");
        j->rec.keys = b.failed ? (sbuf_free(&b), NULL) : sbuf_steal(&b, NULL);
        started = route_scatter_keys(&in->rw, kv, nkeys, api_inbound_done, j);
    } else {
        j->rec.action = AUDIT_INVALIDATE_PATTERN;
        j->rec.pattern = strndup(json_string_value(pat), json_string_length(pat));
        started = route_scatter_pattern(&in->rw, ROUTE_SCATTER_INVALIDATE, json_string_value(pat),
                                        json_string_length(pat), false, 0, api_inbound_done, j);
    }
    if (!started) {
        j->rec.status = 503;
        snprintf(j->rec.result, sizeof j->rec.result, "no_memory");
        atomic_fetch_add_explicit(&st->failed, 1, memory_order_relaxed);
        api_inbound_record(j);
    }
    free(kv);
    json_decref(root);
}

/* ---- PostgreSQL LISTEN ---- */

static void api_inbound_notify(void *ctx, const char *channel, const char *payload, int be_pid)
{
    (void)be_pid;
    api_inbound_event(ctx, "pg", channel, payload, strlen(payload));
}

/* Listening again after a loss: whatever was announced meanwhile went
 * unheard here. */
static void api_inbound_drop_l1(api_inbound_t *in, const char *source, const char *channel)
{
    api_t *a = in->api;
    size_t dropped = store_delete_matching(a->store, "*", 1);
    atomic_fetch_add_explicit(&a->inbound.gaps, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->inbound.gap_dropped, dropped, memory_order_relaxed);
    atomic_fetch_add(&a->route.deletes, 1);
    log_warn("listening for invalidation events again after a lost connection: dropped this node's L1, as it "
             "may have missed some",
             "\"source\":\"%s\",\"channel\":\"%s\",\"dropped\":%zu", source, channel, dropped);
}

static void api_inbound_gap(void *ctx)
{
    api_inbound_t *in = ctx;
    api_inbound_drop_l1(in, "pg", in->channel);
}

/* ---- Redis SUBSCRIBE ---- */

static void api_inbound_message(void *ctx, const char *channel, const char *payload, size_t len)
{
    api_inbound_event(ctx, "redis", channel, payload, len);
}

static void api_inbound_subscribed(void *ctx, bool again)
{
    api_inbound_t *in = ctx;
    if (again) api_inbound_drop_l1(in, "redis", in->api->cfg->invalidate_subscribe);
}

static bool api_inbound_channel_ok(const char *c)
{
    size_t n = strlen(c);
    if (n == 0 || n > 63 || !(c[0] == '_' || (c[0] >= 'a' && c[0] <= 'z') || (c[0] >= 'A' && c[0] <= 'Z'))) return false;
    for (size_t i = 1; i < n; i++)
        if (!(c[i] == '_' || (c[i] >= 'a' && c[i] <= 'z') || (c[i] >= 'A' && c[i] <= 'Z') || (c[i] >= '0' && c[i] <= '9')))
            return false;
    return true;
}

api_inbound_t *api_inbound_new(uv_loop_t *loop, api_t *a, char *err, size_t errcap)
{
    err[0] = '\0';
    const config_t *cfg = a->cfg;
    if (!cfg->invalidate_listen[0] && !cfg->invalidate_subscribe[0]) return NULL;
    if (cfg->invalidate_listen[0] && !api_inbound_channel_ok(cfg->invalidate_listen)) {
        snprintf(err, errcap, "--invalidate-listen: a channel is a name of letters, digits and _ (at most 63)");
        return NULL;
    }
    api_inbound_t *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    in->loop = loop;
    in->api = a;
    snprintf(in->channel, sizeof in->channel, "%s", cfg->invalidate_listen);
    if (cfg->invalidate_listen[0]) {
        const char *db = cfg->listen_db[0] ? cfg->listen_db : cfg->audit_db;
        pg_uv_config_t pc = {.conninfo = db};
        if (!(in->pg = pg_uv_new(loop, &pc))) {
            snprintf(err, errcap, "--listen-db (or --audit-db) is not a usable PostgreSQL connection string: give "
                                  "postgres://user:password@IP:port/db, with an IP address, not a host name");
            free(in);
            return NULL;
        }
    }
    /* None of these can fail now but for memory, which the start fails on
     * anyway. */
    in->rw_up = route_worker_init(&in->rw, &a->route, loop, route_serve, &in->rw) == 0;
    bool ok = in->rw_up;
    if (ok && in->pg) ok = pg_uv_listen(in->pg, in->channel, api_inbound_notify, api_inbound_gap, in) == 0;
    if (ok && cfg->invalidate_subscribe[0]) {
        const config_redis_t *r = &cfg->redis_target;
        redis_sub_config_t sc = {.host = r->host, .port = r->port, .username = r->user, .password = r->password,
                                 .channel = cfg->invalidate_subscribe, .message = api_inbound_message,
                                 .subscribed = api_inbound_subscribed, .ctx = in};
        ok = (in->sub = redis_sub_new(loop, &sc)) != NULL;
    }
    if (!ok) snprintf(err, errcap, "out of memory");
    return in;
}

static void api_inbound_part_closed(void *arg)
{
    api_inbound_t *in = arg;
    if (--in->closing == 0 && in->done) in->done(in->done_arg);
}

void api_inbound_close(api_inbound_t *in, void (*done)(void *arg), void *arg)
{
    in->done = done;
    in->done_arg = arg;
    in->closing = 1 + (in->pg ? 1u : 0u) + (in->sub ? 1u : 0u);
    if (in->pg) pg_uv_close(in->pg, api_inbound_part_closed, in);
    if (in->sub) redis_sub_close(in->sub, api_inbound_part_closed, in);
    if (in->rw_up) route_worker_close(&in->rw, api_inbound_part_closed, in);
    else api_inbound_part_closed(in);
}

void api_inbound_free(api_inbound_t *in)
{
    if (!in) return;
    if (in->pg) pg_uv_free(in->pg);
    redis_sub_free(in->sub);
    if (in->rw_up) route_worker_free(&in->rw);
    free(in);
}
