/* api: the state the HTTP API's handlers share. One api_t serves every
 * worker loop: the data path's shared state (route_t) and what the
 * operational endpoints read (metrics, history, HTTP server counters,
 * gossip). Each worker has an api_worker_t: its loop's data-path state.
 * The router (api_router) dispatches requests to the handlers
 * (api_cache, api_cluster, api_health, api_metrics), which answer with
 * api_http.
 *
 * Ownership: api_t owns its api_auth_t; it borrows the config, store, metrics, history and audit
 * trail (owned by main) for its whole life. Main sets route.keyring and route.l2 before the
 * workers start, and publishes gossip and route.self_name once membership
 * runs. A worker owns its api_worker_t (api_worker_init, api_worker_close,
 * then api_worker_free).
 *
 * Threads: api_init, api_destroy and api_auth_reload on the main thread (gossip and
 * draining are atomics main stores into); api_register_server on a worker
 * before it serves; the rest on the worker's loop. Shared fields are
 * atomics or thread-safe modules.
 */
#ifndef DCACHE_API_H
#define DCACHE_API_H

#include <stdatomic.h>
#include <stdbool.h>

#include "http/http_server.h"
#include "node/api/api_auth.h"
#include "node/api/api_events.h"
#include "node/core/config.h"
#include "node/member/gossip.h"
#include "node/metrics/metrics.h"
#include "node/metrics/metrics_history.h"
#include "node/route/route.h"
#include "node/store/store.h"

#define API_MAX_WORKERS 64
/* Cluster-wide scans (key listing, preview, pattern invalidation) a node
 * runs at once; more get 429. Each walks every member's L1, so a few
 * clients looping on them could otherwise hold every node busy. */
#define API_MAX_SCANS 4

/* Invalidation events from outside (api_inbound.h): atomic, read by /metrics. */
typedef struct api_inbound_stats {
    atomic_uint_fast64_t carried, local, malformed, failed;
    atomic_uint_fast64_t gaps, gap_dropped;
} api_inbound_stats_t;

typedef struct api {
    route_t route;                             /* the data path's shared state */
    const config_t *cfg;
    store_t *store;
    metrics_t *metrics;
    metrics_history_t *history;
    int64_t started_ms;
    atomic_bool draining;                      /* shutting down: /ready says so */
    http_server_stats_t *http_stats[API_MAX_WORKERS];
    atomic_int nworkers;
    _Atomic(gossip_t *) gossip;                /* set once membership runs */
    api_auth_t auth;                           /* tokens, roles, rate limits */
    atomic_int scans;                          /* scans in flight, at most API_MAX_SCANS */
    atomic_uint_fast64_t scans_refused;
    struct audit *audit;                       /* the audit trail (owned by main; NULL: none) */
    api_feed_t feed;                           /* the /api/events feed (its events owned; NULL: none) */
    api_inbound_stats_t inbound;
    _Atomic(struct hotkeys *) hot[API_MAX_WORKERS]; /* each worker's hot-key counts (owned by the worker) */
    _Atomic(struct warm *) warm;               /* warming jobs (owned by main; NULL before they run
                                                * and once they stop) */
    /* The metrics event's previous reading (main loop only). */
    uint64_t tick_requests, tick_hits, tick_misses, tick_invalidations;
    uint64_t tick_buckets[METRICS_BUCKETS + 1];
    /* The GET histogram at the previous history sample (main loop only). */
    uint64_t sample_buckets[METRICS_BUCKETS + 1];
} api_t;

/* How often a worker publishes its hot-key list (hotkeys.h) when quiet. */
#define API_HOT_PUBLISH_MS 2000

/* What one worker loop owns. */
typedef struct api_worker {
    api_t *api;
    route_worker_t route;
    api_events_worker_t events;                /* this loop's /api/events streams */
    struct hotkeys *hot;                       /* the GETs this loop served: predicted hot keys
                                                * (owned; NULL if it could not be made) */
    uv_timer_t hot_publish;                    /* publishes hot's top list when the loop is quiet */
    bool hot_timer;
} api_worker_t;

/* false with a message in err when the tokens file does not load. */
bool api_init(api_t *a, const config_t *cfg, store_t *store, metrics_t *metrics, metrics_history_t *history,
              char *err, size_t errcap);
void api_destroy(api_t *a);
/* The workers' hot-key counters (at most API_MAX_WORKERS into out). Any
 * thread: hotkeys_top, _merge and _stats read them safely. */
size_t api_hotkeys(api_t *a, struct hotkeys **out);
/* Registers a worker's server counters for /metrics; returns false when full. */
bool api_register_server(api_t *a, http_server_stats_t *stats);
/* Sets up a worker's state on its loop: the data path's peer pool, peer
 * server (not listening yet) and Redis client. Returns 0 or a uv error. */
int api_worker_init(api_worker_t *w, api_t *a, uv_loop_t *loop);
/* Closes the worker's data-path state; done(arg) runs once on the loop
 * after everything closed, never from inside this call. */
void api_worker_close(api_worker_t *w, void (*done)(void *arg), void *arg);
void api_worker_free(api_worker_t *w);

#endif
