/* pg_uv: an asynchronous PostgreSQL client on one libuv loop. One
 * connection, one statement in flight at a time (libpq without pipeline
 * mode); queries wait in a queue and go out in the order they were issued.
 * LISTEN channels are kept across reconnects and their notifications
 * delivered as they arrive.
 *
 * Built on libpq in non-blocking mode, driven by a uv_poll_t on its socket
 * (PQconnectStart / PQconnectPoll, PQsendQueryParams, PQflush,
 * PQconsumeInput, PQisBusy, PQgetResult, PQnotifies). No blocking libpq
 * call runs on the loop: not PQconnectdb, PQexec, PQgetResult while busy,
 * nor PQcancel (which blocks on a connection of its own), so a statement
 * that takes too long is abandoned by closing its connection.
 *
 * Hosts: libpq resolves a host name with a blocking getaddrinfo inside
 * PQconnectStart. So every host of the conninfo (and of $PGHOST, which
 * libpq falls back to) must be a numeric IP address or a Unix-socket
 * directory, unless hostaddr gives the addresses; pg_uv_new refuses the
 * others. libpq may still read small local files while connecting
 * (~/.pgpass, the service file, a Kerberos credential cache when
 * gssencmode is not disable): no network round trip. Hosts named by a
 * service file are not checked: do not use one with names in it.
 * libpq's own connect_timeout only bounds its blocking connect, which is
 * never used here: connect_timeout_ms is what holds.
 *
 * Failing, not hanging: every query's callback runs exactly once. A
 * connection (TCP, startup and authentication, then the LISTENs) must be
 * ready within connect_timeout_ms, else it is dropped and every query
 * waiting for it fails with CONNECT_TIMEOUT. A query's clock starts when
 * it is issued on a ready connection (when the connection becomes ready,
 * for one issued while connecting), and it must be answered within
 * query_timeout_ms of that: so every callback runs within
 * connect_timeout_ms + query_timeout_ms of the call. A statement in flight
 * past its deadline fails with TIMEOUT and its connection is dropped
 * (libpq cannot skip one result); the queries queued behind it were not
 * sent, and go out on the next connection, opened at once, with their
 * clocks still running: one that runs out while waiting fails with TIMEOUT
 * without having been sent. A query that failed with TIMEOUT or
 * DISCONNECTED may or may not have run on the server; one that failed
 * with anything else was not sent.
 *
 * Server errors are answers: a statement the server refused (syntax,
 * constraint, permission...) is PG_UV_OK with a PGresult whose
 * PQresultStatus is PGRES_FATAL_ERROR (counted in server_errors); the
 * caller looks at the status. Only the statement's last PGresult is
 * handed over. One statement per query (the extended protocol refuses
 * several); COPY is not supported: it drops the connection and fails the
 * query with DISCONNECTED.
 *
 * Order: callbacks of queries that reached the server run in the order the
 * queries were issued; a query that fails without being sent (backoff,
 * queue full, shutdown, timed out in the queue) is answered on the loop's
 * next turn, possibly before older ones.
 *
 * Reconnecting: a failed connect (refused, timed out, a LISTEN refused)
 * makes the next attempt wait (backoff_min_ms, doubling up to
 * backoff_max_ms on each failure in a row, reset by a ready connection);
 * meanwhile queries fail at once with PG_UV_ERR_BACKOFF. Losing a ready
 * connection is not a connect failure: the client connects again at once
 * if queries are queued or a channel is listened to, else at the next
 * query. While listening, the client stays connected by itself, retrying
 * with the backoff, and tells each listener's on_reconnect once its
 * LISTEN is in effect again on a new connection: notifications sent
 * meanwhile were lost, and the caller must act as if it had missed some.
 *
 * Bounds: at most max_pending queries waiting or in flight; more fail at
 * once with PG_UV_ERR_QUEUE. At most PG_UV_MAX_LISTENERS listeners, kept
 * until close. Notifications are not queued: each is delivered when read.
 * Results are not bounded here (libpq reads a whole result into memory):
 * callers keep what their statements return bounded (LIMIT).
 *
 * Nothing is printed: server notices (NOTICE, WARNING) are dropped instead
 * of going to libpq's default printer on stderr. libpq sends with
 * MSG_NOSIGNAL, so a dead server raises no SIGPIPE.
 *
 * Threads: a client and every callback it makes belong to its loop's
 * thread. pg_uv_stats_t counters are atomic and may be read (or shared by
 * clients of several loops) from any thread.
 * Ownership: the creator owns the client: pg_uv_close, run the loop until
 * `done`, then pg_uv_free. The client copies the conninfo, the SQL and
 * the parameters of each query (freed once the query is answered) and the
 * channel names, and borrows the config's stats. The client owns its
 * PGconn and every PGresult and PGnotify: the callbacks only borrow them.
 */
