#include "node/pg/pg_uv.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/backoff.h"
#include "node/core/closer.h"

#define PG_UV_ERRCAP 256
#define PG_UV_MAX_PARAMS 65535 /* the protocol's limit (a 16-bit count) */

/* One statement: the caller's, or the LISTEN of listener `listener`
 * (cb NULL). Allocated per query with its SQL and parameters in the same
 * block; freed once answered (or, a LISTEN, once done or dropped). */
typedef struct pg_uv_query {
    struct pg_uv_query *next;
    pg_uv_result_fn cb;
    void *ctx;
    int listener;          /* >= 0: a LISTEN; -1: the caller's */
    const char *sql;
    int nparams;
    const char *const *values;
    uint64_t started;      /* uv_now when its clock started; 0: not yet (no ready connection since issued) */
    pg_uv_result_t res;    /* while deferred: why it failed */
    char err[PG_UV_ERRCAP];
} pg_uv_query_t;

typedef struct pg_uv_fifo {
    pg_uv_query_t *head, *tail;
} pg_uv_fifo_t;

typedef struct pg_uv_listener {
    char channel[64];
    pg_uv_notify_fn on_notify;
    pg_uv_reconnect_fn on_reconnect;
    void *ctx;
    bool covered;          /* its LISTEN was in effect on some connection */
    bool again;            /* ... and is in effect again on a new one: tell on_reconnect once ready */
} pg_uv_listener_t;

/* One connection at a time lives in the client itself; `gen` tells code
 * that ran a callback whether the connection it was working on is still
 * the one there. */
struct pg_uv {
    uv_loop_t *loop;
    pg_uv_config_t cfg;    /* conninfo points to our copy */
    pg_uv_stats_t own_stats;
    pg_uv_stats_t *st;
    uv_timer_t timer;      /* the connect deadline, the oldest query's, or the next reconnect */
    uv_idle_t idle;        /* delivers deferred failures; runs the teardown */

    PGconn *pg;            /* NULL when no connection */
    uv_poll_t *poll;       /* on PQsocket(pg); replaced when libpq changes sockets while connecting */
    int poll_fd;
    int polling;           /* what the poll is started with */
    unsigned gen;          /* bumped when a connection is dropped */
    bool pq_ok;            /* libpq's handshake done (CONNECTION_OK) */
    bool ready;            /* ... and the LISTENs answered */
    bool flushing;         /* PQflush has output left: wait for writable */
    unsigned handshake;    /* LISTENs to answer before ready */
    uint64_t connect_deadline;
    pg_uv_state_t state;

    pg_uv_query_t *inflight; /* the statement sent, NULL if none */
    PGresult *last;        /* its latest result so far */
    pg_uv_fifo_t queue;    /* not sent yet: LISTENs first, then the caller's in order */
    unsigned npending;     /* the caller's queries in inflight and queue */
    pg_uv_fifo_t deferred; /* failed, answered from the loop */

    pg_uv_listener_t listeners[PG_UV_MAX_LISTENERS];
    unsigned nlisten;

    uint64_t retry_at;
    backoff_t backoff;     /* the wait before the next connect */
    bool closing, torn_down;
    /* Our handles not yet closed: the timer, the idle handle and every
     * poll handle. The timer and the idle handle close last (torn_down),
     * so done waits for the teardown. */
    closer_t closer;
    char last_err[PG_UV_ERRCAP];
};

static const metrics_desc_t pg_uv_metrics_rows[] = {
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, queries, "pg_queries_total", NULL, "Queries accepted by the PostgreSQL clients."),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, results, "pg_results_total", NULL, "Queries PostgreSQL answered."),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, server_errors, "pg_server_errors_total", NULL, "Answers that were errors (PGRES_FATAL_ERROR)."),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, errors[PG_UV_ERR_CONNECT], "pg_failures_total", "result=\"connect\"", "Queries that failed without an answer, by cause."),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, errors[PG_UV_ERR_CONNECT_TIMEOUT], "pg_failures_total", "result=\"connect_timeout\"", ""),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, errors[PG_UV_ERR_TIMEOUT], "pg_failures_total", "result=\"timeout\"", ""),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, errors[PG_UV_ERR_DISCONNECTED], "pg_failures_total", "result=\"disconnected\"", ""),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, errors[PG_UV_ERR_BACKOFF], "pg_failures_total", "result=\"backoff\"", ""),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, errors[PG_UV_ERR_QUEUE], "pg_failures_total", "result=\"queue_full\"", ""),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, errors[PG_UV_ERR_SHUTDOWN], "pg_failures_total", "result=\"shutdown\"", ""),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, timeouts, "pg_timeouts_total", NULL, "Connections dropped because a statement had no answer within the query timeout."),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, connects, "pg_connects_total", NULL, "Connection attempts to PostgreSQL."),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, connect_failures, "pg_connect_failures_total", NULL, "Connection attempts refused, failed, timed out or refused at LISTEN."),
    METRICS_ATOMIC_COUNTER(pg_uv_stats_t, notifications, "pg_notifications_total", NULL, "Notifications received on channels listened to."),
    METRICS_ATOMIC_GAUGE(pg_uv_stats_t, connected, "pg_connections", NULL, "Open PostgreSQL connections."),
    METRICS_ATOMIC_GAUGE(pg_uv_stats_t, pending, "pg_pending", NULL, "PostgreSQL queries awaiting an answer."),
};
const metrics_table_t pg_uv_metrics_table = METRICS_TABLE(pg_uv_metrics_rows);

