#include "node/api/api_router.h"

#include <stdio.h>
#include <string.h>


#include "node/api/api_audit.h"
#include "node/api/api_warm.h"
#include "node/api/api_cache.h"
#include "node/api/api_events.h"
#include "node/api/api_cluster.h"
#include "node/api/api_dashboard.h"
#include "node/api/api_health.h"
#include "node/api/api_http.h"
#include "node/api/api_metrics.h"

#define API_ROUTER_GET ((1u << HTTP_M_GET) | (1u << HTTP_M_HEAD))
#define API_ROUTER_PUT (1u << HTTP_M_PUT)
#define API_ROUTER_POST (1u << HTTP_M_POST)
#define API_ROUTER_DELETE (1u << HTTP_M_DELETE)

/* What a row's endpoint asks beyond its role. */
#define API_ROUTER_SCAN 1u         /* a cluster-wide scan: one of API_MAX_SCANS slots */
#define API_ROUTER_PROBE 2u        /* a health probe: open, never rate-limited */
#define API_ROUTER_METRICS 4u      /* open unless --metrics-auth */
#define API_ROUTER_VALUE_READ 8u   /* open with --public-read */
#define API_ROUTER_AUDIT 16u       /* a warming job change the audit trail records */

typedef struct api_router_row {
    const char *path;
    bool prefix;                   /* path is a prefix (the rest is the key) */
    unsigned methods;              /* bit set of 1 << http_method_t */
    metrics_op_t op;
    tokens_role_t need;            /* the least role that may call it (with --tokens) */
    unsigned flags;
    void (*handler)(api_worker_t *w, http_request_t *r);
} api_router_row_t;

/* The event stream lives on the worker's events part, which knows no
 * api_worker_t. */
static void api_router_events(api_worker_t *w, http_request_t *r)
{
    api_events_stream(&w->events, r);
}

#define R TOKENS_ROLE_READER
#define W TOKENS_ROLE_WRITER
#define A TOKENS_ROLE_ADMIN
static const api_router_row_t api_router_rows[] = {
    {"/api/cache/keys", false, API_ROUTER_GET, METRICS_OP_KEYS, R, API_ROUTER_SCAN, api_cache_keys},
    {API_CACHE_PREFIX, true, API_ROUTER_GET, METRICS_OP_GET, R, API_ROUTER_VALUE_READ, api_cache_get},
    {API_CACHE_PREFIX, true, API_ROUTER_PUT, METRICS_OP_PUT, W, 0, api_cache_put},
    {API_CACHE_PREFIX, true, API_ROUTER_DELETE, METRICS_OP_DELETE, W, 0, api_cache_delete},
    {"/api/invalidate", false, API_ROUTER_POST, METRICS_OP_INVALIDATE, W, 0, api_cache_invalidate_keys},
    {"/api/invalidate/pattern", false, API_ROUTER_POST, METRICS_OP_INVALIDATE_PATTERN, A, API_ROUTER_SCAN,
     api_cache_invalidate_pattern},
    {"/api/invalidate/preview", false, API_ROUTER_GET, METRICS_OP_OTHER, R, API_ROUTER_SCAN,
     api_cache_invalidate_preview},
    {"/metrics", false, API_ROUTER_GET, METRICS_OP_OTHER, R, API_ROUTER_METRICS, api_metrics_prometheus},
    {"/api/metrics", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_metrics_json},
    {"/api/metrics/history", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_metrics_history},
    {"/api/whoami", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_health_whoami},
    {"/api/cluster/members", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_cluster_members},
    {"/api/audit", false, API_ROUTER_GET, METRICS_OP_OTHER, A, 0, api_audit_list},
    {"/api/events", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_router_events},
    {"/api/cluster/ring", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_cluster_ring},
    {"/api/warming/jobs", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_warm_jobs},
    {"/api/warming/jobs", false, API_ROUTER_POST, METRICS_OP_OTHER, A, API_ROUTER_AUDIT, api_warm_put},
    {API_WARM_JOBS_PREFIX, true, API_ROUTER_DELETE, METRICS_OP_OTHER, A, API_ROUTER_AUDIT, api_warm_delete},
    {"/api/warming/trigger", false, API_ROUTER_POST, METRICS_OP_OTHER, W, 0, api_warm_trigger},
    {"/api/warming/cancel", false, API_ROUTER_POST, METRICS_OP_OTHER, W, 0, api_warm_cancel},
    {"/api/warming/history", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_warm_history},
    {"/api/warming/hot", false, API_ROUTER_GET, METRICS_OP_OTHER, R, 0, api_warm_hot},
    {"/health", false, API_ROUTER_GET, METRICS_OP_OTHER, TOKENS_ROLE_NONE, API_ROUTER_PROBE, api_health_live},
    {"/ready", false, API_ROUTER_GET, METRICS_OP_OTHER, TOKENS_ROLE_NONE, API_ROUTER_PROBE, api_health_ready},
    /* The dashboard's files hold no data; its API calls carry the token. */
    {"/", false, API_ROUTER_GET, METRICS_OP_OTHER, TOKENS_ROLE_NONE, 0, api_dashboard_serve},
    {"/index.html", false, API_ROUTER_GET, METRICS_OP_OTHER, TOKENS_ROLE_NONE, 0, api_dashboard_serve},
    {API_DASHBOARD_ASSETS_PREFIX, true, API_ROUTER_GET, METRICS_OP_OTHER, TOKENS_ROLE_NONE, 0, api_dashboard_serve},
};
#undef R
#undef W
#undef A
#define API_ROUTER_NROWS (sizeof api_router_rows / sizeof api_router_rows[0])

