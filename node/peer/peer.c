#include "node/peer/peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/backoff.h"
#include "node/core/breaker.h"
#include "node/core/closer.h"

#define PEER_SWEEP_MS 20

typedef struct peer_pending peer_pending_t;
typedef struct peer_node peer_node_t;

struct peer_pending {
    peer_pending_t *prev, *next;
    uint64_t id;
    uint64_t deadline;
    peer_reply_fn cb;
    void *ctx;
    bool probe;                   /* the half-open breaker's trial request */
    bool writes;                  /* it changes state at the peer: never to be delivered late */
};

struct peer_node {
    char name[64];
    struct sockaddr_storage addr;
    peer_pool_t *pool;
    struct peer_link *link;        /* NULL when disconnected */
    bool connecting, connected;
    uint64_t connect_deadline;
    peer_pending_t *head, *tail;   /* in send order */
    unsigned npending;
    /* Its trial is the pending request marked `probe`: released when that
     * request ends, which a timeout guarantees. */
    breaker_fsm_t breaker;
    backoff_t backoff;             /* the wait before the next connect */
    uint64_t retry_at;
    uint64_t last_used;
    uint64_t heard_noted;          /* when cfg.heard was last called for it */
};

struct peer_pool {
    uv_loop_t *loop;
    peer_pool_config_t cfg;
    uv_timer_t sweep;
    peer_node_t **nodes;
    unsigned nnodes;
    uint64_t next_id;
    bool closing;
    closer_t closer;              /* the sweep timer and every connection */
};

const char *peer_result_name(peer_result_t r)
{
    switch (r) {
    case PEER_OK: return "ok";
    case PEER_ERR_TIMEOUT: return "timeout";
    case PEER_ERR_CONNECT: return "connect";
    case PEER_ERR_CLOSED: return "closed";
    case PEER_ERR_BREAKER: return "breaker_open";
    case PEER_ERR_BACKOFF: return "backoff";
    case PEER_ERR_QUEUE: return "queue_full";
    case PEER_ERR_REMOTE: return "remote_error";
    case PEER_ERR_SHUTDOWN: return "shutdown";
    case PEER_ERR_INVALID: return "invalid";
    }
    return "unknown";
}

static peer_stats_t *peer_stats(peer_pool_t *p)
{
    return p->cfg.conn.stats;
}

peer_pool_t *peer_pool_new(uv_loop_t *loop, const peer_pool_config_t *cfg)
{
    peer_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->loop = loop;
    p->cfg = *cfg;
    if (!p->cfg.connect_timeout_ms) p->cfg.connect_timeout_ms = 500;
    if (!p->cfg.request_timeout_ms) p->cfg.request_timeout_ms = 1000;
    if (!p->cfg.breaker_failures) p->cfg.breaker_failures = BREAKER_THRESHOLD_DEFAULT;
    if (!p->cfg.breaker_open_ms) p->cfg.breaker_open_ms = BREAKER_OPEN_MS_DEFAULT;
    if (!p->cfg.backoff_min_ms) p->cfg.backoff_min_ms = 50;
    if (!p->cfg.backoff_max_ms) p->cfg.backoff_max_ms = 5000;
    if (!p->cfg.max_pending) p->cfg.max_pending = 4096;
    if (!p->cfg.max_peers) p->cfg.max_peers = 1024;
    p->nodes = calloc(p->cfg.max_peers, sizeof *p->nodes);
    if (!p->nodes) {
        free(p);
        return NULL;
    }
    uv_timer_init(loop, &p->sweep);
    p->sweep.data = p;
    closer_add(&p->closer, 1);
    p->next_id = 1;
    return p;
}

/* ---- outcomes and the breaker ---- */

/* Counts what the breaker just did (it was `from`): openings, and peers
 * whose breaker is not closed. */
static void peer_breaker_moved(peer_node_t *n, breaker_state_t from)
{
    breaker_state_t to = n->breaker.state;
    if (to == from) return;
    peer_stats_t *st = peer_stats(n->pool);
    if (to == BREAKER_OPEN) atomic_fetch_add(&st->breaker_opens, 1);
    if (from == BREAKER_CLOSED) atomic_fetch_add(&st->breakers_open, 1);
    else if (to == BREAKER_CLOSED) atomic_fetch_sub(&st->breakers_open, 1);
}

