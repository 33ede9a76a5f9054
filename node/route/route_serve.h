/* route_serve: answering the peer channel, what other nodes ask of this
 * one. A request marked PEER_F_FORWARDED is answered from this node's own
 * state, never forwarded again; a write marked PEER_F_REPLICA comes from a
 * primary and only stores (newest version wins). Answers go out through
 * route_reply (route_reply.h) implemented over the peer call, so the
 * routing code never sees the transport.
 *
 * Threads: the worker's loop that received the call.
 */
#ifndef DCACHE_ROUTE_SERVE_H
#define DCACHE_ROUTE_SERVE_H

#include "node/route/route.h"

/* The peer server's serve callback (peer_serve_fn); ctx is the worker's
 * route_worker_t. */
void route_serve(peer_call_t *call, const peer_msg_t *req, void *ctx);

#endif
