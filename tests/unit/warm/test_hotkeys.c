/* hotkeys: Space-Saving's bounds against the exact decayed counts of a Zipf
 * stream, the sketch's one-sided error and its size on a uniform one, aging
 * after the popularity moves, binary and maximal keys, publication, merging
 * and a reader racing the owner. Every stream comes from a fixed seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "node/warm/hotkeys.h"

/* ---------- streams ---------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1p-53;
}

/* Ranks 0..n-1 with P(rank i) proportional to (i+1)^-s. */
typedef struct zipf {
    double *cdf;
    size_t n;
} zipf_t;

static void zipf_init(zipf_t *z, size_t n, double s)
{
    z->n = n;
    z->cdf = malloc(n * sizeof *z->cdf);
    assert_non_null(z->cdf);
    double sum = 0;
    for (size_t i = 0; i < n; i++) z->cdf[i] = sum += pow((double)(i + 1), -s);
    for (size_t i = 0; i < n; i++) z->cdf[i] /= sum;
}

static size_t zipf_draw(const zipf_t *z, uint64_t *rng)
{
    double u = rng_unit(rng);
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->cdf[mid] <= u) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Key i: binary (its bytes include zeros), 6 bytes. */
#define KEY_LEN 6

static void key_of(uint32_t i, char out[KEY_LEN])
{
    out[0] = 'h';
    out[1] = 0;
    memcpy(out + 2, &i, 4);
}

static uint32_t key_index(const hotkeys_entry_t *e)
{
    assert_int_equal(e->klen, KEY_LEN);
    assert_int_equal(e->key[0], 'h');
    uint32_t i;
    memcpy(&i, e->key + 2, 4);
    return i;
}

static void record_index(hotkeys_t *h, uint32_t i)
{
    char k[KEY_LEN];
    key_of(i, k);
    hotkeys_record(h, k, KEY_LEN);
}

static hotkeys_entry_t *entries(size_t n)
{
    hotkeys_entry_t *e = calloc(n, sizeof *e);
    assert_non_null(e);
    return e;
}

static void assert_ordered(const hotkeys_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(e[i].count > 0);
        assert_true(e[i].error <= e[i].count);
        assert_true(e[i].klen >= 1 && e[i].klen <= LIMITS_KEY_MAX);
        if (i) assert_true(e[i - 1].count >= e[i].count);
    }
}

/* ---------- tests ---------- */

static void test_config(void **state)
{
    (void)state;
    hotkeys_stats_t st;
    hotkeys_t *h = hotkeys_new(NULL);
    assert_non_null(h);
    hotkeys_stats(h, &st);
    assert_int_equal(st.width, HOTKEYS_WIDTH_DEFAULT);
    assert_int_equal(st.period, HOTKEYS_PERIOD_FACTOR * HOTKEYS_WIDTH_DEFAULT);
    assert_int_equal(st.records, 0);
    assert_true(st.memory_bytes >= HOTKEYS_ROWS * HOTKEYS_WIDTH_DEFAULT);
    assert_int_equal(hotkeys_top(h, NULL, 0), 0);
    hotkeys_free(h);
    hotkeys_free(NULL);

    h = hotkeys_new(&(hotkeys_config_t){.top_k = 3, .sketch_width = 100});
    hotkeys_stats(h, &st);
    assert_int_equal(st.width, 128);
    hotkeys_free(h);
    h = hotkeys_new(&(hotkeys_config_t){.sketch_width = 1});
    hotkeys_stats(h, &st);
    assert_int_equal(st.width, HOTKEYS_WIDTH_MIN);
    hotkeys_free(h);
    assert_null(hotkeys_new(&(hotkeys_config_t){.top_k = HOTKEYS_TOP_K_MAX + 1}));
    assert_null(hotkeys_new(&(hotkeys_config_t){.sketch_width = HOTKEYS_WIDTH_MAX + 1}));
}

