/* redis_uv: an asynchronous Redis client on one libuv loop, the transport
 * under the L2 (DESIGN.md section 4). One connection, pipelined: commands go
 * out as they are issued and replies come back in order.
 *
 * Built on hiredis's async API with our own event adapter: the one Debian
 * ships (hiredis/adapters/libuv.h, 0.14) ignores uv_poll's error status, so
 * a refused connect fires neither the connect nor the disconnect callback
 * and the caller waits forever; and hiredis 0.14 has no timeouts at all.
 *
 * Failing, not hanging: every command's callback runs exactly once. A
 * connect (TCP and the AUTH/SELECT handshake) must finish within
 * connect_timeout_ms (else the connection is dropped). Once connected, a
 * command not answered within command_timeout_ms of being sent (of the
 * connection being ready, for commands queued while connecting) fails
 * alone with the timeout; its late reply, matched by order, is dropped when
 * it comes, so one slow command is not an outage for the others. Only when
 * the oldest command has waited five times command_timeout_ms is the
 * connection given up (counted in `timeouts`) and everything still in
 * flight failed. A command that failed with TIMEOUT or DISCONNECTED may or
 * may not have run on the server.
 *
 * Order: commands sent on one connection are answered in the order they
 * were issued; a command that fails at once (backoff, queue full,
 * shutdown) is answered on the loop's next turn, possibly before older
 * ones.
 *
 * Reconnecting: the next command after a failure connects again, but not
 * before a backoff (backoff_min_ms, doubling up to backoff_max_ms on each
 * failure in a row, reset by a successful connect). Meanwhile commands fail
 * at once with REDIS_UV_ERR_BACKOFF, so a dead Redis costs callers nothing
 * but an error. An idle connection the server closes is not a failure: the
 * next command reconnects at once.
 *
 * Bounds: at most max_pending commands in flight (queued while connecting
 * included); more fail at once with REDIS_UV_ERR_QUEUE. Output is therefore
 * bounded by max_pending times the callers' command size. Replies are not
 * bounded here (hiredis 0.14's reader has no limit): callers keep what they
 * store, hence what they read, bounded.
 *
 * Not for pub/sub: SUBSCRIBE, MONITOR and friends put the connection in a
 * mode where replies no longer match commands (hiredis 0.14 asserts on
 * that), so redis_uv_command refuses them.
 *
 * The process must ignore SIGPIPE (node/main.c does): hiredis 0.14 writes
 * with write(2), and a write to a dead server would otherwise kill it.
 * The host is resolved by hiredis with a blocking getaddrinfo on each
 * connect: give an IP address, or a name /etc/hosts answers.
 *
 * Threads: a client and every callback it makes belong to its loop's
 * thread. redis_uv_stats_t counters are atomic and may be read (or shared
 * by clients of several loops) from any thread.
 * Ownership: the creator owns the client: redis_uv_close, run the loop
 * until `done`, then redis_uv_free. The client copies the config's
 * strings and borrows its stats.
 */
#ifndef DCACHE_REDIS_UV_H
#define DCACHE_REDIS_UV_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "node/metrics/metrics.h"

typedef enum {
    REDIS_UV_OK = 0,              /* the server answered: reply is set (it may be an error reply) */
    REDIS_UV_ERR_CONNECT,         /* connect refused or failed, or the connection broke while connecting */
    REDIS_UV_ERR_CONNECT_TIMEOUT, /* TCP connect and handshake not done within connect_timeout_ms */
    REDIS_UV_ERR_HANDSHAKE,       /* the server refused AUTH or SELECT */
    REDIS_UV_ERR_TIMEOUT,         /* no reply within command_timeout_ms (this or an older command) */
    REDIS_UV_ERR_DISCONNECTED,    /* the connection broke with the command in flight */
    REDIS_UV_ERR_BACKOFF,         /* waiting to reconnect after a failure: not sent */
    REDIS_UV_ERR_QUEUE,           /* max_pending commands already in flight: not sent */
    REDIS_UV_ERR_SHUTDOWN,        /* the client is closing */
    REDIS_UV_RESULT_MAX
} redis_uv_result_t;

/* "ok", "connect", "connect_timeout", ... (for logs and metrics labels). */
const char *redis_uv_result_name(redis_uv_result_t r);

