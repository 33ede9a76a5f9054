/* Unit tests for the table of keys waiting in the journal: the newest
 * version wins, DEL against SET, clearing by generation (a record of a
 * later generation stays), removals that keep the other keys reachable,
 * growth, and the bound: an overflow puts every lookup in doubt until the
 * generation that overflowed is cleared. The journal's own use of it
 * (filled by the writer, rebuilt at open, cleared by a drain) is tested in
 * test_journal.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "cluster/ring.h"
#include "node/l2/journal_pending.h"

static uint64_t h(int i)
{
    char k[32];
    int n = snprintf(k, sizeof k, "key-%d", i);
    return ring_key_hash(k, (size_t)n);
}

static journal_pending_state_t look(journal_pending_t *p, uint64_t hash, uint64_t *v)
{
    *v = 0;
    return journal_pending_lookup(p, hash, v);
}

static void test_add_and_newest_wins(void **state)
{
    (void)state;
    journal_pending_t *p = journal_pending_new(16);
    assert_non_null(p);
    uint64_t v;
    assert_int_equal(look(p, h(1), &v), JOURNAL_PENDING_NONE);
    assert_true(journal_pending_add(p, h(1), 100, false, 1));
    assert_int_equal(look(p, h(1), &v), JOURNAL_PENDING_SET);
    assert_int_equal(v, 100);
    /* An older record of the key (another worker's, queued later) changes nothing. */
    assert_true(journal_pending_add(p, h(1), 90, true, 1));
    assert_int_equal(look(p, h(1), &v), JOURNAL_PENDING_SET);
    assert_int_equal(v, 100);
    /* A newer DELETE wins over the SET, a newer SET over the DELETE. */
    assert_true(journal_pending_add(p, h(1), 110, true, 1));
    assert_int_equal(look(p, h(1), &v), JOURNAL_PENDING_DEL);
    assert_int_equal(v, 110);
    assert_true(journal_pending_add(p, h(1), 120, false, 1));
    assert_int_equal(look(p, h(1), &v), JOURNAL_PENDING_SET);
    assert_int_equal(v, 120);
    assert_int_equal(look(p, h(2), &v), JOURNAL_PENDING_NONE);
    journal_pending_stats_t st;
    journal_pending_get_stats(p, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.max_entries, 16);
    assert_int_equal(st.overflows, 0);
    assert_false(st.in_doubt);
    journal_pending_free(p);
}

static void test_clear_by_generation(void **state)
{
    (void)state;
    journal_pending_t *p = journal_pending_new(64);
    uint64_t v;
    assert_true(journal_pending_add(p, h(1), 10, false, 1));
    assert_true(journal_pending_add(p, h(2), 20, true, 1));
    /* Appended while generation 1 drained: goes to generation 2. */
    assert_true(journal_pending_add(p, h(3), 30, false, 2));
    /* Key 1 again, newer, in generation 2: pending until that is drained. */
    assert_true(journal_pending_add(p, h(1), 40, false, 2));
    /* Key 2, older, in generation 2: once generation 1 (its newer DEL) is in
     * Redis the replay of this one is refused there, so it is done. */
    assert_true(journal_pending_add(p, h(2), 15, false, 2));
    journal_pending_clear(p, 1);
    assert_int_equal(look(p, h(1), &v), JOURNAL_PENDING_SET);
    assert_int_equal(v, 40);
    assert_int_equal(look(p, h(2), &v), JOURNAL_PENDING_NONE);
    assert_int_equal(look(p, h(3), &v), JOURNAL_PENDING_SET);
    journal_pending_clear(p, 2);
    assert_int_equal(look(p, h(1), &v), JOURNAL_PENDING_NONE);
    assert_int_equal(look(p, h(3), &v), JOURNAL_PENDING_NONE);
    journal_pending_stats_t st;
    journal_pending_get_stats(p, &st);
    assert_int_equal(st.entries, 0);
    journal_pending_free(p);
}

/* Many keys over several generations, cleared one generation at a time:
 * the table grows past its first slots, and what a clear leaves is still
 * found (removals move back the rest of a probe run). */
static void test_many_keys_stay_reachable(void **state)
{
    (void)state;
    enum { N = 6000, GENS = 4 };
    journal_pending_t *p = journal_pending_new(N);
    for (int i = 0; i < N; i++) assert_true(journal_pending_add(p, h(i), 1000u + (uint64_t)i, i % 7 == 0, 1 + i % GENS));
    for (int g = 1; g <= GENS; g++) {
        journal_pending_clear(p, (uint64_t)g);
        size_t left = 0;
        for (int i = 0; i < N; i++) {
            uint64_t v;
            journal_pending_state_t st = look(p, h(i), &v);
            if (1 + i % GENS <= g) {
                assert_int_equal(st, JOURNAL_PENDING_NONE);
                continue;
            }
            left++;
            assert_int_equal(st, i % 7 == 0 ? JOURNAL_PENDING_DEL : JOURNAL_PENDING_SET);
            assert_int_equal(v, 1000u + (uint64_t)i);
        }
        journal_pending_stats_t st;
        journal_pending_get_stats(p, &st);
        assert_int_equal(st.entries, left);
    }
    journal_pending_free(p);
}

static void test_overflow_puts_every_read_in_doubt(void **state)
{
    (void)state;
    journal_pending_t *p = journal_pending_new(4);
    uint64_t v;
    for (int i = 0; i < 4; i++) assert_true(journal_pending_add(p, h(i), 10, false, 1));
    /* A key already there is still updated when the table is full. */
    assert_true(journal_pending_add(p, h(0), 11, false, 2));
    /* The fifth key does not fit (generation 2): counted, and no read can
     * trust Redis now, whichever key it is. */
    assert_false(journal_pending_add(p, h(4), 10, false, 2));
    journal_pending_stats_t st;
    journal_pending_get_stats(p, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.overflows, 1);
    assert_true(st.in_doubt);
    assert_int_equal(look(p, h(4), &v), JOURNAL_PENDING_IN_DOUBT);
    assert_int_equal(look(p, h(99), &v), JOURNAL_PENDING_IN_DOUBT);
    assert_int_equal(look(p, h(1), &v), JOURNAL_PENDING_IN_DOUBT);
    /* Generation 1 drained: the lost record is in generation 2, still in doubt. */
    journal_pending_clear(p, 1);
    assert_int_equal(look(p, h(99), &v), JOURNAL_PENDING_IN_DOUBT);
    journal_pending_get_stats(p, &st);
    assert_int_equal(st.entries, 1); /* key 0, at generation 2 */
    /* Room again, but the doubt stays until generation 2 is drained. */
    assert_true(journal_pending_add(p, h(5), 12, true, 3));
    assert_int_equal(look(p, h(5), &v), JOURNAL_PENDING_IN_DOUBT);
    journal_pending_clear(p, 2);
    assert_int_equal(look(p, h(99), &v), JOURNAL_PENDING_NONE);
    assert_int_equal(look(p, h(5), &v), JOURNAL_PENDING_DEL);
    assert_int_equal(v, 12);
    journal_pending_get_stats(p, &st);
    assert_false(st.in_doubt);
    assert_int_equal(st.overflows, 1);
    journal_pending_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_newest_wins),
        cmocka_unit_test(test_clear_by_generation),
        cmocka_unit_test(test_many_keys_stay_reachable),
        cmocka_unit_test(test_overflow_puts_every_read_in_doubt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
