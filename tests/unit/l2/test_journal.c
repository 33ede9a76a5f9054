/* Unit tests for the replay journal: order, reopen, rotation while
 * draining, torn tails, corruption and the size bound; group commit:
 * concurrent appends from several threads and loops, one fdatasync per
 * group, a full queue, a failed group, a port closed with appends in
 * flight; the pending keys: entered once synced, cleared by the drain of
 * their file (not of an older one), rebuilt at open, never entered by a
 * failed group. Waits poll a condition with a deadline (fixture/loop); nothing
 * sleeps to synchronise. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#include "cluster/ring.h"
#include "node/l2/journal.h"
#include "tests/unit/fixture/loop.h"

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

static int count_only(const journal_rec_t *r, void *ctx)
{
    (void)r;
    ((seen_t *)ctx)->next++;
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

/* Bytes appended to a journal file as a crash would leave them. */
static void append_raw(const char *path, const uint8_t *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    close(fd);
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
    static const uint8_t half[] = {40, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9};
    append_raw(path, half, sizeof half);
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
    /* A torn header whose length is garbage, near the 2 GiB bound: the
     * file cannot hold it, so it is a torn tail like any other. */
    static const uint8_t huge[] = {0xf0, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 1, 9, 9};
    append_raw(path, huge, sizeof huge);
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(journal_records(j), 12);
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

/* ---------- group commit ---------- */

#define DEADLINE_MS 10000

/* Records of the concurrency tests: key "t<thread>-<seq>", version
 * thread << 32 | seq, so a reader can check each thread's order. */
static journal_rec_t seq_rec(unsigned thread, unsigned seq, char *key)
{
    int n = sprintf(key, "t%u-%u", thread, seq);
    return (journal_rec_t){.op = JOURNAL_OP_SET, .version = (uint64_t)thread << 32 | seq, .key = key,
                           .klen = (size_t)n, .value = key, .vlen = (size_t)n};
}

typedef struct waits {
    unsigned done, failed;
    int last_status;
} waits_t;

static void count_done(void *ctx, int status)
{
    waits_t *w = ctx;
    w->done++;
    if (status != 0) {
        w->failed++;
        w->last_status = status;
    }
}

typedef struct until_n {
    const unsigned *counter;
    unsigned n;
} until_n_t;

static bool reached(void *arg)
{
    until_n_t *u = arg;
    return *u->counter >= u->n;
}

static void set_flag(void *arg)
{
    *(bool *)arg = true;
}

static bool flag_set(void *arg)
{
    return *(bool *)arg;
}

static bool queued_at_least(journal_t *j, uint64_t n)
{
    journal_stats_t st;
    journal_get_stats(j, &st);
    return st.queued_appends >= n;
}

typedef struct queued_arg {
    journal_t *j;
    uint64_t n;
} queued_arg_t;

static bool queued_cond(void *arg)
{
    queued_arg_t *q = arg;
    return queued_at_least(q->j, q->n);
}

/* A thread with its own loop and port, as a worker has: it queues all its
 * appends at once and runs its loop until every completion came back. */
typedef struct loop_thread {
    journal_t *j;
    unsigned id, n;
    waits_t waits;
    int refused;               /* an append refused at once (its errno) */
    bool closed, loop_ok;
} loop_thread_t;

static void *loop_thread_main(void *arg)
{
    loop_thread_t *t = arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    journal_port_t *p = journal_port_new(t->j, &loop);
    for (unsigned i = 0; p && i < t->n && !t->refused; i++) {
        char key[32];
        journal_rec_t r = seq_rec(t->id, i, key);
        t->refused = journal_append_async(p, &r, 1, count_done, &t->waits);
    }
    until_n_t u = {&t->waits.done, t->n};
    fixture_loop_run_until(&loop, reached, &u, DEADLINE_MS);
    if (p) journal_port_close(p, set_flag, &t->closed);
    fixture_loop_run_until(&loop, flag_set, &t->closed, DEADLINE_MS);
    journal_port_free(p);
    t->loop_ok = p && fixture_loop_close(&loop) == 0;
    return NULL;
}

/* A thread that appends with the blocking call, one record at a time. */
typedef struct block_thread {
    journal_t *j;
    unsigned id, n;
    int rc;
} block_thread_t;

static void *block_thread_main(void *arg)
{
    block_thread_t *t = arg;
    for (unsigned i = 0; i < t->n && t->rc == 0; i++) {
        char key[32];
        journal_rec_t r = seq_rec(t->id, i, key);
        t->rc = journal_append(t->j, &r, 1);
    }
    return NULL;
}

#define THREADS_MAX 8

typedef struct per_thread {
    unsigned next[THREADS_MAX];
    bool out_of_order;
    unsigned total;
} per_thread_t;

static int check_seq(const journal_rec_t *r, void *ctx)
{
    per_thread_t *s = ctx;
    unsigned thread = (unsigned)(r->version >> 32), seq = (unsigned)r->version;
    char key[32];
    journal_rec_t want = seq_rec(thread, seq, key);
    if (thread >= THREADS_MAX || seq != s->next[thread] || r->klen != want.klen || memcmp(r->key, key, r->klen) != 0 ||
        r->vlen != want.vlen)
        s->out_of_order = true;
    else s->next[thread]++;
    s->total++;
    return 0;
}

static void test_concurrent_appends_keep_each_threads_order(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    enum { LOOPS = 4, BLOCKING = 2, PER = 300 };
    assert_int_equal(journal_open(&j, f->dir, 64 << 20, err, sizeof err), 0);
    loop_thread_t lt[LOOPS];
    block_thread_t bt[BLOCKING];
    pthread_t tid[LOOPS + BLOCKING];
    for (unsigned i = 0; i < LOOPS; i++) {
        lt[i] = (loop_thread_t){.j = j, .id = i, .n = PER};
        assert_int_equal(pthread_create(&tid[i], NULL, loop_thread_main, &lt[i]), 0);
    }
    for (unsigned i = 0; i < BLOCKING; i++) {
        bt[i] = (block_thread_t){.j = j, .id = LOOPS + i, .n = PER};
        assert_int_equal(pthread_create(&tid[LOOPS + i], NULL, block_thread_main, &bt[i]), 0);
    }
    for (unsigned i = 0; i < LOOPS + BLOCKING; i++) pthread_join(tid[i], NULL);
    for (unsigned i = 0; i < LOOPS; i++) {
        assert_int_equal(lt[i].refused, 0);
        assert_int_equal(lt[i].waits.done, PER);
        assert_int_equal(lt[i].waits.failed, 0);
        assert_true(lt[i].closed);
        assert_true(lt[i].loop_ok);
    }
    for (unsigned i = 0; i < BLOCKING; i++) assert_int_equal(bt[i].rc, 0);
    journal_stats_t st;
    journal_get_stats(j, &st);
    const unsigned total = (LOOPS + BLOCKING) * PER;
    assert_int_equal(st.records, total);
    assert_int_equal(st.queued_appends, 0);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.group_records, total);
    assert_int_equal(st.group_appends, total);
    assert_true(st.fsyncs >= 1 && st.fsyncs <= total);
    print_message("%u appends from %u threads: %llu fdatasync calls\n", total, LOOPS + BLOCKING,
                  (unsigned long long)st.fsyncs);
    journal_close(j);

    /* Everything acknowledged is on disk, each thread's in its order. */
    assert_int_equal(journal_open(&j, f->dir, 64 << 20, err, sizeof err), 0);
    assert_int_equal(journal_records(j), total);
    assert_int_equal(journal_drain_begin(j), total);
    per_thread_t seen = {0};
    uint64_t pos = 0;
    assert_int_equal(journal_drain_read(j, &pos, total + 1, check_seq, &seen), total);
    assert_false(seen.out_of_order);
    for (unsigned i = 0; i < LOOPS + BLOCKING; i++) assert_int_equal(seen.next[i], PER);
    journal_close(j);
}

