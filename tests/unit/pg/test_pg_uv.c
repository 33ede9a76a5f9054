/* node/pg/pg_uv against real PostgreSQL servers (tests/unit/pg/pg_server.h):
 * round trips with parameters, server errors, order, LISTEN/NOTIFY across
 * a server restart, and every way a query fails: refused, a server killed
 * with a statement in flight, a statement too slow, a server that accepts
 * and never answers (SIGSTOP), a full queue, shutdown.
 *
 * Each test runs its own loop, polled until a condition holds or a
 * deadline passes (no sleeps; tests/unit/fixture/loop.h); the teardown
 * closes the clients, requires uv_loop_close to succeed and removes the
 * servers, on failure too. Timings are only checked as lower bounds ("not
 * before"); deadlines only tell a failure from a hang. No test asserts a
 * speed. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/pg/pg_uv.h"
#include "tests/unit/fixture/loop.h"
#include "tests/unit/pg/pg_server.h"

#define NREQ 500
#define NSLOT (NREQ + 64)
#define NCLI 4
#define NNOTE 16
#define WAIT_MS 10000 /* generous: the machine is shared, and initdb runs in it */
#define MS 1000000ull

typedef struct fx fx_t;

typedef struct answer {
    fx_t *f;
    int idx, calls;
    pg_uv_result_t res;
    ExecStatusType status;
    char row[256];   /* the first row's columns joined by '|' ("NULL" for a null), or the server's error */
    char err[256];
    uint64_t at_ns;
    pg_uv_t *again;  /* issue one more query from the callback, into slot `again_idx` */
    int again_idx, again_rc;
} answer_t;

typedef struct note {
    char channel[64], payload[64];
    int pid;
} note_t;

struct fx {
    uv_loop_t loop;
    bool loop_closed;
    pg_server_t srv;
    char uri[128];
    pg_uv_t *c[NCLI];
    bool done[NCLI];
    pg_uv_stats_t st; /* shared by clients created with it */
    answer_t a[NSLOT];
    int order[NSLOT];
    unsigned answers, bad;
    note_t notes[NNOTE];
    unsigned nnotes, reconnects;
};

/* ---- the loop ---- */

typedef bool (*cond_fn)(fx_t *f, uintptr_t arg);

typedef struct wait {
    fx_t *f;
    cond_fn cond;
    uintptr_t arg;
} wait_t;

static bool wait_holds(void *arg)
{
    wait_t *w = arg;
    return w->cond(w->f, w->arg);
}

static bool run_until(fx_t *f, cond_fn cond, uintptr_t arg, uint64_t max_ms)
{
    wait_t w = {.f = f, .cond = cond, .arg = arg};
    return fixture_loop_run_until(&f->loop, wait_holds, &w, max_ms);
}

static void run_for(fx_t *f, uint64_t ms)
{
    fixture_loop_run_for(&f->loop, ms);
}

static bool c_answers(fx_t *f, uintptr_t n)
{
    return f->answers >= n;
}

static bool c_notes(fx_t *f, uintptr_t n)
{
    return f->nnotes >= n;
}

static bool c_available(fx_t *f, uintptr_t i)
{
    return pg_uv_available(f->c[i]);
}

static bool c_connected(fx_t *f, uintptr_t i)
{
    return pg_uv_state(f->c[i]) == PG_UV_CONNECTED;
}

static bool c_not_connected(fx_t *f, uintptr_t i)
{
    return pg_uv_state(f->c[i]) != PG_UV_CONNECTED;
}

static bool c_reconnected(fx_t *f, uintptr_t n)
{
    return f->reconnects >= n && pg_uv_state(f->c[0]) == PG_UV_CONNECTED;
}

static bool c_all_done(fx_t *f, uintptr_t a)
{
    (void)a;
    for (int i = 0; i < NCLI; i++)
        if (f->c[i] && !f->done[i]) return false;
    return true;
}

/* ---- clients and queries ---- */

static int query(fx_t *f, int ci, int i, const char *sql, int nparams, ...);

