#include "node/api/api_router.h"

#include <stdio.h>
#include <string.h>

#include "node/api/api_cache.h"
#include "node/api/api_cluster.h"
#include "node/api/api_health.h"
#include "node/api/api_http.h"
#include "node/api/api_metrics.h"

#define API_ROUTER_GET ((1u << HTTP_M_GET) | (1u << HTTP_M_HEAD))
#define API_ROUTER_PUT (1u << HTTP_M_PUT)
#define API_ROUTER_POST (1u << HTTP_M_POST)
#define API_ROUTER_DELETE (1u << HTTP_M_DELETE)

typedef struct api_router_row {
    const char *path;
    bool prefix;                   /* path is a prefix (the rest is the key) */
    unsigned methods;              /* bit set of 1 << http_method_t */
    metrics_op_t op;
    void (*handler)(api_worker_t *w, http_request_t *r);
} api_router_row_t;

static const api_router_row_t api_router_rows[] = {
    {"/api/cache/keys", false, API_ROUTER_GET, METRICS_OP_KEYS, api_cache_keys},
    {API_CACHE_PREFIX, true, API_ROUTER_GET, METRICS_OP_GET, api_cache_get},
    {API_CACHE_PREFIX, true, API_ROUTER_PUT, METRICS_OP_PUT, api_cache_put},
    {API_CACHE_PREFIX, true, API_ROUTER_DELETE, METRICS_OP_DELETE, api_cache_delete},
    {"/api/invalidate", false, API_ROUTER_POST, METRICS_OP_INVALIDATE, api_cache_invalidate_keys},
    {"/api/invalidate/pattern", false, API_ROUTER_POST, METRICS_OP_INVALIDATE_PATTERN, api_cache_invalidate_pattern},
    {"/api/invalidate/preview", false, API_ROUTER_GET, METRICS_OP_OTHER, api_cache_invalidate_preview},
    {"/metrics", false, API_ROUTER_GET, METRICS_OP_OTHER, api_metrics_prometheus},
    {"/api/metrics", false, API_ROUTER_GET, METRICS_OP_OTHER, api_metrics_json},
    {"/api/metrics/history", false, API_ROUTER_GET, METRICS_OP_OTHER, api_metrics_history},
    {"/api/cluster/members", false, API_ROUTER_GET, METRICS_OP_OTHER, api_cluster_members},
    {"/api/cluster/ring", false, API_ROUTER_GET, METRICS_OP_OTHER, api_cluster_ring},
    {"/health", false, API_ROUTER_GET, METRICS_OP_OTHER, api_health_live},
    {"/ready", false, API_ROUTER_GET, METRICS_OP_OTHER, api_health_ready},
};
#define API_ROUTER_NROWS (sizeof api_router_rows / sizeof api_router_rows[0])

static bool api_router_path_matches(const api_router_row_t *row, const char *path, size_t plen)
{
    size_t n = strlen(row->path);
    if (row->prefix) return plen >= n && memcmp(path, row->path, n) == 0;
    return plen == n && memcmp(path, row->path, n) == 0;
}

static void api_router_method_not_allowed(http_request_t *r, unsigned methods)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{1u << HTTP_M_GET, "GET"}, {1u << HTTP_M_HEAD, "HEAD"}, {API_ROUTER_PUT, "PUT"},
                 {API_ROUTER_POST, "POST"}, {API_ROUTER_DELETE, "DELETE"}};
    char hdr[96];
    size_t n = (size_t)snprintf(hdr, sizeof hdr, "Allow: ");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (methods & names[i].bit) n += (size_t)snprintf(hdr + n, sizeof hdr - n, "%s%s", n > 7 ? ", " : "", names[i].name);
    n += (size_t)snprintf(hdr + n, sizeof hdr - n, "\r\n");
    static const char body[] = "{\"error\":\"method not allowed\",\"code\":\"method_not_allowed\"}";
    http_response_t resp = {.status = 405,
                            .content_type = "application/json",
                            .headers = hdr,
                            .headers_len = n,
                            .body = body,
                            .body_len = sizeof body - 1};
    http_respond(r, &resp);
}

