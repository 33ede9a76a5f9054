/* The peer channel on loopback: node/peer_conn (framed, sealed stream),
 * node/peer (client pool: pipelining, request ids, connect and request
 * timeouts, reconnect backoff, circuit breaker) and node/peer_server (async
 * answers). Each test runs its own loop on 127.0.0.1 (tests/unit/peer/peer_fixture.h),
 * polled with a uv_timer until a condition holds or a deadline passes (no
 * sleeps); the teardown closes everything and requires uv_loop_close to
 * succeed (no handle left behind). Timings are only checked as lower bounds
 * ("not before"): no test asserts a speed. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/peer/peer_fixture.h"

/* 1000 GETs queued at once go out pipelined on one connection; every
 * callback runs once, later, with the answer to its own request. */
static void test_round_trip_pipelined(void **state)
{
    fx_t *f = *state;
    fx_srv_start(f, NULL, 0);
    fx_pool_start(f, NULL);
    char key[KEYCAP];
    for (int i = 0; i < NREQ; i++) assert_int_equal(fx_get(f, i, fx_keyname(key, "key-", i), 0, NULL), PEER_OK);
    assert_int_equal(f->replies, 0); /* never from inside peer_pool_request */
    assert_int_equal(atomic_load(&f->cst.pending), NREQ);
    assert_true(fx_run_until(f, fx_c_replies, NREQ, WAIT_MS));
    fx_run_for(f, 50); /* nothing runs twice */
    assert_int_equal(f->replies, NREQ);
    for (int i = 0; i < NREQ; i++) fx_assert_echo(f, i, fx_keyname(key, "key-", i));
    assert_int_equal(f->served, NREQ);
    assert_int_equal(atomic_load(&f->cst.requests[PEER_MSG_GET]), NREQ);
    assert_int_equal(atomic_load(&f->sst.served[PEER_MSG_GET]), NREQ);
    assert_int_equal(atomic_load(&f->cst.frames_out), NREQ);
    assert_int_equal(atomic_load(&f->cst.frames_in), NREQ);
    assert_int_equal(atomic_load(&f->sst.frames_in), NREQ);
    assert_int_equal(atomic_load(&f->sst.frames_out), NREQ);
    assert_true(atomic_load(&f->cst.bytes_out) > NREQ * PEER_FRAME_MIN);
    assert_int_equal(atomic_load(&f->cst.bytes_out), atomic_load(&f->sst.bytes_in));
    assert_int_equal(atomic_load(&f->sst.bytes_out), atomic_load(&f->cst.bytes_in));
    assert_int_equal(atomic_load(&f->cst.connects), 1);
    assert_int_equal(atomic_load(&f->cst.connections_out), 1);
    assert_int_equal(atomic_load(&f->sst.connections_in), 1);
    assert_int_equal(atomic_load(&f->cst.pending), 0);
    fx_assert_no_drops(f);
}

static void answer_later(uv_timer_t *t)
{
    fx_t *f = t->data;
    fx_srv_answer(f, 1); /* out of order: the client matches by id */
    fx_srv_answer(f, 0);
    peer_server_respond_error(f->held[2], PEER_STATUS_NOT_OWNER, "not mine");
    f->held[2] = NULL;
}

/* The serve callback keeps its calls and answers them later from a timer,
 * in another order, one of them with an ERROR frame. */
static void test_async_answer(void **state)
{
    fx_t *f = *state;
    f->mode = SRV_HOLD;
    fx_srv_start(f, NULL, 0);
    fx_pool_start(f, NULL);
    static const char *const keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) assert_int_equal(fx_get(f, i, keys[i], 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_held, 3, WAIT_MS));
    fx_run_for(f, 20);
    assert_int_equal(f->replies, 0);
    uv_timer_start(&f->answer_timer, answer_later, 30, 0);
    assert_true(fx_run_until(f, fx_c_replies, 3, WAIT_MS));
    assert_int_equal(f->order[0], 1);
    assert_int_equal(f->order[1], 0);
    assert_int_equal(f->order[2], 2);
    fx_assert_echo(f, 0, "a");
    fx_assert_echo(f, 1, "b");
    assert_int_equal(f->r[2].res, PEER_ERR_REMOTE);
    assert_int_equal(f->r[2].type, PEER_MSG_ERROR);
    assert_int_equal(f->r[2].code, PEER_STATUS_NOT_OWNER);
    assert_string_equal(f->r[2].value, "not mine");
}

/* A server that never answers: PEER_ERR_TIMEOUT, not before the timeout
 * (the pool's or the request's own); a late answer is ignored and the
 * connection stays usable. */
