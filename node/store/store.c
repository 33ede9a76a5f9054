/* store: the L1 cache (contract in store.h). Each shard is a store_table
 * plus eviction state behind one mutex; this file holds the policy (limits,
 * LRU/LFU, TTL, references) and store_table.c the hashing mechanics. */
#include "node/store/store.h"

#include <malloc.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/glob.h"
#include "node/store/store_table.h"

#define STORE_SHARDS_DEFAULT 16u
#define STORE_SHARDS_MAX 256u
/* Below these shares per shard, the even split of the limits would make
 * eviction inside one shard far from what a single global list would do. */
#define STORE_SHARD_MIN_ENTRIES 256u
#define STORE_SHARD_MIN_BYTES ((size_t)1 << 20)
#define STORE_LFU_INIT 5 /* Redis's LFU_INIT_VAL: new keys are not evicted first */
#define STORE_LFU_LOG_FACTOR 10u
#define STORE_LFU_DECAY_MS 60000
/* Rehash work per operation: writes do more than reads so a resize always
 * finishes before the new array itself fills up. */
#define STORE_REHASH_READ 1u
#define STORE_REHASH_WRITE 4u
#define STORE_MAINT_REHASH_SLICE 100u
#define STORE_EXPIRE_SAMPLE 20u   /* entries examined per expiry slice */
#define STORE_EXPIRE_STEPS 200u   /* bucket steps per expiry slice */
#define STORE_DELETE_STEPS 64u    /* bucket steps per lock hold in delete_matching */
#define STORE_SCAN_DEFAULT 10u
/* glibc keeps an 8-byte size word in front of every chunk that
 * malloc_usable_size() does not report, but the process still pays for it. */
#define STORE_MALLOC_OVERHEAD sizeof(size_t)

typedef struct store_shard {
    pthread_mutex_t mu;
    store_table_t table;
    store_entry_t *lru_head; /* most recently used (LRU policy only) */
    store_entry_t *lru_tail;
    size_t entry_bytes;      /* sum of store_entry_size() of linked entries */
    size_t max_entries;      /* this shard's share, 0 = unlimited */
    size_t max_bytes;
    uint64_t rng;
    uint64_t expire_cursor;  /* store_table_scan cursor of active expiry */
    uint64_t evictions;
    uint64_t expirations;
} __attribute__((aligned(64))) store_shard_t; /* no false sharing of locks */

struct store {
    store_config_t cfg;        /* defaults resolved */
    unsigned nshards;
    unsigned shard_bits;
    _Atomic unsigned maint_next;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    store_shard_t *shards;     /* owned, nshards of them */
};

/* ---- small helpers ---- */

static bool store_key_ok(const void *key, size_t len)
{
    return key && len >= 1 && len <= LIMITS_KEY_MAX;
}

static bool store_expired(const store_entry_t *e, int64_t now)
{
    return e->expires_at != 0 && now >= e->expires_at;
}

/* Expired, and past the window store_get_stale may still serve it in. */
static bool store_gone(const store_entry_t *e, int64_t now)
{
    return e->expires_at != 0 && now - (int64_t)e->stale_ms >= e->expires_at;
}

static store_shard_t *store_shard_of(store_t *s, uint64_t hash)
{
    /* High bits pick the shard, low bits the bucket: the two never overlap. */
    return &s->shards[s->shard_bits ? hash >> (64 - s->shard_bits) : 0];
}

static size_t store_shard_bytes(const store_shard_t *sh)
{
    return sh->entry_bytes + store_table_bucket_bytes(&sh->table);
}

