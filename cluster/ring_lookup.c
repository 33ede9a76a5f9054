/* ring lookups: the key hash and the owners of a key (see ring.h). Read-only
 * on the snapshot: safe from any thread holding a reference. */
#include <string.h>

#include "cluster/ring_internal.h"

_Static_assert(RING_PROBES % 4 == 0 && RING_PROBES <= 64, "probes: a multiple of 4, at most 64 (walk bitmask)");

#define RING_P0 0xa0761d6478bd642full
#define RING_P1 0xe7037ed1a0b428dbull
#define RING_P2 0x8ebc6af09c88c6e3ull
#define RING_P3 0x589965cc75374cc3ull

static inline uint64_t ring_rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t ring_rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* The full 128-bit product: *a gets the low half, *b the high half. */
static inline void ring_mum128(uint64_t *a, uint64_t *b)
{
#ifdef __SIZEOF_INT128__
    __uint128_t p = (__uint128_t)*a * *b;
    *a = (uint64_t)p;
    *b = (uint64_t)(p >> 64);
#else
    uint64_t ha = *a >> 32, la = (uint32_t)*a, hb = *b >> 32, lb = (uint32_t)*b;
    uint64_t rh = ha * hb, rm0 = ha * lb, rm1 = hb * la, rl = la * lb;
    uint64_t t = rl + (rm0 << 32), c = t < rl;
    uint64_t lo = t + (rm1 << 32);
    c += lo < t;
    *a = lo;
    *b = rh + (rm0 >> 32) + (rm1 >> 32) + c;
#endif
}

/* A wyhash-style hash: 16-byte lanes folded through 64x64->128 multiplies. */
uint64_t ring_key_hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t seed = ring_mum(RING_P0, RING_P1);
    uint64_t a, b;
    if (len <= 16) {
        if (len >= 4) {
            size_t off = (len >> 3) << 2;
            a = (ring_rd32(p) << 32) | ring_rd32(p + off);
            b = (ring_rd32(p + len - 4) << 32) | ring_rd32(p + len - 4 - off);
        } else if (len > 0) {
            a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        if (i > 48) {
            uint64_t s1 = seed, s2 = seed;
            do {
                seed = ring_mum(ring_rd64(p) ^ RING_P1, ring_rd64(p + 8) ^ seed);
                s1 = ring_mum(ring_rd64(p + 16) ^ RING_P2, ring_rd64(p + 24) ^ s1);
                s2 = ring_mum(ring_rd64(p + 32) ^ RING_P3, ring_rd64(p + 40) ^ s2);
                p += 48;
                i -= 48;
            } while (i > 48);
            seed ^= s1 ^ s2;
        }
        while (i > 16) {
            seed = ring_mum(ring_rd64(p) ^ RING_P1, ring_rd64(p + 8) ^ seed);
            i -= 16;
            p += 16;
        }
        /* the last 16 bytes, overlapping what was folded already */
        a = ring_rd64(p + i - 16);
        b = ring_rd64(p + i - 8);
    }
    a ^= RING_P1;
    b ^= seed;
    ring_mum128(&a, &b);
    return ring_mum(a ^ RING_P0 ^ (uint64_t)len, b ^ RING_P1);
}

/* The first point at or after q (cyclic): its index in *jp, its distance
 * from q returned. The bucket table has ~4 buckets a point, so the scan
 * rarely moves (a predictable branch; measured faster than branch-free
 * selects). pos[npoints] = UINT64_MAX stops it. */
static inline uint64_t ring_succ(const ring_t *r, uint64_t q, uint32_t *jp)
{
    const uint64_t *pos = r->pos;
    uint32_t j = r->bucket[q >> r->shift];
    while (pos[j] < q) j++;
    uint64_t p = pos[j];
    if (j >= r->npoints) { /* past the last point: the first one */
        j = 0;
        p = pos[0];
    }
    *jp = j;
    return p - q;
}

static inline uint32_t ring_next(const ring_t *r, uint32_t j)
{
    return j + 1 == r->npoints ? 0 : j + 1;
}

/* Up to RING_REPLICAS_MAX - 1 members or zones, padded with UINT32_MAX so
 * that membership tests have no branches. */
