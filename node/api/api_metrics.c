/* The metrics endpoints (/metrics in Prometheus text, /api/metrics in
 * JSON, /api/metrics/history) and the periodic history sample. */
#include "node/api/api_metrics.h"

#include "node/api/api_health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoconfig.h"
#include "http/http_url.h"
#include "node/api/api_events.h"
#include "node/api/api_inbound.h"
#include "node/api/events.h"
#include "node/warm/hotkeys.h"
#include "node/warm/warm.h"
#include "node/audit/audit.h"
#include "node/api/api_http.h"
#include "node/core/sysinfo.h"

#define API_METRICS_HISTORY_POINTS 120

static void api_metrics_cluster(api_t *a, sbuf_t *b)
{
    gossip_t *g = atomic_load(&a->gossip);
    if (!g) return;
    gossip_metrics_t m;
    gossip_get_metrics(g, &m);
    metrics_render_one(b, &gossip_metrics_table, &m);
}

static void api_metrics_route(api_t *a, sbuf_t *b)
{
    topo_metrics_t tm;
    topo_slot_metrics(&a->route.topo, &tm);
    metrics_render_one(b, &topo_metrics_table, &tm);

    metrics_render_one(b, &peer_metrics_table, &a->route.peer_stats);
    metrics_render_one(b, &route_metrics_table, &a->route.stats);
    if (a->route.origin) origin_metrics(a->route.origin, b);
    warm_t *wm = atomic_load(&a->warm);
    if (wm) warm_metrics(wm, b);
    {
        struct hotkeys *hs[API_MAX_WORKERS];
        size_t n = api_hotkeys(a, hs);
        hotkeys_stats_t sum = {0};
        for (size_t i = 0; i < n; i++) {
            hotkeys_stats_t st;
            hotkeys_stats(hs[i], &st);
            sum.records += st.records;
            sum.resets += st.resets;
            sum.keys += st.keys;
            sum.memory_bytes += st.memory_bytes;
        }
        metrics_prom_header(b, "hotkeys_records_total", "counter",
                            "GETs counted for hot-key prediction (a count-min sketch and a top-K per worker).");
        metrics_prom_uint(b, "hotkeys_records_total", NULL, sum.records);
        metrics_prom_header(b, "hotkeys_resets_total", "counter", "Agings of the hot-key counts (all halved).");
        metrics_prom_uint(b, "hotkeys_resets_total", NULL, sum.resets);
        metrics_prom_header(b, "hotkeys_tracked", "gauge", "Keys in the workers' top lists (128 each at most).");
        metrics_prom_uint(b, "hotkeys_tracked", NULL, sum.keys);
        metrics_prom_header(b, "hotkeys_memory_bytes", "gauge", "Memory of the hot-key counters and lists.");
        metrics_prom_uint(b, "hotkeys_memory_bytes", NULL, sum.memory_bytes);
    }
    metrics_render_one(b, &handoff_metrics_table, &a->route.handoff);
    metrics_render_one(b, &route_sync_metrics_table, &a->route.sync);
    metrics_render_one(b, &repair_metrics_table, &a->route.repair);
    if (a->route.dedupe) metrics_render_one(b, &route_dedupe_metrics_table, route_dedupe_stats(a->route.dedupe));
    tomb_metrics_t tb;
    tomb_get_metrics(a->route.tomb, store_now_ms(a->store), &tb);
    metrics_render_one(b, &tomb_metrics_table, &tb);
    if (a->audit) metrics_render_one(b, &audit_metrics_table, audit_stats(a->audit));
    if (a->feed.events) metrics_render_one(b, &events_metrics_table, events_stats(a->feed.events));
    if (a->cfg->invalidate_listen[0] || a->cfg->invalidate_subscribe[0])
        metrics_render_one(b, &api_inbound_metrics_table, &a->inbound);
}

static void api_metrics_l2(api_t *a, sbuf_t *b)
{
    l2_shared_t *s = a->route.l2;
    l2_metrics_t m;
    l2_get_metrics(s, &m);
    if (!s) {
        /* Without --redis only l2_up (0) says so. */
        metrics_table_t up = {l2_metrics_table.rows, 1};
        metrics_render_one(b, &up, &m);
        return;
    }
    metrics_render_one(b, &l2_metrics_table, &m);
    metrics_render_one(b, &l2_stats_metrics_table, &s->stats);
    metrics_render_one(b, &redis_uv_metrics_table, &s->redis_stats);
}

