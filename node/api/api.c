#include "node/api/api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_url.h"
#include "node/api/api_internal.h"
#include "node/core/sysinfo.h"

#define API_CACHE_PREFIX "/api/cache/"

void api_init(api_t *a, const config_t *cfg, store_t *store, metrics_t *metrics, metrics_history_t *history)
{
    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    a->store = store;
    a->metrics = metrics;
    a->history = history;
    a->started_ms = sysinfo_now_ms();
    pthread_mutex_init(&a->hlc_lock, NULL);
    hlc_init(&a->hlc);
    topo_slot_init(&a->topo);
    /* A minute covers any fill that was in flight when a delete landed. */
    a->tomb = tomb_new(65536, 60000);
}

void api_destroy(api_t *a)
{
    topo_slot_destroy(&a->topo);
    tomb_free(a->tomb);
    pthread_mutex_destroy(&a->hlc_lock);
}

int api_worker_init(api_worker_t *w, api_t *a, uv_loop_t *loop)
{
    memset(w, 0, sizeof *w);
    w->api = a;
    w->loop = loop;
    w->flights = calloc(API_FLIGHT_BUCKETS, sizeof *w->flights);
    peer_conn_config_t cc = {.keyring = a->keyring, .stats = &a->peer_stats};
    peer_pool_config_t pc = {.conn = cc,
                             .connect_timeout_ms = a->cfg->peer_connect_timeout_ms,
                             .request_timeout_ms = a->cfg->peer_timeout_ms};
    peer_server_config_t sc = {.conn = cc};
    w->pool = peer_pool_new(loop, &pc);
    w->peer_server = peer_server_new(loop, &sc, api_peer_serve, w);
    if (a->l2 && a->l2->enabled && !(w->l2 = l2_new(loop, a->l2))) {
        api_worker_free(w);
        return UV_ENOMEM;
    }
    if (!w->flights || !w->pool || !w->peer_server) {
        api_worker_free(w);
        return UV_ENOMEM;
    }
    return 0;
}

typedef struct api_worker_closing {
    unsigned left;
    void (*done)(void *);
    void *arg;
} api_worker_closing_t;

static void api_worker_part_closed(void *arg)
{
    api_worker_closing_t *c = arg;
    if (--c->left) return;
    c->done(c->arg);
    free(c);
}

void api_worker_close(api_worker_t *w, void (*done)(void *arg), void *arg)
{
    api_worker_closing_t *c = malloc(sizeof *c);
    if (!c) abort(); /* a few bytes at shutdown; nothing sensible to do without them */
    c->left = w->l2 ? 3 : 2;
    c->done = done;
    c->arg = arg;
    topo_cache_clear(&w->topo);
    peer_server_close(w->peer_server, api_worker_part_closed, c);
    peer_pool_close(w->pool, api_worker_part_closed, c);
    if (w->l2) l2_close(w->l2, api_worker_part_closed, c);
}

void api_worker_free(api_worker_t *w)
{
    peer_pool_free(w->pool);
    peer_server_free(w->peer_server);
    l2_free(w->l2);
    w->l2 = NULL;
    free(w->flights);
    topo_cache_clear(&w->topo);
    w->pool = NULL;
    w->peer_server = NULL;
    w->flights = NULL;
}

bool api_register_server(api_t *a, http_server_stats_t *stats)
{
    int i = atomic_load(&a->nworkers);
    if (i >= API_MAX_WORKERS) return false;
    a->http_stats[i] = stats;
    atomic_store(&a->nworkers, i + 1);
    return true;
}

void api_respond_sbuf(http_request_t *r, int status, sbuf_t *b)
{
    if (b->failed) {
        sbuf_free(b);
        http_respond_error(r, 503, "no_memory", "out of memory building the response");
        return;
    }
    size_t len;
    char *data = sbuf_steal(b, &len);
    http_response_t resp = {.status = status,
                            .content_type = "application/json",
                            .body = data,
                            .body_len = len,
                            .body_release = free,
                            .body_release_ctx = data};
    http_respond(r, &resp);
}

