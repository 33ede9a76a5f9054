/* Unit tests for the circuit breaker: thresholds, the half-open trial, and
 * reported transitions, in injected time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "node/core/breaker.h"

typedef struct changes {
    int n;
    breaker_state_t from[8], to[8];
} changes_t;

static void record(breaker_state_t from, breaker_state_t to, void *ctx)
{
    changes_t *c = ctx;
    if (c->n < 8) {
        c->from[c->n] = from;
        c->to[c->n] = to;
    }
    c->n++;
}

static void test_opens_after_threshold(void **state)
{
    (void)state;
    changes_t c = {0};
    breaker_t b;
    breaker_init(&b, 3, 1000, record, &c);
    assert_true(breaker_allow(&b, 0));
    breaker_failure(&b, 0);
    breaker_failure(&b, 1);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    breaker_success(&b, 2); /* resets the count: failures must be consecutive */
    breaker_failure(&b, 3);
    breaker_failure(&b, 4);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    breaker_failure(&b, 5);
    assert_int_equal(breaker_state(&b), BREAKER_OPEN);
    assert_false(breaker_allow(&b, 6));
    assert_false(breaker_allow(&b, 1004));
    assert_int_equal(atomic_load(&b.rejected), 2);
    assert_int_equal(atomic_load(&b.opens), 1);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.from[0], BREAKER_CLOSED);
    assert_int_equal(c.to[0], BREAKER_OPEN);
    breaker_destroy(&b);
}

static void test_half_open_trial(void **state)
{
    (void)state;
    changes_t c = {0};
    breaker_t b;
    breaker_init(&b, 1, 500, record, &c);
    breaker_failure(&b, 100);
    assert_int_equal(breaker_state(&b), BREAKER_OPEN);
    /* After the pause: one trial, the others still rejected. */
    assert_true(breaker_allow(&b, 600));
    assert_int_equal(breaker_state(&b), BREAKER_HALF_OPEN);
    assert_false(breaker_allow(&b, 601));
    /* The trial fails: open again for a full pause. */
    breaker_failure(&b, 650);
    assert_int_equal(breaker_state(&b), BREAKER_OPEN);
    assert_false(breaker_allow(&b, 1149));
    assert_true(breaker_allow(&b, 1150));
    breaker_success(&b, 1160);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    assert_true(breaker_allow(&b, 1161));
    assert_true(breaker_allow(&b, 1162));
    assert_int_equal(atomic_load(&b.opens), 2);
    /* closed->open, open->half, half->open, open->half, half->closed */
    assert_int_equal(c.n, 5);
    assert_int_equal(c.to[4], BREAKER_CLOSED);
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
    breaker_destroy(&b);
}

static void test_lost_trial_is_replaced(void **state)
{
    (void)state;
    breaker_t b;
    breaker_init(&b, 1, 500, NULL, NULL);
    breaker_failure(&b, 0);
    assert_true(breaker_allow(&b, 500)); /* the trial; its outcome never comes */
    assert_false(breaker_allow(&b, 999));
    assert_true(breaker_allow(&b, 1000)); /* a new trial after a pause */
    breaker_success(&b, 1001);
    assert_int_equal(breaker_state(&b), BREAKER_CLOSED);
    breaker_destroy(&b);
}

static void test_late_failure_does_not_extend(void **state)
{
    (void)state;
    breaker_t b;
    breaker_init(&b, 1, 500, NULL, NULL);
    breaker_failure(&b, 0);
    /* A call sent before the breaker opened fails late. */
    breaker_failure(&b, 400);
    assert_true(breaker_allow(&b, 500));
    breaker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_threshold),
        cmocka_unit_test(test_half_open_trial),
        cmocka_unit_test(test_late_failure_does_not_extend),
        cmocka_unit_test(test_lost_trial_is_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