static void test_a_group_shares_one_fdatasync(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    enum { ASYNC = 20, BLOCKING = 2 };
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    journal_port_t *p = journal_port_new(j, &loop);
    assert_non_null(p);
    journal_stats_t before, after;
    journal_get_stats(j, &before);

    /* Held: every append queues up, from this loop and from two blocked
     * threads, and none completes. */
    journal_hold(j, true);
    waits_t w = {0};
    for (unsigned i = 0; i < ASYNC; i++) {
        char key[32];
        journal_rec_t r = seq_rec(0, i, key);
        assert_int_equal(journal_append_async(p, &r, 1, count_done, &w), 0);
    }
    block_thread_t bt[BLOCKING];
    pthread_t tid[BLOCKING];
    for (unsigned i = 0; i < BLOCKING; i++) {
        bt[i] = (block_thread_t){.j = j, .id = 1 + i, .n = 1};
        assert_int_equal(pthread_create(&tid[i], NULL, block_thread_main, &bt[i]), 0);
    }
    queued_arg_t q = {j, ASYNC + BLOCKING};
    assert_true(fixture_loop_run_until(&loop, queued_cond, &q, DEADLINE_MS));
    assert_int_equal(w.done, 0);
    assert_int_equal(journal_records(j), 0);

    /* Released: the writer takes all of them as one group. */
    journal_hold(j, false);
    until_n_t u = {&w.done, ASYNC};
    assert_true(fixture_loop_run_until(&loop, reached, &u, DEADLINE_MS));
    for (unsigned i = 0; i < BLOCKING; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(bt[i].rc, 0);
    }
    assert_int_equal(w.failed, 0);
    journal_get_stats(j, &after);
    assert_int_equal(after.fsyncs - before.fsyncs, 1);
    assert_int_equal(after.group_appends - before.group_appends, ASYNC + BLOCKING);
    assert_int_equal(after.group_records - before.group_records, ASYNC + BLOCKING);
    assert_int_equal(after.records, ASYNC + BLOCKING);
    assert_int_equal(after.queued_appends, 0);

    bool closed = false;
    journal_port_close(p, set_flag, &closed);
    assert_true(fixture_loop_run_until(&loop, flag_set, &closed, DEADLINE_MS));
    journal_port_free(p);
    assert_int_equal(fixture_loop_close(&loop), 0);
    journal_close(j);
}

