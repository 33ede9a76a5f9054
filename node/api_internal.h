/* api_internal: what api.c, api_cache.c and api_admin.c share. Not a public
 * interface. */
#ifndef DCACHE_API_INTERNAL_H
#define DCACHE_API_INTERNAL_H

#include "node/api.h"
#include "node/sbuf.h"

/* Request tags: which operation a request is, for latency accounting. */
#define API_TAG(op) ((int)(op) + 1)

void api_respond_sbuf(http_request_t *r, int status, sbuf_t *b);
/* Parses a JSON object body with jansson; on failure answers 400 and
 * returns NULL. The caller owns the returned reference. */
struct json_t *api_parse_json_body(http_request_t *r);
/* Reads ?name=N as an integer in [min, max]; absent -> def. Answers 400 and
 * returns false when malformed or out of range. */
bool api_query_uint(http_request_t *r, const char *name, uint64_t def, uint64_t min, uint64_t max, uint64_t *out);

void api_cache_item(api_t *a, http_request_t *r, const char *raw_key, size_t raw_len);
void api_cache_keys(api_t *a, http_request_t *r);
void api_invalidate_keys(api_t *a, http_request_t *r);
void api_invalidate_pattern(api_t *a, http_request_t *r);
void api_invalidate_preview(api_t *a, http_request_t *r);

void api_metrics_prometheus(api_t *a, http_request_t *r);
void api_metrics_json(api_t *a, http_request_t *r);
void api_metrics_history(api_t *a, http_request_t *r);
void api_health(api_t *a, http_request_t *r);
void api_ready(api_t *a, http_request_t *r);
void api_cluster_members(api_t *a, http_request_t *r);
void api_cluster_prometheus(api_t *a, sbuf_t *b);

#endif
