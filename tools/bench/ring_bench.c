/* ring_bench: cluster/ring (multi-probe, RING_PROBES probes) beside two
 * references computed in the same run: a classic consistent-hash ring with
 * 100 vnodes per member, and 65536 partitions assigned by rendezvous (HRW)
 * hashing. Prints figures, never passes or fails.
 *
 *   tools/bench/ring [--sizes 3,10,100,1000] [--keys 1000000] [--trials 3] [--sets 100] [--seed S]
 *
 * For each N: hash-space share max/mean (what the algorithm controls; exact
 * for cluster/ring and the vnode ring, partition counts for HRW), for the
 * member set of the run and over --sets other random sets (a tenth of them
 * at N >= 1000): median, 90th percentile, worst; keys per
 * member max/mean over the random keys, beside an ideal uniform random split
 * (the binomial noise floor of the key sample); keys that change primary on
 * one join and on one leave as a ratio of the optimal 1/(N+1) and 1/N, and
 * keys (primary or replica set) moved between two members that stayed;
 * median lookup time (key hash included, 16-byte keys); rebuild time.
 *
 * A run on the development VM (2-core AMD EPYC, KVM, gcc -O2, another
 * benchmark busy on the other core) with the defaults is summarised in
 * cluster/ring.h; it takes ~20 s. Timings on a shared machine are noisy:
 * compare the columns of one run, not runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/ring.h"

#define VNODES 100
#define PARTS 65536

static uint64_t rng_state;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fmix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

static double max_over_mean(const double *v, size_t n)
{
    double mx = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += v[i];
        if (v[i] > mx) mx = v[i];
    }
    return sum > 0 ? mx / (sum / (double)n) : 0;
}

/* ---- members: random ids; `id64` is a 64-bit digest of the id ---- */

typedef struct member {
    ring_member_t m;
    uint64_t id64;
} member_t;

static void new_member(member_t *x)
{
    uint64_t a = rng(), b = rng();
    memcpy(x->m.id, &a, 8);
    memcpy(x->m.id + 8, &b, 8);
    x->m.zone = NULL;
    x->m.weight = 1;
    x->id64 = ring_key_hash(x->m.id, RING_ID_LEN);
}

/* ---- reference 1: a classic ring, VNODES points a member ---- */

typedef struct vpoint {
    uint64_t pos;
    uint64_t who; /* id64 of the member */
} vpoint_t;

typedef struct vring {
    vpoint_t *pt;
    size_t n;
} vring_t;

static int cmp_vpoint(const void *a, const void *b)
{
    const vpoint_t *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    return x->who < y->who ? -1 : x->who > y->who;
}

static void vring_build(vring_t *v, const member_t *ms, size_t n)
{
    v->n = n * VNODES;
    v->pt = malloc(v->n * sizeof *v->pt);
    for (size_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < VNODES; j++) {
            uint8_t buf[RING_ID_LEN + 4];
            memcpy(buf, ms[i].m.id, RING_ID_LEN);
            memcpy(buf + RING_ID_LEN, &j, 4);
            v->pt[i * VNODES + j].pos = ring_key_hash(buf, sizeof buf);
            v->pt[i * VNODES + j].who = ms[i].id64;
        }
    }
    qsort(v->pt, v->n, sizeof *v->pt, cmp_vpoint);
}

static size_t vring_succ(const vring_t *v, uint64_t h)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->pt[mid].pos < h) lo = mid + 1;
        else hi = mid;
    }
    return lo == v->n ? 0 : lo;
}

/* Up to 2 distinct owners (ids); returns the count. */
static size_t vring_owners(const vring_t *v, uint64_t h, uint64_t *out, size_t cap)
{
    size_t j = vring_succ(v, h), got = 0;
    out[got++] = v->pt[j].who;
    for (size_t steps = 0; got < cap && steps < v->n; steps++) {
        j = j + 1 == v->n ? 0 : j + 1;
        if (v->pt[j].who != out[0]) out[got++] = v->pt[j].who;
    }
    return got;
}

