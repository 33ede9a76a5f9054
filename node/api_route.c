/* Routing a key's requests to its owners (DESIGN.md section 4): GETs are
 * served by any owner and forwarded (coalesced) otherwise; PUT and DELETE
 * go to the primary, which stamps a version, stores, replicates to the
 * other owners and answers once --write-acks of them have it. An owner that
 * fails or does not answer in time is skipped for the next one.
 *
 * Forwarded requests carry PEER_F_FORWARDED and are never forwarded again
 * (api_peer.c serves them from what the receiver holds), so two nodes that
 * briefly disagree about the ring cannot bounce a request between them. */
#include <stdlib.h>
#include <string.h>

#include "node/api_internal.h"
#include "node/log.h"

#define API_FLIGHT_MAX 65536u   /* forwarded GETs in flight per worker; more are not coalesced */

enum { API_FWD_GET = 0, API_FWD_PUT = 1, API_FWD_DELETE = 2 };

static const char *api_owner_name(api_t *a, const topo_t *t, const uint32_t *owners, size_t n)
{
    return t && n ? t->members[owners[0]].name : api_self_name(a);
}

/* The failures that say "this peer is down", as opposed to "this peer did
 * not do it": a write need not wait for an owner known to be down. */
static bool api_peer_down(peer_result_t res)
{
    return res == PEER_ERR_CONNECT || res == PEER_ERR_CLOSED || res == PEER_ERR_BREAKER || res == PEER_ERR_BACKOFF;
}

static void api_respond_unavailable(http_request_t *r, const char *message)
{
    static const char hdr[] = "Retry-After: 1\r\n";
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"error\":");
    sbuf_json_string(&b, message, strlen(message));
    sbuf_puts(&b, ",\"code\":\"owner_unavailable\"}");
    if (b.failed) {
        sbuf_free(&b);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    api_respond_json_headers(r, 503, b.data, b.len, hdr, sizeof hdr - 1);
    sbuf_free(&b);
}

/* ---------- GET: coalesced forwarding ---------- */

typedef struct api_flight {
    struct api_flight *next;        /* hash chain */
    api_worker_t *w;
    uint64_t hash;
    bool in_table;
    char *key;
    size_t klen;
    http_request_t **waiters;
    size_t nwaiters, cap;
    topo_t *topo;                   /* own reference */
    uint32_t owners[RING_REPLICAS_MAX];
    size_t nowners, next_owner;
    char owner[SWIM_NAME_MAX];
} api_flight_t;

/* A forwarded value shared by every waiter's response. */
typedef struct api_shared_value {
    unsigned refs;
    char node[SWIM_NAME_MAX];
    char *ct;
    size_t ctlen, len;
    uint64_t version;
    int64_t ttl_ms;
    char data[];
} api_shared_value_t;

static void api_shared_value_release(void *p)
{
    api_shared_value_t *v = p;
    if (--v->refs == 0) free(v);
}