static void test_request_timeout(void **state)
{
    fx_t *f = *state;
    f->mode = SRV_HOLD;
    fx_srv_start(f, NULL, 0);
    peer_pool_config_t pc = {.request_timeout_ms = 300};
    fx_pool_start(f, &pc);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(fx_get(f, 0, "slow", 0, NULL), PEER_OK);   /* the pool's 300 ms */
    assert_int_equal(fx_get(f, 1, "slower", 100, NULL), PEER_OK); /* its own 100 ms */
    assert_true(fx_run_until(f, fx_c_replies, 2, 300 + WAIT_MS));
    assert_int_equal(f->order[0], 1);
    assert_int_equal(f->order[1], 0);
    for (int i = 0; i < 2; i++) fx_assert_result(f, i, PEER_ERR_TIMEOUT);
    /* 10 ms of slack: the pool's clock (uv_now) is whole milliseconds, cached per loop turn. */
    assert_true(f->r[1].at_ns - t0 >= (100 - 10) * 1000000ull);
    assert_true(f->r[0].at_ns - t0 >= (300 - 10) * 1000000ull);
    assert_int_equal(atomic_load(&f->cst.failures_timeout), 2);
    assert_int_equal(atomic_load(&f->cst.pending), 0);

    assert_int_equal(f->nheld, 2);
    fx_srv_answer(f, 0);
    fx_srv_answer(f, 1);
    fx_run_for(f, 100);
    assert_int_equal(f->replies, 2);
    f->mode = SRV_ECHO;
    assert_int_equal(fx_get(f, 2, "after", 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_replies, 3, WAIT_MS));
    fx_assert_echo(f, 2, "after");
    assert_int_equal(atomic_load(&f->cst.connects), 1);
}

/* A write that times out resets the connection: were it delivered later
 * (a partition holding it back heals), its owner would carry it out then,
 * stamped anew over newer writes. What else was pending on the connection
 * fails with it (and goes to the next owner); the next request connects
 * again. A read that times out leaves the connection alone. */
static void test_write_timeout_resets(void **state)
{
    fx_t *f = *state;
    f->mode = SRV_HOLD;
    fx_srv_start(f, NULL, 0);
    peer_pool_config_t pc = {.request_timeout_ms = 300};
    fx_pool_start(f, &pc);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(fx_get(f, 0, "read", 0, NULL), PEER_OK);                                /* 300 ms */
    assert_int_equal(fx_send(f, "n1", &f->addr, 1, PEER_MSG_DELETE, "gone", 100, NULL), PEER_OK); /* 100 ms */
    assert_true(fx_run_until(f, fx_c_replies, 2, 300 + WAIT_MS));
    assert_int_equal(f->order[0], 1);
    assert_int_equal(f->order[1], 0);
    fx_assert_result(f, 1, PEER_ERR_TIMEOUT);
    fx_assert_result(f, 0, PEER_ERR_CLOSED);
    assert_true(f->r[0].at_ns - t0 < (300 - 10) * 1000000ull); /* with the reset, not at its own deadline */
    assert_int_equal(atomic_load(&f->cst.failures_timeout), 1);
    assert_int_equal(atomic_load(&f->cst.failures_closed), 1);
    assert_int_equal(atomic_load(&f->cst.pending), 0);
    f->mode = SRV_ECHO;
    assert_int_equal(fx_get(f, 2, "after", 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_replies, 3, WAIT_MS));
    fx_assert_echo(f, 2, "after");
    assert_int_equal(atomic_load(&f->cst.connects), 2);
}

/* Nothing listens: PEER_ERR_CONNECT, then the reconnect waits out a backoff
 * (failing fast meanwhile) that doubles on the next failure. */