typedef enum {
    REDIS_UV_DISCONNECTED = 0,
    REDIS_UV_CONNECTING, /* TCP connect, then AUTH and SELECT */
    REDIS_UV_CONNECTED,
} redis_uv_state_t;

/* Counters, shared by every client given the same struct. */
typedef struct redis_uv_stats {
    atomic_uint_fast64_t commands;     /* accepted by redis_uv_command */
    atomic_uint_fast64_t replies;      /* answered by the server (REDIS_UV_OK) */
    atomic_uint_fast64_t reply_errors; /* of which error replies (-ERR ...) */
    atomic_uint_fast64_t errors[REDIS_UV_RESULT_MAX]; /* failed callbacks, by result */
    atomic_uint_fast64_t timeouts;     /* connections dropped because a command timed out */
    atomic_uint_fast64_t connects;     /* connection attempts */
    atomic_uint_fast64_t reconnects;   /* of which after an earlier connection or attempt */
    atomic_uint_fast64_t connect_failures; /* refused, failed, timed out or handshake refused */
    atomic_int_fast64_t pending;       /* accepted, callback not yet run */
    atomic_int_fast64_t connected;     /* clients whose connection is ready */
} redis_uv_stats_t;

/* redis_uv_stats_t's series in /metrics (under l2_). */
extern const metrics_table_t redis_uv_metrics_table;

typedef struct redis_uv_config {
    const char *host;            /* "127.0.0.1" */
    int port;                    /* 6379 */
    const char *username;        /* NULL: AUTH <password> (else AUTH <username> <password>) */
    const char *password;        /* NULL or "": no AUTH */
    int db;                      /* 0: no SELECT */
    uint64_t connect_timeout_ms; /* 1000 */
    uint64_t command_timeout_ms; /* 1000 */
    uint64_t backoff_min_ms;     /* 100 */
    uint64_t backoff_max_ms;     /* 5000 */
    unsigned max_pending;        /* 10000 */
    redis_uv_stats_t *stats;     /* borrowed; NULL: the client's own */
} redis_uv_config_t;

typedef struct redis_uv redis_uv_t;

/* The answer. For REDIS_UV_OK reply is the server's (REDIS_REPLY_ERROR for
 * an error reply) and err is NULL; otherwise reply is NULL and err says
 * what happened. Both are valid during the call only. The callback may
 * issue commands and call redis_uv_close, not redis_uv_free. */
typedef void (*redis_uv_reply_fn)(void *ctx, redis_uv_result_t res, const redisReply *reply, const char *err);

/* Zero fields of cfg (or a NULL cfg) take the defaults above. Does not
 * connect: the first command does. NULL on allocation failure or a bad
 * config (port outside 1..65535, negative db). */
redis_uv_t *redis_uv_new(uv_loop_t *loop, const redis_uv_config_t *cfg);

/* Sends one command (binary-safe: argvlen NULL means the arguments are C
 * strings), connecting first if needed. Returns 0 when accepted: cb then
 * runs exactly once, later, from the loop, never from inside this call,
 * even when the command fails at once (backoff, queue full, shutdown).
 * Otherwise cb will not run: UV_EINVAL (argc < 1, no argv or cb, a pub/sub
 * or MONITOR command), UV_ENOMEM, UV_ESHUTDOWN (after close has finished). */
int redis_uv_command(redis_uv_t *r, int argc, const char **argv, const size_t *argvlen, redis_uv_reply_fn cb,
                     void *ctx);

redis_uv_state_t redis_uv_state(const redis_uv_t *r);
/* False while a reconnect waits out its backoff (a command now fails at
 * once with REDIS_UV_ERR_BACKOFF) and once closing. */
bool redis_uv_available(const redis_uv_t *r);
/* Why the last connection failed ("" if none did yet); valid until the
 * next call on the client. */
const char *redis_uv_last_error(const redis_uv_t *r);
redis_uv_stats_t *redis_uv_stats(redis_uv_t *r);

/* Fails every pending command with REDIS_UV_ERR_SHUTDOWN (from the loop,
 * not from inside this call), drops the connection, closes the client's
 * handles and then calls done(arg) once. Idempotent. */
void redis_uv_close(redis_uv_t *r, void (*done)(void *arg), void *arg);
/* After done. */
void redis_uv_free(redis_uv_t *r);

#endif
