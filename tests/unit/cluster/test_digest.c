/* digest: bucket digests are order-independent, tell sets apart, and the
 * wire table and bitmap say which buckets differ. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/digest.h"

static void fold(uint64_t *table, uint64_t hash, uint64_t version, bool tomb)
{
    table[digest_bucket(hash)] ^= digest_item(hash, version, tomb);
}

static void test_order_independent(void **state)
{
    (void)state;
    static uint64_t a[DIGEST_BUCKETS], b[DIGEST_BUCKETS];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    for (uint64_t i = 1; i <= 5000; i++) fold(a, i * 0x9e3779b97f4a7c15ull, i, i % 7 == 0);
    for (uint64_t i = 5000; i >= 1; i--) fold(b, i * 0x9e3779b97f4a7c15ull, i, i % 7 == 0);
    assert_memory_equal(a, b, sizeof a);
    /* Folding an item in twice takes it out again. */
    fold(a, 42, 1, false);
    fold(a, 42, 1, false);
    assert_memory_equal(a, b, sizeof a);
}

static void test_items_differ(void **state)
{
    (void)state;
    uint64_t h = 0x0123456789abcdefull;
    assert_true(digest_item(h, 5, false) != digest_item(h, 6, false));  /* a newer version */
    assert_true(digest_item(h, 5, false) != digest_item(h, 5, true));   /* a delete of the same version */
    assert_true(digest_item(h, 5, false) != digest_item(h + 1, 5, false));
    /* The bucket is the hash's top bits. */
    assert_int_equal(digest_bucket(0), 0);
    assert_int_equal(digest_bucket(UINT64_MAX), DIGEST_BUCKETS - 1);
}

static void test_compare(void **state)
{
    (void)state;
    static uint64_t ours[DIGEST_BUCKETS], theirs[DIGEST_BUCKETS];
    static uint8_t wire[DIGEST_TABLE_BYTES], bits[DIGEST_BITMAP_BYTES];
    memset(ours, 0, sizeof ours);
    for (uint64_t i = 1; i <= 3000; i++) fold(ours, i * 0xc2b2ae3d27d4eb4full, i, false);
    memcpy(theirs, ours, sizeof ours);
    digest_table_encode(theirs, wire);
    assert_int_equal(digest_compare(ours, wire, bits), 0);
    assert_int_equal(digest_bits_count(bits), 0);
    /* One key missing there, another one newer there: two buckets. */
    uint64_t gone = 17 * 0xc2b2ae3d27d4eb4full, newer = 2000 * 0xc2b2ae3d27d4eb4full;
    fold(theirs, gone, 17, false);
    fold(theirs, newer, 2000, false);
    fold(theirs, newer, 2001, false);
    digest_table_encode(theirs, wire);
    size_t expect = digest_bucket(gone) == digest_bucket(newer) ? 1 : 2;
    assert_int_equal(digest_compare(ours, wire, bits), expect);
    assert_int_equal(digest_bits_count(bits), expect);
    assert_true(digest_bit(bits, digest_bucket(gone)));
    assert_true(digest_bit(bits, digest_bucket(newer)));
    for (uint32_t b = 0; b < DIGEST_BUCKETS; b++)
        if (b != digest_bucket(gone) && b != digest_bucket(newer)) assert_false(digest_bit(bits, b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_items_differ),
        cmocka_unit_test(test_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
