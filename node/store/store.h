/* store: the L1 cache, an in-memory key/value map with TTL, an entry-count
 * and a byte limit, and LRU or LFU eviction.
 *
 * Threads: every function is safe to call from any thread at the same time
 * (DESIGN.md section 3). The map is split into shards, each with its own
 * mutex; a key lives in the shard chosen by its hash. Limits are split evenly
 * between shards, so the global limits always hold; the shard count is lowered
 * for small limits so that every shard keeps a useful share.
 *
 * Hashing: SipHash-2-4 (libsodium crypto_shorthash) with a random key drawn
 * per store, so crafted keys cannot pile into one bucket.
 *
 * Growth: each shard's table rehashes incrementally into a table twice the
 * size, a few buckets per operation and a bounded slice per
 * store_maintain() call, so no single call pays for the whole move.
 *
 * Eviction:
 *   LRU: an exact recency list per shard; the least recently used entry goes.
 *   LFU: Redis's approximated LFU: an 8-bit logarithmic (Morris) counter per
 *        entry, incremented with probability 1/((counter-5)*log_factor+1),
 *        decremented by one per `lfu_decay_ms` elapsed since the entry's last
 *        access (so a once-hot key forgets its popularity), and eviction of
 *        the entry with the lowest decayed counter among a random sample of
 *        `STORE_LFU_SAMPLES` entries of the shard.
 *
 * Memory: an entry is one allocation (header, key, content type, value).
 * Accounted bytes are the allocation's usable size plus the entry's share of
 * the bucket array, so `max_bytes` bounds what the process really holds.
 *
 * Expiry: an expired entry is never returned. store_maintain() also reclaims
 * expired entries actively, scanning buckets incrementally, so memory comes
 * back without traffic.
 *
 * Ownership: the store owns its entries. store_get() hands out a reference
 * (the entry stays valid and immutable until store_entry_release(), even if
 * the key is deleted or replaced meanwhile). Entries are never modified after
 * insertion except for eviction metadata, which is private.
 */
#ifndef DCACHE_STORE_H
#define DCACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/limits.h"
#include "node/metrics/metrics.h"

#define STORE_LFU_SAMPLES 16

typedef enum { STORE_EVICT_LRU = 0, STORE_EVICT_LFU = 1 } store_policy_t;

/* Milliseconds of wall-clock (Unix epoch) time; injected so tests run TTLs in
 * virtual time. */
typedef int64_t (*store_clock_fn)(void *ctx);

typedef struct store_config {
    size_t max_entries;      /* 0 = unlimited */
    size_t max_bytes;        /* 0 = unlimited */
    size_t max_value_bytes;  /* larger values are refused with STORE_TOO_LARGE; 0 = no cap of
                              * its own (a value must still fit a shard's byte share and
                              * 4 GiB) */
    store_policy_t policy;
    unsigned shards;         /* upper bound, rounded down to a power of two; 0 = 16 */
    unsigned lfu_log_factor; /* 0 = 10, as in Redis */
    int64_t lfu_decay_ms;    /* 0 = 60000, as in Redis's lfu-decay-time 1 */
    store_clock_fn clock;    /* NULL = CLOCK_REALTIME */
    void *clock_ctx;
    uint64_t seed;           /* 0 = random; fixed seeds make LFU sampling reproducible in tests
                              * (a fixed seed also fixes the SipHash key: tests only) */
} store_config_t;

typedef enum {
    STORE_OK = 0,
    STORE_NOT_FOUND = 1,
    STORE_BAD_KEY = -1,     /* empty or longer than LIMITS_KEY_MAX; also any bad argument:
                             * NULL store/args/key/out, NULL value with value_len > 0,
                             * negative ttl_ms */
    STORE_TOO_LARGE = -2,   /* value larger than max_value_bytes, or entry larger than a shard's byte share;
                             * also content_type_len > LIMITS_CTYPE_MAX */
    STORE_NO_MEMORY = -3,
    STORE_STALE = -4,       /* store_put_if_newer: the stored version is newer */
} store_status_t;

typedef struct store store_t;
/* Opaque here; laid out in store_table.h, which repeats this typedef. */
typedef struct store_entry store_entry_t;

typedef struct store_stats {
    uint64_t entries;
    uint64_t bytes;           /* accounted bytes: the sum of store_entry_size() of the entries
                               * in the table plus buckets * sizeof(void *) */
    uint64_t evictions;       /* removed to honour a limit */
    uint64_t expirations;     /* removed because their TTL passed (on access or by store_maintain) */
    uint64_t rehash_steps;    /* buckets moved by incremental rehashing */
    uint64_t buckets;         /* total bucket slots across shards */
    uint64_t shards;
    uint64_t max_entries, max_bytes; /* the configured limits; 0 = unlimited */
} store_stats_t;

/* The store's series in /metrics, over a store_stats_t. */
extern const metrics_table_t store_metrics_table;

/* Returns NULL on allocation failure. The config is copied. */
store_t *store_new(const store_config_t *cfg);
/* Frees every entry not still referenced; referenced entries are freed by
 * their last store_entry_release(). No other call may run concurrently. */