json_t *api_parse_json_body(http_request_t *r)
{
    size_t len;
    const char *body = http_request_body(r, &len);
    if (len == 0) {
        http_respond_error(r, 400, "bad_request", "a JSON body is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        http_respond_error(r, 400, "bad_json", msg);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        http_respond_error(r, 400, "bad_json", "the JSON body must be an object");
        return NULL;
    }
    return root;
}

bool api_query_uint(http_request_t *r, const char *name, uint64_t def, uint64_t min, uint64_t max, uint64_t *out)
{
    size_t qlen;
    const char *q = http_request_query(r, &qlen);
    char buf[32];
    long n = http_query_get(q, qlen, name, buf, sizeof buf);
    if (n == -1 || n == 0) {
        *out = def;
        return true;
    }
    char *end = NULL;
    unsigned long long v = 0;
    bool ok = n > 0 && buf[0] >= '0' && buf[0] <= '9';
    if (ok) v = strtoull(buf, &end, 10);
    if (!ok || *end || v < min || v > max) {
        char msg[160];
        snprintf(msg, sizeof msg, "query parameter '%s' must be a whole number from %llu to %llu", name,
                 (unsigned long long)min, (unsigned long long)max);
        http_respond_error(r, 400, "bad_parameter", msg);
        return false;
    }
    *out = v;
    return true;
}

static bool api_path_is(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(p, lit, n) == 0;
}

static void api_method_not_allowed(http_request_t *r, const char *allow)
{
    char hdr[96];
    int n = snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
    static const char body[] = "{\"error\":\"method not allowed\",\"code\":\"method_not_allowed\"}";
    http_response_t resp = {.status = 405,
                            .content_type = "application/json",
                            .headers = hdr,
                            .headers_len = (size_t)n,
                            .body = body,
                            .body_len = sizeof body - 1};
    http_respond(r, &resp);
}

/* Routes one endpoint: runs fn when the method is allowed, 405 otherwise. */
#define API_ROUTE(path_lit, allowed, allow_text, op, call)                \
    if (api_path_is(path, plen, path_lit)) {                              \
        http_request_set_tag(r, API_TAG(op));                             \
        if (allowed) call;                                                \
        else api_method_not_allowed(r, allow_text);                       \
        return;                                                           \
    }

static void api_on_request(http_request_t *r, void *ctx)
{
    api_worker_t *w = ctx;
    api_t *a = w->api;
    size_t plen;
    const char *path = http_request_path(r, &plen);
    http_method_t m = http_request_method(r);
    bool get = m == HTTP_M_GET || m == HTTP_M_HEAD;
    size_t pre = sizeof API_CACHE_PREFIX - 1;

    API_ROUTE("/api/cache/keys", get, "GET, HEAD", METRICS_OP_KEYS, api_cache_keys(w, r));
    if (plen >= pre && memcmp(path, API_CACHE_PREFIX, pre) == 0) {
        metrics_op_t op = m == HTTP_M_PUT ? METRICS_OP_PUT : m == HTTP_M_DELETE ? METRICS_OP_DELETE : METRICS_OP_GET;
        http_request_set_tag(r, API_TAG(op));
        if (get || m == HTTP_M_PUT || m == HTTP_M_DELETE) api_cache_item(w, r, path + pre, plen - pre);
        else api_method_not_allowed(r, "GET, HEAD, PUT, DELETE");
        return;
    }
    API_ROUTE("/api/invalidate", m == HTTP_M_POST, "POST", METRICS_OP_INVALIDATE, api_invalidate_keys(w, r));
    API_ROUTE("/api/invalidate/pattern", m == HTTP_M_POST, "POST", METRICS_OP_INVALIDATE_PATTERN,
              api_invalidate_pattern(w, r));
    API_ROUTE("/api/invalidate/preview", get, "GET, HEAD", METRICS_OP_OTHER, api_invalidate_preview(w, r));
    API_ROUTE("/metrics", get, "GET, HEAD", METRICS_OP_OTHER, api_metrics_prometheus(a, r));
    API_ROUTE("/api/metrics", get, "GET, HEAD", METRICS_OP_OTHER, api_metrics_json(a, r));
    API_ROUTE("/api/metrics/history", get, "GET, HEAD", METRICS_OP_OTHER, api_metrics_history(a, r));
    API_ROUTE("/api/cluster/members", get, "GET, HEAD", METRICS_OP_OTHER, api_cluster_members(a, r));
    API_ROUTE("/api/cluster/ring", get, "GET, HEAD", METRICS_OP_OTHER, api_cluster_ring(a, r));
    API_ROUTE("/health", get, "GET, HEAD", METRICS_OP_OTHER, api_health(a, r));
    API_ROUTE("/ready", get, "GET, HEAD", METRICS_OP_OTHER, api_ready(a, r));
    http_request_set_tag(r, API_TAG(METRICS_OP_OTHER));
    http_respond_error(r, 404, "no_route", "no such endpoint");
}

static size_t api_body_limit(const http_request_t *r, void *ctx)
{
    api_t *a = ((api_worker_t *)ctx)->api;
    size_t plen;
    const char *path = http_request_path(r, &plen);
    size_t pre = sizeof API_CACHE_PREFIX - 1;
    if (http_request_method(r) == HTTP_M_PUT && plen >= pre && memcmp(path, API_CACHE_PREFIX, pre) == 0)
        return (size_t)a->cfg->max_value_size;
    return (size_t)a->cfg->max_request_body;
}

static void api_on_response(const http_request_t *r, int status, void *ctx)
{
    api_t *a = ((api_worker_t *)ctx)->api;
    metrics_t *m = a->metrics;
    metrics_count_status(m, status);
    int tag = http_request_tag(r);
    metrics_op_t op = tag > 0 ? (metrics_op_t)(tag - 1) : METRICS_OP_OTHER;
    uint64_t start = http_request_start_ns(r);
    if (start) metrics_observe(m, op, uv_hrtime() - start);
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
    case 503: case 507:
        metrics_count_error(m, METRICS_ERR_NO_MEMORY);
        break;
    case 500:
        metrics_count_error(m, METRICS_ERR_INTERNAL);
        break;
    default:
        break;
    }
}

http_handler_t api_handler(api_worker_t *w)
{
    return (http_handler_t){
        .body_limit = api_body_limit, .on_request = api_on_request, .on_response = api_on_response, .ctx = w};
}
