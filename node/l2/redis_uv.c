#include "node/l2/redis_uv.h"

#include <hiredis/async.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/core/backoff.h"
#include "node/core/closer.h"

#define REDIS_UV_ERRCAP 160

/* One command: the caller's, or AUTH/SELECT of the handshake (cb NULL,
 * handshake names it). Allocated per command; freed before its callback. */
typedef struct redis_uv_cmd {
    struct redis_uv_cmd *next;
    redis_uv_reply_fn cb;
    void *ctx;
    const char *handshake;
    uint64_t issued;       /* uv_now when accepted */
    redis_uv_result_t res; /* while deferred: why it failed */
    bool answered;         /* timed out: its caller has been told; its late reply is dropped */
} redis_uv_cmd_t;

typedef struct redis_uv_fifo {
    redis_uv_cmd_t *head, *tail;
} redis_uv_fifo_t;

/* One hiredis context and its poll handle. It outlives the context (hiredis
 * frees that in __redisAsyncFree, right after our cleanup hook) until libuv
 * has closed the poll handle. */
typedef struct redis_uv_conn {
    redis_uv_t *r;
    redisAsyncContext *ac; /* NULL once hiredis freed it */
    uv_poll_t poll;
    int events;            /* what hiredis asked for */
    int polling;           /* what the poll is started with: uv_poll_start costs two epoll_ctl */
    bool detached;         /* no longer r->conn: failing or gone */
    bool freeing;          /* redisAsyncFree called */
    bool ready;            /* connected and the handshake answered */
    unsigned handshake;    /* handshake replies still to come */
    uint64_t connect_deadline, ready_at;
    redis_uv_fifo_t sent;  /* handed to hiredis, in reply order */
    unsigned npending;     /* caller commands in sent */
    redis_uv_result_t fail; /* what its NULL replies report */
    char err[REDIS_UV_ERRCAP];
} redis_uv_conn_t;

struct redis_uv {
    uv_loop_t *loop;
    redis_uv_config_t cfg; /* its strings point to our copies */
    redis_uv_stats_t own_stats;
    redis_uv_stats_t *st;
    uv_timer_t timer;      /* the connect deadline, then the oldest command's */
    uv_idle_t idle;        /* delivers deferred failures; runs the teardown */
    redis_uv_conn_t *conn; /* the current connection, NULL when none */
    redis_uv_state_t state;
    redis_uv_fifo_t deferred; /* failed at once, answered from the loop */
    uint64_t retry_at;
    backoff_t backoff;     /* the wait before the next connect */
    bool attempted, closing, torn_down;
    /* Our handles and connections not yet closed. The timer and the idle
     * handle close last (torn_down), so done waits for the teardown. */
    closer_t closer;
    char last_err[REDIS_UV_ERRCAP];
};

static const metrics_desc_t redis_uv_metrics_rows[] = {
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, commands, "l2_redis_commands_total", NULL, "Commands accepted by the Redis clients."),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, replies, "l2_redis_replies_total", NULL, "Commands Redis answered."),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, reply_errors, "l2_redis_reply_errors_total", NULL, "Answers that were error replies (-ERR ...)."),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, errors[REDIS_UV_ERR_CONNECT], "l2_redis_failures_total", "result=\"connect\"", "Commands that failed without an answer, by cause."),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, errors[REDIS_UV_ERR_CONNECT_TIMEOUT], "l2_redis_failures_total", "result=\"connect_timeout\"", ""),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, errors[REDIS_UV_ERR_HANDSHAKE], "l2_redis_failures_total", "result=\"handshake\"", ""),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, errors[REDIS_UV_ERR_TIMEOUT], "l2_redis_failures_total", "result=\"timeout\"", ""),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, errors[REDIS_UV_ERR_DISCONNECTED], "l2_redis_failures_total", "result=\"disconnected\"", ""),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, errors[REDIS_UV_ERR_BACKOFF], "l2_redis_failures_total", "result=\"backoff\"", ""),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, errors[REDIS_UV_ERR_QUEUE], "l2_redis_failures_total", "result=\"queue_full\"", ""),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, errors[REDIS_UV_ERR_SHUTDOWN], "l2_redis_failures_total", "result=\"shutdown\"", ""),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, timeouts, "l2_redis_timeouts_total", NULL, "Connections given up because a command had no reply within 5 x --l2-timeout."),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, connects, "l2_redis_connects_total", NULL, "Connection attempts to Redis."),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, reconnects, "l2_redis_reconnects_total", NULL, "Connection attempts after an earlier connection or attempt."),
    METRICS_ATOMIC_COUNTER(redis_uv_stats_t, connect_failures, "l2_redis_connect_failures_total", NULL, "Connection attempts refused, failed, timed out or refused at AUTH/SELECT."),
    METRICS_ATOMIC_GAUGE(redis_uv_stats_t, connected, "l2_connections", NULL, "Open Redis connections (one per worker loop, plus the journal's)."),
    METRICS_ATOMIC_GAUGE(redis_uv_stats_t, pending, "l2_pending", NULL, "Redis commands awaiting an answer."),
};
const metrics_table_t redis_uv_metrics_table = METRICS_TABLE(redis_uv_metrics_rows);

