/* node/redis_uv against real redis-server processes (tests/unit/l2/redis_server.h):
 * round trips, pipelining, AUTH and SELECT, and every way a connection
 * fails: refused, a server that accepts and never answers (SIGSTOP), a
 * server killed with a command in flight, a full queue, shutdown.
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

#include "node/l2/redis_uv.h"
#include "tests/unit/fixture/loop.h"
#include "tests/unit/l2/redis_server.h"

#define NREQ 1000
#define NSLOT (NREQ + 64)
#define NCLI 3
#define WAIT_MS 5000 /* generous: the machine is shared */
#define MS 1000000ull

typedef struct fx fx_t;

typedef struct reply {
    fx_t *f;
    int idx, calls;
    redis_uv_result_t res;
    int type;
    long long integer;
    char str[512]; /* the string, status or error reply */
    size_t len;
    char err[256];
    uint64_t at_ns;
    redis_uv_t *again; /* issue one more command from the callback, into slot `again_idx` */
    int again_idx, again_rc;
} reply_t;

struct fx {
    uv_loop_t loop;
    bool loop_closed;
    redis_server_t srv;
    redis_uv_t *c[NCLI];
    bool done[NCLI];
    redis_uv_stats_t st; /* shared by clients created with it */
    reply_t r[NSLOT];
    int order[NSLOT];
    unsigned replies, bad;
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

static bool c_replies(fx_t *f, uintptr_t n)
{
    return f->replies >= n;
}

static bool c_available(fx_t *f, uintptr_t i)
{
    return redis_uv_available(f->c[i]);
}

static bool c_disconnected(fx_t *f, uintptr_t i)
{
    return redis_uv_state(f->c[i]) == REDIS_UV_DISCONNECTED;
}

static bool c_all_done(fx_t *f, uintptr_t a)
{
    (void)a;
    for (int i = 0; i < NCLI; i++)
        if (f->c[i] && !f->done[i]) return false;
    return true;
}

static bool c_blocked(fx_t *f, uintptr_t a)
{
    (void)a;
    char info[2048];
    return redis_server_query(&f->srv, "INFO clients", info, sizeof info) && strstr(info, "blocked_clients:1");
}

static void run_for(fx_t *f, uint64_t ms)
{
    fixture_loop_run_for(&f->loop, ms);
}

/* ---- clients and commands ---- */

static void on_reply(void *ctx, redis_uv_result_t res, const redisReply *reply, const char *err)
{
    reply_t *p = ctx;
    fx_t *f = p->f;
    if (p->calls++) { /* a second call: counted, checked by the teardown */
        f->bad++;
        return;
    }
    p->res = res;
    p->at_ns = uv_hrtime();
    f->order[f->replies++] = p->idx;
    if ((res == REDIS_UV_OK) != (reply != NULL) || (res == REDIS_UV_OK) != (err == NULL)) f->bad++;
    if (reply) {
        p->type = reply->type;
        p->integer = reply->integer;
        p->len = reply->len;
        if (reply->str) memcpy(p->str, reply->str, reply->len < sizeof p->str ? reply->len : sizeof p->str - 1);
    }
    if (err) snprintf(p->err, sizeof p->err, "%s", err);
    if (p->again) {
        static const char *const argv[] = {"INCR", "chain"};
        reply_t *q = &f->r[p->again_idx];
        q->f = f;
        q->idx = p->again_idx;
        p->again_rc = redis_uv_command(p->again, 2, (const char **)argv, NULL, on_reply, q);
    }
}

/* Sends argv (NULL-terminated) from client ci, its reply into slot i. */
static int cmd_len(fx_t *f, int ci, int i, int argc, const char **argv, const size_t *lens)
{
    reply_t *p = &f->r[i];
    p->f = f;
    p->idx = i;
    return redis_uv_command(f->c[ci], argc, argv, lens, on_reply, p);
}

static int cmd(fx_t *f, int ci, int i, ...)
{
    const char *argv[8];
    int argc = 0;
    va_list ap;
    va_start(ap, i);
    for (const char *a; argc < 8 && (a = va_arg(ap, const char *));) argv[argc++] = a;
    va_end(ap);
    return cmd_len(f, ci, i, argc, argv, NULL);
}

static void assert_result(fx_t *f, int i, redis_uv_result_t res)
{
    if (f->r[i].res != res || f->r[i].calls != 1)
        fprintf(stderr, "slot %d: %d call(s), %s (%s), want %s\n", i, f->r[i].calls, redis_uv_result_name(f->r[i].res),
                f->r[i].err, redis_uv_result_name(res));
    assert_int_equal(f->r[i].calls, 1);
    assert_int_equal(f->r[i].res, res);
}

static redis_uv_t *client(fx_t *f, int ci, const redis_uv_config_t *base)
{
    redis_uv_config_t cfg = base ? *base : (redis_uv_config_t){0};
    cfg.host = "127.0.0.1";
    if (!cfg.port) cfg.port = f->srv.port;
    f->c[ci] = redis_uv_new(&f->loop, &cfg);
    assert_non_null(f->c[ci]);
    return f->c[ci];
}

#define ST(ci, name) atomic_load(&redis_uv_stats(f->c[ci])->name)

static void start_server(fx_t *f, const char *password)
{
    assert_true(redis_server_start(&f->srv, password, 0, WAIT_MS));
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
        if (f->c[i]) redis_uv_close(f->c[i], set_done, &f->done[i]);
    if (!run_until(f, c_all_done, 0, WAIT_MS)) return false;
    for (int i = 0; i < NCLI; i++) redis_uv_free(f->c[i]), f->c[i] = NULL;
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
    redis_server_remove(&f->srv);
    if (f->bad) rc = -1, fprintf(stderr, "%u unexpected callbacks\n", f->bad);
    if (f->loop_closed) free(f); /* else handles still point into it */
    return rc;
}

/* ---- tests ---- */

/* SET and GET of a binary value, a missing key, an error reply; nothing is
 * answered from inside redis_uv_command; a callback may issue commands. */
static void test_round_trip(void **state)
{
    fx_t *f = *state;
    start_server(f, NULL);
    client(f, 0, NULL);
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_DISCONNECTED);
    const char *set[] = {"SET", "bin", "a\0b"}, *get[] = {"GET", "bin"};
    const size_t set_len[] = {3, 3, 3}, get_len[] = {3, 3};
    assert_int_equal(cmd_len(f, 0, 0, 3, set, set_len), 0);
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_CONNECTING);
    assert_int_equal(cmd_len(f, 0, 1, 2, get, get_len), 0);
    assert_int_equal(cmd(f, 0, 2, "GET", "missing", NULL), 0);
    assert_int_equal(cmd(f, 0, 3, "INCR", "bin", NULL), 0);
    f->r[4].again = f->c[0];
    f->r[4].again_idx = 5;
    assert_int_equal(cmd(f, 0, 4, "PING", NULL), 0);
    assert_int_equal(f->replies, 0);
    assert_true(run_until(f, c_replies, 6, WAIT_MS));

    assert_result(f, 0, REDIS_UV_OK);
    assert_int_equal(f->r[0].type, REDIS_REPLY_STATUS);
    assert_string_equal(f->r[0].str, "OK");
    assert_result(f, 1, REDIS_UV_OK);
    assert_int_equal(f->r[1].type, REDIS_REPLY_STRING);
    assert_int_equal(f->r[1].len, 3);
    assert_memory_equal(f->r[1].str, "a\0b", 3);
    assert_result(f, 2, REDIS_UV_OK);
    assert_int_equal(f->r[2].type, REDIS_REPLY_NIL);
    assert_result(f, 3, REDIS_UV_OK); /* the server's error is still an answer */
    assert_int_equal(f->r[3].type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(f->r[3].str, "not an integer"));
    assert_result(f, 4, REDIS_UV_OK);
    assert_int_equal(f->r[4].again_rc, 0);
    assert_result(f, 5, REDIS_UV_OK);
    assert_int_equal(f->r[5].integer, 1);
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_CONNECTED);
    assert_true(redis_uv_available(f->c[0]));

    assert_int_equal(ST(0, commands), 6);
    assert_int_equal(ST(0, replies), 6);
    assert_int_equal(ST(0, reply_errors), 1);
    assert_int_equal(ST(0, connects), 1);
    assert_int_equal(ST(0, reconnects), 0);
    assert_int_equal(atomic_load(&redis_uv_stats(f->c[0])->pending), 0);
    assert_int_equal(atomic_load(&redis_uv_stats(f->c[0])->connected), 1);

    /* Refused at once, no callback: modes where replies stop matching commands. */
    static const char *const refused[] = {"SUBSCRIBE", "psubscribe", "Monitor", "SSUBSCRIBE"};
    for (int i = 0; i < 4; i++) assert_int_equal(cmd(f, 0, 10 + i, refused[i], "ch", NULL), UV_EINVAL);
    assert_int_equal(cmd_len(f, 0, 14, 0, get, NULL), UV_EINVAL);
    run_for(f, 20);
    assert_int_equal(f->replies, 6);
}

