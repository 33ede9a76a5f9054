#include "node/peer/peer_server.h"

#include <stdlib.h>
#include <string.h>

#include "http/http_server.h"
#include "node/core/closer.h"

typedef struct peer_sconn peer_sconn_t;

/* A served connection; lives until its socket closed and every call on it
 * was answered. */
struct peer_sconn {
    peer_server_t *server;
    peer_conn_t *conn;
    peer_sconn_t *prev, *next;
    unsigned refs;      /* 1 while the socket is open + 1 per unanswered call */
    unsigned calls;
    bool open;
};

struct peer_call {
    peer_sconn_t *sc;
    uint64_t id;
    uint32_t flags;
};

struct peer_server {
    uv_loop_t *loop;
    peer_server_config_t cfg;
    peer_serve_fn fn;
    void *ctx;
    uv_tcp_t listener;
    bool listening, closing;
    int port;
    peer_sconn_t *conns;
    unsigned nconns;
    closer_t closer;       /* the listener and every connection */
};

peer_server_t *peer_server_new(uv_loop_t *loop, const peer_server_config_t *cfg, peer_serve_fn fn, void *ctx)
{
    peer_server_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->cfg = *cfg;
    if (!s->cfg.max_conns) s->cfg.max_conns = 4096;
    if (!s->cfg.max_calls) s->cfg.max_calls = 10000;
    s->fn = fn;
    s->ctx = ctx;
    return s;
}

int peer_server_port(const peer_server_t *s)
{
    return s->port;
}

uint32_t peer_call_flags(const peer_call_t *call)
{
    return call->flags;
}

static void peer_sconn_unref(peer_sconn_t *sc)
{
    if (--sc->refs == 0) free(sc);
}

void peer_server_respond(peer_call_t *call, const peer_msg_t *resp)
{
    peer_sconn_t *sc = call->sc;
    if (sc->open) {
        peer_msg_t m = *resp;
        m.id = call->id;
        if (peer_conn_send(sc->conn, &m) == UV_EINVAL) {
            peer_msg_t err = {.type = PEER_MSG_ERROR, .id = call->id, .code = PEER_STATUS_INTERNAL};
            peer_conn_send(sc->conn, &err);
        }
    }
    sc->calls--;
    free(call);
    peer_sconn_unref(sc);
}

void peer_server_respond_error(peer_call_t *call, peer_status_t code, const char *message)
{
    peer_msg_t m = {.type = PEER_MSG_ERROR, .code = code};
    m.message.p = (const uint8_t *)message;
    m.message.len = strlen(message);
    peer_server_respond(call, &m);
}

static void peer_server_on_msg(peer_conn_t *c, const peer_msg_t *m, void *ctx)
{
    peer_sconn_t *sc = ctx;
    peer_server_t *s = sc->server;
    peer_stats_t *st = s->cfg.conn.stats;
    switch (m->type) {
    case PEER_MSG_PING: {
        atomic_fetch_add(&st->served[PEER_MSG_PING], 1);
        peer_msg_t pong = {.type = PEER_MSG_PONG, .id = m->id};
        peer_conn_send(c, &pong);
        return;
    }
    case PEER_MSG_GET: case PEER_MSG_PUT: case PEER_MSG_DELETE: case PEER_MSG_INVALIDATE:
    case PEER_MSG_INVALIDATE_PATTERN: case PEER_MSG_KEYS: case PEER_MSG_HANDOFF:
        break;
    default:
        atomic_fetch_add(&st->drops[PEER_DROP_UNEXPECTED], 1);
        peer_conn_close(c, UV_EPROTO);
        return;
    }
    atomic_fetch_add(&st->served[m->type], 1);
    peer_call_t *call = sc->calls < s->cfg.max_calls ? calloc(1, sizeof *call) : NULL;
    if (!call) {
        peer_msg_t err = {.type = PEER_MSG_ERROR, .id = m->id, .code = PEER_STATUS_UNAVAILABLE};
        err.message.p = (const uint8_t *)"too many requests in flight";
        err.message.len = strlen("too many requests in flight");
        peer_conn_send(c, &err);
        return;
    }
    call->sc = sc;
    call->id = m->id;
    call->flags = m->flags;
    sc->calls++;
    sc->refs++;
    s->fn(call, m, s->ctx);
}

static void peer_server_on_close(peer_conn_t *c, int err, void *ctx)
{
    (void)c;
    (void)err;
    peer_sconn_t *sc = ctx;
    peer_server_t *s = sc->server;
    sc->open = false;
    sc->conn = NULL;
    if (sc->prev) sc->prev->next = sc->next;
    else s->conns = sc->next;
    if (sc->next) sc->next->prev = sc->prev;
    s->nconns--;
    atomic_fetch_sub(&s->cfg.conn.stats->connections_in, 1);
    peer_sconn_unref(sc);
    closer_closed(&s->closer);
}

static void peer_server_on_connection(uv_stream_t *listener, int status)
{
    peer_server_t *s = listener->data;
    if (status < 0 || s->closing) return;
    static const peer_conn_ops_t ops = {.on_msg = peer_server_on_msg, .on_close = peer_server_on_close};
    peer_sconn_t *sc = calloc(1, sizeof *sc);
    peer_conn_t *c = sc ? peer_conn_new(s->loop, &s->cfg.conn, &ops, sc) : NULL;
    if (!c) {
        free(sc);
        /* Take the connection off the backlog anyway, or accept spins. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t) return;
        uv_tcp_init(s->loop, t);
        uv_accept(listener, (uv_stream_t *)t);
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
        return;
    }
    sc->server = s;
    sc->conn = c;
    sc->refs = 1;
    sc->open = true;
    sc->next = s->conns;
    if (s->conns) s->conns->prev = sc;
    s->conns = sc;
    s->nconns++;
    closer_add(&s->closer, 1);
    atomic_fetch_add(&s->cfg.conn.stats->connections_in, 1);
    if (uv_accept(listener, (uv_stream_t *)peer_conn_tcp(c)) != 0 || s->nconns > s->cfg.max_conns ||
        peer_conn_start(c) != 0)
        peer_conn_close(c, UV_ECONNABORTED);
}

int peer_server_listen(peer_server_t *s, const char *host, int port)
{
    int fd, rc;
    if ((rc = http_listen_socket(host, port, &fd, &s->port)) != 0) return rc;
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_open(&s->listener, fd)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, HTTP_LISTEN_BACKLOG, peer_server_on_connection)) != 0) {
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, NULL);
        return rc;
    }
    closer_add(&s->closer, 1);
    s->listening = true;
    return 0;
}

static void peer_server_listener_closed(uv_handle_t *h)
{
    peer_server_t *s = h->data;
    closer_closed(&s->closer);
}

void peer_server_close(peer_server_t *s, void (*done)(void *arg), void *arg)
{
    s->closing = true;
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, peer_server_listener_closed);
    }
    for (peer_sconn_t *sc = s->conns; sc; sc = sc->next) peer_conn_close(sc->conn, 0);
    closer_finish(&s->closer, done, arg);
}

void peer_server_free(peer_server_t *s)
{
    free(s);
}