static void test_connect_refused_backoff(void **state)
{
    fx_t *f = *state;
    fx_set_addr(f, fx_dead_port());
    peer_pool_config_t pc = {.backoff_min_ms = 150, .backoff_max_ms = 1000, .breaker_failures = 100};
    fx_pool_start(f, &pc);
    assert_true(peer_pool_available(f->pool, "n1")); /* unknown: available */
    assert_int_equal(fx_outcome(f, 0, "k"), PEER_ERR_CONNECT);
    uint64_t t1 = f->r[0].at_ms;
    assert_false(peer_pool_available(f->pool, "n1"));
    unsigned replies = f->replies;
    assert_int_equal(fx_get(f, 1, "k", 0, NULL), PEER_ERR_BACKOFF);
    assert_int_equal(atomic_load(&f->cst.failures_backoff), 1);
    assert_true(fx_run_until(f, fx_c_available, 0, WAIT_MS));
    assert_true(uv_now(&f->loop) - t1 >= 150);
    assert_int_equal(f->replies, replies); /* no callback for a request not sent */

    assert_int_equal(fx_outcome(f, 2, "k"), PEER_ERR_CONNECT);
    uint64_t t2 = f->r[2].at_ms;
    assert_false(peer_pool_available(f->pool, "n1"));
    assert_int_equal(fx_get(f, 3, "k", 0, NULL), PEER_ERR_BACKOFF);
    assert_true(fx_run_until(f, fx_c_available, 0, WAIT_MS));
    assert_true(uv_now(&f->loop) - t2 >= 300);
    assert_int_equal(atomic_load(&f->cst.connect_failures), 2);
    assert_int_equal(atomic_load(&f->cst.failures_connect), 2);
    assert_int_equal(atomic_load(&f->cst.failures_backoff), 2);
    assert_int_equal(atomic_load(&f->cst.connects), 0);
    assert_int_equal(atomic_load(&f->cst.breaker_opens), 0);
}

/* A connect that never completes (the listener's accept queue is full, so
 * the SYN is dropped) fails with PEER_ERR_CONNECT after connect_timeout_ms. */
static void test_connect_timeout(void **state)
{
    fx_t *f = *state;
    struct sockaddr_in a;
    int lfd = fx_loopback_socket(&a), filler = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(filler >= 0);
    assert_int_equal(listen(lfd, 0), 0); /* one connection fills the accept queue */
    assert_int_equal(connect(filler, (struct sockaddr *)&a, sizeof a), 0);
    fx_set_addr(f, ntohs(a.sin_port));
    peer_pool_config_t pc = {.connect_timeout_ms = 200, .request_timeout_ms = 10000};
    fx_pool_start(f, &pc);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(fx_get(f, 0, "k", 0, NULL), PEER_OK);
    bool done = fx_run_until(f, fx_c_replies, 1, WAIT_MS);
    close(filler);
    close(lfd);
    assert_true(done);
    assert_int_equal(f->r[0].res, PEER_ERR_CONNECT);
    assert_true(f->r[0].at_ns - t0 >= (200 - 10) * 1000000ull);
    assert_int_equal(atomic_load(&f->cst.connect_failures), 1);
    assert_int_equal(atomic_load(&f->cst.failures_timeout), 0);
}

/* breaker_failures failures open the breaker; after breaker_open_ms one
 * request goes through: its failure opens the breaker again, its success
 * closes it. */
static void test_breaker(void **state)
{
    fx_t *f = *state;
    int port = fx_dead_port();
    fx_set_addr(f, port);
    peer_pool_config_t pc = {
        .breaker_failures = 3, .breaker_open_ms = 300, .backoff_min_ms = 10, .backoff_max_ms = 20};
    fx_pool_start(f, &pc);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&f->cst.breaker_opens), 0);
        assert_true(fx_run_until(f, fx_c_available, 0, WAIT_MS)); /* past the backoff */
        assert_int_equal(fx_outcome(f, i, "k"), PEER_ERR_CONNECT);
    }
    assert_int_equal(atomic_load(&f->cst.breaker_opens), 1);
    assert_int_equal(atomic_load(&f->cst.breakers_open), 1);
    uint64_t opened = f->r[2].at_ms;
    assert_false(peer_pool_available(f->pool, "n1"));
    assert_int_equal(fx_get(f, 3, "k", 0, NULL), PEER_ERR_BREAKER);
    assert_int_equal(atomic_load(&f->cst.failures_breaker), 1);

    /* Half-open, the peer still down: the trial fails, the breaker reopens. */
    assert_true(fx_run_until(f, fx_c_available, 0, WAIT_MS));
    assert_true(uv_now(&f->loop) - opened >= 300);
    assert_int_equal(fx_outcome(f, 4, "k"), PEER_ERR_CONNECT);
    assert_int_equal(atomic_load(&f->cst.breaker_opens), 2);
    assert_int_equal(atomic_load(&f->cst.breakers_open), 1);
    opened = f->r[4].at_ms;
    assert_false(peer_pool_available(f->pool, "n1"));
    assert_int_equal(fx_get(f, 5, "k", 0, NULL), PEER_ERR_BREAKER);

    /* The peer comes up; after breaker_open_ms a single trial goes through. */
    fx_srv_start(f, NULL, port);
    assert_true(fx_run_until(f, fx_c_available, 0, WAIT_MS));
    assert_true(uv_now(&f->loop) - opened >= 300);
    assert_int_equal(fx_get(f, 6, "trial", 0, NULL), PEER_OK);
    assert_false(peer_pool_available(f->pool, "n1"));
    assert_int_equal(fx_get(f, 7, "k", 0, NULL), PEER_ERR_BREAKER);
    unsigned replies = f->replies;
    assert_true(fx_run_until(f, fx_c_replies, replies + 1, WAIT_MS));
    fx_assert_echo(f, 6, "trial");
    assert_int_equal(atomic_load(&f->cst.breakers_open), 0);
    assert_true(peer_pool_available(f->pool, "n1"));
    /* Closed, not half-open: concurrent requests all go through. */
    replies = f->replies;
    for (int i = 8; i < 10; i++) assert_int_equal(fx_get(f, i, "closed", 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_replies, replies + 2, WAIT_MS));
    for (int i = 8; i < 10; i++) fx_assert_echo(f, i, "closed");
    assert_int_equal(atomic_load(&f->cst.breakers_open), 0);
    assert_int_equal(atomic_load(&f->cst.breaker_opens), 2);
    assert_int_equal(atomic_load(&f->cst.failures_breaker), 3);
}