static uint64_t store_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t store_now_ms(const store_t *s)
{
    if (s && s->cfg.clock) return s->cfg.clock(s->cfg.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void store_rehash_step(store_shard_t *sh, unsigned n)
{
    if (store_table_busy(&sh->table)) store_table_rehash(&sh->table, n);
}

/* ---- entries ---- */

size_t store_entry_size(const store_entry_t *e)
{
    return e ? malloc_usable_size((void *)e) + STORE_MALLOC_OVERHEAD : 0;
}

void store_entry_release(store_entry_t *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) free(e);
}

const char *store_entry_key(const store_entry_t *e, size_t *len)
{
    if (len) *len = e ? e->key_len : 0;
    return e ? e->data : NULL;
}

const char *store_entry_content_type(const store_entry_t *e, size_t *len)
{
    bool has = e && e->ctype_len;
    if (len) *len = has ? e->ctype_len : 0;
    return has ? e->data + e->key_len : NULL;
}

const char *store_entry_value(const store_entry_t *e, size_t *len)
{
    if (len) *len = e ? e->value_len : 0;
    return e ? e->data + e->key_len + e->ctype_len : NULL;
}

uint64_t store_entry_version(const store_entry_t *e)
{
    return e ? e->version : 0;
}

int64_t store_entry_expires_at(const store_entry_t *e)
{
    return e ? e->expires_at : 0;
}

static store_entry_t *store_entry_create(const store_t *s, const store_put_args_t *a, size_t clen,
                                         int64_t now)
{
    store_entry_t *e = malloc(STORE_ENTRY_HDR_SIZE + a->key_len + clen + a->value_len);
    if (!e) return NULL;
    memset(e, 0, STORE_ENTRY_HDR_SIZE);
    if (a->ttl_ms > 0)
        e->expires_at = (now > 0 && a->ttl_ms > INT64_MAX - now) ? INT64_MAX : now + a->ttl_ms;
    e->version = a->version;
    e->stale_ms = a->stale_ms <= 0 ? 0 : a->stale_ms > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)a->stale_ms;
    e->value_len = (uint32_t)a->value_len;
    atomic_init(&e->refs, 1); /* the table's reference */
    e->key_len = (uint16_t)a->key_len;
    e->ctype_len = (uint8_t)clen;
    memcpy(e->data, a->key, a->key_len);
    if (clen) memcpy(e->data + a->key_len, a->content_type, clen);
    if (a->value_len) memcpy(e->data + a->key_len + clen, a->value, a->value_len);
    if (s->cfg.policy == STORE_EVICT_LFU) {
        e->ev.lfu.counter = STORE_LFU_INIT;
        e->ev.lfu.access_ms = now;
    }
    return e;
}

/* ---- eviction metadata ---- */

static void store_lru_unlink(store_shard_t *sh, store_entry_t *e)
{
    store_entry_t *prev = e->ev.lru.prev, *next = e->ev.lru.next;
    if (prev) prev->ev.lru.next = next;
    else sh->lru_head = next;
    if (next) next->ev.lru.prev = prev;
    else sh->lru_tail = prev;
    e->ev.lru.prev = e->ev.lru.next = NULL;
}

static void store_lru_push(store_shard_t *sh, store_entry_t *e)
{
    e->ev.lru.prev = NULL;
    e->ev.lru.next = sh->lru_head;
    if (sh->lru_head) sh->lru_head->ev.lru.prev = e;
    else sh->lru_tail = e;
    sh->lru_head = e;
}

static uint8_t store_lfu_decayed(const store_t *s, const store_entry_t *e, int64_t now)
{
    uint8_t c = e->ev.lfu.counter;
    int64_t elapsed = now - e->ev.lfu.access_ms;
    if (elapsed <= 0) return c;
    int64_t periods = elapsed / s->cfg.lfu_decay_ms;
    return periods >= c ? 0 : (uint8_t)(c - periods);
}

/* Redis's LFULogIncr: the busier the key, the less likely one more hit
 * counts, so 8 bits cover a million accesses with log_factor 10. */
static uint8_t store_lfu_incr(const store_t *s, store_shard_t *sh, uint8_t c)
{
    if (c == 255) return c;
    uint64_t base = c > STORE_LFU_INIT ? (uint64_t)(c - STORE_LFU_INIT) : 0;
    uint64_t range = base * s->cfg.lfu_log_factor + 1;
    return store_table_rand(&sh->rng) % range == 0 ? (uint8_t)(c + 1) : c;
}

static void store_touch(store_t *s, store_shard_t *sh, store_entry_t *e, int64_t now)
{
    if (s->cfg.policy == STORE_EVICT_LRU) {
        if (sh->lru_head == e) return;
        store_lru_unlink(sh, e);
        store_lru_push(sh, e);
        return;
    }
    e->ev.lfu.counter = store_lfu_incr(s, sh, store_lfu_decayed(s, e, now));
    e->ev.lfu.access_ms = now;
}

/* Drops everything the shard holds for an entry the table has unlinked (or
 * is about to unlink, in a scan visit) and gives up the table's reference. */
