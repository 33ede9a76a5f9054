/* hotkeys: which keys this node's GETs favour now, to warm new owners after a
 * ring change and to answer GET /api/warming/hot.
 *
 * Two classic structures, fed by the same records and aged together:
 *   - a count-min sketch with conservative update (Cormode & Muthukrishnan
 *     2005; Estan & Varghese 2002) and TinyLFU's aging (Einziger et al.,
 *     Caffeine's frequency sketch): HOTKEYS_ROWS rows of `width` 16-bit
 *     counters; every `period` = HOTKEYS_PERIOD_FACTOR * width records,
 *     every counter is halved (a "reset"). hotkeys_estimate answers "how
 *     often was this key read lately" for any key. The counters are 16-bit,
 *     not Caffeine's 4, because they must never saturate (a saturated
 *     counter, halved, would undercount): a record that would saturate one
 *     resets early instead. A counter holds less than 2 * period, so that
 *     takes one key drawing more than 65534 / (2 * period) of the records:
 *     none below the default width, ~80% at it, ~5% at the maximum;
 *   - a Space-Saving summary (Metwally, Agrawal & El Abbadi 2005) of the K
 *     heaviest keys, in a min-heap by count with a hash index over it
 *     (O(log K) a record, usually O(1): a hot key sits deep in the heap). A
 *     key not monitored takes the minimum's place with count = min + 1 and
 *     error = min, but only when the sketch says it may count more than the
 *     minimum: the invariants below survive (the sketch never undercounts),
 *     and the long tail no longer churns the summary on every record
 *     (`filtered` counts those kept out). At each reset its counts are halved
 *     too (count rounded down, error up), so it follows the current
 *     popularity.
 *
 * Guarantees, of a key's "decayed count" (its records, halved rounding down
 * at each reset, exactly as the counters are):
 *   - hotkeys_estimate >= decayed count, always; the excess is what other
 *     keys put in the same cells: on average at most records / width before
 *     the first reset, and about 2 * HOTKEYS_PERIOD_FACTOR at most after (a
 *     row holds < 2 * period; give or take the halvings' rounding);
 *   - every published entry: count - error <= decayed count <= count;
 *   - a key not published has a decayed count <= the smallest published
 *     count when K entries are published (else 0);
 *   - hence every key whose decayed count exceeds (decayed total) / K is
 *     in the top-K (Space-Saving's bound; skewed streams do far better).
 * Keys must not collide in ring_key_hash (64 bits: ~2^-64 a pair) for the
 * sketch; the top-K compares the key bytes themselves.
 *
 * Threads: a hotkeys_t belongs to one owner thread (a worker: one instance
 * per worker, so the GET path takes no lock and no atomic). Only the owner
 * calls hotkeys_record*, hotkeys_estimate and hotkeys_publish. The owner
 * publishes an immutable copy of its top-K and counters under a mutex
 * every HOTKEYS_PUBLISH_EVERY records, and whenever it calls
 * hotkeys_publish (a worker calls it from a timer, so a quiet worker's copy
 * does not stay stale). On the GET path the owner only tries the mutex: when
 * a reader holds it, the owner keeps the copy it built and retries on its
 * next record, so a record never waits. hotkeys_top, hotkeys_merge and
 * hotkeys_stats may run on any thread at once and read only the published
 * copies: those lag the owner by less than HOTKEYS_PUBLISH_EVERY records
 * (plus the records during which a reader held the mutex), or by the time
 * since the last hotkeys_publish on a quiet worker.
 *
 * Hashing: the sketch cells and the index use ring_key_hash (the hash the
 * data path computes anyway: hotkeys_record_hash takes it) mixed with a
 * 64-bit seed, so a client that does not know the seed cannot aim at a key's
 * cells. Draw the seed at random per process.
 *
 * Memory (reported by hotkeys_stats().memory_bytes, all allocated by
 * hotkeys_new except as noted): the sketch, HOTKEYS_ROWS * width * 2 bytes; per
 * monitored key a slot with HOTKEYS_KEY_INLINE bytes of key space, a heap
 * position and at most four 8-byte index cells (their count is a power of
 * two, at least 2K); a longer key gets a buffer of its own (the next power
 * of two, at most LIMITS_KEY_MAX), kept for later keys of that slot; two
 * snapshots (published and being built) of K entries, each with a packed
 * key area grown to the keys it holds. Worst case, every slot having held a
 * key of LIMITS_KEY_MAX bytes:
 *   HOTKEYS_ROWS * width * 2 + K * (3 * LIMITS_KEY_MAX + HOTKEYS_KEY_INLINE + 160) + 1024
 * bytes (~3.3 KiB a key: 420 KiB for K = 128, plus 32 KiB of sketch at the
 * default width). Typical keys under HOTKEYS_KEY_INLINE bytes cost ~0.3 KiB
 * a key. The owner allocates only while keys grow past what it held; when
 * that fails the key is not admitted (counted in `drops`; the bounds above
 * then do not hold for it) or the snapshot is not refreshed (retried).
 *
 * Ownership: hotkeys_new's caller owns the instance (hotkeys_free, after
 * every thread is done with it). Entries are copied into the caller's
 * arrays; no pointer into an instance ever leaves it.
 */
