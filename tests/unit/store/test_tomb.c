/* Unit tests for tombstones: newer deletes refuse older fills, expiry, and
 * the bound on the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
    /* The newest ones are there: the oldest gave way. */
    snprintf(key, sizeof key, "key-%d", 999);
    assert_true(tomb_blocks(t, key, strlen(key), 50, 1000));
    tomb_free(t);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_older_fills),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
