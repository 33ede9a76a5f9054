/* route_quorum: whether this node is in touch with a majority of the
 * cluster now, asked of the members themselves. A write may leave out an
 * owner that is down only then: from the small side of a partition the
 * owners across the cut look just as down while they live on over there,
 * serving what the write replaced, and the write would be acknowledged on
 * one side only. Contact heard before the write began proves nothing about
 * now (the cut may have come since, and a breaker it opened fails requests
 * at once), so the members are asked with a SYNC; what they answer after
 * the write began counts. Writes that ask in the same loop turn share one
 * round of asking. */
#ifndef DCACHE_NODE_ROUTE_ROUTE_QUORUM_H
#define DCACHE_NODE_ROUTE_ROUTE_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#include "node/route/route.h"

typedef void (*route_quorum_fn)(void *ctx, bool majority);

/* One caller's place in a round: owned by the caller (embedded in what it
 * waits for), untouched by route_quorum once `done` was called. */
typedef struct route_quorum_wait {
    struct route_quorum_wait *next;
    route_quorum_fn done;
    void *ctx;
} route_quorum_wait_t;

/* Calls done(ctx, majority) once it is known whether the members that
 * answered this node at or after since_ms (a uv_now of w's loop), this node
 * included, are a majority of the cluster (route_cluster_size): maybe
 * before this returns, when the evidence is already there, else once
 * enough SYNCs are answered, or all of them are answered or failed (within
 * --peer-timeout). The answer is "no majority" when the round of asking
 * cannot be made. */
void route_quorum_confirm(route_worker_t *w, uint64_t since_ms, route_quorum_wait_t *wait, route_quorum_fn done,
                          void *ctx);

#endif