const char *redis_uv_result_name(redis_uv_result_t r)
{
    switch (r) {
    case REDIS_UV_OK: return "ok";
    case REDIS_UV_ERR_CONNECT: return "connect";
    case REDIS_UV_ERR_CONNECT_TIMEOUT: return "connect_timeout";
    case REDIS_UV_ERR_HANDSHAKE: return "handshake";
    case REDIS_UV_ERR_TIMEOUT: return "timeout";
    case REDIS_UV_ERR_DISCONNECTED: return "disconnected";
    case REDIS_UV_ERR_BACKOFF: return "backoff";
    case REDIS_UV_ERR_QUEUE: return "queue_full";
    case REDIS_UV_ERR_SHUTDOWN: return "shutdown";
    default: return "unknown";
    }
}

static void redis_uv_push(redis_uv_fifo_t *q, redis_uv_cmd_t *c)
{
    c->next = NULL;
    if (q->tail) q->tail->next = c;
    else q->head = c;
    q->tail = c;
}

static redis_uv_cmd_t *redis_uv_shift(redis_uv_fifo_t *q)
{
    redis_uv_cmd_t *c = q->head;
    if (!c) return NULL;
    q->head = c->next;
    if (!q->head) q->tail = NULL;
    return c;
}

/* ---- answering ---- */

/* Tells the caller; the command stays where it is (a timed-out one waits in
 * the sent queue for its late reply). */
static void redis_uv_answer(redis_uv_t *r, redis_uv_cmd_t *cmd, redis_uv_result_t res, const redisReply *reply,
                            const char *err)
{
    cmd->answered = true;
    atomic_fetch_sub(&r->st->pending, 1);
    if (res == REDIS_UV_OK) {
        atomic_fetch_add(&r->st->replies, 1);
        if (reply->type == REDIS_REPLY_ERROR) atomic_fetch_add(&r->st->reply_errors, 1);
    } else {
        atomic_fetch_add(&r->st->errors[res], 1);
    }
    cmd->cb(cmd->ctx, res, reply, res == REDIS_UV_OK ? NULL : err);
}

/* Answers (unless a timeout did) and frees a command that left every queue. */
static void redis_uv_deliver(redis_uv_t *r, redis_uv_cmd_t *cmd, redis_uv_result_t res, const redisReply *reply,
                             const char *err)
{
    if (!cmd->answered) redis_uv_answer(r, cmd, res, reply, err);
    free(cmd);
}

static void redis_uv_idle_cb(uv_idle_t *h);

/* Fails a command that was never sent, from the loop's next turn. */
static void redis_uv_defer(redis_uv_t *r, redis_uv_cmd_t *cmd, redis_uv_result_t res)
{
    cmd->res = res;
    redis_uv_push(&r->deferred, cmd);
    uv_idle_start(&r->idle, redis_uv_idle_cb);
}

static void redis_uv_deliver_deferred(redis_uv_t *r, redis_uv_cmd_t *cmd)
{
    char msg[REDIS_UV_ERRCAP + 32];
    switch (cmd->res) {
    case REDIS_UV_ERR_BACKOFF: snprintf(msg, sizeof msg, "waiting to reconnect after: %s", r->last_err); break;
    case REDIS_UV_ERR_QUEUE: snprintf(msg, sizeof msg, "%u commands already in flight", r->cfg.max_pending); break;
    case REDIS_UV_ERR_SHUTDOWN: snprintf(msg, sizeof msg, "client closed"); break;
    case REDIS_UV_ERR_CONNECT: snprintf(msg, sizeof msg, "%s", r->last_err); break;
    default: snprintf(msg, sizeof msg, "hiredis refused the command"); break;
    }
    redis_uv_deliver(r, cmd, cmd->res, NULL, msg);
}

