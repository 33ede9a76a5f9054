/* digest: the arithmetic of anti-entropy (node/route/repair.h), pure.
 *
 * Two owners of the same keys compare what they hold without sending it:
 * each folds every item it holds for keys both own, a live entry or a
 * tombstone, into one of DIGEST_BUCKETS bucket digests chosen by the
 * key's ring hash (cluster/ring.h: the same on every node), and only the
 * buckets whose digests differ are compared item by item. A bucket digest
 * is the XOR of its items' mixes, so it does not depend on the order items
 * are met in, and an item can be folded in (or out) in O(1).
 *
 * A mix is a 64-bit function of (hash, version, tombstone?): two sets of
 * items that differ give different digests except with probability ~2^-64
 * per bucket. Nothing here is secret or keyed: digests only travel on the
 * (sealed) peer channel, and a crafted collision costs a repair that does
 * not happen, never a wrong value.
 *
 * DIGEST_BUCKETS and the mix are protocol constants: nodes that compare
 * digests must agree on them.
 *
 * Threads: no state.
 */
#ifndef DCACHE_DIGEST_H
#define DCACHE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_BUCKET_BITS 10
#define DIGEST_BUCKETS (1u << DIGEST_BUCKET_BITS)
/* A table of bucket digests on the wire: little-endian u64s. */
#define DIGEST_TABLE_BYTES (DIGEST_BUCKETS * 8u)
/* A bitmap of buckets on the wire. */
#define DIGEST_BITMAP_BYTES (DIGEST_BUCKETS / 8u)

/* The bucket of a key's ring hash (its top bits: the ring hash is uniform). */
static inline uint32_t digest_bucket(uint64_t hash)
{
    return (uint32_t)(hash >> (64 - DIGEST_BUCKET_BITS));
}

/* The mix of one item, to XOR into its bucket. */
uint64_t digest_item(uint64_t hash, uint64_t version, bool tomb);

/* Writes a table of DIGEST_BUCKETS digests as DIGEST_TABLE_BYTES bytes. */
void digest_table_encode(const uint64_t *table, uint8_t *out);
/* Marks in bits (DIGEST_BITMAP_BYTES, overwritten) the buckets where
 * `ours` and the encoded table `theirs` (DIGEST_TABLE_BYTES) differ;
 * returns how many do. */
size_t digest_compare(const uint64_t *ours, const uint8_t *theirs, uint8_t *bits);
static inline bool digest_bit(const uint8_t *bits, uint32_t bucket)
{
    return (bits[bucket >> 3] >> (bucket & 7)) & 1u;
}
/* Buckets marked in a bitmap. */
size_t digest_bits_count(const uint8_t *bits);

#endif
