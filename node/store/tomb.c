#include "node/store/tomb.h"

#include <sodium.h>
#include <stdlib.h>

#define TOMB_PROBE 8

typedef struct tomb_slot {
    uint64_t hash;
    uint64_t version;
    int64_t expires;   /* 0: empty */
} tomb_slot_t;

struct tomb {
    pthread_mutex_t lock;
    tomb_slot_t *slots;
    size_t mask;
    int64_t ttl_ms;
    uint8_t key[crypto_shorthash_KEYBYTES];
    atomic_uint_fast64_t refused;
};

tomb_t *tomb_new(size_t slots, int64_t ttl_ms)
{
    size_t n = 16;
    while (n < slots) n *= 2;
    tomb_t *t = calloc(1, sizeof *t);
    if (t) t->slots = calloc(n, sizeof *t->slots);
    if (!t || !t->slots) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->mask = n - 1;
    t->ttl_ms = ttl_ms;
    randombytes_buf(t->key, sizeof t->key);
    atomic_init(&t->refused, 0);
    return t;
}

void tomb_free(tomb_t *t)
{
    if (!t) return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

static uint64_t tomb_hash(const tomb_t *t, const void *key, size_t klen)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key, klen, t->key);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | out[i];
    return h ? h : 1; /* 0 never names a key */
}

void tomb_add(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms)
{
    uint64_t h = tomb_hash(t, key, klen);
    pthread_mutex_lock(&t->lock);
    tomb_slot_t *victim = NULL;
    for (size_t i = 0; i < TOMB_PROBE; i++) {
        tomb_slot_t *s = &t->slots[(h + i) & t->mask];
        if (s->expires > now_ms && s->hash == h) {
            if (version > s->version) s->version = version;
            s->expires = now_ms + t->ttl_ms;
            pthread_mutex_unlock(&t->lock);
            return;
        }
        if (s->expires <= now_ms) {
            if (!victim || victim->expires > now_ms) victim = s;
        } else if (!victim || (victim->expires > now_ms && s->expires < victim->expires)) {
            victim = s;
        }
    }
    victim->hash = h;
    victim->version = version;
    victim->expires = now_ms + t->ttl_ms;
    pthread_mutex_unlock(&t->lock);
}

bool tomb_blocks(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms)
{
    uint64_t h = tomb_hash(t, key, klen);
    bool blocks = false;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < TOMB_PROBE; i++) {
        tomb_slot_t *s = &t->slots[(h + i) & t->mask];
        if (s->expires > now_ms && s->hash == h) {
            blocks = version < s->version;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (blocks) atomic_fetch_add(&t->refused, 1);
    return blocks;
}

uint64_t tomb_version(tomb_t *t, const void *key, size_t klen, int64_t now_ms)
{
    uint64_t h = tomb_hash(t, key, klen), version = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < TOMB_PROBE; i++) {
        tomb_slot_t *s = &t->slots[(h + i) & t->mask];
        if (s->expires > now_ms && s->hash == h) {
            version = s->version;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return version;
}

size_t tomb_count(tomb_t *t, int64_t now_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i <= t->mask; i++) n += t->slots[i].expires > now_ms;
    pthread_mutex_unlock(&t->lock);
    return n;
}

uint64_t tomb_refused(tomb_t *t)
{
    return atomic_load(&t->refused);
}

static const metrics_desc_t tomb_metrics_rows[] = {
    METRICS_ROW(tomb_metrics_t, refused, METRICS_COUNTER, METRICS_U64, "tombstone_refusals_total", NULL,
                "Fills (L2, handoff, previous owners, replica writes) refused because the key was deleted since."),
    METRICS_ROW(tomb_metrics_t, count, METRICS_GAUGE, METRICS_U64, "tombstones", NULL,
                "Recent deletes remembered (60 s; bound: 65536)."),
};
const metrics_table_t tomb_metrics_table = METRICS_TABLE(tomb_metrics_rows);

void tomb_get_metrics(tomb_t *t, int64_t now_ms, tomb_metrics_t *out)
{
    out->count = t ? tomb_count(t, now_ms) : 0;
    out->refused = t ? tomb_refused(t) : 0;
}
