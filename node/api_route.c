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

void api_respond_retry(http_request_t *r, const char *code, const char *message)
{
    static const char hdr[] = "Retry-After: 1\r\n";
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"error\":");
    sbuf_json_string(&b, message, strlen(message));
    sbuf_printf(&b, ",\"code\":\"%s\"}", code);
    if (b.failed) {
        sbuf_free(&b);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    api_respond_json_headers(r, 503, b.data, b.len, hdr, sizeof hdr - 1);
    sbuf_free(&b);
}

static void api_respond_unavailable(http_request_t *r, const char *message)
{
    api_respond_retry(r, "owner_unavailable", message);
}

static void api_respond_l2_unavailable(http_request_t *r, const char *message)
{
    api_respond_retry(r, "l2_unavailable", message);
}

/* ---------- GET: coalesced forwarding, and asking previous owners ---------- */

/* Who waits for a GET: a client (HTTP) or a peer that forwarded it. */
typedef struct api_waiter {
    http_request_t *r;
    peer_call_t *call;
} api_waiter_t;

/* FORWARD: this node does not own the key; ask its owners in order, 503
 * when none answers. FALLBACK: this node owns the key but misses it right
 * after a ring change; ask the key's previous owners, keep what they have,
 * answer "not found" when none has it. */
typedef enum { API_FLIGHT_FORWARD = 0, API_FLIGHT_FALLBACK = 1, API_FLIGHT_L2 = 2 } api_flight_mode_t;

typedef struct api_flight {
    struct api_flight *next;        /* hash chain */
    api_worker_t *w;
    api_flight_mode_t mode;
    uint64_t hash;
    bool in_table;
    char *key;
    size_t klen;
    api_waiter_t *waiters;
    size_t nwaiters, cap;
    topo_t *topo, *prev;            /* own references: the members asked live in them */
    const topo_member_t *targets[2 * RING_REPLICAS_MAX];
    size_t ntargets, next_target;
    char owner[SWIM_NAME_MAX];      /* the primary, for X-Cache-Owner */
} api_flight_t;

/* A value shared by every waiter's response. */
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
    topo_unref(f->prev);
    free(f->waiters);
    free(f->key);
    free(f);
}

static void api_waiter_miss(api_t *a, const api_waiter_t *wt, const char *node, const char *owner)
{
    if (wt->call) {
        peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_NOT_FOUND};
        peer_server_respond(wt->call, &m);
    } else {
        api_respond_miss(wt->r, node ? node : api_self_name(a), owner);
    }
}

static void api_waiter_value(const api_waiter_t *wt, const api_value_t *v, void (*release)(void *), void *ctx)
{
    if (!wt->call) {
        api_respond_value(wt->r, v, release, ctx);
        return;
    }
    peer_msg_t m = {.type = PEER_MSG_GET_RESP, .status = PEER_STATUS_OK, .version = v->version,
                    .ttl_ms = (uint64_t)v->ttl_ms};
    m.value.p = (const uint8_t *)v->value;
    m.value.len = v->len;
    m.content_type.p = (const uint8_t *)v->ct;
    m.content_type.len = v->ctlen;
    peer_server_respond(wt->call, &m);
    if (release) release(ctx);
}

/* A value found elsewhere (an owner, a previous owner, L2). */
typedef struct api_found {
    const void *value;
    size_t len;
    const char *ct;
    size_t ctlen;
    uint64_t version;
    int64_t ttl_ms;              /* remaining; 0 = never expires */
} api_found_t;

typedef enum { API_OUT_FOUND = 0, API_OUT_MISS, API_OUT_NO_OWNER, API_OUT_NO_L2 } api_outcome_t;

/* Keeps a value found at a previous owner or in L2; a newer one here wins. */
static void api_flight_fill(api_t *a, const api_flight_t *f, const api_found_t *v)
{
    store_put_args_t args = {.key = f->key,
                             .key_len = f->klen,
                             .value = v->value,
                             .value_len = v->len,
                             .content_type = v->ct,
                             .content_type_len = v->ctlen,
                             .ttl_ms = v->ttl_ms,
                             .version = v->version};
    api_observe(a, v->version);
    store_status_t st = store_put_if_newer(a->store, &args, NULL);
    if (f->mode == API_FLIGHT_FALLBACK) atomic_fetch_add(&a->route.fallback_filled, 1);
    else if (st == STORE_STALE && a->l2) atomic_fetch_add(&a->l2->stats.fills_stale, 1);
}