/* The algorithm step by step on K = 3 (a sketch this small-keyed has no
 * collisions: every estimate is exact). */
static void test_space_saving_steps(void **state)
{
    (void)state;
    hotkeys_t *h = hotkeys_new(&(hotkeys_config_t){.top_k = 3, .seed = 1});
    const char *stream[] = {"a", "a", "a", "b", "b", "c", "d"};
    for (size_t i = 0; i < sizeof stream / sizeof *stream; i++) hotkeys_record(h, stream[i], 1);
    hotkeys_stats_t st;
    hotkeys_publish(h);
    hotkeys_stats(h, &st);
    /* d, seen once, may count no more than c (1): kept out */
    assert_int_equal(st.filtered, 1);
    assert_int_equal(st.replacements, 0);
    assert_int_equal(hotkeys_estimate(h, "d", 1), 1);
    hotkeys_record(h, "d", 1);
    hotkeys_publish(h);
    hotkeys_entry_t out[4];
    assert_int_equal(hotkeys_top(h, out, 4), 3);
    /* d took c's place: count min + 1, error min; b before d (less error) */
    assert_int_equal(out[0].key[0], 'a');
    assert_int_equal(out[0].count, 3);
    assert_int_equal(out[0].error, 0);
    assert_int_equal(out[1].key[0], 'b');
    assert_int_equal(out[1].count, 2);
    assert_int_equal(out[1].error, 0);
    assert_int_equal(out[2].key[0], 'd');
    assert_int_equal(out[2].count, 2);
    assert_int_equal(out[2].error, 1);
    /* e replaces one of the two at 2, on its third record */
    for (int i = 0; i < 3; i++) hotkeys_record(h, "e", 1);
    hotkeys_publish(h);
    assert_int_equal(hotkeys_top(h, out, 4), 3);
    assert_int_equal(out[0].count, 3);
    assert_true((out[0].key[0] == 'a' && out[0].error == 0) || (out[0].key[0] == 'e' && out[0].error == 2));
    bool have_e = false;
    for (int i = 0; i < 3; i++)
        if (out[i].key[0] == 'e') {
            have_e = true;
            assert_int_equal(out[i].count, 3);
            assert_int_equal(out[i].error, 2);
        }
    assert_true(have_e);
    hotkeys_stats(h, &st);
    assert_int_equal(st.records, 11);
    assert_int_equal(st.replacements, 2);
    assert_int_equal(st.filtered, 3);
    assert_int_equal(st.keys, 3);
    hotkeys_free(h);
}

#define ZIPF_KEYS 100000
#define ZIPF_DRAWS 1000000

static int cmp_by_total(const void *a, const void *b, void *ctx)
{
    const uint64_t *t = ctx;
    uint64_t x = t[*(const uint32_t *)a], y = t[*(const uint32_t *)b];
    return x > y ? -1 : x < y;
}

/* Space-Saving's guarantees against the exact decayed counts (halved, down,
 * whenever the instance resets), across 24 resets. */
