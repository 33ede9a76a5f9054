/* api_health: GET /health (the process is up: always 200) and GET /ready
 * (this node should get traffic: 503 while it drains; L2 or the cluster
 * being degraded is reported but does not make it unready, since it keeps
 * serving from L1). */
#ifndef DCACHE_API_HEALTH_H
#define DCACHE_API_HEALTH_H

#include "http/http_server.h"
#include "node/api/api.h"

void api_health_live(api_worker_t *w, http_request_t *r);
void api_health_ready(api_worker_t *w, http_request_t *r);

#endif