static void api_flight_answer(api_flight_t *f, api_outcome_t out, const api_found_t *found, const char *node)
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
    if (out == API_OUT_MISS) {
        metrics_add(&a->metrics->misses, f->nwaiters);
        for (size_t i = 0; i < f->nwaiters; i++) api_waiter_miss(a, &f->waiters[i], node, f->owner);
    } else if (out != API_OUT_FOUND) {
        bool l2 = out == API_OUT_NO_L2;
        if (!l2) atomic_fetch_add(&a->route.unavailable, f->nwaiters);
        for (size_t i = 0; i < f->nwaiters; i++) {
            if (f->waiters[i].call)
                peer_server_respond_error(f->waiters[i].call, PEER_STATUS_UNAVAILABLE,
                                          l2 ? "L2 unavailable" : "no owner answered");
            else if (l2) api_respond_l2_unavailable(f->waiters[i].r, "the key is not in L1 and Redis is unavailable");
            else api_respond_unavailable(f->waiters[i].r, "no owner of this key answered");
        }
    } else {
        if (f->mode != API_FLIGHT_FORWARD) api_flight_fill(a, f, found);
        metrics_add(&a->metrics->hits, f->nwaiters);
        api_shared_value_t *v = malloc(sizeof *v + found->len + found->ctlen + 1);
        if (!v) {
            for (size_t i = 0; i < f->nwaiters; i++) {
                if (f->waiters[i].call) peer_server_respond_error(f->waiters[i].call, PEER_STATUS_UNAVAILABLE, "out of memory");
                else http_respond_error(f->waiters[i].r, 503, "no_memory", "out of memory");
            }
        } else {
            v->refs = (unsigned)f->nwaiters;
            snprintf(v->node, sizeof v->node, "%s", f->mode == API_FLIGHT_FORWARD ? node : api_self_name(a));
            memcpy(v->data, found->value, found->len);
            v->len = found->len;
            v->ct = v->data + v->len;
            if (found->ctlen) memcpy(v->ct, found->ct, found->ctlen);
            v->ctlen = found->ctlen;
            v->version = found->version;
            v->ttl_ms = found->ttl_ms;
            api_value_t view = {.value = v->data, .len = v->len, .ct = v->ct, .ctlen = v->ctlen,
                                .version = v->version, .ttl_ms = v->ttl_ms, .node = v->node, .owner = f->owner,
                                .cache = f->mode == API_FLIGHT_L2 ? "HIT-L2" : NULL};
            for (size_t i = 0; i < f->nwaiters; i++)
                api_waiter_value(&f->waiters[i], &view, api_shared_value_release, v);
        }
    }
    api_flight_free(f);
}

static void api_flight_l2_reply(void *ctx, l2_result_t res, const l2_value_t *v)
{
    api_flight_t *f = ctx;
    if (res == L2_MISS) {
        api_flight_answer(f, API_OUT_MISS, NULL, NULL);
        return;
    }
    if (res != L2_OK) {
        api_flight_answer(f, API_OUT_NO_L2, NULL, NULL);
        return;
    }
    int64_t ttl = 0;
    if (v->expires_at_ms) {
        ttl = v->expires_at_ms - store_now_ms(f->w->api->store);
        if (ttl <= 0) {
            api_flight_answer(f, API_OUT_MISS, NULL, NULL);
            return;
        }
    }
    api_found_t found = {.value = v->value, .len = v->len, .ct = v->ct, .ctlen = v->ctlen, .version = v->version,
                         .ttl_ms = ttl};
    api_flight_answer(f, API_OUT_FOUND, &found, NULL);
}

/* The last place to look at an owner: Redis. */
static void api_flight_ask_l2(api_flight_t *f)
{
    f->mode = API_FLIGHT_L2;
    l2_get(f->w->l2, f->key, f->klen, api_flight_l2_reply, f);
}

/* Answers from a peer's GET_RESP (found or not), or NULL when no owner
 * answered; a miss at an owner goes on to L2. */