static void store_forget(store_t *s, store_shard_t *sh, store_entry_t *e)
{
    if (s->cfg.policy == STORE_EVICT_LRU) store_lru_unlink(sh, e);
    sh->entry_bytes -= store_entry_size(e);
    store_entry_release(e);
}

static void store_remove(store_t *s, store_shard_t *sh, store_entry_t *e)
{
    store_table_remove(&sh->table, e);
    store_forget(s, sh, e);
}

/* ---- limits ---- */

static bool store_over_limits(const store_shard_t *sh)
{
    return (sh->max_entries && store_table_count(&sh->table) > sh->max_entries) ||
           (sh->max_bytes && store_shard_bytes(sh) > sh->max_bytes);
}

static bool store_find_any_visit(store_entry_t *e, void *ctx)
{
    store_entry_t **slot = ctx;
    if (!slot[0] && e != slot[1]) slot[0] = e;
    return false;
}

static store_entry_t *store_lfu_victim(store_t *s, store_shard_t *sh, store_entry_t *keep, int64_t now)
{
    store_entry_t *cand[STORE_LFU_SAMPLES], *best = NULL;
    uint8_t best_c = 0;
    if (store_table_count(&sh->table) <= 1) return NULL; /* only `keep` */
    for (int tries = 0; tries < 4 && !best; tries++) {
        size_t n = store_table_sample(&sh->table, &sh->rng, cand, STORE_LFU_SAMPLES);
        for (size_t i = 0; i < n; i++) {
            if (cand[i] == keep) continue;
            uint8_t c = store_lfu_decayed(s, cand[i], now);
            if (!best || c < best_c ||
                (c == best_c && cand[i]->ev.lfu.access_ms < best->ev.lfu.access_ms)) {
                best = cand[i];
                best_c = c;
            }
        }
    }
    if (best) return best;
    /* Sampling can keep missing in a nearly empty, oversized table. */
    store_entry_t *slot[2] = {NULL, keep};
    uint64_t cur = 0;
    do cur = store_table_scan(&sh->table, cur, store_find_any_visit, slot);
    while (cur != 0 && !slot[0]);
    return slot[0];
}

/* Evicts one entry other than `keep`; false when there is none. */
static bool store_evict_one(store_t *s, store_shard_t *sh, store_entry_t *keep, int64_t now)
{
    store_entry_t *victim;
    if (s->cfg.policy == STORE_EVICT_LRU) {
        victim = sh->lru_tail;
        if (victim == keep) victim = victim->ev.lru.prev;
    } else {
        victim = store_lfu_victim(s, sh, keep, now);
    }
    if (!victim) return false;
    store_remove(s, sh, victim);
    sh->evictions++;
    return true;
}

/* ---- lookups and writes ---- */

