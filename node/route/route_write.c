/* route_write: PUT and DELETE (DESIGN section 4 of docs/ARCHITECTURE.md)
 * go to the key's primary, which stamps a version, writes Redis first (when
 * there is one), then stores and replicates to the other owners, and
 * answers once --write-acks of them have it; a node that is not the primary
 * forwards to the owners in order. A forwarded write is coordinated where
 * it lands, never forwarded again. */
#include "node/route/route_write.h"

#include "node/route/route_quorum.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The failures that say "this peer is down", as opposed to "this peer did
 * not do it": a write need not wait for an owner known to be down. */
static bool route_peer_down(peer_result_t res)
{
    return res == PEER_ERR_CONNECT || res == PEER_ERR_CLOSED || res == PEER_ERR_BREAKER || res == PEER_ERR_BACKOFF;
}

/* ---------- PUT and DELETE at the primary ---------- */

typedef struct route_write {
    route_worker_t *w;
    route_reply_t reply;
    bool is_delete, answered, created, existed;
    unsigned outstanding, acks, required, tried;
    unsigned broadcasts;            /* DELETE right after a ring change: non-owners yet to answer */
    bool broadcast_failed;          /* ... one did not drop its copy (and is not known down) */
    bool journaled;                 /* in the journal, not (yet) in Redis */
    /* Owners, and awaited non-owners, that answered as down: the write may
     * go on without them only once a majority of the members answered this
     * node after the write began (route_quorum); until that is known they
     * are neither acknowledged nor failed. */
    unsigned down_owners, down_broadcasts;
    enum { ROUTE_QUORUM_UNASKED, ROUTE_QUORUM_ASKING, ROUTE_QUORUM_YES, ROUTE_QUORUM_NO } quorum;
    route_quorum_wait_t quorum_wait;
    uint64_t started_ms;            /* uv_now when the write was coordinated here */
    uint64_t version;
    int64_t ttl_ms;
    char *key;
    size_t klen;
    char owner[SWIM_NAME_MAX];
} route_write_t;

static void route_write_answer(route_write_t *wr, bool ok)
{
    route_t *a = wr->w->route;
    wr->answered = true;
    if (!ok) {
        atomic_fetch_add(&a->stats.writes_unreplicated, 1);
        char msg[160];
        snprintf(msg, sizeof msg, "the write reached %u of the %u owners required (--write-acks)", wr->acks + 1,
                 wr->required + 1);
        wr->reply.ops->fail(wr->reply.ctx, ROUTE_ERR_NOT_REPLICATED, msg);
        return;
    }
    route_written_t done = {.key = wr->key, .klen = wr->klen, .version = wr->version, .ttl_ms = wr->ttl_ms,
                            .created = wr->created, .existed = wr->existed, .journaled = wr->journaled,
                            .node = route_self_name(a), .owner = wr->owner};
    if (wr->is_delete) wr->reply.ops->deleted(wr->reply.ctx, &done);
    else wr->reply.ops->stored(wr->reply.ctx, &done);
}

/* Answers as soon as enough owners have the write; frees once every
 * replica answered. */
static void route_write_check(route_write_t *wr)
{
    if (!wr->answered && wr->acks >= wr->required && wr->broadcasts == 0 && wr->down_broadcasts == 0 &&
        !wr->broadcast_failed)
        route_write_answer(wr, true);
    if (wr->outstanding) return;
    if (!wr->answered) route_write_answer(wr, wr->acks >= wr->required && !wr->broadcast_failed);
    free(wr->key);
    free(wr);
}

/* Applies the quorum's verdict to the down members counted so far. */
static void route_write_settle_down(route_write_t *wr)
{
    route_t *a = wr->w->route;
    if (wr->quorum == ROUTE_QUORUM_YES) {
        unsigned skip = wr->down_owners < wr->required ? wr->down_owners : wr->required;
        wr->required -= skip;
        atomic_fetch_add(&a->stats.replica_skipped, wr->down_owners);
    } else if (wr->quorum == ROUTE_QUORUM_NO) {
        atomic_fetch_add(&a->stats.replica_unskipped, wr->down_owners);
        if (wr->down_broadcasts) wr->broadcast_failed = true;
    } else {
        return;
    }
    wr->down_owners = wr->down_broadcasts = 0;
}

