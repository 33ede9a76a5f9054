/* api_inbound: invalidations announced from outside the cache, by
 * PostgreSQL NOTIFY (--invalidate-listen CHANNEL; for example from a
 * trigger on the application's table).
 *
 * A payload is {"keys":[...]} or {"pattern":"users:*"}, optionally with
 * "id" (at most 47 bytes): keys and patterns as POST /api/invalidate and
 * /api/invalidate/pattern take them.
 *
 * Every node listens (they run with the same flags), so every node hears
 * every event. Its effect must be one cluster invalidation, so:
 *   - the event's id is its "id", else a hash of the source, channel and
 *     payload;
 *   - the node that is the ring's primary owner of "event:<id>" carries it
 *     out as if a client had asked it: a versioned invalidation on every
 *     member and in Redis, one audit record (actor "pg:CHANNEL"), one
 *     event on /api/events;
 *   - every other node that hears it invalidates its own L1 at once
 *     (versioned, with tombstones, no messages), which is what the
 *     primary's invalidation does there anyway: if that node misses the
 *     event, the L1 copies still go.
 * An event heard twice is carried out twice (an invalidation is
 * idempotent): a repeat cannot be told from a new event with the same
 * payload, and dropping the new one would leave a stale value.
 *
 * A gap: a node whose connection to the source was lost cannot know what
 * it missed. When it is listening again it drops its whole L1 (as
 * Hazelcast's near cache is cleared on re-registration), counted and
 * logged: a cache miss costs a read of the origin, a stale value costs
 * correctness. What it missed as the designated node (Redis's copy) is not
 * recovered: see README, Events.
 *
 * Threads: the main loop. Ownership: main owns it; it owns its route
 * worker (a peer pool and a Redis client on the main loop, for the
 * scatter) and its PostgreSQL listener.
 */
#ifndef DCACHE_API_INBOUND_H
#define DCACHE_API_INBOUND_H

#include <stdatomic.h>
#include <uv.h>

#include "node/api/api.h"
#include "node/metrics/metrics.h"

extern const metrics_table_t api_inbound_metrics_table;

typedef struct api_inbound api_inbound_t;

/* NULL with err empty when nothing is configured; NULL with err set when
 * the configuration cannot work. Non-NULL with err set: out of memory
 * after its handles were made (close and free it, then stop). */
api_inbound_t *api_inbound_new(uv_loop_t *loop, api_t *a, char *err, size_t errcap);
void api_inbound_close(api_inbound_t *in, void (*done)(void *arg), void *arg);
void api_inbound_free(api_inbound_t *in);
/* One event (what the listener calls; tests too). */
void api_inbound_event(api_inbound_t *in, const char *source, const char *channel, const char *payload, size_t len);

#endif