static void on_result(void *ctx, pg_uv_result_t res, const PGresult *r, const char *err)
{
    answer_t *p = ctx;
    fx_t *f = p->f;
    if (p->calls++) { /* a second call: counted, checked by the teardown */
        f->bad++;
        return;
    }
    p->res = res;
    p->at_ns = uv_hrtime();
    f->order[f->answers++] = p->idx;
    if ((res == PG_UV_OK) != (r != NULL) || (res == PG_UV_OK) != (err == NULL)) f->bad++;
    if (r) {
        p->status = PQresultStatus(r);
        size_t n = 0;
        if (p->status == PGRES_FATAL_ERROR) {
            snprintf(p->row, sizeof p->row, "%s", PQresultErrorMessage(r));
        } else if (PQntuples(r) > 0) {
            for (int col = 0; col < PQnfields(r) && n < sizeof p->row; col++)
                n += (size_t)snprintf(p->row + n, sizeof p->row - n, "%s%s", col ? "|" : "",
                                      PQgetisnull(r, 0, col) ? "NULL" : PQgetvalue(r, 0, col));
        }
    }
    if (err) snprintf(p->err, sizeof p->err, "%s", err);
    if (p->again) p->again_rc = pg_uv_query(p->again, "SELECT 'chained'", 0, NULL, on_result, &f->a[p->again_idx]);
}

/* Sends sql with its text parameters from client ci, its answer into slot i. */
static int query(fx_t *f, int ci, int i, const char *sql, int nparams, ...)
{
    const char *values[8];
    va_list ap;
    va_start(ap, nparams);
    for (int k = 0; k < nparams && k < 8; k++) values[k] = va_arg(ap, const char *);
    va_end(ap);
    answer_t *p = &f->a[i];
    p->f = f;
    p->idx = i;
    return pg_uv_query(f->c[ci], sql, nparams, nparams ? values : NULL, on_result, p);
}

static void prepare(fx_t *f, int i, pg_uv_t *again, int again_idx)
{
    f->a[i].again = again;
    f->a[i].again_idx = again_idx;
    f->a[again_idx].f = f;
    f->a[again_idx].idx = again_idx;
}

static void assert_result(fx_t *f, int i, pg_uv_result_t res)
{
    if (f->a[i].res != res || f->a[i].calls != 1)
        fprintf(stderr, "slot %d: %d call(s), %s (%s), want %s\n", i, f->a[i].calls, pg_uv_result_name(f->a[i].res),
                f->a[i].err, pg_uv_result_name(res));
    assert_int_equal(f->a[i].calls, 1);
    assert_int_equal(f->a[i].res, res);
}

static void assert_row(fx_t *f, int i, const char *row)
{
    assert_result(f, i, PG_UV_OK);
    assert_int_equal(f->a[i].status, PGRES_TUPLES_OK);
    assert_string_equal(f->a[i].row, row);
}

static pg_uv_t *client(fx_t *f, int ci, const pg_uv_config_t *base)
{
    pg_uv_config_t cfg = base ? *base : (pg_uv_config_t){0};
    if (!cfg.conninfo) cfg.conninfo = f->uri;
    f->c[ci] = pg_uv_new(&f->loop, &cfg);
    assert_non_null(f->c[ci]);
    return f->c[ci];
}

#define ST(ci, name) atomic_load(&pg_uv_stats(f->c[ci])->name)

static void start_server(fx_t *f)
{
    assert_true(pg_server_start(&f->srv, 0, WAIT_MS));
    pg_server_uri(&f->srv, f->uri, sizeof f->uri);
}

static void on_note(void *ctx, const char *channel, const char *payload, int be_pid)
{
    fx_t *f = ctx;
    if (f->nnotes >= NNOTE) {
        f->bad++;
        return;
    }
    note_t *n = &f->notes[f->nnotes++];
    snprintf(n->channel, sizeof n->channel, "%s", channel);
    snprintf(n->payload, sizeof n->payload, "%s", payload);
    n->pid = be_pid;
}

static void on_reconnect(void *ctx)
{
    fx_t *f = ctx;
    f->reconnects++;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    if (!f || uv_loop_init(&f->loop) != 0) return -1;
    *state = f;
    return 0;
}

static void set_done(void *arg)
{
    *(bool *)arg = true;
}

static bool close_clients(fx_t *f)
{
    for (int i = 0; i < NCLI; i++)
        if (f->c[i]) pg_uv_close(f->c[i], set_done, &f->done[i]);
    if (!run_until(f, c_all_done, 0, WAIT_MS)) return false;
    for (int i = 0; i < NCLI; i++) pg_uv_free(f->c[i]), f->c[i] = NULL;
    return true;
}