const char *pg_uv_result_name(pg_uv_result_t r)
{
    switch (r) {
    case PG_UV_OK: return "ok";
    case PG_UV_ERR_CONNECT: return "connect";
    case PG_UV_ERR_CONNECT_TIMEOUT: return "connect_timeout";
    case PG_UV_ERR_TIMEOUT: return "timeout";
    case PG_UV_ERR_DISCONNECTED: return "disconnected";
    case PG_UV_ERR_BACKOFF: return "backoff";
    case PG_UV_ERR_QUEUE: return "queue_full";
    case PG_UV_ERR_SHUTDOWN: return "shutdown";
    default: return "unknown";
    }
}

static void pg_uv_push(pg_uv_fifo_t *q, pg_uv_query_t *x)
{
    x->next = NULL;
    if (q->tail) q->tail->next = x;
    else q->head = x;
    q->tail = x;
}

static pg_uv_query_t *pg_uv_shift(pg_uv_fifo_t *q)
{
    pg_uv_query_t *x = q->head;
    if (!x) return NULL;
    q->head = x->next;
    if (!q->head) q->tail = NULL;
    return x;
}

/* libpq's messages end in a newline and may hold more ("...refused\n\tIs
 * the server running...?\n"): one line, for logs and callers. */
static void pg_uv_msg(char *dst, size_t cap, const char *prefix, const char *src)
{
    size_t n = (size_t)snprintf(dst, cap, "%s", prefix ? prefix : "");
    if (n >= cap) n = cap - 1;
    bool space = false;
    for (; src && *src && n + 1 < cap; src++) {
        if (*src == '\n' || *src == '\t' || *src == '\r') {
            space = true;
            continue;
        }
        if (space && n > 0 && dst[n - 1] != ' ') dst[n++] = ' ';
        space = false;
        dst[n++] = *src;
    }
    dst[n] = 0;
}

/* ---- queries ---- */

/* The query, its SQL and its parameters in one block. */
static pg_uv_query_t *pg_uv_query_new(const char *sql, int nparams, const char *const *values)
{
    size_t size = sizeof(pg_uv_query_t) + (size_t)nparams * sizeof(char *) + strlen(sql) + 1;
    for (int i = 0; i < nparams; i++)
        if (values[i]) size += strlen(values[i]) + 1;
    pg_uv_query_t *q = calloc(1, size);
    if (!q) return NULL;
    char **vals = (char **)(q + 1);
    char *p = (char *)(vals + nparams);
    for (int i = 0; i < nparams; i++) {
        if (!values[i]) continue;
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        vals[i] = p;
        p += n;
    }
    memcpy(p, sql, strlen(sql) + 1);
    q->sql = p;
    q->nparams = nparams;
    q->values = (const char *const *)vals;
    q->listener = -1;
    return q;
}

static void pg_uv_idle_cb(uv_idle_t *h);

/* Fails a query (a LISTEN is only freed), from the loop's next turn: a
 * failure is decided in the middle of things, and the callback may issue
 * queries or close the client. */
static void pg_uv_fail(pg_uv_t *c, pg_uv_query_t *q, pg_uv_result_t res, const char *msg)
{
    if (q->listener >= 0) {
        free(q);
        return;
    }
    q->res = res;
    size_t n = strnlen(msg, sizeof q->err - 1); /* cut to fit */
    memcpy(q->err, msg, n);
    q->err[n] = 0;
    pg_uv_push(&c->deferred, q);
    uv_idle_start(&c->idle, pg_uv_idle_cb);
}

/* A query that was waiting or in flight fails. */
static void pg_uv_fail_pending(pg_uv_t *c, pg_uv_query_t *q, pg_uv_result_t res, const char *msg)
{
    if (q->listener < 0) c->npending--;
    pg_uv_fail(c, q, res, msg);
}

static void pg_uv_fail_queue(pg_uv_t *c, pg_uv_result_t res, const char *msg)
{
    pg_uv_query_t *q;
    while ((q = pg_uv_shift(&c->queue))) pg_uv_fail_pending(c, q, res, msg);
}