/* 1000 INCRs issued at once share one connection; callbacks run in order,
 * each with its own count. */
static void test_pipelined(void **state)
{
    fx_t *f = *state;
    start_server(f, NULL);
    client(f, 0, NULL);
    for (int i = 0; i < NREQ; i++) assert_int_equal(cmd(f, 0, i, "INCR", "ctr", NULL), 0);
    assert_int_equal(f->replies, 0);
    assert_int_equal(atomic_load(&redis_uv_stats(f->c[0])->pending), NREQ);
    assert_true(run_until(f, c_replies, NREQ, WAIT_MS));
    run_for(f, 20); /* nothing runs twice */
    assert_int_equal(f->replies, NREQ);
    for (int i = 0; i < NREQ; i++) {
        assert_result(f, i, REDIS_UV_OK);
        assert_int_equal(f->order[i], i);
        assert_int_equal(f->r[i].integer, i + 1);
    }
    assert_int_equal(ST(0, connects), 1);
    assert_int_equal(atomic_load(&redis_uv_stats(f->c[0])->pending), 0);
}

/* AUTH and SELECT go out first, ahead of commands issued while connecting;
 * without the password the server answers NOAUTH; with a wrong one every
 * queued command fails with the handshake's error. */
static void test_auth_select(void **state)
{
    fx_t *f = *state;
    start_server(f, "s3cret");
    client(f, 0, &(redis_uv_config_t){.password = "s3cret", .db = 5});
    client(f, 1, NULL);
    client(f, 2, &(redis_uv_config_t){.password = "wrong", .db = 5});
    assert_int_equal(cmd(f, 0, 0, "SET", "k", "in5", NULL), 0);
    assert_int_equal(cmd(f, 0, 1, "CLIENT", "INFO", NULL), 0);
    assert_int_equal(cmd(f, 1, 2, "GET", "k", NULL), 0);
    assert_int_equal(cmd(f, 2, 3, "GET", "k", NULL), 0);
    assert_int_equal(cmd(f, 2, 4, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 5, WAIT_MS));

    assert_result(f, 0, REDIS_UV_OK);
    assert_string_equal(f->r[0].str, "OK");
    assert_result(f, 1, REDIS_UV_OK);
    assert_non_null(strstr(f->r[1].str, " db=5 "));
    assert_result(f, 2, REDIS_UV_OK);
    assert_int_equal(f->r[2].type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(f->r[2].str, "NOAUTH"));
    for (int i = 3; i <= 4; i++) {
        assert_result(f, i, REDIS_UV_ERR_HANDSHAKE);
        assert_non_null(strstr(f->r[i].err, "AUTH refused"));
    }
    assert_int_equal(redis_uv_state(f->c[2]), REDIS_UV_DISCONNECTED);
    assert_false(redis_uv_available(f->c[2]));
    assert_non_null(strstr(redis_uv_last_error(f->c[2]), "AUTH refused"));
    assert_int_equal(ST(2, connect_failures), 1);
    assert_int_equal(ST(2, errors[REDIS_UV_ERR_HANDSHAKE]), 2);

    /* The value went to db 5, not db 0. */
    char v[16];
    assert_true(redis_server_query(&f->srv, "GET k", v, sizeof v));
    assert_string_equal(v, "$-1");
}

