/* Unit tests for the backoff: doubling from min, the cap, reset, and odd
 * bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "node/core/backoff.h"

static void test_doubles_up_to_max(void **state)
{
    (void)state;
    backoff_t b;
    backoff_init(&b, 50, 500);
    assert_int_equal(backoff_next(&b), 50);
    assert_int_equal(backoff_next(&b), 100);
    assert_int_equal(backoff_next(&b), 200);
    assert_int_equal(backoff_next(&b), 400);
    assert_int_equal(backoff_next(&b), 500); /* capped, not 800 */
    assert_int_equal(backoff_next(&b), 500);
}

static void test_reset_starts_over(void **state)
{
    (void)state;
    backoff_t b;
    backoff_init(&b, 100, 5000);
    backoff_next(&b);
    backoff_next(&b);
    backoff_next(&b);
    backoff_reset(&b);
    assert_int_equal(backoff_next(&b), 100);
    assert_int_equal(backoff_next(&b), 200);
}

static void test_min_above_max(void **state)
{
    (void)state;
    backoff_t b;
    backoff_init(&b, 1000, 300);
    assert_int_equal(backoff_next(&b), 300);
    assert_int_equal(backoff_next(&b), 300);
}

static void test_no_overflow(void **state)
{
    (void)state;
    backoff_t b;
    backoff_init(&b, UINT64_MAX / 2 + 1, UINT64_MAX);
    assert_true(backoff_next(&b) == UINT64_MAX / 2 + 1);
    assert_true(backoff_next(&b) == UINT64_MAX);
    assert_true(backoff_next(&b) == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_up_to_max),
        cmocka_unit_test(test_reset_starts_over),
        cmocka_unit_test(test_min_above_max),
        cmocka_unit_test(test_no_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
