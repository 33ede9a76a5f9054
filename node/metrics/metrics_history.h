/* metrics_history: a fixed ring of periodic metric samples covering the
 * last 24 hours, served downsampled for a window (1m, 5m, 1h, 24h).
 *
 * Bounded: the ring holds ceil(24 h / interval) samples (at most 86400),
 * allocated once. Threads: the main loop records; any thread may query
 * (a mutex guards the ring; both sides hold it briefly).
 */
#ifndef DCACHE_METRICS_HISTORY_H
#define DCACHE_METRICS_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "node/core/sbuf.h"

typedef struct metrics_sample {
    int64_t t_ms;            /* wall clock of the sample */
    /* Cumulative counters (deltas are computed when served). */
    uint64_t hits, misses, requests, errors, evictions, expirations, invalidations;
    /* Gauges. */
    uint64_t entries, bytes, rss_bytes, connections;
    double get_p99_s;        /* p99 of GET latency since the previous sample */
} metrics_sample_t;

typedef struct metrics_history metrics_history_t;

/* Returns NULL on allocation failure. Owned by the caller. */
metrics_history_t *metrics_history_new(uint64_t interval_ms);
void metrics_history_free(metrics_history_t *h);
void metrics_history_record(metrics_history_t *h, const metrics_sample_t *s);
size_t metrics_history_capacity(const metrics_history_t *h);
size_t metrics_history_count(metrics_history_t *h);

/* Parses "1m", "5m", "1h", "24h" into ms; 0 when unknown. */
int64_t metrics_history_window_ms(const char *window);

/* Appends JSON {"window":..,"interval_ms":..,"samples":[...]} for samples
 * newer than now_ms - window_ms, merged into at most `max_points` points. */
void metrics_history_render(metrics_history_t *h, const char *window_name, int64_t window_ms, int64_t now_ms,
                            size_t max_points, sbuf_t *out);

#endif
