/* Operational endpoints: /metrics, /api/metrics, /api/metrics/history,
 * /health and /ready, and the periodic history sample. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoconfig.h"
#include "http/http_url.h"
#include "node/api/api_internal.h"
#include "node/core/sysinfo.h"

#define API_HISTORY_POINTS 120

typedef struct api_http_totals {
    uint64_t accepted, rejected, requests, malformed, header_too_large, body_too_large, header_timeouts,
        idle_timeouts, bytes_in, bytes_out;
    int64_t active;
} api_http_totals_t;

static void api_http_totals(api_t *a, api_http_totals_t *t)
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

static void api_prom_counter(sbuf_t *b, const char *name, const char *help, uint64_t v)
{
    metrics_prom_header(b, name, "counter", help);
    metrics_prom_uint(b, name, NULL, v);
}

static void api_prom_gauge(sbuf_t *b, const char *name, const char *help, double v)
{
    metrics_prom_header(b, name, "gauge", help);
    metrics_prom_value(b, name, NULL, v);
}

void api_metrics_prometheus(api_t *a, http_request_t *r)
{
    sbuf_t b;
    sbuf_init(&b);
    metrics_render_prometheus(a->metrics, &b);
    store_stats_t st;
    store_get_stats(a->store, &st);
    api_prom_gauge(&b, "cache_entries", "Entries in the L1 store.", (double)st.entries);
    api_prom_gauge(&b, "cache_size_bytes", "Bytes held by the L1 store, per-entry overhead included.",
                   (double)st.bytes);
    api_prom_gauge(&b, "cache_max_entries", "Configured L1 entry limit.", (double)a->cfg->l1_max_entries);
    api_prom_gauge(&b, "cache_max_bytes", "Configured L1 memory limit in bytes.", (double)a->cfg->l1_max_memory);
    api_prom_counter(&b, "evictions_total", "Entries evicted to honour the L1 limits.", st.evictions);
    api_prom_counter(&b, "expirations_total", "Entries removed because their TTL passed.", st.expirations);
    api_prom_gauge(&b, "cache_table_buckets", "Hash table bucket slots across L1 shards.", (double)st.buckets);

    api_http_totals_t t;
    api_http_totals(a, &t);
    api_prom_gauge(&b, "http_connections", "Open client connections.", (double)t.active);
    api_prom_counter(&b, "http_connections_accepted_total", "Client connections accepted.", t.accepted);
    api_prom_counter(&b, "http_connections_rejected_total",
                     "Client connections refused with 503 over --max-connections.", t.rejected);
    api_prom_counter(&b, "http_malformed_requests_total", "Requests refused as malformed (400).", t.malformed);
    api_prom_counter(&b, "http_header_too_large_total", "Requests refused over --max-header-size (431).",
                     t.header_too_large);
    api_prom_counter(&b, "http_body_too_large_total", "Requests refused over the body limits (413).",
                     t.body_too_large);
    api_prom_counter(&b, "http_header_timeouts_total", "Connections whose headers came too slowly (408).",
                     t.header_timeouts);
    api_prom_counter(&b, "http_idle_timeouts_total", "Connections closed after --idle-timeout of silence.",
                     t.idle_timeouts);
    api_prom_counter(&b, "http_received_bytes_total", "Bytes read from clients.", t.bytes_in);
    api_prom_counter(&b, "http_sent_bytes_total", "Bytes written to clients.", t.bytes_out);

    sysinfo_process_t p;
    sysinfo_process(&p);
    api_prom_gauge(&b, "process_resident_memory_bytes", "Resident set size.", (double)p.rss_bytes);
    api_prom_gauge(&b, "process_virtual_memory_bytes", "Virtual memory size.", (double)p.virtual_bytes);
    api_prom_gauge(&b, "process_open_fds", "Open file descriptors.", (double)p.open_fds);
    metrics_prom_header(&b, "process_cpu_seconds_total", "counter", "User and system CPU time.");
    metrics_prom_value(&b, "process_cpu_seconds_total", NULL, p.cpu_seconds);
    api_prom_gauge(&b, "process_start_time_seconds", "Start time since the Unix epoch.",
                   (double)a->started_ms / 1000.0);
    api_cluster_prometheus(a, &b);
    api_route_prometheus(a, &b);
    api_l2_prometheus(a, &b);
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

void api_metrics_json(api_t *a, http_request_t *r)
{
    metrics_t *m = a->metrics;
    store_stats_t st;
    store_get_stats(a->store, &st);
    uint64_t hits = metrics_read(&m->hits), misses = metrics_read(&m->misses);
    sysinfo_process_t p;
    sysinfo_process(&p);
    api_http_totals_t t;
    api_http_totals(a, &t);
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
                (unsigned long long)metrics_read(&m->requests), (long long)t.active,
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
    l2_shared_t *l2 = a->l2;
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
    topo_t *ring = topo_slot_get(&a->topo);
    sbuf_printf(&b, ",\"cluster\":{\"ring_version\":%llu,\"ring_members\":%zu,\"forwarded\":%llu,\"coalesced\":%llu,"
                    "\"handoff_entries\":%llu,\"handoff_running\":%s}}",
                (unsigned long long)(ring ? ring->version : 0), ring ? ring->n : (size_t)0,
                (unsigned long long)(atomic_load(&a->route.forwarded[0]) + atomic_load(&a->route.forwarded[1]) +
                                     atomic_load(&a->route.forwarded[2])),
                (unsigned long long)atomic_load(&a->route.coalesced),
                (unsigned long long)atomic_load(&a->handoff.entries_sent),
                atomic_load(&a->handoff.running) ? "true" : "false");
    topo_unref(ring);
    api_respond_sbuf(r, 200, &b);
}

void api_metrics_history(api_t *a, http_request_t *r)
{
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
    metrics_history_render(a->history, window, wms, sysinfo_now_ms(), API_HISTORY_POINTS, &b);
    api_respond_sbuf(r, 200, &b);
}

void api_health(api_t *a, http_request_t *r)
{
    char body[160];
    int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"uptime_seconds\":%lld,\"version\":\"%s\"}",
                     (long long)((sysinfo_now_ms() - a->started_ms) / 1000), PACKAGE_VERSION);
    http_respond_json(r, 200, body, (size_t)n);
}

static const char *api_cluster_state(api_t *a)
{
    gossip_t *g = atomic_load(&a->gossip);
    if (!g) return "starting";
    gossip_metrics_t m;
    gossip_get_metrics(g, &m);
    return m.joined ? "ok" : "joining";
}

void api_ready(api_t *a, http_request_t *r)
{
    bool draining = atomic_load(&a->draining);
    size_t entries = store_entry_count(a->store);
    /* L2 down does not make the node unready: it keeps serving from L1. */
    char l2[256];
    l2_shared_t *s = a->l2;
    if (!s) {
        snprintf(l2, sizeof l2, "{\"status\":\"disabled\",\"detail\":\"no --redis configured\"}");
    } else {
        breaker_state_t bs = breaker_state(&s->breaker);
        snprintf(l2, sizeof l2, "{\"status\":\"%s\",\"breaker\":\"%s\",\"write_mode\":\"%s\",\"journal_records\":%llu}",
                 bs == BREAKER_CLOSED ? "ok" : "degraded", breaker_state_name(bs),
                 s->write_mode == L2_WRITE_JOURNAL ? "journal" : "sync",
                 (unsigned long long)(s->journal ? journal_records(s->journal) : 0));
    }
    char body[640];
    int n = snprintf(body, sizeof body,
                     "{\"ready\":%s,\"status\":\"%s\",\"dependencies\":{"
                     "\"l1\":{\"status\":\"ok\",\"entries\":%zu},"
                     "\"l2\":%s,"
                     "\"audit\":{\"status\":\"disabled\"},"
                     "\"cluster\":{\"status\":\"%s\"}}}",
                     draining ? "false" : "true", draining ? "draining" : "ok", entries, l2, api_cluster_state(a));
    http_respond_json(r, draining ? 503 : 200, body, (size_t)n);
}