static void test_zipf_top(void **state)
{
    (void)state;
    const size_t K = 128;
    hotkeys_t *h = hotkeys_new(&(hotkeys_config_t){.top_k = K, .sketch_width = 4096, .seed = 7});
    hotkeys_stats_t st;
    hotkeys_stats(h, &st);
    zipf_t z;
    zipf_init(&z, ZIPF_KEYS, 1.1);
    uint64_t *decayed = calloc(ZIPF_KEYS, sizeof *decayed), *total = calloc(ZIPF_KEYS, sizeof *total);
    assert_non_null(decayed);
    assert_non_null(total);
    uint64_t rng = 12345;
    for (uint64_t t = 1; t <= ZIPF_DRAWS; t++) {
        uint32_t i = (uint32_t)zipf_draw(&z, &rng);
        record_index(h, i);
        decayed[i]++;
        total[i]++;
        if (t % st.period == 0)
            for (size_t j = 0; j < ZIPF_KEYS; j++) decayed[j] >>= 1;
    }
    hotkeys_publish(h);
    hotkeys_stats(h, &st);
    assert_int_equal(st.records, ZIPF_DRAWS);
    assert_int_equal(st.resets, ZIPF_DRAWS / st.period);
    assert_true(st.replacements > 0);
    assert_true(st.filtered > 0);

    hotkeys_entry_t *out = entries(K);
    size_t n = hotkeys_top(h, out, K);
    assert_int_equal(n, K);
    assert_ordered(out, n);
    bool *reported = calloc(ZIPF_KEYS, sizeof *reported);
    for (size_t r = 0; r < n; r++) {
        uint32_t i = key_index(&out[r]);
        assert_true(i < ZIPF_KEYS);
        assert_false(reported[i]);
        reported[i] = true;
        assert_true(out[r].count - out[r].error <= decayed[i]);
        assert_true(decayed[i] <= out[r].count);
    }
    /* no key left out counts more than the smallest reported; the sketch
     * never counts less than the truth */
    for (uint32_t j = 0; j < ZIPF_KEYS; j++) {
        if (!reported[j]) assert_true(decayed[j] <= out[n - 1].count);
        char k[KEY_LEN];
        key_of(j, k);
        assert_true(hotkeys_estimate(h, k, KEY_LEN) >= decayed[j]);
    }
    /* the true top 20 over the whole stream */
    uint32_t *ids = malloc(ZIPF_KEYS * sizeof *ids);
    for (uint32_t j = 0; j < ZIPF_KEYS; j++) ids[j] = j;
    qsort_r(ids, ZIPF_KEYS, sizeof *ids, cmp_by_total, total);
    for (int r = 0; r < 20; r++) assert_true(reported[ids[r]]);
    free(ids);
    free(reported);
    free(out);
    free(decayed);
    free(total);
    free(z.cdf);
    hotkeys_free(h);
}

/* Count-min: one-sided error; per row the expected excess of a key is at
 * most N / width (the other keys' records spread over width cells), and
 * the minimum of the rows (conservative update only lowers it) does no
 * worse on average. By Markov a row exceeds e * N / width with probability
 * at most 1/e, all four rows e^-4 < 2%: 5% leaves room for chance. */
static void test_sketch_bounds(void **state)
{
    (void)state;
    const size_t width = 1024, keys = 2000, draws = 9000;   /* under one period: no reset */
    hotkeys_t *h = hotkeys_new(&(hotkeys_config_t){.top_k = 64, .sketch_width = width, .seed = 99});
    uint32_t *truth = calloc(keys + 1000, sizeof *truth);
    uint64_t rng = 777;
    for (size_t t = 0; t < draws; t++) {
        uint32_t i = (uint32_t)(rng_next(&rng) % keys);
        record_index(h, i);
        truth[i]++;
    }
    double excess = 0;
    size_t far = 0;
    for (uint32_t i = 0; i < keys + 1000; i++) {   /* 1000 never seen */
        char k[KEY_LEN];
        key_of(i, k);
        uint32_t est = hotkeys_estimate(h, k, KEY_LEN);
        assert_true(est >= truth[i]);
        excess += est - truth[i];
        if (est - truth[i] > exp(1) * (double)draws / (double)width) far++;
    }
    excess /= keys + 1000;
    assert_true(excess <= (double)draws / (double)width);
    assert_true(far <= (keys + 1000) / 20);
    hotkeys_stats_t st;
    hotkeys_stats(h, &st);
    hotkeys_publish(h);
    hotkeys_stats(h, &st);
    assert_int_equal(st.resets, 0);
    free(truth);

    /* a reset halves: the period's last record is one of x's, so each of
     * x's cells at the minimum grows to est + 1, then halves */
    for (int i = 0; i < 300; i++) hotkeys_record(h, "x", 1);
    for (size_t t = draws + 300; t < st.period - 1; t++) record_index(h, (uint32_t)(keys + 1000 + t));
    uint32_t before = hotkeys_estimate(h, "x", 1);
    assert_true(before >= 300);
    hotkeys_record(h, "x", 1);
    hotkeys_publish(h);
    hotkeys_stats(h, &st);
    assert_int_equal(st.resets, 1);
    assert_int_equal(hotkeys_estimate(h, "x", 1), (before + 1) / 2);
    assert_int_equal(hotkeys_estimate(h, "", 0), 0);
    hotkeys_free(h);

    /* a counter never saturates: one key alone ages the sketch early, and
     * the estimate stays above its (exact) top-K count */
    h = hotkeys_new(&(hotkeys_config_t){.top_k = 4, .sketch_width = 4096, .seed = 4});
    for (int i = 0; i < 200000; i++) hotkeys_record(h, "one", 3);
    hotkeys_publish(h);
    hotkeys_stats(h, &st);
    assert_true(st.resets > 200000 / st.period);
    hotkeys_entry_t e;
    assert_int_equal(hotkeys_top(h, &e, 1), 1);
    assert_int_equal(e.error, 0);
    uint32_t est = hotkeys_estimate(h, "one", 3);
    assert_true(est < UINT16_MAX);
    assert_true(est >= e.count);
    assert_true(e.count > 16384);
    hotkeys_free(h);
}