static api_flight_t **api_flight_slot(api_worker_t *w, uint64_t hash, const char *key, size_t klen)
{
    api_flight_t **pp = &w->flights[hash & (API_FLIGHT_BUCKETS - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hash && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0) break;
    return pp;
}

static void api_flight_free(api_flight_t *f)
{
    topo_unref(f->topo);
    free(f->waiters);
    free(f->key);
    free(f);
}

/* Answers every waiter: resp is a GET_RESP (found or not), or NULL when no
 * owner answered. */
static void api_flight_finish(api_flight_t *f, const peer_msg_t *resp, const char *node)
{
    api_t *a = f->w->api;
    /* Off the table first: a waiter's response may start a new GET. */
    if (f->in_table) {
        api_flight_t **pp = api_flight_slot(f->w, f->hash, f->key, f->klen);
        if (*pp == f) *pp = f->next;
        f->in_table = false;
        f->w->nflights--;
        atomic_fetch_sub(&a->route.flights, 1);
    }
    if (!resp) {
        atomic_fetch_add(&a->route.unavailable, f->nwaiters);
        for (size_t i = 0; i < f->nwaiters; i++)
            api_respond_unavailable(f->waiters[i], "no owner of this key answered");
    } else if (resp->status != PEER_STATUS_OK) {
        metrics_add(&a->metrics->misses, f->nwaiters);
        for (size_t i = 0; i < f->nwaiters; i++) api_respond_miss(f->waiters[i], node, f->owner);
    } else {
        metrics_add(&a->metrics->hits, f->nwaiters);
        api_shared_value_t *v = malloc(sizeof *v + resp->value.len + resp->content_type.len + 1);
        if (!v) {
            for (size_t i = 0; i < f->nwaiters; i++)
                http_respond_error(f->waiters[i], 503, "no_memory", "out of memory");
        } else {
            v->refs = (unsigned)f->nwaiters;
            snprintf(v->node, sizeof v->node, "%s", node);
            memcpy(v->data, resp->value.p, resp->value.len);
            v->len = resp->value.len;
            v->ct = v->data + v->len;
            memcpy(v->ct, resp->content_type.p, resp->content_type.len);
            v->ctlen = resp->content_type.len;
            v->version = resp->version;
            v->ttl_ms = (int64_t)resp->ttl_ms;
            api_value_t view = {.value = v->data, .len = v->len, .ct = v->ct, .ctlen = v->ctlen,
                                .version = v->version, .ttl_ms = v->ttl_ms, .node = v->node, .owner = f->owner};
            for (size_t i = 0; i < f->nwaiters; i++)
                api_respond_value(f->waiters[i], &view, api_shared_value_release, v);
        }
    }
    api_flight_free(f);
}

static void api_flight_try(api_flight_t *f);

static void api_flight_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    api_flight_t *f = ctx;
    const char *node = f->topo->members[f->owners[f->next_owner - 1]].name;
    if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP &&
        (resp->status == PEER_STATUS_OK || resp->status == PEER_STATUS_NOT_FOUND)) {
        api_flight_finish(f, resp, node);
        return;
    }
    atomic_fetch_add(&f->w->api->route.failovers, 1);
    log_debug("owner failed, trying the next", "\"owner\":\"%s\",\"result\":\"%s\"", node, peer_result_name(res));
    api_flight_try(f);
}

static void api_flight_try(api_flight_t *f)
{
    api_worker_t *w = f->w;
    while (f->next_owner < f->nowners) {
        const topo_member_t *m = &f->topo->members[f->owners[f->next_owner++]];
        if (m->peer.ss_family == 0) continue;
        peer_msg_t req = {.type = PEER_MSG_GET, .flags = PEER_F_FORWARDED};
        req.key.p = (const uint8_t *)f->key;
        req.key.len = f->klen;
        peer_result_t res = peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0,
                                              api_flight_reply, f);
        if (res == PEER_OK) {
            atomic_fetch_add(&w->api->route.forwarded[API_FWD_GET], 1);
            return;
        }
        atomic_fetch_add(&w->api->route.failovers, 1);
    }
    api_flight_finish(f, NULL, NULL);
}

