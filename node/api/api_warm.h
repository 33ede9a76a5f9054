/* api_warm: the warming endpoints (README "Warming"): jobs listed,
 * created, deleted, triggered and cancelled, and the history of runs, all
 * through node/warm's thread-safe calls (the engine itself runs on the
 * main loop).
 * Threads: a worker's loop.
 */
#ifndef DCACHE_API_WARM_H
#define DCACHE_API_WARM_H

#include "http/http_request.h"
#include "node/api/api.h"

#define API_WARM_JOBS_PREFIX "/api/warming/jobs/"

void api_warm_jobs(api_worker_t *w, http_request_t *r);        /* GET /api/warming/jobs */
void api_warm_put(api_worker_t *w, http_request_t *r);         /* POST /api/warming/jobs */
void api_warm_delete(api_worker_t *w, http_request_t *r);      /* DELETE /api/warming/jobs/{name} */
void api_warm_trigger(api_worker_t *w, http_request_t *r);     /* POST /api/warming/trigger */
void api_warm_cancel(api_worker_t *w, http_request_t *r);      /* POST /api/warming/cancel */
void api_warm_history(api_worker_t *w, http_request_t *r);     /* GET /api/warming/history */
void api_warm_hot(api_worker_t *w, http_request_t *r);         /* GET /api/warming/hot */

#endif