static void pg_uv_deliver_deferred(pg_uv_t *c, pg_uv_query_t *q)
{
    atomic_fetch_sub(&c->st->pending, 1);
    atomic_fetch_add(&c->st->errors[q->res], 1);
    q->cb(q->ctx, q->res, NULL, q->err);
    free(q);
}

/* ---- the poll handle ---- */

static void pg_uv_poll_cb(uv_poll_t *h, int status, int events);

static void pg_uv_poll_closed(uv_handle_t *h)
{
    pg_uv_t *c = h->data;
    free(h);
    closer_closed(&c->closer);
}

static void pg_uv_unwatch(pg_uv_t *c)
{
    if (!c->poll) return;
    uv_close((uv_handle_t *)c->poll, pg_uv_poll_closed);
    c->poll = NULL;
    c->polling = 0;
}

/* Watches PQsocket for events; false if it cannot. */
static bool pg_uv_watch(pg_uv_t *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0) return false;
    if (c->poll && c->poll_fd != fd) pg_uv_unwatch(c);
    if (!c->poll) {
        uv_poll_t *p = malloc(sizeof *p);
        if (!p) return false;
        if (uv_poll_init(c->loop, p, fd) != 0) {
            free(p);
            return false;
        }
        p->data = c;
        closer_add(&c->closer, 1);
        c->poll = p;
        c->poll_fd = fd;
        c->polling = 0;
    }
    if (events == c->polling) return true;
    int rc = events ? uv_poll_start(c->poll, events, pg_uv_poll_cb) : uv_poll_stop(c->poll);
    if (rc != 0) return false;
    c->polling = events;
    return true;
}

/* ---- deadlines ---- */

static void pg_uv_timer_cb(uv_timer_t *t);

/* The first of the caller's queries not sent yet (LISTENs come first). */
static pg_uv_query_t *pg_uv_first_user(const pg_uv_t *c)
{
    pg_uv_query_t *q = c->queue.head;
    while (q && q->listener >= 0) q = q->next;
    return q;
}

/* One timer: while connecting, the connect deadline; the statement in
 * flight's deadline; the oldest waiting query's (clocks start in queue
 * order, so it is the first); with no connection but work to do, the next
 * connect. Set again after every change: cheap (a heap update). */
static void pg_uv_arm(pg_uv_t *c)
{
    if (c->closing) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t at = UINT64_MAX, qt = c->cfg.query_timeout_ms;
    if (c->pg) {
        if (!c->ready) at = c->connect_deadline;
        if (c->inflight && c->inflight->started && c->inflight->started + qt < at) at = c->inflight->started + qt;
    } else if (c->queue.head || c->nlisten) {
        at = c->retry_at;
    }
    const pg_uv_query_t *q = pg_uv_first_user(c);
    if (q && q->started && q->started + qt < at) at = q->started + qt;
    if (at == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, pg_uv_timer_cb, at > now ? at - now : 0, 0);
}

/* ---- the connection's life ---- */

/* A connect failed: it makes the next one wait, and fails what waited for
 * it (a LISTEN is dropped, and sent again on the next connection). */
static void pg_uv_connect_failed(pg_uv_t *c, pg_uv_result_t why, const char *msg)
{
    snprintf(c->last_err, sizeof c->last_err, "%s", msg);
    atomic_fetch_add(&c->st->connect_failures, 1);
    c->retry_at = uv_now(c->loop) + backoff_next(&c->backoff);
    pg_uv_fail_queue(c, why, msg);
}

/* LISTENs belong to one connection: the next sends its own. */
static void pg_uv_drop_listens(pg_uv_t *c)
{
    pg_uv_query_t *q;
    while (c->queue.head && c->queue.head->listener >= 0) {
        q = pg_uv_shift(&c->queue);
        free(q);
    }
}

/* Ends the connection. Its statement in flight fails with `why`. If it was
 * ready, the queries not sent yet stay queued for the next connection
 * (the timer opens it at once); if not, it was a failed connect, and they
 * fail with it. Closing, everything fails with SHUTDOWN. */