typedef struct api_metrics_http {
    uint64_t accepted, rejected, requests, malformed, header_too_large, body_too_large, header_timeouts,
        idle_timeouts, bytes_in, bytes_out;
    int64_t active;
} api_metrics_http_t;

static void api_metrics_http_totals(api_t *a, api_metrics_http_t *t)
{
    memset(t, 0, sizeof *t);
    int n = atomic_load(&a->nworkers);
    for (int i = 0; i < n; i++) {
        http_server_stats_t *s = a->http_stats[i];
#define API_SUM(f) t->f += atomic_load_explicit(&s->f, memory_order_relaxed)
        API_SUM(requests);
        API_SUM(malformed);
        API_SUM(header_too_large);
        API_SUM(body_too_large);
        API_SUM(header_timeouts);
        API_SUM(idle_timeouts);
        API_SUM(bytes_in);
        API_SUM(bytes_out);
        t->accepted += atomic_load_explicit(&s->connections_accepted, memory_order_relaxed);
        t->rejected += atomic_load_explicit(&s->connections_rejected, memory_order_relaxed);
        t->active += atomic_load_explicit(&s->connections_active, memory_order_relaxed);
#undef API_SUM
    }
}

/* http/ and node/core know nothing of metric tables: the API, which runs
 * the HTTP servers and exports the process's facts, declares theirs. */
#define API_METRICS_HTTP(F, name, help) METRICS_ATOMIC_COUNTER(http_server_stats_t, F, name, NULL, help)
static const metrics_desc_t api_metrics_http_rows[] = {
    METRICS_ATOMIC_GAUGE(http_server_stats_t, connections_active, "http_connections", NULL, "Open client connections."),
    API_METRICS_HTTP(connections_accepted, "http_connections_accepted_total", "Client connections accepted."),
    API_METRICS_HTTP(connections_rejected, "http_connections_rejected_total",
                     "Client connections refused with 503 over --max-connections."),
    API_METRICS_HTTP(requests, "http_requests_parsed_total", "Requests parsed and handed to the API."),
    API_METRICS_HTTP(malformed, "http_malformed_requests_total", "Requests refused as malformed (400)."),
    API_METRICS_HTTP(header_too_large, "http_header_too_large_total", "Requests refused over --max-header-size (431)."),
    API_METRICS_HTTP(body_too_large, "http_body_too_large_total", "Requests refused over the body limits (413)."),
    API_METRICS_HTTP(header_timeouts, "http_header_timeouts_total", "Connections whose headers came too slowly (408)."),
    API_METRICS_HTTP(idle_timeouts, "http_idle_timeouts_total", "Connections closed after --idle-timeout of silence."),
    METRICS_ATOMIC_GAUGE(http_server_stats_t, streams_active, "http_streams_active", NULL,
                         "Streamed responses open (/api/events clients)."),
    API_METRICS_HTTP(streams_slow, "http_streams_slow_total",
                     "Streams closed because their client fell 256 KiB behind (slow consumers are dropped)."),
    API_METRICS_HTTP(bytes_in, "http_received_bytes_total", "Bytes read from clients."),
    API_METRICS_HTTP(bytes_out, "http_sent_bytes_total", "Bytes written to clients."),
};
static const metrics_table_t api_metrics_http_table = METRICS_TABLE(api_metrics_http_rows);

typedef struct api_metrics_process {
    sysinfo_process_t process;
    int64_t start_time_ms;
} api_metrics_process_t;

#define API_METRICS_PROC(F, kind, repr, name, help) METRICS_ROW(api_metrics_process_t, F, kind, repr, name, NULL, help)
static const metrics_desc_t api_metrics_process_rows[] = {
    API_METRICS_PROC(process.rss_bytes, METRICS_GAUGE, METRICS_U64, "process_resident_memory_bytes", "Resident set size."),
    API_METRICS_PROC(process.virtual_bytes, METRICS_GAUGE, METRICS_U64, "process_virtual_memory_bytes",
                     "Virtual memory size."),
    API_METRICS_PROC(process.open_fds, METRICS_GAUGE, METRICS_U64, "process_open_fds", "Open file descriptors."),
    API_METRICS_PROC(process.cpu_seconds, METRICS_COUNTER, METRICS_DOUBLE, "process_cpu_seconds_total",
                     "User and system CPU time."),
    {"process_start_time_seconds", NULL, METRICS_GAUGE, METRICS_I64, offsetof(api_metrics_process_t, start_time_ms),
     "Start time since the Unix epoch.", 1000},
};
static const metrics_table_t api_metrics_process_table = METRICS_TABLE(api_metrics_process_rows);

