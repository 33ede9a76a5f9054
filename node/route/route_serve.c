#include "node/route/route_serve.h"

#include <stdlib.h>
#include <string.h>

#include "node/route/repair.h"
#include "node/route/route_local.h"
#include "node/route/route_read.h"
#include "node/route/route_reply.h"
#include "node/route/route_write.h"

/* ---------- route_reply over a peer call ---------- */

static void route_serve_value(void *ctx, const route_value_t *v, void (*release)(void *), void *release_ctx)
{
    static const uint32_t flags[] = {[ROUTE_SRC_L1] = 0, [ROUTE_SRC_L2] = PEER_F_L2,
                                     [ROUTE_SRC_ORIGIN] = PEER_F_ORIGIN, [ROUTE_SRC_STALE] = PEER_F_STALE};
    peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_OK, .version = v->version,
                    .ttl_ms = (uint64_t)v->ttl_ms,
                    .flags = (unsigned)v->source < sizeof flags / sizeof flags[0] ? flags[v->source] : 0};
    m.value.p = v->value;
    m.value.len = v->len;
    m.content_type.p = (const uint8_t *)v->ct;
    m.content_type.len = v->ctlen;
    peer_server_respond(ctx, &m);
    if (release) release(release_ctx);
}

static void route_serve_miss(void *ctx, const char *node, const char *owner)
{
    (void)node;
    (void)owner;
    peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_NOT_FOUND};
    peer_server_respond(ctx, &m);
}

static void route_serve_written(void *ctx, const route_written_t *w, bool is_delete)
{
    peer_msg_t m = {.type = is_delete ? PEER_MSG_DELETE_RESP : PEER_MSG_PUT_RESP,
                    .status = PEER_STATUS_OK,
                    .version = w->version,
                    .existed = w->existed,
                    .flags = (w->created ? PEER_F_CREATED : 0) | (w->journaled ? PEER_F_JOURNALED : 0)};
    peer_server_respond(ctx, &m);
}

static void route_serve_stored(void *ctx, const route_written_t *w)
{
    route_serve_written(ctx, w, false);
}

static void route_serve_deleted(void *ctx, const route_written_t *w)
{
    route_serve_written(ctx, w, true);
}

/* A write that failed answers with its own response type, which the
 * forwarding node takes as final (UNAVAILABLE: not replicated; with
 * PEER_F_L2: Redis refused it); a GET that needed Redis while it was down
 * answers GET_RESP UNAVAILABLE with PEER_F_L2, so the forwarder tries the
 * next owner and, if none has the key, says Redis was the cause (a syncing
 * node that could not check answers the same without the flag); a GET
 * refused because a newer write of the key waits in this node's journal
 * answers GET_RESP UNAVAILABLE with PEER_F_JOURNALED, and the forwarder
 * answers 503 journal_pending rather than ask an owner that would read
 * Redis's older value (an older forwarder just tries the next owner); a
 * GET whose origin failed answers GET_RESP UNAVAILABLE with PEER_F_ORIGIN,
 * and the forwarder answers 502 origin_error;
 * everything else is an ERROR frame, after which the forwarder tries the
 * next owner (except TOO_LARGE). */
static void route_serve_fail(void *ctx, route_error_t err, const char *message)
{
    peer_call_t *call = ctx;
    peer_msg_type_t type = peer_call_type(call);
    bool write = type == PEER_MSG_PUT || type == PEER_MSG_DELETE;
    if (type == PEER_MSG_GET && (err == ROUTE_ERR_JOURNAL_PENDING || err == ROUTE_ERR_ORIGIN)) {
        peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_UNAVAILABLE,
                        .flags = err == ROUTE_ERR_ORIGIN ? PEER_F_ORIGIN : PEER_F_JOURNALED};
        peer_server_respond(call, &m);
        return;
    }
    if (type == PEER_MSG_GET && (err == ROUTE_ERR_L2_UNAVAILABLE || err == ROUTE_ERR_SYNCING || err == ROUTE_ERR_MINORITY ||
                                 err == ROUTE_ERR_DRAINING)) {
        /* Either way the forwarder asks the next owner. */
        peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_UNAVAILABLE,
                        .flags = err == ROUTE_ERR_L2_UNAVAILABLE ? PEER_F_L2 : 0};
        peer_server_respond(call, &m);
        return;
    }
    if (write && (err == ROUTE_ERR_NOT_REPLICATED || err == ROUTE_ERR_L2_UNAVAILABLE)) {
        peer_msg_t m = {.type = type == PEER_MSG_DELETE ? PEER_MSG_DELETE_RESP : PEER_MSG_PUT_RESP,
                        .status = PEER_STATUS_UNAVAILABLE,
                        .flags = err == ROUTE_ERR_L2_UNAVAILABLE ? PEER_F_L2 : 0};
        peer_server_respond(call, &m);
        return;
    }
    peer_server_respond_error(call, err == ROUTE_ERR_TOO_LARGE ? PEER_STATUS_TOO_LARGE : PEER_STATUS_UNAVAILABLE,
                              message);
}

