/* ring: which members own a key, as an immutable, versioned snapshot of the
 * alive members (DESIGN.md sections 2 and 3).
 *
 * Input: the alive members (128-bit id, zone label, weight). Output: a
 * snapshot that maps every key (any bytes) to an ordered list of `replicas`
 * distinct owners, the primary first. The snapshot is a pure function of the
 * member *set*: members are sorted by id first, so every node that knows the
 * same members computes the same owners for every key, whatever the order it
 * learned them in. Ownership is part of the cluster protocol: the key hash,
 * the point and probe derivations and RING_PROBES / RING_POINTS_PER_WEIGHT
 * below must not change between versions that share a cluster.
 *
 * Algorithm: multi-probe consistent hashing (Appleton & O'Reilly 2015) with
 * a zone-aware successor walk for the replicas.
 *   - each member puts RING_POINTS_PER_WEIGHT * weight points on a 64-bit
 *     circle: point j of member m sits at ring_key_hash(id(m) || le32(j));
 *   - a key with hash h throws RING_PROBES probes on the circle,
 *     s_i = h + (i+1)*0xa0761d6478bd642f, q_i = mum(s_i, s_i ^ 0xe7037ed1a0b428db)
 *     (mum = xor of the two halves of the 128-bit product);
 *   - a member's distance to the key is the smallest clockwise distance
 *     from any probe to any of its points; members are ranked by it
 *     (exact ties, probability ~2^-64, are broken by a fixed rule: the
 *     same on every node);
 *   - owners: walk that ranking and take the first member of each zone not
 *     yet used; once every zone is used (or with no zone labels) take the
 *     next members in ranking order. So replica 2 is in another zone than
 *     replica 1 whenever another zone has a member, and so on.
 * Every key has its own fixed ranking of all possible members, and a member
 * set only filters it. Hence, exactly: when a member joins, the only keys
 * whose primary changes are those it now owns, taken from their previous
 * primary; when one leaves, only its keys move; no key ever moves between
 * two members that stayed. The same holds for replica *sets* (the walk is a
 * choice over one ranking: a join adds the joiner to some sets, removing one
 * stayer each; a leave replaces the leaver by one stayer); the order inside
 * a replica set can change. The expected movement is the joiner's (leaver's)
 * share, i.e. optimal up to the balance below.
 *
 * Why this algorithm: figures from tools/bench/ring (1M random 16-byte keys,
 * seed 1; hash-space share = the fraction of all possible keys a member owns
 * as primary, max/mean, median over 100 random member sets, 10 at N=1000;
 * lookups: median, key hash included; a 2-core AMD EPYC VM, gcc -O2, with
 * another benchmark busy on the other core):
 *
 *                              N=3     N=10    N=100   N=1000
 *   share max/mean  this ring  1.015   1.022   1.025   1.026  (p90 1.030 1.031 1.028 1.027)
 *                   vnode 100  1.071   1.161   1.271   1.355  (a classic ring, 100 vnodes a member)
 *                   HRW 65536  1.006   1.019   1.094   1.465  (65536 partitions by rendezvous hashing)
 *   keys max/mean   this ring  1.021   1.026   1.036   1.124  (ideal random split: 1.003 1.005 1.027 1.113)
 *   join moved/optimal, max    1.009   1.024   1.010   1.018  (leave: 1.021 1.009 1.019 1.064)
 *   moved between stayers      0       0       0       0      (primaries and replica sets)
 *   lookup ns, primary         120     175     206     209    (vnode 100: 42 67 101 158)
 *   lookup ns, 2 owners        237     307     342     409    (vnode 100: 44 68 102 160; HRW table 7-13)
 *   lookup ns, 3 owners/zones  440     671     495     788
 *   rebuild ms                 0.01    0.05    0.42    3.5    (vnode 100: 0.02 0.09 1.5 16)
 *
 *   - A vnode ring's share is a sum of random arcs: 100 vnodes leave 1.27
 *     at N=100 and 1.35 at N=1000.
 *   - Partitions + HRW balance as well as the partition count allows: the
 *     count per member is binomial, so 65536 partitions give 1.09 at N=100
 *     and 1.47 at N=1000; 1.03 at N=1000 would take ~10^7 partitions
 *     (memory, rebuild). Maglev-style and bounded-load tables balance
 *     perfectly but move keys between members that stay: a scheme that is a
 *     function of the member set alone and never moves keys between stayers
 *     must rank all members per key (a fixed order), which rules them out.
 *   - Multi-probe: only points with a tiny gap in front of them lose share,
 *     and the others all gain the same little, so max/mean is about
 *     1 + 1/RING_PROBES whatever N. 32 points a member keep small clusters
 *     near that too (prototype runs, N=3, p90: 1.037 with 16 points, 1.066
 *     with 4, 1.087 with 1). Lookups cost RING_PROBES probes: 1.3-3x a
 *     binary search in a 100-vnode ring for the primary, 2.5-5.5x for two
 *     owners, 0.1-0.4 us here; 24 probes would cost ~40% less for a share
 *     of 1.04-1.045. About 30 bytes a point: 0.9 MB a snapshot at N=1000.
 * Balance of *keys* adds the binomial noise of the key sample on top of the
 * share: 1M keys over 1000 members put the busiest one near 1.11 even with
 * a perfect split, so "keys max/mean <= 1.03" is out of reach there for any
 * algorithm; the share, which the algorithm controls, is within 1.03.
 * ring_member_share() gives each member's exact share (closed form, at
 * build time).
 *
 * Threads: ring_build is pure (no globals, no I/O, no clock) and may run on
 * any thread; the main loop builds. A snapshot never changes after
 * ring_build returns: every other call may run from any thread that holds
 * a reference, concurrently, without locks. The reference count is atomic:
 * ring_ref / ring_unref from any thread. Publishing to workers: do not load
 * a shared pointer and then ring_ref it while another thread may drop the
 * last reference in between; give each worker its own reference (post it
 * through the worker's queue; the worker swaps its pointer and unrefs the
 * old one), or guard the shared slot with a mutex held only for swap+ref.
 *
 * Ownership: ring_build copies everything it reads (ids, zone labels); the
 * caller keeps its array. It returns one reference, which the caller owns.
 * Pointers returned by accessors live as long as the snapshot.
 */
