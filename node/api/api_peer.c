/* Serving the peer channel: what other nodes ask of this one. A request
 * marked PEER_F_FORWARDED is answered from this node's own state, never
 * forwarded again; a write marked PEER_F_REPLICA comes from a primary and
 * only stores (newest version wins). */
#include <stdlib.h>
#include <string.h>

#include "node/api/api_internal.h"


static peer_status_t api_peer_store_status(store_status_t st)
{
    switch (st) {
    case STORE_OK: return PEER_STATUS_OK;
    case STORE_STALE: return PEER_STATUS_STALE;
    case STORE_TOO_LARGE: return PEER_STATUS_TOO_LARGE;
    case STORE_BAD_KEY: return PEER_STATUS_BAD_REQUEST;
    default: return PEER_STATUS_UNAVAILABLE;
    }
}

static store_put_args_t api_peer_put_args(const peer_msg_t *req)
{
    store_put_args_t args = {.key = req->key.p,
                             .key_len = req->key.len,
                             .value = req->value.p,
                             .value_len = req->value.len,
                             .content_type = (const char *)req->content_type.p,
                             .content_type_len = req->content_type.len,
                             .ttl_ms = req->ttl_ms > INT64_MAX ? INT64_MAX : (int64_t)req->ttl_ms,
                             .version = req->version};
    return args;
}

static void api_peer_put(api_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    api_t *a = w->api;
    store_put_args_t args = api_peer_put_args(req);
    if (!(req->flags & PEER_F_REPLICA)) {
        /* Forwarded to us as the primary (or the acting one). */
        api_coordinate_put(w, NULL, call, &args);
        return;
    }
    api_observe(a, req->version);
    bool replaced = false;
    /* A delete that overtook this write wins (the primary counts it done). */
    store_status_t st = api_tomb_blocks(a, args.key, args.key_len, args.version)
                            ? STORE_STALE
                            : store_put_if_newer(a->store, &args, &replaced);
    peer_msg_t m = {.type = PEER_MSG_PUT_RESP,
                    .status = api_peer_store_status(st),
                    .version = req->version,
                    .flags = replaced ? 0 : PEER_F_CREATED};
    peer_server_respond(call, &m);
}

static void api_peer_delete(api_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    api_t *a = w->api;
    if (!(req->flags & PEER_F_REPLICA)) {
        api_coordinate_delete(w, NULL, call, (const char *)req->key.p, req->key.len);
        return;
    }
    api_observe(a, req->version);
    api_tomb_add(a, req->key.p, req->key.len, req->version);
    peer_msg_t m = {.type = PEER_MSG_DELETE_RESP,
                    .status = PEER_STATUS_OK,
                    /* A newer write that overtook this delete stays. */
                    .existed = store_delete_versioned(a->store, req->key.p, req->key.len, STORE_DELETE_IF_OLDER,
                                                      req->version)};
    peer_server_respond(call, &m);
}

static void api_peer_invalidate(api_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    peer_bytes_t *keys = malloc((req->count ? req->count : 1) * sizeof *keys);
    if (!keys) {
        peer_server_respond_error(call, PEER_STATUS_UNAVAILABLE, "out of memory");
        return;
    }
    peer_iter_t it;
    peer_iter_init(&it, req);
    size_t n = 0;
    while (n < req->count && peer_iter_key(&it, &keys[n])) n++;
    uint64_t primary = api_local_invalidate_keys(w, keys, n);
    free(keys);
    peer_msg_t m = {.type = PEER_MSG_INVALIDATE_RESP, .matched = primary, .invalidated = primary};
    peer_server_respond(call, &m);
}

static void api_peer_invalidate_pattern(api_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    peer_msg_t m = {.type = PEER_MSG_INVALIDATE_RESP};
    api_local_invalidate_pattern(w, (const char *)req->pattern.p, req->pattern.len, req->dry_run, &m.matched,
                                 &m.invalidated);
    peer_server_respond(call, &m);
}

static void api_peer_keys(api_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    api_keys_page_t page = {0};
    if (!api_local_keys(w, (const char *)req->pattern.p, req->pattern.len, req->cursor, req->limit,
                        (req->flags & PEER_F_PRIMARY) != 0, &page)) {
        peer_server_respond_error(call, PEER_STATUS_UNAVAILABLE, "out of memory");
        return;
    }
    peer_msg_t m = {.type = PEER_MSG_KEYS_RESP, .cursor = page.next, .count = (uint32_t)page.n,
                    .keyinfos = page.items};
    peer_server_respond(call, &m);
    api_keys_page_free(&page);
}

static void api_peer_handoff(api_t *a, peer_call_t *call, const peer_msg_t *req)
{
    peer_iter_t it;
    peer_iter_init(&it, req);
    peer_entry_t e;
    uint32_t accepted = 0;
    int64_t now = store_now_ms(a->store);
    while (peer_iter_entry(&it, &e)) {
        if (e.expires_at_ms && (int64_t)e.expires_at_ms <= now) continue;
        if (api_tomb_blocks(a, e.key.p, e.key.len, e.version)) continue; /* deleted since */
        api_observe(a, e.version);
        store_put_args_t args = {.key = e.key.p,
                                 .key_len = e.key.len,
                                 .value = e.value.p,
                                 .value_len = e.value.len,
                                 .content_type = (const char *)e.content_type.p,
                                 .content_type_len = e.content_type.len,
                                 .ttl_ms = e.expires_at_ms ? (int64_t)e.expires_at_ms - now : 0,
                                 .version = e.version};
        if (store_put_if_newer(a->store, &args, NULL) == STORE_OK) accepted++;
    }
    peer_msg_t m = {.type = PEER_MSG_HANDOFF_RESP, .accepted = accepted};
    peer_server_respond(call, &m);
}

void api_peer_serve(peer_call_t *call, const peer_msg_t *req, void *ctx)
{
    api_worker_t *w = ctx;
    api_t *a = w->api;
    switch (req->type) {
    case PEER_MSG_GET: api_serve_get(w, call, (const char *)req->key.p, req->key.len); break;
    case PEER_MSG_PUT: api_peer_put(w, call, req); break;
    case PEER_MSG_DELETE: api_peer_delete(w, call, req); break;
    case PEER_MSG_INVALIDATE: api_peer_invalidate(w, call, req); break;
    case PEER_MSG_INVALIDATE_PATTERN: api_peer_invalidate_pattern(w, call, req); break;
    case PEER_MSG_KEYS: api_peer_keys(w, call, req); break;
    case PEER_MSG_HANDOFF: api_peer_handoff(a, call, req); break;
    default: peer_server_respond_error(call, PEER_STATUS_UNSUPPORTED, "not a request"); break;
    }
}
