#include "node/peer/peer_server.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http_server.h"
#include "node/core/closer.h"

/* A connection must finish its handshake within this of being accepted;
 * members do it in one round trip. */
#define PEER_SERVER_HANDSHAKE_MS 3000

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
    peer_msg_type_t type;
};

/* A connection another thread accepted, waiting for this loop. */
typedef struct peer_adopted {
    struct peer_adopted *next;
    uv_os_sock_t fd;
    size_t len;
    uint8_t data[];          /* bytes already read off it */
} peer_adopted_t;

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
    uv_timer_t sweep;      /* closes connections stuck in their handshake */
    bool sweep_ready;
    closer_t closer;       /* the listener, the adoption handle and every connection */
    /* Adoption (peer_server_adopt): the only state other threads touch,
     * under adopt_lock. */
    bool adopt_ready;        /* the async handle and the lock exist */
    uv_async_t adopt_async;
    pthread_mutex_t adopt_lock;
    bool adopt_open;         /* accepting adoptions */
    peer_adopted_t *adopt_head, *adopt_tail;
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

peer_msg_type_t peer_call_type(const peer_call_t *call)
{
    return call->type;
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
    default:
        if (peer_msg_is_request(m->type)) break;
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
    call->type = m->type;
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

/* A served connection, linked and counted; its socket not yet attached.
 * NULL when out of memory. */
static peer_conn_t *peer_server_add(peer_server_t *s)
{
    static const peer_conn_ops_t ops = {.on_msg = peer_server_on_msg, .on_close = peer_server_on_close};
    peer_sconn_t *sc = calloc(1, sizeof *sc);
    peer_conn_t *c = sc ? peer_conn_new(s->loop, &s->cfg.conn, &ops, sc) : NULL;
    if (!c) {
        free(sc);
        return NULL;
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
    return c;
}

static void peer_server_sweep_cb(uv_timer_t *t)
{
    peer_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (peer_sconn_t *sc = s->conns; sc; sc = sc->next)
        if (sc->open) peer_conn_handshake_overdue(sc->conn, now, PEER_SERVER_HANDSHAKE_MS);
}

/* The sweep runs once the server has a connection to watch. */
static void peer_server_sweep_start(peer_server_t *s)
{
    if (s->sweep_ready || s->closing) return;
    uv_timer_init(s->loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, peer_server_sweep_cb, 1000, 1000);
    uv_unref((uv_handle_t *)&s->sweep);
    closer_add(&s->closer, 1);
    s->sweep_ready = true;
}

static void peer_server_on_connection(uv_stream_t *listener, int status)
{
    peer_server_t *s = listener->data;
    if (status < 0 || s->closing) return;
    peer_conn_t *c = peer_server_add(s);
    if (!c) {
        /* Take the connection off the backlog anyway, or accept spins. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t) return;
        uv_tcp_init(s->loop, t);
        uv_accept(listener, (uv_stream_t *)t);
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
        return;
    }
    /* Clients of this version start with the preamble; older ones do not. */
    peer_conn_accept_preamble(c);
    peer_server_sweep_start(s);
    if (uv_accept(listener, (uv_stream_t *)peer_conn_tcp(c)) != 0 || s->nconns > s->cfg.max_conns ||
        peer_conn_start(c) != 0)
        peer_conn_close(c, UV_ECONNABORTED);
}

/* ---- adoption: connections the cluster port's listener handed over ---- */

static void peer_server_adopt_one(peer_server_t *s, peer_adopted_t *a)
{
    peer_conn_t *c = s->closing ? NULL : peer_server_add(s);
    if (!c) {
        close(a->fd);
        return;
    }
    if (uv_tcp_open(peer_conn_tcp(c), a->fd) != 0) {
        close(a->fd); /* not the handle's: it did not take it */
        peer_conn_close(c, UV_ECONNABORTED);
        return;
    }
    atomic_fetch_add(&s->cfg.conn.stats->bytes_in, 1); /* the preamble, read by the cluster port */
    peer_server_sweep_start(s);
    if (s->nconns > s->cfg.max_conns || peer_conn_start_with(c, a->data, a->len) != 0)
        peer_conn_close(c, UV_ECONNABORTED);
}

static void peer_server_adopt_cb(uv_async_t *h)
{
    peer_server_t *s = h->data;
    pthread_mutex_lock(&s->adopt_lock);
    peer_adopted_t *a = s->adopt_head;
    s->adopt_head = s->adopt_tail = NULL;
    pthread_mutex_unlock(&s->adopt_lock);
    while (a) {
        peer_adopted_t *next = a->next;
        peer_server_adopt_one(s, a);
        free(a);
        a = next;
    }
}

int peer_server_adopt_start(peer_server_t *s)
{
    if (s->adopt_ready) return 0;
    int rc = uv_async_init(s->loop, &s->adopt_async, peer_server_adopt_cb);
    if (rc != 0) return rc;
    s->adopt_async.data = s;
    /* Waiting for adoptions is no reason to keep the loop running. */
    uv_unref((uv_handle_t *)&s->adopt_async);
    pthread_mutex_init(&s->adopt_lock, NULL);
    s->adopt_open = true;
    s->adopt_ready = true;
    closer_add(&s->closer, 1);
    return 0;
}

int peer_server_adopt(peer_server_t *s, uv_os_sock_t fd, const uint8_t *data, size_t len)
{
    /* Set before the loop's thread published the server: no lock needed. */
    if (!s->adopt_ready) return UV_EINVAL;
    peer_adopted_t *a = malloc(sizeof *a + len);
    if (!a) return UV_ENOMEM;
    a->next = NULL;
    a->fd = fd;
    a->len = len;
    if (len) memcpy(a->data, data, len);
    pthread_mutex_lock(&s->adopt_lock);
    if (!s->adopt_open) {
        pthread_mutex_unlock(&s->adopt_lock);
        free(a);
        return UV_ECANCELED;
    }
    if (s->adopt_tail) s->adopt_tail->next = a;
    else s->adopt_head = a;
    s->adopt_tail = a;
    /* Under the lock: peer_server_close cannot have closed the handle. */
    uv_async_send(&s->adopt_async);
    pthread_mutex_unlock(&s->adopt_lock);
    return 0;
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
    if (s->sweep_ready) {
        s->sweep_ready = false;
        uv_timer_stop(&s->sweep);
        uv_close((uv_handle_t *)&s->sweep, peer_server_listener_closed);
    }
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, peer_server_listener_closed);
    }
    if (s->adopt_ready && !uv_is_closing((uv_handle_t *)&s->adopt_async)) {
        pthread_mutex_lock(&s->adopt_lock);
        s->adopt_open = false;
        peer_adopted_t *a = s->adopt_head;
        s->adopt_head = s->adopt_tail = NULL;
        pthread_mutex_unlock(&s->adopt_lock);
        while (a) {
            peer_adopted_t *next = a->next;
            close(a->fd);
            free(a);
            a = next;
        }
        uv_close((uv_handle_t *)&s->adopt_async, peer_server_listener_closed);
    }
    for (peer_sconn_t *sc = s->conns; sc; sc = sc->next) peer_conn_close(sc->conn, 0);
    closer_finish(&s->closer, done, arg);
}

void peer_server_free(peer_server_t *s)
{
    if (!s) return;
    if (s->adopt_ready) pthread_mutex_destroy(&s->adopt_lock);
    free(s);
}