#ifndef DCACHE_RING_H
#define DCACHE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/limits.h"

#define RING_ID_LEN 16
#define RING_REPLICAS_DEFAULT 2
#define RING_REPLICAS_MAX 5
#define RING_WEIGHT_DEFAULT 1
#define RING_WEIGHT_MAX 16        /* relative capacity, 1..16 */
#define RING_MEMBERS_MAX 65536
#define RING_WEIGHT_TOTAL_MAX 131072 /* sum of the weights (4M points, ~120 MB) */
#define RING_PROBES 40            /* protocol constant: probes per key */
#define RING_POINTS_PER_WEIGHT 32 /* protocol constant: points per unit of weight */

typedef struct ring_member {
    uint8_t id[RING_ID_LEN];
    const char *zone;    /* label; NULL or "" = no zone; at most LIMITS_ZONE_MAX-1 bytes */
    uint32_t weight;     /* 1..RING_WEIGHT_MAX; a member of weight 2 owns about twice the keys */
} ring_member_t;

typedef struct ring ring_t;

typedef struct ring_stats {
    uint64_t version;
    size_t members;
    size_t zones;        /* distinct labels ("" counts as one) */
    size_t points;
    unsigned replicas;   /* owners per key: min(requested, members) */
    double balance;      /* max over members of share / (weight / total weight); 1 = perfect */
    size_t bytes;        /* memory held by the snapshot */
} ring_stats_t;

/* A snapshot of `n` members with `replicas` owners per key (1..RING_REPLICAS_MAX;
 * fewer members than replicas gives every member as owner). `version` is the
 * caller's, returned by ring_version. Returns NULL with errno EINVAL on bad
 * input (n == 0, more than RING_MEMBERS_MAX, duplicate ids, replicas out of
 * range, weight 0 or above RING_WEIGHT_MAX, weights summing to more than
 * RING_WEIGHT_TOTAL_MAX, zone label too long) and ENOMEM
 * when allocation fails. The caller owns the one reference returned. */
ring_t *ring_build(const ring_member_t *members, size_t n, unsigned replicas, uint64_t version);
/* Takes one more reference; returns r. */
ring_t *ring_ref(ring_t *r);
/* Drops one reference; the last one frees the snapshot. NULL is ignored. */
void ring_unref(ring_t *r);

uint64_t ring_version(const ring_t *r);
unsigned ring_replicas(const ring_t *r);
size_t ring_member_count(const ring_t *r);
/* Members sorted by id: index 0..count-1 (the indexes ring_owners returns).
 * The zone is never NULL ("" when unset). NULL when index is out of range. */
const ring_member_t *ring_member(const ring_t *r, uint32_t index);
/* The index of the member with this id; false when absent. */
bool ring_find(const ring_t *r, const uint8_t id[RING_ID_LEN], uint32_t *index);
/* The member's exact share of the key hash space as primary (sums to 1). */
double ring_member_share(const ring_t *r, uint32_t index);
void ring_get_stats(const ring_t *r, ring_stats_t *out);

/* The 64-bit key hash (unseeded, little-endian reads: the same on every node
 * and platform). Also usable to shard local tables. */
uint64_t ring_key_hash(const void *key, size_t len);

/* The owners of a key, primary first: writes min(cap, ring_replicas(r))
 * member indexes to out and returns that count. cap == 1 computes the
 * primary only (cheaper). */
size_t ring_owners(const ring_t *r, const void *key, size_t len, uint32_t *out, size_t cap);
/* The same from a key hash already computed with ring_key_hash. */
size_t ring_owners_hash(const ring_t *r, uint64_t hash, uint32_t *out, size_t cap);

/* The high and low halves of a 64x64-bit product, xored: the mixing step
 * of the ring's hash, shared with other hashes built on it (hotkeys). */
static inline uint64_t ring_mum(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    __uint128_t p = (__uint128_t)a * b;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
#else
    uint64_t ha = a >> 32, la = (uint32_t)a, hb = b >> 32, lb = (uint32_t)b;
    uint64_t rh = ha * hb, rm0 = ha * lb, rm1 = hb * la, rl = la * lb;
    uint64_t t = rl + (rm0 << 32), c = t < rl;
    uint64_t lo = t + (rm1 << 32);
    c += lo < t;
    uint64_t hi = rh + (rm0 >> 32) + (rm1 >> 32) + c;
    return lo ^ hi;
#endif
}

#endif
