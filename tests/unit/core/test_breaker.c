/* Unit tests for the circuit breaker, both forms: thresholds, the half-open
 * trial (claimed and released by the caller in the unlocked form, replaced
 * after a pause in the locked one), and reported transitions, in injected
 * time. */
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


/* ---- the unlocked form ---- */

static void test_fsm_threshold_and_pause(void **state)
{
    (void)state;
    breaker_fsm_t f;
    breaker_fsm_init(&f, 2, 100, BREAKER_TRIAL_NO_TIMEOUT);
    assert_int_equal(breaker_fsm_allow(&f, 0), BREAKER_PASS);
    breaker_fsm_failure(&f, 0);
    breaker_fsm_success(&f); /* failures must be consecutive */
    breaker_fsm_failure(&f, 1);
    assert_int_equal(f.state, BREAKER_CLOSED);
    breaker_fsm_failure(&f, 2);
    assert_int_equal(f.state, BREAKER_OPEN);
    assert_int_equal(breaker_fsm_allow(&f, 50), BREAKER_REJECT);
    breaker_fsm_failure(&f, 60); /* late: does not extend the pause */
    assert_false(breaker_fsm_would_allow(&f, 101));
    assert_true(breaker_fsm_would_allow(&f, 102));
    assert_int_equal(f.state, BREAKER_OPEN); /* would_allow changes nothing */
    assert_int_equal(breaker_fsm_allow(&f, 102), BREAKER_TRIAL);
    assert_int_equal(f.state, BREAKER_HALF_OPEN);
}

static void test_fsm_trial_claim_and_release(void **state)
{
    (void)state;
    breaker_fsm_t f;
    breaker_fsm_init(&f, 1, 100, BREAKER_TRIAL_NO_TIMEOUT);
    breaker_fsm_failure(&f, 0);
    /* Not claimed yet (say the call could not be sent): still on offer. */
    assert_int_equal(breaker_fsm_allow(&f, 100), BREAKER_TRIAL);
    assert_int_equal(breaker_fsm_allow(&f, 101), BREAKER_TRIAL);
    breaker_fsm_claim(&f, 101);
    assert_int_equal(breaker_fsm_allow(&f, 102), BREAKER_REJECT);
    assert_false(breaker_fsm_would_allow(&f, 102));
    /* Without a timeout the trial is out until released, however long. */
    assert_int_equal(breaker_fsm_allow(&f, 100000), BREAKER_REJECT);
    breaker_fsm_release(&f); /* it ended without an outcome */
    assert_int_equal(breaker_fsm_allow(&f, 100001), BREAKER_TRIAL);
    breaker_fsm_claim(&f, 100001);
    breaker_fsm_failure(&f, 100002); /* the trial failed: a full pause again */
    breaker_fsm_release(&f);
    assert_int_equal(f.state, BREAKER_OPEN);
    assert_int_equal(breaker_fsm_allow(&f, 100101), BREAKER_REJECT);
    assert_int_equal(breaker_fsm_allow(&f, 100102), BREAKER_TRIAL);
    breaker_fsm_claim(&f, 100102);
    breaker_fsm_success(&f);
    breaker_fsm_release(&f);
    assert_int_equal(f.state, BREAKER_CLOSED);
    assert_int_equal(breaker_fsm_allow(&f, 100103), BREAKER_PASS);
}

static void test_fsm_trial_timeout(void **state)
{
    (void)state;
    breaker_fsm_t f;
    breaker_fsm_init(&f, 1, 100, 30);
    breaker_fsm_failure(&f, 0);
    assert_int_equal(breaker_fsm_allow(&f, 100), BREAKER_TRIAL);
    breaker_fsm_claim(&f, 100);
    assert_int_equal(breaker_fsm_allow(&f, 129), BREAKER_REJECT);
    assert_int_equal(breaker_fsm_allow(&f, 130), BREAKER_TRIAL); /* the lost trial is replaced */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_threshold),
        cmocka_unit_test(test_half_open_trial),
        cmocka_unit_test(test_late_failure_does_not_extend),
        cmocka_unit_test(test_lost_trial_is_replaced),
        cmocka_unit_test(test_fsm_threshold_and_pause),
        cmocka_unit_test(test_fsm_trial_claim_and_release),
        cmocka_unit_test(test_fsm_trial_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
