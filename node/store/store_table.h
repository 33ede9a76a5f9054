/* store_table: the private hash table behind one store shard (store.c).
 * Not thread-safe: the owning shard's mutex guards every call.
 *
 * It is Redis's dict reduced to what the store needs: chained buckets, two
 * bucket arrays while a resize is in progress, and an index that moves a few
 * buckets at a time from the old array to the new one, so a resize never
 * stops the shard for longer than one small step. Scanning uses Redis's
 * reverse-binary cursor, which stays correct across resizes.
 *
 * Ownership: the table owns its bucket arrays only. Entries are owned by the
 * store (it holds the table's reference to each); the table merely links them
 * through their `chain` field. The SipHash key is borrowed from the store and
 * must outlive the table.
 */
#ifndef DCACHE_STORE_TABLE_H
#define DCACHE_STORE_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The entry is laid out here, where the table links and compares entries;
 * store.h repeats this typedef (C11 allows it) so that the store's users see
 * the type but not its fields, and the table need not know the store. */
typedef struct store_entry store_entry_t;

/* One allocation per entry: this header, then key, content type and value
 * bytes back to back in `data`. Every byte here is paid once per cached key,
 * so the header is 51 bytes: with a 16-byte key and a 100-byte value the
 * allocation (167 bytes) still fits glibc's 176-byte chunk. The eviction
 * fields share storage because a store runs one policy for its whole life
 * (Redis shares its 24-bit `lru` field the same way). The hash is not kept:
 * recomputing SipHash when a rehash moves the entry is cheaper than paying
 * 16 more bytes per entry forever. */
struct store_entry {
    struct store_entry *chain;          /* next in bucket */
    union {
        struct {
            struct store_entry *prev;   /* towards most recently used */
            struct store_entry *next;   /* towards least recently used */
        } lru;
        struct {
            int64_t access_ms;          /* store clock at last access */
            uint8_t counter;            /* Morris counter, not yet decayed */
        } lfu;
    } ev;
    int64_t expires_at;                 /* ms since epoch, 0 = never */
    uint64_t version;
    uint32_t stale_ms;                  /* kept this long past expires_at for store_get_stale */
    uint32_t value_len;
    _Atomic uint32_t refs;              /* the table's reference + readers' */
    uint16_t key_len;
    uint8_t ctype_len;
    char data[];                        /* key, content type, value */
};

#define STORE_ENTRY_HDR_SIZE (offsetof(struct store_entry, data))

/* Smallest bucket array; also where shrinking stops. */
#define STORE_TABLE_MIN_SIZE 16u

typedef struct store_table {
    store_entry_t **bucket[2];  /* [0] live array, [1] resize target or NULL */
    uint64_t size[2];           /* power of two, or 0 when absent */
    uint64_t used[2];
    uint64_t rehash_idx;        /* next [0] bucket to move, while bucket[1] exists */
    uint64_t moved;             /* buckets moved by rehashing, for stats */
    char *retired;              /* old mmap'd array being unmapped piecewise, or NULL */
    size_t retired_bytes;       /* what is still mapped of it */
    const unsigned char *hkey;  /* crypto_shorthash_KEYBYTES, borrowed */
} store_table_t;

/* Returns false when the first bucket array cannot be allocated. */
bool store_table_init(store_table_t *t, const unsigned char *hkey);

/* Frees the bucket arrays after handing every entry to `drop`. */
void store_table_destroy(store_table_t *t, void (*drop)(store_entry_t *e));

uint64_t store_table_hash(const unsigned char *hkey, const void *key, size_t len);

static inline bool store_table_rehashing(const store_table_t *t)
{
    return t->bucket[1] != NULL;
}

/* True while rehash steps still have work: moving buckets or unmapping. */
static inline bool store_table_busy(const store_table_t *t)
{
    return t->bucket[1] != NULL || t->retired != NULL;
}

static inline uint64_t store_table_count(const store_table_t *t)
{
    return t->used[0] + t->used[1];
}

static inline uint64_t store_table_slots(const store_table_t *t)
{
    return t->size[0] + t->size[1];
}

/* Bytes held by the bucket arrays, including a retired one not yet fully
 * unmapped; the store charges them to the shard. */
static inline size_t store_table_bucket_bytes(const store_table_t *t)
{
    return (size_t)store_table_slots(t) * sizeof(store_entry_t *) + t->retired_bytes;
}

/* The link (bucket slot or predecessor's `chain`) pointing at the entry with
 * this key, or NULL; *which (may be NULL) says which array holds it. Valid
 * until the table is next modified. */
store_entry_t **store_table_find(store_table_t *t, uint64_t hash, const void *key, size_t len,
                                 int *which);

/* Unlinks the entry a store_table_find() link points at. */
void store_table_unlink(store_table_t *t, store_entry_t **link, int which);

/* Links a new entry (its key must not be present). May start a resize. */
void store_table_insert(store_table_t *t, uint64_t hash, store_entry_t *e);

/* Puts `e` in the place of the entry `*link` points at. */
void store_table_replace(store_entry_t **link, store_entry_t *e);

/* Unlinks `e` (recomputing its hash); returns false if it is not in the
 * table. */
bool store_table_remove(store_table_t *t, store_entry_t *e);

/* Moves up to `n` buckets to the resize target (visiting at most 10 * n
 * empty ones) and unmaps one slice of a retired array; returns true while
 * store_table_busy(). */
bool store_table_rehash(store_table_t *t, unsigned n);

/* Starts shrinking when the table is mostly empty. Returns true if it did. */
bool store_table_maybe_shrink(store_table_t *t);

/* One step of Redis's dictScan: visits the buckets under `cursor` in both
 * arrays and returns the next cursor (0 = the scan is complete). `fn` returns
 * true to have the entry unlinked; the table reads the entry's successor
 * before calling `fn`, so `fn` may then free it. */
typedef bool (*store_table_visit_fn)(store_entry_t *e, void *ctx);
uint64_t store_table_scan(store_table_t *t, uint64_t cursor, store_table_visit_fn fn, void *ctx);

/* Fills `out` with up to `n` entries from a run of buckets starting at a
 * random position (Redis's dictGetSomeKeys). Returns how many. */
size_t store_table_sample(store_table_t *t, uint64_t *rng, store_entry_t **out, size_t n);

/* splitmix64: small, fast, and good enough for sampling decisions. */
static inline uint64_t store_table_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
