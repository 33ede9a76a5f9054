/* route_read: a key's reads routed to its owners (DESIGN section 4 of
 * docs/ARCHITECTURE.md): GETs are served by any owner (L1, then previous
 * owners right after a ring change, then L2) and forwarded, coalesced,
 * otherwise. An owner that fails or does not answer in time is skipped for
 * the next one.
 *
 * Forwarded requests carry PEER_F_FORWARDED and are never forwarded again
 * (route_serve answers them from what the receiver holds), so two nodes
 * that briefly disagree about the ring cannot bounce a request between
 * them. */
#include "node/route/route_read.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/log.h"

#define ROUTE_FLIGHT_MAX 65536u   /* forwarded GETs in flight per worker; more are not coalesced */

/* ---------- GET: coalesced forwarding, and asking previous owners ---------- */

/* Who waits for a GET: a client, or a peer that forwarded it. */
typedef struct route_waiter {
    route_reply_t reply;
    bool from_peer;
} route_waiter_t;

/* FORWARD: this node does not own the key; ask its owners in order, 503
 * when none answers. FALLBACK: this node owns the key but misses it right
 * after a ring change; ask the key's previous owners, keep what they have,
 * answer "not found" when none has it. VERIFY: this node owns the key but
 * is syncing (resync.h): ask every other owner, and answer with the newest
 * of their copies, their tombstones and ours. */
typedef enum {
    ROUTE_FLIGHT_FORWARD = 0,
    ROUTE_FLIGHT_FALLBACK = 1,
    ROUTE_FLIGHT_L2 = 2,
    ROUTE_FLIGHT_VERIFY = 3,
    ROUTE_FLIGHT_ORIGIN = 4         /* an owner found the key nowhere: its origin loads it */
} route_flight_mode_t;

/* VERIFY: the newest copy or tombstone the other owners had. */
typedef struct route_best {
    uint64_t version;               /* 0: nothing seen yet */
    bool deleted;                   /* a tombstone at version */
    bool answered;                  /* some owner answered at all */
    bool owner_failed;              /* an owner in the current ring did not answer */
    char *value;                    /* owned copy (value then content type) */
    size_t len, ctlen;
    int64_t ttl_ms;
} route_best_t;

typedef struct route_flight {
    struct route_flight *next;        /* hash chain */
    route_worker_t *w;
    route_flight_mode_t mode;
    uint64_t hash;
    bool in_table;
    char *key;
    size_t klen;
    route_waiter_t *waiters;
    size_t nwaiters, cap;
    topo_t *topo, *prev;            /* own references: the members asked live in them */
    const topo_member_t *targets[2 * RING_REPLICAS_MAX];
    size_t ntargets, next_target;
    size_t ncurrent;                /* targets[0..ncurrent) are owners in the current ring */
    char owner[SWIM_NAME_MAX];      /* the primary, for X-Cache-Owner */
    bool l2_down;                   /* an owner missed the key and could not ask Redis */
    route_best_t best;              /* VERIFY */
    uint64_t seen[2 * RING_REPLICAS_MAX]; /* VERIFY: what each target answered (version; 0: nothing) */
    bool heard[2 * RING_REPLICAS_MAX];    /* ... and whether it answered */
    uint64_t deletes;               /* route_t.deletes when it started */
    bool origin_tried;              /* the origin was asked (or the primary for it): a miss now is final */
    bool origin_via_primary;        /* FORWARD to the primary so that it loads; none answering, load here */
    bool peer_waiter;               /* a peer forwarded a GET here: never forward this flight */
    bool origin_keep;               /* ... and what it brought may be stored */
    int64_t origin_stale_ms;        /* ... kept past its TTL this long for stale-if-error */
    char origin_error[128];         /* ROUTE_OUT_ORIGIN_FAILED: why */
} route_flight_t;

/* A value shared by every waiter's response. */
typedef struct route_shared_value {
    unsigned refs;
    char node[SWIM_NAME_MAX];
    char *ct;
    size_t ctlen, len;
    uint64_t version;
    int64_t ttl_ms;
    char data[];
} route_shared_value_t;

static void route_shared_value_release(void *p)
{
    route_shared_value_t *v = p;
    if (--v->refs == 0) free(v);
}