static void api_flight_finish(api_flight_t *f, const peer_msg_t *resp, const char *node)
{
    if (resp && resp->status == PEER_STATUS_OK) {
        api_found_t found = {.value = resp->value.p, .len = resp->value.len,
                             .ct = (const char *)resp->content_type.p, .ctlen = resp->content_type.len,
                             .version = resp->version,
                             .ttl_ms = resp->ttl_ms > INT64_MAX ? INT64_MAX : (int64_t)resp->ttl_ms};
        api_flight_answer(f, API_OUT_FOUND, &found, node);
        return;
    }
    if (f->mode == API_FLIGHT_FALLBACK) {
        /* No previous owner has it: an owner's miss goes to L2. */
        if (f->w->l2) api_flight_ask_l2(f);
        else api_flight_answer(f, API_OUT_MISS, NULL, NULL);
        return;
    }
    api_flight_answer(f, resp ? API_OUT_MISS : API_OUT_NO_OWNER, NULL, node);
}

static void api_flight_try(api_flight_t *f);

static void api_flight_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    api_flight_t *f = ctx;
    const char *node = f->targets[f->next_target - 1]->name;
    if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP && resp->status == PEER_STATUS_OK) {
        api_flight_finish(f, resp, node);
        return;
    }
    /* A previous owner without the key: the next one may have it. */
    if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP && resp->status == PEER_STATUS_NOT_FOUND &&
        (f->mode == API_FLIGHT_FORWARD || f->next_target >= f->ntargets)) {
        api_flight_finish(f, resp, node);
        return;
    }
    if (res != PEER_OK || resp->type != PEER_MSG_GET_RESP) {
        atomic_fetch_add(&f->w->api->route.failovers, 1);
        log_debug("owner failed, trying the next", "\"owner\":\"%s\",\"result\":\"%s\"", node, peer_result_name(res));
    }
    api_flight_try(f);
}

