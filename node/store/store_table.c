/* store_table: chained hash table with incremental resizing (see the header).
 * The algorithms follow Redis's dict.c so that their known properties (scan
 * guarantees across resizes, bounded work per step) carry over. */
#include "node/store/store_table.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Large bucket arrays come straight from mmap: fresh anonymous pages are
 * zero and are only faulted in as rehashing reaches them. calloc() would have
 * to memset an array recycled from the heap, and at millions of buckets that
 * memset alone is a multi-millisecond pause. */
#define STORE_TABLE_MMAP_BYTES (64u * 1024u)

static store_entry_t **store_table_alloc_buckets(uint64_t n)
{
    if (n > SIZE_MAX / sizeof(store_entry_t *)) return NULL;
    size_t bytes = (size_t)n * sizeof(store_entry_t *);
    if (bytes < STORE_TABLE_MMAP_BYTES) return calloc((size_t)n, sizeof(store_entry_t *));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Unmapping is paid per page: 8 MiB of touched buckets takes about a
 * millisecond, so a retired array goes back to the kernel in slices. */
#define STORE_TABLE_UNMAP_SLICE (128u * 1024u)

static void store_table_release_slice(store_table_t *t)
{
    size_t n = t->retired_bytes < STORE_TABLE_UNMAP_SLICE ? t->retired_bytes : STORE_TABLE_UNMAP_SLICE;
    t->retired_bytes -= n;
    munmap(t->retired + t->retired_bytes, n);
    if (t->retired_bytes == 0) t->retired = NULL;
}

static void store_table_free_buckets(store_entry_t **b, uint64_t n)
{
    if (!b) return;
    size_t bytes = (size_t)n * sizeof(store_entry_t *);
    if (bytes < STORE_TABLE_MMAP_BYTES) free(b);
    else munmap(b, bytes);
}

uint64_t store_table_hash(const unsigned char *hkey, const void *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key, len, hkey);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

static uint64_t store_table_entry_hash(const store_table_t *t, const store_entry_t *e)
{
    return store_table_hash(t->hkey, e->data, e->key_len);
}

bool store_table_init(store_table_t *t, const unsigned char *hkey)
{
    memset(t, 0, sizeof *t);
    t->hkey = hkey;
    t->bucket[0] = store_table_alloc_buckets(STORE_TABLE_MIN_SIZE);
    if (!t->bucket[0]) return false;
    t->size[0] = STORE_TABLE_MIN_SIZE;
    return true;
}

void store_table_destroy(store_table_t *t, void (*drop)(store_entry_t *e))
{
    for (int j = 0; j < 2; j++) {
        for (uint64_t i = 0; i < t->size[j]; i++) {
            store_entry_t *e = t->bucket[j][i];
            while (e) {
                store_entry_t *next = e->chain;
                drop(e);
                e = next;
            }
        }
        store_table_free_buckets(t->bucket[j], t->size[j]);
        t->bucket[j] = NULL;
        t->size[j] = t->used[j] = 0;
    }
    while (t->retired) store_table_release_slice(t);
}

static bool store_table_start_resize(store_table_t *t, uint64_t size)
{
    store_entry_t **b = store_table_alloc_buckets(size);
    if (!b) return false; /* keep the current array; chains just get longer */
    t->bucket[1] = b;
    t->size[1] = size;
    t->used[1] = 0;
    t->rehash_idx = 0;
    return true;
}

store_entry_t **store_table_find(store_table_t *t, uint64_t hash, const void *key, size_t len,
                                 int *which)
{
    for (int j = 0; j < 2; j++) {
        if (!t->bucket[j]) continue;
        uint64_t idx = hash & (t->size[j] - 1);
        /* Buckets below rehash_idx have already moved to [1]. */
        if (j == 0 && t->bucket[1] && idx < t->rehash_idx) continue;
        store_entry_t **link = &t->bucket[j][idx];
        for (store_entry_t *e = *link; e; link = &e->chain, e = *link) {
            if (e->key_len == len && memcmp(e->data, key, len) == 0) {
                if (which) *which = j;
                return link;
            }
        }
    }
    return NULL;
}

void store_table_insert(store_table_t *t, uint64_t hash, store_entry_t *e)
{
    /* Grow at load factor 1, as Redis does; one resize at a time. */
    if (!t->bucket[1] && t->used[0] >= t->size[0]) store_table_start_resize(t, t->size[0] * 2);
    int j = t->bucket[1] ? 1 : 0;
    uint64_t idx = hash & (t->size[j] - 1);
    e->chain = t->bucket[j][idx];
    t->bucket[j][idx] = e;
    t->used[j]++;
}

void store_table_unlink(store_table_t *t, store_entry_t **link, int which)
{
    *link = (*link)->chain;
    t->used[which]--;
}

void store_table_replace(store_entry_t **link, store_entry_t *e)
{
    e->chain = (*link)->chain;
    *link = e;
}

bool store_table_remove(store_table_t *t, store_entry_t *e)
{
    uint64_t hash = store_table_entry_hash(t, e);
    for (int j = 0; j < 2; j++) {
        if (!t->bucket[j]) continue;
        store_entry_t **link = &t->bucket[j][hash & (t->size[j] - 1)];
        for (; *link; link = &(*link)->chain) {
            if (*link == e) {
                *link = e->chain;
                t->used[j]--;
                return true;
            }
        }
    }
    return false;
}

static void store_table_finish_resize(store_table_t *t)
{
    size_t bytes = (size_t)t->size[0] * sizeof(store_entry_t *);
    if (bytes < STORE_TABLE_MMAP_BYTES) {
        free(t->bucket[0]);
    } else {
        while (t->retired) store_table_release_slice(t); /* only if resizes raced it */
        t->retired = (char *)t->bucket[0];
        t->retired_bytes = bytes;
    }
    t->bucket[0] = t->bucket[1];
    t->size[0] = t->size[1];
    t->used[0] = t->used[1];
    t->bucket[1] = NULL;
    t->size[1] = t->used[1] = 0;
    t->rehash_idx = 0;
}

bool store_table_rehash(store_table_t *t, unsigned n)
{
    if (t->retired) store_table_release_slice(t);
    if (!t->bucket[1]) return t->retired != NULL;
    if (n == 0) return true;
    /* Long runs of empty buckets must not turn one step into a long one. */
    unsigned empty_visits = n * 10;
    uint64_t mask1 = t->size[1] - 1;
    while (n-- && t->used[0] != 0) {
        while (t->bucket[0][t->rehash_idx] == NULL) {
            t->rehash_idx++;
            if (--empty_visits == 0) return true;
        }
        store_entry_t *e = t->bucket[0][t->rehash_idx];
        while (e) {
            store_entry_t *next = e->chain;
            uint64_t idx = store_table_entry_hash(t, e) & mask1;
            e->chain = t->bucket[1][idx];
            t->bucket[1][idx] = e;
            t->used[0]--;
            t->used[1]++;
            e = next;
        }
        t->bucket[0][t->rehash_idx++] = NULL;
        t->moved++;
    }
    if (t->used[0] != 0) return true;
    store_table_finish_resize(t);
    return t->retired != NULL;
}

bool store_table_maybe_shrink(store_table_t *t)
{
    /* Below 10% fill (Redis's HASHTABLE_MIN_FILL) the array is mostly
     * charged-for emptiness; shrink to twice the population so the next few
     * inserts do not grow it straight back. */
    if (t->bucket[1] || t->size[0] <= STORE_TABLE_MIN_SIZE) return false;
    if (t->used[0] * 10 >= t->size[0]) return false;
    uint64_t target = STORE_TABLE_MIN_SIZE;
    while (target < t->used[0] * 2) target *= 2;
    if (target >= t->size[0]) return false;
    return store_table_start_resize(t, target);
}

static uint64_t store_table_rev(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
    v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
    v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) | ((v & 0x0f0f0f0f0f0f0f0full) << 4);
    return __builtin_bswap64(v);
}

