/* ring: owners are a pure function of the member set, distinct, spread over
 * zones, balanced, move only to a joiner / from a leaver, and match a
 * brute-force reading of the algorithm documented in ring.h. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/ring.h"

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char *zone_names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};

/* n members with random ids; zone i % nzones (nzones 0: no label). */
static ring_member_t *make_members(size_t n, uint64_t seed, unsigned nzones)
{
    ring_member_t *m = calloc(n + 1, sizeof *m);
    assert_non_null(m);
    for (size_t i = 0; i < n + 1; i++) {
        uint64_t a = rng_next(&seed), b = rng_next(&seed);
        memcpy(m[i].id, &a, 8);
        memcpy(m[i].id + 8, &b, 8);
        m[i].zone = nzones ? zone_names[i % nzones] : NULL;
        m[i].weight = RING_WEIGHT_DEFAULT;
    }
    return m; /* one spare member at index n, for joins */
}

static void key_of(uint64_t i, uint8_t key[16])
{
    uint64_t s = i * 7919 + 1, a = rng_next(&s), b = rng_next(&s);
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

static const uint8_t *owner_id(const ring_t *r, uint32_t idx)
{
    const ring_member_t *m = ring_member(r, idx);
    assert_non_null(m);
    return m->id;
}

static void test_bad_input(void **state)
{
    ring_member_t *m = make_members(4, 1, 0);
    errno = 0;
    assert_null(ring_build(m, 0, 2, 1));
    assert_int_equal(errno, EINVAL);
    assert_null(ring_build(NULL, 3, 2, 1));
    assert_null(ring_build(m, 4, 0, 1));
    assert_null(ring_build(m, 4, RING_REPLICAS_MAX + 1, 1));
    m[2].weight = 0;
    assert_null(ring_build(m, 4, 2, 1));
    m[2].weight = RING_WEIGHT_MAX + 1;
    assert_null(ring_build(m, 4, 2, 1));
    m[2].weight = 1;
    char longzone[LIMITS_ZONE_MAX + 1];
    memset(longzone, 'z', LIMITS_ZONE_MAX);
    longzone[LIMITS_ZONE_MAX] = 0;
    m[1].zone = longzone;
    assert_null(ring_build(m, 4, 2, 1));
    longzone[LIMITS_ZONE_MAX - 1] = 0; /* the longest label that fits */
    ring_t *r = ring_build(m, 4, 2, 1);
    assert_non_null(r);
    ring_unref(r);
    m[1].zone = NULL;
    ring_member_t *many = make_members(RING_WEIGHT_TOTAL_MAX / RING_WEIGHT_MAX + 1, 17, 0);
    for (size_t i = 0; i <= RING_WEIGHT_TOTAL_MAX / RING_WEIGHT_MAX; i++) many[i].weight = RING_WEIGHT_MAX;
    assert_null(ring_build(many, RING_WEIGHT_TOTAL_MAX / RING_WEIGHT_MAX + 1, 2, 1)); /* too many points */
    free(many);
    memcpy(m[3].id, m[0].id, RING_ID_LEN); /* duplicate id */
    errno = 0;
    assert_null(ring_build(m, 4, 2, 1));
    assert_int_equal(errno, EINVAL);
    free(m);
}

static void test_refcount(void **state)
{
    ring_member_t *m = make_members(3, 2, 0);
    ring_t *r = ring_build(m, 3, 2, 42);
    assert_non_null(r);
    assert_ptr_equal(ring_ref(r), r);
    assert_ptr_equal(ring_ref(r), r);
    ring_unref(r);
    ring_unref(r);
    assert_int_equal(ring_version(r), 42); /* still one reference */
    ring_unref(r);
    ring_unref(NULL);
    free(m);
}

static void test_accessors(void **state)
{
    ring_member_t *m = make_members(10, 3, 3);
    m[4].zone = NULL;
    ring_t *r = ring_build(m, 10, 3, 7);
    assert_non_null(r);
    assert_int_equal(ring_member_count(r), 10);
    assert_int_equal(ring_replicas(r), 3);
    for (uint32_t i = 0; i + 1 < 10; i++)
        assert_true(memcmp(ring_member(r, i)->id, ring_member(r, i + 1)->id, RING_ID_LEN) < 0);
    assert_null(ring_member(r, 10));
    for (size_t i = 0; i < 10; i++) {
        uint32_t idx;
        assert_true(ring_find(r, m[i].id, &idx));
        const ring_member_t *rm = ring_member(r, idx);
        assert_memory_equal(rm->id, m[i].id, RING_ID_LEN);
        assert_string_equal(rm->zone, m[i].zone ? m[i].zone : "");
        assert_int_equal(rm->weight, 1);
    }
    assert_false(ring_find(r, m[10].id, NULL));
    ring_stats_t st;
    ring_get_stats(r, &st);
    assert_int_equal(st.version, 7);
    assert_int_equal(st.members, 10);
    assert_int_equal(st.zones, 4); /* "", a, b, c */
    assert_int_equal(st.points, 10 * RING_POINTS_PER_WEIGHT);
    assert_true(st.bytes > 0);
    double sum = 0;
    for (uint32_t i = 0; i < 10; i++) sum += ring_member_share(r, i);
    assert_true(sum > 0.999999 && sum < 1.000001);
    ring_unref(r);
    free(m);
}

static void test_single_member(void **state)
{
    ring_member_t *m = make_members(1, 4, 0);
    ring_t *r = ring_build(m, 1, 3, 1);
    assert_non_null(r);
    assert_int_equal(ring_replicas(r), 1);
    uint32_t out[5];
    assert_int_equal(ring_owners(r, "k", 1, out, 5), 1);
    assert_int_equal(out[0], 0);
    assert_true(ring_member_share(r, 0) == 1.0);
    ring_unref(r);
    free(m);
}

/* Same set, any order, labels at other addresses: the same snapshot. */
static void test_determinism(void **state)
{
    size_t n = 40;
    ring_member_t *m = make_members(n, 5, 3);
    for (size_t i = 0; i < n; i++) m[i].weight = 1 + (uint32_t)(i % 3);
    ring_member_t *shuf = malloc(n * sizeof *shuf);
    char labels[40][8];
    uint64_t s = 99;
    memcpy(shuf, m, n * sizeof *shuf);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_next(&s) % (i + 1);
        ring_member_t t = shuf[i];
        shuf[i] = shuf[j];
        shuf[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(labels[i], sizeof labels[i], "%s", shuf[i].zone);
        shuf[i].zone = labels[i];
    }
    ring_t *a = ring_build(m, n, 3, 1), *b = ring_build(shuf, n, 3, 1);
    assert_non_null(a);
    assert_non_null(b);
    for (uint32_t i = 0; i < n; i++) {
        assert_memory_equal(ring_member(a, i)->id, ring_member(b, i)->id, RING_ID_LEN);
        assert_true(ring_member_share(a, i) == ring_member_share(b, i));
    }
    for (uint64_t k = 0; k < 20000; k++) {
        uint8_t key[16];
        uint32_t oa[3], ob[3];
        key_of(k, key);
        assert_int_equal(ring_owners(a, key, sizeof key, oa, 3), 3);
        assert_int_equal(ring_owners(b, key, sizeof key, ob, 3), 3);
        assert_memory_equal(oa, ob, sizeof oa);
    }
    ring_unref(a);
    ring_unref(b);
    free(shuf);
    free(m);
}

/* min(cap, replicas, members) distinct owners; a smaller cap is a prefix. */
static void test_distinct_owners(void **state)
{
    for (size_t n = 1; n <= 8; n++) {
        for (unsigned zones = 0; zones <= 3; zones += 3) {
            for (unsigned rep = 1; rep <= RING_REPLICAS_MAX; rep++) {
                ring_member_t *m = make_members(n, 6 + n, zones);
                ring_t *r = ring_build(m, n, rep, 1);
                assert_non_null(r);
                size_t want = rep < n ? rep : n;
                assert_int_equal(ring_replicas(r), want);
                for (uint64_t k = 0; k < 2000; k++) {
                    uint8_t key[16];
                    uint32_t out[RING_REPLICAS_MAX], pre[RING_REPLICAS_MAX];
                    key_of(k, key);
                    assert_int_equal(ring_owners(r, key, sizeof key, out, RING_REPLICAS_MAX), want);
                    for (size_t i = 0; i < want; i++) {
                        assert_true(out[i] < n);
                        for (size_t j = 0; j < i; j++) assert_int_not_equal(out[i], out[j]);
                    }
                    for (size_t cap = 0; cap < want; cap++) {
                        assert_int_equal(ring_owners(r, key, sizeof key, pre, cap), cap);
                        assert_memory_equal(pre, out, cap * sizeof *pre);
                    }
                }
                ring_unref(r);
                free(m);
            }
        }
    }
}

static void test_balance(void **state)
{
    size_t n = 100, keys = 200000;
    ring_member_t *m = make_members(n, 7, 0);
    ring_t *r = ring_build(m, n, 2, 1);
    assert_non_null(r);
    ring_stats_t st;
    ring_get_stats(r, &st);
    double maxshare = 0;
    for (uint32_t i = 0; i < n; i++)
        if (ring_member_share(r, i) > maxshare) maxshare = ring_member_share(r, i);
    assert_true(st.balance <= 1.05);
    assert_true(maxshare * n <= 1.05);
    /* keys follow the computed shares (2000 a member: binomial noise ~2%) */
    unsigned *count = calloc(n, sizeof *count);
    for (uint64_t k = 0; k < keys; k++) {
        uint8_t key[16];
        uint32_t o;
        key_of(k, key);
        ring_owners(r, key, sizeof key, &o, 1);
        count[o]++;
    }
    unsigned maxc = 0;
    for (uint32_t i = 0; i < n; i++) {
        double expect = ring_member_share(r, i) * keys;
        assert_true(count[i] > expect * 0.85 && count[i] < expect * 1.15);
        if (count[i] > maxc) maxc = count[i];
    }
    assert_true((double)maxc / ((double)keys / n) <= 1.15);
    free(count);
    ring_unref(r);
    free(m);
}

static void test_weights(void **state)
{
    size_t n = 10;
    ring_member_t *m = make_members(n, 8, 0);
    m[3].weight = 4;
    ring_t *r = ring_build(m, n, 1, 1);
    assert_non_null(r);
    uint32_t heavy;
    assert_true(ring_find(r, m[3].id, &heavy));
    double share = ring_member_share(r, heavy);
    assert_true(share > 4.0 / 13 * 0.9 && share < 4.0 / 13 * 1.1);
    ring_stats_t st;
    ring_get_stats(r, &st);
    assert_int_equal(st.points, 13 * RING_POINTS_PER_WEIGHT);
    assert_true(st.balance < 1.15);
    ring_unref(r);
    free(m);
}

static bool has_id(const ring_t *r, const uint32_t *set, size_t n, const uint8_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(owner_id(r, set[i]), id, RING_ID_LEN) == 0) return true;
    return false;
}