/* ---- the connection's life ---- */

static void redis_uv_timer_cb(uv_timer_t *t);

/* A command that has no reply within command_timeout_ms fails alone (its
 * late reply is dropped when it comes): one slow command is not an outage.
 * Only when the oldest has waited REDIS_UV_DEAD_FACTOR times as long is the
 * connection given up, failing everything still in flight. */
#define REDIS_UV_DEAD_FACTOR 5

static uint64_t redis_uv_issued(const redis_uv_conn_t *conn, const redis_uv_cmd_t *cmd)
{
    return cmd->issued < conn->ready_at ? conn->ready_at : cmd->issued;
}

/* When the timer must next look: the first command not yet timed out, or
 * the oldest giving the connection up. */
static uint64_t redis_uv_next_deadline(const redis_uv_t *r, const redis_uv_conn_t *conn)
{
    uint64_t at = redis_uv_issued(conn, conn->sent.head) + REDIS_UV_DEAD_FACTOR * r->cfg.command_timeout_ms;
    for (const redis_uv_cmd_t *c = conn->sent.head; c; c = c->next) {
        if (c->answered || c->handshake) continue;
        uint64_t t = redis_uv_issued(conn, c) + r->cfg.command_timeout_ms;
        if (t < at) at = t;
        break;
    }
    return at;
}

/* One timer for every command. Replies only make the deadlines later, so the
 * timer is not moved per reply; when it fires early it is set again. */
static void redis_uv_arm(redis_uv_t *r, redis_uv_conn_t *conn)
{
    uint64_t now = uv_now(r->loop), at = redis_uv_next_deadline(r, conn);
    uv_timer_start(&r->timer, redis_uv_timer_cb, at > now ? at - now : 0, 0);
}

/* The next connect waits; the wait doubles with each failure in a row. */
static void redis_uv_backoff(redis_uv_t *r)
{
    r->retry_at = uv_now(r->loop) + backoff_next(&r->backoff);
}

/* The first to learn that a connection is over (us, or hiredis through a
 * callback) records why; everything after reports that. */
static void redis_uv_detach(redis_uv_conn_t *conn, redis_uv_result_t why, const char *msg)
{
    if (conn->detached) return;
    conn->detached = true;
    conn->fail = why;
    snprintf(conn->err, sizeof conn->err, "%s", msg);
    redis_uv_t *r = conn->r;
    if (r->conn == conn) r->conn = NULL;
    r->state = REDIS_UV_DISCONNECTED;
    uv_timer_stop(&r->timer);
    if (conn->ready) atomic_fetch_sub(&r->st->connected, 1);
    if (why == REDIS_UV_ERR_SHUTDOWN) return;
    snprintf(r->last_err, sizeof r->last_err, "%s", msg);
    if (why == REDIS_UV_ERR_TIMEOUT) atomic_fetch_add(&r->st->timeouts, 1);
    if (!conn->ready) atomic_fetch_add(&r->st->connect_failures, 1);
    /* A server closing an idle connection (its `timeout`) is no reason to
     * make the next command wait. */
    if (conn->ready && why == REDIS_UV_ERR_DISCONNECTED && conn->npending == 0) return;
    redis_uv_backoff(r);
}

/* Drops the connection: hiredis answers everything in flight with a NULL
 * reply (reported as `why`), calls our cleanup hook and frees the context,
 * at once or, from inside a reply callback, once that returns. Never call it
 * from the connect callback: hiredis 0.14 frees the context after that. */
static void redis_uv_fail(redis_uv_conn_t *conn, redis_uv_result_t why, const char *msg)
{
    redis_uv_detach(conn, why, msg);
    if (conn->ac && !conn->freeing) {
        conn->freeing = true;
        redisAsyncFree(conn->ac);
    }
}

static void redis_uv_ready(redis_uv_conn_t *conn)
{
    redis_uv_t *r = conn->r;
    conn->ready = true;
    conn->ready_at = uv_now(r->loop);
    r->state = REDIS_UV_CONNECTED;
    backoff_reset(&r->backoff);
    atomic_fetch_add(&r->st->connected, 1);
    uv_timer_stop(&r->timer);
    if (conn->sent.head) redis_uv_arm(r, conn);
}

