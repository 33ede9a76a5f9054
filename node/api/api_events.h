/* api_events: GET /api/events, the node's event feed as Server-Sent
 * Events (node/api/events.h), and what publishes into it from the API.
 *
 * A client gets every event published after it connected, or, with a
 * Last-Event-ID (header, or ?last_event_id= for clients that cannot set
 * it) of this run still in the buffer, everything after that one first.
 * When what it asks for is gone (another run, or pushed out), it gets an
 * `event: reset` saying so, then the live feed: it should reload what it
 * shows. `?types=a,b` keeps only those types. A comment line every 15 s
 * keeps proxies from timing the stream out.
 *
 * Bounds: at most API_EVENTS_CLIENTS streams per node (more get 503
 * `too_many_streams`); each may leave 256 KiB unsent before it is dropped
 * (http_stream.h: a slow consumer is cut off, not buffered).
 *
 * Threads: each worker's streams live on its loop; the feed wakes every
 * worker through a uv_async_t.
 * Ownership: api_events_worker_t is embedded in api_worker_t; it owns its
 * clients.
 */
#ifndef DCACHE_API_EVENTS_H
#define DCACHE_API_EVENTS_H

#include <stdatomic.h>
#include <uv.h>

#include "cluster/peer_proto.h"
#include "http/http_server.h"
#include "node/peer/peer.h"
#include "node/route/route.h"

#define API_EVENTS_CLIENTS 256

typedef struct api_events_client api_events_client_t;

/* What the streams, the relay and the publishers share: embedded in api_t. */
typedef struct api_feed {
    struct events *events;            /* the feed (api_t owns it; NULL: none) */
    atomic_int streams;               /* /api/events clients, at most API_EVENTS_CLIENTS */
    route_t *route;                   /* this node's name and ring, for the relay */
    /* Another member's "hot" event (its hot keys): given here instead of
     * the feed. Set before the workers start; called on a worker's loop. */
    void (*on_hot)(void *ctx, const char *json, size_t len);
    void *on_hot_ctx;
} api_feed_t;

typedef struct api_events_worker {
    api_feed_t *feed;
    uv_async_t wake;
    uv_timer_t keepalive;
    int slot;                         /* the feed's subscription; -1: none */
    api_events_client_t *clients;     /* owned, a doubly linked list */
    bool up;
} api_events_worker_t;

int api_events_worker_init(api_events_worker_t *ew, api_feed_t *feed, uv_loop_t *loop);
/* Ends every stream and closes the handles (their callbacks on the loop). */
void api_events_worker_close(api_events_worker_t *ew);
/* GET /api/events */
void api_events_stream(api_events_worker_t *ew, http_request_t *r);
/* Publishes a JSON object of `type` to the feed (any thread); relay: the
 * other members' feeds get it too (events.h). */
void api_events_publish(api_feed_t *feed, const char *type, const char *json, size_t len, bool relay);
/* route_t's on_event hook (ctx: the api_feed_t): what another member relayed (a worker's loop). */
void api_events_received(void *ctx, const peer_msg_t *m);

/* The relay: on the main loop, sends every event published with relay
 * set to every other member of the ring (PEER_MSG_EVENT), once, best
 * effort: a member down or too far behind misses it (counted in
 * events_relay_failed_total); its own feed says nothing of the gap.
 * Owns its peer pool. */
typedef struct api_events_relay api_events_relay_t;
api_events_relay_t *api_events_relay_new(uv_loop_t *loop, api_feed_t *feed, const peer_pool_config_t *pool_cfg);
void api_events_relay_close(api_events_relay_t *r, void (*done)(void *arg), void *arg);
/* After done. */
void api_events_relay_free(api_events_relay_t *r);

#endif
