/* The event feed (node/api/events.h): order, resume after an id, the gap
 * when what a reader asks for was pushed out, the bounds, ids of another
 * run, and the subscribers' wake-ups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/api/events.h"

typedef struct seen {
    char text[1024];
    unsigned n;
    uint64_t last;
} seen_t;

static void collect(uint64_t seq, const char *type, const char *data, size_t len, bool relay, void *ctx)
{
    seen_t *s = ctx;
    size_t at = strlen(s->text);
    snprintf(s->text + at, sizeof s->text - at, "%llu:%s:%.*s:%d ", (unsigned long long)seq, type, (int)len, data,
             relay ? 1 : 0);
    s->n++;
    s->last = seq;
}

static void publish(events_t *e, const char *type, const char *data, bool relay)
{
    assert_true(events_publish(e, type, data, strlen(data), relay) > 0);
}

static void test_order_and_resume(void **state)
{
    (void)state;
    events_config_t cfg = {.run = 42};
    events_t *e = events_new(&cfg);
    assert_non_null(e);
    assert_int_equal(events_last(e), 0);
    publish(e, "delete", "{\"a\":1}", true);
    publish(e, "member", "{\"b\":2}", false);
    publish(e, "metrics", "{\"c\":3}", true);
    seen_t s = {0};
    bool gap = true;
    assert_int_equal(events_read(e, 0, 10, collect, &s, &gap), 3);
    assert_false(gap);
    assert_string_equal(s.text, "1:delete:{\"a\":1}:1 2:member:{\"b\":2}:0 3:metrics:{\"c\":3}:1 ");
    /* After 1: the rest; at most max at a time. */
    memset(&s, 0, sizeof s);
    assert_int_equal(events_read(e, 1, 1, collect, &s, &gap), 2);
    assert_string_equal(s.text, "2:member:{\"b\":2}:0 ");
    memset(&s, 0, sizeof s);
    assert_int_equal(events_read(e, 3, 10, collect, &s, &gap), 3);
    assert_int_equal(s.n, 0);
    assert_false(gap);
    events_free(e);
}

static void test_bounded_with_gap(void **state)
{
    (void)state;
    events_config_t cfg = {.max_events = 4, .max_bytes = 1000, .run = 1};
    events_t *e = events_new(&cfg);
    for (int i = 0; i < 10; i++) publish(e, "t", "{}", false);
    assert_int_equal(atomic_load(&events_stats(e)->kept), 4);
    assert_int_equal(atomic_load(&events_stats(e)->dropped), 6);
    seen_t s = {0};
    bool gap = false;
    /* 3..6 were pushed out: the reader is told, and gets what is kept. */
    assert_int_equal(events_read(e, 2, 10, collect, &s, &gap), 10);
    assert_true(gap);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.text, "7:t:{}:0 8:t:{}:0 9:t:{}:0 10:t:{}:0 ");
    /* The byte bound: a big event pushes out as many as it needs (4 of 2
     * bytes + 998 > 1000: three go, one for the count, two for the bytes). */
    char big[999];
    memset(big, 'x', sizeof big - 1);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    big[sizeof big - 1] = '\0';
    publish(e, "big", big, false);
    assert_int_equal(atomic_load(&events_stats(e)->kept), 2);
    assert_true(atomic_load(&events_stats(e)->bytes) <= 1000);
    events_free(e);
}

static void test_ids(void **state)
{
    (void)state;
    events_config_t cfg = {.run = 1796227154090};
    events_t *e = events_new(&cfg);
    uint64_t seq = 0;
    assert_true(events_parse_id(e, "1796227154090-17", 16, &seq));
    assert_int_equal(seq, 17);
    assert_false(events_parse_id(e, "1796227154091-17", 16, &seq)); /* another run */
    assert_false(events_parse_id(e, "garbage", 7, &seq));
    assert_false(events_parse_id(e, "1796227154090-", 14, &seq));
    assert_false(events_parse_id(e, "-5", 2, &seq));
    assert_int_equal(events_run(e), 1796227154090);
    events_free(e);
}

static void wake(void *ctx)
{
    (*(int *)ctx)++;
}

static void test_subscribers(void **state)
{
    (void)state;
    events_config_t cfg = {.run = 1};
    events_t *e = events_new(&cfg);
    int a = 0, b = 0;
    int sa = events_subscribe(e, wake, &a), sb = events_subscribe(e, wake, &b);
    assert_true(sa >= 0 && sb >= 0 && sa != sb);
    publish(e, "t", "{}", false);
    assert_int_equal(a, 1);
    assert_int_equal(b, 1);
    events_unsubscribe(e, sa);
    publish(e, "t", "{}", false);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    events_unsubscribe(e, sb);
    int slots[EVENTS_SUBSCRIBERS + 1];
    for (int i = 0; i < EVENTS_SUBSCRIBERS; i++) assert_true((slots[i] = events_subscribe(e, wake, &a)) >= 0);
    assert_int_equal(events_subscribe(e, wake, &a), -1); /* full */
    events_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_resume),
        cmocka_unit_test(test_bounded_with_gap),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_subscribers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