/* A peer that is back (a new run) is forgiven: its open breaker closes and
 * the next request goes through at once, not after breaker_open_ms. */
static void test_forgive(void **state)
{
    fx_t *f = *state;
    int port = fx_dead_port();
    fx_set_addr(f, port);
    peer_pool_config_t pc = {
        .breaker_failures = 2, .breaker_open_ms = 60000, .backoff_min_ms = 10, .backoff_max_ms = 20};
    fx_pool_start(f, &pc);
    for (int i = 0; i < 2; i++) {
        assert_true(fx_run_until(f, fx_c_available, 0, WAIT_MS)); /* past the backoff */
        assert_int_equal(fx_outcome(f, i, "k"), PEER_ERR_CONNECT);
    }
    assert_int_equal(atomic_load(&f->cst.breakers_open), 1);
    assert_false(peer_pool_available(f->pool, "n1"));
    fx_srv_start(f, NULL, port);
    peer_pool_forgive(f->pool, "somebody-else");
    assert_false(peer_pool_available(f->pool, "n1"));
    peer_pool_forgive(f->pool, "n1");
    assert_true(peer_pool_available(f->pool, "n1"));
    assert_int_equal(atomic_load(&f->cst.breakers_open), 0);
    unsigned replies = f->replies;
    assert_int_equal(fx_get(f, 2, "back", 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_replies, replies + 1, WAIT_MS));
    fx_assert_echo(f, 2, "back");
}

static void retry_on_closed(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    reply_t *r = ctx;
    fx_on_reply(ctx, res, resp);
    if (res == PEER_ERR_CLOSED) r->retry = fx_get(r->f, r->idx + 8, "again", 0, NULL);
}

/* The server goes away with requests in flight: PEER_ERR_CLOSED. It comes
 * back on the same port at once: a request sent again from a CLOSED callback
 * goes over a new connection and is answered. The calls the old server held
 * are answered after it was closed and freed (dropped) and released. */
static void test_peer_dies(void **state)
{
    fx_t *f = *state;
    f->mode = SRV_HOLD;
    fx_srv_start(f, NULL, 0);
    fx_pool_start(f, NULL);
    assert_int_equal(fx_get(f, 0, "x", 0, retry_on_closed), PEER_OK);
    for (int i = 1; i < 3; i++) assert_int_equal(fx_get(f, i, "y", 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_held, 3, WAIT_MS));
    peer_server_t *old = f->srv;
    bool old_done = false;
    peer_server_close(old, fx_set_flag, &old_done);
    peer_call_t *held[3];
    memcpy(held, f->held, sizeof held);
    f->mode = SRV_ECHO;
    fx_srv_start(f, NULL, f->port);
    assert_true(fx_run_until(f, fx_c_replies, 4, WAIT_MS));
    for (int i = 0; i < 3; i++) fx_assert_result(f, i, PEER_ERR_CLOSED);
    assert_int_equal(atomic_load(&f->cst.failures_closed), 3);
    assert_int_equal(f->r[0].retry, PEER_OK);
    fx_assert_echo(f, 8, "again");
    assert_int_equal(atomic_load(&f->cst.connects), 2);
    assert_int_equal(atomic_load(&f->cst.pending), 0);
    assert_true(fx_run_until(f, fx_c_flag, (uintptr_t)&old_done, WAIT_MS));
    peer_server_free(old); /* its calls stay valid until answered */
    for (int i = 0; i < 3; i++) fx_respond_echo(held[i], (const uint8_t *)"x", 1);
}