static int close_loop(fx_t *f)
{
    int rc = fixture_loop_close(&f->loop);
    f->loop_closed = rc == 0;
    return rc;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = 0;
    if (!f->loop_closed) rc = !close_clients(f) || close_loop(f) != 0 ? -1 : 0;
    pg_server_remove(&f->srv);
    if (f->bad) rc = -1, fprintf(stderr, "%u unexpected callbacks\n", f->bad);
    if (f->loop_closed) free(f); /* else handles still point into it */
    return rc;
}

/* ---- tests ---- */

/* Parameters in and values out, a NULL parameter, a key=value conninfo;
 * nothing is answered from inside pg_uv_query; a callback may issue
 * queries; bad arguments are refused without a callback. */
static void test_round_trip(void **state)
{
    fx_t *f = *state;
    start_server(f);
    client(f, 0, NULL);
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_DISCONNECTED);
    assert_int_equal(query(f, 0, 0, "SELECT $1::int + $2::int", 2, "2", "40"), 0);
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_CONNECTING);
    assert_int_equal(query(f, 0, 1, "SELECT $1::text IS NULL, $2::text, length($2)", 2, NULL, "h\xc3\xa9llo"), 0);
    prepare(f, 2, f->c[0], 3);
    assert_int_equal(query(f, 0, 2, "SELECT 'first'", 0), 0);
    assert_int_equal(f->answers, 0);
    assert_true(run_until(f, c_answers, 4, WAIT_MS));

    assert_row(f, 0, "42");
    assert_row(f, 1, "t|h\xc3\xa9llo|5");
    assert_row(f, 2, "first");
    assert_int_equal(f->a[2].again_rc, 0);
    assert_row(f, 3, "chained");
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_CONNECTED);
    assert_true(pg_uv_available(f->c[0]));
    assert_string_equal(pg_uv_last_error(f->c[0]), "");

    assert_int_equal(ST(0, queries), 4);
    assert_int_equal(ST(0, results), 4);
    assert_int_equal(ST(0, server_errors), 0);
    assert_int_equal(ST(0, connects), 1);
    assert_int_equal(ST(0, pending), 0);
    assert_int_equal(ST(0, connected), 1);

    /* Refused at once, no callback. */
    const char *one[] = {"1"};
    assert_int_equal(pg_uv_query(f->c[0], NULL, 0, NULL, on_result, &f->a[10]), UV_EINVAL);
    assert_int_equal(pg_uv_query(f->c[0], "SELECT 1", 0, NULL, NULL, NULL), UV_EINVAL);
    assert_int_equal(pg_uv_query(f->c[0], "SELECT 1", -1, one, on_result, &f->a[10]), UV_EINVAL);
    assert_int_equal(pg_uv_query(f->c[0], "SELECT $1", 1, NULL, on_result, &f->a[10]), UV_EINVAL);
    assert_int_equal(pg_uv_query(f->c[0], "SELECT 1", 65536, one, on_result, &f->a[10]), UV_EINVAL);

    /* The key=value form. */
    char kv[160];
    snprintf(kv, sizeof kv, "host=127.0.0.1 port=%d user=dcache dbname=postgres application_name=pg_uv_test",
             f->srv.port);
    client(f, 1, &(pg_uv_config_t){.conninfo = kv});
    assert_int_equal(query(f, 1, 4, "SELECT current_setting('application_name')", 0), 0);
    assert_true(run_until(f, c_answers, 5, WAIT_MS));
    assert_row(f, 4, "pg_uv_test");
    run_for(f, 20);
    assert_int_equal(f->answers, 5);
}

/* A statement the server refuses is an answer (PG_UV_OK, PGRES_FATAL_ERROR,
 * counted), and the connection goes on serving. */