static void route_write_quorum(void *ctx, bool majority)
{
    route_write_t *wr = ctx;
    wr->quorum = majority ? ROUTE_QUORUM_YES : ROUTE_QUORUM_NO;
    route_write_settle_down(wr);
    wr->outstanding--;
    route_write_check(wr);
}

/* Settles the down members counted, asking route_quorum first if nobody
 * has yet. The caller holds an `outstanding` of its own across the call:
 * the verdict may come before this returns. */
static void route_write_resolve_down(route_write_t *wr)
{
    if (!wr->down_owners && !wr->down_broadcasts) return;
    if (wr->quorum != ROUTE_QUORUM_UNASKED) {
        route_write_settle_down(wr);
        return;
    }
    wr->quorum = ROUTE_QUORUM_ASKING;
    wr->outstanding++;
    route_quorum_confirm(wr->w, wr->started_ms, &wr->quorum_wait, route_write_quorum, wr);
}

static void route_write_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_write_t *wr = ctx;
    route_t *a = wr->w->route;
    bool ok = res == PEER_OK &&
              ((resp->type == PEER_MSG_PUT_RESP && !wr->is_delete) || (resp->type == PEER_MSG_DELETE_RESP && wr->is_delete)) &&
              (resp->status == PEER_STATUS_OK || resp->status == PEER_STATUS_STALE);
    if (ok) {
        wr->acks++;
        if (wr->is_delete && resp->existed) wr->existed = true;
        atomic_fetch_add(&a->stats.replica_ok, 1);
    } else if (route_peer_down(res) && a->cfg->write_acks_n == 0 && wr->required > 0) {
        wr->down_owners++;
        route_write_resolve_down(wr);
    } else {
        atomic_fetch_add(&a->stats.replica_failed, 1);
    }
    wr->outstanding--; /* this answer's: held across route_write_resolve_down */
    route_write_check(wr);
}

/* Sends the write to every owner but this node; `req` has the type, key and
 * payload set. */
static void route_write_replicate(route_write_t *wr, topo_t *t, const uint32_t *owners, size_t n, peer_msg_t *req)
{
    route_t *a = wr->w->route;
    unsigned others = 0;
    req->flags = PEER_F_FORWARDED | PEER_F_REPLICA;
    wr->outstanding++; /* held until every send is made */
    for (size_t i = 0; t && i < n; i++) {
        if ((int32_t)owners[i] == t->self) continue;
        const topo_member_t *m = &t->members[owners[i]];
        if (m->peer.ss_family == 0) continue;
        others++;
        peer_result_t res =
            peer_pool_request(wr->w->pool, m->name, (const struct sockaddr *)&m->peer, req, 0, route_write_reply, wr);
        if (res == PEER_OK) {
            wr->outstanding++;
            wr->tried++;
        } else if (route_peer_down(res) && a->cfg->write_acks_n != 0) {
            atomic_fetch_add(&a->stats.replica_skipped, 1);
        } else if (route_peer_down(res)) {
            wr->tried++;
            wr->down_owners++;
        } else {
            wr->tried++;
            atomic_fetch_add(&a->stats.replica_failed, 1);
        }
    }
    unsigned want = a->cfg->write_acks_n;
    if (want == 0) wr->required = wr->tried;
    else wr->required = want - 1 < others ? want - 1 : others;
    route_write_resolve_down(wr);
    wr->outstanding--;
    route_write_check(wr);
}