static void pg_uv_drop(pg_uv_t *c, pg_uv_result_t why, const char *msg)
{
    if (!c->pg) return;
    bool was_ready = c->ready;
    if (!was_ready && why != PG_UV_ERR_SHUTDOWN && why != PG_UV_ERR_CONNECT_TIMEOUT) why = PG_UV_ERR_CONNECT;
    /* Before PQfinish closes the socket: libuv must not watch a closed
     * descriptor (its number may come back as another socket). */
    pg_uv_unwatch(c);
    /* PQfinish does not block here: on a ready connection it queues a
     * Terminate message and flushes it once, and on a non-blocking
     * connection that flush returns instead of waiting when the socket
     * is full (libpq's sendTerminateConn, pqSendSome); then it closes the
     * socket. During the startup phase it sends nothing. */
    PQfinish(c->pg);
    c->pg = NULL;
    c->gen++;
    c->pq_ok = c->ready = c->flushing = false;
    c->handshake = 0;
    c->state = PG_UV_DISCONNECTED;
    if (c->last) PQclear(c->last);
    c->last = NULL;
    if (was_ready) atomic_fetch_sub(&c->st->connected, 1);
    pg_uv_query_t *q = c->inflight;
    c->inflight = NULL;
    if (q) pg_uv_fail_pending(c, q, why, msg);
    pg_uv_drop_listens(c);
    if (why == PG_UV_ERR_SHUTDOWN) {
        pg_uv_fail_queue(c, why, msg);
    } else if (!was_ready) {
        pg_uv_connect_failed(c, why, msg);
    } else {
        snprintf(c->last_err, sizeof c->last_err, "%s", msg);
        if (why == PG_UV_ERR_TIMEOUT) atomic_fetch_add(&c->st->timeouts, 1);
    }
    pg_uv_arm(c);
}

/* Drops the connection with libpq's own account of what went wrong. */
static void pg_uv_drop_pq(pg_uv_t *c, pg_uv_result_t why, const char *what)
{
    char msg[PG_UV_ERRCAP];
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s: ", what);
    pg_uv_msg(msg, sizeof msg, prefix, c->pg ? PQerrorMessage(c->pg) : "");
    pg_uv_drop(c, why, msg);
}

/* Hands the output to the socket; while some is left, watch for writable
 * too. False if the connection was dropped. */
static bool pg_uv_flush(pg_uv_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        pg_uv_drop_pq(c, PG_UV_ERR_DISCONNECTED, "send");
        return false;
    }
    c->flushing = r == 1;
    if (!pg_uv_watch(c, UV_READABLE | (c->flushing ? UV_WRITABLE : 0))) {
        pg_uv_drop(c, PG_UV_ERR_DISCONNECTED, "cannot watch the socket");
        return false;
    }
    return true;
}

/* Sends the next statement if the connection is free: LISTENs once libpq
 * is connected, the caller's once ready. */
static void pg_uv_pump(pg_uv_t *c)
{
    if (!c->pg || !c->pq_ok || c->inflight || c->closing) return;
    pg_uv_query_t *q = c->queue.head;
    if (!q || (q->listener < 0 && !c->ready)) return;
    pg_uv_shift(&c->queue);
    c->inflight = q;
    if (q->listener >= 0 && c->ready) q->started = uv_now(c->loop);
    if (!PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, q->values, NULL, NULL, 0)) {
        pg_uv_drop_pq(c, PG_UV_ERR_DISCONNECTED, "send");
        return;
    }
    if (pg_uv_flush(c)) pg_uv_arm(c);
}

/* Queues LISTEN for listener i, after the LISTENs already queued. */
static bool pg_uv_queue_listen(pg_uv_t *c, unsigned i)
{
    char sql[80];
    snprintf(sql, sizeof sql, "LISTEN \"%s\"", c->listeners[i].channel);
    pg_uv_query_t *q = pg_uv_query_new(sql, 0, NULL);
    if (!q) return false;
    q->listener = (int)i;
    pg_uv_query_t **at = &c->queue.head;
    while (*at && (*at)->listener >= 0) at = &(*at)->next;
    q->next = *at;
    *at = q;
    if (!q->next) c->queue.tail = q;
    return true;
}

/* The connection is ready: the caller's queries may go, their clocks
 * start, and listeners that were covered before learn that they are
 * again. False if a callback dropped the connection or closed the client. */
static bool pg_uv_ready(pg_uv_t *c)
{
    uint64_t now = uv_now(c->loop);
    unsigned gen = c->gen;
    c->ready = true;
    c->state = PG_UV_CONNECTED;
    backoff_reset(&c->backoff);
    atomic_fetch_add(&c->st->connected, 1);
    for (pg_uv_query_t *q = c->queue.head; q; q = q->next)
        if (!q->started && q->listener < 0) q->started = now;
    for (unsigned i = 0; i < c->nlisten; i++) {
        pg_uv_listener_t *l = &c->listeners[i];
        if (!l->again) continue;
        l->again = false;
        if (l->on_reconnect) l->on_reconnect(l->ctx);
        if (c->gen != gen || c->closing) return false;
    }
    return true;
}

