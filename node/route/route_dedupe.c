#include "node/route/route_dedupe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_DEDUPE_STRIPES 16
#define ROUTE_DEDUPE_PROBE 8
#define ROUTE_DEDUPE_STRIPE_SLOTS (ROUTE_DEDUPE_SLOTS / ROUTE_DEDUPE_STRIPES)

typedef struct route_dedupe_slot {
    uint8_t rid[PEER_ID_LEN];
    int64_t noted_ms;          /* 0 = free */
    route_dedupe_result_t result;
} route_dedupe_slot_t;

typedef struct route_dedupe_stripe {
    pthread_mutex_t lock;
    route_dedupe_slot_t slots[ROUTE_DEDUPE_STRIPE_SLOTS];
} route_dedupe_stripe_t;

struct route_dedupe {
    route_dedupe_stats_t stats;
    route_dedupe_stripe_t stripes[ROUTE_DEDUPE_STRIPES];
};

route_dedupe_t *route_dedupe_new(void)
{
    route_dedupe_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    for (int i = 0; i < ROUTE_DEDUPE_STRIPES; i++) pthread_mutex_init(&d->stripes[i].lock, NULL);
    return d;
}

void route_dedupe_free(route_dedupe_t *d)
{
    if (!d) return;
    for (int i = 0; i < ROUTE_DEDUPE_STRIPES; i++) pthread_mutex_destroy(&d->stripes[i].lock);
    free(d);
}

static const metrics_desc_t route_dedupe_metrics_rows[] = {
    METRICS_ATOMIC_COUNTER(route_dedupe_stats_t, noted, "route_write_ids_noted_total", NULL,
                           "Forwarded writes noted by request id, as primary or replica (kept 60 s, 65536 at most)."),
    METRICS_ATOMIC_COUNTER(route_dedupe_stats_t, hits, "route_write_retries_recognised_total", NULL,
                           "Forwarded writes tried again on an owner that had carried them out: answered with "
                           "the version they got instead of stamped again."),
    METRICS_ATOMIC_COUNTER(route_dedupe_stats_t, evictions, "route_write_id_evictions_total", NULL,
                           "Request ids forgotten before their 60 s to make room."),
};
const metrics_table_t route_dedupe_metrics_table = METRICS_TABLE(route_dedupe_metrics_rows);

route_dedupe_stats_t *route_dedupe_stats(route_dedupe_t *d)
{
    return &d->stats;
}

bool route_dedupe_rid_set(const uint8_t rid[PEER_ID_LEN])
{
    for (int i = 0; i < PEER_ID_LEN; i++)
        if (rid[i]) return true;
    return false;
}

/* Ids are random: their first bytes place them. */
static route_dedupe_stripe_t *route_dedupe_home(route_dedupe_t *d, const uint8_t *rid, size_t *slot)
{
    uint32_t h;
    memcpy(&h, rid, sizeof h);
    *slot = (h >> 4) % ROUTE_DEDUPE_STRIPE_SLOTS;
    return &d->stripes[h % ROUTE_DEDUPE_STRIPES];
}

static bool route_dedupe_live(const route_dedupe_slot_t *s, int64_t now_ms)
{
    return s->noted_ms && now_ms - s->noted_ms < ROUTE_DEDUPE_WINDOW_MS;
}

bool route_dedupe_find(route_dedupe_t *d, const uint8_t rid[PEER_ID_LEN], int64_t now_ms, route_dedupe_result_t *out)
{
    if (!d || !route_dedupe_rid_set(rid)) return false;
    size_t home;
    route_dedupe_stripe_t *st = route_dedupe_home(d, rid, &home);
    bool found = false;
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < ROUTE_DEDUPE_PROBE && !found; i++) {
        route_dedupe_slot_t *s = &st->slots[(home + i) % ROUTE_DEDUPE_STRIPE_SLOTS];
        if (route_dedupe_live(s, now_ms) && memcmp(s->rid, rid, PEER_ID_LEN) == 0) {
            *out = s->result;
            found = true;
        }
    }
    pthread_mutex_unlock(&st->lock);
    if (found) atomic_fetch_add_explicit(&d->stats.hits, 1, memory_order_relaxed);
    return found;
}

void route_dedupe_note(route_dedupe_t *d, const uint8_t rid[PEER_ID_LEN], const route_dedupe_result_t *r,
                       int64_t now_ms)
{
    if (!d || !route_dedupe_rid_set(rid)) return;
    size_t home;
    route_dedupe_stripe_t *st = route_dedupe_home(d, rid, &home);
    pthread_mutex_lock(&st->lock);
    route_dedupe_slot_t *victim = NULL;
    for (size_t i = 0; i < ROUTE_DEDUPE_PROBE; i++) {
        route_dedupe_slot_t *s = &st->slots[(home + i) % ROUTE_DEDUPE_STRIPE_SLOTS];
        if (route_dedupe_live(s, now_ms) && memcmp(s->rid, rid, PEER_ID_LEN) == 0) {
            if (r->version > s->result.version) s->result = *r;
            pthread_mutex_unlock(&st->lock);
            return;
        }
        if (!route_dedupe_live(s, now_ms)) {
            if (!victim || route_dedupe_live(victim, now_ms)) victim = s;
        } else if (!victim || (route_dedupe_live(victim, now_ms) && s->noted_ms < victim->noted_ms)) {
            victim = s;
        }
    }
    if (route_dedupe_live(victim, now_ms)) atomic_fetch_add_explicit(&d->stats.evictions, 1, memory_order_relaxed);
    memcpy(victim->rid, rid, PEER_ID_LEN);
    victim->noted_ms = now_ms ? now_ms : 1;
    victim->result = *r;
    pthread_mutex_unlock(&st->lock);
    atomic_fetch_add_explicit(&d->stats.noted, 1, memory_order_relaxed);
}
