/* api: the node's HTTP API and the serving side of the peer channel,
 * joining requests to the store, the ring and the metrics. One api_t is
 * shared by every worker loop; each worker has an api_worker_t with what
 * only its loop touches (its peer pool, its ring snapshot, its in-flight
 * forwards). Handlers run on the worker that received the request and touch
 * shared state only when it is thread-safe (the store, atomic metrics, the
 * history's locked ring, the version clock's mutex, the topology slot).
 *
 * Ownership: api_t borrows the config, store, metrics, history and keyring
 * (owned by main) for its whole life; it owns the topology slot. A worker
 * owns its api_worker_t (api_worker_init / api_worker_close).
 */
#ifndef DCACHE_API_H
#define DCACHE_API_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cluster/hlc.h"
#include "http/http_server.h"
#include "node/core/config.h"
#include "node/member/gossip.h"
#include "node/route/handoff.h"
#include "node/l2/l2.h"
#include "node/metrics/metrics.h"
#include "node/metrics/metrics_history.h"
#include "node/peer/peer.h"
#include "node/peer/peer_server.h"
#include "node/store/store.h"
#include "node/store/tomb.h"
#include "node/member/topo.h"

#define API_MAX_WORKERS 64

/* Data-path counters (atomic: every worker adds). */
typedef struct api_route_stats {
    atomic_uint_fast64_t forwarded[3];         /* requests sent to an owner: get, put, delete */
    atomic_uint_fast64_t failovers;            /* an owner failed; the next one was tried */
    atomic_uint_fast64_t unavailable;          /* no owner answered: 503 */
    atomic_uint_fast64_t coalesced;            /* GETs that joined a forward already in flight */
    atomic_uint_fast64_t replica_ok, replica_failed, replica_skipped; /* writes to replicas */
    atomic_uint_fast64_t writes_unreplicated;  /* writes refused: too few owners stored them */
    atomic_uint_fast64_t broadcasts;           /* invalidations sent to non-owners */
    atomic_uint_fast64_t fallbacks;            /* misses at a new owner that asked previous owners */
    atomic_uint_fast64_t fallback_filled;      /* ... and found the key there */
    atomic_int_fast64_t flights;               /* forwarded GETs in flight now */
} api_route_stats_t;

typedef struct api {
    const config_t *cfg;
    store_t *store;
    metrics_t *metrics;
    metrics_history_t *history;
    int64_t started_ms;
    pthread_mutex_t hlc_lock;
    hlc_t hlc;
    atomic_bool draining;                      /* shutting down: /ready says so */
    http_server_stats_t *http_stats[API_MAX_WORKERS];
    atomic_int nworkers;
    _Atomic(gossip_t *) gossip;                /* set once membership runs */
    const seal_keyring_t *keyring;             /* peer channel sealing */
    _Atomic(const char *) self_name;           /* this node's name, published once gossip runs
                                                * ("" before); owned by main */
    topo_slot_t topo;                          /* the ring, published by main */
    peer_stats_t peer_stats;
    api_route_stats_t route;
    handoff_stats_t handoff;
    l2_shared_t *l2;                           /* NULL: no L2 (owned by main) */
    tomb_t *tomb;                              /* recent deletes; NULL if it could not be made */
} api_t;

/* What one worker loop owns. */
typedef struct api_worker {
    api_t *api;
    uv_loop_t *loop;
    peer_pool_t *pool;
    peer_server_t *peer_server;
    topo_cache_t topo;
    l2_t *l2;                                  /* this loop's Redis client; NULL without L2 */
    struct api_flight **flights;               /* in-flight forwarded GETs by key (coalescing) */
    size_t nflights;
} api_worker_t;

void api_init(api_t *a, const config_t *cfg, store_t *store, metrics_t *metrics, metrics_history_t *history);
void api_destroy(api_t *a);
/* Registers a worker's server counters for /metrics; returns false when full. */
bool api_register_server(api_t *a, http_server_stats_t *stats);
/* Sets up a worker's state on its loop: peer pool and peer server (not
 * listening yet). Returns 0 or a uv error. */
int api_worker_init(api_worker_t *w, api_t *a, uv_loop_t *loop);
/* Closes the worker's peer pool and server; done() once both closed. */
void api_worker_close(api_worker_t *w, void (*done)(void *arg), void *arg);
void api_worker_free(api_worker_t *w);
/* The handler table for http_server_new(). */
http_handler_t api_handler(api_worker_t *w);
/* Takes a history sample; called by the main loop every interval. */
void api_sample(api_t *a);

#endif