static void test_server_error(void **state)
{
    fx_t *f = *state;
    start_server(f);
    client(f, 0, NULL);
    assert_int_equal(query(f, 0, 0, "SELEC 1", 0), 0);
    assert_int_equal(query(f, 0, 1, "SELECT 1 / $1::int", 1, "0"), 0);
    assert_int_equal(query(f, 0, 2, "SELECT 1; SELECT 2", 0), 0);
    assert_int_equal(query(f, 0, 3, "CREATE TABLE t (k text PRIMARY KEY)", 0), 0);
    assert_int_equal(query(f, 0, 4, "INSERT INTO t VALUES ($1)", 1, "a"), 0);
    assert_int_equal(query(f, 0, 5, "INSERT INTO t VALUES ($1)", 1, "a"), 0);
    assert_int_equal(query(f, 0, 6, "SELECT count(*) FROM t", 0), 0);
    assert_true(run_until(f, c_answers, 7, WAIT_MS));

    for (int i = 0; i < 3; i++) {
        assert_result(f, i, PG_UV_OK);
        assert_int_equal(f->a[i].status, PGRES_FATAL_ERROR);
    }
    assert_non_null(strstr(f->a[0].row, "syntax error"));
    assert_non_null(strstr(f->a[1].row, "division by zero"));
    assert_non_null(strstr(f->a[2].row, "multiple commands"));
    assert_result(f, 3, PG_UV_OK);
    assert_int_equal(f->a[3].status, PGRES_COMMAND_OK);
    assert_result(f, 4, PG_UV_OK);
    assert_int_equal(f->a[4].status, PGRES_COMMAND_OK);
    assert_result(f, 5, PG_UV_OK);
    assert_int_equal(f->a[5].status, PGRES_FATAL_ERROR);
    assert_non_null(strstr(f->a[5].row, "duplicate key"));
    assert_row(f, 6, "1");

    assert_int_equal(ST(0, results), 7);
    assert_int_equal(ST(0, server_errors), 4);
    assert_int_equal(ST(0, connects), 1);
    assert_int_equal(ST(0, connected), 1);
}

/* A parameter far larger than the socket buffers: PQflush leaves output
 * behind, the client waits for the socket to be writable and goes on;
 * a large result comes back whole; the query behind them follows. */
static void test_large(void **state)
{
    fx_t *f = *state;
    start_server(f);
    client(f, 0, NULL);
    size_t n = 16u << 20;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = 0;
    assert_int_equal(query(f, 0, 0, "SELECT length($1), md5($1) = md5(repeat('x', 16777216))", 1, big), 0);
    free(big); /* the client has its own copy */
    assert_int_equal(query(f, 0, 1, "SELECT length(repeat($1, 8388608))", 1, "yz"), 0);
    assert_int_equal(query(f, 0, 2, "SELECT 'after'", 0), 0);
    assert_true(run_until(f, c_answers, 3, WAIT_MS));
    assert_row(f, 0, "16777216|t");
    assert_row(f, 1, "16777216");
    assert_row(f, 2, "after");
    assert_int_equal(ST(0, connects), 1);
}

/* 500 queries issued at once go out one at a time on one connection, and
 * are answered in order, each with its own value. */
static void test_in_order(void **state)
{
    fx_t *f = *state;
    start_server(f);
    client(f, 0, NULL);
    char vals[NREQ][12];
    for (int i = 0; i < NREQ; i++) {
        snprintf(vals[i], sizeof vals[i], "%d", i);
        assert_int_equal(query(f, 0, i, "SELECT $1::int * 2", 1, vals[i]), 0);
    }
    assert_int_equal(f->answers, 0);
    assert_int_equal(ST(0, pending), NREQ);
    assert_true(run_until(f, c_answers, NREQ, WAIT_MS));
    run_for(f, 20); /* nothing runs twice */
    assert_int_equal(f->answers, NREQ);
    for (int i = 0; i < NREQ; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", 2 * i);
        assert_int_equal(f->order[i], i);
        assert_row(f, i, want);
    }
    assert_int_equal(ST(0, connects), 1);
    assert_int_equal(ST(0, pending), 0);
}

/* A closed port: the refusal arrives from the loop (long before the
 * connect timeout), then queries fail fast while the backoff runs, the
 * backoff doubles, and a server appearing on the port is used. */