static void peer_node_success(peer_node_t *n)
{
    backoff_reset(&n->backoff);
    breaker_state_t from = n->breaker.state;
    breaker_fsm_success(&n->breaker);
    peer_breaker_moved(n, from);
}

#define PEER_HEARD_EVERY_MS 50

static void peer_node_heard(peer_node_t *n)
{
    peer_pool_t *p = n->pool;
    if (!p->cfg.heard) return;
    uint64_t now = uv_now(p->loop);
    if (n->heard_noted && now - n->heard_noted < PEER_HEARD_EVERY_MS) return;
    n->heard_noted = now;
    p->cfg.heard(p->cfg.heard_ctx, n->name, now);
}

static void peer_node_failure(peer_node_t *n)
{
    breaker_state_t from = n->breaker.state;
    breaker_fsm_failure(&n->breaker, (int64_t)uv_now(n->pool->loop));
    peer_breaker_moved(n, from);
}

/* Takes q off n's count (the list is the caller's business). */
static void peer_pending_uncount(peer_node_t *n, peer_pending_t *q)
{
    n->npending--;
    atomic_fetch_sub(&peer_stats(n->pool)->pending, 1);
    if (q->probe) breaker_fsm_release(&n->breaker);
}

static void peer_pending_unlink(peer_node_t *n, peer_pending_t *q)
{
    if (q->prev) q->prev->next = q->next;
    else n->head = q->next;
    if (q->next) q->next->prev = q->prev;
    else n->tail = q->prev;
    peer_pending_uncount(n, q);
}

/* Counts the outcome, runs the callback and frees q (already unlinked). */
static void peer_pending_complete(peer_pool_t *p, peer_pending_t *q, peer_result_t res, const peer_msg_t *resp)
{
    peer_stats_t *st = peer_stats(p);
    switch (res) {
    case PEER_ERR_TIMEOUT: atomic_fetch_add(&st->failures_timeout, 1); break;
    case PEER_ERR_CONNECT: atomic_fetch_add(&st->failures_connect, 1); break;
    case PEER_ERR_CLOSED: atomic_fetch_add(&st->failures_closed, 1); break;
    default: break;
    }
    q->cb(q->ctx, res, resp);
    free(q);
}

static void peer_pending_finish(peer_node_t *n, peer_pending_t *q, peer_result_t res, const peer_msg_t *resp)
{
    peer_pending_unlink(n, q);
    peer_pending_complete(n->pool, q, res, resp);
}

/* Fails every pending request of n (its connection is gone). The list is
 * detached before any callback runs: a callback may send a new request to
 * n (a retry over a new connection), which must not fail with the old ones. */
static void peer_node_fail_all(peer_node_t *n, peer_result_t res)
{
    peer_pool_t *p = n->pool;
    peer_pending_t *q = n->head;
    n->head = n->tail = NULL;
    for (peer_pending_t *x = q; x; x = x->next) peer_pending_uncount(n, x);
    while (q) {
        peer_pending_t *next = q->next;
        peer_pending_complete(p, q, res, NULL);
        q = next;
    }
}

/* ---- connections ---- */

/* One connection's bond to its node. The node may give the connection up
 * (address change, connect timeout, pool close) before libuv finishes with
 * it: then link->node is NULL and the callbacks only release the link. */
typedef struct peer_link {
    peer_pool_t *pool;
    peer_node_t *node;
    peer_conn_t *conn;
    uv_connect_t connect;
} peer_link_t;

static void peer_client_on_msg(peer_conn_t *c, const peer_msg_t *m, void *ctx);
static void peer_client_on_close(peer_conn_t *c, int err, void *ctx);

/* Gives the connection up; pending requests are the caller's business. */
static void peer_node_drop_link(peer_node_t *n, bool reset)
{
    if (!n->link) return;
    peer_link_t *l = n->link;
    n->link = NULL;
    n->connecting = false;
    l->node = NULL;
    if (n->connected) atomic_fetch_sub(&peer_stats(n->pool)->connections_out, 1);
    n->connected = false;
    if (reset) peer_conn_abort(l->conn, UV_ETIMEDOUT);
    else peer_conn_close(l->conn, 0);
}

static void peer_node_disconnect(peer_node_t *n)
{
    peer_node_drop_link(n, false);
}

static void peer_node_backoff(peer_node_t *n)
{
    n->retry_at = uv_now(n->pool->loop) + backoff_next(&n->backoff);
}

