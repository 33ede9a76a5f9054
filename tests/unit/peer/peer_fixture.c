/* peer_fixture: see peer_fixture.h. */
#include "tests/unit/peer/peer_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/fixture/loop.h"

/* ---- driving the loop ---------------------------------------------------- */

typedef struct fx_wait {
    fx_t *f;
    fx_cond_fn cond;
    uintptr_t arg;
} fx_wait_t;

static bool fx_wait_holds(void *arg)
{
    fx_wait_t *w = arg;
    return w->cond(w->f, w->arg);
}

bool fx_run_until(fx_t *f, fx_cond_fn cond, uintptr_t arg, uint64_t max_ms)
{
    fx_wait_t w = {.f = f, .cond = cond, .arg = arg};
    return fixture_loop_run_until(&f->loop, fx_wait_holds, &w, max_ms);
}

bool fx_c_replies(fx_t *f, uintptr_t n)
{
    return f->replies >= n;
}

bool fx_c_held(fx_t *f, uintptr_t n)
{
    return f->nheld >= n;
}

bool fx_c_available(fx_t *f, uintptr_t a)
{
    (void)a;
    return peer_pool_available(f->pool, "n1");
}

bool fx_c_flag(fx_t *f, uintptr_t p)
{
    (void)f;
    return *(bool *)p;
}

bool fx_c_pool_done(fx_t *f, uintptr_t a)
{
    (void)a;
    return f->pool_done > 0;
}

bool fx_c_no_conns_in(fx_t *f, uintptr_t a)
{
    (void)a;
    return atomic_load(&f->sst.connections_in) == 0;
}

void fx_run_for(fx_t *f, uint64_t ms)
{
    fixture_loop_run_for(&f->loop, ms);
}

void fx_set_flag(void *arg)
{
    *(bool *)arg = true;
}

void fx_set_addr(fx_t *f, int port)
{
    assert_int_equal(uv_ip4_addr("127.0.0.1", port, &f->addr), 0);
}

const char *fx_keyname(char *buf, const char *prefix, int i)
{
    snprintf(buf, KEYCAP, "%s%d", prefix, i);
    return buf;
}

void fx_ring(seal_keyring_t *r, int b1, int b2)
{
    uint8_t k[SEAL_KEY_LEN];
    seal_keyring_init(r);
    for (int i = 0, b[] = {b1, b2}; i < 2 && b[i]; i++) seal_keyring_add(r, memset(k, b[i], sizeof k));
}

void fx_assert_no_drops(fx_t *f)
{
    for (int d = 0; d < PEER_DROP_MAX; d++) {
        assert_int_equal(atomic_load(&f->cst.drops[d]), 0);
        assert_int_equal(atomic_load(&f->sst.drops[d]), 0);
    }
}

int fx_loopback_socket(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof *a;
    assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)a, &len), 0);
    return fd;
}

int fx_dead_port(void)
{
    struct sockaddr_in a;
    close(fx_loopback_socket(&a));
    return ntohs(a.sin_port);
}

/* ---- the server ------------------------------------------------------------ */

void fx_respond_echo(peer_call_t *call, const uint8_t *key, size_t klen)
{
    char v[KEYCAP + 2] = "v=";
    memcpy(v + 2, key, klen);
    peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_OK, .version = 7};
    m.value = (peer_bytes_t){(const uint8_t *)v, klen + 2};
    m.content_type = (peer_bytes_t){(const uint8_t *)"text/plain", 10};
    peer_server_respond(call, &m);
}

static void serve(peer_call_t *call, const peer_msg_t *req, void *ctx)
{
    fx_t *f = ctx;
    f->served++;
    /* A DELETE is only ever held (a write that never gets its answer). */
    bool held_write = req->type == PEER_MSG_DELETE && f->mode == SRV_HOLD;
    if ((req->type != PEER_MSG_GET && !held_write) || req->key.len >= KEYCAP || f->nheld == MAXHELD) {
        f->bad++;
        peer_server_respond_error(call, PEER_STATUS_BAD_REQUEST, "unexpected");
        return;
    }
    if (f->mode == SRV_ECHO) {
        fx_respond_echo(call, req->key.p, req->key.len);
        return;
    }
    /* Held: req is valid during the call only, so the key is copied. */
    memcpy(f->held_key[f->nheld], req->key.p, req->key.len);
    f->held_klen[f->nheld] = req->key.len;
    f->held[f->nheld++] = call;
}

