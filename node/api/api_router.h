/* api_router: the HTTP API's route table. Every endpoint is one row (path,
 * exact or prefix; methods; the operation it is measured as; its handler),
 * looked up in order; a path with no row for the method gets 405 with the
 * methods it has in Allow, an unknown path 404. The response hook counts
 * statuses, latency per operation, client-visible hits and misses, and
 * errors by cause (api_http.h).
 *
 * Threads: the handler table is used by the loop of the worker whose
 * api_worker_t it carries.
 */
#ifndef DCACHE_API_ROUTER_H
#define DCACHE_API_ROUTER_H

#include "http/http_server.h"
#include "node/api/api.h"

/* The handler table for http_server_new(); borrows w. */
http_handler_t api_router_handler(api_worker_t *w);

#endif