/* libpq is connected: non-blocking from here on, then the LISTENs. */
static void pg_uv_connected(pg_uv_t *c)
{
    c->pq_ok = true;
    if (PQsetnonblocking(c->pg, 1) != 0) {
        pg_uv_drop_pq(c, PG_UV_ERR_CONNECT, "set non-blocking");
        return;
    }
    for (unsigned i = 0; i < c->nlisten; i++) {
        if (!pg_uv_queue_listen(c, i)) {
            pg_uv_drop(c, PG_UV_ERR_CONNECT, "out of memory");
            return;
        }
        c->handshake++;
    }
    if (!pg_uv_watch(c, UV_READABLE)) {
        pg_uv_drop(c, PG_UV_ERR_CONNECT, "cannot watch the socket");
        return;
    }
    if (c->handshake == 0 && !pg_uv_ready(c)) return;
    pg_uv_pump(c);
    if (c->pg) pg_uv_arm(c);
}

/* One step of libpq's connect state machine. libpq may close its socket
 * and open another inside PQconnectPoll (the next address or host, or a
 * retry without SSL or GSS), possibly under the same number: so the poll
 * is stopped first (libuv removes the descriptor from epoll while it is
 * still the old socket) and started again afterwards on whatever
 * PQsocket is then, on a new handle if the number changed. */
static void pg_uv_connect_step(pg_uv_t *c)
{
    if (c->poll) {
        uv_poll_stop(c->poll);
        c->polling = 0;
    }
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK: pg_uv_connected(c); return;
    case PGRES_POLLING_READING:
        if (!pg_uv_watch(c, UV_READABLE)) pg_uv_drop(c, PG_UV_ERR_CONNECT, "cannot watch the socket");
        return;
    case PGRES_POLLING_WRITING:
        if (!pg_uv_watch(c, UV_WRITABLE)) pg_uv_drop(c, PG_UV_ERR_CONNECT, "cannot watch the socket");
        return;
    default: pg_uv_drop_pq(c, PG_UV_ERR_CONNECT, "connect"); return;
    }
}

static void pg_uv_notice(void *arg, const char *message)
{
    (void)arg; /* a library prints nothing; notices carry nothing a caller needs */
    (void)message;
}

/* Starts a connection; false (and the failure recorded, what waited for
 * it failed) if it failed at once. */
