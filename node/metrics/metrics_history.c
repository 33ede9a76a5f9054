#include "node/metrics/metrics_history.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct metrics_history {
    pthread_mutex_t lock;
    uint64_t interval_ms;
    size_t cap, head, count; /* head: next slot to write */
    metrics_sample_t *ring;
};

metrics_history_t *metrics_history_new(uint64_t interval_ms)
{
    if (interval_ms == 0) interval_ms = 5000;
    metrics_history_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    size_t cap = (size_t)((86400000ull + interval_ms - 1) / interval_ms);
    if (cap > 86400) cap = 86400;
    if (cap < 2) cap = 2;
    h->ring = calloc(cap, sizeof *h->ring);
    if (!h->ring) {
        free(h);
        return NULL;
    }
    h->cap = cap;
    h->interval_ms = interval_ms;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

void metrics_history_free(metrics_history_t *h)
{
    if (!h) return;
    pthread_mutex_destroy(&h->lock);
    free(h->ring);
    free(h);
}

size_t metrics_history_capacity(const metrics_history_t *h)
{
    return h->cap;
}

size_t metrics_history_count(metrics_history_t *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = h->count;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void metrics_history_record(metrics_history_t *h, const metrics_sample_t *s)
{
    pthread_mutex_lock(&h->lock);
    h->ring[h->head] = *s;
    h->head = (h->head + 1) % h->cap;
    if (h->count < h->cap) h->count++;
    pthread_mutex_unlock(&h->lock);
}

int64_t metrics_history_window_ms(const char *w)
{
    if (strcmp(w, "1m") == 0) return 60000;
    if (strcmp(w, "5m") == 0) return 300000;
    if (strcmp(w, "1h") == 0) return 3600000;
    if (strcmp(w, "24h") == 0) return 86400000;
    return 0;
}

static double metrics_rate(uint64_t a, uint64_t b, int64_t ms)
{
    return ms > 0 && b >= a ? (double)(b - a) * 1000.0 / (double)ms : 0;
}

void metrics_history_render(metrics_history_t *h, const char *window_name, int64_t window_ms, int64_t now_ms,
                            size_t max_points, sbuf_t *out)
{
    if (max_points == 0) max_points = 1;
    pthread_mutex_lock(&h->lock);
    /* Oldest sample inside the window, plus the one before it as the base
     * for the first delta. */
    size_t n = 0;
    while (n < h->count) {
        const metrics_sample_t *s = &h->ring[(h->head + h->cap - 1 - n) % h->cap];
        if (s->t_ms <= now_ms - window_ms) break;
        n++;
    }
    size_t group = (n + max_points - 1) / max_points;
    if (group == 0) group = 1;
    sbuf_printf(out, "{\"window\":\"%s\",\"interval_ms\":%llu,\"points\":[", window_name,
                (unsigned long long)(h->interval_ms * group));
    const metrics_sample_t *base = n < h->count ? &h->ring[(h->head + h->cap - 1 - n) % h->cap] : NULL;
    bool first = true;
    for (size_t i = 0; i < n; i += group) {
        size_t last = i + group - 1 < n ? i + group - 1 : n - 1;
        /* Index from oldest (n-1 back from head) to newest. */
        const metrics_sample_t *e = &h->ring[(h->head + h->cap - n + last) % h->cap];
        const metrics_sample_t *b = base ? base : &h->ring[(h->head + h->cap - n + i) % h->cap];
        double p99 = 0;
        for (size_t k = i; k <= last; k++) {
            const metrics_sample_t *s = &h->ring[(h->head + h->cap - n + k) % h->cap];
            if (s->get_p99_s > p99) p99 = s->get_p99_s;
        }
        int64_t span = e->t_ms - b->t_ms;
        uint64_t hits = e->hits - b->hits, misses = e->misses - b->misses;
        sbuf_printf(out,
                    "%s{\"t\":%lld,\"hits\":%llu,\"misses\":%llu,\"hit_rate\":%.4f,\"requests_per_sec\":%.3f,"
                    "\"errors\":%llu,\"evictions\":%llu,\"expirations\":%llu,\"invalidations\":%llu,"
                    "\"entries\":%llu,\"bytes\":%llu,\"rss_bytes\":%llu,\"connections\":%llu,\"get_p99_ms\":%.3f}",
                    first ? "" : ",", (long long)e->t_ms, (unsigned long long)hits, (unsigned long long)misses,
                    hits + misses ? (double)hits / (double)(hits + misses) : 0.0,
                    metrics_rate(b->requests, e->requests, span), (unsigned long long)(e->errors - b->errors),
                    (unsigned long long)(e->evictions - b->evictions),
                    (unsigned long long)(e->expirations - b->expirations),
                    (unsigned long long)(e->invalidations - b->invalidations), (unsigned long long)e->entries,
                    (unsigned long long)e->bytes, (unsigned long long)e->rss_bytes,
                    (unsigned long long)e->connections, p99 * 1000.0);
        first = false;
        base = e;
    }
    pthread_mutex_unlock(&h->lock);
    sbuf_puts(out, "]}");
}
