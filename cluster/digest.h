/* digest: the arithmetic of anti-entropy (node/route/repair.h), pure.
 *
 * Two owners of the same keys compare what they hold without sending it:
 * each folds every item it holds for keys both own, a live entry or a
 * tombstone, into one of 2^level bucket digests chosen by the top `level`
 * bits of the key's ring hash (cluster/ring.h: the same on every node),
 * and only the buckets whose digests differ are compared item by item. A
 * bucket digest is the XOR of its items' mixes, so it does not depend on
 * the order items are met in, and a table of 2^k buckets folds into one of
 * 2^j (j < k) by XORing neighbours: two owners that chose different levels
 * (they hold different numbers of keys) compare at the smaller one.
 *
 * The level trades digest bytes for precision: with about 8 items a bucket
 * (digest_level_for), one differing key costs the offer of ~8 items, and 1%
 * of the keys differing makes ~8% of the buckets differ. Levels run from
 * DIGEST_LEVEL_MIN (1024 buckets, 8 KiB) to DIGEST_LEVEL_MAX (65536, 512
 * KiB).
 *
 * A mix is a 64-bit function of (hash, version, tombstone?): two sets of
 * items that differ give different digests except with probability ~2^-64
 * per bucket. Nothing here is secret or keyed: digests only travel on the
 * (sealed) peer channel, and a crafted collision costs a repair that does
 * not happen, never a wrong value. The mix, the bucket choice and the
 * folding are protocol constants.
 *
 * Threads: no state.
 */
#ifndef DCACHE_DIGEST_H
#define DCACHE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEVEL_MIN 10u
#define DIGEST_LEVEL_MAX 16u
#define DIGEST_BUCKETS_MAX (1u << DIGEST_LEVEL_MAX)
/* The largest encoded table and bitmap. */
#define DIGEST_TABLE_BYTES_MAX (DIGEST_BUCKETS_MAX * 8u)
#define DIGEST_BITMAP_BYTES_MAX (DIGEST_BUCKETS_MAX / 8u)

static inline size_t digest_buckets(unsigned level)
{
    return (size_t)1 << level;
}
static inline size_t digest_table_bytes(unsigned level)
{
    return digest_buckets(level) * 8u;
}
static inline size_t digest_bitmap_bytes(unsigned level)
{
    return digest_buckets(level) / 8u;
}
/* The bucket of a key's ring hash at a level (its top bits: the ring hash
 * is uniform). */
static inline uint32_t digest_bucket(uint64_t hash, unsigned level)
{
    return (uint32_t)(hash >> (64 - level));
}
/* The level for a table of about `items` items: ~8 a bucket, within
 * DIGEST_LEVEL_MIN..DIGEST_LEVEL_MAX. */
unsigned digest_level_for(uint64_t items);
/* The level of an encoded table (a bitmap) of len bytes; 0 when len is not
 * the size of one. */
unsigned digest_table_level(size_t len);
unsigned digest_bitmap_level(size_t len);

/* The mix of one item, to XOR into its bucket. */
uint64_t digest_item(uint64_t hash, uint64_t version, bool tomb);

/* Writes a table of 2^level digests as digest_table_bytes(level) bytes
 * (little-endian u64s). */
void digest_table_encode(const uint64_t *table, unsigned level, uint8_t *out);
/* Compares `ours` (2^our_level digests) with the encoded table `theirs`
 * (2^their_level), both folded to the smaller level, which goes to *level;
 * marks the differing buckets of that level in bits
 * (digest_bitmap_bytes(*level), overwritten) and returns how many differ. */
size_t digest_compare(const uint64_t *ours, unsigned our_level, const uint8_t *theirs, unsigned their_level,
                      uint8_t *bits, unsigned *level);
/* Whether the bucket of hash is marked in a bitmap of that level. */
static inline bool digest_bit(const uint8_t *bits, unsigned level, uint64_t hash)
{
    uint32_t b = digest_bucket(hash, level);
    return (bits[b >> 3] >> (b & 7)) & 1u;
}
/* Marks in `into` (a bitmap of into_level >= level) every bucket under a
 * bucket marked in bits. */
void digest_bits_widen(const uint8_t *bits, unsigned level, uint8_t *into, unsigned into_level);
/* Buckets marked in a bitmap of that level. */
size_t digest_bits_count(const uint8_t *bits, unsigned level);

#endif
