/* ratelimit: bursts, refill, Retry-After, separate keys, and a full table
 * that gives up the coldest bucket instead of growing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "node/core/ratelimit.h"

static void test_burst_and_refill(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(2, 3);
    assert_non_null(rl);
    uint64_t k = ratelimit_key("token", "alice", 5), other = ratelimit_key("token", "bob", 3);
    assert_true(k != other);
    assert_true(k != ratelimit_key("addr", "alice", 5));
    for (int i = 0; i < 3; i++) assert_int_equal(ratelimit_take(rl, k, 1000), 0);
    /* Empty: one more arrives in 1/2 s. */
    assert_int_equal(ratelimit_take(rl, k, 1000), 500);
    assert_int_equal(ratelimit_take(rl, other, 1000), 0);
    assert_int_equal(ratelimit_take(rl, k, 1250), 250);
    assert_int_equal(ratelimit_take(rl, k, 1500), 0);
    /* A long pause refills to the burst, no more. */
    for (int i = 0; i < 3; i++) assert_int_equal(ratelimit_take(rl, k, 100000), 0);
    assert_true(ratelimit_take(rl, k, 100000) > 0);
    ratelimit_stats_t *st = ratelimit_stats(rl);
    assert_int_equal(atomic_load(&st->keys), 2);
    assert_int_equal(atomic_load(&st->refused), 3);
    ratelimit_free(rl);
    assert_null(ratelimit_new(0, 1));
    assert_null(ratelimit_new(1, 0.5));
}

static void test_bounded(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(1, 1);
    /* Far more clients than slots: the table stays at its size. */
    for (uint64_t i = 1; i <= 100000; i++) ratelimit_take(rl, i * 0x9e3779b97f4a7c15ull, (int64_t)i);
    ratelimit_stats_t *st = ratelimit_stats(rl);
    assert_true(atomic_load(&st->keys) <= RATELIMIT_STRIPES * RATELIMIT_SLOTS);
    assert_true(atomic_load(&st->evictions) >= 100000 - RATELIMIT_STRIPES * RATELIMIT_SLOTS);
    /* The client just seen is still there, its bucket empty. */
    uint64_t last = 100000 * 0x9e3779b97f4a7c15ull;
    assert_true(ratelimit_take(rl, last, 100000) > 0);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_refill),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