static void redis_uv_timer_cb(uv_timer_t *t)
{
    redis_uv_t *r = t->data;
    redis_uv_conn_t *conn = r->conn;
    if (!conn) return;
    uint64_t now = uv_now(r->loop);
    char msg[REDIS_UV_ERRCAP];
    if (!conn->ready) {
        if (now < conn->connect_deadline) {
            uv_timer_start(t, redis_uv_timer_cb, conn->connect_deadline - now, 0);
            return;
        }
        snprintf(msg, sizeof msg, "connect to %s:%d not done within %" PRIu64 " ms", r->cfg.host, r->cfg.port,
                 r->cfg.connect_timeout_ms);
        redis_uv_fail(conn, REDIS_UV_ERR_CONNECT_TIMEOUT, msg);
        return;
    }
    if (!conn->sent.head) return;
    if (now >= redis_uv_issued(conn, conn->sent.head) + REDIS_UV_DEAD_FACTOR * r->cfg.command_timeout_ms) {
        snprintf(msg, sizeof msg, "no reply within %" PRIu64 " ms", REDIS_UV_DEAD_FACTOR * r->cfg.command_timeout_ms);
        redis_uv_fail(conn, REDIS_UV_ERR_TIMEOUT, msg);
        return;
    }
    snprintf(msg, sizeof msg, "no reply within %" PRIu64 " ms", r->cfg.command_timeout_ms);
    for (redis_uv_cmd_t *c = conn->sent.head; c; c = c->next) {
        if (c->answered || c->handshake) continue;
        if (now < redis_uv_issued(conn, c) + r->cfg.command_timeout_ms) break;
        redis_uv_answer(r, c, REDIS_UV_ERR_TIMEOUT, NULL, msg);
        /* The callback may have closed the client. */
        if (r->conn != conn) return;
    }
    redis_uv_arm(r, conn);
}

/* ---- hiredis callbacks ---- */

static void redis_uv_on_connect(const redisAsyncContext *ac, int status)
{
    redis_uv_conn_t *conn = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context when we return, answering what was
         * queued with NULL replies. */
        char msg[REDIS_UV_ERRCAP];
        snprintf(msg, sizeof msg, "connect to %s:%d: %s", conn->r->cfg.host, conn->r->cfg.port, ac->c.errstr);
        redis_uv_detach(conn, REDIS_UV_ERR_CONNECT, msg);
        return;
    }
    if (conn->handshake == 0) redis_uv_ready(conn);
}

static void redis_uv_on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redis_uv_conn_t *conn = ac->data;
    redis_uv_t *r = conn->r;
    redis_uv_cmd_t *cmd = privdata;
    const redisReply *reply = reply_;
    redis_uv_shift(&conn->sent); /* that is cmd: hiredis calls back in order, as Redis answers */

    if (!reply) { /* the context is being freed */
        if (!conn->detached)
            redis_uv_detach(conn, conn->ready ? REDIS_UV_ERR_DISCONNECTED : REDIS_UV_ERR_CONNECT,
                            ac->c.err ? ac->c.errstr : "connection closed");
        if (cmd->handshake) {
            free(cmd);
            return;
        }
        conn->npending--;
        redis_uv_deliver(r, cmd, conn->fail, NULL, conn->err);
        return;
    }
    if (cmd->handshake) {
        const char *what = cmd->handshake;
        free(cmd);
        conn->handshake--;
        if (reply->type == REDIS_REPLY_ERROR) {
            char msg[REDIS_UV_ERRCAP];
            snprintf(msg, sizeof msg, "%s refused: %.*s", what, (int)reply->len, reply->str);
            redis_uv_fail(conn, REDIS_UV_ERR_HANDSHAKE, msg);
        } else if (conn->handshake == 0 && !conn->detached) {
            redis_uv_ready(conn);
        }
        return;
    }
    conn->npending--;
    redis_uv_deliver(r, cmd, REDIS_UV_OK, reply, NULL);
    if (!conn->sent.head && r->conn == conn) uv_timer_stop(&r->timer);
}

/* ---- the event adapter (hiredis's ev hooks on a uv_poll_t) ---- */

static void redis_uv_poll_cb(uv_poll_t *h, int status, int events);