void api_metrics_prometheus(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
    sbuf_t b;
    sbuf_init(&b);
    metrics_render_prometheus(a->metrics, &b);
    store_stats_t st;
    store_get_stats(a->store, &st);
    metrics_render_one(&b, &store_metrics_table, &st);

    int nworkers = atomic_load(&a->nworkers);
    const void *servers[API_MAX_WORKERS];
    for (int i = 0; i < nworkers; i++) servers[i] = a->http_stats[i];
    metrics_render_table(&b, &api_metrics_http_table, servers, (size_t)nworkers);

    api_metrics_process_t p = {.start_time_ms = a->started_ms};
    sysinfo_process(&p.process);
    metrics_render_one(&b, &api_metrics_process_table, &p);
    api_metrics_cluster(a, &b);
    api_metrics_route(a, &b);
    api_metrics_l2(a, &b);
    api_auth_render(&a->auth, &b);
    metrics_prom_header(&b, "api_scans", "gauge",
                        "Cluster-wide scans (listings, previews, pattern invalidations) in flight here, at most 4.");
    metrics_prom_uint(&b, "api_scans", NULL, (uint64_t)atomic_load(&a->scans));
    metrics_prom_header(&b, "api_scans_refused_total", "counter", "Scans refused with 429: too many in flight.");
    metrics_prom_uint(&b, "api_scans_refused_total", NULL, atomic_load(&a->scans_refused));
    metrics_prom_header(&b, "dcache_build_info", "gauge", "Build version.");
    metrics_prom_uint(&b, "dcache_build_info", "version=\"" PACKAGE_VERSION "\"", 1);

    if (b.failed) {
        sbuf_free(&b);
        http_respond_error(r, 503, "no_memory", "out of memory building the response");
        return;
    }
    size_t len;
    char *data = sbuf_steal(&b, &len);
    static const char ct[] = "text/plain; version=0.0.4; charset=utf-8";
    http_response_t resp = {.status = 200,
                            .content_type = ct,
                            .content_type_len = sizeof ct - 1,
                            .body = data,
                            .body_len = len,
                            .body_release = free,
                            .body_release_ctx = data};
    http_respond(r, &resp);
}

