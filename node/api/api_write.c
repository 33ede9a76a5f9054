/* Writes (DESIGN.md section 4): PUT and DELETE go to the key's primary,
 * which stamps a version, writes Redis first (when there is one), then
 * stores and replicates to the other owners, and answers once --write-acks
 * of them have it; a node that is not the primary forwards to the owners in
 * order. A forwarded write is coordinated where it lands, never forwarded
 * again. */
#include <stdlib.h>
#include <string.h>

#include "node/api/api_internal.h"

/* The failures that say "this peer is down", as opposed to "this peer did
 * not do it": a write need not wait for an owner known to be down. */
static bool api_peer_down(peer_result_t res)
{
    return res == PEER_ERR_CONNECT || res == PEER_ERR_CLOSED || res == PEER_ERR_BREAKER || res == PEER_ERR_BACKOFF;
}

/* ---------- PUT and DELETE at the primary ---------- */

typedef struct api_write {
    api_worker_t *w;
    http_request_t *r;              /* the HTTP request, or */
    peer_call_t *call;              /* the peer call to answer */
    bool is_delete, answered, created, existed;
    unsigned outstanding, acks, required, tried;
    bool journaled;                 /* in the journal, not (yet) in Redis */
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
                        .flags = (wr->created ? PEER_F_CREATED : 0) | (wr->journaled ? PEER_F_JOURNALED : 0)};
        peer_server_respond(wr->call, &m);
        return;
    }
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof msg, "the write reached %u of the %u owners required (--write-acks)", wr->acks + 1,
                 wr->required + 1);
        api_respond_retry(wr->r, "write_not_replicated", msg);
        return;
    }
    if (wr->is_delete) api_respond_deleted(wr->r, wr->existed, api_self_name(a), wr->owner, wr->journaled);
    else
        api_respond_put(wr->r, wr->key, wr->klen, wr->version, wr->ttl_ms, wr->created, api_self_name(a), wr->owner,
                        wr->journaled);
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
        if (m->peer.ss_family == 0) continue;
        others++;
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
        api_reply_no_memory(r, call);
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

/* The write after L2 took it (or the journal did, or there is no L2):
 * L1 here, then the other owners. */
static void api_coordinate_put_at(api_worker_t *w, http_request_t *r, peer_call_t *call, const store_put_args_t *args,
                                  bool journaled)
{
    api_t *a = w->api;
    topo_t *t = topo_cache_get(&w->topo, &a->topo);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, args->key, args->key_len, owners, RING_REPLICAS_MAX) : 0;
    store_put_args_t put = *args;
    bool replaced = false;
    /* Another worker may have stored a newer version since this one was
     * stamped (its L2 write answered first): keep the newer. */
    store_status_t st = store_put_if_newer(a->store, &put, &replaced);
    if (st == STORE_STALE) st = STORE_OK;
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
    wr->journaled = journaled;
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

static void api_coordinate_delete_at(api_worker_t *w, http_request_t *r, peer_call_t *call, const char *key,
                                     size_t klen, uint64_t version, bool journaled)
{
    api_t *a = w->api;
    topo_t *t = topo_cache_get(&w->topo, &a->topo);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, key, klen, owners, RING_REPLICAS_MAX) : 0;
    api_write_t *wr = api_write_new(w, r, call, key, klen, api_owner_name(a, t, owners, n));
    if (!wr) return;
    wr->is_delete = true;
    wr->journaled = journaled;
    wr->version = version;
    wr->existed = store_delete_versioned(a->store, key, klen, STORE_DELETE_IF_OLDER, version);
    api_tomb_add(a, key, klen, version);
    if (t) api_broadcast_invalidate(w, t, owners, n, key, klen);
    peer_msg_t req = {.type = PEER_MSG_DELETE, .version = wr->version};
    req.key.p = (const uint8_t *)key;
    req.key.len = klen;
    api_write_replicate(wr, t, owners, n, &req);
}

/* ---------- write-through to L2 first ---------- */

/* A write waiting for Redis: it owns copies of what it writes, since a
 * peer's request is only valid during its call. */
typedef struct api_l2w {
    api_worker_t *w;
    http_request_t *r;
    peer_call_t *call;
    bool is_delete;
    store_put_args_t args;
    char *buf;
} api_l2w_t;

static void api_l2w_refuse(api_l2w_t *x)
{
    atomic_fetch_add(&x->w->api->l2->stats.writes_refused, 1);
    if (x->call) {
        peer_msg_t m = {.type = x->is_delete ? PEER_MSG_DELETE_RESP : PEER_MSG_PUT_RESP,
                        .status = PEER_STATUS_UNAVAILABLE, .flags = PEER_F_L2};
        peer_server_respond(x->call, &m);
    } else {
        api_respond_retry(x->r, "l2_unavailable", "Redis is unavailable and --l2-write-mode is sync (or the journal is full)");
    }
}