/* A closed port: the connect error arrives through the callback (long
 * before the connect timeout), then commands fail fast while the backoff
 * runs, the backoff doubles, and a server appearing on the port is used. */
static void test_refused_backoff(void **state)
{
    fx_t *f = *state;
    int port = redis_server_free_port();
    client(f, 0, &(redis_uv_config_t){.port = port, .connect_timeout_ms = 60000, .backoff_min_ms = 100});
    assert_int_equal(cmd(f, 0, 0, "GET", "k", NULL), 0);
    assert_int_equal(f->replies, 0);
    assert_true(run_until(f, c_replies, 1, WAIT_MS));
    assert_result(f, 0, REDIS_UV_ERR_CONNECT);
    assert_non_null(strstr(f->r[0].err, "refused"));
    assert_false(redis_uv_available(f->c[0]));

    assert_int_equal(cmd(f, 0, 1, "GET", "k", NULL), 0);
    assert_int_equal(f->replies, 1); /* failing at once is still not from inside the call */
    assert_true(run_until(f, c_replies, 2, WAIT_MS));
    assert_result(f, 1, REDIS_UV_ERR_BACKOFF);
    assert_non_null(strstr(f->r[1].err, "refused"));

    /* 10 ms of slack: the client's clock (uv_now) is cached per loop turn. */
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_true(uv_hrtime() - f->r[0].at_ns >= (100 - 10) * MS);
    assert_int_equal(cmd(f, 0, 2, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 3, WAIT_MS));
    assert_result(f, 2, REDIS_UV_ERR_CONNECT);
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_true(uv_hrtime() - f->r[2].at_ns >= (200 - 10) * MS);

    assert_int_equal(ST(0, connects), 2);
    assert_int_equal(ST(0, reconnects), 1);
    assert_int_equal(ST(0, connect_failures), 2);
    assert_int_equal(ST(0, errors[REDIS_UV_ERR_CONNECT]), 2);
    assert_int_equal(ST(0, errors[REDIS_UV_ERR_BACKOFF]), 1);

    /* A server on that port now: the next command gets through. */
    assert_true(redis_server_start(&f->srv, NULL, port, WAIT_MS));
    assert_int_equal(cmd(f, 0, 3, "PING", NULL), 0);
    assert_true(run_until(f, c_replies, 4, WAIT_MS));
    assert_result(f, 3, REDIS_UV_OK);
    assert_string_equal(f->r[3].str, "PONG");
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_CONNECTED);
}