static route_flight_t **route_flight_slot(route_worker_t *w, uint64_t hash, const char *key, size_t klen)
{
    route_flight_t **pp = &w->flights[hash & (ROUTE_FLIGHT_BUCKETS - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hash && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0) break;
    return pp;
}

static void route_flight_free(route_flight_t *f)
{
    topo_unref(f->topo);
    topo_unref(f->prev);
    free(f->best.value);
    free(f->waiters);
    free(f->key);
    free(f);
}

static void route_waiter_miss(route_t *a, const route_waiter_t *wt, const char *node, const char *owner)
{
    wt->reply.ops->miss(wt->reply.ctx, node ? node : route_self_name(a), owner);
}

static void route_waiter_fail(const route_waiter_t *wt, route_error_t err, const char *message)
{
    wt->reply.ops->fail(wt->reply.ctx, err, message);
}

/* A value found elsewhere (an owner, a previous owner, L2). */
typedef struct route_found {
    const void *value;
    size_t len;
    const char *ct;
    size_t ctlen;
    uint64_t version;
    int64_t ttl_ms;              /* remaining; 0 = never expires */
    route_source_t source;
} route_found_t;

typedef enum {
    ROUTE_OUT_FOUND = 0,
    ROUTE_OUT_MISS,
    ROUTE_OUT_NO_OWNER,
    ROUTE_OUT_NO_L2,
    ROUTE_OUT_SYNCING,
    ROUTE_OUT_JOURNAL_PENDING,      /* a newer write waits in a journal (node: whose; NULL: ours) */
    ROUTE_OUT_JOURNAL_IN_DOUBT,     /* our pending table overflowed: Redis's answer cannot be trusted */
    ROUTE_OUT_ORIGIN_FAILED         /* the key's origin failed (message in the flight's origin_error) */
} route_outcome_t;

static void route_origin_spread(route_worker_t *w, const char *key, size_t klen, const route_found_t *v);

/* Keeps a value found at a previous owner, in L2 or at the origin; a newer
 * one here wins. What the origin brought goes to the key's other owners
 * and to Redis too, as a write would: the next miss elsewhere finds it
 * there, not at the origin. */
static void route_flight_fill(route_t *a, const route_flight_t *f, const route_found_t *v)
{
    store_put_args_t args = {.key = f->key,
                             .key_len = f->klen,
                             .value = v->value,
                             .value_len = v->len,
                             .content_type = v->ct,
                             .content_type_len = v->ctlen,
                             .ttl_ms = v->ttl_ms,
                             .version = v->version,
                             .stale_ms = v->source == ROUTE_SRC_ORIGIN ? f->origin_stale_ms : 0};
    route_observe(a, v->version);
    store_status_t st = store_put_if_newer(a->store, &args, NULL);
    if (f->mode == ROUTE_FLIGHT_FALLBACK) atomic_fetch_add(&a->stats.fallback_filled, 1);
    else if (st == STORE_STALE && a->l2) atomic_fetch_add(&a->l2->stats.fills_stale, 1);
    if (v->source == ROUTE_SRC_ORIGIN && st == STORE_OK) route_origin_spread(f->w, f->key, f->klen, v);
}

/* What waits in this node's journal for the key decides whether an answer
 * found elsewhere stands. Until the drainer has replayed a journaled
 * write, Redis holds an older value, an older tombstone or nothing, and an
 * owner that misses L1 reads exactly that: serving or caching it would be
 * a stale read of an acknowledged write. A pending SET newer than the
 * answer (or a miss): the value is only in the journal file, so 503
 * journal_pending (L1 had it until an eviction or a restart; a retry
 * after the drain gets it), unless a delete newer than it is known here.
 * A pending DELETE newer than the answer: the key is deleted. While the
 * pending table is in doubt (it overflowed), no answer that came from
 * Redis can be trusted: this node's L2 reads, and a forwarded answer that
 * says L2 or is a miss. Only this node's journal is known here; an
 * owner's is, when it answers PEER_F_JOURNALED. */
static route_outcome_t route_flight_journal_check(route_flight_t *f, route_outcome_t out, const route_found_t *found)
{
    route_t *a = f->w->route;
    l2_shared_t *s = a->l2;
    if (!s || !s->journal || (out != ROUTE_OUT_FOUND && out != ROUTE_OUT_MISS && out != ROUTE_OUT_NO_L2)) return out;
    uint64_t pending = 0;
    switch (l2_journal_pending(s, f->hash, &pending)) {
    case JOURNAL_PENDING_NONE: return out;
    case JOURNAL_PENDING_IN_DOUBT: {
        if (out == ROUTE_OUT_NO_L2) return out; /* a 503 already */
        bool from_l2 = f->mode == ROUTE_FLIGHT_L2 ||
                       (f->mode == ROUTE_FLIGHT_FORWARD && (out == ROUTE_OUT_MISS || found->source == ROUTE_SRC_L2));
        if (!from_l2) return out;
        atomic_fetch_add(&s->stats.reads_journal_in_doubt, f->nwaiters);
        return ROUTE_OUT_JOURNAL_IN_DOUBT;
    }
    case JOURNAL_PENDING_SET:
        /* Redis has it once the replay wrote it (or a newer write did). */
        if (out == ROUTE_OUT_FOUND && found->version >= pending) return out;
        /* Deleted here after it: the delete's own record or Redis's
         * tombstone keeps the replay out. */
        if (route_tomb_deleted(a, f->key, f->klen, pending)) return out == ROUTE_OUT_NO_L2 ? out : ROUTE_OUT_MISS;
        atomic_fetch_add(&s->stats.reads_journal_pending, f->nwaiters);
        return ROUTE_OUT_JOURNAL_PENDING;
    case JOURNAL_PENDING_DEL:
        /* A value newer than the delete stands; Redis down stays a 503 (it
         * may hold one). */
        if (out == ROUTE_OUT_NO_L2 || out == ROUTE_OUT_MISS || found->version > pending) return out;
        atomic_fetch_add(&s->stats.reads_journal_deleted, f->nwaiters);
        return ROUTE_OUT_MISS;
    }
    return out;
}

static bool route_flight_ask_origin(route_flight_t *f);

static void route_flight_answer(route_flight_t *f, route_outcome_t out, const route_found_t *found, const char *node)
{
    route_t *a = f->w->route;
    /* Found in L2 or at a previous owner, but deleted here since: gone.
     * Only in doubt (a floor, tomb.h): served, since Redis and the previous
     * owners hold the delete themselves and this read may have raced it,
     * but not kept. */
    bool keep = f->mode != ROUTE_FLIGHT_FORWARD && (f->mode != ROUTE_FLIGHT_ORIGIN || f->origin_keep);
    if (out == ROUTE_OUT_FOUND && keep) {
        tomb_verdict_t tv = route_tomb_check(a, f->key, f->klen, found->version);
        if (tv == TOMB_DELETED) out = ROUTE_OUT_MISS;
        else if (tv == TOMB_IN_DOUBT) keep = false;
    }
    route_outcome_t checked = route_flight_journal_check(f, out, found);
    if (checked != out) {
        if (checked == ROUTE_OUT_JOURNAL_PENDING || checked == ROUTE_OUT_JOURNAL_IN_DOUBT) node = NULL;
        out = checked;
    }
    /* An owner found the key nowhere (or deleted): if an origin serves it,
     * the origin is asked, once, with the flight still open for others
     * to join. */
    if (out == ROUTE_OUT_MISS && f->mode != ROUTE_FLIGHT_FORWARD && route_flight_ask_origin(f)) return;
    /* Off the table first: a waiter's response may start a new GET. */
    if (f->in_table) {
        route_flight_t **pp = route_flight_slot(f->w, f->hash, f->key, f->klen);
        if (*pp == f) *pp = f->next;
        f->in_table = false;
        f->w->nflights--;
        atomic_fetch_sub(&a->stats.flights, 1);
    }
    if (out == ROUTE_OUT_MISS) {
        for (size_t i = 0; i < f->nwaiters; i++) route_waiter_miss(a, &f->waiters[i], node, f->owner);
    } else if (out == ROUTE_OUT_SYNCING) {
        for (size_t i = 0; i < f->nwaiters; i++)
            route_waiter_fail(&f->waiters[i], ROUTE_ERR_SYNCING,
                              "this node is syncing and no other owner of the key answered");
    } else if (out == ROUTE_OUT_JOURNAL_PENDING || out == ROUTE_OUT_JOURNAL_IN_DOUBT) {
        char msg[SWIM_NAME_MAX + 96];
        if (out == ROUTE_OUT_JOURNAL_IN_DOUBT)
            snprintf(msg, sizeof msg, "this node's journal holds more pending writes than it can track: "
                                      "reads from Redis wait until it is replayed");
        else
            snprintf(msg, sizeof msg, "a newer write of this key waits in %s's journal for Redis",
                     node ? node : "this node");
        for (size_t i = 0; i < f->nwaiters; i++) route_waiter_fail(&f->waiters[i], ROUTE_ERR_JOURNAL_PENDING, msg);
    } else if (out == ROUTE_OUT_ORIGIN_FAILED) {
        char msg[sizeof f->origin_error + 32];
        snprintf(msg, sizeof msg, "the key's origin failed: %s", f->origin_error[0] ? f->origin_error : "(no reason given)");
        for (size_t i = 0; i < f->nwaiters; i++) route_waiter_fail(&f->waiters[i], ROUTE_ERR_ORIGIN, msg);
    } else if (out != ROUTE_OUT_FOUND) {
        bool l2 = out == ROUTE_OUT_NO_L2;
        if (!l2) atomic_fetch_add(&a->stats.unavailable, f->nwaiters);
        for (size_t i = 0; i < f->nwaiters; i++) {
            if (l2) route_waiter_fail(&f->waiters[i], ROUTE_ERR_L2_UNAVAILABLE, "the key is not in L1 and Redis is unavailable");
            else route_waiter_fail(&f->waiters[i], ROUTE_ERR_OWNER_UNAVAILABLE, "no owner of this key answered");
        }
    } else {
        if (keep) route_flight_fill(a, f, found);
        route_shared_value_t *v = malloc(sizeof *v + found->len + found->ctlen + 1);
        if (!v) {
            for (size_t i = 0; i < f->nwaiters; i++) {
                route_waiter_fail(&f->waiters[i], ROUTE_ERR_NO_MEMORY, "out of memory");
            }
        } else {
            v->refs = (unsigned)f->nwaiters;
            snprintf(v->node, sizeof v->node, "%s", f->mode == ROUTE_FLIGHT_FORWARD ? node : route_self_name(a));
            memcpy(v->data, found->value, found->len);
            v->len = found->len;
            v->ct = v->data + v->len;
            if (found->ctlen) memcpy(v->ct, found->ct, found->ctlen);
            v->ctlen = found->ctlen;
            v->version = found->version;
            v->ttl_ms = found->ttl_ms;
            route_value_t view = {.value = v->data, .len = v->len, .ct = v->ct, .ctlen = v->ctlen,
                                  .version = v->version, .ttl_ms = v->ttl_ms, .node = v->node, .owner = f->owner,
                                  .source = f->mode == ROUTE_FLIGHT_L2 ? ROUTE_SRC_L2 : found->source};
            for (size_t i = 0; i < f->nwaiters; i++)
                f->waiters[i].reply.ops->value(f->waiters[i].reply.ctx, &view, route_shared_value_release, v);
        }
    }
    route_flight_free(f);
}

static void route_flight_l2_reply(void *ctx, l2_result_t res, const l2_value_t *v)
{
    route_flight_t *f = ctx;
    if (res == L2_MISS) {
        route_flight_answer(f, ROUTE_OUT_MISS, NULL, NULL);
        return;
    }
    if (res != L2_OK) {
        route_flight_answer(f, ROUTE_OUT_NO_L2, NULL, NULL);
        return;
    }
    int64_t ttl = 0;
    if (v->expires_at_ms) {
        ttl = v->expires_at_ms - store_now_ms(f->w->route->store);
        if (ttl <= 0) {
            route_flight_answer(f, ROUTE_OUT_MISS, NULL, NULL);
            return;
        }
    }
    route_found_t found = {.value = v->value, .len = v->len, .ct = v->ct, .ctlen = v->ctlen, .version = v->version,
                           .ttl_ms = ttl, .source = ROUTE_SRC_L2};
    route_flight_answer(f, ROUTE_OUT_FOUND, &found, NULL);
}

/* The last place to look at an owner: Redis. */
static void route_flight_ask_l2(route_flight_t *f)
{
    f->mode = ROUTE_FLIGHT_L2;
    l2_get(f->w->l2, f->key, f->klen, route_flight_l2_reply, f);
}

static void route_flight_verified(route_flight_t *f);
static void route_flight_load_origin(route_flight_t *f);

/* Answers from a peer's GET_RESP (found or not), or NULL when no owner
 * answered; a miss at an owner goes on to L2. */
static void route_flight_finish(route_flight_t *f, const peer_msg_t *resp, const char *node)
{
    if (f->mode == ROUTE_FLIGHT_VERIFY) {
        route_flight_verified(f);
        return;
    }
    if (resp && resp->status == PEER_STATUS_OK) {
        /* The owner says where it found the value: its L1 or Redis. */
        route_found_t found = {.value = resp->value.p, .len = resp->value.len,
                               .ct = (const char *)resp->content_type.p, .ctlen = resp->content_type.len,
                               .version = resp->version,
                               .ttl_ms = resp->ttl_ms > INT64_MAX ? INT64_MAX : (int64_t)resp->ttl_ms,
                               .source = (resp->flags & PEER_F_STALE)    ? ROUTE_SRC_STALE
                                         : (resp->flags & PEER_F_ORIGIN) ? ROUTE_SRC_ORIGIN
                                         : (resp->flags & PEER_F_L2)     ? ROUTE_SRC_L2
                                                                         : ROUTE_SRC_L1};
        route_flight_answer(f, ROUTE_OUT_FOUND, &found, node);
        return;
    }
    if (f->mode == ROUTE_FLIGHT_FALLBACK) {
        /* No previous owner has it: an owner's miss goes to L2. */
        if (f->w->l2) route_flight_ask_l2(f);
        else route_flight_answer(f, ROUTE_OUT_MISS, NULL, NULL);
        return;
    }
    /* The primary was to load it from the origin and did not answer: this
     * owner does. */
    if (!resp && f->origin_via_primary) {
        route_flight_load_origin(f);
        return;
    }
    /* No owner had the key; if one could not ask Redis, Redis is why. */
    route_flight_answer(f, resp ? ROUTE_OUT_MISS : f->l2_down ? ROUTE_OUT_NO_L2 : ROUTE_OUT_NO_OWNER, NULL, node);
}

static void route_flight_try(route_flight_t *f);

/* VERIFY: keeps an owner's answer if it is the newest seen. */
static void route_flight_consider(route_flight_t *f, const peer_msg_t *resp)
{
    route_best_t *b = &f->best;
    b->answered = true;
    if (resp->version <= b->version) return;
    if (resp->status == PEER_STATUS_NOT_FOUND) {
        if (resp->version == 0) return;
        free(b->value);
        *b = (route_best_t){.version = resp->version, .deleted = true, .answered = true};
        return;
    }
    char *copy = malloc(resp->value.len + resp->content_type.len + 1);
    if (!copy) return;
    memcpy(copy, resp->value.p, resp->value.len);
    memcpy(copy + resp->value.len, resp->content_type.p, resp->content_type.len);
    free(b->value);
    *b = (route_best_t){.version = resp->version, .answered = true, .value = copy, .len = resp->value.len,
                        .ctlen = resp->content_type.len,
                        .ttl_ms = resp->ttl_ms > INT64_MAX ? INT64_MAX : (int64_t)resp->ttl_ms};
}

static void route_read_repair_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_t *a = ctx;
    if (res == PEER_OK && (resp->type == PEER_MSG_PUT_RESP || resp->type == PEER_MSG_DELETE_RESP) &&
        (resp->status == PEER_STATUS_OK || resp->status == PEER_STATUS_STALE))
        atomic_fetch_add(&a->stats.read_repairs, 1);
}

