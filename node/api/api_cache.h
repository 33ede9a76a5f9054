/* api_cache: the cache's endpoints. /api/cache/{key} (GET, HEAD, PUT,
 * DELETE), /api/cache/keys (listing, one member per page),
 * /api/invalidate (keys), /api/invalidate/pattern and
 * /api/invalidate/preview. Each validates the request (400 with a JSON
 * body when it is bad) and hands it to the data path; each answers the
 * request exactly once, now or later on the worker's loop.
 */
#ifndef DCACHE_API_CACHE_H
#define DCACHE_API_CACHE_H

#include "http/http_server.h"
#include "node/api/api.h"

#define API_CACHE_PREFIX "/api/cache/"

void api_cache_get(api_worker_t *w, http_request_t *r);
void api_cache_put(api_worker_t *w, http_request_t *r);
void api_cache_delete(api_worker_t *w, http_request_t *r);
void api_cache_keys(api_worker_t *w, http_request_t *r);
void api_cache_invalidate_keys(api_worker_t *w, http_request_t *r);
void api_cache_invalidate_pattern(api_worker_t *w, http_request_t *r);
void api_cache_invalidate_preview(api_worker_t *w, http_request_t *r);

#endif