void api_route_get(api_worker_t *w, http_request_t *r, const char *key, size_t klen)
{
    api_t *a = w->api;
    topo_t *t = topo_cache_get(&w->topo, &a->topo);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, key, klen, owners, RING_REPLICAS_MAX) : 0;
    const char *owner = api_owner_name(a, t, owners, n);
    if (!t || topo_is_owner(t, owners, n)) {
        api_get_local(a, r, key, klen, owner);
        return;
    }
    uint64_t hash = ring_key_hash(key, klen);
    api_flight_t **slot = api_flight_slot(w, hash, key, klen);
    api_flight_t *f = *slot;
    if (f) {
        if (f->nwaiters == f->cap) {
            size_t cap = f->cap * 2;
            http_request_t **nw = realloc(f->waiters, cap * sizeof *nw);
            if (!nw) {
                http_respond_error(r, 503, "no_memory", "out of memory");
                return;
            }
            f->waiters = nw;
            f->cap = cap;
        }
        f->waiters[f->nwaiters++] = r;
        atomic_fetch_add(&a->route.coalesced, 1);
        return;
    }
    f = calloc(1, sizeof *f);
    if (f) {
        f->key = malloc(klen);
        f->waiters = malloc(4 * sizeof *f->waiters);
    }
    if (!f || !f->key || !f->waiters) {
        if (f) {
            free(f->key);
            free(f->waiters);
            free(f);
        }
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    f->w = w;
    f->hash = hash;
    memcpy(f->key, key, klen);
    f->klen = klen;
    f->cap = 4;
    f->waiters[f->nwaiters++] = r;
    f->topo = topo_ref(t);
    memcpy(f->owners, owners, n * sizeof *owners);
    f->nowners = n;
    snprintf(f->owner, sizeof f->owner, "%s", owner);
    if (w->nflights < API_FLIGHT_MAX) {
        f->next = *slot;
        *slot = f;
        f->in_table = true;
        w->nflights++;
        atomic_fetch_add(&a->route.flights, 1);
    }
    api_flight_try(f);
}

/* ---------- PUT and DELETE at the primary ---------- */

typedef struct api_write {
    api_worker_t *w;
    http_request_t *r;              /* the HTTP request, or */
    peer_call_t *call;              /* the peer call to answer */
    bool is_delete, answered, created, existed;
    unsigned outstanding, acks, required, tried;
    uint64_t version;
    int64_t ttl_ms;
    char *key;
    size_t klen;
    char owner[SWIM_NAME_MAX];
} api_write_t;

static void api_write_answer(api_write_t *wr, bool ok)
{
    api_t *a = wr->w->api;
    wr->answered = true;
    if (!ok) atomic_fetch_add(&a->route.writes_unreplicated, 1);
    if (wr->call) {
        peer_msg_t m = {.type = wr->is_delete ? PEER_MSG_DELETE_RESP : PEER_MSG_PUT_RESP,
                        .status = ok ? PEER_STATUS_OK : PEER_STATUS_UNAVAILABLE,
                        .version = wr->version,
                        .existed = wr->existed,
                        .flags = wr->created ? PEER_F_CREATED : 0};
        peer_server_respond(wr->call, &m);
        return;
    }
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof msg, "the write reached %u of the %u owners required (--write-acks)", wr->acks + 1,
                 wr->required + 1);
        static const char hdr[] = "Retry-After: 1\r\n";
        sbuf_t b;
        sbuf_init(&b);
        sbuf_puts(&b, "{\"error\":");
        sbuf_json_string(&b, msg, strlen(msg));
        sbuf_puts(&b, ",\"code\":\"write_not_replicated\"}");
        api_respond_json_headers(wr->r, 503, b.data ? b.data : "{}", b.data ? b.len : 2, hdr, sizeof hdr - 1);
        sbuf_free(&b);
        return;
    }
    if (wr->is_delete) api_respond_deleted(wr->r, wr->existed, api_self_name(a), wr->owner);
    else api_respond_put(wr->r, wr->key, wr->klen, wr->version, wr->ttl_ms, wr->created, api_self_name(a), wr->owner);
}

/* Answers as soon as enough owners have the write; frees once every
 * replica answered. */
static void api_write_check(api_write_t *wr)
{
    if (!wr->answered && wr->acks >= wr->required) api_write_answer(wr, true);
    if (wr->outstanding) return;
    if (!wr->answered) api_write_answer(wr, wr->acks >= wr->required);
    free(wr->key);
    free(wr);
}

