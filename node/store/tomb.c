#include "node/store/tomb.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/glob.h"
#include "cluster/hlc.h"
#include "cluster/ring.h"

#define TOMB_PROBE 8
#define TOMB_FLOOR_BITS 10
#define TOMB_FLOOR_RANGES (1u << TOMB_FLOOR_BITS)

typedef struct tomb_slot {
    uint64_t hash;
    uint64_t version;
    int64_t expires;   /* 0: empty */
} tomb_slot_t;

typedef struct tomb_pattern {
    uint64_t version;
    int64_t expires;   /* 0: empty */
    size_t len;
    char bytes[LIMITS_KEY_MAX];
} tomb_pattern_t;

/* What is left of tombstones that gave way before their time: the newest
 * version among them, until the last of them would have expired. */
typedef struct tomb_floor {
    uint64_t version;
    int64_t expires;
} tomb_floor_t;

struct tomb {
    pthread_mutex_t lock;
    tomb_slot_t *slots;
    size_t mask;
    int64_t ttl_ms;
    uint8_t key[crypto_shorthash_KEYBYTES];
    atomic_uint_fast64_t refused;
    tomb_pattern_t *patterns;        /* TOMB_PATTERNS */
    /* Pattern slots not empty (live, or expired and not cleared yet): read
     * without the lock by every fill, so fills skip the lock and the
     * matching while there are none. Changed under the lock only. */
    atomic_size_t npatterns;
    atomic_uint_fast64_t pattern_evictions;
    atomic_uint_fast64_t evictions;  /* live key tombstones that gave way */
    tomb_floor_t floors[TOMB_FLOOR_RANGES]; /* by the top bits of the ring hash */
    tomb_floor_t floor_all;          /* from pattern tombstones that gave way */
    atomic_uint_fast64_t floor_refused;
};

tomb_t *tomb_new(size_t slots, int64_t ttl_ms)
{
    size_t n = 16;
    while (n < slots) n *= 2;
    tomb_t *t = calloc(1, sizeof *t);
    if (t) t->slots = calloc(n, sizeof *t->slots);
    if (t) t->patterns = calloc(TOMB_PATTERNS, sizeof *t->patterns);
    if (!t || !t->slots || !t->patterns) {
        if (t) free(t->slots);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->mask = n - 1;
    t->ttl_ms = ttl_ms;
    randombytes_buf(t->key, sizeof t->key);
    atomic_init(&t->refused, 0);
    atomic_init(&t->npatterns, 0);
    atomic_init(&t->pattern_evictions, 0);
    atomic_init(&t->evictions, 0);
    atomic_init(&t->floor_refused, 0);
    return t;
}

void tomb_free(tomb_t *t)
{
    if (!t) return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t->patterns);
    free(t);
}

uint64_t tomb_key_hash(const void *key, size_t klen)
{
    uint64_t h = ring_key_hash(key, klen);
    return h ? h : 1; /* 0 never names a key */
}

/* Where a hash's probe starts: keyed, so keys crafted to share a ring
 * hash prefix cannot crowd one probe window and push a victim's tombstone
 * out. */
static size_t tomb_home(const tomb_t *t, uint64_t h)
{
    uint8_t in[8], out[crypto_shorthash_BYTES];
    for (int i = 0; i < 8; i++) in[i] = (uint8_t)(h >> (8 * i));
    crypto_shorthash(out, in, sizeof in, t->key);
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | out[i];
    return (size_t)x;
}

/* Under the lock: a tombstone that gives way before its time leaves its
 * version behind in a floor, so what it refused stays refused, with its
 * neighbours in the range, until it would have expired. */
static void tomb_floor_raise(tomb_floor_t *f, uint64_t version, int64_t expires, int64_t now_ms)
{
    if (f->expires <= now_ms) *f = (tomb_floor_t){0};
    if (version > f->version) f->version = version;
    if (expires > f->expires) f->expires = expires;
}

void tomb_add(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms)
{
    tomb_add_hash(t, tomb_key_hash(key, klen), version, now_ms + t->ttl_ms, now_ms);
}