void fx_srv_answer(fx_t *f, unsigned i)
{
    fx_respond_echo(f->held[i], f->held_key[i], f->held_klen[i]);
    f->held[i] = NULL;
}

void fx_srv_new(fx_t *f, const peer_server_config_t *cfg)
{
    peer_server_config_t c = cfg ? *cfg : (peer_server_config_t){0};
    c.conn.stats = &f->sst;
    if (!c.conn.keyring) c.conn.keyring = &f->skr;
    f->srv = peer_server_new(&f->loop, &c, serve, f);
    assert_non_null(f->srv);
    f->srv_closed = f->srv_done = false;
    f->nheld = 0;
}

void fx_srv_start(fx_t *f, const peer_server_config_t *cfg, int port)
{
    fx_srv_new(f, cfg);
    assert_int_equal(peer_server_listen(f->srv, "127.0.0.1", port), 0);
    f->port = peer_server_port(f->srv);
    assert_true(f->port > 0);
    fx_set_addr(f, f->port);
}

bool fx_srv_stop(fx_t *f)
{
    if (!f->srv) return true;
    if (!f->srv_closed) peer_server_close(f->srv, fx_set_flag, &f->srv_done);
    f->srv_closed = true;
    bool ok = fx_run_until(f, fx_c_flag, (uintptr_t)&f->srv_done, WAIT_MS);
    for (unsigned i = 0; i < f->nheld; i++)
        if (f->held[i]) fx_srv_answer(f, i);
    f->nheld = 0;
    if (ok) peer_server_free(f->srv); /* else leaked: the teardown fails anyway */
    f->srv = NULL;
    return ok;
}

/* ---- the pool ---------------------------------------------------------------- */

void fx_pool_start(fx_t *f, const peer_pool_config_t *cfg)
{
    peer_pool_config_t c = cfg ? *cfg : (peer_pool_config_t){0};
    c.conn.stats = &f->cst;
    if (!c.conn.keyring) c.conn.keyring = &f->ckr;
    f->pool = peer_pool_new(&f->loop, &c);
    assert_non_null(f->pool);
    f->pool_done = 0;
}

void fx_pool_done_cb(void *arg)
{
    ((fx_t *)arg)->pool_done++;
}

bool fx_pool_stop(fx_t *f)
{
    if (!f->pool) return true;
    peer_pool_close(f->pool, fx_pool_done_cb, f);
    if (!fx_run_until(f, fx_c_pool_done, 0, WAIT_MS)) return false;
    peer_pool_free(f->pool);
    f->pool = NULL;
    return true;
}

void fx_on_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    reply_t *r = ctx;
    fx_t *f = r->f;
    r->calls++;
    r->res = res;
    r->at_ms = uv_now(&f->loop);
    r->at_ns = uv_hrtime();
    if ((res == PEER_OK || res == PEER_ERR_REMOTE) != (resp != NULL)) f->bad++;
    if (resp) {
        r->type = resp->type;
        bool err = resp->type == PEER_MSG_ERROR;
        r->code = err ? resp->code : resp->status;
        peer_bytes_t b = err ? resp->message : resp->value;
        size_t n = b.len < sizeof r->value - 1 ? b.len : sizeof r->value - 1;
        if (n) memcpy(r->value, b.p, n);
        r->value[n] = 0;
    }
    f->order[f->replies++] = r->idx;
}

peer_result_t fx_send(fx_t *f, const char *name, const struct sockaddr_in *to, int i, peer_msg_type_t type,
                      const char *key, uint64_t timeout_ms, peer_reply_fn cb)
{
    reply_t *r = &f->r[i];
    memset(r, 0, sizeof *r);
    r->f = f;
    r->idx = i;
    r->res = r->retry = PEER_ERR_INVALID;
    peer_msg_t m = {.type = type};
    if (key) m.key = (peer_bytes_t){(const uint8_t *)key, strlen(key)};
    return peer_pool_request(f->pool, name, (const struct sockaddr *)to, &m, timeout_ms, cb ? cb : fx_on_reply, r);
}

