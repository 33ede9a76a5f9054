/* api: the node's HTTP API, joining http/ requests to the store and the
 * metrics. One api_t serves every worker loop; its handlers run on the
 * worker that received the request and only touch thread-safe state (the
 * store, atomic metrics, the history's locked ring, the version clock's
 * mutex).
 *
 * Ownership: api_t borrows the config, store, metrics and history (owned by
 * main) for its whole life.
 */
#ifndef DCACHE_API_H
#define DCACHE_API_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cluster/hlc.h"
#include "http/http_server.h"
#include "node/config.h"
#include "node/gossip.h"
#include "node/metrics.h"
#include "node/metrics_history.h"
#include "node/store.h"

#define API_MAX_WORKERS 64

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
} api_t;

void api_init(api_t *a, const config_t *cfg, store_t *store, metrics_t *metrics, metrics_history_t *history);
void api_destroy(api_t *a);
/* Registers a worker's server counters for /metrics; returns false when full. */
bool api_register_server(api_t *a, http_server_stats_t *stats);
/* The handler table for http_server_new(). */
http_handler_t api_handler(api_t *a);
/* Takes a history sample; called by the main loop every interval. */
void api_sample(api_t *a);

#endif