typedef struct ring_set {
    uint32_t v[4];
    size_t n;
} ring_set_t;

static inline bool ring_set_has(const ring_set_t *s, uint32_t x)
{
    return (x == s->v[0]) | (x == s->v[1]) | (x == s->v[2]) | (x == s->v[3]);
}

static inline void ring_set_add(ring_set_t *s, uint32_t x)
{
    s->v[s->n++] = x;
}

/* The probes of one key: position, successor point, distance to it. */
typedef struct ring_probes {
    uint64_t q[RING_PROBES];
    uint64_t d[RING_PROBES];
    uint32_t j[RING_PROBES];
} ring_probes_t;

/* The first point at or after q whose zone is not in used, by binary
 * search in each other zone's own sorted points. */
static uint32_t ring_zone_search(const ring_t *r, uint64_t q, const ring_set_t *used)
{
    uint64_t best = UINT64_MAX;
    uint32_t bj = UINT32_MAX;
    for (uint32_t z = 0; z < r->nzones; z++) {
        if (ring_set_has(used, z)) continue;
        uint32_t lo = r->zoff[z], hi = r->zoff[z + 1], first = lo;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (r->zpos[mid] < q) lo = mid + 1;
            else hi = mid;
        }
        if (lo == r->zoff[z + 1]) lo = first; /* wrap */
        uint64_t d = r->zpos[lo] - q;
        uint32_t j = r->zpoint[lo];
        /* equal distance: the point first in circle order, as the walk finds */
        if (d < best || (d == best && j < bj)) {
            best = d;
            bj = j;
        }
    }
    return bj;
}

/* Does point j qualify as the next owner: its zone (zones) or its member
 * (!zones) not in set? */
static inline bool ring_ok(const ring_t *r, uint32_t j, bool zones, const ring_set_t *set)
{
    return !ring_set_has(set, zones ? r->pzone[j] : r->pmember[j]);
}

/* From point *jp at distance d from probe q, walks on along the circle to
 * the first qualifying point, giving up once the distance reaches bound.
 * Returns the distance (>= bound when it gave up); *jp is the point. */
static inline uint64_t ring_walk(const ring_t *r, uint64_t q, uint32_t *jp, uint64_t d, uint64_t bound, bool zones,
                                 const ring_set_t *set)
{
    uint32_t j = *jp;
    unsigned steps = 0;
    while (d < bound && !ring_ok(r, j, zones, set)) {
        if (zones) {
            j = r->nzone[j]; /* skips the rest of this zone's run */
            if (++steps > RING_WALK_MAX) j = ring_zone_search(r, q, set);
        } else {
            j = ring_next(r, j);
        }
        d = r->pos[j] - q;
    }
    *jp = j;
    return d;
}

/* The best-ranked member not in `set` (by zone or by member); one exists.
 * Few probes beat the best so far, so the scan mostly takes one predictable
 * branch a probe; probes whose successor does not qualify but is nearer
 * than the bound walk on along the circle last. */
static uint32_t ring_next_owner(const ring_t *r, const ring_probes_t *p, bool zones, const ring_set_t *set)
{
    uint64_t best = UINT64_MAX, walk = 0;
    uint32_t bj = 0;
    for (int i = 0; i < RING_PROBES; i++) {
        if (p->d[i] >= best) continue;
        if (ring_ok(r, p->j[i], zones, set)) {
            best = p->d[i];
            bj = p->j[i];
        } else {
            walk |= (uint64_t)1 << i;
        }
    }
    for (; walk; walk &= walk - 1) {
        int i = __builtin_ctzll(walk);
        uint32_t j = p->j[i];
        uint64_t d = ring_walk(r, p->q[i], &j, p->d[i], best, zones, set);
        if (d < best) {
            best = d;
            bj = j;
        }
    }
    return r->pmember[bj];
}

