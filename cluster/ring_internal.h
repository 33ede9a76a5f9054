/* ring internals shared by ring.c (building) and ring_lookup.c (hashing,
 * owners). Not part of the contract: see ring.h. */
#ifndef DCACHE_RING_INTERNAL_H
#define DCACHE_RING_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "cluster/ring.h"

/* Probe derivation (protocol constants, see ring.h). */
#define RING_PROBE_STEP 0xa0761d6478bd642full
#define RING_PROBE_XOR 0xe7037ed1a0b428dbull
/* Zone walks longer than this fall back to per-zone binary searches. */
#define RING_WALK_MAX 32

struct ring {
    atomic_uint refs;
    uint64_t version;
    uint32_t n;           /* members */
    uint32_t replicas;    /* effective: min(requested, n) */
    uint32_t nzones;
    uint32_t npoints;
    unsigned shift;       /* bucket of q = q >> shift */
    double balance;
    size_t bytes;

    ring_member_t *members;  /* sorted by id; zone points into zone_buf */
    uint32_t *member_zone;   /* zone index of each member */
    double *share;           /* exact primary share of each member */
    char *zone_buf;          /* the labels, RING_ZONE_MAX bytes each, sorted */

    /* The circle: points sorted by (position, member, point number). */
    uint64_t *pos;           /* npoints + 1; pos[npoints] = UINT64_MAX (sentinel) */
    uint32_t *pmember;       /* npoints */
    uint32_t *bucket;        /* (1 << (64 - shift)): first point at or after the bucket start */

    /* Zones (only when nzones > 1). */
    uint32_t *pzone;         /* npoints: zone of each point */
    uint32_t *nzone;         /* npoints: the next point (cyclic) in another zone */
    uint32_t *zoff;          /* nzones + 1: zone z's points are zpos[zoff[z]..zoff[z+1]) */
    uint64_t *zpos;          /* npoints: positions grouped by zone, sorted */
    uint32_t *zpoint;        /* npoints: the point index of each zpos entry */
};

/* The high and low halves of a 64x64-bit product, xored. */
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