static bool api_router_path_matches(const api_router_row_t *row, const char *path, size_t plen)
{
    size_t n = strlen(row->path);
    if (row->prefix) return plen >= n && memcmp(path, row->path, n) == 0;
    return plen == n && memcmp(path, row->path, n) == 0;
}

/* "GET, HEAD, ..." for a method bit set (OPTIONS included). */
static size_t api_router_method_list(char *out, size_t cap, unsigned methods)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{1u << HTTP_M_GET, "GET"}, {1u << HTTP_M_HEAD, "HEAD"}, {API_ROUTER_PUT, "PUT"},
                 {API_ROUTER_POST, "POST"}, {API_ROUTER_DELETE, "DELETE"}};
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (methods & names[i].bit) n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", names[i].name);
    n += (size_t)snprintf(out + n, cap - n, "%sOPTIONS", n ? ", " : "");
    return n;
}

static void api_router_method_not_allowed(http_request_t *r, unsigned methods)
{
    char hdr[96];
    size_t n = (size_t)snprintf(hdr, sizeof hdr, "Allow: ");
    n += api_router_method_list(hdr + n, sizeof hdr - n, methods);
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

/* A browser page from a listed origin may read the answer: every
 * response to its request says so. Others get no CORS header at all, so
 * the browser keeps the answer from the page. */
static bool api_router_cors(api_t *a, http_request_t *r)
{
    size_t olen;
    const char *origin = http_request_header(r, "origin", &olen);
    if (!origin || !a->cfg->cors_origins[0] || !config_origin_listed(a->cfg->cors_origins, origin, olen)) return false;
    char hdr[400];
    int n = snprintf(hdr, sizeof hdr,
                     "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\nAccess-Control-Expose-Headers: ETag, "
                     "X-Cache, X-Cache-Version, X-Cache-Node, X-Cache-Owner, X-Cache-Durability, Retry-After\r\n",
                     (int)olen, origin);
    return n > 0 && (size_t)n < sizeof hdr && http_request_add_headers(r, hdr, (size_t)n);
}

/* OPTIONS: which methods the endpoint has and, for a CORS preflight from a
 * listed origin, which of them the page may use. No token is asked:
 * browsers send none with a preflight. */
static void api_router_options(http_request_t *r, unsigned methods, bool cors)
{
    char list[64], hdr[400];
    api_router_method_list(list, sizeof list, methods);
    int n = snprintf(hdr, sizeof hdr, "Allow: %s\r\n", list);
    if (cors && http_request_header(r, "access-control-request-method", &(size_t){0}))
        n += snprintf(hdr + n, sizeof hdr - (size_t)n,
                      "Access-Control-Allow-Methods: %s\r\nAccess-Control-Allow-Headers: Authorization, "
                      "Content-Type, If-None-Match, X-Cache-TTL\r\nAccess-Control-Max-Age: 600\r\n",
                      list);
    http_response_t resp = {.status = 204, .headers = hdr, .headers_len = (size_t)n};
    http_respond(r, &resp);
}

/* Lets the request through the endpoint's role, the rate limit and the
 * scan slots; otherwise answers it. */
static bool api_router_admit(api_t *a, http_request_t *r, const api_router_row_t *row)
{
    tokens_role_t need = row->need;
    if ((row->flags & API_ROUTER_METRICS) && !a->cfg->metrics_auth) need = TOKENS_ROLE_NONE;
    if ((row->flags & API_ROUTER_VALUE_READ) && a->cfg->public_read) need = TOKENS_ROLE_NONE;
    if (!api_auth_admit(&a->auth, r, need, !(row->flags & API_ROUTER_PROBE))) return false;
    if (!(row->flags & API_ROUTER_SCAN)) return true;
    if (atomic_fetch_add(&a->scans, 1) < API_MAX_SCANS) {
        api_http_set_scan(r);
        return true;
    }
    atomic_fetch_sub(&a->scans, 1);
    atomic_fetch_add_explicit(&a->scans_refused, 1, memory_order_relaxed);
    api_http_refuse(r, 429, METRICS_ERR_RATE_LIMITED,
                    "too many cluster-wide scans (key listings, previews, pattern invalidations) in flight on this node",
                    1);
    return false;
}

static void api_router_on_request(http_request_t *r, void *ctx)
{
    api_worker_t *w = ctx;
    api_audit_start(r);
    size_t plen;
    const char *path = http_request_path(r, &plen);
    unsigned method = 1u << http_request_method(r);
    bool cors = api_router_cors(w->api, r);
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
            if (row->op == METRICS_OP_DELETE || row->op == METRICS_OP_INVALIDATE ||
                row->op == METRICS_OP_INVALIDATE_PATTERN)
                api_audit_mark(w->api, r);
            else if (row->flags & API_ROUTER_AUDIT)
                api_audit_mark_config(w->api, r, AUDIT_WARM_JOB);
            if (api_router_admit(w->api, r, row)) row->handler(w, r);
            return;
        }
        allowed |= row->methods;
    }
    if (allowed && method == 1u << HTTP_M_OPTIONS) {
        api_router_options(r, allowed, cors);
        return;
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
    if (api_http_scan(r)) atomic_fetch_sub(&a->scans, 1);
    api_audit_responded(ctx, r, status);
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