void tomb_add_hash(tomb_t *t, uint64_t h, uint64_t version, int64_t expires_ms, int64_t now_ms)
{
    if (expires_ms <= now_ms) return;
    if (expires_ms > now_ms + t->ttl_ms) expires_ms = now_ms + t->ttl_ms;
    size_t home = tomb_home(t, h);
    pthread_mutex_lock(&t->lock);
    tomb_slot_t *victim = NULL;
    for (size_t i = 0; i < TOMB_PROBE; i++) {
        tomb_slot_t *s = &t->slots[(home + i) & t->mask];
        if (s->expires > now_ms && s->hash == h) {
            if (version > s->version) s->version = version;
            if (expires_ms > s->expires) s->expires = expires_ms;
            pthread_mutex_unlock(&t->lock);
            return;
        }
        if (s->expires <= now_ms) {
            if (!victim || victim->expires > now_ms) victim = s;
        } else if (!victim || (victim->expires > now_ms && s->expires < victim->expires)) {
            victim = s;
        }
    }
    if (victim->expires > now_ms) {
        atomic_fetch_add(&t->evictions, 1);
        tomb_floor_raise(&t->floors[victim->hash >> (64 - TOMB_FLOOR_BITS)], victim->version, victim->expires, now_ms);
    }
    victim->hash = h;
    victim->version = version;
    victim->expires = expires_ms;
    pthread_mutex_unlock(&t->lock);
}

int64_t tomb_expiry_of(const tomb_t *t, uint64_t version)
{
    return hlc_physical_ms(version) + t->ttl_ms;
}

bool tomb_add_pattern(tomb_t *t, const char *pattern, size_t plen, uint64_t version, int64_t now_ms)
{
    return tomb_add_pattern_until(t, pattern, plen, version, now_ms + t->ttl_ms, now_ms);
}

bool tomb_add_pattern_until(tomb_t *t, const char *pattern, size_t plen, uint64_t version, int64_t expires_ms,
                            int64_t now_ms)
{
    if (!pattern || plen == 0 || plen > LIMITS_KEY_MAX) return false;
    if (expires_ms > now_ms + t->ttl_ms) expires_ms = now_ms + t->ttl_ms;
    if (expires_ms <= now_ms) return true;
    pthread_mutex_lock(&t->lock);
    tomb_pattern_t *victim = NULL;
    for (size_t i = 0; i < TOMB_PATTERNS; i++) {
        tomb_pattern_t *p = &t->patterns[i];
        if (p->expires > now_ms && p->len == plen && memcmp(p->bytes, pattern, plen) == 0) {
            if (version > p->version) p->version = version;
            if (expires_ms > p->expires) p->expires = expires_ms;
            pthread_mutex_unlock(&t->lock);
            return true;
        }
        /* Empty or expired first; else the one closest to expiry. */
        if (!victim || (victim->expires > now_ms && p->expires < victim->expires)) victim = p;
    }
    if (victim->expires > now_ms) {
        atomic_fetch_add(&t->pattern_evictions, 1);
        tomb_floor_raise(&t->floor_all, victim->version, victim->expires, now_ms);
    }
    if (victim->expires == 0) atomic_fetch_add(&t->npatterns, 1);
    victim->version = version;
    victim->expires = expires_ms;
    victim->len = plen;
    memcpy(victim->bytes, pattern, plen);
    pthread_mutex_unlock(&t->lock);
    return true;
}