/* VERIFY: read repair. The owners of the current ring that answered with
 * something older than the winner (or nothing) get it, as the primary's
 * replica write would have given it to them: put-if-newer, or a versioned
 * delete that leaves a tombstone. Not waited for: anti-entropy repair
 * catches what this misses. */
static void route_read_repair(route_flight_t *f, const route_found_t *value, uint64_t deleted_at)
{
    uint64_t winner = value ? value->version : deleted_at;
    peer_msg_t req = {.flags = PEER_F_FORWARDED | PEER_F_REPLICA, .version = winner};
    req.key.p = (const uint8_t *)f->key;
    req.key.len = f->klen;
    if (value) {
        req.type = PEER_MSG_PUT;
        req.value.p = (const uint8_t *)value->value;
        req.value.len = value->len;
        req.content_type.p = (const uint8_t *)value->ct;
        req.content_type.len = value->ct ? value->ctlen : 0;
        req.ttl_ms = value->ttl_ms > 0 ? (uint64_t)value->ttl_ms : 0;
    } else {
        req.type = PEER_MSG_DELETE;
    }
    for (size_t i = 0; winner && i < f->ncurrent; i++) {
        if (!f->heard[i] || f->seen[i] >= winner) continue;
        const topo_member_t *m = f->targets[i];
        (void)peer_pool_request(f->w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0,
                                route_read_repair_reply, f->w->route);
    }
}