/* from -> to is one join (to has the member `changed` more) or one leave
 * (to has it less): primaries move only to the joiner / from the leaver,
 * replica sets change only by it, and the primary movement is close to the
 * optimal 1/N. */
static void check_movement(const ring_t *from, const ring_t *to, const uint8_t *changed, bool join,
                           unsigned rep)
{
    size_t keys = 60000, moved = 0;
    size_t n = ring_member_count(join ? to : from);
    for (uint64_t k = 0; k < keys; k++) {
        uint8_t key[16];
        uint32_t a[RING_REPLICAS_MAX], b[RING_REPLICAS_MAX];
        key_of(k, key);
        size_t na = ring_owners(from, key, sizeof key, a, rep);
        size_t nb = ring_owners(to, key, sizeof key, b, rep);
        const uint8_t *pa = owner_id(from, a[0]), *pb = owner_id(to, b[0]);
        if (memcmp(pa, pb, RING_ID_LEN) != 0) {
            moved++;
            assert_memory_equal(join ? pb : pa, changed, RING_ID_LEN);
        }
        /* replica sets: a join can only add the joiner (dropping one
         * stayer); a leave can only drop the leaver (adding one stayer) */
        size_t gained = 0, lost = 0;
        for (size_t i = 0; i < nb; i++) {
            const uint8_t *id = owner_id(to, b[i]);
            if (!has_id(from, a, na, id)) {
                gained++;
                if (join) assert_memory_equal(id, changed, RING_ID_LEN);
            }
        }
        for (size_t i = 0; i < na; i++) {
            const uint8_t *id = owner_id(from, a[i]);
            if (!has_id(to, b, nb, id)) {
                lost++;
                if (!join) assert_memory_equal(id, changed, RING_ID_LEN);
            }
        }
        assert_true(gained <= 1 && lost <= 1);
        assert_int_equal(gained, lost); /* the set size is the same: one replaces the other */
    }
    double optimal = (double)keys / n;
    assert_true(moved > optimal * 0.5 && moved < optimal * 1.5);
}