static void peer_connect_failed(peer_node_t *n)
{
    atomic_fetch_add(&peer_stats(n->pool)->connect_failures, 1);
    peer_node_backoff(n);
    peer_node_failure(n);
    peer_node_disconnect(n);
    peer_node_fail_all(n, PEER_ERR_CONNECT);
}

static void peer_connect_cb(uv_connect_t *req, int status)
{
    peer_link_t *l = req->data;
    peer_node_t *n = l->node;
    if (!n) return; /* given up; the close callback frees the link */
    n->connecting = false;
    if (status == 0 && peer_conn_start(l->conn) == 0) {
        atomic_fetch_add(&peer_stats(n->pool)->connects, 1);
        atomic_fetch_add(&peer_stats(n->pool)->connections_out, 1);
        n->connected = true;
        return;
    }
    peer_connect_failed(n);
}

static bool peer_node_connect(peer_node_t *n)
{
    peer_pool_t *p = n->pool;
    static const peer_conn_ops_t ops = {.on_msg = peer_client_on_msg, .on_close = peer_client_on_close};
    peer_link_t *l = calloc(1, sizeof *l);
    if (!l) return false;
    l->pool = p;
    l->node = n;
    l->conn = peer_conn_new(p->loop, &p->cfg.conn, &ops, l);
    if (!l->conn) {
        free(l);
        return false;
    }
    /* Written first once connected: "peer channel" to a shared cluster port. */
    peer_conn_send_preamble(l->conn);
    closer_add(&p->closer, 1);
    n->link = l;
    l->connect.data = l;
    int rc = uv_tcp_connect(&l->connect, peer_conn_tcp(l->conn), (const struct sockaddr *)&n->addr, peer_connect_cb);
    if (rc != 0) {
        peer_connect_failed(n);
        return false;
    }
    n->connecting = true;
    n->connect_deadline = uv_now(p->loop) + p->cfg.connect_timeout_ms;
    return true;
}

static void peer_client_on_close(peer_conn_t *c, int err, void *ctx)
{
    (void)c;
    (void)err;
    peer_link_t *l = ctx;
    peer_pool_t *p = l->pool;
    peer_node_t *n = l->node;
    if (n) {
        /* Closed under us (peer died, reset, or sent garbage). */
        n->link = NULL;
        if (n->connected) atomic_fetch_sub(&peer_stats(p)->connections_out, 1);
        n->connected = false;
        bool had_pending = n->head != NULL;
        if (n->connecting) {
            n->connecting = false;
            peer_connect_failed(n);
        } else if (had_pending) {
            peer_node_failure(n);
            peer_node_fail_all(n, PEER_ERR_CLOSED);
        }
    }
    free(l);
    closer_closed(&p->closer);
}

static void peer_client_on_msg(peer_conn_t *c, const peer_msg_t *m, void *ctx)
{
    peer_link_t *l = ctx;
    peer_node_t *n = l->node;
    if (!n) return;
    if (peer_msg_is_request(m->type)) {
        atomic_fetch_add(&peer_stats(l->pool)->drops[PEER_DROP_UNEXPECTED], 1);
        peer_conn_close(c, UV_EPROTO);
        return;
    }
    /* Answers mostly come in order: the match is near the head. */
    for (peer_pending_t *q = n->head; q; q = q->next) {
        if (q->id != m->id) continue;
        peer_node_success(n);
        peer_node_heard(n);
        peer_pending_finish(n, q, m->type == PEER_MSG_ERROR ? PEER_ERR_REMOTE : PEER_OK, m);
        return;
    }
    /* An answer that arrived after its request timed out: nothing to do. */
}

/* ---- nodes ---- */

static bool peer_addr_equal(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family) return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

static void peer_node_free(peer_node_t *n)
{
    peer_node_disconnect(n);
    peer_node_fail_all(n, PEER_ERR_SHUTDOWN);
    if (n->breaker.state != BREAKER_CLOSED) atomic_fetch_sub(&peer_stats(n->pool)->breakers_open, 1);
    free(n);
}