static void test_a_full_queue_refuses_at_once(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1000, err, sizeof err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    journal_port_t *p = journal_port_new(j, &loop);
    assert_non_null(p);
    journal_hold(j, true);
    waits_t w = {0};
    unsigned accepted = 0;
    int rc = 0;
    for (unsigned i = 0; i < 1000 && rc == 0; i++) {
        char key[32];
        journal_rec_t r = seq_rec(0, i, key);
        rc = journal_append_async(p, &r, 1, count_done, &w);
        if (rc == 0) accepted++;
    }
    /* Queued appends count against the bound as the files do. */
    assert_int_equal(rc, -ENOSPC);
    assert_true(accepted > 5 && accepted < 100);
    journal_stats_t st;
    journal_get_stats(j, &st);
    assert_int_equal(st.queued_appends, accepted);
    assert_true(st.queued_bytes <= 1000);
    assert_int_equal(st.max_bytes, 1000);
    /* Bad records are refused at once too, and queue nothing. */
    journal_rec_t bad = {.op = 9, .key = "k", .klen = 1};
    assert_int_equal(journal_append_async(p, &bad, 1, count_done, &w), -EINVAL);

    journal_hold(j, false);
    until_n_t u = {&w.done, accepted};
    assert_true(fixture_loop_run_until(&loop, reached, &u, DEADLINE_MS));
    assert_int_equal(w.failed, 0);
    assert_int_equal(journal_records(j), accepted);
    assert_true(journal_bytes(j) <= 1000);
    /* Now the files themselves are full. */
    char key[32];
    journal_rec_t r = seq_rec(0, 999, key);
    assert_int_equal(journal_append_async(p, &r, 1, count_done, &w), -ENOSPC);

    bool closed = false;
    journal_port_close(p, set_flag, &closed);
    assert_true(fixture_loop_run_until(&loop, flag_set, &closed, DEADLINE_MS));
    assert_int_equal(w.done, accepted); /* no callback for a refusal */
    journal_port_free(p);
    assert_int_equal(fixture_loop_close(&loop), 0);
    journal_close(j);
}

