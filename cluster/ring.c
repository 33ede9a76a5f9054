/* ring: building snapshots, reference counting, accessors (see ring.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ring_internal.h"

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
        if (strnlen(ring_label(&members[i]), RING_ZONE_MAX) >= RING_ZONE_MAX) return false;
        total += members[i].weight;
    }
    return total <= RING_WEIGHT_TOTAL_MAX;
}

/* Members sorted by id, zones interned (sorted labels). */
static bool ring_build_members(ring_t *r, const ring_member_t *members, size_t n)
{
    r->members = malloc(n * sizeof *r->members);
    r->member_zone = malloc(n * sizeof *r->member_zone);
    char *labels = malloc(n * RING_ZONE_MAX);
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
        memset(labels + i * RING_ZONE_MAX, 0, RING_ZONE_MAX);
        strcpy(labels + i * RING_ZONE_MAX, ring_label(&r->members[i]));
    }
    qsort(labels, n, RING_ZONE_MAX, ring_cmp_label);
    size_t nz = 0;
    for (size_t i = 0; i < n; i++) {
        if (nz == 0 || strcmp(labels + (nz - 1) * RING_ZONE_MAX, labels + i * RING_ZONE_MAX) != 0) {
            if (nz != i) memcpy(labels + nz * RING_ZONE_MAX, labels + i * RING_ZONE_MAX, RING_ZONE_MAX);
            nz++;
        }
    }
    r->nzones = (uint32_t)nz;
    r->zone_buf = realloc(labels, nz * RING_ZONE_MAX);
    if (!r->zone_buf) r->zone_buf = labels;
    for (size_t i = 0; i < n; i++) {
        const char *z = bsearch(ring_label(&r->members[i]), r->zone_buf, nz, RING_ZONE_MAX, ring_cmp_label);
        r->member_zone[i] = (uint32_t)((z - r->zone_buf) / RING_ZONE_MAX);
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
                (size_t)r->nzones * RING_ZONE_MAX;
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