void api_metrics_json(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
        metrics_t *m = a->metrics;
    store_stats_t st;
    store_get_stats(a->store, &st);
    uint64_t hits = metrics_read(&m->hits), misses = metrics_read(&m->misses);
    sysinfo_process_t p;
    sysinfo_process(&p);
    api_metrics_http_t t;
    api_metrics_http_totals(a, &t);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_printf(&b,
                "{\"hits\":%llu,\"misses\":%llu,\"hit_rate\":%.4f,\"entries\":%llu,\"bytes\":%llu,"
                "\"max_entries\":%llu,\"max_bytes\":%llu,\"evictions\":%llu,\"expirations\":%llu,"
                "\"invalidations\":%llu,\"requests\":%llu,\"connections\":%lld,\"rss_bytes\":%llu,"
                "\"uptime_seconds\":%lld,\"eviction_policy\":\"%s\",\"latency\":{",
                (unsigned long long)hits, (unsigned long long)misses,
                hits + misses ? (double)hits / (double)(hits + misses) : 0.0, (unsigned long long)st.entries,
                (unsigned long long)st.bytes, (unsigned long long)a->cfg->l1_max_entries,
                (unsigned long long)a->cfg->l1_max_memory, (unsigned long long)st.evictions,
                (unsigned long long)st.expirations, (unsigned long long)metrics_read(&m->invalidations),
                (unsigned long long)metrics_requests(m), (long long)t.active,
                (unsigned long long)p.rss_bytes, (long long)((sysinfo_now_ms() - a->started_ms) / 1000),
                a->cfg->eviction);
    for (int op = 0; op < METRICS_OP_COUNT; op++) {
        metrics_percentiles_t pc;
        metrics_percentiles(&m->latency[op], &pc);
        sbuf_printf(&b,
                    "%s\"%s\":{\"count\":%llu,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,"
                    "\"mean_ms\":%.3f}",
                    op ? "," : "", metrics_op_name((metrics_op_t)op), (unsigned long long)pc.count,
                    pc.p50_s * 1e3, pc.p90_s * 1e3, pc.p95_s * 1e3, pc.p99_s * 1e3, pc.mean_s * 1e3);
    }
    sbuf_puts(&b, "}");
    /* L2 and the cluster data path, for dashboards that read JSON. */
    l2_shared_t *l2 = a->route.l2;
    if (!l2) {
        sbuf_puts(&b, ",\"l2\":{\"status\":\"disabled\"}");
    } else {
        l2_stats_t *ls = &l2->stats;
        sbuf_printf(&b,
                    ",\"l2\":{\"status\":\"%s\",\"breaker\":\"%s\",\"write_mode\":\"%s\",\"hits\":%llu,"
                    "\"misses\":%llu,\"errors\":%llu,\"writes_refused\":%llu,\"writes_journaled\":%llu,"
                    "\"journal_records\":%llu,\"journal_replayed\":%llu}",
                    breaker_state(&l2->breaker) == BREAKER_CLOSED ? "ok" : "degraded",
                    breaker_state_name(breaker_state(&l2->breaker)),
                    l2->write_mode == L2_WRITE_JOURNAL ? "journal" : "sync",
                    (unsigned long long)atomic_load(&ls->hits), (unsigned long long)atomic_load(&ls->misses),
                    (unsigned long long)atomic_load(&ls->errors), (unsigned long long)atomic_load(&ls->writes_refused),
                    (unsigned long long)atomic_load(&ls->writes_journaled),
                    (unsigned long long)(l2->journal ? journal_records(l2->journal) : 0),
                    (unsigned long long)atomic_load(&ls->journal_drained));
    }
    topo_t *ring = topo_slot_get(&a->route.topo);
    sbuf_printf(&b, ",\"cluster\":{\"ring_version\":%llu,\"ring_members\":%zu,\"forwarded\":%llu,\"coalesced\":%llu,"
                    "\"handoff_entries\":%llu,\"handoff_running\":%s}}",
                (unsigned long long)(ring ? ring->version : 0), ring ? ring->n : (size_t)0,
                (unsigned long long)(atomic_load(&a->route.stats.forwarded[0]) + atomic_load(&a->route.stats.forwarded[1]) +
                                     atomic_load(&a->route.stats.forwarded[2])),
                (unsigned long long)atomic_load(&a->route.stats.coalesced),
                (unsigned long long)atomic_load(&a->route.handoff.entries_sent),
                atomic_load(&a->route.handoff.running) ? "true" : "false");
    topo_unref(ring);
    api_http_sbuf(r, 200, &b);
}