/* The first half of the stream favours set A, the second the disjoint set
 * B: once B has run for a dozen periods, A has faded from the top. */
static void test_aging(void **state)
{
    (void)state;
    const size_t half = ZIPF_KEYS / 2;
    hotkeys_t *h = hotkeys_new(&(hotkeys_config_t){.top_k = 128, .sketch_width = 4096, .seed = 3});
    zipf_t z;
    zipf_init(&z, half, 1.1);
    uint64_t rng = 2024;
    hotkeys_entry_t out[10];
    for (size_t t = 0; t < ZIPF_DRAWS / 2; t++) record_index(h, (uint32_t)zipf_draw(&z, &rng));
    hotkeys_publish(h);
    assert_int_equal(hotkeys_top(h, out, 10), 10);
    for (int r = 0; r < 10; r++) assert_true(key_index(&out[r]) < half);
    char a0[KEY_LEN], b0[KEY_LEN];
    key_of(0, a0);
    key_of((uint32_t)half, b0);

    for (size_t t = 0; t < ZIPF_DRAWS / 2; t++) record_index(h, (uint32_t)(half + zipf_draw(&z, &rng)));
    hotkeys_publish(h);
    assert_int_equal(hotkeys_top(h, out, 10), 10);
    size_t in_b = 0;
    for (int r = 0; r < 10; r++) in_b += key_index(&out[r]) >= half;
    assert_int_equal(in_b, 10);
    /* A's favourite, unread for 12 periods, is down to the noise other
     * keys leave in its cells (on average under 2 * period / width) */
    assert_true(hotkeys_estimate(h, a0, KEY_LEN) <= 2 * HOTKEYS_PERIOD_FACTOR);
    assert_true(hotkeys_estimate(h, b0, KEY_LEN) > 1000);
    free(z.cdf);
    hotkeys_free(h);
}