static const route_reply_ops_t route_serve_reply_ops = {
    .value = route_serve_value,
    .miss = route_serve_miss,
    .stored = route_serve_stored,
    .deleted = route_serve_deleted,
    .fail = route_serve_fail,
};

static route_reply_t route_serve_reply(peer_call_t *call)
{
    return (route_reply_t){.ops = &route_serve_reply_ops, .ctx = call};
}

/* ---------- requests ---------- */

static peer_status_t route_serve_store_status(store_status_t st)
{
    switch (st) {
    case STORE_OK: return PEER_STATUS_OK;
    case STORE_STALE: return PEER_STATUS_STALE;
    case STORE_TOO_LARGE: return PEER_STATUS_TOO_LARGE;
    case STORE_BAD_KEY: return PEER_STATUS_BAD_REQUEST;
    default: return PEER_STATUS_UNAVAILABLE;
    }
}

static store_put_args_t route_serve_put_args(const peer_msg_t *req)
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

static void route_serve_put(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    store_put_args_t args = route_serve_put_args(req);
    if (!(req->flags & PEER_F_REPLICA)) {
        /* Forwarded to us as the primary (or the acting one). */
        route_write_coordinate_put(w, route_serve_reply(call), &args, req->rid);
        return;
    }
    bool created = false;
    store_status_t st = route_write_replica_put(w->route, &args, &created);
    if (st == STORE_OK || st == STORE_STALE) route_write_note_rid(w->route, req->rid, req->version, created);
    peer_msg_t m = {.type = PEER_MSG_PUT_RESP,
                    .status = route_serve_store_status(st),
                    .version = req->version,
                    .flags = created ? PEER_F_CREATED : 0};
    peer_server_respond(call, &m);
}

static void route_serve_delete(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    if (!(req->flags & PEER_F_REPLICA)) {
        route_write_coordinate_delete(w, route_serve_reply(call), (const char *)req->key.p, req->key.len, req->rid);
        return;
    }
    if (!route_plausible(w->route, req->version)) {
        peer_server_respond_error(call, PEER_STATUS_BAD_REQUEST, "version from a clock too far ahead");
        return;
    }
    peer_msg_t m = {.type = PEER_MSG_DELETE_RESP,
                    .status = PEER_STATUS_OK,
                    .existed = route_write_replica_delete(w->route, req->key.p, req->key.len, req->version)};
    route_write_note_rid(w->route, req->rid, req->version, m.existed);
    peer_server_respond(call, &m);
}

static void route_serve_invalidate(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
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
    uint64_t primary = route_local_invalidate_keys(w, keys, n, req->version);
    free(keys);
    peer_msg_t m = {.type = PEER_MSG_INVALIDATE_RESP, .matched = primary, .invalidated = primary};
    peer_server_respond(call, &m);
}

static void route_serve_invalidate_pattern(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    peer_msg_t m = {.type = PEER_MSG_INVALIDATE_RESP};
    route_local_invalidate_pattern(w, (const char *)req->pattern.p, req->pattern.len, req->dry_run, req->version,
                                   &m.matched, &m.invalidated);
    peer_server_respond(call, &m);
}