static peer_node_t *peer_node_get(peer_pool_t *p, const char *name, const struct sockaddr *addr)
{
    peer_node_t *idle = NULL;
    unsigned idle_at = 0;
    for (unsigned i = 0; i < p->nnodes; i++) {
        peer_node_t *n = p->nodes[i];
        if (strcmp(n->name, name) == 0) {
            if (!peer_addr_equal(&n->addr, addr)) {
                /* Restarted elsewhere: a fresh start at the new address. */
                peer_node_disconnect(n);
                peer_node_fail_all(n, PEER_ERR_CLOSED);
                size_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
                memcpy(&n->addr, addr, alen);
                backoff_reset(&n->backoff);
                n->retry_at = 0;
            }
            return n;
        }
        if (!n->head && (!idle || n->last_used < idle->last_used)) {
            idle = n;
            idle_at = i;
        }
    }
    if (p->nnodes == p->cfg.max_peers) {
        if (!idle) return NULL;
        peer_node_free(idle);
        p->nodes[idle_at] = p->nodes[--p->nnodes];
    }
    peer_node_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    snprintf(n->name, sizeof n->name, "%s", name);
    size_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&n->addr, addr, alen);
    n->pool = p;
    backoff_init(&n->backoff, p->cfg.backoff_min_ms, p->cfg.backoff_max_ms);
    breaker_fsm_init(&n->breaker, p->cfg.breaker_failures, (int64_t)p->cfg.breaker_open_ms, BREAKER_TRIAL_NO_TIMEOUT);
    p->nodes[p->nnodes++] = n;
    return n;
}

void peer_pool_forgive(peer_pool_t *p, const char *name)
{
    for (unsigned i = 0; i < p->nnodes; i++) {
        peer_node_t *n = p->nodes[i];
        if (strcmp(n->name, name) != 0) continue;
        backoff_reset(&n->backoff);
        n->retry_at = 0;
        breaker_state_t from = n->breaker.state;
        breaker_fsm_success(&n->breaker);
        peer_breaker_moved(n, from);
        return;
    }
}

bool peer_pool_available(peer_pool_t *p, const char *name)
{
    uint64_t now = uv_now(p->loop);
    for (unsigned i = 0; i < p->nnodes; i++) {
        peer_node_t *n = p->nodes[i];
        if (strcmp(n->name, name) != 0) continue;
        if (!breaker_fsm_would_allow(&n->breaker, (int64_t)now)) return false;
        if (!n->link && now < n->retry_at) return false;
        return true;
    }
    return true;
}

/* ---- requests ---- */

static void peer_sweep_cb(uv_timer_t *t)
{
    peer_pool_t *p = t->data;
    uint64_t now = uv_now(p->loop);
    for (unsigned i = 0; i < p->nnodes && !p->closing; i++) {
        peer_node_t *n = p->nodes[i];
        if (n->connecting && now >= n->connect_deadline) {
            peer_connect_failed(n);
            continue;
        }
        /* Expired requests are taken off the node, and the failure counted,
         * before any callback runs: a callback may send requests or close
         * the pool, so neither the list nor n is touched after one. */
        peer_pending_t *expired = NULL, **tail = &expired;
        bool lost_write = false;
        for (peer_pending_t *q = n->head, *next; q; q = next) {
            next = q->next;
            if (now < q->deadline) continue;
            lost_write |= q->writes;
            peer_pending_unlink(n, q);
            q->next = NULL;
            *tail = q;
            tail = &q->next;
        }
        /* A write we gave up on may still be in flight (a partition holds
         * it back): were it delivered after the partition heals, the owner
         * would carry it out then, stamped anew, over newer writes.
         * Resetting the connection drops it; what else was pending on it
         * fails now and goes to the next owner. A late read is harmless:
         * it only costs the time it waits. */
        peer_pending_t *cut = NULL;
        if (expired) peer_node_failure(n);
        if (lost_write) {
            peer_node_drop_link(n, true);
            cut = n->head;
            n->head = n->tail = NULL;
            for (peer_pending_t *x = cut; x; x = x->next) peer_pending_uncount(n, x);
        }
        while (expired) {
            peer_pending_t *q = expired;
            expired = q->next;
            peer_pending_complete(p, q, PEER_ERR_TIMEOUT, NULL);
        }
        while (cut) {
            peer_pending_t *q = cut;
            cut = q->next;
            peer_pending_complete(p, q, PEER_ERR_CLOSED, NULL);
        }
    }
    /* Only once every callback ran: one may have sent a request to a node
     * already swept (the next owner after a timeout). */
    bool any = false;
    for (unsigned i = 0; i < p->nnodes; i++)
        if (p->nodes[i]->head || p->nodes[i]->connecting) any = true;
    if (!any) uv_timer_stop(&p->sweep);
}