void api_sample(api_t *a)
{
    static __thread uint64_t last_buckets[METRICS_BUCKETS + 1];
    metrics_t *m = a->metrics;
    store_stats_t st;
    store_get_stats(a->store, &st);
    sysinfo_process_t p;
    sysinfo_process(&p);
    api_http_totals_t t;
    api_http_totals(a, &t);
    metrics_sample_t s = {
        .t_ms = sysinfo_now_ms(),
        .hits = metrics_read(&m->hits),
        .misses = metrics_read(&m->misses),
        .requests = metrics_read(&m->requests),
        .evictions = st.evictions,
        .expirations = st.expirations,
        .invalidations = metrics_read(&m->invalidations),
        .entries = st.entries,
        .bytes = st.bytes,
        .rss_bytes = p.rss_bytes,
        .connections = t.active > 0 ? (uint64_t)t.active : 0,
    };
    for (int e = 0; e < METRICS_ERR_COUNT; e++) s.errors += metrics_read(&m->errors[e]);
    /* GET p99 over this interval only: the histogram's growth since the
     * previous sample. */
    metrics_histogram_t delta;
    memset(&delta, 0, sizeof delta);
    metrics_histogram_t *h = &m->latency[METRICS_OP_GET];
    for (int i = 0; i <= METRICS_BUCKETS; i++) {
        uint64_t now = metrics_read(&h->buckets[i]);
        atomic_store_explicit(&delta.buckets[i], now - last_buckets[i], memory_order_relaxed);
        last_buckets[i] = now;
    }
    metrics_percentiles_t pc;
    metrics_percentiles(&delta, &pc);
    s.get_p99_s = pc.p99_s;
    metrics_history_record(a->history, &s);
}
