/* route_read: GETs routed to a key's owners. At an owner: L1, then (right
 * after a ring change) the key's other and previous owners, then L2; at
 * any other node: forwarded to the owners in order. Concurrent GETs of one
 * key on one worker share one forward or one L2 read (coalescing).
 *
 * Both calls answer through `reply` exactly once (route_reply.h), now or
 * later on the worker's loop; the key is copied when needed.
 * Threads: the worker's loop only.
 */
#ifndef DCACHE_ROUTE_READ_H
#define DCACHE_ROUTE_READ_H

#include "node/route/route.h"
#include "node/route/route_reply.h"

/* A client's GET: served here when this node owns the key, else
 * forwarded. */
void route_read_get(route_worker_t *w, route_reply_t reply, const char *key, size_t klen);
/* A GET a peer forwarded here: served from this node (and, right after a
 * ring change or while syncing, the key's other and previous owners), never
 * forwarded to the owners. (A GET with PEER_F_LOCAL is route_serve's.) */
void route_read_serve(route_worker_t *w, route_reply_t reply, const char *key, size_t klen);

#endif