static void api_write_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    api_write_t *wr = ctx;
    api_t *a = wr->w->api;
    wr->outstanding--;
    bool ok = res == PEER_OK &&
              ((resp->type == PEER_MSG_PUT_RESP && !wr->is_delete) || (resp->type == PEER_MSG_DELETE_RESP && wr->is_delete)) &&
              (resp->status == PEER_STATUS_OK || resp->status == PEER_STATUS_STALE);
    if (ok) {
        wr->acks++;
        if (wr->is_delete && resp->existed) wr->existed = true;
        atomic_fetch_add(&a->route.replica_ok, 1);
    } else if (api_peer_down(res) && a->cfg->write_acks_n == 0 && wr->required > 0) {
        wr->required--;
        atomic_fetch_add(&a->route.replica_skipped, 1);
    } else {
        atomic_fetch_add(&a->route.replica_failed, 1);
    }
    api_write_check(wr);
}

/* Sends the write to every owner but this node; `req` has the type, key and
 * payload set. */
static void api_write_replicate(api_write_t *wr, topo_t *t, const uint32_t *owners, size_t n, peer_msg_t *req)
{
    api_t *a = wr->w->api;
    unsigned others = 0;
    req->flags = PEER_F_FORWARDED | PEER_F_REPLICA;
    wr->outstanding = 1; /* held until every send is made */
    for (size_t i = 0; t && i < n; i++) {
        if ((int32_t)owners[i] == t->self) continue;
        const topo_member_t *m = &t->members[owners[i]];
        others++;
        if (m->peer.ss_family == 0) continue;
        peer_result_t res =
            peer_pool_request(wr->w->pool, m->name, (const struct sockaddr *)&m->peer, req, 0, api_write_reply, wr);
        if (res == PEER_OK) {
            wr->outstanding++;
            wr->tried++;
        } else if (api_peer_down(res)) {
            atomic_fetch_add(&a->route.replica_skipped, 1);
        } else {
            wr->tried++;
            atomic_fetch_add(&a->route.replica_failed, 1);
        }
    }
    unsigned want = a->cfg->write_acks_n;
    if (want == 0) wr->required = wr->tried;
    else wr->required = want - 1 < others ? want - 1 : others;
    wr->outstanding--;
    api_write_check(wr);
}

static api_write_t *api_write_new(api_worker_t *w, http_request_t *r, peer_call_t *call, const char *key,
                                  size_t klen, const char *owner)
{
    api_write_t *wr = calloc(1, sizeof *wr);
    if (wr) wr->key = malloc(klen);
    if (!wr || !wr->key) {
        free(wr);
        if (call) peer_server_respond_error(call, PEER_STATUS_UNAVAILABLE, "out of memory");
        else http_respond_error(r, 503, "no_memory", "out of memory");
        return NULL;
    }
    wr->w = w;
    wr->r = r;
    wr->call = call;
    memcpy(wr->key, key, klen);
    wr->klen = klen;
    snprintf(wr->owner, sizeof wr->owner, "%s", owner);
    return wr;
}

void api_coordinate_put(api_worker_t *w, http_request_t *r, peer_call_t *call, const store_put_args_t *args)
{
    api_t *a = w->api;
    topo_t *t = topo_cache_get(&w->topo, &a->topo);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, args->key, args->key_len, owners, RING_REPLICAS_MAX) : 0;
    store_put_args_t put = *args;
    put.version = api_stamp(a);
    bool replaced = false;
    store_status_t st = store_put(a->store, &put, &replaced);
    if (st != STORE_OK) {
        if (call)
            peer_server_respond_error(call, st == STORE_TOO_LARGE ? PEER_STATUS_TOO_LARGE : PEER_STATUS_UNAVAILABLE,
                                      st == STORE_TOO_LARGE ? "value too large" : "out of memory");
        else api_respond_store_error(r, st);
        return;
    }
    api_write_t *wr = api_write_new(w, r, call, args->key, args->key_len, api_owner_name(a, t, owners, n));
    if (!wr) return;
    wr->version = put.version;
    wr->ttl_ms = put.ttl_ms;
    wr->created = !replaced;
    peer_msg_t req = {.type = PEER_MSG_PUT, .version = put.version, .ttl_ms = (uint64_t)put.ttl_ms};
    req.key.p = put.key;
    req.key.len = put.key_len;
    req.value.p = put.value;
    req.value.len = put.value_len;
    req.content_type.p = (const uint8_t *)put.content_type;
    req.content_type.len = put.content_type ? put.content_type_len : 0;
    api_write_replicate(wr, t, owners, n, &req);
}