static bool pg_uv_connect(pg_uv_t *c)
{
    atomic_fetch_add(&c->st->connects, 1);
    PGconn *pg = PQconnectStart(c->cfg.conninfo);
    if (!pg || PQstatus(pg) == CONNECTION_BAD) {
        char msg[PG_UV_ERRCAP];
        pg_uv_msg(msg, sizeof msg, "connect: ", pg ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        pg_uv_connect_failed(c, PG_UV_ERR_CONNECT, msg);
        pg_uv_arm(c);
        return false;
    }
    PQsetNoticeProcessor(pg, pg_uv_notice, NULL);
    c->pg = pg;
    c->state = PG_UV_CONNECTING;
    c->connect_deadline = uv_now(c->loop) + c->cfg.connect_timeout_ms;
    /* PQconnectStart has taken the first step: the TCP connect is under
     * way, and it wants the socket writable. */
    if (!pg_uv_watch(c, UV_WRITABLE)) {
        pg_uv_drop(c, PG_UV_ERR_CONNECT, "cannot watch the socket");
        return false;
    }
    pg_uv_arm(c);
    return true;
}

/* ---- reading ---- */

/* Delivers the notifications libpq has parsed. False if a callback dropped
 * the connection or closed the client. */
static bool pg_uv_notifies(pg_uv_t *c, unsigned gen)
{
    PGnotify *n;
    while ((n = PQnotifies(c->pg))) {
        atomic_fetch_add(&c->st->notifications, 1);
        for (unsigned i = 0; i < c->nlisten; i++) {
            pg_uv_listener_t *l = &c->listeners[i];
            if (strcmp(l->channel, n->relname) != 0) continue;
            l->on_notify(l->ctx, n->relname, n->extra ? n->extra : "", n->be_pid);
            if (c->gen != gen || c->closing) {
                PQfreemem(n);
                return false;
            }
        }
        PQfreemem(n);
    }
    return true;
}

/* The statement in flight has its last result (res, ours). False if the
 * connection was dropped or the client closed meanwhile. */
static bool pg_uv_statement_done(pg_uv_t *c, unsigned gen)
{
    pg_uv_query_t *q = c->inflight;
    PGresult *res = c->last;
    c->inflight = NULL;
    c->last = NULL;
    if (PQstatus(c->pg) == CONNECTION_BAD || !res) {
        /* libpq made the error result up for a lost connection: no answer. */
        char msg[PG_UV_ERRCAP];
        pg_uv_msg(msg, sizeof msg, "connection lost: ", res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
        PQclear(res);
        c->inflight = q;
        pg_uv_drop(c, PG_UV_ERR_DISCONNECTED, msg);
        return false;
    }
    if (q->listener >= 0) {
        pg_uv_listener_t *l = &c->listeners[q->listener];
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        char msg[PG_UV_ERRCAP];
        if (!ok) {
            char prefix[96];
            snprintf(prefix, sizeof prefix, "LISTEN \"%s\": ", l->channel);
            pg_uv_msg(msg, sizeof msg, prefix, PQresultErrorMessage(res));
        }
        PQclear(res);
        free(q);
        if (!ok) {
            /* Refused while connecting, a failed connect; while ready, a
             * lost connection whose reconnect will tell. */
            pg_uv_drop(c, c->ready ? PG_UV_ERR_DISCONNECTED : PG_UV_ERR_CONNECT, msg);
            return false;
        }
        l->again = l->covered;
        l->covered = true;
        if (!c->ready) {
            if (--c->handshake == 0) return pg_uv_ready(c);
        } else {
            l->again = false; /* a listener added while connected: nothing missed */
        }
        return true;
    }
    c->npending--;
    atomic_fetch_sub(&c->st->pending, 1);
    atomic_fetch_add(&c->st->results, 1);
    if (PQresultStatus(res) == PGRES_FATAL_ERROR) atomic_fetch_add(&c->st->server_errors, 1);
    q->cb(q->ctx, PG_UV_OK, res, NULL);
    PQclear(res);
    free(q);
    return c->gen == gen && !c->closing;
}

/* Everything libpq can hand over without waiting: notifications, results
 * (each statement's last one delivered once libpq says it is done, so the
 * connection is free for the next when the callback runs). */
static void pg_uv_read(pg_uv_t *c)
{
    unsigned gen = c->gen;
    for (;;) {
        if (!pg_uv_notifies(c, gen)) return;
        if (!c->inflight || PQisBusy(c->pg)) break;
        PGresult *r = PQgetResult(c->pg);
        if (r) {
            ExecStatusType s = PQresultStatus(r);
            if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH) {
                PQclear(r);
                pg_uv_drop(c, PG_UV_ERR_DISCONNECTED, "COPY is not supported");
                return;
            }
            if (c->last) PQclear(c->last);
            c->last = r;
            continue;
        }
        if (!pg_uv_statement_done(c, gen)) return;
        pg_uv_pump(c);
        if (c->gen != gen) return;
    }
    pg_uv_arm(c);
}

static void pg_uv_poll_cb(uv_poll_t *h, int status, int events)
{
    pg_uv_t *c = h->data;
    if (h != c->poll || !c->pg || c->closing) return; /* closing: the idle handle drops the connection */
    if (status < 0) c->polling = 0; /* libuv stopped the poll */
    if (!c->pq_ok) {
        /* An error (a refused connect) too: PQconnectPoll reads the
         * socket's own reason. */
        pg_uv_connect_step(c);
        return;
    }
    if (status < 0) {
        if (!PQconsumeInput(c->pg)) {
            pg_uv_drop_pq(c, PG_UV_ERR_DISCONNECTED, "receive");
        } else {
            char msg[PG_UV_ERRCAP];
            snprintf(msg, sizeof msg, "socket error: %s", uv_strerror(status));
            pg_uv_drop(c, PG_UV_ERR_DISCONNECTED, msg);
        }
        return;
    }
    /* PQconsumeInput flushes too on a non-blocking connection: a server
     * answering while we send is read, so neither side waits on the other. */
    if ((events & UV_READABLE) && !PQconsumeInput(c->pg)) {
        pg_uv_drop_pq(c, PG_UV_ERR_DISCONNECTED, "receive");
        return;
    }
    if (c->flushing && !pg_uv_flush(c)) return;
    pg_uv_read(c);
}

/* ---- the timer ---- */

static void pg_uv_timer_cb(uv_timer_t *t)
{
    pg_uv_t *c = t->data;
    if (c->closing) return;
    uint64_t now = uv_now(c->loop), qt = c->cfg.query_timeout_ms;
    char msg[PG_UV_ERRCAP];
    if (c->pg && !c->ready && now >= c->connect_deadline) {
        snprintf(msg, sizeof msg, "connection not ready within %" PRIu64 " ms", c->cfg.connect_timeout_ms);
        pg_uv_drop(c, PG_UV_ERR_CONNECT_TIMEOUT, msg);
    }
    if (c->pg && c->inflight && c->inflight->started && now >= c->inflight->started + qt) {
        /* libpq cannot leave a statement's results unread, and PQcancel
         * blocks: the connection goes, and the queries behind the
         * statement go out on the next one. */
        snprintf(msg, sizeof msg, "no answer within %" PRIu64 " ms", qt);
        pg_uv_drop(c, PG_UV_ERR_TIMEOUT, msg);
    }
    /* Queries whose clock ran out while they waited: never sent. */
    for (;;) {
        pg_uv_query_t **at = &c->queue.head, *prev = NULL;
        while (*at && (*at)->listener >= 0) prev = *at, at = &(*at)->next;
        pg_uv_query_t *q = *at;
        if (!q || !q->started || now < q->started + qt) break;
        *at = q->next;
        if (c->queue.tail == q) c->queue.tail = prev;
        snprintf(msg, sizeof msg, "not sent within %" PRIu64 " ms", qt);
        pg_uv_fail_pending(c, q, PG_UV_ERR_TIMEOUT, msg);
    }
    if (!c->pg && (c->queue.head || c->nlisten) && now >= c->retry_at) {
        if (!pg_uv_connect(c)) return;
    }
    pg_uv_arm(c);
}

/* ---- the API ---- */

static bool pg_uv_numeric(const char *host, size_t len)
{
    char buf[64];
    unsigned char addr[16];
    if (len == 0) return true; /* libpq's default: a Unix socket */
    if (host[0] == '/' || host[0] == '@') return true; /* a socket directory, or an abstract one */
    if (len >= sizeof buf) return false;
    memcpy(buf, host, len);
    buf[len] = 0;
    return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

/* Every host of a comma-separated list is resolved without a lookup. */
static bool pg_uv_hosts_numeric(const char *hosts)
{
    while (hosts) {
        const char *comma = strchr(hosts, ',');
        size_t len = comma ? (size_t)(comma - hosts) : strlen(hosts);
        if (!pg_uv_numeric(hosts, len)) return false;
        hosts = comma ? comma + 1 : NULL;
    }
    return true;
}

/* A conninfo libpq accepts, whose hosts need no name lookup. */
static bool pg_uv_conninfo_ok(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        PQfreemem(err);
        return false;
    }
    const char *host = NULL, *hostaddr = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val) continue;
        if (strcmp(o->keyword, "host") == 0) host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0) hostaddr = o->val;
    }
    /* libpq falls back to the environment for what the string omits. */
    if (!host) host = getenv("PGHOST");
    if (!hostaddr || !*hostaddr) hostaddr = getenv("PGHOSTADDR");
    bool ok = (hostaddr && *hostaddr) || !host || pg_uv_hosts_numeric(host);
    PQconninfoFree(opts);
    return ok;
}