/* ---- reference 2: PARTS partitions, rendezvous (HRW) top 2 ---- */

typedef struct hrw {
    uint64_t (*own)[2]; /* id64 of the top two */
} hrw_t;

static void hrw_build(hrw_t *t, const member_t *ms, size_t n)
{
    t->own = malloc(PARTS * sizeof *t->own);
    for (uint32_t p = 0; p < PARTS; p++) {
        uint64_t salt = fmix(p + 1), b1 = 0, b2 = 0, w1 = 0, w2 = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t s = fmix(ms[i].id64 ^ salt);
            if (s >= b1) {
                b2 = b1, w2 = w1;
                b1 = s, w1 = ms[i].id64;
            } else if (s >= b2) {
                b2 = s, w2 = ms[i].id64;
            }
        }
        t->own[p][0] = w1;
        t->own[p][1] = n > 1 ? w2 : w1;
    }
}

/* ---- measurements ---- */

typedef struct keyset {
    uint8_t (*key)[16];
    uint64_t *hash;
    size_t n;
} keyset_t;

/* Owners (as id64) of every key under each algorithm. */
typedef struct owners {
    uint64_t (*o)[2];
} owners_t;

static void owners_ring(const ring_t *r, const keyset_t *ks, owners_t *out)
{
    for (size_t k = 0; k < ks->n; k++) {
        uint32_t o[2];
        size_t c = ring_owners_hash(r, ks->hash[k], o, 2);
        for (size_t i = 0; i < 2; i++) {
            const ring_member_t *m = ring_member(r, o[i < c ? i : 0]);
            out->o[k][i] = ring_key_hash(m->id, RING_ID_LEN);
        }
    }
}

static void owners_vring(const vring_t *v, const keyset_t *ks, owners_t *out)
{
    for (size_t k = 0; k < ks->n; k++) {
        uint64_t o[2];
        size_t c = vring_owners(v, ks->hash[k], o, 2);
        out->o[k][0] = o[0];
        out->o[k][1] = c > 1 ? o[1] : o[0];
    }
}

static void owners_hrw(const hrw_t *t, const keyset_t *ks, owners_t *out)
{
    for (size_t k = 0; k < ks->n; k++) memcpy(out->o[k], t->own[ks->hash[k] >> 48], sizeof out->o[k]);
}

/* Compares two assignments: primaries moved (total, and between two
 * members present in both), replica sets touched between stayers. */
typedef struct moves {
    size_t moved, stayer_primary, stayer_sets;
} moves_t;

static void compare(const owners_t *a, const owners_t *b, size_t nkeys, uint64_t changed, moves_t *mv)
{
    memset(mv, 0, sizeof *mv);
    for (size_t k = 0; k < nkeys; k++) {
        uint64_t *x = a->o[k], *y = b->o[k];
        if (x[0] != y[0]) {
            mv->moved++;
            if (x[0] != changed && y[0] != changed) mv->stayer_primary++;
        }
        /* a stayer that entered the set while another stayer left it */
        for (int i = 0; i < 2; i++) {
            uint64_t in = y[i];
            if (in == changed || in == x[0] || in == x[1]) continue;
            for (int j = 0; j < 2; j++) {
                uint64_t out = x[j];
                if (out != changed && out != y[0] && out != y[1]) {
                    mv->stayer_sets++;
                    goto next;
                }
            }
        }
    next:;
    }
}

/* id64 -> member index, open addressing */
typedef struct idx {
    uint64_t *key;
    uint32_t *val;
    size_t cap;
} idx_t;

static void idx_build(idx_t *t, const member_t *ms, size_t n)
{
    t->cap = 16;
    while (t->cap < n * 4) t->cap *= 2;
    t->key = calloc(t->cap, sizeof *t->key);
    t->val = calloc(t->cap, sizeof *t->val);
    for (size_t i = 0; i < n; i++) {
        size_t s = fmix(ms[i].id64) & (t->cap - 1);
        while (t->key[s]) s = (s + 1) & (t->cap - 1);
        t->key[s] = ms[i].id64;
        t->val[s] = (uint32_t)i;
    }
}