static route_write_t *route_write_new(route_worker_t *w, route_reply_t reply, const char *key,
                                      size_t klen, const char *owner)
{
    route_write_t *wr = calloc(1, sizeof *wr);
    if (wr) wr->key = malloc(klen);
    if (!wr || !wr->key) {
        free(wr);
        reply.ops->fail(reply.ctx, ROUTE_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    wr->w = w;
    wr->reply = reply;
    wr->started_ms = uv_now(w->loop);
    memcpy(wr->key, key, klen);
    wr->klen = klen;
    snprintf(wr->owner, sizeof wr->owner, "%s", owner);
    return wr;
}

/* The write after L2 took it (or the journal did, or there is no L2):
 * L1 here, then the other owners. */
static void route_coordinate_put_at(route_worker_t *w, route_reply_t reply, const store_put_args_t *args,
                                    bool journaled, const uint8_t *rid)
{
    route_t *a = w->route;
    topo_t *t = route_topo(w);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, args->key, args->key_len, owners, RING_REPLICAS_MAX) : 0;
    store_put_args_t put = *args;
    bool replaced = false;
    /* Another worker may have stored a newer version since this one was
     * stamped (its L2 write answered first): keep the newer. */
    store_status_t st = store_put_if_newer(a->store, &put, &replaced);
    if (st == STORE_STALE) st = STORE_OK;
    if (st != STORE_OK) {
        if (st == STORE_TOO_LARGE) reply.ops->fail(reply.ctx, ROUTE_ERR_TOO_LARGE, "value larger than this node can hold");
        else reply.ops->fail(reply.ctx, ROUTE_ERR_NO_MEMORY, "the store could not allocate the entry");
        return;
    }
    route_write_t *wr = route_write_new(w, reply, args->key, args->key_len, route_owner_name(a, t, owners, n));
    if (!wr) return;
    wr->version = put.version;
    wr->ttl_ms = put.ttl_ms;
    wr->created = !replaced;
    wr->journaled = journaled;
    /* Noted before the replicas hear of it: a retry of the request that
     * reaches any owner from now on finds it. */
    route_write_note_rid(a, rid, put.version, wr->created);
    peer_msg_t req = {.type = PEER_MSG_PUT, .version = put.version, .ttl_ms = (uint64_t)put.ttl_ms};
    if (rid) memcpy(req.rid, rid, PEER_ID_LEN);
    req.key.p = put.key;
    req.key.len = put.key_len;
    req.value.p = put.value;
    req.value.len = put.value_len;
    req.content_type.p = (const uint8_t *)put.content_type;
    req.content_type.len = put.content_type ? put.content_type_len : 0;
    route_write_replicate(wr, t, owners, n, &req);
}

static void route_broadcast_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_write_t *wr = ctx;
    if (!wr) return;
    wr->broadcasts--;
    if (route_peer_down(res)) {
        wr->down_broadcasts++;
        route_write_resolve_down(wr);
    } else if (!(res == PEER_OK && resp->type == PEER_MSG_INVALIDATE_RESP)) {
        wr->broadcast_failed = true;
    }
    wr->outstanding--; /* this answer's */
    route_write_check(wr);
}

/* Tells every member that is not an owner to drop the key: a node that
 * owned it before a ring change may still hold a copy. Right after a ring
 * change (wr set) the DELETE waits for their answers as for the owners':
 * members may still disagree about who owns the key, and one that thinks
 * it is an owner would serve its copy after the DELETE was acknowledged.
 * Otherwise the copies are at most stale previous-owner leftovers and the
 * answers are not awaited. */
static void route_broadcast_invalidate(route_worker_t *w, topo_t *t, const uint32_t *owners, size_t n, const char *key,
                                       size_t klen, uint64_t version, route_write_t *wr)
{
    peer_bytes_t k = {.p = (const uint8_t *)key, .len = klen};
    /* Versioned: a non-owner keeps a newer copy and leaves a tombstone, as
     * the owners do. */
    peer_msg_t req = {.type = PEER_MSG_INVALIDATE, .flags = PEER_F_FORWARDED, .count = 1, .keys = &k,
                      .version = version};
    for (size_t i = 0; i < t->n; i++) {
        bool owner = (int32_t)i == t->self;
        for (size_t j = 0; j < n && !owner; j++) owner = owners[j] == i;
        const topo_member_t *m = &t->members[i];
        if (owner || m->peer.ss_family == 0) continue;
        peer_result_t res = peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0,
                                              route_broadcast_reply, wr);
        if (res == PEER_OK) {
            atomic_fetch_add(&w->route->stats.broadcasts, 1);
            if (wr) {
                wr->outstanding++;
                wr->broadcasts++;
            }
        } else if (wr && route_peer_down(res)) {
            wr->down_broadcasts++; /* settled with the owners' (route_write_replicate) */
        } else if (wr) {
            wr->broadcast_failed = true;
        }
    }
}