static void test_binary_and_long_keys(void **state)
{
    (void)state;
    const size_t K = 16, width = 64;
    hotkeys_t *h = hotkeys_new(&(hotkeys_config_t){.top_k = K, .sketch_width = width, .seed = 5});
    /* equal up to a zero byte, or a prefix of one another */
    for (int i = 0; i < 4; i++) hotkeys_record(h, "a\0b", 3);
    for (int i = 0; i < 3; i++) hotkeys_record(h, "a\0c", 3);
    for (int i = 0; i < 2; i++) hotkeys_record(h, "a", 1);
    static char big[LIMITS_KEY_MAX + 1];
    memset(big, 0x5a, sizeof big);
    big[0] = 0;
    for (int i = 0; i < 6; i++) hotkeys_record(h, big, LIMITS_KEY_MAX);
    big[LIMITS_KEY_MAX - 1] = 0x01;   /* differs in the last byte only */
    for (int i = 0; i < 5; i++) hotkeys_record(h, big, LIMITS_KEY_MAX);
    /* out of range: ignored */
    hotkeys_record(h, big, LIMITS_KEY_MAX + 1);
    hotkeys_record(h, big, 0);
    hotkeys_publish(h);
    hotkeys_stats_t st;
    hotkeys_stats(h, &st);
    assert_int_equal(st.records, 20);
    assert_int_equal(hotkeys_estimate(h, big, LIMITS_KEY_MAX + 1), 0);

    hotkeys_entry_t *out = entries(K);
    assert_int_equal(hotkeys_top(h, out, K), 5);
    assert_ordered(out, 5);
    assert_int_equal(out[0].count, 6);
    assert_int_equal(out[0].klen, LIMITS_KEY_MAX);
    assert_int_equal(out[0].key[LIMITS_KEY_MAX - 1], 0x5a);
    assert_int_equal(out[1].count, 5);
    assert_memory_equal(out[1].key, big, LIMITS_KEY_MAX);
    assert_int_equal(out[2].count, 4);
    assert_int_equal(out[2].klen, 3);
    assert_memory_equal(out[2].key, "a\0b", 3);
    assert_int_equal(out[3].count, 3);
    assert_memory_equal(out[3].key, "a\0c", 3);
    assert_int_equal(out[4].count, 2);
    assert_int_equal(out[4].klen, 1);

    /* every slot grows to the longest key, and both snapshots' key areas
     * (two publications): the documented worst case */
    for (uint32_t i = 0; i < 4 * K; i++) {
        memcpy(big + 1, &i, sizeof i);
        for (int j = 0; j < 8; j++) hotkeys_record(h, big, LIMITS_KEY_MAX);
    }
    hotkeys_publish(h);
    hotkeys_publish(h);
    hotkeys_stats(h, &st);
    assert_true(st.memory_bytes <= HOTKEYS_ROWS * width * 2 + K * (3 * LIMITS_KEY_MAX + HOTKEYS_KEY_INLINE + 160) + 1024);
    assert_true(st.memory_bytes >= K * 3 * LIMITS_KEY_MAX);
    assert_int_equal(hotkeys_top(h, out, K), K);
    assert_ordered(out, K);
    for (size_t r = 0; r < K; r++) assert_int_equal(out[r].klen, LIMITS_KEY_MAX);
    free(out);
    hotkeys_free(h);
}

/* Readers see the last publication: every HOTKEYS_PUBLISH_EVERY records or
 * on hotkeys_publish. And the cap. */
static void test_publish_and_cap(void **state)
{
    (void)state;
    hotkeys_t *h = hotkeys_new(&(hotkeys_config_t){.top_k = 32, .seed = 11});
    for (uint32_t i = 0; i < 10; i++)
        for (uint32_t j = 0; j <= i; j++) record_index(h, i);
    hotkeys_entry_t out[32];
    hotkeys_stats_t st;
    assert_int_equal(hotkeys_top(h, out, 32), 0);
    hotkeys_stats(h, &st);
    assert_int_equal(st.records, 0);
    hotkeys_publish(h);
    assert_int_equal(hotkeys_top(h, out, 32), 10);
    assert_ordered(out, 10);
    for (uint32_t r = 0; r < 10; r++) {
        assert_int_equal(key_index(&out[r]), 9 - r);
        assert_int_equal(out[r].count, 10 - r);
        assert_int_equal(out[r].error, 0);
    }
    assert_int_equal(hotkeys_top(h, NULL, 0), 0);
    assert_int_equal(hotkeys_top(h, out, 3), 3);
    assert_int_equal(key_index(&out[2]), 7);
    assert_int_equal(hotkeys_top(h, out, 1), 1);
    assert_int_equal(key_index(&out[0]), 9);

    /* without hotkeys_publish: published by the record that completes the
     * next HOTKEYS_PUBLISH_EVERY */
    for (int i = 0; i < HOTKEYS_PUBLISH_EVERY - 1; i++) record_index(h, 20);
    assert_int_equal(hotkeys_top(h, out, 1), 1);
    assert_int_equal(key_index(&out[0]), 9);
    record_index(h, 20);
    assert_int_equal(hotkeys_top(h, out, 1), 1);
    assert_int_equal(key_index(&out[0]), 20);
    assert_int_equal(out[0].count, HOTKEYS_PUBLISH_EVERY);
    hotkeys_stats(h, &st);
    assert_int_equal(st.records, 55 + HOTKEYS_PUBLISH_EVERY);
    hotkeys_free(h);
}