/* journal.active is /dev/full: every write fails with ENOSPC, so the whole
 * group fails, each of its appends with the group's errno, and nothing
 * counts as written. */
static void test_a_failed_group_fails_every_append(void **state)
{
    fixture_t *f = *state;
    char err[256], path[128];
    if (access("/dev/full", W_OK) != 0) skip();
    snprintf(path, sizeof path, "%s/journal.active", f->dir);
    assert_int_equal(symlink("/dev/full", path), 0);
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    journal_port_t *p = journal_port_new(j, &loop);
    assert_non_null(p);
    journal_hold(j, true);
    waits_t w = {0};
    for (unsigned i = 0; i < 3; i++) {
        char key[32];
        journal_rec_t r = seq_rec(0, i, key);
        assert_int_equal(journal_append_async(p, &r, 1, count_done, &w), 0);
    }
    journal_hold(j, false);
    until_n_t u = {&w.done, 3};
    assert_true(fixture_loop_run_until(&loop, reached, &u, DEADLINE_MS));
    assert_int_equal(w.failed, 3);
    assert_int_equal(w.last_status, -ENOSPC);
    journal_stats_t st;
    journal_get_stats(j, &st);
    assert_int_equal(st.failed_groups, 1);
    assert_int_equal(st.fsyncs, 0);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.queued_bytes, 0);
    /* A write never acknowledged is not pending: nothing would drain it. */
    assert_int_equal(st.pending_keys, 0);
    /* The blocking call reports the same. */
    char key[32];
    journal_rec_t r = seq_rec(0, 3, key);
    assert_int_equal(journal_append(j, &r, 1), -ENOSPC);

    bool closed = false;
    journal_port_close(p, set_flag, &closed);
    assert_true(fixture_loop_run_until(&loop, flag_set, &closed, DEADLINE_MS));
    journal_port_free(p);
    assert_int_equal(fixture_loop_close(&loop), 0);
    journal_close(j);
}

/* ---------- pending keys ---------- */

/* What the journal says waits for key-i (as rec(i) names it). */
static journal_pending_state_t pending_of(journal_t *j, int i, uint64_t *version)
{
    char key[32];
    int n = snprintf(key, sizeof key, "key-%d", i);
    *version = 0;
    return journal_lookup(j, ring_key_hash(key, (size_t)n), version);
}

static void assert_pending_as_rec(journal_t *j, int i)
{
    char key[32], val[32];
    journal_rec_t want = rec(i, key, val);
    uint64_t v;
    assert_int_equal(pending_of(j, i, &v), want.op == JOURNAL_OP_DEL ? JOURNAL_PENDING_DEL : JOURNAL_PENDING_SET);
    assert_int_equal(v, want.version);
}

static void drain_all(journal_t *j, int64_t expect)
{
    assert_int_equal(journal_drain_begin(j), expect);
    uint64_t pos = 0;
    seen_t s = {-1000000, -1};
    while (journal_drain_read(j, &pos, 1000, count_only, &s) > 0) continue;
    assert_int_equal(journal_drain_done(j), 0);
}

