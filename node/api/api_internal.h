/* api_internal: what the api*.c files share. Not a public
 * interface. */
#ifndef DCACHE_API_INTERNAL_H
#define DCACHE_API_INTERNAL_H

#include "node/api/api.h"
#include "node/core/sbuf.h"

/* Buckets of a worker's table of forwarded GETs in flight (a power of 2). */
#define API_FLIGHT_BUCKETS 1024u

/* Request tags: which operation a request is, for latency accounting. */
#define API_TAG(op) ((int)(op) + 1)

void api_respond_sbuf(http_request_t *r, int status, sbuf_t *b);
/* Parses a JSON object body with jansson; on failure answers 400 and
 * returns NULL. The caller owns the returned reference. */
struct json_t *api_parse_json_body(http_request_t *r);
/* Reads ?name=N as an integer in [min, max]; absent -> def. Answers 400 and
 * returns false when malformed or out of range. */
bool api_query_uint(http_request_t *r, const char *name, uint64_t def, uint64_t min, uint64_t max, uint64_t *out);

/* "X-Cache-Node: ..\r\nX-Cache-Owner: ..\r\n" fits this many bytes. */
#define API_NODE_HEADERS_MAX (2 * SWIM_NAME_MAX + 40)

/* A value to answer a GET with, wherever it came from. */
typedef struct api_value {
    const char *value;
    size_t len;
    const char *ct;        /* content type; ctlen 0 = none */
    size_t ctlen;
    uint64_t version;
    int64_t ttl_ms;        /* remaining; 0 = never expires */
    const char *node;      /* X-Cache-Node: who answered */
    const char *owner;     /* X-Cache-Owner: the key's primary */
    const char *cache;     /* X-Cache: NULL = "HIT" (L1), "HIT-L2" */
} api_value_t;

uint64_t api_stamp(api_t *a);
/* Tombstones (node/tomb.h), tolerant of a missing table. */
static inline void api_tomb_add(api_t *a, const void *key, size_t klen, uint64_t version)
{
    if (a->tomb) tomb_add(a->tomb, key, klen, version, store_now_ms(a->store));
}
static inline bool api_tomb_blocks(api_t *a, const void *key, size_t klen, uint64_t version)
{
    return a->tomb && tomb_blocks(a->tomb, key, klen, version, store_now_ms(a->store));
}
static inline const char *api_self_name(api_t *a)
{
    const char *n = atomic_load_explicit(&a->self_name, memory_order_acquire);
    return n ? n : "";
}
void api_observe(api_t *a, uint64_t version);
int64_t api_entry_ttl_ms(api_t *a, const store_entry_t *e);
/* Writes the two node headers into buf (API_NODE_HEADERS_MAX bytes). */
size_t api_node_headers(char *buf, const char *node, const char *owner);
void api_respond_json_headers(http_request_t *r, int status, const char *json, size_t len, const char *headers,
                              size_t headers_len);
/* 200 with the value (or 304 for a matching If-None-Match); release(ctx)
 * runs once the body is no longer needed (NULL: the body is copied). */
void api_respond_value(http_request_t *r, const api_value_t *v, void (*release)(void *), void *ctx);
void api_respond_miss(http_request_t *r, const char *node, const char *owner);
/* journaled: the write is in the local journal, not yet in Redis
 * (X-Cache-Durability: journal). */
void api_respond_put(http_request_t *r, const char *key, size_t klen, uint64_t version, int64_t ttl_ms,
                     bool created, const char *node, const char *owner, bool journaled);
void api_respond_deleted(http_request_t *r, bool existed, const char *node, const char *owner, bool journaled);
void api_respond_store_error(http_request_t *r, store_status_t st);
/* 503 with Retry-After: 1 and {"error": message, "code": code}. */
void api_respond_retry(http_request_t *r, const char *code, const char *message);

/* Which operation a forward is (route.forwarded[] index). */
enum { API_FWD_GET = 0, API_FWD_PUT = 1, API_FWD_DELETE = 2 };

