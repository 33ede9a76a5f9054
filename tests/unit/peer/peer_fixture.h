/* peer_fixture: a loopback harness for the peer channel tests
 * (tests/unit/test_peer.c). One fx_t per test: its own uv loop, a
 * peer_server whose serve callback echoes GETs or holds them for the test to
 * answer, a peer_pool, reply slots the pool's callbacks fill in, and a raw
 * blocking socket for bytes the pool would never send.
 *
 * The loop is only ever driven by fx_run_until: it polls a condition until
 * it holds or a deadline passes (no sleeps; tests/unit/fixture/loop.h).
 * fx_setup / fx_teardown are cmocka fixtures; the teardown closes the pool
 * and the server, runs the loop dry and fails unless uv_loop_close succeeds.
 */
#ifndef DCACHE_TEST_PEER_FIXTURE_H
#define DCACHE_TEST_PEER_FIXTURE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/peer_hs.h"
#include "node/peer/peer.h"
#include "node/peer/peer_server.h"

#define NREQ 1000
#define MAXHELD 16
#define KEYCAP 32
#define WAIT_MS 5000 /* generous: the machine is shared */

enum { SRV_ECHO, SRV_HOLD };

typedef struct fx fx_t;

typedef struct reply {
    fx_t *f;
    int idx, calls;
    peer_result_t res, retry; /* retry: what a request sent from the callback returned */
    peer_msg_type_t type;
    uint32_t code;            /* status, or the ERROR code */
    char value[64];           /* value, or the ERROR message */
    uint64_t at_ms, at_ns;    /* uv_now and uv_hrtime at the callback */
} reply_t;

struct fx {
    uv_loop_t loop;
    uv_timer_t answer_timer;
    bool loop_closing, loop_closed;
    peer_stats_t cst, sst; /* client (pool) and server counters */
    seal_keyring_t ckr, skr;
    peer_server_t *srv;
    bool srv_closed, srv_done;
    int mode, port, pool_done;
    unsigned served, nheld, bad, replies;
    peer_call_t *held[MAXHELD];
    uint8_t held_key[MAXHELD][KEYCAP];
    size_t held_klen[MAXHELD];
    peer_pool_t *pool;
    struct sockaddr_in addr;
    int order[NREQ + 32];
    reply_t r[NREQ + 32];
    int raw;               /* a plain socket, for bytes the pool would never send */
    uint8_t raw_in[4096];  /* what came back on it */
    size_t raw_len;
    bool raw_closed;       /* by the server: EOF or reset */
};

/* ---- the loop ---- */

typedef bool (*fx_cond_fn)(fx_t *f, uintptr_t arg);
/* Runs the loop until cond holds or max_ms pass; whether it holds
 * (fixture_loop_run_until: a 5 ms tick also wakes the loop for conditions
 * that only time changes). */
bool fx_run_until(fx_t *f, fx_cond_fn cond, uintptr_t arg, uint64_t max_ms);
void fx_run_for(fx_t *f, uint64_t ms);
/* Conditions. */
bool fx_c_replies(fx_t *f, uintptr_t n);        /* n reply callbacks ran */
bool fx_c_held(fx_t *f, uintptr_t n);           /* the server holds n calls */
bool fx_c_available(fx_t *f, uintptr_t a);      /* peer_pool_available("n1") */
bool fx_c_flag(fx_t *f, uintptr_t p);           /* *(bool *)p */
bool fx_c_pool_done(fx_t *f, uintptr_t a);
bool fx_c_no_conns_in(fx_t *f, uintptr_t a);    /* the server has no connection left */
bool fx_c_raw(fx_t *f, uintptr_t a);            /* the raw socket was closed or got a whole frame */
void fx_set_flag(void *arg);                    /* a done callback: *(bool *)arg = true */

/* ---- addresses, keys ---- */

