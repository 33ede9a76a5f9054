#include "node/metrics/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Upper bounds in seconds; chosen so a loopback hit (tens of us) and a
 * slow Redis round trip (tens of ms) both fall in well-resolved buckets. */
static const double metrics_bounds[METRICS_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01,
    0.025,   0.05,   0.075,   0.1,    0.25,    0.5,   1.0,    2.5,   5.0,    10.0,
};

static const char *const metrics_op_names[METRICS_OP_COUNT] = {
    "get", "put", "delete", "keys", "invalidate", "invalidate_pattern", "other",
};

static const char *const metrics_err_names[METRICS_ERR_COUNT] = {
    "bad_request", "too_large", "timeout", "no_memory", "internal",
    "owner_unavailable", "l2_unavailable", "write_not_replicated", "draining", "overloaded", "syncing", "invalidation_incomplete", "minority",
    "journal_pending", "clock_skew", "unauthorized", "forbidden", "rate_limited",
    "origin_error",
};

void metrics_init(metrics_t *m)
{
    memset(m, 0, sizeof *m);
}

const char *metrics_op_name(metrics_op_t op)
{
    return op < METRICS_OP_COUNT ? metrics_op_names[op] : "other";
}

const char *metrics_err_name(metrics_err_t e)
{
    return e < METRICS_ERR_COUNT ? metrics_err_names[e] : "internal";
}

void metrics_observe(metrics_t *m, metrics_op_t op, uint64_t ns)
{
    if (op >= METRICS_OP_COUNT) op = METRICS_OP_OTHER;
    metrics_histogram_t *h = &m->latency[op];
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < METRICS_BUCKETS && s > metrics_bounds[i]) i++;
    metrics_add(&h->buckets[i], 1);
    metrics_add(&h->count, 1);
    metrics_add(&h->sum_ns, ns);
}

void metrics_count_status(metrics_t *m, int status)
{
    if (status >= 100 && status < 600) metrics_add(&m->http_status[status - 100], 1);
}

uint64_t metrics_requests(metrics_t *m)
{
    uint64_t n = 0;
    for (int s = 0; s < 500; s++) n += metrics_read(&m->http_status[s]);
    return n;
}

void metrics_count_error(metrics_t *m, metrics_err_t e)
{
    if (e < METRICS_ERR_COUNT) metrics_add(&m->errors[e], 1);
}

static double metrics_quantile(const uint64_t *b, uint64_t total, double q)
{
    if (total == 0) return 0;
    double rank = q * (double)total;
    uint64_t seen = 0;
    for (int i = 0; i <= METRICS_BUCKETS; i++) {
        if (b[i] == 0) continue;
        if ((double)(seen + b[i]) >= rank) {
            if (i == METRICS_BUCKETS) return metrics_bounds[METRICS_BUCKETS - 1];
            double lo = i ? metrics_bounds[i - 1] : 0, hi = metrics_bounds[i];
            double frac = (rank - (double)seen) / (double)b[i];
            return lo + (hi - lo) * frac;
        }
        seen += b[i];
    }
    return metrics_bounds[METRICS_BUCKETS - 1];
}

void metrics_percentiles(metrics_histogram_t *h, metrics_percentiles_t *out)
{
    uint64_t b[METRICS_BUCKETS + 1], total = 0;
    for (int i = 0; i <= METRICS_BUCKETS; i++) total += b[i] = metrics_read(&h->buckets[i]);
    out->count = total;
    out->p50_s = metrics_quantile(b, total, 0.50);
    out->p90_s = metrics_quantile(b, total, 0.90);
    out->p95_s = metrics_quantile(b, total, 0.95);
    out->p99_s = metrics_quantile(b, total, 0.99);
    out->mean_s = total ? (double)metrics_read(&h->sum_ns) / 1e9 / (double)total : 0;
}