/* The key's primary owner's name (this node's without a ring). */
static inline const char *api_owner_name(api_t *a, const topo_t *t, const uint32_t *owners, size_t n)
{
    return t && n ? t->members[owners[0]].name : api_self_name(a);
}

/* 503 owner_unavailable with Retry-After. */
void api_respond_unavailable(http_request_t *r, const char *message);
/* Out of memory, to whichever asked: a client (503) or a peer. */
void api_reply_no_memory(http_request_t *r, peer_call_t *call);

/* Routing (api_route.c reads, api_write.c writes): serve here when this node owns the key, else
 * forward to the owners in order. args->version is stamped here. */
void api_route_get(api_worker_t *w, http_request_t *r, const char *key, size_t klen);
void api_route_put(api_worker_t *w, http_request_t *r, const store_put_args_t *args);
void api_route_delete(api_worker_t *w, http_request_t *r, const char *key, size_t klen);
/* A GET forwarded by a peer: served from this node (and, right after a
 * ring change, the key's previous owners), never forwarded to the owners. */
void api_serve_get(api_worker_t *w, peer_call_t *call, const char *key, size_t klen);
/* Coordinating a write as the key's primary (or acting primary): store
 * here, replicate to the other owners, answer `r` (HTTP) or `call` (peer)
 * once --write-acks owners have it. */
void api_coordinate_put(api_worker_t *w, http_request_t *r, peer_call_t *call, const store_put_args_t *args);
void api_coordinate_delete(api_worker_t *w, http_request_t *r, peer_call_t *call, const char *key, size_t klen);
/* Serving the peer channel (api_peer.c). */
void api_peer_serve(peer_call_t *call, const peer_msg_t *req, void *ctx);

void api_cache_item(api_worker_t *w, http_request_t *r, const char *raw_key, size_t raw_len);
/* Cluster-wide listing and invalidation (api_scatter.c). */
void api_cache_keys(api_worker_t *w, http_request_t *r);
void api_invalidate_keys(api_worker_t *w, http_request_t *r);
void api_invalidate_pattern(api_worker_t *w, http_request_t *r);
void api_invalidate_preview(api_worker_t *w, http_request_t *r);
/* True when this node is the key's primary owner (or there is no ring). */
bool api_is_primary(api_worker_t *w, const void *key, size_t klen);
/* This node's part of an invalidation: removes every copy held here and
 * counts the keys it is the primary of (so a cluster-wide sum counts each
 * key once). */
void api_local_invalidate_pattern(api_worker_t *w, const char *pattern, size_t plen, bool dry_run,
                                  uint64_t *matched, uint64_t *invalidated);
uint64_t api_local_invalidate_keys(api_worker_t *w, const peer_bytes_t *keys, size_t n);
/* One page of this node's keys (items point into bytes; both owned). */
typedef struct api_keys_page {
    peer_keyinfo_t *items;
    char *bytes;
    size_t n;
    uint64_t next;
} api_keys_page_t;
bool api_local_keys(api_worker_t *w, const char *pattern, size_t plen, uint64_t cursor, uint32_t limit,
                    bool primary_only, api_keys_page_t *page);
void api_keys_page_free(api_keys_page_t *page);

void api_metrics_prometheus(api_t *a, http_request_t *r);
void api_metrics_json(api_t *a, http_request_t *r);
void api_metrics_history(api_t *a, http_request_t *r);
void api_health(api_t *a, http_request_t *r);
void api_ready(api_t *a, http_request_t *r);
void api_cluster_members(api_t *a, http_request_t *r);
/* GET /api/cluster/ring[?key=K] (api_ring.c). */
void api_cluster_ring(api_t *a, http_request_t *r);
void api_cluster_prometheus(api_t *a, sbuf_t *b);
void api_route_prometheus(api_t *a, sbuf_t *b);
void api_l2_prometheus(api_t *a, sbuf_t *b);

#endif