static void api_router_on_request(http_request_t *r, void *ctx)
{
    api_worker_t *w = ctx;
    size_t plen;
    const char *path = http_request_path(r, &plen);
    unsigned method = 1u << http_request_method(r);
    /* The first row whose path matches names the endpoint; only its rows
     * (one per method) are candidates, so /api/cache/keys never falls
     * through to the /api/cache/ prefix. */
    const char *endpoint = NULL;
    unsigned allowed = 0;
    for (size_t i = 0; i < API_ROUTER_NROWS; i++) {
        const api_router_row_t *row = &api_router_rows[i];
        if (!api_router_path_matches(row, path, plen)) continue;
        if (!endpoint) {
            endpoint = row->path;
            api_http_set_op(r, row->op);
        } else if (strcmp(row->path, endpoint) != 0) {
            continue;
        }
        if (row->methods & method) {
            api_http_set_op(r, row->op);
            row->handler(w, r);
            return;
        }
        allowed |= row->methods;
    }
    if (allowed) {
        api_router_method_not_allowed(r, allowed);
        return;
    }
    api_http_set_op(r, METRICS_OP_OTHER);
    http_respond_error(r, 404, "no_route", "no such endpoint");
}

static size_t api_router_body_limit(const http_request_t *r, void *ctx)
{
    api_t *a = ((api_worker_t *)ctx)->api;
    size_t plen;
    const char *path = http_request_path(r, &plen);
    size_t pre = sizeof API_CACHE_PREFIX - 1;
    if (http_request_method(r) == HTTP_M_PUT && plen >= pre && memcmp(path, API_CACHE_PREFIX, pre) == 0)
        return (size_t)a->cfg->max_value_size;
    return (size_t)a->cfg->max_request_body;
}

static void api_router_on_response(const http_request_t *r, int status, void *ctx)
{
    api_t *a = ((api_worker_t *)ctx)->api;
    metrics_t *m = a->metrics;
    metrics_count_status(m, status);
    metrics_op_t op = api_http_op(r);
    uint64_t start = http_request_start_ns(r);
    if (start) metrics_observe(m, op, uv_hrtime() - start);
    /* Hits and misses as clients see them, wherever the value came from
     * (this node, an owner, Redis): a GET is validated before it is
     * routed, so its 404 is a miss. */
    if (op == METRICS_OP_GET && (status == 200 || status == 304)) metrics_add(&m->hits, 1);
    else if (op == METRICS_OP_GET && status == 404) metrics_add(&m->misses, 1);
    metrics_err_t cause;
    if (api_http_error(r, &cause)) {
        metrics_count_error(m, cause);
        return;
    }
    switch (status) {
    case 400: case 405: case 411: case 415: case 417: case 422:
        metrics_count_error(m, METRICS_ERR_BAD_REQUEST);
        break;
    case 413: case 414: case 431:
        metrics_count_error(m, METRICS_ERR_TOO_LARGE);
        break;
    case 408:
        metrics_count_error(m, METRICS_ERR_TIMEOUT);
        break;
    case 503:
        /* Without a cause set by a handler: the server refused the
         * connection (over its limit). */
        metrics_count_error(m, METRICS_ERR_OVERLOADED);
        break;
    case 507:
        metrics_count_error(m, METRICS_ERR_NO_MEMORY);
        break;
    case 500:
        metrics_count_error(m, METRICS_ERR_INTERNAL);
        break;
    default:
        break;
    }
}

http_handler_t api_router_handler(api_worker_t *w)
{
    return (http_handler_t){.body_limit = api_router_body_limit,
                            .on_request = api_router_on_request,
                            .on_response = api_router_on_response,
                            .ctx = w};
}