peer_result_t peer_pool_request(peer_pool_t *p, const char *name, const struct sockaddr *addr, const peer_msg_t *req,
                                uint64_t timeout_ms, peer_reply_fn cb, void *ctx)
{
    if (p->closing) return PEER_ERR_SHUTDOWN;
    if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) return PEER_ERR_INVALID;
    peer_node_t *n = peer_node_get(p, name, addr);
    if (!n) return PEER_ERR_QUEUE;
    peer_stats_t *st = peer_stats(p);
    uint64_t now = uv_now(p->loop);
    n->last_used = now;
    breaker_state_t from = n->breaker.state;
    breaker_verdict_t v = breaker_fsm_allow(&n->breaker, (int64_t)now);
    peer_breaker_moved(n, from);
    if (v == BREAKER_REJECT) {
        atomic_fetch_add(&st->failures_breaker, 1);
        return PEER_ERR_BREAKER;
    }
    bool probe = v == BREAKER_TRIAL;
    if (!n->link && now < n->retry_at) {
        atomic_fetch_add(&st->failures_backoff, 1);
        return PEER_ERR_BACKOFF;
    }
    if (n->npending >= p->cfg.max_pending) {
        atomic_fetch_add(&st->failures_queue, 1);
        return PEER_ERR_QUEUE;
    }
    if (!n->link && !peer_node_connect(n)) {
        atomic_fetch_add(&st->failures_connect, 1);
        return PEER_ERR_CONNECT;
    }
    peer_msg_t m = *req;
    m.id = p->next_id++;
    int rc = peer_conn_send(n->link->conn, &m);
    if (rc != 0) {
        if (rc == UV_EINVAL) return PEER_ERR_INVALID;
        atomic_fetch_add(&st->failures_queue, 1);
        return PEER_ERR_QUEUE;
    }
    peer_pending_t *q = calloc(1, sizeof *q);
    if (!q) return PEER_ERR_QUEUE; /* the frame goes out; its answer is ignored */
    q->id = m.id;
    q->deadline = now + (timeout_ms ? timeout_ms : p->cfg.request_timeout_ms);
    q->cb = cb;
    q->ctx = ctx;
    q->probe = probe;
    q->writes = m.type == PEER_MSG_PUT || m.type == PEER_MSG_DELETE || m.type == PEER_MSG_INVALIDATE ||
                m.type == PEER_MSG_INVALIDATE_PATTERN || m.type == PEER_MSG_HANDOFF;
    /* The trial is this request's from now until it ends, however it ends
     * (peer_pending_uncount gives it back). */
    if (probe) breaker_fsm_claim(&n->breaker, (int64_t)now);
    q->prev = n->tail;
    if (n->tail) n->tail->next = q;
    else n->head = q;
    n->tail = q;
    n->npending++;
    atomic_fetch_add(&st->pending, 1);
    atomic_fetch_add(&st->requests[m.type <= PEER_MSG_MAX ? m.type : 0], 1);
    if (!uv_is_active((uv_handle_t *)&p->sweep)) uv_timer_start(&p->sweep, peer_sweep_cb, PEER_SWEEP_MS, PEER_SWEEP_MS);
    return PEER_OK;
}

/* ---- shutdown ---- */

static void peer_sweep_closed(uv_handle_t *h)
{
    peer_pool_t *p = h->data;
    closer_closed(&p->closer);
}

void peer_pool_close(peer_pool_t *p, void (*done)(void *arg), void *arg)
{
    if (p->closing) return;
    p->closing = true;
    for (unsigned i = 0; i < p->nnodes; i++) {
        peer_node_t *n = p->nodes[i];
        peer_node_disconnect(n);
        peer_node_fail_all(n, PEER_ERR_SHUTDOWN);
    }
    uv_timer_stop(&p->sweep);
    uv_close((uv_handle_t *)&p->sweep, peer_sweep_closed);
    closer_finish(&p->closer, done, arg);
}

void peer_pool_free(peer_pool_t *p)
{
    if (!p) return;
    for (unsigned i = 0; i < p->nnodes; i++) peer_node_free(p->nodes[i]);
    free(p->nodes);
    free(p);
}