/* VERIFY, every other owner asked: the newest of theirs and ours wins,
 * ours is repaired when it lost, theirs when they did (read repair). Nothing anywhere goes on to L2; a
 * node that could ask nobody can vouch neither for its copy nor for "not
 * found" (503 syncing). */
static void route_flight_verified(route_flight_t *f)
{
    route_t *a = f->w->route;
    const route_best_t *b = &f->best;
    int64_t now = store_now_ms(a->store);
    store_entry_t *e = NULL;
    uint64_t mine = a->tomb ? tomb_version(a->tomb, f->key, f->klen, now) : 0;
    bool have = store_get(a->store, f->key, f->klen, &e) == STORE_OK;
    if (have && store_entry_version(e) < mine) {
        /* A delete learnt by hash (a handoff or repair of tombstones) that
         * could not find the copy it deletes: this read did. */
        store_entry_release(e);
        store_delete_versioned(a->store, f->key, f->klen, STORE_DELETE_IF_OLDER, mine);
        have = false;
    }
    if (have && store_entry_version(e) > mine) mine = store_entry_version(e);
    atomic_fetch_add(&a->sync.verified_reads, 1);
    if (b->version > mine) {
        atomic_fetch_add(&a->sync.verify_repaired, 1);
        if (have) store_entry_release(e);
        if (b->deleted) {
            route_observe(a, b->version);
            route_tomb_add(a, f->key, f->klen, b->version);
            store_delete_versioned(a->store, f->key, f->klen, STORE_DELETE_IF_OLDER, b->version);
            route_read_repair(f, NULL, b->version);
            route_flight_answer(f, ROUTE_OUT_MISS, NULL, NULL);
            return;
        }
        route_found_t found = {.value = b->value, .len = b->len, .ct = b->value + b->len, .ctlen = b->ctlen,
                               .version = b->version, .ttl_ms = b->ttl_ms, .source = ROUTE_SRC_L1};
        route_read_repair(f, &found, 0);
        route_flight_answer(f, ROUTE_OUT_FOUND, &found, NULL);
        return;
    }
    /* An owner alive but not answering may hold the delete: our copy is
     * exactly what is in doubt. (Owners known down are not waited for:
     * whatever they held is gone with them.) */
    /* While syncing that is a 503; once synced (the minute after a stall or
     * a rejoin) the other owners have handed over what they had, and a
     * check that could not be made is not worth failing the read. */
    bool strict = atomic_load(&a->sync.syncing) != 0;
    if (have && b->owner_failed && strict) {
        store_entry_release(e);
        route_flight_answer(f, ROUTE_OUT_SYNCING, NULL, NULL);
        return;
    }
    if (have) {
        route_found_t found = {.version = store_entry_version(e), .ttl_ms = route_entry_ttl_ms(a, e),
                               .source = ROUTE_SRC_L1};
        found.value = store_entry_value(e, &found.len);
        found.ct = store_entry_content_type(e, &found.ctlen);
        if (!found.ct) found.ctlen = 0;
        route_read_repair(f, &found, 0);
        route_flight_answer(f, ROUTE_OUT_FOUND, &found, NULL);
        store_entry_release(e);
        return;
    }
    if (mine || b->deleted) {
        if (mine > b->version) route_read_repair(f, NULL, mine);
        route_flight_answer(f, ROUTE_OUT_MISS, NULL, NULL);
        return;
    }
    if (f->w->l2) {
        route_flight_ask_l2(f);
        return;
    }
    route_flight_answer(f, b->owner_failed && strict ? ROUTE_OUT_SYNCING : ROUTE_OUT_MISS,
                        NULL, NULL);
}

