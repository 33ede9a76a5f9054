/* Unit tests for tombstones: newer deletes refuse older fills, expiry, and
 * the bound on the table; the same for pattern tombstones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "node/store/tomb.h"

static void test_refuses_older_fills(void **state)
{
    (void)state;
    tomb_t *t = tomb_new(64, 1000);
    assert_non_null(t);
    assert_false(tomb_blocks(t, "k", 1, 5, 0)); /* no tombstone: fills go */
    tomb_add(t, "k", 1, 10, 0);
    assert_true(tomb_blocks(t, "k", 1, 9, 10));   /* written before the delete */
    assert_false(tomb_blocks(t, "k", 1, 11, 10)); /* written after it */
    assert_false(tomb_blocks(t, "other", 5, 1, 10));
    assert_true(tomb_version(t, "k", 1, 10) == 10);
    assert_true(tomb_version(t, "other", 5, 10) == 0);
    tomb_add(t, "k", 1, 7, 20);                   /* an older delete keeps the newer version */
    assert_true(tomb_blocks(t, "k", 1, 9, 30));
    assert_int_equal(tomb_refused(t), 2);
    /* Gone after the TTL (refreshed by the second add at 20). */
    assert_true(tomb_blocks(t, "k", 1, 9, 1019));
    assert_false(tomb_blocks(t, "k", 1, 9, 1020));
    assert_true(tomb_version(t, "k", 1, 1020) == 0);
    assert_int_equal(tomb_count(t, 1020), 0);
    tomb_free(t);
}

static void test_bounded(void **state)
{
    (void)state;
    tomb_t *t = tomb_new(16, 1000);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        tomb_add(t, key, strlen(key), 100, i);
    }
    assert_true(tomb_count(t, 1000) <= 16);
    /* Every live one pushed out is counted (all 1000 were live when added). */
    assert_int_equal(tomb_evictions(t), 1000 - tomb_count(t, 999));
    /* The newest ones are there: the oldest gave way. */
    snprintf(key, sizeof key, "key-%d", 999);
    assert_true(tomb_blocks(t, key, strlen(key), 50, 1000));
    tomb_free(t);
}

/* A tombstone pushed out of a full table is not forgotten: its version
 * stays as a floor over its key range until it would have expired, and a
 * fill not newer than it is refused as in doubt. */
static void test_evicted_leaves_floor(void **state)
{
    (void)state;
    tomb_t *t = tomb_new(16, 1000);
    char key[32];
    int n = 0;
    while (tomb_evictions(t) == 0) {
        snprintf(key, sizeof key, "key-%d", n++);
        tomb_add(t, key, strlen(key), 100 + n, 0);
        assert_true(n < 1000);
    }
    /* The one that gave way: no tombstone of its own any more. */
    int gone = -1;
    for (int i = 0; i < n && gone < 0; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        if (tomb_version(t, key, strlen(key), 1) == 0) gone = i;
    }
    assert_true(gone >= 0);
    snprintf(key, sizeof key, "key-%d", gone);
    uint64_t v = 100 + (uint64_t)gone + 1;
    assert_int_equal(tomb_floor_count(t, 1), 1);
    assert_int_equal(tomb_check(t, key, strlen(key), v - 1, 1), TOMB_IN_DOUBT);
    assert_int_equal(tomb_check(t, key, strlen(key), v, 1), TOMB_IN_DOUBT);
    assert_int_equal(tomb_check(t, key, strlen(key), v + 1, 1), TOMB_CLEAR);
    assert_int_equal(tomb_floor_refused(t), 2);
    assert_int_equal(tomb_refused(t), 2);
    /* The floor is not a delete: peers asking for the key's tombstone get none. */
    assert_true(tomb_version(t, key, strlen(key), 1) == 0);
    tomb_metrics_t m;
    tomb_get_metrics(t, 1, &m);
    assert_int_equal(m.floors, 1);
    assert_int_equal(m.floor_refused, 2);
    /* Gone when the tombstone would have expired. */
    assert_int_equal(tomb_check(t, key, strlen(key), v - 1, 1000), TOMB_CLEAR);
    assert_int_equal(tomb_floor_count(t, 1000), 0);
    tomb_free(t);
}

/* A pattern tombstone refuses older fills of the keys it matches, and only
 * those, until it expires. */