static void test_refused_backoff(void **state)
{
    fx_t *f = *state;
    int port = pg_server_free_port();
    snprintf(f->uri, sizeof f->uri, "postgres://dcache@127.0.0.1:%d/postgres", port);
    client(f, 0, &(pg_uv_config_t){.connect_timeout_ms = 60000, .backoff_min_ms = 100});
    assert_int_equal(query(f, 0, 0, "SELECT 1", 0), 0);
    assert_int_equal(f->answers, 0);
    assert_true(run_until(f, c_answers, 1, WAIT_MS));
    assert_result(f, 0, PG_UV_ERR_CONNECT);
    assert_non_null(strstr(f->a[0].err, "refused"));
    assert_non_null(strstr(pg_uv_last_error(f->c[0]), "refused"));
    assert_false(pg_uv_available(f->c[0]));
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_DISCONNECTED);

    assert_int_equal(query(f, 0, 1, "SELECT 1", 0), 0);
    assert_int_equal(f->answers, 1); /* failing at once is still not from inside the call */
    assert_true(run_until(f, c_answers, 2, WAIT_MS));
    assert_result(f, 1, PG_UV_ERR_BACKOFF);
    assert_non_null(strstr(f->a[1].err, "refused"));

    /* 10 ms of slack: the client's clock (uv_now) is cached per loop turn. */
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_true(uv_hrtime() - f->a[0].at_ns >= (100 - 10) * MS);
    assert_int_equal(query(f, 0, 2, "SELECT 1", 0), 0);
    assert_true(run_until(f, c_answers, 3, WAIT_MS));
    assert_result(f, 2, PG_UV_ERR_CONNECT);
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_true(uv_hrtime() - f->a[2].at_ns >= (200 - 10) * MS);

    assert_int_equal(ST(0, connects), 2);
    assert_int_equal(ST(0, connect_failures), 2);
    assert_int_equal(ST(0, errors[PG_UV_ERR_CONNECT]), 2);
    assert_int_equal(ST(0, errors[PG_UV_ERR_BACKOFF]), 1);
    assert_int_equal(ST(0, pending), 0);

    /* A server on that port now: the next query gets through. */
    assert_true(pg_server_start(&f->srv, port, WAIT_MS));
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_int_equal(query(f, 0, 3, "SELECT 'up'", 0), 0);
    assert_true(run_until(f, c_answers, 4, WAIT_MS));
    assert_row(f, 3, "up");
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_CONNECTED);
}

/* The server is killed with a statement in flight and one queued behind
 * it: the first fails with DISCONNECTED at once (not when it would have
 * ended), the second, never sent, goes to the next connection, which is
 * refused; after a restart on the same port queries succeed again. */
static void test_server_killed(void **state)
{
    fx_t *f = *state;
    start_server(f);
    client(f, 0, &(pg_uv_config_t){.query_timeout_ms = 60000, .backoff_min_ms = 100});
    assert_int_equal(query(f, 0, 0, "SELECT pg_sleep(30)", 0), 0);
    assert_int_equal(query(f, 0, 1, "SELECT 1", 0), 0);
    /* Connected means the first statement went out. */
    assert_true(run_until(f, c_connected, 0, WAIT_MS));
    uint64_t t0 = uv_hrtime();
    pg_server_kill(&f->srv);
    assert_true(run_until(f, c_answers, 2, WAIT_MS));
    assert_true(uv_hrtime() - t0 < 30000 * MS);
    assert_result(f, 0, PG_UV_ERR_DISCONNECTED);
    assert_true(f->a[0].err[0] != 0);
    assert_result(f, 1, PG_UV_ERR_CONNECT);
    assert_int_equal(f->order[0], 0);
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_DISCONNECTED);

    /* Down: either waiting out the backoff or refused, from the loop. */
    assert_int_equal(query(f, 0, 2, "SELECT 1", 0), 0);
    assert_true(run_until(f, c_answers, 3, WAIT_MS));
    assert_true(f->a[2].res == PG_UV_ERR_BACKOFF || f->a[2].res == PG_UV_ERR_CONNECT);

    assert_true(pg_server_restart(&f->srv, WAIT_MS));
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_int_equal(query(f, 0, 3, "SELECT 'back'", 0), 0);
    assert_true(run_until(f, c_answers, 4, WAIT_MS));
    assert_row(f, 3, "back");
    assert_int_equal(ST(0, errors[PG_UV_ERR_DISCONNECTED]), 1);
    assert_int_equal(ST(0, connected), 1);
}

/* A statement past query_timeout_ms fails with TIMEOUT, not before, and
 * takes its connection along; a query issued with it, which ran out of
 * time while it waited, fails unsent; one issued later goes out on a new
 * connection and is answered. */