static const hotkeys_entry_t *find(const hotkeys_entry_t *e, size_t n, uint32_t i)
{
    for (size_t r = 0; r < n; r++)
        if (key_index(&e[r]) == i) return &e[r];
    return NULL;
}

static void test_merge(void **state)
{
    (void)state;
    hotkeys_t *hs[3];
    for (int i = 0; i < 3; i++) hs[i] = hotkeys_new(&(hotkeys_config_t){.top_k = 64, .seed = (uint64_t)i});
    /* disjoint: instance i has keys 10i..10i+9, key k recorded k+1 times;
     * overlapping: key 100 on all three, key 101 on two */
    for (uint32_t i = 0; i < 3; i++)
        for (uint32_t k = 10 * i; k < 10 * i + 10; k++)
            for (uint32_t c = 0; c <= k; c++) record_index(hs[i], k);
    const uint32_t shared[3] = {5, 7, 11};
    for (uint32_t i = 0; i < 3; i++)
        for (uint32_t c = 0; c < shared[i]; c++) record_index(hs[i], 100);
    for (uint32_t c = 0; c < 40; c++) record_index(hs[c % 2], 101);
    for (int i = 0; i < 3; i++) hotkeys_publish(hs[i]);

    hotkeys_entry_t *out = entries(64);
    size_t n = hotkeys_merge(hs, 3, out, 64);
    assert_int_equal(n, 32);
    assert_ordered(out, n);
    for (uint32_t k = 0; k < 30; k++) {
        const hotkeys_entry_t *e = find(out, n, k);
        assert_non_null(e);
        assert_int_equal(e->count, k + 1);
        assert_int_equal(e->error, 0);
    }
    assert_int_equal(find(out, n, 100)->count, 23);
    assert_int_equal(find(out, n, 101)->count, 40);
    assert_int_equal(key_index(&out[0]), 101);
    assert_int_equal(key_index(&out[1]), 29);
    assert_int_equal(key_index(&out[2]), 28);
    /* the cap keeps the highest */
    assert_int_equal(hotkeys_merge(hs, 3, out, 3), 3);
    assert_int_equal(key_index(&out[0]), 101);
    assert_int_equal(key_index(&out[2]), 28);
    assert_int_equal(hotkeys_merge(hs, 0, out, 3), 0);
    assert_int_equal(hotkeys_merge(hs, 3, NULL, 0), 0);
    /* one instance: its own top */
    hotkeys_entry_t *own = entries(64);
    assert_int_equal(hotkeys_merge(hs, 1, out, 64), hotkeys_top(hs[0], own, 64));
    n = hotkeys_top(hs[0], own, 64);
    assert_int_equal(n, 12);
    for (size_t r = 0; r < n; r++) {
        assert_int_equal(out[r].count, own[r].count);
        assert_int_equal(key_index(&out[r]), key_index(&own[r]));
    }
    for (int i = 0; i < 3; i++) hotkeys_free(hs[i]);

    /* a full instance (K = 2) bounds what it may have forgotten: after a x10,
     * b x5, c x6 (c kept out until it may count more than b), it holds a 10
     * and c 6 (error 5) and forgot b; another holds b x3. b's total 8 must
     * lie in [count - error, count]. */
    hs[0] = hotkeys_new(&(hotkeys_config_t){.top_k = 2, .seed = 1});
    hs[1] = hotkeys_new(&(hotkeys_config_t){.top_k = 2, .seed = 2});
    for (int i = 0; i < 10; i++) record_index(hs[0], 1);
    for (int i = 0; i < 5; i++) record_index(hs[0], 2);
    for (int i = 0; i < 6; i++) record_index(hs[0], 3);
    for (int i = 0; i < 3; i++) record_index(hs[1], 2);
    hotkeys_publish(hs[0]);
    hotkeys_publish(hs[1]);
    n = hotkeys_merge(hs, 2, out, 64);
    assert_int_equal(n, 3);
    const hotkeys_entry_t *a = find(out, n, 1), *b = find(out, n, 2), *c = find(out, n, 3);
    assert_int_equal(a->count, 10);
    assert_int_equal(a->error, 0);
    assert_int_equal(b->count, 3 + 6);
    assert_int_equal(b->error, 6);
    assert_true(b->count - b->error <= 8 && 8 <= b->count);
    assert_int_equal(c->count, 6);
    assert_int_equal(c->error, 5);
    hotkeys_free(hs[0]);
    hotkeys_free(hs[1]);
    free(own);
    free(out);
}