void store_free(store_t *s);

/* Looks `key` up; on STORE_OK *out holds a new reference. Counts as an access
 * for eviction. Expired entries are removed and reported as STORE_NOT_FOUND. */
store_status_t store_get(store_t *s, const void *key, size_t key_len, store_entry_t **out);

/* Like store_get without touching recency or frequency (for listings). */
store_status_t store_peek(store_t *s, const void *key, size_t key_len, store_entry_t **out);

/* Like store_peek, but also finds an entry that expired less than its
 * stale_ms ago (store_entry_expires_at tells which it is). Only for
 * serving a stale value when the fresh one cannot be had. */
store_status_t store_get_stale(store_t *s, const void *key, size_t key_len, store_entry_t **out);

typedef struct store_put_args {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const char *content_type;   /* NULL or "" = none stored */
    size_t content_type_len;    /* at most LIMITS_CTYPE_MAX */
    int64_t ttl_ms;             /* 0 = no expiry; > 0 expires at now + ttl_ms */
    uint64_t version;           /* opaque to the store; compared by store_put_if_newer */
    int64_t stale_ms;           /* 0 = none; else, once expired, the entry is kept this long
                                 * (at most UINT32_MAX ms) where only store_get_stale sees it:
                                 * a value an origin may fall back on when it fails (RFC 5861
                                 * stale-if-error). It still counts against the limits. */
} store_put_args_t;

/* Inserts or replaces; evicts as needed to honour the limits. *replaced (may
 * be NULL) tells whether a live entry was overwritten. */
store_status_t store_put(store_t *s, const store_put_args_t *a, bool *replaced);

/* Like store_put, but refuses with STORE_STALE when a live entry with a
 * version greater than a->version is present. */
store_status_t store_put_if_newer(store_t *s, const store_put_args_t *a, bool *replaced);

/* Removes `key`; returns true if a live entry was removed. */
bool store_delete(store_t *s, const void *key, size_t key_len);

typedef enum {
    STORE_DELETE_ANY = 0,
    STORE_DELETE_IF_VERSION,  /* only the entry with exactly this version (a handoff drop) */
    STORE_DELETE_IF_OLDER,    /* only an entry not newer than this version (a versioned delete) */
} store_delete_cond_t;
/* Like store_delete when the live entry meets the condition, checked under
 * the shard's lock; true if a live entry was removed. */
bool store_delete_versioned(store_t *s, const void *key, size_t key_len, store_delete_cond_t cond, uint64_t version);

/* Removes every live key matching `pattern` (Redis glob, cluster/glob.h).
 * Returns the number removed. Runs shard by shard, holding one lock at a
 * time. */
size_t store_delete_matching(store_t *s, const char *pattern, size_t pattern_len);

/* Cursor iteration over live entries (Redis SCAN semantics: an entry present
 * for the whole iteration is reported at least once, even across rehashing;
 * one may be reported twice). Start with cursor 0; the iteration is over when
 * the returned cursor is 0. `fn` runs with the shard lock held: it must not
 * call back into the store. Entries whose key does not match `pattern`
 * (NULL = all) are skipped. Stops after the bucket where at least `limit`
 * entries were reported, so a call may report slightly more than `limit`
 * when buckets hold several entries; it may report fewer (even none) with a
 * non-zero cursor when matches are sparse (at most 10 * limit buckets are
 * examined per call, as in Redis). limit 0 means 10. The cursor holds the
 * shard index in its high bits; any value is safe to pass. */
typedef void (*store_scan_fn)(const store_entry_t *e, void *ctx);
uint64_t store_scan(store_t *s, uint64_t cursor, const char *pattern, size_t pattern_len,
                    size_t limit, store_scan_fn fn, void *ctx);

/* Background work: reclaims expired entries, advances rehashing and starts
 * shrinking tables that are less than 10% full, spending
 * at most about `budget_us` microseconds. Call it periodically (every 100 ms)
 * from one thread. Returns the number of entries expired. */
size_t store_maintain(store_t *s, uint64_t budget_us);

void store_get_stats(store_t *s, store_stats_t *out);
size_t store_entry_count(store_t *s);

/* Current time on the store's clock (ms since the Unix epoch). */
int64_t store_now_ms(const store_t *s);

/* Entry accessors: valid while the caller holds a reference (or inside a
 * store_scan callback). */
const char *store_entry_key(const store_entry_t *e, size_t *len);
const char *store_entry_value(const store_entry_t *e, size_t *len);
/* Returns NULL with *len = 0 when no content type was stored. */
const char *store_entry_content_type(const store_entry_t *e, size_t *len);
uint64_t store_entry_version(const store_entry_t *e);
/* Absolute expiry in ms since the epoch, 0 = never. */
int64_t store_entry_expires_at(const store_entry_t *e);
/* Accounted bytes of this entry: malloc_usable_size() plus malloc's 8-byte
 * chunk header, i.e. what the allocation really costs. Bucket arrays are
 * charged to the shard, not to entries (see store_stats_t.bytes). */
size_t store_entry_size(const store_entry_t *e);
void store_entry_release(store_entry_t *e);

#endif