static void test_movement(void **state)
{
    for (unsigned zones = 0; zones <= 3; zones += 3) {
        size_t n = 30;
        ring_member_t *m = make_members(n, 9 + zones, zones);
        unsigned rep = 3;
        ring_t *base = ring_build(m, n, rep, 1);
        ring_t *joined = ring_build(m, n + 1, rep, 2);       /* m[n] joins */
        ring_t *left = ring_build(m + 1, n - 1, rep, 3);     /* m[0] leaves */
        assert_non_null(base);
        assert_non_null(joined);
        assert_non_null(left);
        check_movement(base, joined, m[n].id, true, rep);
        check_movement(joined, base, m[n].id, false, rep);
        check_movement(base, left, m[0].id, false, rep);
        check_movement(left, base, m[0].id, true, rep);
        ring_unref(base);
        ring_unref(joined);
        ring_unref(left);
        free(m);
    }
}

static const char *zone_of(const ring_t *r, uint32_t idx)
{
    return ring_member(r, idx)->zone;
}

static void test_zones(void **state)
{
    /* 3 zones of 4: three owners, three zones */
    ring_member_t *m = make_members(12, 10, 3);
    ring_t *r = ring_build(m, 12, 3, 1);
    for (uint64_t k = 0; k < 5000; k++) {
        uint8_t key[16];
        uint32_t o[3];
        key_of(k, key);
        ring_owners(r, key, sizeof key, o, 3);
        assert_string_not_equal(zone_of(r, o[0]), zone_of(r, o[1]));
        assert_string_not_equal(zone_of(r, o[0]), zone_of(r, o[2]));
        assert_string_not_equal(zone_of(r, o[1]), zone_of(r, o[2]));
    }
    ring_unref(r);
    free(m);

    /* 9 members in "a", 1 in "b": the "b" member owns a copy of every key */
    m = make_members(10, 11, 1);
    m[9].zone = "b";
    r = ring_build(m, 10, 2, 1);
    uint32_t lone;
    assert_true(ring_find(r, m[9].id, &lone));
    for (uint64_t k = 0; k < 5000; k++) {
        uint8_t key[16];
        uint32_t o[2];
        key_of(k, key);
        ring_owners(r, key, sizeof key, o, 2);
        assert_true(o[0] == lone || o[1] == lone);
        assert_string_not_equal(zone_of(r, o[0]), zone_of(r, o[1]));
    }
    ring_unref(r);

    /* 2 zones, 3 replicas: the first two in different zones */
    r = ring_build(m, 10, 3, 1);
    for (uint64_t k = 0; k < 2000; k++) {
        uint8_t key[16];
        uint32_t o[3];
        key_of(k, key);
        assert_int_equal(ring_owners(r, key, sizeof key, o, 3), 3);
        assert_string_not_equal(zone_of(r, o[0]), zone_of(r, o[1]));
    }
    ring_unref(r);
    free(m);
}