static void test_pattern_refuses_older_fills(void **state)
{
    (void)state;
    tomb_t *t = tomb_new(64, 1000);
    assert_non_null(t);
    assert_true(tomb_add_pattern(t, "users:*", 7, 10, 0));
    assert_int_equal(tomb_pattern_count(t, 0), 1);
    assert_true(tomb_blocks(t, "users:1", 7, 9, 10));     /* written before the invalidation */
    assert_false(tomb_blocks(t, "users:1", 7, 10, 10));   /* not older */
    assert_false(tomb_blocks(t, "users:1", 7, 11, 10));   /* written after it */
    assert_false(tomb_blocks(t, "orders:1", 8, 9, 10));   /* not matched */
    assert_false(tomb_blocks(t, "users", 5, 9, 10));
    assert_int_equal(tomb_refused(t), 1);
    /* The same pattern again keeps the newer version and refreshes the TTL. */
    assert_true(tomb_add_pattern(t, "users:*", 7, 5, 500));
    assert_int_equal(tomb_pattern_count(t, 500), 1);
    assert_true(tomb_blocks(t, "users:2", 7, 9, 1499));
    assert_false(tomb_blocks(t, "users:2", 7, 9, 1500));
    assert_int_equal(tomb_pattern_count(t, 1500), 0);
    /* A key tombstone and a pattern tombstone: the newer one decides. */
    tomb_add(t, "users:3", 7, 20, 2000);
    assert_true(tomb_add_pattern(t, "users:?", 7, 30, 2000));
    assert_true(tomb_blocks(t, "users:3", 7, 25, 2000));
    assert_false(tomb_blocks(t, "users:3", 7, 31, 2000));
    /* What a peer checking its copy is told: the newest delete covering the key. */
    assert_true(tomb_version(t, "users:3", 7, 2000) == 30);
    assert_true(tomb_version(t, "users:4", 7, 2000) == 30);
    assert_true(tomb_version(t, "orders:4", 8, 2000) == 0);
    assert_int_equal(tomb_pattern_evictions(t), 0);
    tomb_free(t);
}

/* A pattern learnt from another node lives until the expiry it was given
 * (never past ttl from now), is not recorded once that is past, and a
 * copy of the live ones carries pattern, version and expiry. */
static void test_pattern_until_and_copy(void **state)
{
    (void)state;
    tomb_t *t = tomb_new(64, 1000);
    assert_non_null(t);
    assert_true(tomb_add_pattern_until(t, "a:*", 3, 10, 400, 100));
    assert_true(tomb_add_pattern_until(t, "b:*", 3, 10, 50, 100)); /* already past */
    assert_int_equal(tomb_pattern_count(t, 100), 1);
    assert_true(tomb_add_pattern_until(t, "c:*", 3, 12, 99999, 100)); /* capped at ttl */
    /* Passed on again with an earlier expiry: the later one stays. */
    assert_true(tomb_add_pattern_until(t, "a:*", 3, 11, 200, 150));
    tomb_pattern_item_t items[TOMB_PATTERNS];
    long n = tomb_copy_patterns(t, 150, items, TOMB_PATTERNS);
    assert_int_equal(n, 2);
    for (long i = 0; i < n; i++) {
        if (items[i].len == 3 && memcmp(items[i].bytes, "a:*", 3) == 0) {
            assert_int_equal(items[i].version, 11);
            assert_int_equal(items[i].expires, 400);
        } else {
            assert_memory_equal(items[i].bytes, "c:*", 3);
            assert_int_equal(items[i].expires, 1100);
        }
    }
    assert_int_equal(tomb_copy_patterns(t, 150, items, 1), 1);
    assert_true(tomb_blocks(t, "a:1", 3, 9, 399));
    assert_false(tomb_blocks(t, "a:1", 3, 9, 400));
    assert_true(tomb_blocks(t, "c:1", 3, 9, 1099));
    assert_false(tomb_blocks(t, "c:1", 3, 9, 1100));
    assert_int_equal(tomb_copy_patterns(t, 1100, items, TOMB_PATTERNS), 0);
    tomb_free(t);
}

/* Patterns out of bounds are not recorded. */
static void test_pattern_bad_input(void **state)
{
    (void)state;
    tomb_t *t = tomb_new(64, 1000);
    static char big[LIMITS_KEY_MAX + 1];
    memset(big, '*', sizeof big);
    assert_false(tomb_add_pattern(t, "", 0, 10, 0));
    assert_false(tomb_add_pattern(t, NULL, 3, 10, 0));
    assert_false(tomb_add_pattern(t, big, sizeof big, 10, 0));
    assert_true(tomb_add_pattern(t, big, LIMITS_KEY_MAX, 10, 0));
    assert_int_equal(tomb_pattern_count(t, 0), 1);
    assert_true(tomb_blocks(t, "k", 1, 9, 0));
    tomb_free(t);
}

/* At most TOMB_PATTERNS live patterns: the one closest to expiry gives
 * way, counted; expired ones are reused without counting. */