static void test_query_timeout(void **state)
{
    fx_t *f = *state;
    start_server(f);
    client(f, 0, &(pg_uv_config_t){.query_timeout_ms = 1000});
    assert_int_equal(query(f, 0, 0, "SELECT pg_backend_pid()", 0), 0);
    assert_true(run_until(f, c_answers, 1, WAIT_MS));
    assert_result(f, 0, PG_UV_OK);

    uv_update_time(&f->loop);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(query(f, 0, 1, "SELECT pg_sleep(20)", 0), 0);
    assert_int_equal(query(f, 0, 2, "SELECT 'too late'", 0), 0);
    run_for(f, 300);
    assert_int_equal(query(f, 0, 3, "SELECT pg_backend_pid()", 0), 0);
    assert_true(run_until(f, c_answers, 4, 1000 + WAIT_MS));
    assert_result(f, 1, PG_UV_ERR_TIMEOUT);
    assert_true(f->a[1].at_ns - t0 >= (1000 - 10) * MS);
    assert_non_null(strstr(f->a[1].err, "1000 ms"));
    assert_result(f, 2, PG_UV_ERR_TIMEOUT);
    assert_non_null(strstr(f->a[2].err, "not sent"));
    assert_result(f, 3, PG_UV_OK);
    assert_true(strcmp(f->a[3].row, f->a[0].row) != 0); /* another backend */
    for (int i = 0; i < 4; i++) assert_int_equal(f->order[i], i);

    assert_int_equal(ST(0, timeouts), 1);
    assert_int_equal(ST(0, connects), 2);
    assert_int_equal(ST(0, connect_failures), 0);
    assert_int_equal(ST(0, errors[PG_UV_ERR_TIMEOUT]), 2);
    assert_int_equal(ST(0, connected), 1);
}

/* The server stops answering (SIGSTOP, the postmaster and its backends):
 * the statement in flight times out, not before query_timeout_ms; a new
 * connection is accepted by the kernel and never answered, so it times
 * out too; after SIGCONT a query succeeds. */
static void test_stopped_server(void **state)
{
    fx_t *f = *state;
    start_server(f);
    /* A connect timeout a loaded machine (the whole test suite on two
     * cores) does not reach by itself when the server is up. */
    client(f, 0, &(pg_uv_config_t){.query_timeout_ms = 300, .connect_timeout_ms = 4000, .backoff_min_ms = 50});
    assert_int_equal(query(f, 0, 0, "SELECT 1", 0), 0);
    assert_true(run_until(f, c_answers, 1, WAIT_MS));
    assert_result(f, 0, PG_UV_OK);

    pg_server_pause(&f->srv);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(query(f, 0, 1, "SELECT 1", 0), 0);
    assert_true(run_until(f, c_answers, 2, 300 + WAIT_MS));
    assert_result(f, 1, PG_UV_ERR_TIMEOUT);
    assert_true(f->a[1].at_ns - t0 >= (300 - 10) * MS);
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_DISCONNECTED);

    uv_update_time(&f->loop);
    t0 = uv_hrtime();
    assert_int_equal(query(f, 0, 2, "SELECT 1", 0), 0);
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_CONNECTING);
    assert_true(run_until(f, c_answers, 3, 4000 + WAIT_MS));
    assert_result(f, 2, PG_UV_ERR_CONNECT_TIMEOUT);
    assert_true(f->a[2].at_ns - t0 >= (4000 - 10) * MS);
    assert_non_null(strstr(f->a[2].err, "4000 ms"));
    assert_int_equal(ST(0, timeouts), 1);
    assert_int_equal(ST(0, connect_failures), 1);

    pg_server_resume(&f->srv);
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_int_equal(query(f, 0, 3, "SELECT 'awake'", 0), 0);
    assert_true(run_until(f, c_answers, 4, WAIT_MS));
    assert_row(f, 3, "awake");
}

/* LISTEN: the client connects for it alone and is told each notification
 * (channel, payload, the sender's backend) on the channel listened to,
 * matched exactly; after the server restarts it reconnects by itself,
 * LISTENs again, calls on_reconnect once, and gets later notifications;
 * a listener added while connected works too. */