/* ---- a brute-force reading of the algorithm documented in ring.h ---- */

static uint64_t ref_mum(uint64_t a, uint64_t b)
{
    __uint128_t p = (__uint128_t)a * b;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

/* Owners by ranking every member by its distance, then the zone walk. */
static size_t ref_owners(const ring_member_t *sorted, size_t n, uint64_t h, uint32_t *out, size_t want)
{
    uint64_t q[RING_PROBES], s = h;
    for (int i = 0; i < RING_PROBES; i++) {
        s += 0xa0761d6478bd642full;
        q[i] = ref_mum(s, s ^ 0xe7037ed1a0b428dbull);
    }
    uint64_t *dist = malloc(n * sizeof *dist);
    for (size_t m = 0; m < n; m++) {
        dist[m] = UINT64_MAX;
        for (uint32_t j = 0; j < sorted[m].weight * RING_POINTS_PER_WEIGHT; j++) {
            uint8_t buf[RING_ID_LEN + 4];
            memcpy(buf, sorted[m].id, RING_ID_LEN);
            for (int b = 0; b < 4; b++) buf[RING_ID_LEN + b] = (uint8_t)(j >> (8 * b));
            uint64_t p = ring_key_hash(buf, sizeof buf);
            for (int i = 0; i < RING_PROBES; i++)
                if (p - q[i] < dist[m]) dist[m] = p - q[i];
        }
    }
    size_t got = 0;
    bool *taken = calloc(n, sizeof *taken);
    /* phase 1: the best member of each zone not used yet */
    while (got < want) {
        size_t best = n;
        for (size_t m = 0; m < n; m++) {
            if (taken[m]) continue;
            bool used = false;
            for (size_t i = 0; i < got; i++)
                if (strcmp(sorted[out[i]].zone ? sorted[out[i]].zone : "", sorted[m].zone ? sorted[m].zone : "") == 0)
                    used = true;
            if (!used && (best == n || dist[m] < dist[best])) best = m;
        }
        if (best == n) break;
        taken[best] = true;
        out[got++] = (uint32_t)best;
    }
    /* phase 2: the best remaining members */
    while (got < want) {
        size_t best = n;
        for (size_t m = 0; m < n; m++)
            if (!taken[m] && (best == n || dist[m] < dist[best])) best = m;
        taken[best] = true;
        out[got++] = (uint32_t)best;
    }
    free(taken);
    free(dist);
    return got;
}

static int cmp_member(const void *a, const void *b)
{
    return memcmp(((const ring_member_t *)a)->id, ((const ring_member_t *)b)->id, RING_ID_LEN);
}

static void check_reference(ring_member_t *m, size_t n, unsigned rep, unsigned keys)
{
    ring_t *r = ring_build(m, n, rep, 1);
    assert_non_null(r);
    qsort(m, n, sizeof *m, cmp_member);
    size_t want = rep < n ? rep : n;
    for (uint64_t k = 0; k < keys; k++) {
        uint8_t key[16];
        uint32_t a[RING_REPLICAS_MAX], b[RING_REPLICAS_MAX];
        key_of(k + 1000000, key);
        uint64_t h = ring_key_hash(key, sizeof key);
        assert_int_equal(ring_owners_hash(r, h, a, rep), want);
        assert_int_equal(ref_owners(m, n, h, b, want), want);
        assert_memory_equal(a, b, want * sizeof *a);
    }
    ring_unref(r);
}

static void test_reference(void **state)
{
    ring_member_t *m;
    /* no zones, mixed weights */
    m = make_members(12, 12, 0);
    for (size_t i = 0; i < 12; i++) m[i].weight = 1 + (uint32_t)(i % 4);
    check_reference(m, 12, 3, 300);
    free(m);
    /* balanced zones */
    m = make_members(9, 13, 3);
    check_reference(m, 9, 5, 300);
    free(m);
    /* two big zones and a lone member in a third: zone walks bounce between
     * the two used zones and fall back to the per-zone search */
    m = make_members(41, 14, 2);
    m[40].zone = "c";
    check_reference(m, 41, 3, 200);
    free(m);
    /* one member per zone */
    m = make_members(8, 15, 8);
    check_reference(m, 8, 4, 300);
    free(m);
}

/* Hash values are part of the protocol: they must not change. */
static void test_key_hash(void **state)
{
    uint8_t buf[128];
    for (int i = 0; i < 128; i++) buf[i] = (uint8_t)(i * 7 + 1);
    static const size_t lens[] = {0, 1, 3, 4, 8, 16, 17, 48, 49, 100, 128};
    static const uint64_t expect[] = {
        0x0409638ee2bde459ull, 0xd5b26ee485f2a92dull, 0xaf4b147f7f316c0aull, 0x0bdee9a96d7d3cb2ull,
        0x9ac626ab88911893ull, 0x37f612201427870eull, 0x560763d84ffab150ull, 0x45b77dc5e6296f55ull,
        0x249c35ef0af8c974ull, 0xef72716f4468c056ull, 0xcde55a3a9e51ef67ull,
    };
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        uint64_t h = ring_key_hash(buf, lens[i]);
        if (h != expect[i]) printf("length %zu: 0x%016llx\n", lens[i], (unsigned long long)h);
        assert_true(h == expect[i]);
    }
    assert_true(ring_key_hash("a", 1) != ring_key_hash("b", 1));
    uint8_t zeros[32] = {0};
    for (size_t l = 0; l < 32; l++) assert_true(ring_key_hash(zeros, l) != ring_key_hash(zeros, l + 1));
}