/* The server accepts (the kernel does) but never answers AUTH: the connect
 * times out, not before connect_timeout_ms. */
static void test_connect_timeout(void **state)
{
    fx_t *f = *state;
    start_server(f, "pw");
    redis_server_pause(&f->srv);
    client(f, 0, &(redis_uv_config_t){.password = "pw", .connect_timeout_ms = 300});
    uv_update_time(&f->loop);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(cmd(f, 0, 0, "GET", "k", NULL), 0);
    assert_int_equal(cmd(f, 0, 1, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 2, 300 + WAIT_MS));
    for (int i = 0; i < 2; i++) {
        assert_result(f, i, REDIS_UV_ERR_CONNECT_TIMEOUT);
        assert_true(f->r[i].at_ns - t0 >= (300 - 10) * MS);
    }
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_DISCONNECTED);
    assert_int_equal(ST(0, connect_failures), 1);
    assert_int_equal(ST(0, timeouts), 0);
}

/* A connected server stops answering (SIGSTOP): every command in flight
 * times out on its own deadline, not before command_timeout_ms, and the
 * connection is kept; only when the oldest has waited five times as long is
 * it given up; after SIGCONT a new command succeeds on a fresh connection. */
static void test_command_timeout(void **state)
{
    fx_t *f = *state;
    start_server(f, NULL);
    client(f, 0, &(redis_uv_config_t){.command_timeout_ms = 300, .backoff_min_ms = 50});
    assert_int_equal(cmd(f, 0, 0, "CLIENT", "ID", NULL), 0);
    assert_true(run_until(f, c_replies, 1, WAIT_MS));
    assert_result(f, 0, REDIS_UV_OK);
    long long id = f->r[0].integer;

    redis_server_pause(&f->srv);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_hrtime();
    for (int i = 1; i <= 3; i++) assert_int_equal(cmd(f, 0, i, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 4, 300 + WAIT_MS));
    for (int i = 1; i <= 3; i++) {
        assert_result(f, i, REDIS_UV_ERR_TIMEOUT);
        assert_int_equal(f->order[i], i);
        assert_true(f->r[i].at_ns - t0 >= (300 - 10) * MS);
        assert_non_null(strstr(f->r[i].err, "300 ms"));
    }
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_CONNECTED);
    assert_int_equal(ST(0, timeouts), 0);
    assert_true(run_until(f, c_disconnected, 0, 1500 + WAIT_MS));
    assert_true(uv_hrtime() - t0 >= (1500 - 10) * MS);
    assert_int_equal(ST(0, timeouts), 1);
    assert_int_equal(ST(0, errors[REDIS_UV_ERR_TIMEOUT]), 3);
    assert_int_equal(atomic_load(&redis_uv_stats(f->c[0])->connected), 0);

    redis_server_resume(&f->srv);
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_int_equal(cmd(f, 0, 4, "CLIENT", "ID", NULL), 0);
    assert_true(run_until(f, c_replies, 5, WAIT_MS));
    assert_result(f, 4, REDIS_UV_OK);
    assert_true(f->r[4].integer != id);
    assert_int_equal(ST(0, connects), 2);
    assert_int_equal(ST(0, reconnects), 1);
}

