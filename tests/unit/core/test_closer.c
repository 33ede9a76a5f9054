/* Unit tests for the closer: done runs once, after the last part, and only
 * once the owner finished; at once when nothing is open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "node/core/closer.h"

static void count_done(void *arg)
{
    (*(int *)arg)++;
}

static void test_done_after_last_part(void **state)
{
    (void)state;
    closer_t c;
    int done = 0;
    closer_init(&c);
    closer_add(&c, 2);
    closer_add(&c, 1);
    closer_finish(&c, count_done, &done);
    closer_closed(&c);
    closer_closed_cb(&c);
    assert_int_equal(done, 0);
    closer_closed(&c);
    assert_int_equal(done, 1);
}

static void test_early_reports_wait_for_finish(void **state)
{
    (void)state;
    closer_t c;
    int done = 0;
    closer_init(&c);
    closer_add(&c, 2);
    closer_closed(&c); /* a connection dropped before the owner closed */
    assert_int_equal(done, 0);
    closer_add(&c, 1);
    closer_closed(&c);
    assert_int_equal(done, 0);
    closer_finish(&c, count_done, &done);
    assert_int_equal(done, 0);
    closer_closed(&c);
    assert_int_equal(done, 1);
}

static void test_nothing_open_is_done_at_once(void **state)
{
    (void)state;
    closer_t c;
    int done = 0;
    closer_init(&c);
    closer_finish(&c, count_done, &done);
    assert_int_equal(done, 1);
}

typedef struct owner {
    closer_t closer;
    int *freed;
} owner_t;

static void free_owner(void *arg)
{
    owner_t *o = arg;
    (*o->freed)++;
    free(o);
}

static void test_done_may_free_the_owner(void **state)
{
    (void)state;
    int freed = 0;
    owner_t *o = calloc(1, sizeof *o);
    assert_non_null(o);
    o->freed = &freed;
    closer_add(&o->closer, 1);
    closer_finish(&o->closer, free_owner, o);
    closer_closed(&o->closer); /* o is gone after this */
    assert_int_equal(freed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_done_after_last_part),
        cmocka_unit_test(test_early_reports_wait_for_finish),
        cmocka_unit_test(test_nothing_open_is_done_at_once),
        cmocka_unit_test(test_done_may_free_the_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