pg_uv_t *pg_uv_new(uv_loop_t *loop, const pg_uv_config_t *cfg)
{
    if (!cfg || !cfg->conninfo || !pg_uv_conninfo_ok(cfg->conninfo)) return NULL;
    pg_uv_config_t k = *cfg;
    if (!k.connect_timeout_ms) k.connect_timeout_ms = 5000;
    if (!k.query_timeout_ms) k.query_timeout_ms = 5000;
    if (!k.backoff_min_ms) k.backoff_min_ms = 200;
    if (!k.backoff_max_ms) k.backoff_max_ms = 10000;
    if (k.backoff_max_ms < k.backoff_min_ms) k.backoff_max_ms = k.backoff_min_ms;
    if (!k.max_pending) k.max_pending = 1000;

    pg_uv_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cfg = k;
    c->cfg.conninfo = strdup(k.conninfo);
    if (!c->cfg.conninfo) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    c->st = k.stats ? k.stats : &c->own_stats;
    backoff_init(&c->backoff, k.backoff_min_ms, k.backoff_max_ms);
    uv_timer_init(loop, &c->timer);
    uv_idle_init(loop, &c->idle);
    c->timer.data = c->idle.data = c;
    closer_add(&c->closer, 2); /* the timer and the idle handle */
    return c;
}

/* Fails a query that was just accepted, from the loop's next turn. */
static void pg_uv_refuse(pg_uv_t *c, pg_uv_query_t *q, pg_uv_result_t res)
{
    char msg[PG_UV_ERRCAP + 32];
    switch (res) {
    case PG_UV_ERR_BACKOFF: snprintf(msg, sizeof msg, "waiting to reconnect after: %s", c->last_err); break;
    case PG_UV_ERR_QUEUE: snprintf(msg, sizeof msg, "%u queries already waiting", c->cfg.max_pending); break;
    case PG_UV_ERR_SHUTDOWN: snprintf(msg, sizeof msg, "client closed"); break;
    default: snprintf(msg, sizeof msg, "%s", c->last_err); break;
    }
    pg_uv_fail(c, q, res, msg);
}

