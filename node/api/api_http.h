/* api_http: what every API handler needs to read a request and answer it:
 * JSON and query parsing that answers 400 itself, the cache's response
 * shapes (value, miss, stored, deleted, 503 with Retry-After), and the
 * data path's reply interface (route_reply.h) implemented over an HTTP
 * request.
 *
 * Accounting: a request carries which operation it is and, when it fails,
 * why (api_http_set_op / api_http_set_error); the router's response hook
 * reads both, so latency is measured per operation and every 503 is
 * counted by its real cause.
 *
 * Threads: the loop thread that owns the request. Every function that
 * answers consumes the request (http_respond); the caller must not touch it
 * afterwards.
 */
#ifndef DCACHE_API_HTTP_H
#define DCACHE_API_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/swim_proto.h"
#include "http/http_server.h"
#include "node/core/sbuf.h"
#include "node/metrics/metrics.h"
#include "node/route/route_reply.h"

struct json_t;

/* What the API keeps of a request while it is served, in the request's
 * application area (http_request_app): set up by the router as each
 * request starts, read by the response hook. */
#define API_REQ_BY_OP 0xff
typedef struct api_req {
    uint32_t token_slot;             /* the caller's token (api_auth's name slot); UINT32_MAX: anonymous */
    uint8_t role;                    /* the caller's token's tokens_role_t (NONE: anonymous or no --tokens) */
    uint8_t config_action;           /* audited as this audit_action_t; API_REQ_BY_OP: from the operation */
    bool audited;                    /* an action the audit trail records (api_audit) */
    int64_t matched, invalidated;    /* what an invalidation reported; -1: not known */
    char id[48];                     /* X-Request-Id of an audited request, NUL-terminated */
} api_req_t;
_Static_assert(sizeof(api_req_t) <= HTTP_REQUEST_APP_BYTES, "api_req_t must fit the request's application area");
static inline api_req_t *api_req(const http_request_t *r)
{
    return (api_req_t *)http_request_app(r);
}
/* What an invalidation reported, for the request's audit record. */
static inline void api_http_set_counts(http_request_t *r, int64_t matched, int64_t invalidated)
{
    api_req(r)->matched = matched;
    api_req(r)->invalidated = invalidated;
}

/* "X-Cache-Node: ..\r\nX-Cache-Owner: ..\r\n" fits this many bytes. */
#define API_HTTP_NODE_HEADERS_MAX (2 * SWIM_NAME_MAX + 40)

/* Accounting tags on the request. */
void api_http_set_op(http_request_t *r, metrics_op_t op);
void api_http_set_error(http_request_t *r, metrics_err_t cause);
metrics_op_t api_http_op(const http_request_t *r);
/* The cause set by api_http_set_error; false when none was. */
bool api_http_error(const http_request_t *r, metrics_err_t *cause);
/* The request holds one of the node's scan slots until it is answered. */
void api_http_set_scan(http_request_t *r);
bool api_http_scan(const http_request_t *r);

/* 200/4xx/5xx with the buffer's JSON (503 no_memory when the buffer failed);
 * frees the buffer. */
void api_http_sbuf(http_request_t *r, int status, sbuf_t *b);
void api_http_json_headers(http_request_t *r, int status, const char *json, size_t len, const char *headers,
                           size_t headers_len);
/* `status` with Retry-After (seconds) and {"error": message, "code": the
 * cause's name}, counted under that cause. */
void api_http_refuse(http_request_t *r, int status, metrics_err_t cause, const char *message, uint64_t retry_after_s);
/* The same as a 503 with Retry-After: 1. */
void api_http_retry(http_request_t *r, metrics_err_t cause, const char *message);
/* Answers a data-path failure (route_reply.h) as the API does everywhere:
 * 413, or a 503 with its code and Retry-After. */
void api_http_route_error(http_request_t *r, route_error_t err, const char *message);

/* Parses a JSON object body with jansson; on failure answers 400 and
 * returns NULL. The caller owns the returned reference. */
struct json_t *api_http_json_body(http_request_t *r);
/* Reads ?name=N as an integer in [min, max]; absent -> def. Answers 400 and
 * returns false when malformed or out of range. */
bool api_http_query_uint(http_request_t *r, const char *name, uint64_t def, uint64_t min, uint64_t max,
                         uint64_t *out);
/* A glob pattern a request may carry: at most this many bytes and
 * wildcards, so one request cannot cost billions of matching steps over a
 * large cache. */
#define API_HTTP_PATTERN_MAX 256
#define API_HTTP_PATTERN_WILDCARDS_MAX 16
/* Answers 400 and returns false when the pattern is over those bounds. */
bool api_http_pattern_ok(http_request_t *r, const char *pattern, size_t len);
/* Reads ?pattern= into buf (cap bytes); absent or empty: "*" unless
 * required. Answers 400 and returns -1 when bad; else its length. */
long api_http_pattern_param(http_request_t *r, char *buf, size_t cap, bool required);

/* The data path's answers go to this HTTP request. */
route_reply_t api_http_reply(http_request_t *r);

#endif
