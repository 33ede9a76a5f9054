#include "node/api/api_http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_url.h"
#include "node/store/store.h"

#define API_HTTP_DEFAULT_CONTENT_TYPE "application/octet-stream"

/* The request tag holds the operation + 1 in its low byte, the error
 * cause + 1 in the next (0: unset), and whether it holds a scan slot. */
#define API_HTTP_TAG_SCAN 0x10000

void api_http_set_op(http_request_t *r, metrics_op_t op)
{
    http_request_set_tag(r, (http_request_tag(r) & ~0xff) | ((int)op + 1));
}

void api_http_set_error(http_request_t *r, metrics_err_t cause)
{
    http_request_set_tag(r, (http_request_tag(r) & ~0xff00) | (((int)cause + 1) << 8));
}

void api_http_set_scan(http_request_t *r)
{
    http_request_set_tag(r, http_request_tag(r) | API_HTTP_TAG_SCAN);
}

bool api_http_scan(const http_request_t *r)
{
    return (http_request_tag(r) & API_HTTP_TAG_SCAN) != 0;
}

metrics_op_t api_http_op(const http_request_t *r)
{
    int op = http_request_tag(r) & 0xff;
    return op > 0 && op <= METRICS_OP_COUNT ? (metrics_op_t)(op - 1) : METRICS_OP_OTHER;
}

bool api_http_error(const http_request_t *r, metrics_err_t *cause)
{
    int e = (http_request_tag(r) >> 8) & 0xff;
    if (e <= 0 || e > METRICS_ERR_COUNT) return false;
    *cause = (metrics_err_t)(e - 1);
    return true;
}


void api_http_sbuf(http_request_t *r, int status, sbuf_t *b)
{
    if (b->failed) {
        sbuf_free(b);
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
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

json_t *api_http_json_body(http_request_t *r)
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

bool api_http_query_uint(http_request_t *r, const char *name, uint64_t def, uint64_t min, uint64_t max, uint64_t *out)
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

bool api_http_pattern_ok(http_request_t *r, const char *pattern, size_t len)
{
    size_t wild = 0;
    for (size_t i = 0; i < len; i++) {
        if (pattern[i] == '\\') i++;
        else if (pattern[i] == '*' || pattern[i] == '?' || pattern[i] == '[') wild++;
    }
    if (len <= API_HTTP_PATTERN_MAX && wild <= API_HTTP_PATTERN_WILDCARDS_MAX) return true;
    char msg[128];
    snprintf(msg, sizeof msg, "a pattern is at most %d bytes with at most %d wildcards (* ? [)", API_HTTP_PATTERN_MAX,
             API_HTTP_PATTERN_WILDCARDS_MAX);
    http_respond_error(r, 400, "bad_pattern", msg);
    return false;
}

long api_http_pattern_param(http_request_t *r, char *buf, size_t cap, bool required)
{
    size_t qlen;
    const char *q = http_request_query(r, &qlen);
    long n = http_query_get(q, qlen, "pattern", buf, cap);
    if (n == -2) {
        http_respond_error(r, 400, "bad_pattern", "pattern is malformed or longer than 1024 bytes");
        return -1;
    }
    if (n <= 0) {
        if (required) {
            http_respond_error(r, 400, "bad_pattern", "a non-empty pattern parameter is required");
            return -1;
        }
        buf[0] = '*';
        buf[1] = '\0';
        return 1;
    }
    return api_http_pattern_ok(r, buf, (size_t)n) ? n : -1;
}

static char *api_http_hex(char *p, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) *p++ = hex[(v >> (i * 4)) & 15];
    return p;
}

static char *api_http_dec(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static char *api_http_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static size_t api_http_node_headers(char *buf, const char *node, const char *owner)
{
    char *p = api_http_str(buf, "X-Cache-Node: ");
    p = api_http_str(p, node);
    p = api_http_str(p, "\r\nX-Cache-Owner: ");
    p = api_http_str(p, owner);
    p = api_http_str(p, "\r\n");
    return (size_t)(p - buf);
}

void api_http_json_headers(http_request_t *r, int status, const char *json, size_t len, const char *headers,
                           size_t headers_len)
{
    http_response_t resp = {.status = status,
                            .content_type = "application/json",
                            .headers = headers,
                            .headers_len = headers_len,
                            .body = json,
                            .body_len = len};
    http_respond(r, &resp);
}

static void api_http_miss(void *ctx, const char *node, const char *owner)
{
    http_request_t *r = ctx;
    static const char body[] = "{\"error\":\"key not found\",\"code\":\"not_found\"}";
    char hdr[API_HTTP_NODE_HEADERS_MAX + 20];
    size_t n = api_http_node_headers(hdr, node, owner);
    memcpy(hdr + n, "X-Cache: MISS\r\n", 15);
    api_http_json_headers(r, 404, body, sizeof body - 1, hdr, n + 15);
}

static bool api_http_etag_matches(const char *inm, size_t len, const char *etag, size_t etag_len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (inm[i] == ' ' || inm[i] == ',')) i++;
        if (i < len && inm[i] == '*') return true;
        if (i + 2 < len && inm[i] == 'W' && inm[i + 1] == '/') i += 2;
        size_t start = i;
        while (i < len && inm[i] != ',') i++;
        size_t end = i;
        while (end > start && inm[end - 1] == ' ') end--;
        if (end - start == etag_len && memcmp(inm + start, etag, etag_len) == 0) return true;
    }
    return false;
}