long tomb_copy_patterns(tomb_t *t, int64_t now_ms, tomb_pattern_item_t *items, size_t cap)
{
    long n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < TOMB_PATTERNS && (size_t)n < cap; i++) {
        const tomb_pattern_t *p = &t->patterns[i];
        if (p->expires <= now_ms) continue;
        items[n].version = p->version;
        items[n].expires = p->expires;
        items[n].len = p->len;
        memcpy(items[n].bytes, p->bytes, p->len);
        n++;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* Under the lock: whether a live pattern tombstone newer than version
 * matches key; clears the expired ones on the way, so that the lock-free
 * check in tomb_blocks finds none again once they are all gone. */
static bool tomb_pattern_blocks(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms)
{
    bool blocks = false;
    for (size_t i = 0; i < TOMB_PATTERNS; i++) {
        tomb_pattern_t *p = &t->patterns[i];
        if (p->expires == 0) continue;
        if (p->expires <= now_ms) {
            p->expires = 0;
            atomic_fetch_sub(&t->npatterns, 1);
            continue;
        }
        if (!blocks && version < p->version && glob_match(p->bytes, p->len, key, klen)) blocks = true;
    }
    return blocks;
}

/* Under the lock: the live slot of hash h, or NULL. */
static const tomb_slot_t *tomb_find(const tomb_t *t, uint64_t h, int64_t now_ms)
{
    size_t home = tomb_home(t, h);
    for (size_t i = 0; i < TOMB_PROBE; i++) {
        const tomb_slot_t *s = &t->slots[(home + i) & t->mask];
        if (s->expires > now_ms && s->hash == h) return s;
    }
    return NULL;
}

static bool tomb_floor_covers(const tomb_floor_t *f, uint64_t version, int64_t now_ms)
{
    return f->expires > now_ms && version <= f->version;
}

tomb_verdict_t tomb_check(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms)
{
    uint64_t h = tomb_key_hash(key, klen);
    tomb_verdict_t v = TOMB_CLEAR;
    pthread_mutex_lock(&t->lock);
    const tomb_slot_t *s = tomb_find(t, h, now_ms);
    if (s && version < s->version) v = TOMB_DELETED;
    if (!v && atomic_load(&t->npatterns) != 0 && tomb_pattern_blocks(t, key, klen, version, now_ms)) v = TOMB_DELETED;
    if (!v && (tomb_floor_covers(&t->floors[h >> (64 - TOMB_FLOOR_BITS)], version, now_ms) ||
               tomb_floor_covers(&t->floor_all, version, now_ms)))
        v = TOMB_IN_DOUBT;
    pthread_mutex_unlock(&t->lock);
    if (v) atomic_fetch_add(&t->refused, 1);
    if (v == TOMB_IN_DOUBT) atomic_fetch_add(&t->floor_refused, 1);
    return v;
}

bool tomb_blocks(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms)
{
    return tomb_check(t, key, klen, version, now_ms) != TOMB_CLEAR;
}

uint64_t tomb_version_hash(tomb_t *t, uint64_t h, int64_t now_ms)
{
    pthread_mutex_lock(&t->lock);
    const tomb_slot_t *s = tomb_find(t, h, now_ms);
    uint64_t version = s ? s->version : 0;
    pthread_mutex_unlock(&t->lock);
    return version;
}

void tomb_scan(tomb_t *t, int64_t now_ms, tomb_scan_fn fn, void *ctx)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i <= t->mask; i++) {
        const tomb_slot_t *s = &t->slots[i];
        if (s->expires > now_ms) fn(s->hash, s->version, ctx);
    }
    pthread_mutex_unlock(&t->lock);
}

static int tomb_item_cmp(const void *a, const void *b)
{
    uint64_t x = ((const tomb_item_t *)a)->hash, y = ((const tomb_item_t *)b)->hash;
    return x < y ? -1 : x > y;
}

long tomb_copy(tomb_t *t, int64_t now_ms, tomb_item_t **items, size_t *cap)
{
    /* Room for the whole table, so one pass under the lock always fits. */
    size_t room = t->mask + 1;
    if (*cap < room) {
        tomb_item_t *p = realloc(*items, room * sizeof *p);
        if (!p) return -1;
        *items = p;
        *cap = room;
    }
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i <= t->mask; i++) {
        const tomb_slot_t *s = &t->slots[i];
        if (s->expires > now_ms) (*items)[n++] = (tomb_item_t){s->hash, s->version};
    }
    pthread_mutex_unlock(&t->lock);
    qsort(*items, n, sizeof **items, tomb_item_cmp);
    return (long)n;
}