/* VERIFY: an owner of the current ring that could not say. One known
 * down (refused the connection, its breaker open) is skipped, as writes
 * skip it: it holds nothing it could serve. One that did not answer in
 * time, or answered with an error, is alive somewhere and may hold the
 * delete; a previous owner gone since says nothing either way. */
static void route_flight_verify_failed(route_flight_t *f, peer_result_t res)
{
    bool down = res == PEER_ERR_CONNECT || res == PEER_ERR_CLOSED || res == PEER_ERR_BREAKER ||
                res == PEER_ERR_BACKOFF || res == PEER_ERR_SHUTDOWN;
    if (!down && f->next_target - 1 < f->ncurrent) f->best.owner_failed = true;
}

static void route_flight_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_flight_t *f = ctx;
    const char *node = f->targets[f->next_target - 1]->name;
    if (f->mode == ROUTE_FLIGHT_VERIFY) {
        if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP &&
            (resp->status == PEER_STATUS_OK || resp->status == PEER_STATUS_NOT_FOUND)) {
            f->heard[f->next_target - 1] = true;
            f->seen[f->next_target - 1] = resp->version;
            route_flight_consider(f, resp);
        } else {
            atomic_fetch_add(&f->w->route->stats.failovers, 1);
            route_flight_verify_failed(f, res);
        }
        route_flight_try(f);
        return;
    }
    if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP && resp->status == PEER_STATUS_OK) {
        route_flight_finish(f, resp, node);
        return;
    }
    /* A previous owner without the key: the next one may have it. */
    if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP && resp->status == PEER_STATUS_NOT_FOUND &&
        (f->mode == ROUTE_FLIGHT_FORWARD || f->next_target >= f->ntargets)) {
        route_flight_finish(f, resp, node);
        return;
    }
    if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP && resp->status == PEER_STATUS_UNAVAILABLE &&
        (resp->flags & PEER_F_JOURNALED)) {
        /* That owner holds a newer write of the key in its journal, not yet
         * in Redis: another owner that misses would read Redis's older
         * value, so no other owner is asked. */
        route_flight_answer(f, ROUTE_OUT_JOURNAL_PENDING, NULL, node);
        return;
    }
    if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP && resp->status == PEER_STATUS_UNAVAILABLE &&
        (resp->flags & PEER_F_ORIGIN) && f->mode == ROUTE_FLIGHT_FORWARD) {
        /* The owner asked the key's origin and it failed: another owner
         * would ask the same origin. */
        snprintf(f->origin_error, sizeof f->origin_error, "reported by %s", node);
        route_flight_answer(f, ROUTE_OUT_ORIGIN_FAILED, NULL, node);
        return;
    }
    if (res == PEER_OK && resp->type == PEER_MSG_GET_RESP && resp->status == PEER_STATUS_UNAVAILABLE &&
        (resp->flags & PEER_F_L2)) {
        /* That owner missed and Redis is down: another owner may hold it. */
        f->l2_down = true;
        route_flight_try(f);
        return;
    }
    if (res != PEER_OK || resp->type != PEER_MSG_GET_RESP) {
        atomic_fetch_add(&f->w->route->stats.failovers, 1);
        log_debug("owner failed, trying the next", "\"owner\":\"%s\",\"result\":\"%s\"", node, peer_result_name(res));
    }
    route_flight_try(f);
}

static void route_flight_try(route_flight_t *f)
{
    route_worker_t *w = f->w;
    while (f->next_target < f->ntargets) {
        const topo_member_t *m = f->targets[f->next_target++];
        /* Asked while rebalancing, a peer answers from its own L1: two
         * nodes that both miss must not wait on each other. */
        bool local = f->mode == ROUTE_FLIGHT_FALLBACK || f->mode == ROUTE_FLIGHT_VERIFY;
        peer_msg_t req = {.type = PEER_MSG_GET, .flags = PEER_F_FORWARDED | (local ? PEER_F_LOCAL : 0)};
        req.key.p = (const uint8_t *)f->key;
        req.key.len = f->klen;
        peer_result_t res = peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0,
                                              route_flight_reply, f);
        if (res == PEER_OK) {
            atomic_fetch_add(&w->route->stats.forwarded[ROUTE_FWD_GET], 1);
            return;
        }
        atomic_fetch_add(&w->route->stats.failovers, 1);
        if (f->mode == ROUTE_FLIGHT_VERIFY) route_flight_verify_failed(f, res);
    }
    route_flight_finish(f, NULL, NULL);
}

/* A GET's key as the routing sees it, hashed and placed once. */
typedef struct route_gkey {
    const char *key;
    size_t klen;
    uint64_t hash;                  /* ring_key_hash: the ring's and the flight table's */
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n;                       /* owners in the current ring (0 without one) */
} route_gkey_t;