#ifndef DCACHE_PG_UV_H
#define DCACHE_PG_UV_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "node/metrics/metrics.h"

/* Channels one client listens to, at most. */
#define PG_UV_MAX_LISTENERS 32

typedef enum {
    PG_UV_OK = 0,              /* the server answered: the PGresult is set (it may be PGRES_FATAL_ERROR) */
    PG_UV_ERR_CONNECT,         /* connect refused or failed, or a LISTEN refused while connecting */
    PG_UV_ERR_CONNECT_TIMEOUT, /* the connection not ready within connect_timeout_ms */
    PG_UV_ERR_TIMEOUT,         /* not answered within query_timeout_ms */
    PG_UV_ERR_DISCONNECTED,    /* the connection broke with the statement in flight */
    PG_UV_ERR_BACKOFF,         /* waiting to reconnect after a failed connect: not sent */
    PG_UV_ERR_QUEUE,           /* max_pending queries already waiting: not sent */
    PG_UV_ERR_SHUTDOWN,        /* the client is closing */
    PG_UV_RESULT_MAX
} pg_uv_result_t;

/* "ok", "connect", "connect_timeout", ... (for logs and metrics labels). */
const char *pg_uv_result_name(pg_uv_result_t r);

typedef enum {
    PG_UV_DISCONNECTED = 0,
    PG_UV_CONNECTING, /* TCP, startup and authentication, then the LISTENs */
    PG_UV_CONNECTED,
} pg_uv_state_t;

/* Counters, shared by every client given the same struct. */
typedef struct pg_uv_stats {
    atomic_uint_fast64_t queries;       /* accepted by pg_uv_query */
    atomic_uint_fast64_t results;       /* answered by the server (PG_UV_OK) */
    atomic_uint_fast64_t server_errors; /* of which PGRES_FATAL_ERROR */
    atomic_uint_fast64_t errors[PG_UV_RESULT_MAX]; /* failed callbacks, by result */
    atomic_uint_fast64_t timeouts;      /* connections dropped because a statement timed out */
    atomic_uint_fast64_t connects;      /* connection attempts */
    atomic_uint_fast64_t connect_failures; /* refused, failed, timed out or a LISTEN refused */
    atomic_uint_fast64_t notifications; /* notifications received */
    atomic_int_fast64_t pending;        /* accepted, callback not yet run */
    atomic_int_fast64_t connected;      /* clients whose connection is ready */
} pg_uv_stats_t;

/* pg_uv_stats_t's series in /metrics (under pg_). */
extern const metrics_table_t pg_uv_metrics_table;

typedef struct pg_uv_config {
    const char *conninfo;        /* "postgres://user:pass@127.0.0.1:5432/db" or "host=... dbname=..."; required */
    uint64_t connect_timeout_ms; /* 5000 */
    uint64_t query_timeout_ms;   /* 5000 */
    uint64_t backoff_min_ms;     /* 200 */
    uint64_t backoff_max_ms;     /* 10000 */
    unsigned max_pending;        /* 1000 */
    pg_uv_stats_t *stats;        /* borrowed; NULL: the client's own */
} pg_uv_config_t;