static void test_listen(void **state)
{
    fx_t *f = *state;
    start_server(f);
    client(f, 0, &(pg_uv_config_t){.backoff_min_ms = 50, .backoff_max_ms = 200});
    client(f, 1, &(pg_uv_config_t){.backoff_min_ms = 50, .backoff_max_ms = 200});
    static const char *const bad[] = {"", "1abc", "bad-name", "a b", "x\"y",
                                      "a123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pg_uv_listen(f->c[0], bad[i], on_note, on_reconnect, f), UV_EINVAL);
    assert_int_equal(pg_uv_listen(f->c[0], "Inval_1", NULL, NULL, f), UV_EINVAL);
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_DISCONNECTED);

    assert_int_equal(pg_uv_listen(f->c[0], "Inval_1", on_note, on_reconnect, f), 0);
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_CONNECTING);
    assert_true(run_until(f, c_connected, 0, WAIT_MS));

    assert_int_equal(query(f, 1, 0, "SELECT pg_backend_pid()", 0), 0);
    assert_int_equal(query(f, 1, 1, "SELECT pg_notify('other', 'x')", 0), 0);
    assert_int_equal(query(f, 1, 2, "NOTIFY inval_1, 'folded to lower case'", 0), 0);
    assert_int_equal(query(f, 1, 3, "SELECT pg_notify('Inval_1', $1)", 1, "k1"), 0);
    assert_true(run_until(f, c_notes, 1, WAIT_MS));
    assert_true(run_until(f, c_answers, 4, WAIT_MS));
    run_for(f, 50);
    assert_int_equal(f->nnotes, 1);
    assert_string_equal(f->notes[0].channel, "Inval_1");
    assert_string_equal(f->notes[0].payload, "k1");
    assert_int_equal(f->notes[0].pid, atoi(f->a[0].row));
    assert_int_equal(f->reconnects, 0);
    assert_int_equal(ST(0, queries), 0);
    assert_int_equal(ST(0, notifications), 1);

    /* The server goes away and comes back: nobody asks the listener for
     * anything, yet it is connected and listening again. */
    pg_server_kill(&f->srv);
    assert_true(run_until(f, c_not_connected, 0, WAIT_MS));
    assert_true(pg_server_restart(&f->srv, WAIT_MS));
    assert_true(run_until(f, c_reconnected, 1, WAIT_MS));
    assert_int_equal(f->reconnects, 1);
    assert_int_equal(ST(0, queries), 0);
    assert_true(ST(0, connects) >= 2);

    assert_int_equal(query(f, 1, 4, "SELECT pg_notify('Inval_1', 'k2')", 0), 0);
    assert_true(run_until(f, c_notes, 2, WAIT_MS));
    assert_string_equal(f->notes[1].payload, "k2");

    /* Added while connected: its LISTEN goes before the query issued after
     * it, so once that is answered a notification reaches it. */
    assert_int_equal(pg_uv_listen(f->c[0], "second", on_note, on_reconnect, f), 0);
    assert_int_equal(query(f, 0, 5, "SELECT 1", 0), 0);
    assert_true(run_until(f, c_answers, 6, WAIT_MS));
    assert_row(f, 5, "1");
    assert_int_equal(query(f, 1, 6, "SELECT pg_notify('second', 's')", 0), 0);
    assert_true(run_until(f, c_notes, 3, WAIT_MS));
    assert_string_equal(f->notes[2].channel, "second");
    assert_string_equal(f->notes[2].payload, "s");
    run_for(f, 50);
    assert_int_equal(f->nnotes, 3);
    assert_int_equal(f->reconnects, 1);
    assert_int_equal(ST(0, notifications), 3);
}

/* Beyond max_pending queries waiting, queries fail at once (from the loop)
 * with QUEUE; the others are answered; room again once answered. */
static void test_queue_full(void **state)
{
    fx_t *f = *state;
    start_server(f);
    client(f, 0, &(pg_uv_config_t){.max_pending = 5});
    for (int i = 0; i < 8; i++) assert_int_equal(query(f, 0, i, "SELECT 1", 0), 0);
    assert_int_equal(f->answers, 0);
    assert_true(run_until(f, c_answers, 8, WAIT_MS));
    for (int i = 0; i < 5; i++) assert_row(f, i, "1");
    for (int i = 5; i < 8; i++) {
        assert_result(f, i, PG_UV_ERR_QUEUE);
        assert_non_null(strstr(f->a[i].err, "5 queries"));
    }
    assert_int_equal(ST(0, errors[PG_UV_ERR_QUEUE]), 3);
    assert_int_equal(query(f, 0, 8, "SELECT 1", 0), 0);
    assert_true(run_until(f, c_answers, 9, WAIT_MS));
    assert_row(f, 8, "1");
}

/* Closing with a statement in flight and queries queued (connected), with
 * queries waiting for a connection that hangs, with a listener connecting
 * and with a client never used: every query, those issued from the
 * shutdown callbacks and after close included, fails with SHUTDOWN from
 * the loop, exactly once; done runs once per client; no handle is left
 * (uv_loop_close succeeds). */