static const peer_msg_t get_k = {.type = PEER_MSG_GET, .id = 5, .key = {(const uint8_t *)"k", 1}};

/* Hostile bytes to a server with a key: each closes its connection and is
 * counted by reason; the server keeps serving. Before the handshake nothing
 * else passes, a sealed frame with the right key included (what a node
 * without the handshake sends, or a frame recorded off the wire); inside a
 * session, a frame replayed, too big, malformed or unexpected. */
static void test_bad_input_keyed(void **state)
{
    fx_t *f = *state;
    uint8_t buf[2048];
    seal_keyring_t wrong, plain;
    fx_ring(&f->skr, 1, 0);
    fx_ring(&f->ckr, 1, 0);
    fx_ring(&wrong, 2, 0);
    fx_ring(&plain, 0, 0);
    peer_server_config_t sc = {.conn.max_frame = 4096};
    fx_srv_start(f, &sc, 0);

    size_t n = fx_frame_msg(&f->skr, &get_k, buf, sizeof buf);
    fx_expect_drop(f, buf, n, PEER_DROP_AUTH);
    n = fx_frame_msg(&wrong, &get_k, buf, sizeof buf);
    fx_expect_drop(f, buf, n, PEER_DROP_AUTH);
    n = fx_frame_msg(&plain, &get_k, buf, sizeof buf); /* no downgrade to plain */
    fx_expect_drop(f, buf, n, PEER_DROP_AUTH);
    uint8_t hello[PEER_HS_HELLO_LEN];
    peer_hs_t hs;
    assert_int_equal(peer_hs_client_hello(&hs, &wrong, NULL, hello), PEER_HS_OK);
    fx_expect_drop(f, hello, sizeof hello, PEER_DROP_AUTH);
    assert_int_equal(atomic_load(&f->sst.handshakes_failed), 4);

    uint64_t before[PEER_DROP_MAX];
    peer_hs_session_t s;
#define SNAP() for (int d = 0; d < PEER_DROP_MAX; d++) before[d] = atomic_load(&f->sst.drops[d])
    /* A frame replayed in the same session: the first is served, the copy
     * closes the connection. */
    SNAP();
    unsigned served = f->served;
    fx_raw_handshake(f, &s);
    n = fx_sess_frame(&s, &get_k, buf, sizeof buf);
    memcpy(buf + n, buf, n);
    fx_raw_send(f, buf, 2 * n);
    fx_expect_session_drop(f, before, served + 1, PEER_DROP_AUTH);

    SNAP();
    fx_raw_handshake(f, &s);
    static const uint8_t too_big[] = {0, 0, 0x10, 0x01}; /* 4097: the prefix alone is enough */
    fx_raw_send(f, too_big, sizeof too_big);
    fx_expect_session_drop(f, before, f->served, PEER_DROP_TOO_BIG);

    SNAP();
    fx_raw_handshake(f, &s);
    static const uint8_t truncated[] = {0x94, 0x03, 0x01, 0x00}; /* GET without its key */
    size_t c = 0;
    assert_int_equal(peer_hs_encrypt(&s, truncated, sizeof truncated, buf + 4, sizeof buf - 4, &c), PEER_HS_OK);
    buf[0] = buf[1] = buf[2] = 0;
    buf[3] = (uint8_t)c;
    n = 4 + c;
    n += fx_sess_frame(&s, &get_k, buf + n, sizeof buf - n); /* after the bad frame: never served */
    fx_raw_send(f, buf, n);
    fx_expect_session_drop(f, before, f->served, PEER_DROP_MALFORMED);

    SNAP();
    fx_raw_handshake(f, &s);
    peer_msg_t resp = {.type = PEER_MSG_GET_RESP, .id = 5};
    n = fx_sess_frame(&s, &resp, buf, sizeof buf);
    fx_raw_send(f, buf, n);
    fx_expect_session_drop(f, before, f->served, PEER_DROP_UNEXPECTED);
#undef SNAP

    fx_pool_start(f, NULL);
    assert_int_equal(fx_outcome(f, 0, "alive"), PEER_OK);
    fx_assert_echo(f, 0, "alive");
}

/* The same without a key: a bad checksum, a garbage body, an encrypted
 * frame; an unknown message type is answered with an ERROR instead. */