static void route_coordinate_delete_at(route_worker_t *w, route_reply_t reply, const char *key,
                                       size_t klen, uint64_t version, bool journaled, const uint8_t *rid)
{
    route_t *a = w->route;
    topo_t *t = route_topo(w);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, key, klen, owners, RING_REPLICAS_MAX) : 0;
    route_write_t *wr = route_write_new(w, reply, key, klen, route_owner_name(a, t, owners, n));
    if (!wr) return;
    wr->is_delete = true;
    wr->journaled = journaled;
    wr->version = version;
    wr->existed = store_delete_versioned(a->store, key, klen, STORE_DELETE_IF_OLDER, version);
    route_tomb_add(a, key, klen, version);
    route_write_note_rid(a, rid, version, wr->existed);
    /* Held until the broadcast is sent; route_write_replicate releases it. */
    wr->outstanding = 1;
    if (t) route_broadcast_invalidate(w, t, owners, n, key, klen, version, topo_cache_prev(&w->topo) ? wr : NULL);
    wr->outstanding--;
    peer_msg_t req = {.type = PEER_MSG_DELETE, .version = wr->version};
    if (rid) memcpy(req.rid, rid, PEER_ID_LEN);
    req.key.p = (const uint8_t *)key;
    req.key.len = klen;
    route_write_replicate(wr, t, owners, n, &req);
}

/* ---------- write-through to L2 first ---------- */

/* A write waiting for Redis, then maybe for the journal: it owns copies of
 * what it writes, since a peer's request is only valid during its call,
 * and it owns the reply until route_l2w_finish answers it. A client that
 * went away meanwhile changes nothing here: its reply context stays valid
 * until answered (the transport drops the answer), and the worker's
 * l2_close waits for the journal's answer before the worker is freed. */
typedef struct route_l2w {
    route_worker_t *w;
    route_reply_t reply;
    bool is_delete;
    bool has_rid;
    uint8_t rid[PEER_ID_LEN];
    store_put_args_t args;
    char *buf;
} route_l2w_t;

/* After L2 answered (or the journal did): L1 and the owners when the write
 * is kept, else 503; frees x either way. */
static void route_l2w_finish(route_l2w_t *x, bool kept, bool journaled)
{
    if (!kept) {
        atomic_fetch_add(&x->w->route->l2->stats.writes_refused, 1);
        x->reply.ops->fail(x->reply.ctx, ROUTE_ERR_L2_UNAVAILABLE,
                           "Redis is unavailable and --l2-write-mode is sync (or the journal is full)");
    } else if (x->is_delete) {
        route_coordinate_delete_at(x->w, x->reply, x->args.key, x->args.key_len, x->args.version, journaled,
                                   x->has_rid ? x->rid : NULL);
    } else {
        route_coordinate_put_at(x->w, x->reply, &x->args, journaled, x->has_rid ? x->rid : NULL);
    }
    free(x->buf);
    free(x);
}

/* The journal synced the write's group (status 0) or failed it: only now
 * may the write be acknowledged as journaled. */
static void route_l2w_journaled(void *ctx, int status)
{
    route_l2w_t *x = ctx;
    if (status == 0) atomic_fetch_add(&x->w->route->l2->stats.writes_journaled, 1);
    route_l2w_finish(x, status == 0, status == 0);
}

/* Journal mode: keep the write locally until Redis is back. True when the
 * append is under way (route_l2w_journaled finishes x). */
static bool route_l2w_journal(route_l2w_t *x)
{
    l2_shared_t *s = x->w->route->l2;
    if (s->write_mode != L2_WRITE_JOURNAL || !s->journal) return false;
    int64_t now = store_now_ms(x->w->route->store);
    journal_rec_t rec = {.op = x->is_delete ? JOURNAL_OP_DEL : JOURNAL_OP_SET,
                         .version = x->args.version,
                         .expires_at_ms = x->args.ttl_ms ? now + x->args.ttl_ms : 0,
                         .key = x->args.key,
                         .klen = x->args.key_len,
                         .ct = x->args.content_type,
                         .ctlen = x->args.content_type ? x->args.content_type_len : 0,
                         .value = x->args.value,
                         .vlen = x->args.value_len};
    return l2_journal_append(x->w->l2, &rec, 1, route_l2w_journaled, x) == 0;
}

static void route_l2w_done(void *ctx, l2_result_t res)
{
    route_l2w_t *x = ctx;
    if (res == L2_OK) route_l2w_finish(x, true, false);
    else if (!route_l2w_journal(x)) route_l2w_finish(x, false, false);
}