static size_t idx_get(const idx_t *t, uint64_t id64, size_t n)
{
    size_t s = fmix(id64) & (t->cap - 1);
    while (t->key[s]) {
        if (t->key[s] == id64) return t->val[s];
        s = (s + 1) & (t->cap - 1);
    }
    return n;
}

static void idx_free(idx_t *t)
{
    free(t->key);
    free(t->val);
}

static void key_counts(const owners_t *o, size_t nkeys, const member_t *ms, size_t n, double *cnt)
{
    idx_t t;
    idx_build(&t, ms, n);
    memset(cnt, 0, n * sizeof *cnt);
    for (size_t k = 0; k < nkeys; k++) {
        size_t i = idx_get(&t, o->o[k][0], n);
        if (i < n) cnt[i] += 1;
    }
    idx_free(&t);
}

/* ---- timing ---- */

#define BATCH 1024

typedef enum { T_RING1, T_RING2, T_RING3, T_VRING1, T_VRING2, T_HRW } tkind_t;

static volatile uint64_t sink;

static double time_lookups(tkind_t kind, const ring_t *r, const vring_t *v, const hrw_t *t, const keyset_t *ks)
{
    size_t batches = ks->n / BATCH;
    if (batches > 400) batches = 400;
    double *ns = malloc(batches * sizeof *ns);
    uint64_t acc = 0;
    for (size_t b = 0; b < batches; b++) {
        double t0 = now_s();
        for (size_t i = b * BATCH; i < (b + 1) * BATCH; i++) {
            uint64_t h = ring_key_hash(ks->key[i], 16);
            uint32_t o[3];
            uint64_t w[2];
            switch (kind) {
            case T_RING1: ring_owners_hash(r, h, o, 1); acc += o[0]; break;
            case T_RING2: ring_owners_hash(r, h, o, 2); acc += o[0] + o[1]; break;
            case T_RING3: ring_owners_hash(r, h, o, 3); acc += o[0] + o[2]; break;
            case T_VRING1: vring_owners(v, h, w, 1); acc += w[0]; break;
            case T_VRING2: vring_owners(v, h, w, 2); acc += w[0] + w[1]; break;
            case T_HRW: acc += t->own[h >> 48][0] + t->own[h >> 48][1]; break;
            }
        }
        ns[b] = (now_s() - t0) / BATCH * 1e9;
    }
    sink = acc;
    double m = median(ns, batches);
    free(ns);
    return m;
}

static ring_t *build_ring(const member_t *ms, size_t n, unsigned replicas, const char *const *zones)
{
    ring_member_t *rm = malloc(n * sizeof *rm);
    for (size_t i = 0; i < n; i++) {
        rm[i] = ms[i].m;
        if (zones) rm[i].zone = zones[i % 3];
    }
    ring_t *r = ring_build(rm, n, replicas, 1);
    free(rm);
    if (!r) {
        perror("ring_build");
        exit(1);
    }
    return r;
}

/* Hash-space share max/mean over `sets` random member sets of n: median,
 * 90th percentile and worst, for each algorithm. */