int pg_uv_query(pg_uv_t *c, const char *sql, int nparams, const char *const *values, pg_uv_result_fn cb, void *ctx)
{
    if (!sql || !cb || nparams < 0 || nparams > PG_UV_MAX_PARAMS || (nparams > 0 && !values)) return UV_EINVAL;
    if (c->torn_down) return UV_ESHUTDOWN;
    pg_uv_query_t *q = pg_uv_query_new(sql, nparams, values);
    if (!q) return UV_ENOMEM;
    q->cb = cb;
    q->ctx = ctx;
    atomic_fetch_add(&c->st->queries, 1);
    atomic_fetch_add(&c->st->pending, 1);

    if (c->closing) {
        pg_uv_refuse(c, q, PG_UV_ERR_SHUTDOWN);
        return 0;
    }
    if (c->npending >= c->cfg.max_pending) {
        pg_uv_refuse(c, q, PG_UV_ERR_QUEUE);
        return 0;
    }
    if (!c->pg) {
        if (uv_now(c->loop) < c->retry_at) {
            pg_uv_refuse(c, q, PG_UV_ERR_BACKOFF);
            return 0;
        }
        if (!pg_uv_connect(c)) {
            pg_uv_refuse(c, q, PG_UV_ERR_CONNECT);
            return 0;
        }
    }
    if (c->ready) q->started = uv_now(c->loop);
    pg_uv_push(&c->queue, q);
    c->npending++;
    if (c->ready && !c->inflight) pg_uv_pump(c);
    else pg_uv_arm(c);
    return 0;
}

static bool pg_uv_channel_ok(const char *ch)
{
    static const char first[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
    static const char rest[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789";
    size_t n = ch ? strlen(ch) : 0;
    return n >= 1 && n <= 63 && strchr(first, ch[0]) && strspn(ch, rest) == n;
}

int pg_uv_listen(pg_uv_t *c, const char *channel, pg_uv_notify_fn on_notify, pg_uv_reconnect_fn on_reconnect,
                 void *ctx)
{
    if (!pg_uv_channel_ok(channel) || !on_notify) return UV_EINVAL;
    if (c->closing) return UV_ESHUTDOWN;
    if (c->nlisten >= PG_UV_MAX_LISTENERS) return UV_ENOSPC;
    unsigned i = c->nlisten;
    pg_uv_listener_t *l = &c->listeners[i];
    *l = (pg_uv_listener_t){.on_notify = on_notify, .on_reconnect = on_reconnect, .ctx = ctx};
    snprintf(l->channel, sizeof l->channel, "%s", channel);
    if (c->pq_ok) {
        /* Connected: it goes first among what waits; while the others'
         * LISTENs are being answered, it is one of them. */
        if (!pg_uv_queue_listen(c, i)) return UV_ENOMEM;
        if (!c->ready) c->handshake++;
    }
    c->nlisten++;
    if (c->pg) pg_uv_pump(c);
    else if (uv_now(c->loop) >= c->retry_at) pg_uv_connect(c);
    if (!c->closing) pg_uv_arm(c);
    return 0;
}

pg_uv_state_t pg_uv_state(const pg_uv_t *c)
{
    return c->state;
}

bool pg_uv_available(const pg_uv_t *c)
{
    return !c->closing && (c->pg || uv_now(c->loop) >= c->retry_at);
}

const char *pg_uv_last_error(const pg_uv_t *c)
{
    return c->last_err;
}

pg_uv_stats_t *pg_uv_stats(pg_uv_t *c)
{
    return c->st;
}

static void pg_uv_handle_closed(uv_handle_t *h)
{
    pg_uv_t *c = h->data;
    closer_closed(&c->closer);
}

/* Each turn: answers the queries that failed. Closing, it first drops the
 * connection (its queries fail with SHUTDOWN, and so do any the callbacks
 * issue), and closes our handles once nothing is left to answer. */
static void pg_uv_idle_cb(uv_idle_t *h)
{
    pg_uv_t *c = h->data;
    if (c->closing) {
        if (c->pg) pg_uv_drop(c, PG_UV_ERR_SHUTDOWN, "client closed");
        pg_uv_fail_queue(c, PG_UV_ERR_SHUTDOWN, "client closed");
    }
    pg_uv_fifo_t batch = c->deferred; /* what callbacks add waits a turn: a retry loop cannot spin here */
    c->deferred = (pg_uv_fifo_t){0};
    pg_uv_query_t *q;
    while ((q = pg_uv_shift(&batch))) pg_uv_deliver_deferred(c, q);
    if (c->deferred.head || (c->closing && c->torn_down)) return;
    if (!c->closing) {
        uv_idle_stop(h);
        return;
    }
    c->torn_down = true;
    uv_close((uv_handle_t *)&c->timer, pg_uv_handle_closed);
    uv_close((uv_handle_t *)&c->idle, pg_uv_handle_closed);
}

void pg_uv_close(pg_uv_t *c, void (*done)(void *arg), void *arg)
{
    if (c->closing) return;
    c->closing = true;
    uv_timer_stop(&c->timer);
    closer_finish(&c->closer, done, arg);
    uv_idle_start(&c->idle, pg_uv_idle_cb);
}

void pg_uv_free(pg_uv_t *c)
{
    if (!c) return;
    free((char *)c->cfg.conninfo);
    free(c);
}