/* Adds owners of t (but this node, members without a peer address and
 * members already listed) to the flight's targets. */
static void route_flight_add_owners(route_flight_t *f, topo_t *t, const uint32_t *owners, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const topo_member_t *m = &t->members[owners[i]];
        if ((int32_t)owners[i] == t->self || m->peer.ss_family == 0) continue;
        bool dup = false;
        for (size_t k = 0; k < f->ntargets && !dup; k++) dup = strcmp(f->targets[k]->name, m->name) == 0;
        if (!dup && f->ntargets < sizeof f->targets / sizeof f->targets[0]) f->targets[f->ntargets++] = m;
    }
}

/* ---------- origins: read-through, stale-if-error, refresh-ahead ---------- */

static void route_origin_spread_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    (void)ctx;
    (void)res;
    (void)resp;
}

static void route_origin_l2_done(void *ctx, l2_result_t res)
{
    (void)ctx;
    (void)res;
}

/* A value the origin brought, stored here: the other owners get it as a
 * primary's replica write (put-if-newer, refused under a newer delete)
 * and Redis as a versioned SET. Neither is waited for: a copy that does
 * not arrive is loaded again on the next miss. */
static void route_origin_spread(route_worker_t *w, const char *key, size_t klen, const route_found_t *v)
{
    route_t *a = w->route;
    atomic_fetch_add(&a->stats.origin_fills, 1);
    topo_t *t = route_topo(w);
    if (t) {
        uint32_t owners[RING_REPLICAS_MAX];
        size_t n = topo_owners(t, key, klen, owners, RING_REPLICAS_MAX);
        peer_msg_t req = {.type = PEER_MSG_PUT, .flags = PEER_F_FORWARDED | PEER_F_REPLICA, .version = v->version,
                          .ttl_ms = v->ttl_ms > 0 ? (uint64_t)v->ttl_ms : 0};
        req.key.p = (const uint8_t *)key;
        req.key.len = klen;
        req.value.p = (const uint8_t *)v->value;
        req.value.len = v->len;
        req.content_type.p = (const uint8_t *)v->ct;
        req.content_type.len = v->ct ? v->ctlen : 0;
        for (size_t i = 0; i < n; i++) {
            const topo_member_t *m = &t->members[owners[i]];
            if ((int32_t)owners[i] == t->self || m->peer.ss_family == 0) continue;
            (void)peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0,
                                    route_origin_spread_reply, NULL);
        }
    }
    if (w->l2 && l2_available(w->l2))
        l2_set(w->l2, key, klen, v->value, v->len, v->ct, v->ct ? v->ctlen : 0, v->version,
               v->ttl_ms > 0 ? store_now_ms(a->store) + v->ttl_ms : 0, route_origin_l2_done, NULL);
}

/* The version a load starts with: a delete acknowledged after it refuses
 * what the load brings. 0 when this node may not stamp now (route.h):
 * the value is served but not kept. */
static uint64_t route_origin_version(route_worker_t *w)
{
    const char *why;
    return route_write_refusal(w, &why) == ROUTE_ERR_COUNT ? route_stamp(w->route) : 0;
}

static uint64_t route_origin_min_version(route_t *a, const char *key, size_t klen)
{
    return a->tomb ? tomb_version(a->tomb, key, klen, store_now_ms(a->store)) : 0;
}

static void route_flight_origin_reply(void *ctx, const origin_result_t *r)
{
    route_flight_t *f = ctx;
    route_t *a = f->w->route;
    if (r->status == ORIGIN_OK) {
        f->origin_keep = r->keep && r->version != 0;
        f->origin_stale_ms = r->stale_ms;
        route_found_t found = {.value = r->value, .len = r->len, .ct = r->ct, .ctlen = r->ctlen,
                               .version = r->version, .ttl_ms = r->ttl_ms, .source = ROUTE_SRC_ORIGIN};
        route_flight_answer(f, ROUTE_OUT_FOUND, &found, NULL);
        return;
    }
    if (r->status == ORIGIN_NOT_FOUND || r->status == ORIGIN_UNBOUND) {
        route_flight_answer(f, ROUTE_OUT_MISS, NULL, NULL);
        return;
    }
    /* RFC 5861 stale-if-error: the copy that expired last, if the origin's
     * window still keeps it and no delete came after it. */
    store_entry_t *e;
    if (store_get_stale(a->store, f->key, f->klen, &e) == STORE_OK) {
        if (route_tomb_check(a, f->key, f->klen, store_entry_version(e)) == TOMB_CLEAR) {
            route_found_t found = {.version = store_entry_version(e), .source = ROUTE_SRC_STALE};
            found.value = store_entry_value(e, &found.len);
            found.ct = store_entry_content_type(e, &found.ctlen);
            if (!found.ct) found.ctlen = 0;
            f->origin_keep = false;
            atomic_fetch_add(&a->stats.origin_stale, f->nwaiters);
            route_flight_answer(f, ROUTE_OUT_FOUND, &found, NULL);
            store_entry_release(e);
            return;
        }
        store_entry_release(e);
    }
    snprintf(f->origin_error, sizeof f->origin_error, "%s%s%s", r->origin, r->origin[0] ? ": " : "",
             r->error ? r->error : origin_status_name(r->status));
    route_flight_answer(f, ROUTE_OUT_ORIGIN_FAILED, NULL, NULL);
}

static void route_flight_load_origin(route_flight_t *f)
{
    route_worker_t *w = f->w;
    f->mode = ROUTE_FLIGHT_ORIGIN;
    f->origin_tried = true;
    origin_client_load(w->origin, f->key, f->klen, route_origin_version(w),
                       route_origin_min_version(w->route, f->key, f->klen), route_flight_origin_reply, f);
}

/* An owner found the key nowhere: false when no origin serves it (or it
 * was asked already). The primary loads it; another owner asks the
 * primary first (so that the whole cluster's misses meet in one load
 * there) and loads it itself only if the primary does not answer. A
 * flight a peer forwarded here is never forwarded again. */