static void share_spread(size_t n, int sets)
{
    double *res[3];
    for (int a = 0; a < 3; a++) res[a] = malloc(sets * sizeof *res[a]);
    member_t *ms = malloc(n * sizeof *ms);
    double *share = malloc(n * sizeof *share);
    for (int t = 0; t < sets; t++) {
        for (size_t i = 0; i < n; i++) new_member(&ms[i]);
        ring_t *r = build_ring(ms, n, 1, NULL);
        for (uint32_t i = 0; i < n; i++) share[i] = ring_member_share(r, i);
        res[0][t] = max_over_mean(share, n);
        ring_unref(r);
        idx_t ix;
        idx_build(&ix, ms, n);
        vring_t v;
        vring_build(&v, ms, n);
        memset(share, 0, n * sizeof *share);
        for (size_t j = 0; j < v.n; j++) {
            uint64_t prev = v.pt[j == 0 ? v.n - 1 : j - 1].pos;
            share[idx_get(&ix, v.pt[j].who, n)] += (double)(v.pt[j].pos - prev);
        }
        res[1][t] = max_over_mean(share, n);
        free(v.pt);
        hrw_t h;
        hrw_build(&h, ms, n);
        memset(share, 0, n * sizeof *share);
        for (size_t p = 0; p < PARTS; p++) share[idx_get(&ix, h.own[p][0], n)] += 1;
        res[2][t] = max_over_mean(share, n);
        free(h.own);
        idx_free(&ix);
    }
    char label[64];
    snprintf(label, sizeof label, "share max/mean, %d sets: median", sets);
    printf("%-34s", label);
    for (int a = 0; a < 3; a++) {
        qsort(res[a], sets, sizeof *res[a], cmp_double);
        printf(" %12.4f", res[a][sets / 2]);
    }
    printf("\n%-34s", "                    p90 / worst");
    for (int a = 0; a < 3; a++) printf("  %5.3f/%5.3f", res[a][sets * 9 / 10], res[a][sets - 1]);
    printf("\n");
    for (int a = 0; a < 3; a++) free(res[a]);
    free(ms);
    free(share);
}