static void route_serve_keys(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    route_local_page_t page = {0};
    if (!route_local_keys(w, (const char *)req->pattern.p, req->pattern.len, req->cursor, req->limit,
                          (req->flags & PEER_F_PRIMARY) != 0, &page)) {
        peer_server_respond_error(call, PEER_STATUS_UNAVAILABLE, "out of memory");
        return;
    }
    peer_msg_t m = {.type = PEER_MSG_KEYS_RESP, .cursor = page.next, .count = (uint32_t)page.n,
                    .keyinfos = page.items};
    peer_server_respond(call, &m);
    route_local_page_free(&page);
}

/* Asked by another owner checking its copy (PEER_F_LOCAL): what this
 * node's L1 holds, and when it does not hold the key, the version of the
 * delete that removed it (NOT_FOUND with a version), so the asker can tell
 * "deleted since" from "never had it". Never forwarded, never Redis: two
 * nodes that both miss must not wait on each other. */
static void route_serve_get_local(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    route_t *a = w->route;
    store_entry_t *e;
    if (store_get(a->store, req->key.p, req->key.len, &e) == STORE_OK) {
        peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_OK, .version = store_entry_version(e),
                        .ttl_ms = (uint64_t)route_entry_ttl_ms(a, e)};
        m.value.p = (const uint8_t *)store_entry_value(e, &m.value.len);
        size_t ctlen = 0;
        const char *ct = store_entry_content_type(e, &ctlen);
        m.content_type = (peer_bytes_t){(const uint8_t *)ct, ct ? ctlen : 0};
        peer_server_respond(call, &m);
        store_entry_release(e);
        return;
    }
    peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_NOT_FOUND};
    if (a->tomb) m.version = tomb_version(a->tomb, req->key.p, req->key.len, store_now_ms(a->store));
    peer_server_respond(call, &m);
}

/* Whether this node has handed the asking member (in the run it names)
 * everything it had for it: that member is in our ring in that run, and no
 * handoff is running here (one starts, synchronously, with every ring we
 * publish). */
static void route_serve_sync(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    route_t *a = w->route;
    topo_t *t = route_topo(w);
    bool known = false;
    for (size_t i = 0; t && i < t->n && !known; i++) {
        const topo_member_t *m = &t->members[i];
        known = strlen(m->name) == req->name.len && memcmp(m->name, req->name.p, req->name.len) == 0 &&
                memcmp(m->run, req->run, sizeof m->run) == 0;
    }
    peer_msg_t m = {.type = PEER_MSG_SYNC_RESP,
                    .done = known && atomic_load(&a->handoff.running) == 0,
                    .clock = route_stamp(a)};
    peer_server_respond(call, &m);
}

void route_serve(peer_call_t *call, const peer_msg_t *req, void *ctx)
{
    route_worker_t *w = ctx;
    switch (req->type) {
    case PEER_MSG_GET:
        if (req->flags & PEER_F_LOCAL) route_serve_get_local(w, call, req);
        else route_read_serve(w, route_serve_reply(call), (const char *)req->key.p, req->key.len);
        break;
    case PEER_MSG_SYNC: route_serve_sync(w, call, req); break;
    case PEER_MSG_EVENT: {
        route_t *a = w->route;
        if (a->on_event) a->on_event(a->on_event_ctx, req);
        peer_msg_t m = {.type = PEER_MSG_PONG};
        peer_server_respond(call, &m);
        break;
    }
    case PEER_MSG_REPAIR_DIGEST: repair_serve_digest(w, call, req); break;
    case PEER_MSG_REPAIR_OFFER: repair_serve_offer(w, call, req); break;
    case PEER_MSG_PUT: route_serve_put(w, call, req); break;
    case PEER_MSG_DELETE: route_serve_delete(w, call, req); break;
    case PEER_MSG_INVALIDATE: route_serve_invalidate(w, call, req); break;
    case PEER_MSG_INVALIDATE_PATTERN: route_serve_invalidate_pattern(w, call, req); break;
    case PEER_MSG_KEYS: route_serve_keys(w, call, req); break;
    case PEER_MSG_HANDOFF: {
        peer_msg_t m = {.type = PEER_MSG_HANDOFF_RESP, .accepted = route_local_accept_handoff(w->route, req)};
        peer_server_respond(call, &m);
        break;
    }
    default: peer_server_respond_error(call, PEER_STATUS_UNSUPPORTED, "not a request"); break;
    }
}