static void api_http_value(void *rctx, const route_value_t *v, void (*release)(void *), void *ctx)
{
    http_request_t *r = rctx;
    char hdr[256 + API_HTTP_NODE_HEADERS_MAX], *p = hdr;
    p = api_http_str(p, "X-Cache: ");
    /* Where the value was found, whichever node served it. */
    static const char *const sources[] = {[ROUTE_SRC_L1] = "HIT", [ROUTE_SRC_L2] = "HIT-L2",
                                          [ROUTE_SRC_ORIGIN] = "MISS-ORIGIN", [ROUTE_SRC_STALE] = "STALE"};
    p = api_http_str(p, (unsigned)v->source < sizeof sources / sizeof sources[0] ? sources[v->source] : "HIT");
    p = api_http_str(p, "\r\nETag: \"");
    char *etag = p - 1;
    p = api_http_hex(p, v->version);
    *p++ = '"';
    size_t etag_len = (size_t)(p - etag);
    if (v->ttl_ms > 0) {
        p = api_http_str(p, "\r\nCache-Control: max-age=");
        p = api_http_dec(p, (uint64_t)(v->ttl_ms + 999) / 1000);
    }
    p = api_http_str(p, "\r\nX-Cache-Version: ");
    p = api_http_dec(p, v->version);
    p = api_http_str(p, "\r\n");
    p += api_http_node_headers(p, v->node, v->owner);

    size_t inm_len;
    const char *inm = http_request_header(r, "if-none-match", &inm_len);
    if (inm && api_http_etag_matches(inm, inm_len, etag, etag_len)) {
        if (release) release(ctx);
        http_response_t resp = {.status = 304, .headers = hdr, .headers_len = (size_t)(p - hdr)};
        http_respond(r, &resp);
        return;
    }
    http_response_t resp = {
        .status = 200,
        .content_type = v->ctlen ? v->ct : API_HTTP_DEFAULT_CONTENT_TYPE,
        .content_type_len = v->ctlen ? v->ctlen : sizeof API_HTTP_DEFAULT_CONTENT_TYPE - 1,
        .headers = hdr,
        .headers_len = (size_t)(p - hdr),
        .body = v->value,
        .body_len = v->len,
        .body_release = release,
        .body_release_ctx = ctx,
    };
    http_respond(r, &resp);
}

static size_t api_http_write_headers(char *hdr, const char *node, const char *owner, bool journaled)
{
    size_t n = api_http_node_headers(hdr, node, owner);
    if (journaled) {
        static const char j[] = "X-Cache-Durability: journal\r\n";
        memcpy(hdr + n, j, sizeof j - 1);
        n += sizeof j - 1;
    }
    return n;
}