peer_result_t fx_get(fx_t *f, int i, const char *key, uint64_t timeout_ms, peer_reply_fn cb)
{
    return fx_send(f, "n1", &f->addr, i, PEER_MSG_GET, key, timeout_ms, cb);
}

int fx_outcome(fx_t *f, int i, const char *key)
{
    unsigned before = f->replies;
    peer_result_t rc = fx_get(f, i, key, 0, NULL);
    if (rc != PEER_OK) {
        f->r[i].at_ms = uv_now(&f->loop);
        return (int)rc;
    }
    if (!fx_run_until(f, fx_c_replies, before + 1, WAIT_MS)) return -1;
    return (int)f->r[i].res;
}

void fx_assert_result(fx_t *f, int i, peer_result_t res)
{
    assert_int_equal(f->r[i].calls, 1);
    assert_int_equal(f->r[i].res, res);
}

void fx_assert_echo(fx_t *f, int i, const char *key)
{
    char want[KEYCAP + 2];
    snprintf(want, sizeof want, "v=%s", key);
    fx_assert_result(f, i, PEER_OK);
    assert_int_equal(f->r[i].type, PEER_MSG_GET_RESP);
    assert_int_equal(f->r[i].code, PEER_STATUS_OK);
    assert_string_equal(f->r[i].value, want);
}

/* ---- a raw client, for bytes the pool would never send --------------------- */

void fx_raw_open(fx_t *f, const uint8_t *bytes, size_t len)
{
    f->raw = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->raw >= 0);
    assert_int_equal(connect(f->raw, (const struct sockaddr *)&f->addr, sizeof f->addr), 0);
    assert_int_equal(write(f->raw, bytes, len), (ssize_t)len);
    f->raw_len = 0;
    f->raw_closed = false;
}

void fx_raw_close(fx_t *f)
{
    if (f->raw >= 0) close(f->raw);
    f->raw = -1;
}

bool fx_c_raw(fx_t *f, uintptr_t a)
{
    (void)a;
    while (!f->raw_closed && f->raw_len < sizeof f->raw_in) {
        ssize_t n = recv(f->raw, f->raw_in + f->raw_len, sizeof f->raw_in - f->raw_len, MSG_DONTWAIT);
        if (n > 0) f->raw_len += (size_t)n;
        else if (n == 0 || errno == ECONNRESET) f->raw_closed = true;
        else break; /* nothing more yet */
    }
    peer_span_t span;
    return f->raw_closed || peer_frame_scan(f->raw_in, f->raw_len, 4096, &span) == PEER_SCAN_READY;
}

size_t fx_frame_msg(const seal_keyring_t *kr, const peer_msg_t *m, uint8_t *out, size_t cap)
{
    uint8_t scratch[1024];
    size_t n = 0;
    assert_int_equal(peer_frame_encode(kr, m, PEER_FRAME_MAX_DEFAULT, scratch, sizeof scratch, out, cap, &n),
                     PEER_PROTO_OK);
    return n;
}

size_t fx_frame_body(const seal_keyring_t *kr, const uint8_t *body, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    assert_int_equal(peer_frame_seal(kr, body, len, PEER_FRAME_MAX_DEFAULT, out, cap, &n), PEER_PROTO_OK);
    return n;
}

void fx_expect_drop(fx_t *f, const uint8_t *bytes, size_t len, peer_drop_t why)
{
    uint64_t before[PEER_DROP_MAX];
    for (int d = 0; d < PEER_DROP_MAX; d++) before[d] = atomic_load(&f->sst.drops[d]);
    unsigned served = f->served;
    fx_raw_open(f, bytes, len);
    assert_true(fx_run_until(f, fx_c_raw, 0, WAIT_MS));
    assert_true(f->raw_closed);
    assert_int_equal(f->raw_len, 0);
    fx_raw_close(f);
    for (int d = 0; d < PEER_DROP_MAX; d++)
        assert_int_equal(atomic_load(&f->sst.drops[d]), before[d] + (d == (int)why));
    assert_int_equal(f->served, served);
    assert_true(fx_run_until(f, fx_c_no_conns_in, 0, WAIT_MS));
}