static route_l2w_t *route_l2w_new(route_worker_t *w, route_reply_t reply, const store_put_args_t *args,
                                  const uint8_t *rid)
{
    route_l2w_t *x = calloc(1, sizeof *x);
    size_t ctlen = args->content_type ? args->content_type_len : 0;
    if (x) x->buf = malloc(args->key_len + args->value_len + ctlen + 1);
    if (!x || !x->buf) {
        free(x);
        reply.ops->fail(reply.ctx, ROUTE_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    x->w = w;
    x->reply = reply;
    x->args = *args;
    memcpy(x->buf, args->key, args->key_len);
    if (args->value_len) memcpy(x->buf + args->key_len, args->value, args->value_len);
    if (ctlen) memcpy(x->buf + args->key_len + args->value_len, args->content_type, ctlen);
    x->args.key = x->buf;
    x->args.value = x->buf + args->key_len;
    x->args.content_type = ctlen ? x->buf + args->key_len + args->value_len : NULL;
    x->args.content_type_len = ctlen;
    x->args.version = route_stamp(w->route);
    if (rid) {
        x->has_rid = true;
        memcpy(x->rid, rid, PEER_ID_LEN);
    }
    return x;
}

static bool route_write_refused(route_worker_t *w, route_reply_t reply)
{
    const char *why = NULL;
    route_error_t err = route_write_refusal(w, &why);
    if (err == ROUTE_ERR_COUNT) return false;
    reply.ops->fail(reply.ctx, err, why);
    return true;
}

void route_write_note_rid(route_t *rt, const uint8_t *rid, uint64_t version, bool flag)
{
    if (!rid || !route_dedupe_rid_set(rid)) return;
    route_dedupe_result_t r = {.version = version, .flag = flag};
    route_dedupe_note(rt->dedupe, rid, &r, store_now_ms(rt->store));
}

/* A request this node carried out already (a forwarder's retry after the
 * answer got lost): answered with what it got. */
static bool route_write_repeated(route_worker_t *w, route_reply_t reply, const void *key, size_t klen, bool is_delete,
                                 const uint8_t *rid)
{
    route_t *a = w->route;
    route_dedupe_result_t r;
    if (!rid || !route_dedupe_find(a->dedupe, rid, store_now_ms(a->store), &r)) return false;
    topo_t *t = route_topo(w);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, key, klen, owners, RING_REPLICAS_MAX) : 0;
    route_written_t done = {.key = key, .klen = klen, .version = r.version, .created = !is_delete && r.flag,
                            .existed = is_delete && r.flag, .node = route_self_name(a),
                            .owner = route_owner_name(a, t, owners, n)};
    if (is_delete) reply.ops->deleted(reply.ctx, &done);
    else reply.ops->stored(reply.ctx, &done);
    return true;
}

void route_write_coordinate_put(route_worker_t *w, route_reply_t reply, const store_put_args_t *args,
                                const uint8_t *rid)
{
    if (route_write_repeated(w, reply, args->key, args->key_len, false, rid)) return;
    if (route_write_refused(w, reply)) return;
    if (!w->l2) {
        store_put_args_t put = *args;
        put.version = route_stamp(w->route);
        route_coordinate_put_at(w, reply, &put, false, rid);
        return;
    }
    if (args->value_len > w->route->cfg->max_value_size) {
        reply.ops->fail(reply.ctx, ROUTE_ERR_TOO_LARGE, "value larger than this node can hold");
        return;
    }
    route_l2w_t *x = route_l2w_new(w, reply, args, rid);
    if (!x) return;
    int64_t expires = x->args.ttl_ms ? store_now_ms(w->route->store) + x->args.ttl_ms : 0;
    l2_set(w->l2, x->args.key, x->args.key_len, x->args.value, x->args.value_len, x->args.content_type,
           x->args.content_type_len, x->args.version, expires, route_l2w_done, x);
}

void route_write_coordinate_delete(route_worker_t *w, route_reply_t reply, const char *key, size_t klen,
                                   const uint8_t *rid)
{
    if (route_write_repeated(w, reply, key, klen, true, rid)) return;
    if (route_write_refused(w, reply)) return;
    if (!w->l2) {
        route_coordinate_delete_at(w, reply, key, klen, route_stamp(w->route), false, rid);
        return;
    }
    store_put_args_t args = {.key = key, .key_len = klen};
    route_l2w_t *x = route_l2w_new(w, reply, &args, rid);
    if (!x) return;
    x->is_delete = true;
    l2_del(w->l2, x->args.key, x->args.key_len, x->args.version, route_l2w_done, x);
}

/* ---------- PUT and DELETE forwarded to the primary ---------- */

typedef struct route_fwd {
    route_worker_t *w;
    route_reply_t reply;
    int kind;                       /* ROUTE_FWD_PUT or ROUTE_FWD_DELETE */
    store_put_args_t args;          /* key copied; value and content type point into r */
    char *key;
    topo_t *topo;
    uint32_t owners[RING_REPLICAS_MAX];
    size_t nowners, next_owner;
    char owner[SWIM_NAME_MAX];
    uint8_t rid[PEER_ID_LEN];       /* the request's id on every owner tried (route_dedupe.h) */
} route_fwd_t;

static void route_fwd_free(route_fwd_t *f)
{
    topo_unref(f->topo);
    free(f->key);
    free(f);
}

static void route_fwd_try(route_fwd_t *f);

static void route_fwd_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_fwd_t *f = ctx;
    const route_reply_t *reply = &f->reply;
    const char *node = f->topo->members[f->owners[f->next_owner - 1]].name;
    if (res == PEER_OK && resp->type == (f->kind == ROUTE_FWD_PUT ? PEER_MSG_PUT_RESP : PEER_MSG_DELETE_RESP)) {
        if (resp->status == PEER_STATUS_OK) {
            /* Whatever this node stamps after acknowledging the write (an
             * invalidation) must be newer than it. */
            if (f->kind == ROUTE_FWD_PUT) route_observe(f->w->route, resp->version);
            route_written_t done = {.key = f->key, .klen = f->args.key_len, .version = resp->version,
                                    .ttl_ms = f->args.ttl_ms, .created = (resp->flags & PEER_F_CREATED) != 0,
                                    .existed = resp->existed, .journaled = (resp->flags & PEER_F_JOURNALED) != 0,
                                    .node = node, .owner = f->owner};
            if (f->kind == ROUTE_FWD_PUT) reply->ops->stored(reply->ctx, &done);
            else reply->ops->deleted(reply->ctx, &done);
            route_fwd_free(f);
            return;
        }
        if (resp->status == PEER_STATUS_UNAVAILABLE && (resp->flags & PEER_F_L2)) {
            reply->ops->fail(reply->ctx, ROUTE_ERR_L2_UNAVAILABLE, "Redis is unavailable and the write could not be kept");
            route_fwd_free(f);
            return;
        }
        if (resp->status == PEER_STATUS_UNAVAILABLE) {
            /* The coordinator could not replicate: its answer is final. */
            atomic_fetch_add(&f->w->route->stats.writes_unreplicated, 1);
            reply->ops->fail(reply->ctx, ROUTE_ERR_NOT_REPLICATED, "the owners could not store the write (--write-acks)");
            route_fwd_free(f);
            return;
        }
    }
    if (res == PEER_ERR_REMOTE && resp->code == PEER_STATUS_TOO_LARGE) {
        reply->ops->fail(reply->ctx, ROUTE_ERR_TOO_LARGE, "value larger than the owner can hold");
        route_fwd_free(f);
        return;
    }
    atomic_fetch_add(&f->w->route->stats.failovers, 1);
    route_fwd_try(f);
}