/* The owner records while this thread reads the publications: every read
 * is a consistent list. */
typedef struct race {
    hotkeys_t *h;
    atomic_bool done;
} race_t;

static void *race_writer(void *arg)
{
    race_t *r = arg;
    zipf_t z;
    zipf_init(&z, 10000, 1.1);
    uint64_t rng = 55;
    for (int t = 0; t < 300000; t++) record_index(r->h, (uint32_t)zipf_draw(&z, &rng));
    free(z.cdf);
    atomic_store(&r->done, true);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    race_t r = {.h = hotkeys_new(&(hotkeys_config_t){.top_k = 64, .seed = 8})};
    atomic_init(&r.done, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_writer, &r), 0);
    hotkeys_entry_t *out = entries(64);
    size_t reads = 0;
    uint64_t last_records = 0;
    bool done;
    do {
        done = atomic_load(&r.done);
        size_t n = hotkeys_top(r.h, out, 64);
        assert_true(n <= 64);
        assert_ordered(out, n);
        for (size_t i = 0; i < n; i++) assert_true(key_index(&out[i]) < 10000);
        n = hotkeys_merge(&r.h, 1, out, 64);
        assert_ordered(out, n);
        hotkeys_stats_t st;
        hotkeys_stats(r.h, &st);
        assert_true(st.records >= last_records);
        last_records = st.records;
        reads++;
    } while (!done);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(reads >= 1);
    hotkeys_stats_t st;
    hotkeys_stats(r.h, &st);
    /* 300000 is not a multiple of HOTKEYS_PUBLISH_EVERY: the tail waits */
    assert_true(st.records > 0 && st.records < 300000);
    hotkeys_publish(r.h);
    hotkeys_stats(r.h, &st);
    assert_int_equal(st.records, 300000);
    assert_int_equal(hotkeys_top(r.h, out, 64), 64);
    assert_int_equal(key_index(&out[0]), 0);
    free(out);
    hotkeys_free(r.h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_space_saving_steps),
        cmocka_unit_test(test_zipf_top),
        cmocka_unit_test(test_sketch_bounds),
        cmocka_unit_test(test_aging),
        cmocka_unit_test(test_binary_and_long_keys),
        cmocka_unit_test(test_publish_and_cap),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