static bool fx_c_raw_n(fx_t *f, uintptr_t n)
{
    while (!f->raw_closed && f->raw_len < n) {
        ssize_t got = recv(f->raw, f->raw_in + f->raw_len, sizeof f->raw_in - f->raw_len, MSG_DONTWAIT);
        if (got > 0) f->raw_len += (size_t)got;
        else if (got == 0 || errno == ECONNRESET) f->raw_closed = true;
        else break;
    }
    return f->raw_closed || f->raw_len >= n;
}

void fx_raw_handshake(fx_t *f, peer_hs_session_t *s)
{
    peer_hs_t hs;
    uint8_t hello[1 + PEER_HS_HELLO_LEN], confirm[PEER_HS_CONFIRM_LEN];
    hello[0] = PEER_STREAM_PREAMBLE;
    assert_int_equal(peer_hs_client_hello(&hs, &f->skr, NULL, hello + 1), PEER_HS_OK);
    fx_raw_open(f, hello, sizeof hello);
    assert_true(fx_run_until(f, fx_c_raw_n, PEER_HS_REPLY_LEN, WAIT_MS));
    assert_false(f->raw_closed);
    assert_int_equal(peer_hs_client_confirm(&hs, f->raw_in, PEER_HS_REPLY_LEN, confirm, s), PEER_HS_OK);
    fx_raw_send(f, confirm, sizeof confirm);
    f->raw_len = 0;
}

void fx_raw_send(fx_t *f, const uint8_t *bytes, size_t len)
{
    assert_int_equal(write(f->raw, bytes, len), (ssize_t)len);
}

size_t fx_sess_frame(peer_hs_session_t *s, const peer_msg_t *m, uint8_t *out, size_t cap)
{
    uint8_t body[1024];
    size_t n = 0, c = 0;
    assert_int_equal(peer_msg_encode(m, body, sizeof body, &n), PEER_PROTO_OK);
    assert_int_equal(peer_hs_encrypt(s, body, n, out + PEER_LEN_PREFIX, cap - PEER_LEN_PREFIX, &c), PEER_HS_OK);
    out[0] = (uint8_t)(c >> 24);
    out[1] = (uint8_t)(c >> 16);
    out[2] = (uint8_t)(c >> 8);
    out[3] = (uint8_t)c;
    return PEER_LEN_PREFIX + c;
}

void fx_expect_session_drop(fx_t *f, const uint64_t before[PEER_DROP_MAX], unsigned served, peer_drop_t why)
{
    assert_true(fx_run_until(f, fx_c_raw_n, sizeof f->raw_in, WAIT_MS));
    assert_true(f->raw_closed);
    fx_raw_close(f);
    for (int d = 0; d < PEER_DROP_MAX; d++)
        assert_int_equal(atomic_load(&f->sst.drops[d]), before[d] + (d == (int)why));
    assert_int_equal(f->served, served);
    assert_true(fx_run_until(f, fx_c_no_conns_in, 0, WAIT_MS));
}

/* ---- fixture ----------------------------------------------------------------- */

int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    if (!f || uv_loop_init(&f->loop) != 0) return -1;
    uv_timer_init(&f->loop, &f->answer_timer);
    f->answer_timer.data = f;
    seal_keyring_init(&f->ckr);
    seal_keyring_init(&f->skr);
    f->raw = -1;
    *state = f;
    return 0;
}

int fx_close_loop(fx_t *f)
{
    f->loop_closing = true;
    fx_raw_close(f);
    uv_close((uv_handle_t *)&f->answer_timer, NULL);
    int rc = fixture_loop_close(&f->loop);
    f->loop_closed = rc == 0;
    return rc;
}

int fx_teardown(void **state)
{
    fx_t *f = *state;
    int rc = f->loop_closed ? 0 : -1;
    if (!f->loop_closing) {
        bool ok = fx_pool_stop(f);
        ok = fx_srv_stop(f) && ok;
        rc = fx_close_loop(f) != 0 || !ok ? -1 : 0;
    }
    if (f->bad) rc = -1, fprintf(stderr, "%u unexpected callbacks\n", f->bad);
    if (f->loop_closed) free(f); /* else handles still point into it */
    return rc;
}
