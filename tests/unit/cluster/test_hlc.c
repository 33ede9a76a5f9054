/* hlc: versions always increase, even when the wall clock steps back, and
 * stay ahead of versions observed from elsewhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cluster/hlc.h"

static void test_monotonic(void **state)
{
    hlc_t c;
    hlc_init(&c);
    uint64_t a = hlc_stamp(&c, 1000);
    uint64_t b = hlc_stamp(&c, 1000); /* same millisecond */
    uint64_t d = hlc_stamp(&c, 900);  /* clock stepped back */
    uint64_t e = hlc_stamp(&c, 2000);
    assert_true(a < b && b < d && d < e);
    assert_int_equal(hlc_physical_ms(a), 1000);
    assert_int_equal(hlc_physical_ms(e), 2000);
}

static void test_observe(void **state)
{
    hlc_t c;
    hlc_init(&c);
    uint64_t remote = ((uint64_t)5000 << HLC_LOGICAL_BITS) + 7;
    hlc_observe(&c, remote, 1000);
    assert_true(hlc_stamp(&c, 1000) > remote);
    hlc_observe(&c, 1, 1000); /* an older version changes nothing */
    assert_true(hlc_stamp(&c, 1000) > remote + 1);
}

/* A version from a clock far ahead is not merged: this clock keeps
 * stamping from its own time, not from the runaway one. */
static void test_observe_within_bound(void **state)
{
    hlc_t c;
    hlc_init(&c);
    uint64_t near = (uint64_t)(1000 + 4000) << HLC_LOGICAL_BITS;   /* 4 s ahead */
    uint64_t far = (uint64_t)(1000 + 30000) << HLC_LOGICAL_BITS;   /* 30 s ahead */
    assert_true(hlc_plausible(near, 1000, 5000));
    assert_false(hlc_plausible(far, 1000, 5000));
    assert_false(hlc_observe_within(&c, far, 1000, 5000));
    assert_true(hlc_physical_ms(hlc_stamp(&c, 1000)) == 1000);
    assert_true(hlc_observe_within(&c, near, 1000, 5000));
    assert_true(hlc_stamp(&c, 1000) > near);
    /* Versions from the past are always fine. */
    assert_true(hlc_observe_within(&c, 1, 1000, 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_observe),
        cmocka_unit_test(test_observe_within_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