static void test_pending_keys_follow_appends_and_drains(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    uint64_t v;
    assert_int_equal(pending_of(j, 0, &v), JOURNAL_PENDING_NONE);
    assert_int_equal(append_range(j, 0, 10), 0);
    for (int i = 0; i < 10; i++) assert_pending_as_rec(j, i);
    assert_int_equal(pending_of(j, 10, &v), JOURNAL_PENDING_NONE);
    /* A drain starts; what is appended meanwhile goes to the next file. */
    assert_int_equal(journal_drain_begin(j), 10);
    assert_int_equal(append_range(j, 10, 15), 0);
    char key[32] = "key-3";
    journal_rec_t newer = {.op = JOURNAL_OP_SET, .version = 5000, .key = key, .klen = strlen(key)};
    assert_int_equal(journal_append(j, &newer, 1), 0);
    journal_stats_t st;
    journal_get_stats(j, &st);
    assert_int_equal(st.pending_keys, 15);
    assert_int_equal(st.pending_max, (1 << 20) / 33);
    uint64_t pos = 0;
    seen_t s = {0, -1};
    assert_int_equal(journal_drain_read(j, &pos, 100, check_one, &s), 10);
    /* Read and replayed, but not yet acknowledged as a whole: still pending. */
    assert_pending_as_rec(j, 0);
    assert_int_equal(journal_drain_done(j), 0);
    for (int i = 0; i < 10; i++)
        if (i != 3) assert_int_equal(pending_of(j, i, &v), JOURNAL_PENDING_NONE);
    /* key-3's newer write is in the second file: pending until it drains. */
    assert_int_equal(pending_of(j, 3, &v), JOURNAL_PENDING_SET);
    assert_int_equal(v, 5000);
    for (int i = 10; i < 15; i++) assert_pending_as_rec(j, i);
    drain_all(j, 6);
    journal_get_stats(j, &st);
    assert_int_equal(st.pending_keys, 0);
    assert_int_equal(pending_of(j, 3, &v), JOURNAL_PENDING_NONE);
    journal_close(j);
}

/* A node restarted with files on disk holds their keys pending again, each
 * file as its own generation (the draining one first). */
static void test_pending_keys_rebuilt_at_open(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(append_range(j, 0, 10), 0);
    assert_int_equal(journal_drain_begin(j), 10);
    assert_int_equal(append_range(j, 10, 15), 0);
    journal_close(j);

    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    for (int i = 0; i < 15; i++) assert_pending_as_rec(j, i);
    journal_stats_t st;
    journal_get_stats(j, &st);
    assert_int_equal(st.pending_keys, 15);
    assert_false(st.pending_in_doubt);
    drain_all(j, 10);
    uint64_t v;
    for (int i = 0; i < 10; i++) assert_int_equal(pending_of(j, i, &v), JOURNAL_PENDING_NONE);
    for (int i = 10; i < 15; i++) assert_pending_as_rec(j, i);
    drain_all(j, 5);
    journal_get_stats(j, &st);
    assert_int_equal(st.pending_keys, 0);
    journal_close(j);
}

typedef struct close_order {
    waits_t w;
    bool closed, closed_before_all_done;
} close_order_t;

static void close_order_done(void *arg)
{
    close_order_t *c = arg;
    c->closed = true;
    c->closed_before_all_done = c->w.done < 3;
}

/* A port closed while its appends are with the writer still runs their
 * callbacks (their callers wait for them), refuses new ones, and reports
 * closed only after the last. */
static void test_closing_a_port_waits_for_its_appends(void **state)
{
    fixture_t *f = *state;
    char err[256];
    journal_t *j;
    assert_int_equal(journal_open(&j, f->dir, 1 << 20, err, sizeof err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    journal_port_t *p = journal_port_new(j, &loop);
    assert_non_null(p);
    journal_hold(j, true);
    close_order_t c = {0};
    for (unsigned i = 0; i < 3; i++) {
        char key[32];
        journal_rec_t r = seq_rec(0, i, key);
        assert_int_equal(journal_append_async(p, &r, 1, count_done, &c.w), 0);
    }
    journal_port_close(p, close_order_done, &c);
    char key[32];
    journal_rec_t r = seq_rec(0, 3, key);
    assert_int_equal(journal_append_async(p, &r, 1, count_done, &c.w), -ESHUTDOWN);
    assert_false(c.closed);
    journal_hold(j, false);
    assert_true(fixture_loop_run_until(&loop, flag_set, &c.closed, DEADLINE_MS));
    assert_false(c.closed_before_all_done);
    assert_int_equal(c.w.done, 3);
    assert_int_equal(c.w.failed, 0);
    journal_port_free(p);
    assert_int_equal(fixture_loop_close(&loop), 0);
    assert_int_equal(journal_records(j), 3);
    journal_close(j);
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
        cmocka_unit_test_setup_teardown(test_concurrent_appends_keep_each_threads_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_group_shares_one_fdatasync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_full_queue_refuses_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_group_fails_every_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closing_a_port_waits_for_its_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_keys_follow_appends_and_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_keys_rebuilt_at_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