static void redis_uv_poll_update(redis_uv_conn_t *conn)
{
    if (!conn->ac || conn->events == conn->polling) return;
    /* On failure the poll stays as it was; the deadlines still hold. */
    int rc = conn->events ? uv_poll_start(&conn->poll, conn->events, redis_uv_poll_cb) : uv_poll_stop(&conn->poll);
    if (rc == 0) conn->polling = conn->events;
}

static void redis_uv_add_read(void *p)
{
    redis_uv_conn_t *conn = p;
    conn->events |= UV_READABLE;
    redis_uv_poll_update(conn);
}

static void redis_uv_del_read(void *p)
{
    redis_uv_conn_t *conn = p;
    conn->events &= ~UV_READABLE;
    redis_uv_poll_update(conn);
}

static void redis_uv_add_write(void *p)
{
    redis_uv_conn_t *conn = p;
    conn->events |= UV_WRITABLE;
    redis_uv_poll_update(conn);
}

static void redis_uv_del_write(void *p)
{
    redis_uv_conn_t *conn = p;
    conn->events &= ~UV_WRITABLE;
    redis_uv_poll_update(conn);
}

static void redis_uv_poll_closed(uv_handle_t *h)
{
    redis_uv_conn_t *conn = h->data;
    redis_uv_t *r = conn->r;
    free(conn);
    closer_closed(&r->closer);
}

/* hiredis is freeing the context (it closes the socket right after), with
 * every pending callback already answered. */
static void redis_uv_ev_cleanup(void *p)
{
    redis_uv_conn_t *conn = p;
    const redisContext *c = &conn->ac->c;
    redis_uv_detach(conn, conn->ready ? REDIS_UV_ERR_DISCONNECTED : REDIS_UV_ERR_CONNECT,
                    c->err ? c->errstr : "connection closed");
    conn->ac = NULL;
    uv_close((uv_handle_t *)&conn->poll, redis_uv_poll_closed);
}