/* The server is killed while a BLPOP (and a GET behind it) is in flight:
 * both fail with DISCONNECTED at once, not when BLPOP would have returned;
 * after a restart on the same port a later command succeeds. */
static void test_server_killed(void **state)
{
    fx_t *f = *state;
    start_server(f, NULL);
    client(f, 0, &(redis_uv_config_t){.command_timeout_ms = 60000});
    assert_int_equal(cmd(f, 0, 0, "BLPOP", "list", "30", NULL), 0);
    assert_int_equal(cmd(f, 0, 1, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_blocked, 0, WAIT_MS));
    redis_server_kill(&f->srv);
    assert_true(run_until(f, c_replies, 2, WAIT_MS));
    for (int i = 0; i < 2; i++) {
        assert_result(f, i, REDIS_UV_ERR_DISCONNECTED);
        assert_true(f->r[i].err[0] != 0);
    }
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_DISCONNECTED);

    /* Down: either waiting out the backoff or refused, through the callback. */
    assert_int_equal(cmd(f, 0, 2, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 3, WAIT_MS));
    assert_true(f->r[2].res == REDIS_UV_ERR_BACKOFF || f->r[2].res == REDIS_UV_ERR_CONNECT);

    assert_true(redis_server_restart(&f->srv, WAIT_MS));
    assert_true(run_until(f, c_available, 0, WAIT_MS));
    assert_int_equal(cmd(f, 0, 3, "SET", "k", "back", NULL), 0);
    assert_int_equal(cmd(f, 0, 4, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 5, WAIT_MS));
    assert_result(f, 3, REDIS_UV_OK);
    assert_result(f, 4, REDIS_UV_OK);
    assert_string_equal(f->r[4].str, "back");
    assert_true(ST(0, reconnects) >= 1);
    assert_int_equal(ST(0, errors[REDIS_UV_ERR_DISCONNECTED]), 2);
}

/* The server closes an idle connection (CLIENT KILL): not a failure, the
 * next command reconnects at once. */
static void test_idle_close(void **state)
{
    fx_t *f = *state;
    start_server(f, NULL);
    client(f, 0, &(redis_uv_config_t){.backoff_min_ms = 60000});
    assert_int_equal(cmd(f, 0, 0, "CLIENT", "ID", NULL), 0);
    assert_true(run_until(f, c_replies, 1, WAIT_MS));
    char kill[64], out[64];
    snprintf(kill, sizeof kill, "CLIENT KILL ID %lld", f->r[0].integer);
    assert_true(redis_server_query(&f->srv, kill, out, sizeof out));
    assert_string_equal(out, ":1");
    assert_true(run_until(f, c_disconnected, 0, WAIT_MS));
    assert_true(redis_uv_available(f->c[0]));
    assert_int_equal(cmd(f, 0, 1, "PING", NULL), 0);
    assert_true(run_until(f, c_replies, 2, WAIT_MS));
    assert_result(f, 1, REDIS_UV_OK);
    assert_int_equal(ST(0, connects), 2);
}

/* Beyond max_pending commands in flight, commands fail at once (from the
 * loop) with QUEUE; the others are answered. */
static void test_queue_full(void **state)
{
    fx_t *f = *state;
    start_server(f, NULL);
    client(f, 0, &(redis_uv_config_t){.max_pending = 5});
    for (int i = 0; i < 8; i++) assert_int_equal(cmd(f, 0, i, "GET", "k", NULL), 0);
    assert_int_equal(f->replies, 0);
    assert_true(run_until(f, c_replies, 8, WAIT_MS));
    for (int i = 0; i < 5; i++) assert_result(f, i, REDIS_UV_OK);
    for (int i = 5; i < 8; i++) assert_result(f, i, REDIS_UV_ERR_QUEUE);
    assert_int_equal(ST(0, errors[REDIS_UV_ERR_QUEUE]), 3);
    /* Room again once answered. */
    assert_int_equal(cmd(f, 0, 8, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 9, WAIT_MS));
    assert_result(f, 8, REDIS_UV_OK);
}

/* Closing with commands in flight (on a connected client and on one still
 * in its handshake) and with a client that never connected: every command,
 * those issued from the shutdown callbacks and after close included, fails
 * with SHUTDOWN, from the loop; done runs once per client; no handle is
 * left (uv_loop_close succeeds). */