static void test_bad_input_plain(void **state)
{
    fx_t *f = *state;
    uint8_t buf[2048];
    fx_srv_start(f, NULL, 0);
    size_t n = fx_frame_msg(&f->skr, &get_k, buf, sizeof buf);
    buf[n - 1] ^= 0x40;
    fx_expect_drop(f, buf, n, PEER_DROP_CHECKSUM);
    static const uint8_t garbage[] = {0xc1, 0xff, 0x00, 0x13, 0x37};
    n = fx_frame_body(&f->skr, garbage, sizeof garbage, buf, sizeof buf);
    n += fx_frame_msg(&f->skr, &get_k, buf + n, sizeof buf - n);
    fx_expect_drop(f, buf, n, PEER_DROP_MALFORMED);
    seal_keyring_t keyed;
    fx_ring(&keyed, 1, 0);
    n = fx_frame_msg(&keyed, &get_k, buf, sizeof buf);
    fx_expect_drop(f, buf, n, PEER_DROP_AUTH);

    static const uint8_t future[] = {0x93, 0x7f, 0x05, 0x00}; /* type 127, id 5 */
    n = fx_frame_body(&f->skr, future, sizeof future, buf, sizeof buf);
    fx_raw_open(f, buf, n);
    assert_true(fx_run_until(f, fx_c_raw, 0, WAIT_MS));
    assert_false(f->raw_closed);
    peer_span_t span;
    assert_int_equal(peer_frame_scan(f->raw_in, f->raw_len, 4096, &span), PEER_SCAN_READY);
    uint8_t body[4096];
    peer_msg_t m;
    assert_int_equal(peer_frame_decode(&f->skr, f->raw_in + span.off, span.len, body, sizeof body, &m, NULL),
                     PEER_PROTO_OK);
    assert_int_equal(m.type, PEER_MSG_ERROR);
    assert_int_equal(m.id, 5);
    assert_int_equal(m.code, PEER_STATUS_UNSUPPORTED);
    fx_raw_close(f);
    assert_true(fx_run_until(f, fx_c_no_conns_in, 0, WAIT_MS));
    assert_int_equal(atomic_load(&f->sst.drops[PEER_DROP_MALFORMED]), 1);
    assert_int_equal(f->served, 0);
}

/* Same key on both sides; a rotation in progress (each side seals with its
 * own primary, opens with either key); a client with another key. */
static void test_keyring(void **state)
{
    fx_t *f = *state;
    fx_ring(&f->skr, 0x22, 0x11);
    fx_srv_start(f, NULL, 0);
    fx_ring(&f->ckr, 0x22, 0);
    fx_pool_start(f, NULL);
    char key[KEYCAP];
    for (int i = 0; i < 20; i++) assert_int_equal(fx_get(f, i, fx_keyname(key, "sealed-", i), 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_replies, 20, WAIT_MS));
    for (int i = 0; i < 20; i++) fx_assert_echo(f, i, fx_keyname(key, "sealed-", i));
    assert_true(fx_pool_stop(f));

    fx_ring(&f->ckr, 0x11, 0x22);
    fx_pool_start(f, NULL);
    assert_int_equal(fx_outcome(f, 20, "rotating"), PEER_OK);
    fx_assert_echo(f, 20, "rotating");
    assert_true(fx_pool_stop(f));
    fx_assert_no_drops(f);

    fx_ring(&f->ckr, 0x33, 0);
    fx_pool_start(f, NULL);
    assert_int_equal(fx_outcome(f, 21, "intruder"), PEER_ERR_CLOSED);
    assert_int_equal(atomic_load(&f->sst.drops[PEER_DROP_AUTH]), 1);
    assert_int_equal(f->served, 21);
}

/* Bounds: max_pending per peer refuses at once; max_calls per server
 * connection answers UNAVAILABLE; a PING is answered by the server itself. */