void metrics_prom_header(sbuf_t *out, const char *name, const char *type, const char *help)
{
    sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_prom_value(sbuf_t *out, const char *name, const char *labels, double value)
{
    if (labels && *labels) sbuf_printf(out, "%s{%s} %.15g\n", name, labels, value);
    else sbuf_printf(out, "%s %.15g\n", name, value);
}

void metrics_prom_uint(sbuf_t *out, const char *name, const char *labels, uint64_t value)
{
    if (labels && *labels) sbuf_printf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else sbuf_printf(out, "%s %llu\n", name, (unsigned long long)value);
}

/* An integer row's value (gauges may be negative while being updated). */
static int64_t metrics_row_int(const metrics_desc_t *d, const void *stats)
{
    const char *p = (const char *)stats + d->offset;
    switch (d->repr) {
    case METRICS_ATOMIC_U64:
        return (int64_t)atomic_load_explicit((atomic_uint_fast64_t *)(uintptr_t)p, memory_order_relaxed);
    case METRICS_ATOMIC_I64:
        return (int64_t)atomic_load_explicit((atomic_int_fast64_t *)(uintptr_t)p, memory_order_relaxed);
    case METRICS_U64: return (int64_t)*(const uint64_t *)p;
    case METRICS_U32: return (int64_t)*(const uint32_t *)p;
    case METRICS_I64: return *(const int64_t *)p;
    case METRICS_DOUBLE: break;
    }
    return 0;
}

void metrics_render_table(sbuf_t *out, const metrics_table_t *t, const void *const *stats, size_t nstats)
{
    for (size_t i = 0; i < t->n; i++) {
        const metrics_desc_t *d = &t->rows[i];
        if (i == 0 || strcmp(d->name, t->rows[i - 1].name) != 0)
            metrics_prom_header(out, d->name, d->kind == METRICS_COUNTER ? "counter" : "gauge", d->help);
        if (d->repr == METRICS_DOUBLE) {
            double v = 0;
            for (size_t k = 0; k < nstats; k++) v += *(const double *)((const char *)stats[k] + d->offset);
            metrics_prom_value(out, d->name, d->labels, v);
            continue;
        }
        int64_t v = 0;
        for (size_t k = 0; k < nstats; k++) v += metrics_row_int(d, stats[k]);
        if (d->divisor > 1) metrics_prom_value(out, d->name, d->labels, (double)v / d->divisor);
        else if (v >= 0) metrics_prom_uint(out, d->name, d->labels, (uint64_t)v);
        else metrics_prom_value(out, d->name, d->labels, (double)v);
    }
}

void metrics_render_one(sbuf_t *out, const metrics_table_t *t, const void *stats)
{
    metrics_render_table(out, t, &stats, 1);
}

static const metrics_desc_t metrics_rows[] = {
    METRICS_ATOMIC_COUNTER(metrics_t, hits, "cache_hits_total", NULL,
                           "Client GETs answered with a value (from this node, an owner or Redis)."),
    METRICS_ATOMIC_COUNTER(metrics_t, misses, "cache_misses_total", NULL, "Client GETs answered 404."),
    METRICS_ATOMIC_COUNTER(metrics_t, invalidations, "invalidations_total", NULL,
                           "Keys removed by invalidation (by key or pattern)."),
};
static const metrics_table_t metrics_table = METRICS_TABLE(metrics_rows);

void metrics_render_prometheus(metrics_t *m, sbuf_t *out)
{
    metrics_render_one(out, &metrics_table, m);

    metrics_prom_header(out, "errors_total", "counter", "Requests that failed, by type.");
    for (int e = 0; e < METRICS_ERR_COUNT; e++) {
        char l[64];
        snprintf(l, sizeof l, "type=\"%s\"", metrics_err_names[e]);
        metrics_prom_uint(out, "errors_total", l, metrics_read(&m->errors[e]));
    }

    metrics_prom_header(out, "http_requests_total", "counter", "HTTP responses sent, by status code.");
    for (int s = 0; s < 500; s++) {
        uint64_t v = metrics_read(&m->http_status[s]);
        if (!v) continue;
        char l[32];
        snprintf(l, sizeof l, "code=\"%d\"", s + 100);
        metrics_prom_uint(out, "http_requests_total", l, v);
    }

    metrics_prom_header(out, "cache_latency_seconds", "histogram", "Time to answer a request, by operation.");
    for (int op = 0; op < METRICS_OP_COUNT; op++) {
        metrics_histogram_t *h = &m->latency[op];
        uint64_t cum = 0;
        char l[96];
        for (int i = 0; i <= METRICS_BUCKETS; i++) {
            cum += metrics_read(&h->buckets[i]);
            if (i < METRICS_BUCKETS)
                snprintf(l, sizeof l, "operation=\"%s\",le=\"%g\"", metrics_op_names[op], metrics_bounds[i]);
            else
                snprintf(l, sizeof l, "operation=\"%s\",le=\"+Inf\"", metrics_op_names[op]);
            metrics_prom_uint(out, "cache_latency_seconds_bucket", l, cum);
        }
        snprintf(l, sizeof l, "operation=\"%s\"", metrics_op_names[op]);
        metrics_prom_value(out, "cache_latency_seconds_sum", l, (double)metrics_read(&h->sum_ns) / 1e9);
        metrics_prom_uint(out, "cache_latency_seconds_count", l, cum);
    }
}