static void bench_size(size_t n, const keyset_t *ks, int trials, int sets)
{
    size_t nk = ks->n;
    member_t *ms = malloc((n + 1) * sizeof *ms);
    for (size_t i = 0; i < n + 1; i++) new_member(&ms[i]);
    printf("\n== N = %zu members, %zu keys ==\n", n, nk);

    ring_t *r = build_ring(ms, n, 2, NULL);
    vring_t v;
    vring_build(&v, ms, n);
    hrw_t t;
    hrw_build(&t, ms, n);

    /* hash-space share */
    double *share = malloc(n * sizeof *share);
    idx_t ix;
    idx_build(&ix, ms, n);
    for (uint32_t i = 0; i < n; i++) share[i] = ring_member_share(r, i);
    double s_ring = max_over_mean(share, n);
    memset(share, 0, n * sizeof *share);
    for (size_t j = 0; j < v.n; j++) {
        uint64_t prev = v.pt[j == 0 ? v.n - 1 : j - 1].pos;
        share[idx_get(&ix, v.pt[j].who, n)] += (double)(v.pt[j].pos - prev);
    }
    double s_vring = max_over_mean(share, n);
    memset(share, 0, n * sizeof *share);
    for (size_t p = 0; p < PARTS; p++) share[idx_get(&ix, t.own[p][0], n)] += 1;
    double s_hrw = max_over_mean(share, n);

    /* keys per member */
    owners_t o_ring = {malloc(nk * sizeof *o_ring.o)}, o_vring = {malloc(nk * sizeof *o_vring.o)},
             o_hrw = {malloc(nk * sizeof *o_hrw.o)}, o_new = {malloc(nk * sizeof *o_new.o)};
    owners_ring(r, ks, &o_ring);
    owners_vring(&v, ks, &o_vring);
    owners_hrw(&t, ks, &o_hrw);
    double *cnt = malloc(n * sizeof *cnt);
    key_counts(&o_ring, nk, ms, n, cnt);
    double k_ring = max_over_mean(cnt, n);
    key_counts(&o_vring, nk, ms, n, cnt);
    double k_vring = max_over_mean(cnt, n);
    key_counts(&o_hrw, nk, ms, n, cnt);
    double k_hrw = max_over_mean(cnt, n);
    memset(cnt, 0, n * sizeof *cnt);
    uint64_t us = 12345 + n;
    for (size_t k = 0; k < nk; k++) {
        us += 0x9E3779B97F4A7C15ull;
        cnt[fmix(us) % n] += 1;
    }
    double k_ideal = max_over_mean(cnt, n);

    printf("%-34s %12s %12s %12s\n", "", "ring", "vnode100", "hrw-65536");
    printf("%-34s %12.4f %12.4f %12.4f\n", "hash-space share max/mean", s_ring, s_vring, s_hrw);
    if (sets > 0) share_spread(n, sets);
    printf("%-34s %12.4f %12.4f %12.4f   (ideal random split: %.4f)\n", "keys per member max/mean", k_ring,
           k_vring, k_hrw, k_ideal);

    /* movement: trials joins of ms[n] (a fresh member each trial) and leaves */
    double jr[3] = {0}, jmax[3] = {0}, lr[3] = {0}, lmax[3] = {0};
    size_t stay_p[3] = {0}, stay_s[3] = {0};
    for (int tr = 0; tr < trials; tr++) {
        for (int leave = 0; leave < 2; leave++) {
            member_t *set = malloc((n + 1) * sizeof *set);
            size_t m2;
            uint64_t changed;
            if (!leave) {
                memcpy(set, ms, n * sizeof *set);
                new_member(&set[n]);
                changed = set[n].id64;
                m2 = n + 1;
            } else {
                if (n < 2) break;
                size_t drop = (size_t)(rng() % n);
                changed = ms[drop].id64;
                memcpy(set, ms, drop * sizeof *set);
                memcpy(set + drop, ms + drop + 1, (n - drop - 1) * sizeof *set);
                m2 = n - 1;
            }
            double opt = leave ? (double)nk / (double)n : (double)nk / (double)(n + 1);
            for (int alg = 0; alg < 3; alg++) {
                const owners_t *before = alg == 0 ? &o_ring : alg == 1 ? &o_vring : &o_hrw;
                if (alg == 0) {
                    ring_t *r2 = build_ring(set, m2, 2, NULL);
                    owners_ring(r2, ks, &o_new);
                    ring_unref(r2);
                } else if (alg == 1) {
                    vring_t v2;
                    vring_build(&v2, set, m2);
                    owners_vring(&v2, ks, &o_new);
                    free(v2.pt);
                } else {
                    hrw_t t2;
                    hrw_build(&t2, set, m2);
                    owners_hrw(&t2, ks, &o_new);
                    free(t2.own);
                }
                moves_t mv;
                compare(before, &o_new, nk, changed, &mv);
                double ratio = (double)mv.moved / opt;
                if (leave) {
                    lr[alg] += ratio / trials;
                    if (ratio > lmax[alg]) lmax[alg] = ratio;
                } else {
                    jr[alg] += ratio / trials;
                    if (ratio > jmax[alg]) jmax[alg] = ratio;
                }
                stay_p[alg] += mv.stayer_primary;
                stay_s[alg] += mv.stayer_sets;
            }
            free(set);
        }
    }
    printf("%-34s %6.3f/%-5.3f %6.3f/%-5.3f %6.3f/%-5.3f\n", "join: moved / optimal (mean/max)", jr[0], jmax[0],
           jr[1], jmax[1], jr[2], jmax[2]);
    if (n >= 2)
        printf("%-34s %6.3f/%-5.3f %6.3f/%-5.3f %6.3f/%-5.3f\n", "leave: moved / optimal (mean/max)", lr[0],
               lmax[0], lr[1], lmax[1], lr[2], lmax[2]);
    printf("%-34s %12zu %12zu %12zu\n", "keys moved between stayers", stay_p[0], stay_p[1], stay_p[2]);
    printf("%-34s %12zu %12zu %12zu\n", "replica sets moved between stayers", stay_s[0], stay_s[1], stay_s[2]);

    /* lookups */
    double l1 = time_lookups(T_RING1, r, &v, &t, ks), l2 = time_lookups(T_RING2, r, &v, &t, ks);
    double v1 = time_lookups(T_VRING1, r, &v, &t, ks), v2 = time_lookups(T_VRING2, r, &v, &t, ks);
    double h2 = time_lookups(T_HRW, r, &v, &t, ks);
    printf("%-34s %12.1f %12.1f %12s\n", "lookup ns, primary (median)", l1, v1, "");
    printf("%-34s %12.1f %12.1f %12.1f   (ring/vnode100 %.2f)\n", "lookup ns, 2 owners (median)", l2, v2, h2,
           l2 / v2);
    static const char *const zones[3] = {"za", "zb", "zc"};
    if (n >= 3) {
        ring_t *rz = build_ring(ms, n, 3, zones);
        double z3 = time_lookups(T_RING3, rz, &v, &t, ks);
        printf("%-34s %12.1f\n", "lookup ns, 3 owners in 3 zones", z3);
        ring_unref(rz);
    }

    /* rebuild */
    double bt[7], vt[3], ht[1];
    for (int i = 0; i < 7; i++) {
        double t0 = now_s();
        ring_t *x = build_ring(ms, n, 2, NULL);
        bt[i] = (now_s() - t0) * 1e3;
        ring_unref(x);
    }
    for (int i = 0; i < 3; i++) {
        double t0 = now_s();
        vring_t x;
        vring_build(&x, ms, n);
        vt[i] = (now_s() - t0) * 1e3;
        free(x.pt);
    }
    {
        double t0 = now_s();
        hrw_t x;
        hrw_build(&x, ms, n);
        ht[0] = (now_s() - t0) * 1e3;
        free(x.own);
    }
    ring_stats_t st;
    ring_get_stats(r, &st);
    printf("%-34s %12.2f %12.2f %12.2f\n", "rebuild ms (median)", median(bt, 7), median(vt, 3), ht[0]);
    printf("%-34s %12.0f %12.0f %12.0f\n", "snapshot KiB", st.bytes / 1024.0,
           v.n * sizeof(vpoint_t) / 1024.0, PARTS * 2 * 8 / 1024.0);

    ring_unref(r);
    free(v.pt);
    free(t.own);
    free(share);
    free(cnt);
    idx_free(&ix);
    free(o_ring.o);
    free(o_vring.o);
    free(o_hrw.o);
    free(o_new.o);
    free(ms);
}