static bool route_flight_ask_origin(route_flight_t *f)
{
    route_worker_t *w = f->w;
    if (f->origin_tried || !w->origin || !origin_client_match(w->origin, f->key, f->klen, NULL)) return false;
    f->origin_tried = true;
    if (!f->peer_waiter && f->topo && f->topo->n > 1) {
        uint32_t owners[RING_REPLICAS_MAX];
        size_t n = ring_owners_hash(f->topo->ring, f->hash, owners, RING_REPLICAS_MAX);
        if (n && (int32_t)owners[0] != f->topo->self) {
            f->ntargets = f->next_target = 0;
            route_flight_add_owners(f, f->topo, owners, 1);
            f->ncurrent = f->ntargets;
            if (f->ntargets) {
                f->mode = ROUTE_FLIGHT_FORWARD;
                f->origin_via_primary = true;
                route_flight_try(f);
                return true;
            }
        }
    }
    route_flight_load_origin(f);
    return true;
}

/* A refresh-ahead load: not tied to any request. */
typedef struct route_refresh {
    route_worker_t *w;
    size_t klen;
    char key[];
} route_refresh_t;

static void route_origin_refreshed(void *ctx, const origin_result_t *r)
{
    route_refresh_t *rf = ctx;
    route_t *a = rf->w->route;
    if (r->status == ORIGIN_OK && r->keep && r->version &&
        route_tomb_check(a, rf->key, rf->klen, r->version) == TOMB_CLEAR) {
        store_put_args_t args = {.key = rf->key, .key_len = rf->klen, .value = r->value, .value_len = r->len,
                                 .content_type = r->ct, .content_type_len = r->ctlen, .ttl_ms = r->ttl_ms,
                                 .version = r->version, .stale_ms = r->stale_ms};
        route_observe(a, r->version);
        if (store_put_if_newer(a->store, &args, NULL) == STORE_OK) {
            atomic_fetch_add(&a->stats.origin_refreshed, 1);
            route_found_t v = {.value = r->value, .len = r->len, .ct = r->ct, .ctlen = r->ctlen,
                               .version = r->version, .ttl_ms = r->ttl_ms, .source = ROUTE_SRC_ORIGIN};
            route_origin_spread(rf->w, rf->key, rf->klen, &v);
        }
    }
    free(rf);
}

/* A uniform draw in (0, 1], per loop thread. */
static double route_uniform(void)
{
    static _Thread_local uint64_t state;
    if (!state) state = uv_hrtime() | 1;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return ((double)(state >> 11) + 1.0) / 9007199254740992.0;
}

/* XFetch (Vattani, Chierichetti, Lowenstein: "Optimal probabilistic cache
 * stampede prevention", VLDB 2015): a read at time t reloads the key early
 * when t - delta * beta * ln(U) >= expiry, delta being how long a load
 * takes. The chance grows as the expiry nears, and one early reload is
 * expected before it, so a hot key is refreshed in the background once
 * rather than missed by a herd. Only the primary refreshes: the other
 * owners get its copy. */
static void route_origin_maybe_refresh(route_worker_t *w, const route_gkey_t *k, const store_entry_t *e)
{
    route_t *a = w->route;
    int64_t expires = store_entry_expires_at(e);
    if (!w->origin || a->refresh_beta <= 0 || !expires) return;
    const origin_def_t *d = origin_client_match(w->origin, k->key, k->klen, NULL);
    if (!d) return;
    double delta = origin_client_load_ms(w->origin, d);
    if (delta <= 0) return;
    double now = (double)store_now_ms(a->store);
    if (now - delta * a->refresh_beta * log(route_uniform()) < (double)expires) return;
    if (k->n && (int32_t)k->owners[0] != route_topo(w)->self) return;
    uint64_t version = route_origin_version(w);
    route_refresh_t *rf = version ? malloc(sizeof *rf + k->klen) : NULL;
    if (!rf) return;
    rf->w = w;
    rf->klen = k->klen;
    memcpy(rf->key, k->key, k->klen);
    atomic_fetch_add(&a->stats.origin_refreshes, 1);
    origin_client_load(w->origin, rf->key, rf->klen, version, route_origin_min_version(a, rf->key, rf->klen),
                       route_origin_refreshed, rf);
}

/* Joins the flight for this key, or starts one asking the owners of the
 * key in t, then (FALLBACK) those in prev. */