static void api_http_stored(void *ctx, const route_written_t *w)
{
    http_request_t *r = ctx;
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{");
    sbuf_json_bytes_member(&b, "key", w->key, w->klen);
    sbuf_printf(&b, ",\"version\":\"%llu\",\"ttl\":%lld}", (unsigned long long)w->version,
                (long long)(w->ttl_ms / 1000));
    if (b.failed) {
        sbuf_free(&b);
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", "out of memory building the response");
        return;
    }
    char hdr[API_HTTP_NODE_HEADERS_MAX + 40];
    size_t n = api_http_write_headers(hdr, w->node, w->owner, w->journaled);
    api_http_json_headers(r, w->created ? 201 : 200, b.data, b.len, hdr, n);
    sbuf_free(&b);
}

static void api_http_deleted(void *ctx, const route_written_t *w)
{
    http_request_t *r = ctx;
    const char *body = w->existed ? "{\"deleted\":true}" : "{\"deleted\":false}";
    char hdr[API_HTTP_NODE_HEADERS_MAX + 40];
    size_t n = api_http_write_headers(hdr, w->node, w->owner, w->journaled);
    api_http_json_headers(r, 200, body, strlen(body), hdr, n);
}

void api_http_retry(http_request_t *r, metrics_err_t cause, const char *message)
{
    api_http_refuse(r, 503, cause, message, 1);
}

void api_http_refuse(http_request_t *r, int status, metrics_err_t cause, const char *message, uint64_t retry_after_s)
{
    char hdr[48];
    int hn = snprintf(hdr, sizeof hdr, "Retry-After: %llu\r\n", (unsigned long long)retry_after_s);
    api_http_set_error(r, cause);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"error\":");
    sbuf_json_string(&b, message, strlen(message));
    sbuf_printf(&b, ",\"code\":\"%s\"}", metrics_err_name(cause));
    if (b.failed) {
        sbuf_free(&b);
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    api_http_json_headers(r, status, b.data, b.len, hdr, (size_t)hn);
    sbuf_free(&b);
}

void api_http_route_error(http_request_t *r, route_error_t err, const char *message)
{
    switch (err) {
    case ROUTE_ERR_TOO_LARGE: http_respond_error(r, 413, "value_too_large", message); break;
    case ROUTE_ERR_OWNER_UNAVAILABLE: api_http_retry(r, METRICS_ERR_OWNER_UNAVAILABLE, message); break;
    case ROUTE_ERR_L2_UNAVAILABLE: api_http_retry(r, METRICS_ERR_L2_UNAVAILABLE, message); break;
    case ROUTE_ERR_NOT_REPLICATED: api_http_retry(r, METRICS_ERR_NOT_REPLICATED, message); break;
    case ROUTE_ERR_SYNCING: api_http_retry(r, METRICS_ERR_SYNCING, message); break;
    case ROUTE_ERR_MINORITY: api_http_retry(r, METRICS_ERR_MINORITY, message); break;
    case ROUTE_ERR_DRAINING: api_http_retry(r, METRICS_ERR_DRAINING, message); break;
    case ROUTE_ERR_JOURNAL_PENDING: api_http_retry(r, METRICS_ERR_JOURNAL_PENDING, message); break;
    case ROUTE_ERR_CLOCK_SKEW: api_http_retry(r, METRICS_ERR_CLOCK_SKEW, message); break;
    case ROUTE_ERR_ORIGIN: api_http_refuse(r, 502, METRICS_ERR_ORIGIN, message, 1); break;
    default:
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", message);
        break;
    }
}

static void api_http_fail(void *ctx, route_error_t err, const char *message)
{
    api_http_route_error(ctx, err, message);
}

static const route_reply_ops_t api_http_reply_ops = {
    .value = api_http_value,
    .miss = api_http_miss,
    .stored = api_http_stored,
    .deleted = api_http_deleted,
    .fail = api_http_fail,
};

route_reply_t api_http_reply(http_request_t *r)
{
    return (route_reply_t){.ops = &api_http_reply_ops, .ctx = r};
}
