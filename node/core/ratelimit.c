#include "node/core/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct ratelimit_slot {
    uint64_t key;        /* 0 = free */
    double tokens;
    int64_t last_ms;     /* last refill, also "touched" for eviction */
} ratelimit_slot_t;

typedef struct ratelimit_stripe {
    pthread_mutex_t lock;
    ratelimit_slot_t slots[RATELIMIT_SLOTS];
} ratelimit_stripe_t;

struct ratelimit {
    double rps, burst;
    ratelimit_stats_t stats;
    ratelimit_stripe_t stripes[RATELIMIT_STRIPES];
};

ratelimit_t *ratelimit_new(double rps, double burst)
{
    if (!(rps > 0) || !(burst >= 1)) return NULL;
    ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->rps = rps;
    rl->burst = burst;
    for (int i = 0; i < RATELIMIT_STRIPES; i++) pthread_mutex_init(&rl->stripes[i].lock, NULL);
    return rl;
}

void ratelimit_free(ratelimit_t *rl)
{
    if (!rl) return;
    for (int i = 0; i < RATELIMIT_STRIPES; i++) pthread_mutex_destroy(&rl->stripes[i].lock);
    free(rl);
}

ratelimit_stats_t *ratelimit_stats(ratelimit_t *rl)
{
    return &rl->stats;
}

static uint8_t ratelimit_seed[crypto_shorthash_KEYBYTES];
static pthread_once_t ratelimit_seed_once = PTHREAD_ONCE_INIT;

static void ratelimit_seed_init(void)
{
    if (sodium_init() < 0) abort();
    randombytes_buf(ratelimit_seed, sizeof ratelimit_seed);
}

uint64_t ratelimit_key(const char *kind, const char *s, size_t len)
{
    /* Keyed per process so a client cannot pick names that share a slot
     * with someone else's on purpose. */
    pthread_once(&ratelimit_seed_once, ratelimit_seed_init);
    uint8_t buf[160];
    size_t klen = strlen(kind);
    if (klen > 16) klen = 16;
    if (len > sizeof buf - klen - 1) len = sizeof buf - klen - 1;
    memcpy(buf, kind, klen);
    buf[klen] = 0;
    memcpy(buf + klen + 1, s, len);
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, buf, klen + 1 + len, ratelimit_seed);
    uint64_t k;
    memcpy(&k, out, sizeof k);
    return k ? k : 1;
}

uint64_t ratelimit_take(ratelimit_t *rl, uint64_t key, int64_t now_ms)
{
    if (!key) key = 1;
    ratelimit_stripe_t *st = &rl->stripes[key % RATELIMIT_STRIPES];
    size_t home = (size_t)((key / RATELIMIT_STRIPES) % RATELIMIT_SLOTS);
    pthread_mutex_lock(&st->lock);
    ratelimit_slot_t *slot = NULL, *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < RATELIMIT_PROBE; i++) {
        ratelimit_slot_t *c = &st->slots[(home + i) % RATELIMIT_SLOTS];
        if (c->key == key) {
            slot = c;
            break;
        }
        if (!c->key) {
            if (!free_slot) free_slot = c;
        } else if (!oldest || c->last_ms < oldest->last_ms) {
            oldest = c;
        }
    }
    if (!slot) {
        if (free_slot) {
            slot = free_slot;
            atomic_fetch_add_explicit(&rl->stats.keys, 1, memory_order_relaxed);
        } else {
            slot = oldest;
            atomic_fetch_add_explicit(&rl->stats.evictions, 1, memory_order_relaxed);
        }
        slot->key = key;
        slot->tokens = rl->burst;
        slot->last_ms = now_ms;
    }
    if (now_ms > slot->last_ms) {
        slot->tokens += (double)(now_ms - slot->last_ms) * rl->rps / 1000.0;
        if (slot->tokens > rl->burst) slot->tokens = rl->burst;
        slot->last_ms = now_ms;
    }
    uint64_t wait_ms = 0;
    if (slot->tokens >= 1.0) {
        slot->tokens -= 1.0;
    } else {
        wait_ms = (uint64_t)ceil((1.0 - slot->tokens) * 1000.0 / rl->rps);
        if (wait_ms == 0) wait_ms = 1;
    }
    pthread_mutex_unlock(&st->lock);
    atomic_fetch_add_explicit(wait_ms ? &rl->stats.refused : &rl->stats.allowed, 1, memory_order_relaxed);
    return wait_ms;
}