static void store_table_visit_bucket(store_table_t *t, int j, uint64_t idx, store_table_visit_fn fn,
                                     void *ctx)
{
    store_entry_t **link = &t->bucket[j][idx];
    while (*link) {
        store_entry_t *e = *link;
        store_entry_t *next = e->chain;
        if (fn(e, ctx)) {
            *link = next; /* `e` may be gone already: do not touch it */
            t->used[j]--;
        } else {
            link = &e->chain;
        }
    }
}

uint64_t store_table_scan(store_table_t *t, uint64_t v, store_table_visit_fn fn, void *ctx)
{
    /* The cursor counts with its bits reversed, so a bucket's expansions in
     * a larger array (and its merge in a smaller one) are visited together:
     * entries are never missed when the table is resized between calls. */
    if (!t->bucket[1]) {
        uint64_t m0 = t->size[0] - 1;
        store_table_visit_bucket(t, 0, v & m0, fn, ctx);
        v |= ~m0;
        v = store_table_rev(v);
        v++;
        return store_table_rev(v);
    }
    int t0 = 0, t1 = 1;
    if (t->size[0] > t->size[1]) {
        t0 = 1;
        t1 = 0;
    }
    uint64_t m0 = t->size[t0] - 1, m1 = t->size[t1] - 1;
    store_table_visit_bucket(t, t0, v & m0, fn, ctx);
    do {
        store_table_visit_bucket(t, t1, v & m1, fn, ctx);
        v |= ~m1;
        v = store_table_rev(v);
        v++;
        v = store_table_rev(v);
    } while (v & (m0 ^ m1));
    return v;
}

size_t store_table_sample(store_table_t *t, uint64_t *rng, store_entry_t **out, size_t n)
{
    uint64_t total = store_table_count(t);
    if (total == 0 || n == 0) return 0;
    if (n > total) n = (size_t)total;
    int tables = t->bucket[1] ? 2 : 1;
    uint64_t maxmask = (t->size[0] > t->size[1] ? t->size[0] : t->size[1]) - 1;
    uint64_t i = store_table_rand(rng) & maxmask;
    size_t stored = 0, emptylen = 0, maxsteps = n * 10;
    while (stored < n && maxsteps--) {
        for (int j = 0; j < tables; j++) {
            /* [0] is empty below rehash_idx; skip ahead if [1] cannot
             * hold this index either (shrinking). */
            if (tables == 2 && j == 0 && i < t->rehash_idx) {
                if (i >= t->size[1]) i = t->rehash_idx;
                else continue;
            }
            if (i >= t->size[j]) continue;
            store_entry_t *e = t->bucket[j][i];
            if (!e) {
                /* A sparse region would eat the step budget: jump away. */
                if (++emptylen >= 5 && emptylen > n) {
                    i = store_table_rand(rng) & maxmask;
                    emptylen = 0;
                }
                continue;
            }
            emptylen = 0;
            for (; e; e = e->chain) {
                out[stored++] = e;
                if (stored == n) return stored;
            }
        }
        i = (i + 1) & maxmask;
    }
    return stored;
}