static void api_flight_try(api_flight_t *f)
{
    api_worker_t *w = f->w;
    while (f->next_target < f->ntargets) {
        const topo_member_t *m = f->targets[f->next_target++];
        /* Asked while rebalancing, a peer answers from its own L1: two
         * nodes that both miss must not wait on each other. */
        peer_msg_t req = {.type = PEER_MSG_GET,
                          .flags = PEER_F_FORWARDED | (f->mode == API_FLIGHT_FALLBACK ? PEER_F_LOCAL : 0)};
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

/* Adds the owners of key in t (but this node, members without a peer
 * address and members already listed) to the flight's targets. */
static void api_flight_add_owners(api_flight_t *f, topo_t *t)
{
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = topo_owners(t, f->key, f->klen, owners, RING_REPLICAS_MAX);
    for (size_t i = 0; i < n; i++) {
        const topo_member_t *m = &t->members[owners[i]];
        if ((int32_t)owners[i] == t->self || m->peer.ss_family == 0) continue;
        bool dup = false;
        for (size_t k = 0; k < f->ntargets && !dup; k++) dup = strcmp(f->targets[k]->name, m->name) == 0;
        if (!dup && f->ntargets < sizeof f->targets / sizeof f->targets[0]) f->targets[f->ntargets++] = m;
    }
}

/* Joins the flight for this key, or starts one asking the owners of the
 * key in t, then (FALLBACK) those in prev. */
static void api_flight_join(api_worker_t *w, api_flight_mode_t mode, const api_waiter_t *wt, const char *key,
                            size_t klen, topo_t *t, topo_t *prev, const char *owner)
{
    api_t *a = w->api;
    uint64_t hash = ring_key_hash(key, klen);
    api_flight_t **slot = api_flight_slot(w, hash, key, klen);
    api_flight_t *f = *slot;
    /* A GET a peer forwarded here must not wait on a forward of our own:
     * two nodes that disagree about the ring would wait on each other. */
    if (f && wt->call && f->mode == API_FLIGHT_FORWARD) f = NULL;
    if (f) {
        if (f->nwaiters == f->cap) {
            size_t cap = f->cap * 2;
            api_waiter_t *nw = realloc(f->waiters, cap * sizeof *nw);
            if (!nw) goto no_memory;
            f->waiters = nw;
            f->cap = cap;
        }
        f->waiters[f->nwaiters++] = *wt;
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
        goto no_memory;
    }
    f->w = w;
    f->mode = mode;
    f->hash = hash;
    memcpy(f->key, key, klen);
    f->klen = klen;
    f->cap = 4;
    f->waiters[f->nwaiters++] = *wt;
    f->topo = topo_ref(t);
    f->prev = topo_ref(prev);
    if (t && mode != API_FLIGHT_L2) api_flight_add_owners(f, t);
    if (prev) api_flight_add_owners(f, prev);
    snprintf(f->owner, sizeof f->owner, "%s", owner);
    if (w->nflights < API_FLIGHT_MAX && !*slot) {
        f->next = *slot;
        *slot = f;
        f->in_table = true;
        w->nflights++;
        atomic_fetch_add(&a->route.flights, 1);
    }
    if (mode == API_FLIGHT_FALLBACK) atomic_fetch_add(&a->route.fallbacks, 1);
    if (mode == API_FLIGHT_L2) api_flight_ask_l2(f);
    else api_flight_try(f);
    return;
no_memory:
    if (wt->call) peer_server_respond_error(wt->call, PEER_STATUS_UNAVAILABLE, "out of memory");
    else http_respond_error(wt->r, 503, "no_memory", "out of memory");
}

static void api_entry_unref(void *e)
{
    store_entry_release(e);
}

/* A GET at an owner of the key: L1, then, right after a ring change, the
 * key's other owners and its previous owners (a joiner has nothing yet; a
 * node that became owner when another died has not received the key yet). */
static void api_owner_get(api_worker_t *w, topo_t *t, const api_waiter_t *wt, const char *key, size_t klen,
                          const char *owner, bool local_only)
{
    api_t *a = w->api;
    store_entry_t *e;
    if (store_get(a->store, key, klen, &e) == STORE_OK) {
        metrics_add(&a->metrics->hits, 1);
        api_value_t v = {.version = store_entry_version(e), .ttl_ms = api_entry_ttl_ms(a, e),
                         .node = api_self_name(a), .owner = owner};
        v.value = store_entry_value(e, &v.len);
        v.ct = store_entry_content_type(e, &v.ctlen);
        api_waiter_value(wt, &v, api_entry_unref, e);
        return;
    }
    topo_t *prev = topo_cache_prev(&w->topo);
    if (prev && t && t->n > 1 && !local_only) {
        api_flight_join(w, API_FLIGHT_FALLBACK, wt, key, klen, t, prev, owner);
        return;
    }
    if (w->l2 && !local_only) {
        api_flight_join(w, API_FLIGHT_L2, wt, key, klen, t, NULL, owner);
        return;
    }
    metrics_add(&a->metrics->misses, 1);
    api_waiter_miss(a, wt, NULL, owner);
}

void api_route_get(api_worker_t *w, http_request_t *r, const char *key, size_t klen)
{
    api_t *a = w->api;
    topo_t *t = topo_cache_get(&w->topo, &a->topo);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, key, klen, owners, RING_REPLICAS_MAX) : 0;
    const char *owner = api_owner_name(a, t, owners, n);
    api_waiter_t wt = {.r = r};
    if (!t || topo_is_owner(t, owners, n)) api_owner_get(w, t, &wt, key, klen, owner, false);
    else api_flight_join(w, API_FLIGHT_FORWARD, &wt, key, klen, t, NULL, owner);
}

void api_serve_get(api_worker_t *w, peer_call_t *call, const char *key, size_t klen)
{
    bool local_only = (peer_call_flags(call) & PEER_F_LOCAL) != 0;
    api_t *a = w->api;
    topo_t *t = topo_cache_get(&w->topo, &a->topo);
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = t ? topo_owners(t, key, klen, owners, RING_REPLICAS_MAX) : 0;
    api_waiter_t wt = {.call = call};
    api_owner_get(w, t, &wt, key, klen, api_owner_name(a, t, owners, n), local_only);
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
        if (call) peer_server_respond_error(call, PEER_STATUS_UNAVAILABLE, "out of memory");
        else http_respond_error(r, 503, "no_memory", "out of memory");
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
