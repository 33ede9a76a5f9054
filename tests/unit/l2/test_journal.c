/* Unit tests for the replay journal: order, reopen, rotation while
 * draining, torn tails, corruption and the size bound. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/l2/journal.h"

typedef struct fixture {
    char dir[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/dcache-journal.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static journal_rec_t rec(int i, char *key, char *val)
{
    sprintf(key, "key-%d", i);
    sprintf(val, "value-%d", i * 7);
    journal_rec_t r = {.op = (i % 5 == 4) ? JOURNAL_OP_DEL : JOURNAL_OP_SET,
                       .version = 1000u + (uint64_t)i,
                       .expires_at_ms = i % 3 ? 1700000000000 + i : 0,
                       .key = key,
                       .klen = strlen(key),
                       .ct = i % 2 ? "text/plain" : NULL,
                       .ctlen = i % 2 ? 10 : 0,
                       .value = val,
                       .vlen = (i % 5 == 4) ? 0 : strlen(val)};
    return r;
}

static int append_range(journal_t *j, int from, int to)
{
    for (int i = from; i < to; i++) {
        char key[32], val[32];
        journal_rec_t r = rec(i, key, val);
        int rc = journal_append(j, &r, 1);
        if (rc != 0) return rc;
    }
    return 0;
}

typedef struct seen {
    int next;          /* the index the next record must have */
    int stop_at;       /* refuse this index (-1: none) */
} seen_t;

static int check_one(const journal_rec_t *r, void *ctx)
{
    seen_t *s = ctx;
    if (s->next == s->stop_at) return 1;
    char key[32], val[32];
    journal_rec_t want = rec(s->next, key, val);
    assert_int_equal(r->op, want.op);
    assert_int_equal(r->version, want.version);
    assert_int_equal(r->expires_at_ms, want.expires_at_ms);
    assert_int_equal(r->klen, want.klen);
    assert_memory_equal(r->key, want.key, want.klen);
    assert_int_equal(r->ctlen, want.ctlen);
    if (want.ctlen) assert_memory_equal(r->ct, want.ct, want.ctlen);
    assert_int_equal(r->vlen, want.vlen);
    if (want.vlen) assert_memory_equal(r->value, want.value, want.vlen);
    s->next++;
    return 0;
}

static void test_order_and_reopen(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(append_range(j, 0, 50), 0);
    /* A batch is one write and one fsync. */
    char k[3][32], v[3][32];
    journal_rec_t batch[3] = {rec(50, k[0], v[0]), rec(51, k[1], v[1]), rec(52, k[2], v[2])};
    assert_int_equal(journal_append(j, batch, 3), 0);
    assert_int_equal(journal_records(j), 53);
    uint64_t bytes = journal_bytes(j);
    journal_close(j);

    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(journal_records(j), 53);
    assert_int_equal(journal_bytes(j), bytes);
    assert_int_equal(journal_drain_begin(j), 53);
    seen_t s = {0, 20};
    uint64_t pos = 0;
    /* The callback refuses record 20: the read stops before it. */
    assert_int_equal(journal_drain_read(j, &pos, 1000, check_one, &s), 20);
    s.stop_at = -1;
    assert_int_equal(journal_drain_read(j, &pos, 1000, check_one, &s), 33);
    assert_int_equal(s.next, 53);
    assert_int_equal(journal_drain_read(j, &pos, 1000, check_one, &s), 0);
    assert_int_equal(journal_drain_done(j), 0);
    assert_int_equal(journal_records(j), 0);
    journal_close(j);
}

static void test_appends_during_drain_survive(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(append_range(j, 0, 10), 0);
    assert_int_equal(journal_drain_begin(j), 10);
    assert_int_equal(append_range(j, 10, 15), 0);
    assert_int_equal(journal_records(j), 15);
    /* A restart in the middle of the drain: both files are still there. */
    journal_close(j);
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(journal_records(j), 15);
    assert_int_equal(journal_drain_begin(j), 10); /* the older file first */
    seen_t s = {0, -1};
    uint64_t pos = 0;
    assert_int_equal(journal_drain_read(j, &pos, 100, check_one, &s), 10);
    assert_int_equal(journal_drain_done(j), 0);
    assert_int_equal(journal_records(j), 5);
    assert_int_equal(journal_drain_begin(j), 5);
    pos = 0;
    assert_int_equal(journal_drain_read(j, &pos, 100, check_one, &s), 5);
    assert_int_equal(s.next, 15);
    assert_int_equal(journal_drain_done(j), 0);
    journal_close(j);
}