#ifndef DCACHE_HOTKEYS_H
#define DCACHE_HOTKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/limits.h"

#define HOTKEYS_ROWS 4
#define HOTKEYS_PERIOD_FACTOR 10      /* records between resets, per counter of a row */
#define HOTKEYS_PUBLISH_EVERY 1024    /* records between publications */
#define HOTKEYS_KEY_INLINE 64         /* key bytes each slot holds without a buffer of its own */
#define HOTKEYS_TOP_K_DEFAULT 128
#define HOTKEYS_TOP_K_MAX 65536
#define HOTKEYS_WIDTH_DEFAULT 4096    /* 32 KiB of counters; a reset every 40960 records */
#define HOTKEYS_WIDTH_MIN 64
#define HOTKEYS_WIDTH_MAX (1u << 16)  /* 512 KiB */

typedef struct hotkeys hotkeys_t;

typedef struct hotkeys_config {
    size_t top_k;          /* keys monitored; 0 = HOTKEYS_TOP_K_DEFAULT; at most HOTKEYS_TOP_K_MAX */
    size_t sketch_width;   /* counters a row, rounded up to a power of two at least HOTKEYS_WIDTH_MIN;
                            * 0 = HOTKEYS_WIDTH_DEFAULT; at most HOTKEYS_WIDTH_MAX */
    uint64_t seed;         /* used as given: draw it at random (see Hashing) */
} hotkeys_config_t;

/* One key of a top list. The caller owns the arrays it passes in. */
typedef struct hotkeys_entry {
    uint64_t count;   /* upper bound of the decayed count */
    uint64_t error;   /* count - error: its lower bound */
    size_t klen;      /* 1..LIMITS_KEY_MAX */
    char key[LIMITS_KEY_MAX];
} hotkeys_entry_t;

/* Counters for metrics, as of the last publication. */
typedef struct hotkeys_stats {
    uint64_t records;        /* keys recorded (rejected lengths excluded) */
    uint64_t resets;         /* agings: sketch and top-K halved (early ones included) */
    uint64_t replacements;   /* a new key took the minimum's place */
    uint64_t filtered;       /* new keys kept out: the sketch bounded them by the minimum */
    uint64_t drops;          /* keys not admitted for want of memory */
    uint64_t memory_bytes;   /* everything the instance holds */
    uint64_t keys;           /* keys monitored (count 0 included) */
    uint64_t width, period;  /* the sketch's geometry, for the reader's arithmetic */
} hotkeys_stats_t;

/* cfg NULL = every default. NULL on a size out of range or allocation
 * failure. */
hotkeys_t *hotkeys_new(const hotkeys_config_t *cfg);
/* No other thread may be using h. NULL is a no-op. */
void hotkeys_free(hotkeys_t *h);

/* Owner thread. Counts one read of a key of 1..LIMITS_KEY_MAX bytes (other
 * lengths are ignored). Hashes the key with ring_key_hash. */
void hotkeys_record(hotkeys_t *h, const void *key, size_t klen);
/* The same with hash = ring_key_hash(key, klen) already computed (the data
 * path has it). Any other hash counts the key under the wrong cells and may
 * monitor it twice. */
void hotkeys_record_hash(hotkeys_t *h, const void *key, size_t klen, uint64_t hash);
/* Owner thread: the sketch's estimate of a key's decayed count: never
 * below it, at most 65534. */
uint32_t hotkeys_estimate(const hotkeys_t *h, const void *key, size_t klen);
/* Owner thread: publishes now, waiting for the mutex if a reader holds it
 * (so call it from a timer, not per request). */
void hotkeys_publish(hotkeys_t *h);

/* Any thread: copies out at most cap entries of h's published top-K,
 * highest count first (ties: lower error, then shorter, then smaller key
 * bytes), entries of count 0 omitted. Returns the number copied. out may be
 * NULL when cap is 0. */
size_t hotkeys_top(hotkeys_t *h, hotkeys_entry_t *out, size_t cap);
/* Any thread: one list from several instances' published tops (the workers
 * of a node), highest count first as above, at most cap entries. A key's
 * count and error are the sums of the instances that published it; for each
 * full instance that did not, its smallest count is added to both (the key
 * may have had up to that there), so count - error <= total decayed count
 * <= count still holds. Returns the number copied; 0 also on allocation
 * failure. */
size_t hotkeys_merge(hotkeys_t *const *hs, size_t n, hotkeys_entry_t *out, size_t cap);

/* Any thread: the counters as of the last publication. */
void hotkeys_stats(hotkeys_t *h, hotkeys_stats_t *out);

#endif