/* Journal mode: keep the write locally until Redis is back. */
static bool api_l2w_journal(api_l2w_t *x)
{
    l2_shared_t *s = x->w->api->l2;
    if (s->write_mode != L2_WRITE_JOURNAL || !s->journal) return false;
    int64_t now = store_now_ms(x->w->api->store);
    journal_rec_t rec = {.op = x->is_delete ? JOURNAL_OP_DEL : JOURNAL_OP_SET,
                         .version = x->args.version,
                         .expires_at_ms = x->args.ttl_ms ? now + x->args.ttl_ms : 0,
                         .key = x->args.key,
                         .klen = x->args.key_len,
                         .ct = x->args.content_type,
                         .ctlen = x->args.content_type ? x->args.content_type_len : 0,
                         .value = x->args.value,
                         .vlen = x->args.value_len};
    if (journal_append(s->journal, &rec, 1) != 0) return false;
    atomic_fetch_add(&s->stats.writes_journaled, 1);
    return true;
}

static void api_l2w_done(void *ctx, l2_result_t res)
{
    api_l2w_t *x = ctx;
    bool journaled = false;
    if (res != L2_OK && !(journaled = api_l2w_journal(x))) {
        api_l2w_refuse(x);
    } else if (x->is_delete) {
        api_coordinate_delete_at(x->w, x->r, x->call, x->args.key, x->args.key_len, x->args.version, journaled);
    } else {
        api_coordinate_put_at(x->w, x->r, x->call, &x->args, journaled);
    }
    free(x->buf);
    free(x);
}

static api_l2w_t *api_l2w_new(api_worker_t *w, http_request_t *r, peer_call_t *call, const store_put_args_t *args)
{
    api_l2w_t *x = calloc(1, sizeof *x);
    size_t ctlen = args->content_type ? args->content_type_len : 0;
    if (x) x->buf = malloc(args->key_len + args->value_len + ctlen + 1);
    if (!x || !x->buf) {
        free(x);
        api_reply_no_memory(r, call);
        return NULL;
    }
    x->w = w;
    x->r = r;
    x->call = call;
    x->args = *args;
    memcpy(x->buf, args->key, args->key_len);
    if (args->value_len) memcpy(x->buf + args->key_len, args->value, args->value_len);
    if (ctlen) memcpy(x->buf + args->key_len + args->value_len, args->content_type, ctlen);
    x->args.key = x->buf;
    x->args.value = x->buf + args->key_len;
    x->args.content_type = ctlen ? x->buf + args->key_len + args->value_len : NULL;
    x->args.content_type_len = ctlen;
    x->args.version = api_stamp(w->api);
    return x;
}

void api_coordinate_put(api_worker_t *w, http_request_t *r, peer_call_t *call, const store_put_args_t *args)
{
    if (!w->l2) {
        store_put_args_t put = *args;
        put.version = api_stamp(w->api);
        api_coordinate_put_at(w, r, call, &put, false);
        return;
    }
    if (args->value_len > w->api->cfg->max_value_size) {
        if (call) peer_server_respond_error(call, PEER_STATUS_TOO_LARGE, "value too large");
        else api_respond_store_error(r, STORE_TOO_LARGE);
        return;
    }
    api_l2w_t *x = api_l2w_new(w, r, call, args);
    if (!x) return;
    int64_t expires = x->args.ttl_ms ? store_now_ms(w->api->store) + x->args.ttl_ms : 0;
    l2_set(w->l2, x->args.key, x->args.key_len, x->args.value, x->args.value_len, x->args.content_type,
           x->args.content_type_len, x->args.version, expires, api_l2w_done, x);
}

void api_coordinate_delete(api_worker_t *w, http_request_t *r, peer_call_t *call, const char *key, size_t klen)
{
    if (!w->l2) {
        api_coordinate_delete_at(w, r, call, key, klen, api_stamp(w->api), false);
        return;
    }
    store_put_args_t args = {.key = key, .key_len = klen};
    api_l2w_t *x = api_l2w_new(w, r, call, &args);
    if (!x) return;
    x->is_delete = true;
    l2_del(w->l2, x->args.key, x->args.key_len, x->args.version, api_l2w_done, x);
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
            bool journaled = (resp->flags & PEER_F_JOURNALED) != 0;
            if (f->kind == API_FWD_PUT)
                api_respond_put(f->r, f->key, f->args.key_len, resp->version, f->args.ttl_ms,
                                (resp->flags & PEER_F_CREATED) != 0, node, f->owner, journaled);
            else api_respond_deleted(f->r, resp->existed, node, f->owner, journaled);
            api_fwd_free(f);
            return;
        }
        if (resp->status == PEER_STATUS_UNAVAILABLE && (resp->flags & PEER_F_L2)) {
            api_respond_retry(f->r, "l2_unavailable", "Redis is unavailable and the write could not be kept");
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
