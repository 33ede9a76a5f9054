/* route_reply: how the data path answers whoever asked, without knowing
 * the transport. The HTTP API (node/api/api_http.c) and the peer channel
 * (node/route/route_serve.c) each implement route_reply_ops_t; routing
 * code holds a route_reply_t {ops, ctx} and calls exactly one of the
 * operations, exactly once, on the loop thread that started the request,
 * either before the routing call returns or later. The reply context
 * (an HTTP request, a peer call) is invalid afterwards.
 *
 * Values are borrowed: an operation copies what it keeps, except a value's
 * body, which it may hold until it calls release(release_ctx) (exactly
 * once, also when it does not use the body).
 */
#ifndef DCACHE_ROUTE_REPLY_H
#define DCACHE_ROUTE_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a value came from, wherever it was served: some node's L1, Redis,
 * the key's origin just now (read-through), or, the origin failing, a
 * copy past its TTL inside the origin's stale_if_error window. */
typedef enum { ROUTE_SRC_L1 = 0, ROUTE_SRC_L2 = 1, ROUTE_SRC_ORIGIN = 2, ROUTE_SRC_STALE = 3 } route_source_t;

typedef struct route_value {
    const void *value;
    size_t len;
    const char *ct;              /* content type; ctlen 0 = none */
    size_t ctlen;
    uint64_t version;
    int64_t ttl_ms;              /* remaining; 0 = never expires */
    const char *node;            /* who answered */
    const char *owner;           /* the key's primary */
    route_source_t source;
} route_value_t;

/* A write done: PUT (stored) or DELETE (deleted). */
typedef struct route_written {
    const void *key;
    size_t klen;
    uint64_t version;
    int64_t ttl_ms;              /* PUT: as stored; 0 = never expires */
    bool created;                /* PUT: the key was not there before */
    bool existed;                /* DELETE: some owner held the key */
    bool journaled;              /* in a journal, not yet in Redis */
    const char *node;            /* who coordinated the write */
    const char *owner;           /* the key's primary */
} route_written_t;

/* Why a request could not be served; each is its own cause in the metrics. */
typedef enum {
    ROUTE_ERR_NO_MEMORY = 0,
    ROUTE_ERR_OWNER_UNAVAILABLE,   /* no owner of the key answered */
    ROUTE_ERR_L2_UNAVAILABLE,      /* Redis was needed and is down */
    ROUTE_ERR_NOT_REPLICATED,      /* fewer owners than --write-acks stored the write */
    ROUTE_ERR_TOO_LARGE,           /* the value is larger than an owner can hold */
    ROUTE_ERR_SYNCING,             /* this node is syncing and no other owner could say */
    ROUTE_ERR_MINORITY,            /* this node sees less than half of the cluster */
    ROUTE_ERR_DRAINING,            /* this node is leaving the cluster */
    ROUTE_ERR_JOURNAL_PENDING,     /* a newer write of the key waits in an owner's journal for Redis */
    ROUTE_ERR_CLOCK_SKEW,          /* this node's clock is apart from the cluster's (or not compared yet) */
    ROUTE_ERR_ORIGIN,              /* the key's origin failed (and no stale copy may stand in) */
    ROUTE_ERR_COUNT
} route_error_t;

typedef struct route_reply_ops {
    void (*value)(void *ctx, const route_value_t *v, void (*release)(void *), void *release_ctx);
    void (*miss)(void *ctx, const char *node, const char *owner);
    void (*stored)(void *ctx, const route_written_t *w);
    void (*deleted)(void *ctx, const route_written_t *w);
    void (*fail)(void *ctx, route_error_t err, const char *message);
} route_reply_ops_t;

typedef struct route_reply {
    const route_reply_ops_t *ops;
    void *ctx;
} route_reply_t;

#endif
