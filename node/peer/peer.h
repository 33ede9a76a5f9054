/* peer: the client side of the peer channel on one libuv loop: one pipelined
 * connection per peer (DESIGN.md section 6), request ids, a connect and a
 * request timeout, reconnection with exponential backoff, and a circuit
 * breaker per peer.
 *
 * Each loop that talks to peers (every HTTP worker) has its own pool, so a
 * forwarded request never crosses threads.
 *
 * Failing fast: while a peer's breaker is open (breaker_failures consecutive
 * failures: timeouts, refused connects, dropped connections) or while a
 * reconnect waits out its backoff, requests to it fail at once, so the
 * caller moves on to the next owner instead of waiting out a timeout per
 * request. After breaker_open_ms one request goes through (half-open); its
 * success closes the breaker, its failure opens it again.
 *
 * Bounds: at most max_peers peers (an idle one is forgotten to make room)
 * and max_pending requests in flight per peer; the connection's output
 * queue is bounded by its config (peer_conn.h).
 *
 * Threads: a pool and everything it calls back run on its loop's thread.
 * Ownership: the creator owns the pool (peer_pool_close, then peer_pool_free
 * after `done`). The pool owns its connections and pending requests; it
 * borrows the keyring and stats in the config.
 */
#ifndef DCACHE_PEER_H
#define DCACHE_PEER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/peer_proto.h"
#include "node/peer/peer_conn.h"

typedef enum {
    PEER_OK = 0,
    PEER_ERR_TIMEOUT,     /* no answer within the request timeout */
    PEER_ERR_CONNECT,     /* connect refused, failed or timed out */
    PEER_ERR_CLOSED,      /* the connection closed with the request in flight */
    PEER_ERR_BREAKER,     /* the breaker is open: not tried */
    PEER_ERR_BACKOFF,     /* waiting to reconnect: not tried */
    PEER_ERR_QUEUE,       /* too many requests in flight, or output queue full */
    PEER_ERR_REMOTE,      /* the peer answered with an ERROR frame (resp holds it) */
    PEER_ERR_SHUTDOWN,    /* the pool is closing */
    PEER_ERR_INVALID,     /* the message cannot be encoded */
} peer_result_t;

const char *peer_result_name(peer_result_t r);

/* The answer: resp is set for PEER_OK (any response type) and
 * PEER_ERR_REMOTE (the ERROR frame), NULL otherwise; valid during the call
 * only. */
typedef void (*peer_reply_fn)(void *ctx, peer_result_t res, const peer_msg_t *resp);

typedef struct peer_pool_config {
    peer_conn_config_t conn;
    uint64_t connect_timeout_ms;  /* 500 */
    uint64_t request_timeout_ms;  /* 1000 */
    unsigned breaker_failures;    /* 5 */
    uint64_t breaker_open_ms;     /* 2000 */
    uint64_t backoff_min_ms;      /* 50 */
    uint64_t backoff_max_ms;      /* 5000 */
    unsigned max_pending;         /* 4096 per peer */
    unsigned max_peers;           /* 1024 */
    /* Called (at most every 50 ms per peer) when a peer answers: contact
     * evidence for whoever needs to know this node is not cut off. May be
     * NULL; runs on the pool's loop. */
    void (*heard)(void *ctx, const char *name, uint64_t now_ms);
    void *heard_ctx;
} peer_pool_config_t;

typedef struct peer_pool peer_pool_t;

/* Zero fields of cfg take the defaults above. NULL on allocation failure. */
peer_pool_t *peer_pool_new(uv_loop_t *loop, const peer_pool_config_t *cfg);
/* Sends req (its id is assigned here) to the peer called `name` at `addr`
 * (IPv4 or IPv6; a changed address replaces the connection). timeout_ms 0 =
 * the pool's request timeout. Returns PEER_OK when the request is in flight:
 * cb then runs exactly once, later, from the loop. Any other result means
 * nothing was sent and cb will not run. */
peer_result_t peer_pool_request(peer_pool_t *p, const char *name, const struct sockaddr *addr, const peer_msg_t *req,
                                uint64_t timeout_ms, peer_reply_fn cb, void *ctx);
/* False while the peer's breaker is open or a reconnect waits: a request
 * now would fail fast. Unknown peers are available. */
bool peer_pool_available(peer_pool_t *p, const char *name);
/* The peer is back (a new run of it, or alive again after suspicion):
 * its breaker closes and its reconnect backoff ends, so the next request
 * tries it at once instead of failing fast on what the process that is
 * gone did. Unknown peers: nothing to do. */
void peer_pool_forgive(peer_pool_t *p, const char *name);
/* Fails every pending request with PEER_ERR_SHUTDOWN, closes every
 * connection and calls done once all handles are closed. */
void peer_pool_close(peer_pool_t *p, void (*done)(void *arg), void *arg);
void peer_pool_free(peer_pool_t *p);

#endif