void api_metrics_history(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
        size_t qlen;
    const char *q = http_request_query(r, &qlen);
    char window[16];
    long n = http_query_get(q, qlen, "window", window, sizeof window);
    if (n <= 0) strcpy(window, "5m");
    int64_t wms = n == -2 ? 0 : metrics_history_window_ms(window);
    if (wms == 0) {
        http_respond_error(r, 400, "bad_window", "window must be one of 1m, 5m, 1h, 24h");
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    metrics_history_render(a->history, window, wms, sysinfo_now_ms(), API_METRICS_HISTORY_POINTS, &b);
    api_http_sbuf(r, 200, &b);
}


/* GET latency percentiles over what the histogram gained since `prev`
 * (its buckets at the previous call), which becomes the current reading. */
static void api_metrics_get_since(metrics_t *m, uint64_t prev[METRICS_BUCKETS + 1], metrics_percentiles_t *pc)
{
    metrics_histogram_t delta;
    memset(&delta, 0, sizeof delta);
    metrics_histogram_t *h = &m->latency[METRICS_OP_GET];
    for (int i = 0; i <= METRICS_BUCKETS; i++) {
        uint64_t now = metrics_read(&h->buckets[i]);
        atomic_store_explicit(&delta.buckets[i], now - prev[i], memory_order_relaxed);
        prev[i] = now;
    }
    metrics_percentiles(&delta, pc);
}

void api_metrics_sample(api_t *a)
{
    metrics_t *m = a->metrics;
    store_stats_t st;
    store_get_stats(a->store, &st);
    sysinfo_process_t p;
    sysinfo_process(&p);
    api_metrics_http_t t;
    api_metrics_http_totals(a, &t);
    metrics_sample_t s = {
        .t_ms = sysinfo_now_ms(),
        .hits = metrics_read(&m->hits),
        .misses = metrics_read(&m->misses),
        .requests = metrics_requests(m),
        .evictions = st.evictions,
        .expirations = st.expirations,
        .invalidations = metrics_read(&m->invalidations),
        .entries = st.entries,
        .bytes = st.bytes,
        .rss_bytes = p.rss_bytes,
        .connections = t.active > 0 ? (uint64_t)t.active : 0,
    };
    for (int e = 0; e < METRICS_ERR_COUNT; e++) s.errors += metrics_read(&m->errors[e]);
    /* GET p99 over this interval only. */
    metrics_percentiles_t pc;
    api_metrics_get_since(m, a->sample_buckets, &pc);
    s.get_p99_s = pc.p99_s;
    metrics_history_record(a->history, &s);
}

void api_metrics_tick(api_t *a, uint64_t interval_ms)
{
    metrics_t *m = a->metrics;
    uint64_t requests = metrics_requests(m), hits = metrics_read(&m->hits), misses = metrics_read(&m->misses);
    uint64_t invalidations = metrics_read(&m->invalidations);
    metrics_percentiles_t pc;
    api_metrics_get_since(m, a->tick_buckets, &pc);
    store_stats_t st;
    store_get_stats(a->store, &st);
    sysinfo_process_t p;
    sysinfo_process(&p);
    double per_s = interval_ms ? 1000.0 / (double)interval_ms : 1.0;
    uint64_t dh = hits - a->tick_hits, dm = misses - a->tick_misses;
    const char *self = atomic_load(&a->route.self_name);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"node\":");
    sbuf_json_string(&b, self ? self : "", self ? strlen(self) : 0);
    sbuf_printf(&b,
                ",\"time_ms\":%lld,\"ops_per_s\":%.1f,\"hits_per_s\":%.1f,\"misses_per_s\":%.1f,\"hit_rate\":%.4f,"
                "\"invalidations_per_s\":%.1f,\"hits\":%llu,\"misses\":%llu,\"get_p50_ms\":%.3f,\"get_p90_ms\":%.3f,"
                "\"get_p95_ms\":%.3f,\"get_p99_ms\":%.3f,\"entries\":%llu,\"bytes\":%llu,\"rss_bytes\":%llu,"
                "\"evictions\":%llu,\"expirations\":%llu,\"invalidations\":%llu,\"max_bytes\":%llu,"
                "\"max_entries\":%llu,\"state\":\"%s\",\"l2\":\"%s\",\"audit\":\"%s\"}",
                (long long)sysinfo_now_ms(), (double)(requests - a->tick_requests) * per_s, (double)dh * per_s,
                (double)dm * per_s, dh + dm ? (double)dh / (double)(dh + dm) : 0.0,
                (double)(invalidations - a->tick_invalidations) * per_s, (unsigned long long)hits,
                (unsigned long long)misses, pc.p50_s * 1e3, pc.p90_s * 1e3, pc.p95_s * 1e3, pc.p99_s * 1e3,
                (unsigned long long)st.entries, (unsigned long long)st.bytes, (unsigned long long)p.rss_bytes,
                (unsigned long long)st.evictions, (unsigned long long)st.expirations,
                (unsigned long long)invalidations, (unsigned long long)a->cfg->l1_max_memory,
                (unsigned long long)a->cfg->l1_max_entries, api_health_state(a), api_health_l2_state(a),
                api_health_audit_state(a));
    a->tick_requests = requests;
    a->tick_hits = hits;
    a->tick_misses = misses;
    a->tick_invalidations = invalidations;
    if (!b.failed) api_events_publish(&a->feed, "metrics", b.data, b.len, true);
    sbuf_free(&b);
}