static void route_flight_join(route_worker_t *w, route_flight_mode_t mode, const route_waiter_t *wt, const route_gkey_t *k,
                              topo_t *t, topo_t *prev, const char *owner)
{
    route_t *a = w->route;
    const char *key = k->key;
    size_t klen = k->klen;
    uint64_t hash = k->hash;
    route_flight_t **slot = route_flight_slot(w, hash, key, klen);
    route_flight_t *f = *slot;
    /* A GET a peer forwarded here must not wait on a forward of our own:
     * two nodes that disagree about the ring would wait on each other. */
    if (f && wt->from_peer && f->mode == ROUTE_FLIGHT_FORWARD) f = NULL;
    /* One that started before a delete or an invalidation landed here may
     * bring back what it removed: a GET that starts after must not share
     * its answer. It finishes for those already waiting, off the table. */
    uint64_t deletes = atomic_load_explicit(&a->deletes, memory_order_acquire);
    if (f && f->deletes != deletes) {
        *slot = f->next;
        f->in_table = false;
        w->nflights--;
        atomic_fetch_sub(&a->stats.flights, 1);
        f = NULL;
        slot = route_flight_slot(w, hash, key, klen);
    }
    if (f) {
        if (f->nwaiters == f->cap) {
            size_t cap = f->cap * 2;
            route_waiter_t *nw = realloc(f->waiters, cap * sizeof *nw);
            if (!nw) goto no_memory;
            f->waiters = nw;
            f->cap = cap;
        }
        f->waiters[f->nwaiters++] = *wt;
        f->peer_waiter |= wt->from_peer;
        atomic_fetch_add(&a->stats.coalesced, 1);
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
    f->deletes = deletes;
    f->hash = hash;
    memcpy(f->key, key, klen);
    f->klen = klen;
    f->cap = 4;
    f->waiters[f->nwaiters++] = *wt;
    f->peer_waiter = wt->from_peer;
    f->topo = topo_ref(t);
    f->prev = topo_ref(prev);
    if (t && mode != ROUTE_FLIGHT_L2 && mode != ROUTE_FLIGHT_ORIGIN) route_flight_add_owners(f, t, k->owners, k->n);
    f->ncurrent = f->ntargets;
    if (prev) {
        uint32_t prev_owners[RING_REPLICAS_MAX];
        size_t pn = ring_owners_hash(prev->ring, hash, prev_owners, RING_REPLICAS_MAX);
        route_flight_add_owners(f, prev, prev_owners, pn);
    }
    snprintf(f->owner, sizeof f->owner, "%s", owner);
    if (w->nflights < ROUTE_FLIGHT_MAX && !*slot) {
        f->next = *slot;
        *slot = f;
        f->in_table = true;
        w->nflights++;
        atomic_fetch_add(&a->stats.flights, 1);
    }
    if (mode == ROUTE_FLIGHT_FALLBACK) atomic_fetch_add(&a->stats.fallbacks, 1);
    if (mode == ROUTE_FLIGHT_L2) route_flight_ask_l2(f);
    else if (mode == ROUTE_FLIGHT_ORIGIN) {
        if (!route_flight_ask_origin(f)) route_flight_answer(f, ROUTE_OUT_MISS, NULL, NULL);
    } else route_flight_try(f);
    return;
no_memory:
    route_waiter_fail(wt, ROUTE_ERR_NO_MEMORY, "out of memory");
}

static void route_entry_unref(void *e)
{
    store_entry_release(e);
}

/* A GET at an owner of the key: L1, then, right after a ring change, the
 * key's other owners and its previous owners (a joiner has nothing yet; a
 * node that became owner when another died has not received the key yet),
 * then L2. While this node syncs, the other owners are asked even when L1
 * has the key: what it holds may have been overwritten or deleted. */
static void route_owner_get(route_worker_t *w, topo_t *t, const route_waiter_t *wt, const route_gkey_t *k,
                            const char *owner)
{
    route_t *a = w->route;
    store_entry_t *e;
    if (route_draining(a)) {
        wt->reply.ops->fail(wt->reply.ctx, ROUTE_ERR_DRAINING, "this node is leaving the cluster");
        return;
    }
    /* Cut off from most of the cluster: what it holds may have been
     * overwritten or deleted on the other side, and what it misses may
     * have been written there. Neither is worth a 200 or a 404. */
    if (route_minority(a)) {
        if (w->l2) route_flight_join(w, ROUTE_FLIGHT_L2, wt, k, t, NULL, owner);
        else wt->reply.ops->fail(wt->reply.ctx, ROUTE_ERR_MINORITY, "this node sees less than half of the cluster");
        return;
    }
    bool verify = route_must_verify(a, uv_now(w->loop));
    topo_t *prev = topo_cache_prev(&w->topo);
    if (verify && t && t->n > 1) {
        route_flight_join(w, ROUTE_FLIGHT_VERIFY, wt, k, t, prev, owner);
        return;
    }
    /* Syncing before it joined anyone: the others may already hand it keys
     * and copy it writes, but it cannot tell which of them are current. */
    if (route_syncing_alone(w)) {
        if (w->l2) route_flight_join(w, ROUTE_FLIGHT_L2, wt, k, t, NULL, owner);
        else wt->reply.ops->fail(wt->reply.ctx, ROUTE_ERR_SYNCING, "this node is syncing and has not joined the cluster yet");
        return;
    }
    if (store_get(a->store, k->key, k->klen, &e) == STORE_OK) {
        if (w->origin) route_origin_maybe_refresh(w, k, e);
        route_value_t v = {.version = store_entry_version(e), .ttl_ms = route_entry_ttl_ms(a, e),
                         .node = route_self_name(a), .owner = owner};
        v.value = store_entry_value(e, &v.len);
        v.ct = store_entry_content_type(e, &v.ctlen);
        wt->reply.ops->value(wt->reply.ctx, &v, route_entry_unref, e);
        return;
    }
    if (prev && t && t->n > 1) {
        route_flight_join(w, ROUTE_FLIGHT_FALLBACK, wt, k, t, prev, owner);
        return;
    }
    if (w->l2) {
        route_flight_join(w, ROUTE_FLIGHT_L2, wt, k, t, NULL, owner);
        return;
    }
    if (w->origin && origin_client_match(w->origin, k->key, k->klen, NULL)) {
        route_flight_join(w, ROUTE_FLIGHT_ORIGIN, wt, k, t, NULL, owner);
        return;
    }
    route_waiter_miss(a, wt, NULL, owner);
}

static void route_gkey_init(route_gkey_t *k, const topo_t *t, const char *key, size_t klen)
{
    k->key = key;
    k->klen = klen;
    k->hash = ring_key_hash(key, klen);
    k->n = t ? ring_owners_hash(t->ring, k->hash, k->owners, RING_REPLICAS_MAX) : 0;
}

void route_read_get(route_worker_t *w, route_reply_t reply, const char *key, size_t klen)
{
    route_t *a = w->route;
    topo_t *t = route_topo(w);
    route_gkey_t k;
    route_gkey_init(&k, t, key, klen);
    const char *owner = route_owner_name(a, t, k.owners, k.n);
    route_waiter_t wt = {.reply = reply};
    if (!t || topo_is_owner(t, k.owners, k.n)) route_owner_get(w, t, &wt, &k, owner);
    else route_flight_join(w, ROUTE_FLIGHT_FORWARD, &wt, &k, t, NULL, owner);
}

void route_read_serve(route_worker_t *w, route_reply_t reply, const char *key, size_t klen)
{
    route_t *a = w->route;
    topo_t *t = route_topo(w);
    route_gkey_t k;
    route_gkey_init(&k, t, key, klen);
    route_waiter_t wt = {.reply = reply, .from_peer = true};
    route_owner_get(w, t, &wt, &k, route_owner_name(a, t, k.owners, k.n));
}