typedef struct pg_uv pg_uv_t;

/* The answer. For PG_UV_OK r is the statement's last result and err is
 * NULL; otherwise r is NULL and err says what happened. Both are valid
 * during the call only (the client PQclears r after it). The callback may
 * issue queries and call pg_uv_close, not pg_uv_free. */
typedef void (*pg_uv_result_fn)(void *ctx, pg_uv_result_t res, const PGresult *r, const char *err);

/* A notification on a channel listened to: its channel, payload ("" if
 * none) and the PID of the server process that sent it. Valid during the
 * call only. May issue queries and call pg_uv_close, not pg_uv_free. */
typedef void (*pg_uv_notify_fn)(void *ctx, const char *channel, const char *payload, int be_pid);

/* The listener's LISTEN is in effect again on a new connection after the
 * one it was in effect on was lost: notifications may have been missed. */
typedef void (*pg_uv_reconnect_fn)(void *ctx);

/* Zero fields of cfg take the defaults above. Does not connect: the first
 * query or pg_uv_listen does. NULL on allocation failure or a bad
 * conninfo (one PQconninfoParse refuses, or a host that is neither a
 * numeric address nor a socket directory, without hostaddr). */
pg_uv_t *pg_uv_new(uv_loop_t *loop, const pg_uv_config_t *cfg);

/* Runs one statement, with nparams text parameters ($1..; a NULL value is
 * SQL NULL; their types inferred by the server) and text results,
 * connecting first if needed. Returns 0 when accepted: cb then runs
 * exactly once, later, from the loop, never from inside this call, even
 * when the query fails at once (backoff, queue full, shutdown). Otherwise
 * cb will not run: UV_EINVAL (no sql or cb, nparams outside 0..65535,
 * values NULL with nparams > 0), UV_ENOMEM, UV_ESHUTDOWN (after close has
 * finished). */
int pg_uv_query(pg_uv_t *c, const char *sql, int nparams, const char *const *values, pg_uv_result_fn cb, void *ctx);

/* LISTENs to channel, an identifier matched exactly
 * ([A-Za-z_][A-Za-z0-9_]{0,62}, case kept: the name pg_notify() takes, or
 * a quoted one in NOTIFY), on this and every later connection, before any
 * query goes out on it; connects now if not connected (or once the backoff
 * allows) and stays connected. on_notify runs for each notification on the
 * channel, on_reconnect (may be NULL) as described above; both get ctx.
 * Until close. 0, or UV_EINVAL (bad channel, no on_notify), UV_ENOSPC
 * (PG_UV_MAX_LISTENERS already), UV_ENOMEM, UV_ESHUTDOWN (closing). */
int pg_uv_listen(pg_uv_t *c, const char *channel, pg_uv_notify_fn on_notify, pg_uv_reconnect_fn on_reconnect,
                 void *ctx);

pg_uv_state_t pg_uv_state(const pg_uv_t *c);
/* False while a reconnect waits out its backoff (a query now fails at once
 * with PG_UV_ERR_BACKOFF) and once closing. */
bool pg_uv_available(const pg_uv_t *c);
/* Why the last connection failed or was lost ("" if none did yet); valid
 * until the next call on the client. */
const char *pg_uv_last_error(const pg_uv_t *c);
pg_uv_stats_t *pg_uv_stats(pg_uv_t *c);

/* Fails every pending query with PG_UV_ERR_SHUTDOWN (from the loop, not
 * from inside this call), stops the notifications, drops the connection,
 * closes the client's handles and then calls done(arg) once. Idempotent. */
void pg_uv_close(pg_uv_t *c, void (*done)(void *arg), void *arg);
/* After done. */
void pg_uv_free(pg_uv_t *c);

#endif