static void test_torn_tail_is_cut(void **state)
{
    fixture_t *f = *state;
    char err[256], path[128];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(append_range(j, 0, 10), 0);
    uint64_t bytes = journal_bytes(j);
    journal_close(j);
    /* A crash in the middle of a record: half of one more is on disk. */
    snprintf(path, sizeof path, "%s/journal.active", f->dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    static const uint8_t half[] = {40, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9};
    assert_int_equal(write(fd, half, sizeof half), (ssize_t)sizeof half);
    close(fd);
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(journal_records(j), 10);
    assert_int_equal(journal_bytes(j), bytes);
    /* The cut makes later appends readable. */
    assert_int_equal(append_range(j, 10, 12), 0);
    journal_close(j);
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(journal_records(j), 12);
    assert_int_equal(journal_drain_begin(j), 12);
    seen_t s = {0, -1};
    uint64_t pos = 0;
    assert_int_equal(journal_drain_read(j, &pos, 100, check_one, &s), 12);
    journal_close(j);
}

static void test_corruption_stops_reading(void **state)
{
    fixture_t *f = *state;
    char err[256], path[128];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(append_range(j, 0, 3), 0);
    uint64_t first = journal_bytes(j);
    assert_int_equal(append_range(j, 3, 6), 0);
    journal_close(j);
    snprintf(path, sizeof path, "%s/journal.active", f->dir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    /* Flip a byte inside record 3's payload: its checksum fails. */
    uint8_t x = 0xff;
    assert_int_equal(pwrite(fd, &x, 1, (off_t)first + 12), 1);
    close(fd);
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(journal_records(j), 3);
    journal_close(j);
}

static void test_damage_while_draining_is_reported(void **state)
{
    fixture_t *f = *state;
    char err[256], path[128];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(append_range(j, 0, 3), 0);
    uint64_t first = journal_bytes(j);
    assert_int_equal(append_range(j, 3, 6), 0);
    assert_int_equal(journal_drain_begin(j), 6);
    /* The file goes bad after it was validated. */
    snprintf(path, sizeof path, "%s/journal.draining", f->dir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t x = 0xff;
    assert_int_equal(pwrite(fd, &x, 1, (off_t)first + 12), 1);
    close(fd);
    seen_t s = {0, -1};
    uint64_t pos = 0;
    assert_int_equal(journal_drain_read(j, &pos, 100, check_one, &s), 3);
    assert_int_equal(journal_drain_read(j, &pos, 100, check_one, &s), -EIO);
    assert_int_equal(journal_records(j), 6); /* nothing dropped */
    journal_close(j);
}

static void test_empty_draining_file_does_not_block(void **state)
{
    fixture_t *f = *state;
    char err[256], path[128];
    snprintf(path, sizeof path, "%s/journal.draining", f->dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600); /* left empty by a crash */
    assert_true(fd >= 0);
    close(fd);
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(append_range(j, 0, 4), 0);
    assert_int_equal(journal_drain_begin(j), 4);
    journal_close(j);
}

static void test_bound_and_bad_records(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1000, err, sizeof err), 0);
    int rc = append_range(j, 0, 1000);
    assert_int_equal(rc, -ENOSPC);
    uint64_t n = journal_records(j);
    assert_true(n > 5 && n < 100);
    assert_true(journal_bytes(j) <= 1000);
    journal_rec_t bad = {.op = 9, .key = "k", .klen = 1};
    assert_int_equal(journal_append(j, &bad, 1), -EINVAL);
    journal_rec_t empty_key = {.op = JOURNAL_OP_DEL, .key = "", .klen = 0};
    assert_int_equal(journal_append(j, &empty_key, 1), -EINVAL);
    assert_int_equal(journal_records(j), n);
    journal_close(j);
    /* A directory that cannot be made is reported, not a crash. */
    assert_true(journal_open(&j, "/proc/no/such/dir", 1000, err, sizeof err) < 0);
    assert_non_null(strstr(err, "cannot create"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appends_during_drain_survive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption_stops_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_and_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_while_draining_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_draining_file_does_not_block, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
