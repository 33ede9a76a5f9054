/* api_metrics: /metrics (Prometheus text), /api/metrics (JSON) and
 * /api/metrics/history, and the periodic sample the history keeps.
 * Threads: the handlers on a worker's loop; api_metrics_sample on the main
 * loop only (it keeps the previous sample's histogram in api_t). */
#ifndef DCACHE_API_METRICS_H
#define DCACHE_API_METRICS_H

#include "http/http_server.h"
#include "node/api/api.h"

void api_metrics_prometheus(api_worker_t *w, http_request_t *r);
void api_metrics_json(api_worker_t *w, http_request_t *r);
void api_metrics_history(api_worker_t *w, http_request_t *r);
/* Takes a history sample; called by the main loop every interval. */
void api_metrics_sample(api_t *a);
/* The `metrics` event of /api/events (main loop, every second): what
 * changed since the previous tick, per second, and GET latency over it. */
void api_metrics_tick(api_t *a, uint64_t interval_ms);

#endif
