/* ring: building snapshots, reference counting, accessors, the key hash and
 * the owners of a key (contract in ring.h). Lookups are read-only on the
 * snapshot: safe from any thread holding a reference. */
#include "cluster/ring.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    char *zone_buf;          /* the labels, LIMITS_ZONE_MAX bytes each, sorted */

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


_Static_assert(RING_PROBES % 4 == 0 && RING_PROBES <= 64, "probes: a multiple of 4, at most 64 (walk bitmask)");

/* wyhash's primes: the key hash mixes with all four; the probe derivation
 * is wyrand over the first two (s += P0; mum(s, s ^ P1)). Protocol
 * constants, see ring.h. */
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

/* ---------- building ---------- */

/* A radix-sortable record: sorted by key, stable. */
typedef struct ring_rec {
    uint64_t key;
    uint32_t a, b;
} ring_rec_t;

/* Stable LSD radix sort by key, 8 bits a pass; passes where every key has
 * the same digit are skipped. tmp has n records. Returns the sorted array
 * (recs or tmp). */
static ring_rec_t *ring_radix_sort(ring_rec_t *recs, ring_rec_t *tmp, size_t n)
{
    ring_rec_t *src = recs, *dst = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++) count[(src[i].key >> shift) & 0xff]++;
        if (n == 0 || count[(src[0].key >> shift) & 0xff] == n) continue;
        size_t sum = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) dst[count[(src[i].key >> shift) & 0xff]++] = src[i];
        ring_rec_t *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

static void ring_free(ring_t *r)
{
    free(r->members);
    free(r->member_zone);
    free(r->share);
    free(r->zone_buf);
    free(r->pos);
    free(r->pmember);
    free(r->bucket);
    free(r->pzone);
    free(r->nzone);
    free(r->zoff);
    free(r->zpos);
    free(r->zpoint);
    free(r);
}

static int ring_cmp_id(const void *a, const void *b)
{
    const ring_member_t *x = a, *y = b;
    return memcmp(x->id, y->id, RING_ID_LEN);
}

static int ring_cmp_label(const void *a, const void *b)
{
    return strcmp(a, b);
}

static const char *ring_label(const ring_member_t *m)
{
    return m->zone ? m->zone : "";
}

static bool ring_valid(const ring_member_t *members, size_t n, unsigned replicas)
{
    if (n == 0 || n > RING_MEMBERS_MAX || !members) return false;
    if (replicas < 1 || replicas > RING_REPLICAS_MAX) return false;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (members[i].weight < 1 || members[i].weight > RING_WEIGHT_MAX) return false;
        if (strnlen(ring_label(&members[i]), LIMITS_ZONE_MAX) >= LIMITS_ZONE_MAX) return false;
        total += members[i].weight;
    }
    return total <= RING_WEIGHT_TOTAL_MAX;
}