void fx_set_addr(fx_t *f, int port);            /* f->addr = 127.0.0.1:port */
int fx_loopback_socket(struct sockaddr_in *a);  /* a socket bound to 127.0.0.1 on a free port */
int fx_dead_port(void);                         /* a loopback port nothing listens on */
const char *fx_keyname(char *buf, const char *prefix, int i); /* buf: KEYCAP bytes */
/* A keyring of keys filled with these bytes; 0 ends the list. */
void fx_ring(seal_keyring_t *r, int b1, int b2);

/* ---- the server (serve: GET only; SRV_ECHO answers "v=<key>" at once,
 * SRV_HOLD keeps the call in f->held) ---- */

void fx_srv_start(fx_t *f, const peer_server_config_t *cfg, int port); /* sets f->port, f->addr */
void fx_srv_new(fx_t *f, const peer_server_config_t *cfg);               /* the same, not listening */
/* Closes the server, answers the calls it still holds (the answers are
 * dropped, the calls released) and frees it; false if done never came. */
bool fx_srv_stop(fx_t *f);
void fx_respond_echo(peer_call_t *call, const uint8_t *key, size_t klen);
void fx_srv_answer(fx_t *f, unsigned i);        /* echoes held call i */

/* ---- the pool (peer "n1" at f->addr unless told) ---- */

void fx_pool_start(fx_t *f, const peer_pool_config_t *cfg);
bool fx_pool_stop(fx_t *f);                     /* close, wait for done, free */
void fx_pool_done_cb(void *arg);
/* The reply callback: fills f->r[idx] and appends idx to f->order. */
void fx_on_reply(void *ctx, peer_result_t res, const peer_msg_t *resp);
/* Sends a request whose reply goes to f->r[i] (cb NULL: fx_on_reply). */
peer_result_t fx_send(fx_t *f, const char *name, const struct sockaddr_in *to, int i, peer_msg_type_t type,
                      const char *key, uint64_t timeout_ms, peer_reply_fn cb);
peer_result_t fx_get(fx_t *f, int i, const char *key, uint64_t timeout_ms, peer_reply_fn cb);
/* A GET that fails either at once or through its callback: its result
 * (f->r[i].at_ms is when); -1 if the callback never ran. */
int fx_outcome(fx_t *f, int i, const char *key);
void fx_assert_result(fx_t *f, int i, peer_result_t res); /* one callback, with res */
void fx_assert_echo(fx_t *f, int i, const char *key);     /* one callback, PEER_OK, "v=<key>" */
void fx_assert_no_drops(fx_t *f);

/* ---- raw bytes ---- */

/* Connects a blocking socket to the server (the kernel completes the
 * handshake while the loop is not running) and writes len bytes. */
void fx_raw_open(fx_t *f, const uint8_t *bytes, size_t len);
void fx_raw_close(fx_t *f);
/* Opens a raw connection that completes the handshake with the server's
 * key ring (f->skr's primary), leaving its session in *s and raw_in empty. */
void fx_raw_handshake(fx_t *f, peer_hs_session_t *s);
void fx_raw_send(fx_t *f, const uint8_t *bytes, size_t len);
/* A frame of m in the session: [length][secretstream(body)]. */
size_t fx_sess_frame(peer_hs_session_t *s, const peer_msg_t *m, uint8_t *out, size_t cap);
/* After fx_raw_handshake and sends: the server closed the connection,
 * counting exactly one drop, for `why`, and serving nothing. */
void fx_expect_session_drop(fx_t *f, const uint64_t before[PEER_DROP_MAX], unsigned served, peer_drop_t why);
size_t fx_frame_msg(const seal_keyring_t *kr, const peer_msg_t *m, uint8_t *out, size_t cap);
size_t fx_frame_body(const seal_keyring_t *kr, const uint8_t *body, size_t len, uint8_t *out, size_t cap);
/* Sends bytes on a fresh connection: the server must close it without an
 * answer or a serve call, counting exactly one drop, of kind why. */
void fx_expect_drop(fx_t *f, const uint8_t *bytes, size_t len, peer_drop_t why);

/* ---- cmocka fixtures ---- */

int fx_setup(void **state);
/* Closes what is left, runs the loop dry and closes it: 0 on success. */
int fx_close_loop(fx_t *f);
int fx_teardown(void **state);

#endif