size_t ring_owners_hash(const ring_t *r, uint64_t hash, uint32_t *out, size_t cap)
{
    size_t want = cap < r->replicas ? cap : r->replicas;
    if (want == 0) return 0;
    if (r->n == 1) {
        out[0] = 0;
        return 1;
    }
    uint64_t best = UINT64_MAX, s = hash;
    uint32_t bj = 0;
    if (want == 1) {
        for (int i = 0; i < RING_PROBES; i++) {
            s += RING_PROBE_STEP;
            uint32_t j;
            uint64_t d = ring_succ(r, ring_mum(s, s ^ RING_PROBE_XOR), &j);
            bj = d < best ? j : bj;
            best = d < best ? d : best;
        }
        out[0] = r->pmember[bj];
        return 1;
    }

    /* Every probe is kept for the replicas. */
    ring_probes_t p;
    int i1 = 0;
    for (int i = 0; i < RING_PROBES; i++) {
        s += RING_PROBE_STEP;
        uint64_t q = ring_mum(s, s ^ RING_PROBE_XOR);
        uint32_t j;
        uint64_t d = ring_succ(r, q, &j);
        p.q[i] = q;
        p.j[i] = j;
        p.d[i] = d;
        i1 = d < best ? i : i1;
        bj = d < best ? j : bj;
        best = d < best ? d : best;
    }
    /* the second nearest successor: the two smallest of four independent
     * chains (scalars, so that they stay in registers), merged */
    uint64_t x0 = UINT64_MAX, x1 = UINT64_MAX, x2 = UINT64_MAX, x3 = UINT64_MAX;
    uint64_t y0 = UINT64_MAX, y1 = UINT64_MAX, y2 = UINT64_MAX, y3 = UINT64_MAX;
#define RING_TOP2(x, y, d)                          \
    do {                                            \
        uint64_t d_ = (d), hi_ = d_ < x ? x : d_;   \
        x = d_ < x ? d_ : x;                        \
        y = hi_ < y ? hi_ : y;                      \
    } while (0)
    for (int i = 0; i < RING_PROBES; i += 4) {
        RING_TOP2(x0, y0, p.d[i]);
        RING_TOP2(x1, y1, p.d[i + 1]);
        RING_TOP2(x2, y2, p.d[i + 2]);
        RING_TOP2(x3, y3, p.d[i + 3]);
    }
#undef RING_TOP2
    /* the chain that holds best gives its second smallest */
    x0 = x0 == best ? y0 : x0;
    x1 = x1 == best ? y1 : x1;
    x2 = x2 == best ? y2 : x2;
    x3 = x3 == best ? y3 : x3;
    x0 = x1 < x0 ? x1 : x0;
    x2 = x3 < x2 ? x3 : x2;
    uint64_t b2 = x2 < x0 ? x2 : x0;
    int i2 = 0;
    while (i2 < RING_PROBES && (p.d[i2] != b2 || i2 == i1)) i2++;
    uint32_t j2 = i2 < RING_PROBES ? p.j[i2] : bj; /* bj never qualifies: general scan */
    bool zones = r->nzones > 1;
    ring_set_t chosen = {{UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX}, 0};
    ring_set_t used = chosen;
    out[0] = r->pmember[bj];
    ring_set_add(&chosen, out[0]);
    if (zones) ring_set_add(&used, r->pzone[bj]);
    size_t got = 1;
    /* The second owner, usually without a scan: when the second nearest
     * successor qualifies it is the best qualifying successor, and only the
     * nearest probe (the one that found the primary) can beat it by walking
     * on. Otherwise, the general scan. */
    const ring_set_t *set = zones ? &used : &chosen;
    uint32_t m;
    if (ring_ok(r, j2, zones, set)) {
        uint32_t j = bj;
        if (ring_walk(r, p.q[i1], &j, best, b2, zones, set) < b2) j2 = j;
        m = r->pmember[j2];
    } else {
        m = ring_next_owner(r, &p, zones, set);
    }
    bool by_zone = zones; /* phase 1: a new zone each time, while one is left */
    for (;;) {
        out[got++] = m;
        if (got == want) break;
        if (by_zone) {
            ring_set_add(&used, r->member_zone[m]);
            by_zone = used.n < r->nzones;
        }
        ring_set_add(&chosen, m);
        m = by_zone ? ring_next_owner(r, &p, true, &used) : ring_next_owner(r, &p, false, &chosen);
    }
    return got;
}

size_t ring_owners(const ring_t *r, const void *key, size_t len, uint32_t *out, size_t cap)
{
    return ring_owners_hash(r, ring_key_hash(key, len), out, cap);
}