static void test_pattern_bounded(void **state)
{
    (void)state;
    tomb_t *t = tomb_new(64, 1000);
    char pat[32], key[32];
    for (int i = 0; i < TOMB_PATTERNS; i++) {
        snprintf(pat, sizeof pat, "p%d:*", i);
        assert_true(tomb_add_pattern(t, pat, strlen(pat), 100, i));
    }
    assert_int_equal(tomb_pattern_count(t, TOMB_PATTERNS), TOMB_PATTERNS);
    assert_int_equal(tomb_pattern_evictions(t), 0);
    /* One more: p0:* (added first, closest to expiry) gives way. */
    assert_true(tomb_add_pattern(t, "new:*", 5, 100, TOMB_PATTERNS));
    assert_int_equal(tomb_pattern_count(t, TOMB_PATTERNS), TOMB_PATTERNS);
    assert_int_equal(tomb_pattern_evictions(t), 1);
    /* Its version stays as a floor over every key: in doubt, not deleted. */
    assert_int_equal(tomb_check(t, "p0:k", 4, 50, TOMB_PATTERNS), TOMB_IN_DOUBT);
    assert_int_equal(tomb_check(t, "any", 3, 100, TOMB_PATTERNS), TOMB_IN_DOUBT);
    assert_int_equal(tomb_check(t, "any", 3, 101, TOMB_PATTERNS), TOMB_CLEAR);
    assert_int_equal(tomb_floor_count(t, TOMB_PATTERNS), 1024);
    assert_int_equal(tomb_check(t, "p1:k", 4, 50, TOMB_PATTERNS), TOMB_DELETED);
    assert_true(tomb_blocks(t, "new:k", 5, 50, TOMB_PATTERNS));
    snprintf(key, sizeof key, "p%d:k", TOMB_PATTERNS - 1);
    assert_true(tomb_blocks(t, key, strlen(key), 50, TOMB_PATTERNS));
    /* Once all have expired, new ones take their places: no eviction. */
    int64_t later = 10 * 1000;
    assert_int_equal(tomb_pattern_count(t, later), 0);
    assert_false(tomb_blocks(t, "p1:k", 4, 50, later));
    assert_false(tomb_blocks(t, "p0:k", 4, 50, later));
    assert_int_equal(tomb_floor_count(t, later), 0);
    for (int i = 0; i < TOMB_PATTERNS; i++) {
        snprintf(pat, sizeof pat, "q%d:*", i);
        assert_true(tomb_add_pattern(t, pat, strlen(pat), 100, later));
    }
    assert_int_equal(tomb_pattern_evictions(t), 1);
    assert_int_equal(tomb_pattern_count(t, later), TOMB_PATTERNS);
    tomb_metrics_t m;
    tomb_get_metrics(t, later, &m);
    assert_int_equal(m.patterns, TOMB_PATTERNS);
    assert_int_equal(m.pattern_evictions, 1);
    tomb_get_metrics(NULL, later, &m);
    assert_int_equal(m.patterns, 0);
    tomb_free(t);
}

static void count_one(uint64_t hash, uint64_t version, void *ctx)
{
    uint64_t *seen = ctx;
    seen[0]++;
    seen[1] ^= hash;
    seen[2] += version;
}

/* Repair knows tombstones by hash: a key's delete is found by its hash,
 * one learnt by hash refuses the key's fills, a scan lists them, and a
 * tombstone learnt from another owner lives from its version's time, not
 * from its arrival, so passing it back and forth never extends it. */
static void test_by_hash(void **state)
{
    (void)state;
    tomb_t *t = tomb_new(64, 1000);
    uint64_t h = tomb_key_hash("k", 1);
    assert_true(h != 0 && h == tomb_key_hash("k", 1) && h != tomb_key_hash("j", 1));
    tomb_add(t, "k", 1, 10, 0);
    assert_true(tomb_version_hash(t, h, 5) == 10);
    uint64_t hj = tomb_key_hash("j", 1);
    tomb_add_hash(t, hj, 20, 500, 0);
    assert_true(tomb_blocks(t, "j", 1, 19, 100));
    assert_false(tomb_blocks(t, "j", 1, 21, 100));
    assert_true(tomb_version(t, "j", 1, 499) == 20);
    assert_true(tomb_version(t, "j", 1, 500) == 0);         /* its own expiry, not now + ttl */
    uint64_t seen[3] = {0, 0, 0};
    tomb_scan(t, 100, count_one, seen);
    assert_true(seen[0] == 2 && seen[1] == (h ^ hj) && seen[2] == 30);
    /* The same as a copy, sorted by hash (what handoff and repair work on). */
    tomb_item_t *items = NULL;
    size_t cap = 0;
    assert_int_equal(tomb_copy(t, 100, &items, &cap), 2);
    assert_true(items[0].hash < items[1].hash);
    assert_true(items[0].version + items[1].version == 30);
    free(items);
    /* Already expired: nothing; too far ahead: capped at ttl from now. */
    tomb_add_hash(t, 77, 5, 100, 100);
    assert_true(tomb_version_hash(t, 77, 100) == 0);
    tomb_add_hash(t, 78, 5, 1000000, 100);
    assert_true(tomb_version_hash(t, 78, 1099) == 5);
    assert_true(tomb_version_hash(t, 78, 1100) == 0);
    /* The expiry of a version: its physical time (hlc.h) plus the TTL. */
    uint64_t v = (uint64_t)5000 << 16;
    assert_true(tomb_expiry_of(t, v) == 6000);
    tomb_free(t);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_older_fills),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_evicted_leaves_floor),
        cmocka_unit_test(test_by_hash),
        cmocka_unit_test(test_pattern_refuses_older_fills),
        cmocka_unit_test(test_pattern_bad_input),
        cmocka_unit_test(test_pattern_bounded),
        cmocka_unit_test(test_pattern_until_and_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