static store_status_t store_lookup(store_t *s, const void *key, size_t len, store_entry_t **out,
                                   bool touch, bool stale)
{
    if (out) *out = NULL;
    if (!s || !out || !store_key_ok(key, len)) return STORE_BAD_KEY;
    int64_t now = store_now_ms(s);
    uint64_t h = store_table_hash(s->hkey, key, len);
    store_shard_t *sh = store_shard_of(s, h);
    store_status_t st = STORE_NOT_FOUND;
    int which;
    pthread_mutex_lock(&sh->mu);
    store_rehash_step(sh, STORE_REHASH_READ);
    store_entry_t **link = store_table_find(&sh->table, h, key, len, &which);
    if (link) {
        store_entry_t *e = *link;
        if (store_gone(e, now)) {
            store_table_unlink(&sh->table, link, which);
            store_forget(s, sh, e);
            sh->expirations++;
        } else if (store_expired(e, now) && !stale) {
            /* kept for store_get_stale until its window closes */
        } else {
            if (touch) store_touch(s, sh, e, now);
            atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
            *out = e;
            st = STORE_OK;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return st;
}

store_status_t store_get(store_t *s, const void *key, size_t key_len, store_entry_t **out)
{
    return store_lookup(s, key, key_len, out, true, false);
}

store_status_t store_peek(store_t *s, const void *key, size_t key_len, store_entry_t **out)
{
    return store_lookup(s, key, key_len, out, false, false);
}

store_status_t store_get_stale(store_t *s, const void *key, size_t key_len, store_entry_t **out)
{
    return store_lookup(s, key, key_len, out, false, true);
}

static store_status_t store_put_check(const store_t *s, const store_put_args_t *a, size_t *clen)
{
    if (!s || !a || !store_key_ok(a->key, a->key_len)) return STORE_BAD_KEY;
    if (a->ttl_ms < 0 || (a->value_len && !a->value)) return STORE_BAD_KEY;
    *clen = a->content_type ? a->content_type_len : 0;
    if (*clen > LIMITS_CTYPE_MAX) return STORE_TOO_LARGE;
    if (a->value_len > UINT32_MAX) return STORE_TOO_LARGE;
    if (s->cfg.max_value_bytes && a->value_len > s->cfg.max_value_bytes) return STORE_TOO_LARGE;
    return STORE_OK;
}

/* Puts `e` where `old` was (same bucket position), carrying LFU history
 * over as Redis does on overwrite so a rewrite does not reset popularity. */
static void store_replace_locked(store_t *s, store_shard_t *sh, store_entry_t **link,
                                 store_entry_t *old, store_entry_t *e, int64_t now)
{
    store_table_replace(link, e);
    if (s->cfg.policy == STORE_EVICT_LRU) {
        store_lru_unlink(sh, old);
        store_lru_push(sh, e);
    } else {
        e->ev.lfu.counter = old->ev.lfu.counter;
        e->ev.lfu.access_ms = old->ev.lfu.access_ms;
        store_touch(s, sh, e, now);
    }
    sh->entry_bytes -= store_entry_size(old);
    store_entry_release(old);
}

static store_status_t store_put_common(store_t *s, const store_put_args_t *a, bool *replaced,
                                       bool if_newer)
{
    if (replaced) *replaced = false;
    size_t clen = 0;
    store_status_t st = store_put_check(s, a, &clen);
    if (st != STORE_OK) return st;

    int64_t now = store_now_ms(s);
    store_entry_t *e = store_entry_create(s, a, clen, now); /* copy outside the lock */
    if (!e) return STORE_NO_MEMORY;
    uint64_t h = store_table_hash(s->hkey, a->key, a->key_len);
    store_shard_t *sh = store_shard_of(s, h);
    size_t esize = store_entry_size(e);
    if (sh->max_bytes &&
        esize + STORE_TABLE_MIN_SIZE * sizeof(store_entry_t *) > sh->max_bytes) {
        free(e);
        return STORE_TOO_LARGE;
    }

    int which;
    pthread_mutex_lock(&sh->mu);
    store_rehash_step(sh, STORE_REHASH_WRITE);
    store_entry_t **link = store_table_find(&sh->table, h, a->key, a->key_len, &which);
    store_entry_t *old = link ? *link : NULL;
    if (old && store_expired(old, now)) {
        store_table_unlink(&sh->table, link, which);
        store_forget(s, sh, old);
        sh->expirations++;
        old = NULL;
    }
    if (old && if_newer && old->version > a->version) {
        pthread_mutex_unlock(&sh->mu);
        free(e);
        return STORE_STALE;
    }
    if (old) {
        store_replace_locked(s, sh, link, old, e, now);
        if (replaced) *replaced = true;
    } else {
        store_table_insert(&sh->table, h, e);
        if (s->cfg.policy == STORE_EVICT_LRU) store_lru_push(sh, e);
    }
    sh->entry_bytes += esize;
    while (store_over_limits(sh) && store_evict_one(s, sh, e, now)) {
    }
    if (store_over_limits(sh)) {
        /* Only the new entry (and bucket arrays) left and still too big. */
        store_remove(s, sh, e);
        st = STORE_TOO_LARGE;
    }
    pthread_mutex_unlock(&sh->mu);
    return st;
}

store_status_t store_put(store_t *s, const store_put_args_t *a, bool *replaced)
{
    return store_put_common(s, a, replaced, false);
}

store_status_t store_put_if_newer(store_t *s, const store_put_args_t *a, bool *replaced)
{
    return store_put_common(s, a, replaced, true);
}

bool store_delete(store_t *s, const void *key, size_t key_len)
{
    return store_delete_versioned(s, key, key_len, STORE_DELETE_ANY, 0);
}

bool store_delete_versioned(store_t *s, const void *key, size_t key_len, store_delete_cond_t cond, uint64_t version)
{
    if (!s || !store_key_ok(key, key_len)) return false;
    int64_t now = store_now_ms(s);
    uint64_t h = store_table_hash(s->hkey, key, key_len);
    store_shard_t *sh = store_shard_of(s, h);
    bool live = false;
    int which;
    pthread_mutex_lock(&sh->mu);
    store_rehash_step(sh, STORE_REHASH_WRITE);
    store_entry_t **link = store_table_find(&sh->table, h, key, key_len, &which);
    if (link) {
        store_entry_t *e = *link;
        live = !store_expired(e, now);
        /* Decided under the shard lock, so no write slips in between. */
        bool match = cond == STORE_DELETE_ANY || (cond == STORE_DELETE_IF_VERSION && e->version == version) ||
                     (cond == STORE_DELETE_IF_OLDER && e->version <= version);
        if (!live || match) {
            if (!live) sh->expirations++;
            store_table_unlink(&sh->table, link, which);
            store_forget(s, sh, e);
        }
        live = live && match;
    }
    pthread_mutex_unlock(&sh->mu);
    return live;
}

/* ---- scanning ---- */

typedef struct store_visit {
    store_t *s;
    store_shard_t *sh;
    int64_t now;
    const char *pattern; /* NULL = every key */
    size_t pattern_len;
    store_scan_fn fn;
    void *ctx;
    size_t seen;         /* entries examined */
    size_t hits;         /* entries reported or removed as live */
    size_t expired;
} store_visit_t;

static bool store_visit_matches(const store_visit_t *v, const store_entry_t *e)
{
    return !v->pattern || glob_match(v->pattern, v->pattern_len, e->data, e->key_len);
}

static bool store_scan_visit(store_entry_t *e, void *ctx)
{
    store_visit_t *v = ctx;
    if (store_expired(e, v->now) || !store_visit_matches(v, e)) return false;
    v->fn(e, v->ctx);
    v->hits++;
    return false;
}

/* Removes matching entries; expired ones go too but count as expirations. */
static bool store_delete_visit(store_entry_t *e, void *ctx)
{
    store_visit_t *v = ctx;
    if (!store_visit_matches(v, e)) return false;
    if (store_expired(e, v->now)) {
        v->sh->expirations++;
        v->expired++;
    } else {
        v->hits++;
    }
    store_forget(v->s, v->sh, e);
    return true;
}

static bool store_expire_visit(store_entry_t *e, void *ctx)
{
    store_visit_t *v = ctx;
    v->seen++;
    if (!store_gone(e, v->now)) return false;
    v->sh->expirations++;
    v->expired++;
    store_forget(v->s, v->sh, e);
    return true;
}

uint64_t store_scan(store_t *s, uint64_t cursor, const char *pattern, size_t pattern_len,
                    size_t limit, store_scan_fn fn, void *ctx)
{
    if (!s || !fn) return 0;
    if (limit == 0) limit = STORE_SCAN_DEFAULT;
    /* Like Redis's SCAN, bound the buckets examined so sparse matches
     * cannot turn one call into a walk of the whole table. */
    size_t max_steps = limit > SIZE_MAX / 10 ? SIZE_MAX : limit * 10;
    unsigned sb = s->shard_bits;
    unsigned idx = sb ? (unsigned)(cursor >> (64 - sb)) : 0;
    uint64_t tmask = sb ? (~0ull >> sb) : ~0ull;
    uint64_t tc = cursor & tmask;
    store_visit_t v = {.s = s, .now = store_now_ms(s), .pattern = pattern,
                       .pattern_len = pattern_len, .fn = fn, .ctx = ctx};
    size_t steps = 0;
    for (;;) {
        store_shard_t *sh = &s->shards[idx];
        pthread_mutex_lock(&sh->mu);
        do {
            tc = store_table_scan(&sh->table, tc, store_scan_visit, &v) & tmask;
            steps++;
        } while (tc != 0 && v.hits < limit && steps < max_steps);
        pthread_mutex_unlock(&sh->mu);
        if (tc == 0 && ++idx == s->nshards) return 0;
        if (v.hits >= limit || steps >= max_steps)
            return sb ? ((uint64_t)idx << (64 - sb)) | tc : tc;
    }
}

size_t store_delete_matching(store_t *s, const char *pattern, size_t pattern_len)
{
    if (!s || !pattern) return 0;
    if (glob_is_literal(pattern, pattern_len))
        return store_delete(s, pattern, pattern_len) ? 1 : 0;
    store_visit_t v = {.s = s, .now = store_now_ms(s), .pattern = pattern,
                       .pattern_len = pattern_len};
    for (unsigned i = 0; i < s->nshards; i++) {
        store_shard_t *sh = &s->shards[i];
        v.sh = sh;
        uint64_t tc = 0;
        /* Short lock holds: a million-key shard must not stall its readers. */
        do {
            pthread_mutex_lock(&sh->mu);
            unsigned k = 0;
            do tc = store_table_scan(&sh->table, tc, store_delete_visit, &v);
            while (tc != 0 && ++k < STORE_DELETE_STEPS);
            pthread_mutex_unlock(&sh->mu);
        } while (tc != 0);
    }
    return v.hits;
}

/* ---- maintenance ---- */

/* Moves rehash work forward in short lock holds; false if out of time. */
static bool store_maintain_rehash(store_shard_t *sh, uint64_t deadline)
{
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        bool more = store_table_rehash(&sh->table, STORE_MAINT_REHASH_SLICE);
        if (!more) more = store_table_maybe_shrink(&sh->table);
        pthread_mutex_unlock(&sh->mu);
        if (!more) return true;
        if (store_mono_us() >= deadline) return false;
    }
}

/* Redis's adaptive active expiry: examine a small slice, and keep going only
 * while a good share (> 10%) of what was examined had expired. */
static bool store_maintain_expire(store_t *s, store_shard_t *sh, int64_t now, uint64_t deadline,
                                  size_t *expired)
{
    for (;;) {
        store_visit_t v = {.s = s, .sh = sh, .now = now};
        pthread_mutex_lock(&sh->mu);
        unsigned steps = 0;
        do sh->expire_cursor = store_table_scan(&sh->table, sh->expire_cursor, store_expire_visit, &v);
        while (sh->expire_cursor != 0 && v.seen < STORE_EXPIRE_SAMPLE && ++steps < STORE_EXPIRE_STEPS);
        pthread_mutex_unlock(&sh->mu);
        *expired += v.expired;
        if (store_mono_us() >= deadline) return false;
        /* Terminates: a slice that does not stop here removed something. */
        if (v.expired * 10 <= v.seen) return true;
    }
}

size_t store_maintain(store_t *s, uint64_t budget_us)
{
    if (!s) return 0;
    uint64_t start_us = store_mono_us();
    uint64_t deadline = budget_us > UINT64_MAX - start_us ? UINT64_MAX : start_us + budget_us;
    int64_t now = store_now_ms(s);
    size_t expired = 0;
    /* Rotate the starting shard so a small budget still reaches them all. */
    unsigned start = atomic_fetch_add_explicit(&s->maint_next, 1, memory_order_relaxed);
    for (unsigned i = 0; i < s->nshards; i++) {
        store_shard_t *sh = &s->shards[(start + i) % s->nshards];
        if (!store_maintain_rehash(sh, deadline)) break;
        if (!store_maintain_expire(s, sh, now, deadline, &expired)) break;
    }
    return expired;
}

/* ---- lifetime and stats ---- */

static unsigned store_pick_shards(const store_config_t *c)
{
    unsigned want = c->shards ? c->shards : STORE_SHARDS_DEFAULT;
    if (want > STORE_SHARDS_MAX) want = STORE_SHARDS_MAX;
    unsigned n = 1;
    while (n * 2 <= want) n *= 2;
    size_t min_bytes = STORE_SHARD_MIN_BYTES;
    if (c->max_value_bytes && c->max_value_bytes <= SIZE_MAX / 4 && c->max_value_bytes * 4 > min_bytes)
        min_bytes = c->max_value_bytes * 4;
    while (n > 1 && ((c->max_entries && c->max_entries / n < STORE_SHARD_MIN_ENTRIES) ||
                     (c->max_bytes && c->max_bytes / n < min_bytes)))
        n /= 2;
    return n;
}

store_t *store_new(const store_config_t *cfg)
{
    if (sodium_init() < 0) return NULL;
    store_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (cfg) s->cfg = *cfg;
    if (s->cfg.policy != STORE_EVICT_LFU) s->cfg.policy = STORE_EVICT_LRU;
    if (!s->cfg.lfu_log_factor) s->cfg.lfu_log_factor = STORE_LFU_LOG_FACTOR;
    if (s->cfg.lfu_decay_ms <= 0) s->cfg.lfu_decay_ms = STORE_LFU_DECAY_MS;
    s->nshards = store_pick_shards(&s->cfg);
    while ((1u << s->shard_bits) < s->nshards) s->shard_bits++;

    uint64_t seed = s->cfg.seed;
    if (seed) {
        /* Bucket placement decides LFU samples, so a fixed seed fixes the
         * hash key too; only tests should set one. */
        uint64_t st = seed;
        for (size_t i = 0; i < sizeof s->hkey; i += 8) {
            uint64_t r = store_table_rand(&st);
            memcpy(s->hkey + i, &r, sizeof s->hkey - i < 8 ? sizeof s->hkey - i : 8);
        }
    } else {
        randombytes_buf(s->hkey, sizeof s->hkey);
        randombytes_buf(&seed, sizeof seed);
    }

    s->shards = aligned_alloc(64, s->nshards * sizeof(store_shard_t));
    if (!s->shards) {
        free(s);
        return NULL;
    }
    memset(s->shards, 0, s->nshards * sizeof(store_shard_t));
    for (unsigned i = 0; i < s->nshards; i++) {
        store_shard_t *sh = &s->shards[i];
        if (!store_table_init(&sh->table, s->hkey)) {
            s->nshards = i; /* free only what was built */
            store_free(s);
            return NULL;
        }
        pthread_mutex_init(&sh->mu, NULL);
        sh->max_entries = s->cfg.max_entries / s->nshards;
        sh->max_bytes = s->cfg.max_bytes / s->nshards;
        sh->rng = seed + i * 0x9e3779b97f4a7c15ull;
    }
    return s;
}

void store_free(store_t *s)
{
    if (!s) return;
    for (unsigned i = 0; i < s->nshards; i++) {
        store_table_destroy(&s->shards[i].table, store_entry_release);
        pthread_mutex_destroy(&s->shards[i].mu);
    }
    free(s->shards);
    free(s);
}

#define STORE_ROW(F, kind, name, help) METRICS_ROW(store_stats_t, F, kind, METRICS_U64, name, NULL, help)
static const metrics_desc_t store_metrics_rows[] = {
    STORE_ROW(entries, METRICS_GAUGE, "cache_entries", "Entries in the L1 store."),
    STORE_ROW(bytes, METRICS_GAUGE, "cache_size_bytes", "Bytes held by the L1 store, per-entry overhead included."),
    STORE_ROW(max_entries, METRICS_GAUGE, "cache_max_entries", "Configured L1 entry limit (0: none)."),
    STORE_ROW(max_bytes, METRICS_GAUGE, "cache_max_bytes", "Configured L1 memory limit in bytes."),
    STORE_ROW(evictions, METRICS_COUNTER, "evictions_total", "Entries evicted to honour the L1 limits."),
    STORE_ROW(expirations, METRICS_COUNTER, "expirations_total", "Entries removed because their TTL passed."),
    STORE_ROW(buckets, METRICS_GAUGE, "cache_table_buckets", "Hash table bucket slots across L1 shards."),
    STORE_ROW(rehash_steps, METRICS_COUNTER, "cache_rehash_steps_total",
              "Buckets moved by incremental rehashing as the L1 tables grew."),
    STORE_ROW(shards, METRICS_GAUGE, "cache_shards", "L1 shards (one lock each)."),
};
const metrics_table_t store_metrics_table = METRICS_TABLE(store_metrics_rows);

void store_get_stats(store_t *s, store_stats_t *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!s) return;
    out->shards = s->nshards;
    out->max_entries = s->cfg.max_entries;
    out->max_bytes = s->cfg.max_bytes;
    for (unsigned i = 0; i < s->nshards; i++) {
        store_shard_t *sh = &s->shards[i];
        pthread_mutex_lock(&sh->mu);
        out->entries += store_table_count(&sh->table);
        out->bytes += store_shard_bytes(sh);
        out->evictions += sh->evictions;
        out->expirations += sh->expirations;
        out->rehash_steps += sh->table.moved;
        out->buckets += store_table_slots(&sh->table);
        pthread_mutex_unlock(&sh->mu);
    }
}

size_t store_entry_count(store_t *s)
{
    if (!s) return 0;
    size_t n = 0;
    for (unsigned i = 0; i < s->nshards; i++) {
        pthread_mutex_lock(&s->shards[i].mu);
        n += store_table_count(&s->shards[i].table);
        pthread_mutex_unlock(&s->shards[i].mu);
    }
    return n;
}