static void redis_uv_poll_cb(uv_poll_t *h, int status, int events)
{
    redis_uv_conn_t *conn = h->data;
    if (!conn->ac) return;
    if (status < 0) {
        /* POLLERR (a refused connect, a reset): libuv has stopped the poll
         * and gives no events. Let hiredis look at the socket: before the
         * connect completes a write event makes it read SO_ERROR, after it
         * a read meets the error; either fails the connection with the
         * socket's own reason. Anything else, we fail it ourselves. */
        conn->polling = 0;
        if (conn->ac->c.flags & REDIS_CONNECTED) redisAsyncHandleRead(conn->ac);
        else redisAsyncHandleWrite(conn->ac);
        if (conn->ac) {
            char msg[REDIS_UV_ERRCAP];
            snprintf(msg, sizeof msg, "socket error: %s", uv_strerror(status));
            redis_uv_fail(conn, conn->ready ? REDIS_UV_ERR_DISCONNECTED : REDIS_UV_ERR_CONNECT, msg);
        }
        return;
    }
    if (events & UV_READABLE) redisAsyncHandleRead(conn->ac);
    if (conn->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(conn->ac);
}

/* ---- connecting ---- */

static void redis_uv_connect_failed(redis_uv_t *r, const char *msg)
{
    snprintf(r->last_err, sizeof r->last_err, "%s", msg);
    atomic_fetch_add(&r->st->connect_failures, 1);
    redis_uv_backoff(r);
}

static bool redis_uv_queue(redis_uv_conn_t *conn, redis_uv_cmd_t *cmd, int argc, const char **argv,
                           const size_t *argvlen)
{
    if (redisAsyncCommandArgv(conn->ac, redis_uv_on_reply, cmd, argc, argv, argvlen) != REDIS_OK) return false;
    redis_uv_push(&conn->sent, cmd);
    return true;
}

static bool redis_uv_handshake(redis_uv_conn_t *conn, const char *what, int argc, const char **argv)
{
    redis_uv_cmd_t *cmd = calloc(1, sizeof *cmd);
    if (!cmd) return false;
    cmd->handshake = what;
    if (!redis_uv_queue(conn, cmd, argc, argv, NULL)) {
        free(cmd);
        return false;
    }
    conn->handshake++;
    return true;
}

/* Starts a connection with AUTH and SELECT queued first; false (and
 * r->last_err) if it failed at once. */
static bool redis_uv_connect(redis_uv_t *r)
{
    atomic_fetch_add(&r->st->connects, 1);
    if (r->attempted) atomic_fetch_add(&r->st->reconnects, 1);
    r->attempted = true;
    redisAsyncContext *ac = redisAsyncConnect(r->cfg.host, r->cfg.port);
    if (!ac || ac->err) {
        char msg[REDIS_UV_ERRCAP];
        snprintf(msg, sizeof msg, "connect to %s:%d: %s", r->cfg.host, r->cfg.port, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        redis_uv_connect_failed(r, msg);
        return false;
    }
    redis_uv_conn_t *conn = calloc(1, sizeof *conn);
    if (!conn || uv_poll_init(r->loop, &conn->poll, ac->c.fd) != 0) {
        free(conn);
        redisAsyncFree(ac); /* no hooks yet: nothing calls back */
        redis_uv_connect_failed(r, "cannot watch the socket");
        return false;
    }
    conn->r = r;
    conn->ac = ac;
    conn->poll.data = conn;
    closer_add(&r->closer, 1);
    ac->data = conn;
    ac->ev.data = conn;
    ac->ev.addRead = redis_uv_add_read;
    ac->ev.delRead = redis_uv_del_read;
    ac->ev.addWrite = redis_uv_add_write;
    ac->ev.delWrite = redis_uv_del_write;
    ac->ev.cleanup = redis_uv_ev_cleanup;
    redisEnableKeepAlive(&ac->c);
    r->conn = conn;
    r->state = REDIS_UV_CONNECTING;
    conn->connect_deadline = uv_now(r->loop) + r->cfg.connect_timeout_ms;
    redisAsyncSetConnectCallback(ac, redis_uv_on_connect); /* waits for writable: needs the hooks */

    bool ok = true;
    if (r->cfg.password) {
        const char *argv[3] = {"AUTH", r->cfg.username ? r->cfg.username : r->cfg.password, r->cfg.password};
        ok = redis_uv_handshake(conn, "AUTH", r->cfg.username ? 3 : 2, argv);
    }
    if (ok && r->cfg.db > 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->cfg.db);
        const char *argv[2] = {"SELECT", db};
        ok = redis_uv_handshake(conn, "SELECT", 2, argv);
    }
    if (!ok) {
        redis_uv_fail(conn, REDIS_UV_ERR_CONNECT, "out of memory");
        return false;
    }
    uv_timer_start(&r->timer, redis_uv_timer_cb, r->cfg.connect_timeout_ms, 0);
    return true;
}

/* ---- the API ---- */

/* Commands after which replies no longer answer commands one for one. */
static bool redis_uv_refused(const char *name, size_t len)
{
    static const char *const modes[] = {"subscribe",   "psubscribe",   "ssubscribe", "unsubscribe",
                                        "punsubscribe", "sunsubscribe", "monitor"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strlen(modes[i]) == len && strncasecmp(name, modes[i], len) == 0) return true;
    return false;
}

redis_uv_t *redis_uv_new(uv_loop_t *loop, const redis_uv_config_t *cfg)
{
    redis_uv_config_t c = cfg ? *cfg : (redis_uv_config_t){0};
    if (!c.host || !*c.host) c.host = "127.0.0.1";
    if (!c.port) c.port = 6379;
    if (c.port < 0 || c.port > 65535 || c.db < 0) return NULL;
    if (c.password && !*c.password) c.password = NULL;
    if (!c.connect_timeout_ms) c.connect_timeout_ms = 1000;
    if (!c.command_timeout_ms) c.command_timeout_ms = 1000;
    if (!c.backoff_min_ms) c.backoff_min_ms = 100;
    if (!c.backoff_max_ms) c.backoff_max_ms = 5000;
    if (c.backoff_max_ms < c.backoff_min_ms) c.backoff_max_ms = c.backoff_min_ms;
    if (!c.max_pending) c.max_pending = 10000;

    redis_uv_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cfg = c;
    r->cfg.host = strdup(c.host);
    r->cfg.username = c.username ? strdup(c.username) : NULL;
    r->cfg.password = c.password ? strdup(c.password) : NULL;
    if (!r->cfg.host || (c.username && !r->cfg.username) || (c.password && !r->cfg.password)) {
        redis_uv_free(r);
        return NULL;
    }
    r->loop = loop;
    r->st = c.stats ? c.stats : &r->own_stats;
    backoff_init(&r->backoff, c.backoff_min_ms, c.backoff_max_ms);
    uv_timer_init(loop, &r->timer);
    uv_idle_init(loop, &r->idle);
    r->timer.data = r->idle.data = r;
    closer_add(&r->closer, 2); /* the timer and the idle handle */
    return r;
}

int redis_uv_command(redis_uv_t *r, int argc, const char **argv, const size_t *argvlen, redis_uv_reply_fn cb,
                     void *ctx)
{
    if (argc < 1 || !argv || !argv[0] || !cb) return UV_EINVAL;
    if (redis_uv_refused(argv[0], argvlen ? argvlen[0] : strlen(argv[0]))) return UV_EINVAL;
    if (r->torn_down) return UV_ESHUTDOWN;
    redis_uv_cmd_t *cmd = calloc(1, sizeof *cmd);
    if (!cmd) return UV_ENOMEM;
    cmd->cb = cb;
    cmd->ctx = ctx;
    cmd->issued = uv_now(r->loop);
    atomic_fetch_add(&r->st->commands, 1);
    atomic_fetch_add(&r->st->pending, 1);

    if (r->closing) {
        redis_uv_defer(r, cmd, REDIS_UV_ERR_SHUTDOWN);
        return 0;
    }
    if (!r->conn) {
        if (uv_now(r->loop) < r->retry_at) {
            redis_uv_defer(r, cmd, REDIS_UV_ERR_BACKOFF);
            return 0;
        }
        if (!redis_uv_connect(r)) {
            redis_uv_defer(r, cmd, REDIS_UV_ERR_CONNECT);
            return 0;
        }
    }
    redis_uv_conn_t *conn = r->conn;
    if (conn->npending >= r->cfg.max_pending) {
        redis_uv_defer(r, cmd, REDIS_UV_ERR_QUEUE);
        return 0;
    }
    if (!redis_uv_queue(conn, cmd, argc, argv, argvlen)) {
        redis_uv_defer(r, cmd, REDIS_UV_ERR_DISCONNECTED);
        return 0;
    }
    conn->npending++;
    if (conn->ready && !uv_is_active((uv_handle_t *)&r->timer)) redis_uv_arm(r, conn);
    return 0;
}

redis_uv_state_t redis_uv_state(const redis_uv_t *r)
{
    return r->state;
}

bool redis_uv_available(const redis_uv_t *r)
{
    return !r->closing && (r->conn || uv_now(r->loop) >= r->retry_at);
}

const char *redis_uv_last_error(const redis_uv_t *r)
{
    return r->last_err;
}

redis_uv_stats_t *redis_uv_stats(redis_uv_t *r)
{
    return r->st;
}

static void redis_uv_handle_closed(uv_handle_t *h)
{
    redis_uv_t *r = h->data;
    closer_closed(&r->closer);
}

/* Each turn: answers the commands that failed at once. Closing, it first
 * drops the connection (its commands fail with SHUTDOWN, and so do any the
 * callbacks issue), and closes our handles once nothing is left to answer. */
static void redis_uv_idle_cb(uv_idle_t *h)
{
    redis_uv_t *r = h->data;
    if (r->closing && r->conn) redis_uv_fail(r->conn, REDIS_UV_ERR_SHUTDOWN, "client closed");
    redis_uv_fifo_t batch = r->deferred; /* what callbacks add waits a turn: a retry loop cannot spin here */
    r->deferred = (redis_uv_fifo_t){0};
    redis_uv_cmd_t *cmd;
    while ((cmd = redis_uv_shift(&batch))) redis_uv_deliver_deferred(r, cmd);
    if (r->deferred.head || (r->closing && r->torn_down)) return;
    if (!r->closing) {
        uv_idle_stop(h);
        return;
    }
    r->torn_down = true;
    uv_close((uv_handle_t *)&r->timer, redis_uv_handle_closed);
    uv_close((uv_handle_t *)&r->idle, redis_uv_handle_closed);
}

void redis_uv_close(redis_uv_t *r, void (*done)(void *arg), void *arg)
{
    if (r->closing) return;
    r->closing = true;
    closer_finish(&r->closer, done, arg);
    uv_idle_start(&r->idle, redis_uv_idle_cb);
}

void redis_uv_free(redis_uv_t *r)
{
    if (!r) return;
    free((char *)r->cfg.host);
    free((char *)r->cfg.username);
    free((char *)r->cfg.password);
    free(r);
}