static void api_broadcast_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    (void)ctx;
    (void)res;
    (void)resp;
}

/* Tells every member that is not an owner to drop the key: a node that
 * owned it before a ring change may still hold a copy. */
static void api_broadcast_invalidate(api_worker_t *w, topo_t *t, const uint32_t *owners, size_t n, const char *key,
                                     size_t klen)
{
    peer_bytes_t k = {.p = (const uint8_t *)key, .len = klen};
    peer_msg_t req = {.type = PEER_MSG_INVALIDATE, .flags = PEER_F_FORWARDED, .count = 1, .keys = &k};
    for (size_t i = 0; i < t->n; i++) {
        bool owner = (int32_t)i == t->self;
        for (size_t j = 0; j < n && !owner; j++) owner = owners[j] == i;
        const topo_member_t *m = &t->members[i];
        if (owner || m->peer.ss_family == 0) continue;
        if (peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, api_broadcast_reply,
                              NULL) == PEER_OK)
            atomic_fetch_add(&w->api->route.broadcasts, 1);
    }
}

void api_coordinate_delete(api_worker_t *w, http_request_t *r, peer_call_t *call, const char *key, size_t klen)
{
    api_t *a = w->api;
    topo_t *t = topo_cache_get(&w->topo, &a->topo);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, key, klen, owners, RING_REPLICAS_MAX) : 0;
    api_write_t *wr = api_write_new(w, r, call, key, klen, api_owner_name(a, t, owners, n));
    if (!wr) return;
    wr->is_delete = true;
    wr->version = api_stamp(a);
    wr->existed = store_delete(a->store, key, klen);
    if (t) api_broadcast_invalidate(w, t, owners, n, key, klen);
    peer_msg_t req = {.type = PEER_MSG_DELETE, .version = wr->version};
    req.key.p = (const uint8_t *)key;
    req.key.len = klen;
    api_write_replicate(wr, t, owners, n, &req);
}

/* ---------- PUT and DELETE forwarded to the primary ---------- */

typedef struct api_fwd {
    api_worker_t *w;
    http_request_t *r;
    int kind;                       /* API_FWD_PUT or API_FWD_DELETE */
    store_put_args_t args;          /* key copied; value and content type point into r */
    char *key;
    topo_t *topo;
    uint32_t owners[RING_REPLICAS_MAX];
    size_t nowners, next_owner;
    char owner[SWIM_NAME_MAX];
} api_fwd_t;

static void api_fwd_free(api_fwd_t *f)
{
    topo_unref(f->topo);
    free(f->key);
    free(f);
}

static void api_fwd_try(api_fwd_t *f);

static void api_fwd_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    api_fwd_t *f = ctx;
    const char *node = f->topo->members[f->owners[f->next_owner - 1]].name;
    if (res == PEER_OK && resp->type == (f->kind == API_FWD_PUT ? PEER_MSG_PUT_RESP : PEER_MSG_DELETE_RESP)) {
        if (resp->status == PEER_STATUS_OK) {
            if (f->kind == API_FWD_PUT)
                api_respond_put(f->r, f->key, f->args.key_len, resp->version, f->args.ttl_ms,
                                (resp->flags & PEER_F_CREATED) != 0, node, f->owner);
            else api_respond_deleted(f->r, resp->existed, node, f->owner);
            api_fwd_free(f);
            return;
        }
        if (resp->status == PEER_STATUS_UNAVAILABLE) {
            /* The coordinator could not replicate: its answer is final. */
            atomic_fetch_add(&f->w->api->route.writes_unreplicated, 1);
            api_respond_unavailable(f->r, "the owners could not store the write (--write-acks)");
            api_fwd_free(f);
            return;
        }
    }
    if (res == PEER_ERR_REMOTE && resp->code == PEER_STATUS_TOO_LARGE) {
        http_respond_error(f->r, 413, "value_too_large", "value larger than the owner can hold");
        api_fwd_free(f);
        return;
    }
    atomic_fetch_add(&f->w->api->route.failovers, 1);
    api_fwd_try(f);
}

