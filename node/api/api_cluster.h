/* api_cluster: GET /api/cluster/members and GET /api/cluster/ring[?key=K]. */
#ifndef DCACHE_API_CLUSTER_H
#define DCACHE_API_CLUSTER_H

#include "http/http_server.h"
#include "node/api/api.h"

void api_cluster_members(api_worker_t *w, http_request_t *r);
void api_cluster_ring(api_worker_t *w, http_request_t *r);

#endif
