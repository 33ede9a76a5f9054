/* route_write: PUT and DELETE routed to a key's primary, which stamps the
 * version, writes Redis first (sync or journal mode), stores, replicates to
 * the other owners and answers once --write-acks of them have it. A node
 * that is not the primary forwards to the owners in order; when every
 * owner before it failed, it acts as the primary itself.
 *
 * The routing calls answer through `reply` exactly once (route_reply.h),
 * now or later on the worker's loop. args' key is copied; its value and
 * content type must stay valid until the reply is made (an HTTP request's
 * body is), except in the coordinate_* calls, which copy what they keep
 * before returning (a peer's request is valid during its call only).
 * Threads: the worker's loop only, but for the replica_* calls, which any
 * thread may make.
 */
#ifndef DCACHE_ROUTE_WRITE_H
#define DCACHE_ROUTE_WRITE_H

#include "node/route/route.h"
#include "node/route/route_reply.h"

/* A client's write: coordinated here when this node is the primary (or
 * there is no ring), else forwarded. args->version is ignored: the
 * primary stamps it. */
void route_write_put(route_worker_t *w, route_reply_t reply, const store_put_args_t *args);
void route_write_delete(route_worker_t *w, route_reply_t reply, const char *key, size_t klen);

/* A write forwarded here by a peer: coordinated here as the primary (or the
 * acting one), never forwarded again. */
/* rid: the client request a forwarded write carries out (PEER_ID_LEN
 * bytes), or NULL. A rid this node already carried out, as primary or as a
 * replica (route_dedupe.h), is answered with what it got, not stamped
 * again. */
void route_write_coordinate_put(route_worker_t *w, route_reply_t reply, const store_put_args_t *args,
                                const uint8_t *rid);
void route_write_coordinate_delete(route_worker_t *w, route_reply_t reply, const char *key, size_t klen,
                                   const uint8_t *rid);
/* A replica write of a forwarded request: what it got, for retries of it. */
void route_write_note_rid(route_t *rt, const uint8_t *rid, uint64_t version, bool flag);

/* A primary's write reaching this replica: kept if newer than what is here
 * and not older than a delete seen since (STORE_STALE then); refused with
 * STORE_BAD_KEY when its version is more than --max-clock-drift ahead of
 * this node's clock. *created: the key was not here before. */
store_status_t route_write_replica_put(route_t *rt, const store_put_args_t *args, bool *created);
/* A primary's delete reaching this replica: removes an older copy, leaves
 * a tombstone; true when a copy was removed. */
bool route_write_replica_delete(route_t *rt, const void *key, size_t klen, uint64_t version);

#endif