static void test_close_pending(void **state)
{
    fx_t *f = *state;
    start_server(f);
    pg_uv_config_t shared = {.stats = &f->st, .query_timeout_ms = 60000, .connect_timeout_ms = 60000};
    for (int i = 0; i < NCLI; i++) client(f, i, &shared);
    assert_int_equal(query(f, 0, 0, "SELECT 1", 0), 0);
    assert_true(run_until(f, c_answers, 1, WAIT_MS));
    assert_row(f, 0, "1");

    assert_int_equal(query(f, 0, 1, "SELECT pg_sleep(30)", 0), 0);
    for (int i = 2; i <= 4; i++) assert_int_equal(query(f, 0, i, "SELECT 1", 0), 0);
    prepare(f, 2, f->c[0], 10);
    pg_server_pause(&f->srv);
    for (int i = 5; i <= 6; i++) assert_int_equal(query(f, 1, i, "SELECT 1", 0), 0);
    assert_int_equal(pg_uv_listen(f->c[2], "ch", on_note, on_reconnect, f), 0);
    run_for(f, 50);
    assert_int_equal(f->answers, 1);
    assert_int_equal(pg_uv_state(f->c[0]), PG_UV_CONNECTED);
    assert_int_equal(pg_uv_state(f->c[1]), PG_UV_CONNECTING);
    assert_int_equal(pg_uv_state(f->c[2]), PG_UV_CONNECTING);

    for (int i = 0; i < NCLI; i++) pg_uv_close(f->c[i], set_done, &f->done[i]);
    pg_uv_close(f->c[0], set_done, &f->done[0]); /* idempotent */
    assert_int_equal(f->answers, 1);
    assert_false(pg_uv_available(f->c[0]));
    assert_int_equal(query(f, 0, 7, "SELECT 1", 0), 0);
    assert_int_equal(pg_uv_listen(f->c[0], "ch", on_note, on_reconnect, f), UV_ESHUTDOWN);
    assert_true(run_until(f, c_all_done, 0, WAIT_MS));
    run_for(f, 20);
    assert_int_equal(f->answers, 1 + 7 + 1);
    for (int i = 1; i <= 7; i++) assert_result(f, i, PG_UV_ERR_SHUTDOWN);
    assert_int_equal(f->a[2].again_rc, 0);
    assert_result(f, 10, PG_UV_ERR_SHUTDOWN);
    assert_int_equal(query(f, 0, 11, "SELECT 1", 0), UV_ESHUTDOWN);
    assert_int_equal(atomic_load(&f->st.errors[PG_UV_ERR_SHUTDOWN]), 8);
    assert_int_equal(atomic_load(&f->st.pending), 0);
    assert_int_equal(atomic_load(&f->st.connected), 0);
    assert_int_equal(atomic_load(&f->st.timeouts), 0);
    assert_int_equal(atomic_load(&f->st.connect_failures), 0);
    assert_int_equal(f->nnotes, 0);

    for (int i = 0; i < NCLI; i++) pg_uv_free(f->c[i]), f->c[i] = NULL;
    assert_int_equal(close_loop(f), 0);
}

/* Conninfo strings libpq refuses, and hosts that would need a blocking
 * name lookup, are refused by pg_uv_new; numeric hosts, socket
 * directories and hostaddr are fine. */
static void test_config(void **state)
{
    fx_t *f = *state;
    assert_null(pg_uv_new(&f->loop, NULL));
    assert_null(pg_uv_new(&f->loop, &(pg_uv_config_t){0}));
    static const char *const refused[] = {
        "not a conninfo",
        "postgres://db.example.com/x",
        "host=localhost dbname=x",
        "host=127.0.0.1,localhost",
        "postgres://127.0.0.1:5432/x?bogus_option=1",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        assert_null(pg_uv_new(&f->loop, &(pg_uv_config_t){.conninfo = refused[i]}));
    static const char *const accepted[] = {
        "postgres://u:p@127.0.0.1:5432/db",
        "host=localhost hostaddr=127.0.0.1 dbname=x",
        "host=/tmp port=5432",
        "postgresql://[::1]:5432,127.0.0.1:5433/db",
    };
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        f->c[i] = pg_uv_new(&f->loop, &(pg_uv_config_t){.conninfo = accepted[i]});
        if (!f->c[i]) fprintf(stderr, "refused: %s\n", accepted[i]);
        assert_non_null(f->c[i]);
    }
    assert_string_equal(pg_uv_result_name(PG_UV_ERR_QUEUE), "queue_full");
    assert_string_equal(pg_uv_result_name(PG_UV_OK), "ok");
}

int main(void)
{
    if (!pg_server_bindir()) {
        fprintf(stderr, "test_pg_uv: PostgreSQL not found; install it (Debian: apt-get install postgresql) "
                        "or point PG_BINDIR at its bin directory\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