int main(int argc, char **argv)
{
    size_t sizes[16] = {3, 10, 100, 1000}, nsizes = 4, nkeys = 1000000;
    int trials = 3, sets = 100;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            nsizes = 0;
            for (char *s = strtok(argv[++i], ","); s && nsizes < 16; s = strtok(NULL, ","))
                sizes[nsizes++] = strtoul(s, NULL, 10);
        } else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
            nkeys = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--trials") == 0 && i + 1 < argc) {
            trials = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--sets") == 0 && i + 1 < argc) {
            sets = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--sizes 3,10,100,1000] [--keys N] [--trials T] [--sets S] [--seed S]\n", argv[0]);
            return 2;
        }
    }
    if (nkeys < BATCH || trials < 1) {
        fprintf(stderr, "need --keys >= %d and --trials >= 1\n", BATCH);
        return 2;
    }
    rng_state = seed;
    keyset_t ks = {malloc(nkeys * sizeof *ks.key), malloc(nkeys * sizeof *ks.hash), nkeys};
    for (size_t k = 0; k < nkeys; k++) {
        uint64_t a = rng(), b = rng();
        memcpy(ks.key[k], &a, 8);
        memcpy(ks.key[k] + 8, &b, 8);
        ks.hash[k] = ring_key_hash(ks.key[k], 16);
    }
    printf("cluster/ring: multi-probe, %d probes, %d points per weight unit; references: a ring with %d vnodes\n"
           "per member, %d partitions assigned by rendezvous hashing (top 2). Seed %llu, %d trial(s).\n",
           RING_PROBES, RING_POINTS_PER_WEIGHT, VNODES, PARTS, (unsigned long long)seed, trials);
    for (size_t i = 0; i < nsizes; i++)
        if (sizes[i] >= 1) bench_size(sizes[i], &ks, trials, sizes[i] >= 1000 ? sets / 10 : sets);
    free(ks.key);
    free(ks.hash);
    return 0;
}
