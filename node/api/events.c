#include "node/api/events.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct events_item {
    uint64_t seq;
    char type[EVENTS_TYPE_MAX];
    char *data;
    size_t len;
    bool relay;
} events_item_t;

struct events {
    events_config_t cfg;
    pthread_mutex_t lock;
    events_item_t *ring;          /* max_events slots */
    size_t head, count, bytes;
    uint64_t seq;
    struct {
        void (*wake)(void *ctx);
        void *ctx;
    } subs[EVENTS_SUBSCRIBERS];
    events_stats_t stats;
};

#define EVENTS_COUNTER(F, name, help) METRICS_ATOMIC_COUNTER(events_stats_t, F, name, NULL, help)
static const metrics_desc_t events_metrics_rows[] = {
    EVENTS_COUNTER(published, "events_published_total", "Events published to /api/events."),
    EVENTS_COUNTER(relayed, "events_relayed_total", "Events of this node sent to the other members' feeds."),
    EVENTS_COUNTER(relay_failed, "events_relay_failed_total",
                   "Events a member did not take (down, or too far behind): its feed misses them."),
    EVENTS_COUNTER(received, "events_received_total", "Events other members relayed to this node's feed."),
    EVENTS_COUNTER(redis_published, "events_redis_published_total",
                   "Invalidation events published on --events-channel."),
    EVENTS_COUNTER(redis_failed, "events_redis_failed_total",
                   "Invalidation events --events-channel could not publish (Redis down): applications missed them."),
    EVENTS_COUNTER(dropped, "events_dropped_total",
                   "Events pushed out of the resume buffer by newer ones (a client resuming from before them "
                   "is told of the gap)."),
    METRICS_ATOMIC_GAUGE(events_stats_t, kept, "events_buffered", NULL, "Events kept for resuming (at most 4096)."),
    METRICS_ATOMIC_GAUGE(events_stats_t, bytes, "events_buffered_bytes", NULL,
                         "Bytes of event data kept for resuming (at most 4 MiB)."),
};
const metrics_table_t events_metrics_table = METRICS_TABLE(events_metrics_rows);

events_t *events_new(const events_config_t *cfg)
{
    events_t *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->cfg = *cfg;
    if (!e->cfg.max_events) e->cfg.max_events = 4096;
    if (!e->cfg.max_bytes) e->cfg.max_bytes = 4u << 20;
    e->ring = calloc(e->cfg.max_events, sizeof *e->ring);
    if (!e->ring) {
        free(e);
        return NULL;
    }
    pthread_mutex_init(&e->lock, NULL);
    return e;
}

void events_free(events_t *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->count; i++) free(e->ring[(e->head + i) % e->cfg.max_events].data);
    free(e->ring);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* Under the lock. */
static void events_drop_oldest(events_t *e)
{
    events_item_t *it = &e->ring[e->head];
    e->bytes -= it->len;
    free(it->data);
    it->data = NULL;
    e->head = (e->head + 1) % e->cfg.max_events;
    e->count--;
    atomic_fetch_add_explicit(&e->stats.dropped, 1, memory_order_relaxed);
}

uint64_t events_publish(events_t *e, const char *type, const char *data, size_t len, bool relay)
{
    char *copy = malloc(len + 1);
    if (!copy) return 0;
    memcpy(copy, data, len);
    copy[len] = '\0';
    pthread_mutex_lock(&e->lock);
    while (e->count && (e->count == e->cfg.max_events || e->bytes + len > e->cfg.max_bytes)) events_drop_oldest(e);
    events_item_t *it = &e->ring[(e->head + e->count) % e->cfg.max_events];
    it->seq = ++e->seq;
    snprintf(it->type, sizeof it->type, "%s", type);
    it->data = copy;
    it->len = len;
    it->relay = relay;
    e->count++;
    e->bytes += len;
    uint64_t seq = it->seq;
    atomic_store_explicit(&e->stats.kept, (int64_t)e->count, memory_order_relaxed);
    atomic_store_explicit(&e->stats.bytes, (int64_t)e->bytes, memory_order_relaxed);
    for (int i = 0; i < EVENTS_SUBSCRIBERS; i++)
        if (e->subs[i].wake) e->subs[i].wake(e->subs[i].ctx);
    pthread_mutex_unlock(&e->lock);
    atomic_fetch_add_explicit(&e->stats.published, 1, memory_order_relaxed);
    return seq;
}

int events_subscribe(events_t *e, void (*wake)(void *ctx), void *ctx)
{
    int slot = -1;
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < EVENTS_SUBSCRIBERS && slot < 0; i++)
        if (!e->subs[i].wake) {
            e->subs[i].wake = wake;
            e->subs[i].ctx = ctx;
            slot = i;
        }
    pthread_mutex_unlock(&e->lock);
    return slot;
}

void events_unsubscribe(events_t *e, int slot)
{
    if (slot < 0 || slot >= EVENTS_SUBSCRIBERS) return;
    pthread_mutex_lock(&e->lock);
    e->subs[slot].wake = NULL;
    e->subs[slot].ctx = NULL;
    pthread_mutex_unlock(&e->lock);
}

uint64_t events_read(events_t *e, uint64_t after, size_t max, events_fn fn, void *ctx, bool *gap)
{
    *gap = false;
    events_item_t *copies = calloc(max ? max : 1, sizeof *copies);
    if (!copies) return after;
    size_t n = 0;
    pthread_mutex_lock(&e->lock);
    uint64_t oldest = e->count ? e->ring[e->head].seq : e->seq + 1;
    if (after + 1 < oldest && after < e->seq) *gap = true;
    uint64_t from = after + 1 < oldest ? oldest : after + 1;
    for (uint64_t s = from; s <= e->seq && n < max; s++) {
        const events_item_t *it = &e->ring[(e->head + (size_t)(s - oldest)) % e->cfg.max_events];
        copies[n] = *it;
        copies[n].data = malloc(it->len + 1);
        if (!copies[n].data) break;
        memcpy(copies[n].data, it->data, it->len + 1);
        n++;
    }
    pthread_mutex_unlock(&e->lock);
    uint64_t last = after;
    for (size_t i = 0; i < n; i++) {
        fn(copies[i].seq, copies[i].type, copies[i].data, copies[i].len, copies[i].relay, ctx);
        last = copies[i].seq;
        free(copies[i].data);
    }
    free(copies);
    return last;
}

uint64_t events_last(events_t *e)
{
    pthread_mutex_lock(&e->lock);
    uint64_t s = e->seq;
    pthread_mutex_unlock(&e->lock);
    return s;
}

int64_t events_run(const events_t *e)
{
    return e->cfg.run;
}

events_stats_t *events_stats(events_t *e)
{
    return &e->stats;
}

bool events_parse_id(const events_t *e, const char *s, size_t len, uint64_t *seq)
{
    char buf[48];
    if (len == 0 || len >= sizeof buf) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *dash = strchr(buf, '-'), *end;
    if (!dash) return false;
    *dash = '\0';
    long long run = strtoll(buf, &end, 10);
    if (*end || end == buf) return false;
    unsigned long long n = strtoull(dash + 1, &end, 10);
    if (*end || end == dash + 1) return false;
    if (run != e->cfg.run) return false;
    *seq = n;
    return true;
}