static void test_limits_and_ping(void **state)
{
    fx_t *f = *state;
    f->mode = SRV_HOLD;
    peer_server_config_t sc = {.max_calls = 2};
    fx_srv_start(f, &sc, 0);
    peer_pool_config_t pc = {.max_pending = 3};
    fx_pool_start(f, &pc);
    for (int i = 0; i < 3; i++) assert_int_equal(fx_get(f, i, "k", 0, NULL), PEER_OK);
    assert_int_equal(fx_get(f, 3, "k", 0, NULL), PEER_ERR_QUEUE);
    assert_int_equal(atomic_load(&f->cst.failures_queue), 1);
    assert_true(fx_run_until(f, fx_c_replies, 1, WAIT_MS));
    assert_int_equal(f->r[2].res, PEER_ERR_REMOTE);
    assert_int_equal(f->r[2].code, PEER_STATUS_UNAVAILABLE);
    assert_int_equal(f->nheld, 2);
    assert_int_equal(fx_send(f, "n1", &f->addr, 4, PEER_MSG_PING, NULL, 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_replies, 2, WAIT_MS));
    assert_int_equal(f->r[4].res, PEER_OK);
    assert_int_equal(f->r[4].type, PEER_MSG_PONG);
    assert_int_equal(atomic_load(&f->sst.served[PEER_MSG_PING]), 1);
    assert_int_equal(f->served, 2);
    fx_srv_answer(f, 0);
    fx_srv_answer(f, 1);
    assert_true(fx_run_until(f, fx_c_replies, 4, WAIT_MS));
    fx_assert_echo(f, 0, "k");
    fx_assert_echo(f, 1, "k");
}

static void next_owner_on_timeout(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    reply_t *r = ctx;
    fx_on_reply(ctx, res, resp);
    if (res == PEER_ERR_TIMEOUT) r->retry = fx_send(r->f, "n0", &r->f->addr, r->idx + 1, PEER_MSG_GET, "x", 100, NULL);
}

/* A TIMEOUT callback moves on to another owner, one the pool already knows
 * (idle, earlier in its table) and that does not answer either: that
 * request times out too. */
static void test_timeout_then_next_owner(void **state)
{
    fx_t *f = *state;
    fx_srv_start(f, NULL, 0);
    fx_pool_start(f, NULL);
    assert_int_equal(fx_send(f, "n0", &f->addr, 0, PEER_MSG_GET, "warm", 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, fx_c_replies, 1, WAIT_MS));
    fx_assert_echo(f, 0, "warm");
    f->mode = SRV_HOLD;
    assert_int_equal(fx_send(f, "n1", &f->addr, 1, PEER_MSG_GET, "x", 100, next_owner_on_timeout), PEER_OK);
    assert_true(fx_run_until(f, fx_c_replies, 3, WAIT_MS));
    fx_assert_result(f, 1, PEER_ERR_TIMEOUT);
    assert_int_equal(f->r[1].retry, PEER_OK);
    fx_assert_result(f, 2, PEER_ERR_TIMEOUT);
}

static void close_on_timeout(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    reply_t *r = ctx;
    fx_on_reply(ctx, res, resp);
    if (res == PEER_ERR_TIMEOUT) peer_pool_close(r->f->pool, fx_pool_done_cb, r->f);
}

/* The first of several requests expiring together closes the pool from its
 * callback: the others still end with TIMEOUT, the one not yet expired with
 * SHUTDOWN, each callback once. */
static void test_close_from_timeout_callback(void **state)
{
    fx_t *f = *state;
    f->mode = SRV_HOLD;
    fx_srv_start(f, NULL, 0);
    fx_pool_start(f, NULL);
    for (int i = 0; i < 3; i++) assert_int_equal(fx_get(f, i, "x", 50, close_on_timeout), PEER_OK);
    assert_int_equal(fx_get(f, 3, "y", 0, close_on_timeout), PEER_OK);
    assert_true(fx_run_until(f, fx_c_pool_done, 0, WAIT_MS));
    fx_run_for(f, 50);
    assert_int_equal(f->replies, 4);
    assert_int_equal(f->pool_done, 1);
    for (int i = 0; i < 3; i++) fx_assert_result(f, i, PEER_ERR_TIMEOUT);
    fx_assert_result(f, 3, PEER_ERR_SHUTDOWN);
}

static void reply_then_send(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    reply_t *r = ctx;
    fx_on_reply(ctx, res, resp);
    r->retry = fx_get(r->f, r->idx + 10, "late", 0, NULL);
}

/* Closing the pool fails what is in flight (connected or still connecting)
 * with PEER_ERR_SHUTDOWN, refuses new requests, calls done once; then the
 * loop closes with nothing left. */