static void route_fwd_try(route_fwd_t *f)
{
    route_worker_t *w = f->w;
    while (f->next_owner < f->nowners) {
        uint32_t idx = f->owners[f->next_owner++];
        if ((int32_t)idx == f->topo->self) {
            /* The owners before us failed: act as the primary. */
            if (f->kind == ROUTE_FWD_PUT) route_write_coordinate_put(w, f->reply, &f->args, f->rid);
            else route_write_coordinate_delete(w, f->reply, f->key, f->args.key_len, f->rid);
            route_fwd_free(f);
            return;
        }
        const topo_member_t *m = &f->topo->members[idx];
        if (m->peer.ss_family == 0) continue;
        peer_msg_t req = {.type = f->kind == ROUTE_FWD_PUT ? PEER_MSG_PUT : PEER_MSG_DELETE,
                          .flags = PEER_F_FORWARDED,
                          .ttl_ms = (uint64_t)f->args.ttl_ms};
        memcpy(req.rid, f->rid, PEER_ID_LEN);
        req.key.p = (const uint8_t *)f->key;
        req.key.len = f->args.key_len;
        req.value.p = f->args.value;
        req.value.len = f->args.value_len;
        req.content_type.p = (const uint8_t *)f->args.content_type;
        req.content_type.len = f->args.content_type ? f->args.content_type_len : 0;
        peer_result_t res =
            peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, route_fwd_reply, f);
        if (res == PEER_OK) {
            atomic_fetch_add(&w->route->stats.forwarded[f->kind], 1);
            return;
        }
        atomic_fetch_add(&w->route->stats.failovers, 1);
    }
    atomic_fetch_add(&w->route->stats.unavailable, 1);
    f->reply.ops->fail(f->reply.ctx, ROUTE_ERR_OWNER_UNAVAILABLE, "no owner of this key answered");
    route_fwd_free(f);
}