/* Members sorted by id, zones interned (sorted labels). */
static bool ring_build_members(ring_t *r, const ring_member_t *members, size_t n)
{
    r->members = malloc(n * sizeof *r->members);
    r->member_zone = malloc(n * sizeof *r->member_zone);
    char *labels = malloc(n * LIMITS_ZONE_MAX);
    if (!r->members || !r->member_zone || !labels) {
        free(labels);
        return false;
    }
    memcpy(r->members, members, n * sizeof *r->members);
    qsort(r->members, n, sizeof *r->members, ring_cmp_id);
    for (size_t i = 0; i + 1 < n; i++) {
        if (memcmp(r->members[i].id, r->members[i + 1].id, RING_ID_LEN) == 0) {
            free(labels);
            errno = EINVAL;
            return false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        memset(labels + i * LIMITS_ZONE_MAX, 0, LIMITS_ZONE_MAX);
        strcpy(labels + i * LIMITS_ZONE_MAX, ring_label(&r->members[i]));
    }
    qsort(labels, n, LIMITS_ZONE_MAX, ring_cmp_label);
    size_t nz = 0;
    for (size_t i = 0; i < n; i++) {
        if (nz == 0 || strcmp(labels + (nz - 1) * LIMITS_ZONE_MAX, labels + i * LIMITS_ZONE_MAX) != 0) {
            if (nz != i) memcpy(labels + nz * LIMITS_ZONE_MAX, labels + i * LIMITS_ZONE_MAX, LIMITS_ZONE_MAX);
            nz++;
        }
    }
    r->nzones = (uint32_t)nz;
    r->zone_buf = realloc(labels, nz * LIMITS_ZONE_MAX);
    if (!r->zone_buf) r->zone_buf = labels;
    for (size_t i = 0; i < n; i++) {
        const char *z = bsearch(ring_label(&r->members[i]), r->zone_buf, nz, LIMITS_ZONE_MAX, ring_cmp_label);
        r->member_zone[i] = (uint32_t)((z - r->zone_buf) / LIMITS_ZONE_MAX);
        r->members[i].zone = z;
    }
    return true;
}

/* Point j of a member: ring_key_hash(id || le32(j)). */
static uint64_t ring_point_pos(const uint8_t id[RING_ID_LEN], uint32_t j)
{
    uint8_t buf[RING_ID_LEN + 4];
    memcpy(buf, id, RING_ID_LEN);
    for (int i = 0; i < 4; i++) buf[RING_ID_LEN + i] = (uint8_t)(j >> (8 * i));
    return ring_key_hash(buf, sizeof buf);
}

static bool ring_build_points(ring_t *r)
{
    size_t np = 0;
    for (uint32_t m = 0; m < r->n; m++) np += (size_t)r->members[m].weight * RING_POINTS_PER_WEIGHT;
    r->npoints = (uint32_t)np;
    ring_rec_t *recs = malloc(np * sizeof *recs), *tmp = malloc(np * sizeof *tmp);
    r->pos = malloc((np + 1) * sizeof *r->pos);
    r->pmember = malloc(np * sizeof *r->pmember);
    unsigned bits = 1;
    while (bits < 32 && ((size_t)1 << bits) < np * 4) bits++;
    r->shift = 64 - bits;
    size_t nb = (size_t)1 << bits;
    r->bucket = malloc(nb * sizeof *r->bucket);
    if (!recs || !tmp || !r->pos || !r->pmember || !r->bucket) {
        free(recs);
        free(tmp);
        return false;
    }
    /* generated in (member, point) order: the stable sort breaks position
     * ties by member id, then point number */
    size_t k = 0;
    for (uint32_t m = 0; m < r->n; m++) {
        uint32_t v = r->members[m].weight * RING_POINTS_PER_WEIGHT;
        for (uint32_t j = 0; j < v; j++) {
            recs[k].key = ring_point_pos(r->members[m].id, j);
            recs[k].a = m;
            recs[k].b = j;
            k++;
        }
    }
    ring_rec_t *sorted = ring_radix_sort(recs, tmp, np);
    for (size_t i = 0; i < np; i++) {
        r->pos[i] = sorted[i].key;
        r->pmember[i] = sorted[i].a;
    }
    r->pos[np] = UINT64_MAX; /* sentinel */
    free(recs);
    free(tmp);
    size_t j = 0;
    for (size_t b = 0; b < nb; b++) {
        uint64_t start = (uint64_t)b << r->shift;
        while (j < np && r->pos[j] < start) j++;
        r->bucket[b] = (uint32_t)j;
    }
    r->bytes += (np + 1) * sizeof *r->pos + np * sizeof *r->pmember + nb * sizeof *r->bucket;
    return true;
}

/* Per-point zones, the next point in another zone, and each zone's points
 * sorted for the binary-search fallback. */
static bool ring_build_zones(ring_t *r)
{
    if (r->nzones < 2) return true;
    uint32_t np = r->npoints, nz = r->nzones;
    r->pzone = malloc(np * sizeof *r->pzone);
    r->nzone = malloc(np * sizeof *r->nzone);
    r->zoff = calloc(nz + 1, sizeof *r->zoff);
    r->zpos = malloc(np * sizeof *r->zpos);
    r->zpoint = malloc(np * sizeof *r->zpoint);
    if (!r->pzone || !r->nzone || !r->zoff || !r->zpos || !r->zpoint) return false;
    for (uint32_t j = 0; j < np; j++) r->pzone[j] = r->member_zone[r->pmember[j]];
    /* two passes backwards around the circle settle the cyclic runs */
    for (uint64_t i = 2 * (uint64_t)np; i-- > 0;) {
        uint32_t j = (uint32_t)(i % np), next = j + 1 == np ? 0 : j + 1;
        r->nzone[j] = r->pzone[next] != r->pzone[j] ? next : r->nzone[next];
    }
    for (uint32_t j = 0; j < np; j++) r->zoff[r->pzone[j] + 1]++;
    for (uint32_t z = 0; z < nz; z++) r->zoff[z + 1] += r->zoff[z];
    uint32_t *fill = malloc(nz * sizeof *fill);
    if (!fill) return false;
    memcpy(fill, r->zoff, nz * sizeof *fill);
    for (uint32_t j = 0; j < np; j++) {
        uint32_t at = fill[r->pzone[j]]++;
        r->zpos[at] = r->pos[j];
        r->zpoint[at] = j;
    }
    free(fill);
    r->bytes += (size_t)np * (sizeof *r->pzone + sizeof *r->nzone + sizeof *r->zpos + sizeof *r->zpoint) +
                (nz + 1) * sizeof *r->zoff;
    return true;
}

/* The exact share of each member as primary. A probe lands in the gap before
 * point j with probability g_j (gaps as fractions of the circle) at a
 * distance uniform on [0, g_j); the key goes to the point of the nearest
 * probe. With S(t) = sum_j max(g_j - t, 0) (the chance that one probe is
 * farther than t from its successor) and K probes:
 *   share(j) = K * integral_0^g_j S(t)^(K-1) dt,
 * and S is linear between consecutive sorted gaps, so the integral is a sum
 * of (S(t0)^K - S(t1)^K) / (gaps still longer than t). */
static bool ring_build_shares(ring_t *r)
{
    uint32_t np = r->npoints;
    r->share = calloc(r->n, sizeof *r->share);
    if (!r->share) return false;
    if (r->n == 1) {
        r->share[0] = 1.0;
        r->balance = 1.0;
        return true;
    }
    ring_rec_t *recs = malloc(np * sizeof *recs), *tmp = malloc(np * sizeof *tmp);
    if (!recs || !tmp) {
        free(recs);
        free(tmp);
        return false;
    }
    for (uint32_t j = 0; j < np; j++) {
        recs[j].key = r->pos[j] - r->pos[j == 0 ? np - 1 : j - 1]; /* mod 2^64 */
        recs[j].a = r->pmember[j];
        recs[j].b = j;
    }
    ring_rec_t *g = ring_radix_sort(recs, tmp, np);
    const double scale = 1.0 / 18446744073709551616.0; /* 2^-64 */
    double t0 = 0, s0 = 1, acc = 0;
    uint32_t i = 0;
    while (i < np) {
        double t1 = (double)g[i].key * scale;
        double s1 = s0 - (double)(np - i) * (t1 - t0);
        if (s1 < 0) s1 = 0;
        acc += (pow(s0, RING_PROBES) - pow(s1, RING_PROBES)) / (double)(np - i);
        t0 = t1;
        s0 = s1;
        uint32_t e = i;
        while (e < np && g[e].key == g[i].key) r->share[g[e++].a] += acc;
        i = e;
    }
    free(recs);
    free(tmp);
    double sum = 0, wsum = 0;
    for (uint32_t m = 0; m < r->n; m++) {
        sum += r->share[m];
        wsum += r->members[m].weight;
    }
    r->balance = 0;
    for (uint32_t m = 0; m < r->n; m++) {
        r->share[m] /= sum;
        double b = r->share[m] / (r->members[m].weight / wsum);
        if (b > r->balance) r->balance = b;
    }
    return true;
}

ring_t *ring_build(const ring_member_t *members, size_t n, unsigned replicas, uint64_t version)
{
    if (!ring_valid(members, n, replicas)) {
        errno = EINVAL;
        return NULL;
    }
    ring_t *r = calloc(1, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->version = version;
    r->n = (uint32_t)n;
    r->replicas = replicas < n ? replicas : (uint32_t)n;
    int saved = errno;
    errno = ENOMEM;
    if (!ring_build_members(r, members, n) || !ring_build_points(r) || !ring_build_zones(r) ||
        !ring_build_shares(r)) {
        int e = errno;
        ring_free(r);
        errno = e;
        return NULL;
    }
    r->bytes += sizeof *r + n * (sizeof *r->members + sizeof *r->member_zone + sizeof *r->share) +
                (size_t)r->nzones * LIMITS_ZONE_MAX;
    errno = saved;
    return r;
}

ring_t *ring_ref(ring_t *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void ring_unref(ring_t *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) ring_free(r);
}

uint64_t ring_version(const ring_t *r)
{
    return r->version;
}

unsigned ring_replicas(const ring_t *r)
{
    return r->replicas;
}

size_t ring_member_count(const ring_t *r)
{
    return r->n;
}

const ring_member_t *ring_member(const ring_t *r, uint32_t index)
{
    return index < r->n ? &r->members[index] : NULL;
}

bool ring_find(const ring_t *r, const uint8_t id[RING_ID_LEN], uint32_t *index)
{
    uint32_t lo = 0, hi = r->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = memcmp(r->members[mid].id, id, RING_ID_LEN);
        if (c == 0) {
            if (index) *index = mid;
            return true;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

double ring_member_share(const ring_t *r, uint32_t index)
{
    return index < r->n ? r->share[index] : 0.0;
}

void ring_get_stats(const ring_t *r, ring_stats_t *out)
{
    out->version = r->version;
    out->members = r->n;
    out->zones = r->nzones;
    out->points = r->npoints;
    out->replicas = r->replicas;
    out->balance = r->balance;
    out->bytes = r->bytes;
}

/* ---------- lookups ---------- */

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
            s += RING_P0;
            uint32_t j;
            uint64_t d = ring_succ(r, ring_mum(s, s ^ RING_P1), &j);
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
        s += RING_P0;
        uint64_t q = ring_mum(s, s ^ RING_P1);
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