static void test_shutdown(void **state)
{
    fx_t *f = *state;
    f->mode = SRV_HOLD;
    fx_srv_start(f, NULL, 0);
    fx_pool_start(f, NULL);
    char key[KEYCAP];
    for (int i = 0; i < 5; i++)
        assert_int_equal(fx_get(f, i, fx_keyname(key, "pending-", i), 0, reply_then_send), PEER_OK);
    assert_true(fx_run_until(f, fx_c_held, 5, WAIT_MS));
    struct sockaddr_in dead;
    assert_int_equal(uv_ip4_addr("127.0.0.1", fx_dead_port(), &dead), 0);
    assert_int_equal(fx_send(f, "n2", &dead, 5, PEER_MSG_GET, "k", 0, reply_then_send), PEER_OK);
    peer_pool_close(f->pool, fx_pool_done_cb, f);
    assert_int_equal(fx_get(f, 6, "k", 0, NULL), PEER_ERR_SHUTDOWN);
    assert_true(fx_run_until(f, fx_c_pool_done, 0, WAIT_MS));
    fx_run_for(f, 50);
    assert_int_equal(f->pool_done, 1);
    assert_int_equal(f->replies, 6);
    for (int i = 0; i < 6; i++) {
        fx_assert_result(f, i, PEER_ERR_SHUTDOWN);
        assert_int_equal(f->r[i].retry, PEER_ERR_SHUTDOWN);
    }
    assert_int_equal(atomic_load(&f->cst.pending), 0);
    assert_int_equal(atomic_load(&f->cst.connections_out), 0);
    peer_pool_free(f->pool);
    f->pool = NULL;
    assert_true(fx_srv_stop(f));
    assert_int_equal(fx_close_loop(f), 0);
}

/* The shared cluster port's path. A plain listening socket stands in for
 * gossip's listener: it accepts the pool's connection, reads its first
 * bytes (the preamble, then frames), and another thread hands the socket
 * with the bytes after the preamble to a server that listens nowhere. The
 * server serves it like any other; once it closes, it refuses handovers. */
typedef struct sorter {
    int lfd, fd;
    uint8_t in[4096];
    ssize_t n;
    int rc;
    peer_server_t *srv;
} sorter_t;

static bool c_sorted(fx_t *f, uintptr_t arg)
{
    (void)f;
    sorter_t *so = (sorter_t *)arg;
    if (so->n > 0) return true; /* asked again once it holds */
    if (so->fd < 0) so->fd = accept(so->lfd, NULL, NULL);
    if (so->fd < 0) return false;
    so->n = recv(so->fd, so->in, sizeof so->in, MSG_DONTWAIT);
    return so->n > 0;
}

static void *adopt_thread(void *arg)
{
    sorter_t *so = arg;
    so->rc = peer_server_adopt(so->srv, so->fd, so->in + 1, (size_t)so->n - 1);
    return NULL;
}

static void test_adopt(void **state)
{
    fx_t *f = *state;
    fx_srv_new(f, NULL);
    assert_int_equal(peer_server_adopt(f->srv, -1, NULL, 0), UV_EINVAL); /* not started */
    assert_int_equal(peer_server_adopt_start(f->srv), 0);
    struct sockaddr_in a;
    sorter_t so = {.lfd = fx_loopback_socket(&a), .fd = -1, .srv = f->srv};
    assert_int_equal(listen(so.lfd, 16), 0);
    assert_int_equal(fcntl(so.lfd, F_SETFL, O_NONBLOCK), 0);
    fx_set_addr(f, ntohs(a.sin_port));
    fx_pool_start(f, NULL);
    char key[KEYCAP];
    for (int i = 0; i < 10; i++) assert_int_equal(fx_get(f, i, fx_keyname(key, "key-", i), 0, NULL), PEER_OK);
    assert_true(fx_run_until(f, c_sorted, (uintptr_t)&so, WAIT_MS));
    assert_int_equal(so.in[0], PEER_STREAM_PREAMBLE); /* the client's first byte */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, adopt_thread, &so), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(so.rc, 0);
    assert_true(fx_run_until(f, fx_c_replies, 10, WAIT_MS));
    for (int i = 0; i < 10; i++) fx_assert_echo(f, i, fx_keyname(key, "key-", i));
    assert_int_equal(atomic_load(&f->sst.connections_in), 1);
    assert_int_equal(atomic_load(&f->sst.served[PEER_MSG_GET]), 10);
    assert_int_equal(atomic_load(&f->cst.bytes_out), atomic_load(&f->sst.bytes_in));
    fx_assert_no_drops(f);
    /* Closing: a handover now is refused and the socket stays the caller's. */
    peer_server_close(f->srv, fx_set_flag, &f->srv_done);
    f->srv_closed = true;
    int late = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(peer_server_adopt(f->srv, late, NULL, 0), UV_ECANCELED);
    assert_int_equal(close(late), 0);
    assert_true(fx_srv_stop(f));
    close(so.lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_pipelined, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_answer, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_timeout_resets, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused_backoff, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_breaker, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_forgive, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_peer_dies, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_keyed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_plain, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_keyring, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_ping, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_next_owner, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_from_timeout_callback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_adopt, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