static void api_fwd_try(api_fwd_t *f)
{
    api_worker_t *w = f->w;
    while (f->next_owner < f->nowners) {
        uint32_t idx = f->owners[f->next_owner++];
        if ((int32_t)idx == f->topo->self) {
            /* The owners before us failed: act as the primary. */
            if (f->kind == API_FWD_PUT) api_coordinate_put(w, f->r, NULL, &f->args);
            else api_coordinate_delete(w, f->r, NULL, f->key, f->args.key_len);
            api_fwd_free(f);
            return;
        }
        const topo_member_t *m = &f->topo->members[idx];
        if (m->peer.ss_family == 0) continue;
        peer_msg_t req = {.type = f->kind == API_FWD_PUT ? PEER_MSG_PUT : PEER_MSG_DELETE,
                          .flags = PEER_F_FORWARDED,
                          .ttl_ms = (uint64_t)f->args.ttl_ms};
        req.key.p = (const uint8_t *)f->key;
        req.key.len = f->args.key_len;
        req.value.p = f->args.value;
        req.value.len = f->args.value_len;
        req.content_type.p = (const uint8_t *)f->args.content_type;
        req.content_type.len = f->args.content_type ? f->args.content_type_len : 0;
        peer_result_t res =
            peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, api_fwd_reply, f);
        if (res == PEER_OK) {
            atomic_fetch_add(&w->api->route.forwarded[f->kind], 1);
            return;
        }
        atomic_fetch_add(&w->api->route.failovers, 1);
    }
    atomic_fetch_add(&w->api->route.unavailable, 1);
    api_respond_unavailable(f->r, "no owner of this key answered");
    api_fwd_free(f);
}

/* Forwards a PUT or DELETE when this node is not the primary; false when it
 * is (or there is no ring): the caller coordinates here. */
static bool api_fwd_start(api_worker_t *w, http_request_t *r, int kind, const store_put_args_t *args)
{
    api_t *a = w->api;
    topo_t *t = topo_cache_get(&w->topo, &a->topo);
    if (!t) return false;
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = topo_owners(t, args->key, args->key_len, owners, RING_REPLICAS_MAX);
    if (n == 0 || (int32_t)owners[0] == t->self) return false;
    api_fwd_t *f = calloc(1, sizeof *f);
    if (f) f->key = malloc(args->key_len);
    if (!f || !f->key) {
        free(f);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return true;
    }
    f->w = w;
    f->r = r;
    f->kind = kind;
    f->args = *args;
    memcpy(f->key, args->key, args->key_len);
    f->args.key = f->key;
    f->topo = topo_ref(t);
    memcpy(f->owners, owners, n * sizeof *owners);
    f->nowners = n;
    snprintf(f->owner, sizeof f->owner, "%s", t->members[owners[0]].name);
    api_fwd_try(f);
    return true;
}

void api_route_put(api_worker_t *w, http_request_t *r, const store_put_args_t *args)
{
    if (!api_fwd_start(w, r, API_FWD_PUT, args)) api_coordinate_put(w, r, NULL, args);
}

void api_route_delete(api_worker_t *w, http_request_t *r, const char *key, size_t klen)
{
    store_put_args_t args = {.key = key, .key_len = klen};
    if (!api_fwd_start(w, r, API_FWD_DELETE, &args)) api_coordinate_delete(w, r, NULL, key, klen);
}