static void test_close_pending(void **state)
{
    fx_t *f = *state;
    start_server(f, NULL);
    redis_uv_config_t shared = {.stats = &f->st, .command_timeout_ms = 60000, .connect_timeout_ms = 60000};
    client(f, 0, &shared);
    shared.db = 2;
    client(f, 1, &shared);
    client(f, 2, &shared);
    assert_int_equal(cmd(f, 0, 0, "PING", NULL), 0);
    assert_true(run_until(f, c_replies, 1, WAIT_MS));
    assert_result(f, 0, REDIS_UV_OK);

    redis_server_pause(&f->srv);
    for (int i = 1; i <= 5; i++) assert_int_equal(cmd(f, 0, i, "GET", "k", NULL), 0);
    f->r[1].again = f->c[0];
    f->r[1].again_idx = 10;
    for (int i = 6; i <= 7; i++) assert_int_equal(cmd(f, 1, i, "GET", "k", NULL), 0);
    run_for(f, 50);
    assert_int_equal(f->replies, 1);
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_CONNECTED);
    assert_int_equal(redis_uv_state(f->c[1]), REDIS_UV_CONNECTING);

    for (int i = 0; i < NCLI; i++) redis_uv_close(f->c[i], set_done, &f->done[i]);
    redis_uv_close(f->c[0], set_done, &f->done[0]); /* idempotent */
    assert_int_equal(f->replies, 1);
    assert_false(redis_uv_available(f->c[0]));
    assert_int_equal(cmd(f, 0, 8, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_all_done, 0, WAIT_MS));
    run_for(f, 20);
    assert_int_equal(f->replies, 1 + 7 + 1 + 1);
    for (int i = 1; i <= 8; i++) assert_result(f, i, REDIS_UV_ERR_SHUTDOWN);
    assert_int_equal(f->r[1].again_rc, 0);
    assert_result(f, 10, REDIS_UV_ERR_SHUTDOWN);
    assert_int_equal(cmd(f, 0, 11, "GET", "k", NULL), UV_ESHUTDOWN);
    assert_int_equal(atomic_load(&f->st.errors[REDIS_UV_ERR_SHUTDOWN]), 9);
    assert_int_equal(atomic_load(&f->st.pending), 0);
    assert_int_equal(atomic_load(&f->st.connected), 0);
    assert_int_equal(atomic_load(&f->st.timeouts), 0);
    assert_int_equal(atomic_load(&f->st.connect_failures), 0);

    for (int i = 0; i < NCLI; i++) redis_uv_free(f->c[i]), f->c[i] = NULL;
    assert_int_equal(close_loop(f), 0);
}

/* A late reply fails only its own command: the server stalls until the
 * command sent first has timed out (300 ms); the one sent 200 ms later is
 * answered when the server wakes, on the same connection, and the first
 * one's late reply goes nowhere. */
static void test_one_late_command_fails_alone(void **state)
{
    fx_t *f = *state;
    start_server(f, NULL);
    client(f, 0, &(redis_uv_config_t){.command_timeout_ms = 300, .backoff_min_ms = 50});
    assert_int_equal(cmd(f, 0, 0, "SET", "k", "v", NULL), 0);
    assert_true(run_until(f, c_replies, 1, WAIT_MS));
    redis_server_pause(&f->srv);
    assert_int_equal(cmd(f, 0, 1, "GET", "k", NULL), 0);
    run_for(f, 200);
    assert_int_equal(cmd(f, 0, 2, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 2, 300 + WAIT_MS));
    assert_result(f, 1, REDIS_UV_ERR_TIMEOUT);
    redis_server_resume(&f->srv);
    assert_true(run_until(f, c_replies, 3, WAIT_MS));
    assert_result(f, 2, REDIS_UV_OK);
    assert_int_equal(redis_uv_state(f->c[0]), REDIS_UV_CONNECTED);
    assert_int_equal(ST(0, connects), 1);
    assert_int_equal(ST(0, timeouts), 0);
    assert_int_equal(ST(0, errors[REDIS_UV_ERR_TIMEOUT]), 1);
    /* The connection keeps serving. */
    assert_int_equal(cmd(f, 0, 3, "GET", "k", NULL), 0);
    assert_true(run_until(f, c_replies, 4, WAIT_MS));
    assert_result(f, 3, REDIS_UV_OK);
}

int main(void)
{
    if (!redis_server_bin()) {
        fprintf(stderr, "test_redis_uv: redis-server not found; install it (Debian: apt-get install redis-server) "
                        "or point REDIS_SERVER at one\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN); /* as dcache-node does: hiredis 0.14 writes with write(2) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_select, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_late_command_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
