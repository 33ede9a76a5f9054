/* api_health: GET /health (the process is up: always 200) and GET /ready
 * (this node should get traffic: 503 while it drains; L2 or the cluster
 * being degraded is reported but does not make it unready, since it keeps
 * serving from L1). */
#ifndef DCACHE_API_HEALTH_H
#define DCACHE_API_HEALTH_H

#include "http/http_server.h"
#include "node/api/api.h"

void api_health_live(api_worker_t *w, http_request_t *r);
/* GET /api/whoami: {"tokens","name","role"}: the caller's token's name and
 * role (without --tokens every caller may do everything: role admin, name
 * null), so a page can offer only what its token may do. */
void api_health_whoami(api_worker_t *w, http_request_t *r);

/* What /ready reports, and the metrics event every member relays: the
 * node's state (draining, minority, clock_skew, syncing or ok, the first
 * that holds), its L2's and its audit trail's (disabled, ok or degraded).
 * Any thread. */
const char *api_health_state(api_t *a);
const char *api_health_l2_state(api_t *a);
const char *api_health_audit_state(api_t *a);
void api_health_ready(api_worker_t *w, http_request_t *r);

#endif