/* Forwards a PUT or DELETE when this node is not the primary; false when it
 * is (or there is no ring): the caller coordinates here. */
static bool route_fwd_start(route_worker_t *w, route_reply_t reply, int kind, const store_put_args_t *args)
{
    topo_t *t = route_topo(w);
    if (!t) return false;
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = topo_owners(t, args->key, args->key_len, owners, RING_REPLICAS_MAX);
    if (n == 0 || (int32_t)owners[0] == t->self) return false;
    route_fwd_t *f = calloc(1, sizeof *f);
    if (f) f->key = malloc(args->key_len);
    if (!f || !f->key) {
        free(f);
        reply.ops->fail(reply.ctx, ROUTE_ERR_NO_MEMORY, "out of memory");
        return true;
    }
    f->w = w;
    f->reply = reply;
    f->kind = kind;
    f->args = *args;
    memcpy(f->key, args->key, args->key_len);
    f->args.key = f->key;
    /* One id for every owner this request is tried on. */
    randombytes_buf(f->rid, sizeof f->rid);
    f->topo = topo_ref(t);
    memcpy(f->owners, owners, n * sizeof *owners);
    f->nowners = n;
    snprintf(f->owner, sizeof f->owner, "%s", t->members[owners[0]].name);
    route_fwd_try(f);
    return true;
}

void route_write_put(route_worker_t *w, route_reply_t reply, const store_put_args_t *args)
{
    if (route_write_refused(w, reply)) return;
    if (!route_fwd_start(w, reply, ROUTE_FWD_PUT, args)) route_write_coordinate_put(w, reply, args, NULL);
}

void route_write_delete(route_worker_t *w, route_reply_t reply, const char *key, size_t klen)
{
    if (route_write_refused(w, reply)) return;
    store_put_args_t args = {.key = key, .key_len = klen};
    if (!route_fwd_start(w, reply, ROUTE_FWD_DELETE, &args)) route_write_coordinate_delete(w, reply, key, klen, NULL);
}

store_status_t route_write_replica_put(route_t *rt, const store_put_args_t *args, bool *created)
{
    *created = false;
    /* A primary whose clock runs far ahead would make its write win over
     * every later one: refuse it, so the write is not acknowledged. */
    if (!route_plausible(rt, args->version)) return STORE_BAD_KEY;
    route_observe(rt, args->version);
    bool replaced = false;
    /* A delete that overtook this write wins (the primary counts it done).
     * A floor (tomb.h) does not: the primary checked its own tombstones. */
    store_status_t st = route_tomb_deleted(rt, args->key, args->key_len, args->version)
                            ? STORE_STALE
                            : store_put_if_newer(rt->store, args, &replaced);
    *created = st == STORE_OK && !replaced;
    return st;
}

bool route_write_replica_delete(route_t *rt, const void *key, size_t klen, uint64_t version)
{
    route_observe(rt, version);
    route_tomb_add(rt, key, klen, version);
    /* A newer write that overtook this delete stays. */
    return store_delete_versioned(rt->store, key, klen, STORE_DELETE_IF_OLDER, version);
}