/* The publishing pattern of ring.h: a slot guarded by a mutex held only for
 * swap + ref; readers look up without locks on their own reference. */
typedef struct slot {
    pthread_mutex_t mu;
    ring_t *cur;
    int stop;
} slot_t;

static ring_t *slot_get(slot_t *s)
{
    pthread_mutex_lock(&s->mu);
    ring_t *r = s->cur ? ring_ref(s->cur) : NULL;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void *reader(void *arg)
{
    slot_t *s = arg;
    uint64_t last = 0, k = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        ring_t *r = slot_get(s);
        assert_true(ring_version(r) >= last);
        last = ring_version(r);
        for (int i = 0; i < 200; i++, k++) {
            uint32_t o[2];
            assert_int_equal(ring_owners(r, &k, sizeof k, o, 2), ring_replicas(r));
        }
        ring_unref(r);
    }
    return NULL;
}

static void test_threads(void **state)
{
    slot_t s = {.cur = NULL, .stop = 0};
    pthread_mutex_init(&s.mu, NULL);
    ring_member_t *m = make_members(20, 16, 2);
    s.cur = ring_build(m, 10, 2, 1);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, reader, &s);
    for (uint64_t v = 2; v < 40; v++) {
        ring_t *next = ring_build(m, 10 + v % 10, 2, v);
        assert_non_null(next);
        pthread_mutex_lock(&s.mu);
        ring_t *old = s.cur;
        s.cur = next;
        pthread_mutex_unlock(&s.mu);
        ring_unref(old);
    }
    pthread_mutex_lock(&s.mu);
    s.stop = 1;
    pthread_mutex_unlock(&s.mu);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    ring_unref(s.cur);
    pthread_mutex_destroy(&s.mu);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_single_member),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_distinct_owners),
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_movement),
        cmocka_unit_test(test_zones),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_key_hash),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