uint64_t tomb_version(tomb_t *t, const void *key, size_t klen, int64_t now_ms)
{
    uint64_t h = tomb_key_hash(key, klen);
    pthread_mutex_lock(&t->lock);
    const tomb_slot_t *s = tomb_find(t, h, now_ms);
    uint64_t version = s ? s->version : 0;
    /* A pattern that matches counts as the key's own delete. */
    for (size_t i = 0; atomic_load(&t->npatterns) != 0 && i < TOMB_PATTERNS; i++) {
        const tomb_pattern_t *p = &t->patterns[i];
        if (p->expires > now_ms && p->version > version && glob_match(p->bytes, p->len, key, klen))
            version = p->version;
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

size_t tomb_pattern_count(tomb_t *t, int64_t now_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < TOMB_PATTERNS; i++) n += t->patterns[i].expires > now_ms;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t tomb_floor_count(tomb_t *t, int64_t now_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < TOMB_FLOOR_RANGES; i++) n += t->floors[i].expires > now_ms;
    n += t->floor_all.expires > now_ms ? TOMB_FLOOR_RANGES - n : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

uint64_t tomb_floor_refused(tomb_t *t)
{
    return atomic_load(&t->floor_refused);
}

uint64_t tomb_evictions(tomb_t *t)
{
    return atomic_load(&t->evictions);
}

uint64_t tomb_pattern_evictions(tomb_t *t)
{
    return atomic_load(&t->pattern_evictions);
}

static const metrics_desc_t tomb_metrics_rows[] = {
    METRICS_ROW(tomb_metrics_t, refused, METRICS_COUNTER, METRICS_U64, "tombstone_refusals_total", NULL,
                "Fills (L2, handoff, previous owners, replica writes) refused because the key was deleted or invalidated since."),
    METRICS_ROW(tomb_metrics_t, count, METRICS_GAUGE, METRICS_U64, "tombstones", NULL,
                "Recent deletes and key invalidations remembered (--tombstone-grace; bound: 65536)."),
    METRICS_ROW(tomb_metrics_t, evictions, METRICS_COUNTER, METRICS_U64, "tombstone_evictions_total", NULL,
                "Key tombstones that gave way before their time because the table was full; their versions "
                "stay as a floor over their key range (tombstone_floor_ranges)."),
    METRICS_ROW(tomb_metrics_t, floors, METRICS_GAUGE, METRICS_U64, "tombstone_floor_ranges", NULL,
                "Key ranges (of 1024) where fills not newer than an evicted tombstone are refused until it "
                "would have expired."),
    METRICS_ROW(tomb_metrics_t, floor_refused, METRICS_COUNTER, METRICS_U64, "tombstone_floor_refusals_total", NULL,
                "Fills refused by a floor alone (the key may not have been deleted: an L2 or previous owner's "
                "value is served but not kept, a handoff entry stays with its sender)."),
    METRICS_ROW(tomb_metrics_t, patterns, METRICS_GAUGE, METRICS_U64, "tombstone_patterns", NULL,
                "Recent pattern invalidations remembered (--tombstone-grace; bound: 256)."),
    METRICS_ROW(tomb_metrics_t, pattern_evictions, METRICS_COUNTER, METRICS_U64, "tombstone_pattern_evictions_total",
                NULL, "Pattern tombstones that gave way before their time because the table was full; their "
                      "versions stay as a floor over every key range."),
};
const metrics_table_t tomb_metrics_table = METRICS_TABLE(tomb_metrics_rows);

void tomb_get_metrics(tomb_t *t, int64_t now_ms, tomb_metrics_t *out)
{
    out->count = t ? tomb_count(t, now_ms) : 0;
    out->refused = t ? tomb_refused(t) : 0;
    out->patterns = t ? tomb_pattern_count(t, now_ms) : 0;
    out->pattern_evictions = t ? tomb_pattern_evictions(t) : 0;
    out->evictions = t ? tomb_evictions(t) : 0;
    out->floors = t ? tomb_floor_count(t, now_ms) : 0;
    out->floor_refused = t ? tomb_floor_refused(t) : 0;
}
