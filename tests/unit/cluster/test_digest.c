/* digest: bucket digests are order-independent, tell sets apart, fold
 * between levels, and the wire table and bitmap say which buckets differ. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/digest.h"

static void fold(uint64_t *table, unsigned level, uint64_t hash, uint64_t version, bool tomb)
{
    table[digest_bucket(hash, level)] ^= digest_item(hash, version, tomb);
}

static void test_order_independent(void **state)
{
    (void)state;
    static uint64_t a[1024], b[1024];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    for (uint64_t i = 1; i <= 5000; i++) fold(a, 10, i * 0x9e3779b97f4a7c15ull, i, i % 7 == 0);
    for (uint64_t i = 5000; i >= 1; i--) fold(b, 10, i * 0x9e3779b97f4a7c15ull, i, i % 7 == 0);
    assert_memory_equal(a, b, sizeof a);
    /* Folding an item in twice takes it out again. */
    fold(a, 10, 42, 1, false);
    fold(a, 10, 42, 1, false);
    assert_memory_equal(a, b, sizeof a);
}

static void test_items_and_levels(void **state)
{
    (void)state;
    uint64_t h = 0x0123456789abcdefull;
    assert_true(digest_item(h, 5, false) != digest_item(h, 6, false));  /* a newer version */
    assert_true(digest_item(h, 5, false) != digest_item(h, 5, true));   /* a delete of the same version */
    assert_true(digest_item(h, 5, false) != digest_item(h + 1, 5, false));
    /* The bucket is the hash's top bits. */
    assert_int_equal(digest_bucket(0, 10), 0);
    assert_int_equal(digest_bucket(UINT64_MAX, 10), 1023);
    assert_int_equal(digest_bucket(UINT64_MAX, 16), 65535);
    /* About 8 items a bucket, within the bounds. */
    assert_int_equal(digest_level_for(0), DIGEST_LEVEL_MIN);
    assert_int_equal(digest_level_for(8 * 1024), 10);
    assert_int_equal(digest_level_for(8 * 1024 + 1024), 11);
    assert_int_equal(digest_level_for(333333), 16);
    assert_int_equal(digest_level_for(UINT64_MAX), DIGEST_LEVEL_MAX);
    /* Sizes name their level; others none. */
    assert_int_equal(digest_table_level(8192), 10);
    assert_int_equal(digest_table_level(DIGEST_TABLE_BYTES_MAX), 16);
    assert_int_equal(digest_table_level(8193), 0);
    assert_int_equal(digest_table_level(4096), 0);
    assert_int_equal(digest_bitmap_level(128), 10);
    assert_int_equal(digest_bitmap_level(127), 0);
}

static void test_compare(void **state)
{
    (void)state;
    static uint64_t ours[1024], theirs[1024];
    static uint8_t wire[8192], bits[128];
    unsigned level;
    memset(ours, 0, sizeof ours);
    for (uint64_t i = 1; i <= 3000; i++) fold(ours, 10, i * 0xc2b2ae3d27d4eb4full, i, false);
    memcpy(theirs, ours, sizeof ours);
    digest_table_encode(theirs, 10, wire);
    assert_int_equal(digest_compare(ours, 10, wire, 10, bits, &level), 0);
    assert_int_equal(level, 10);
    assert_int_equal(digest_bits_count(bits, 10), 0);
    /* One key missing there, another one newer there: two buckets. */
    uint64_t gone = 17 * 0xc2b2ae3d27d4eb4full, newer = 2000 * 0xc2b2ae3d27d4eb4full;
    fold(theirs, 10, gone, 17, false);
    fold(theirs, 10, newer, 2000, false);
    fold(theirs, 10, newer, 2001, false);
    digest_table_encode(theirs, 10, wire);
    size_t expect = digest_bucket(gone, 10) == digest_bucket(newer, 10) ? 1 : 2;
    assert_int_equal(digest_compare(ours, 10, wire, 10, bits, &level), expect);
    assert_int_equal(digest_bits_count(bits, 10), expect);
    assert_true(digest_bit(bits, 10, gone));
    assert_true(digest_bit(bits, 10, newer));
    size_t marked = 0;
    for (uint64_t b = 0; b < 1024; b++) marked += digest_bit(bits, 10, b << 54);
    assert_int_equal(marked, expect);
}

/* Two owners at different levels compare at the smaller one: a finer table
 * folds into the coarser one exactly. */
static void test_levels_fold(void **state)
{
    (void)state;
    uint64_t *fine = calloc(4096, sizeof *fine), *coarse = calloc(1024, sizeof *coarse);
    uint8_t *wire = malloc(4096 * 8), bits[512], wide[512];
    unsigned level;
    for (uint64_t i = 1; i <= 20000; i++) {
        uint64_t h = i * 0x9e3779b97f4a7c15ull;
        fold(fine, 12, h, i, false);
        fold(coarse, 10, h, i, false);
    }
    digest_table_encode(fine, 12, wire);
    assert_int_equal(digest_compare(coarse, 10, wire, 12, bits, &level), 0);
    assert_int_equal(level, 10);
    uint64_t extra = 77 * 0x9e3779b97f4a7c15ull + 5;
    fold(fine, 12, extra, 1, true);
    digest_table_encode(fine, 12, wire);
    assert_int_equal(digest_compare(coarse, 10, wire, 12, bits, &level), 1);
    assert_true(digest_bit(bits, 10, extra));
    /* The other way round too, and a coarse bitmap widens to the 4 fine
     * buckets under it. */
    uint8_t *cwire = malloc(1024 * 8);
    digest_table_encode(coarse, 10, cwire);
    assert_int_equal(digest_compare(fine, 12, cwire, 10, bits, &level), 1);
    assert_int_equal(level, 10);
    memset(wide, 0, sizeof wide);
    digest_bits_widen(bits, 10, wide, 12);
    assert_int_equal(digest_bits_count(wide, 12), 4);
    assert_true(digest_bit(wide, 12, extra));
    free(fine);
    free(coarse);
    free(wire);
    free(cwire);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_items_and_levels),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_levels_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
