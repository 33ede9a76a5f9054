/* peer_conn: one TCP stream of the peer channel, either side: reads frames
 * (cluster/peer_proto.h), opens and decodes them and hands each message to
 * its owner; encodes, seals and writes messages, batching frames queued
 * while a write is in flight into the next write.
 *
 * With a cluster key, a connection opens with a handshake (cluster/peer_hs.h):
 * the client, which sent the preamble, writes HELLO at start; the server
 * answers REPLY, the client CONFIRM, and frames then travel in the session's
 * streams: [length u32][secretstream(body)]. Nothing else is accepted before
 * the session (a sealed frame from a node without the handshake fails at its
 * first byte), so a frame recorded off the wire is useless on this or any
 * other connection. Messages sent before the session wait in order and go
 * out once it is there. Without a key: CRC-sealed frames, no handshake.
 *
 * A frame that is too big, does not open (wrong key, forged, replayed,
 * corrupt) or does not decode closes the connection: the stream cannot be
 * trusted past it. Each such close is counted by reason in peer_stats_t.
 *
 * Bounds: input is at most one frame (PEER_LEN_PREFIX + max_frame bytes);
 * queued output is bounded by max_queued: peer_conn_send refuses beyond it
 * (the caller fails the request), so a stalled peer cannot grow memory.
 *
 * Threads: a connection belongs to the loop that created it; every call on
 * that loop's thread. peer_stats_t counters are atomic (shared by loops).
 * Ownership: the creator (peer pool or peer server) owns the connection
 * until it calls peer_conn_close; on_close then runs once, and the memory is
 * freed after it returns, once libuv has closed the handle.
 */
#ifndef DCACHE_PEER_CONN_H
#define DCACHE_PEER_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "cluster/peer_proto.h"
#include "cluster/seal.h"
#include "node/metrics/metrics.h"

/* Why a connection was closed for what it sent. */
typedef enum {
    PEER_DROP_TOO_BIG = 0,   /* a length prefix over max_frame */
    PEER_DROP_TOO_SMALL,     /* a length prefix under PEER_FRAME_MIN */
    PEER_DROP_AUTH,          /* did not open with our keyring (wrong key, forged, plain when keyed) */
    PEER_DROP_CHECKSUM,      /* plain frame with a bad CRC */
    PEER_DROP_MALFORMED,     /* opened but did not decode */
    PEER_DROP_UNEXPECTED,    /* a response nobody asked for, or a request on a client link */
    PEER_DROP_MAX
} peer_drop_t;

/* Counters shared by every peer connection of the process. */
typedef struct peer_stats {
    atomic_uint_fast64_t frames_in, frames_out, bytes_in, bytes_out;
    atomic_uint_fast64_t drops[PEER_DROP_MAX];
    atomic_uint_fast64_t send_refused;        /* output queue over max_queued */
    /* With a cluster key: handshakes completed, failed (dropped as auth),
     * and completed with an older key of the keyring (a rotation under way). */
    atomic_uint_fast64_t handshakes_ok, handshakes_failed, handshakes_old_key;
    /* Client side (node/peer.h). */
    atomic_uint_fast64_t requests[PEER_MSG_MAX + 1]; /* sent, by message type */
    atomic_uint_fast64_t failures_timeout, failures_connect, failures_closed, failures_breaker,
        failures_backoff, failures_queue;
    atomic_uint_fast64_t connects, connect_failures, breaker_opens;
    atomic_int_fast64_t connections_out, breakers_open, pending;
    /* Server side (node/peer_server.h). */
    atomic_uint_fast64_t served[PEER_MSG_MAX + 1];   /* received requests, by message type */
    atomic_int_fast64_t connections_in;
} peer_stats_t;

const char *peer_drop_name(peer_drop_t d);

/* peer_stats_t's series in /metrics. */
extern const metrics_table_t peer_metrics_table;

typedef struct peer_conn peer_conn_t;

typedef struct peer_conn_ops {
    /* A decoded message; m and what it points to are valid during the call
     * only. The callee may call peer_conn_send and peer_conn_close. */
    void (*on_msg)(peer_conn_t *c, const peer_msg_t *m, void *ctx);
    /* The connection closed: err is 0 (closed by its owner), a uv error, or
     * UV_EPROTO after a drop. Runs once; the connection is gone after it. */
    void (*on_close)(peer_conn_t *c, int err, void *ctx);
} peer_conn_ops_t;

typedef struct peer_conn_config {
    const seal_keyring_t *keyring;  /* borrowed; outlives every connection */
    size_t max_frame;               /* 0 = PEER_FRAME_MAX_DEFAULT */
    size_t max_queued;              /* output bytes; 0 = 64 MiB */
    peer_stats_t *stats;            /* borrowed */
} peer_conn_config_t;

/* A connection with its uv_tcp_t initialised on loop (not yet connected or
 * accepted). NULL on allocation failure. The config is copied. */
peer_conn_t *peer_conn_new(uv_loop_t *loop, const peer_conn_config_t *cfg, const peer_conn_ops_t *ops, void *ctx);
uv_tcp_t *peer_conn_tcp(peer_conn_t *c);
/* Starts reading (after accept or a successful connect). */
int peer_conn_start(peer_conn_t *c);
/* The same for a connection whose first bytes someone else already read
 * off the socket (the cluster port's listener, which hands the peer
 * channel's connections over): they are processed first. */
int peer_conn_start_with(peer_conn_t *c, const uint8_t *data, size_t len);
/* Client side, before peer_conn_start: the stream starts with
 * PEER_STREAM_PREAMBLE, written at start even with no frame queued, so the
 * cluster port can tell the connection from gossip's at once. */
void peer_conn_send_preamble(peer_conn_t *c);
/* Server side: a PEER_STREAM_PREAMBLE at the start of the stream is
 * skipped; a stream without one is read as well (older clients). */
void peer_conn_accept_preamble(peer_conn_t *c);
/* Queues one message (before peer_conn_start too: it is written once the
 * connection starts). Returns 0, UV_ENOBUFS when the queue is over
 * max_queued, UV_EINVAL when it cannot be encoded, UV_ENOTCONN after close. */
int peer_conn_send(peer_conn_t *c, const peer_msg_t *m);
/* Closes (idempotent); on_close(err) follows from the loop. */
void peer_conn_close(peer_conn_t *c, int err);
/* Closes with a reset: what is queued, or sent and not yet acknowledged by
 * the other side's kernel, is dropped instead of delivered later (a request
 * given up on must not be carried out after a partition heals). */
void peer_conn_abort(peer_conn_t *c, int err);
bool peer_conn_closing(const peer_conn_t *c);
/* A connection still in its handshake limit_ms after it was created is
 * closed (a failed handshake, dropped as auth): true when it was. Its owner
 * sweeps with this, so a connection opened and left silent does not hold a
 * slot. */
bool peer_conn_handshake_overdue(peer_conn_t *c, uint64_t now_ms, uint64_t limit_ms);
void *peer_conn_ctx(const peer_conn_t *c);
void peer_conn_set_ctx(peer_conn_t *c, void *ctx);

#endif
