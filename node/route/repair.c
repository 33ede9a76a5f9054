/* repair: anti-entropy between owners (see repair.h). */
#include "node/route/repair.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/digest.h"
#include "node/core/closer.h"
#include "node/core/log.h"

#define REPAIR_TICK_MS 1
#define REPAIR_RETRY_MS 250
#define REPAIR_OFFER_ITEMS 1024u
#define REPAIR_BATCH_BYTES ((size_t)1 << 20)

typedef enum {
    REPAIR_IDLE = 0,
    REPAIR_DIGESTING,   /* scanning into the digest tables */
    REPAIR_EXCHANGING,  /* digests out, waiting for the differing buckets */
    REPAIR_OFFERING,    /* scanning the differing buckets into offers */
} repair_phase_t;

/* One item copied out of the store during a scan step. */
typedef struct repair_item {
    uint64_t hash, version;
    size_t koff, klen;
    bool tomb;
    uint64_t deleted;      /* a scanned entry older than this node's own tombstone (its version) */
} repair_item_t;

/* A batch of offers to one member; its keys live in `keys`. */
typedef struct repair_batch {
    repair_t *r;
    uint64_t round;
    uint32_t member;
    unsigned n;
    repair_item_t items[REPAIR_OFFER_ITEMS];
    char *keys;
    size_t klen, kcap;
} repair_batch_t;

struct repair {
    uv_loop_t *loop;
    route_t *rt;
    repair_config_t cfg;
    peer_pool_t *pool;
    uv_timer_t timer, tick;
    closer_t closer;
    bool closing;
    char self[SWIM_NAME_MAX];
    uint8_t run[SWIM_ID_LEN];
    /* The round. */
    repair_phase_t phase;
    uint64_t round;                /* bumped per round: late answers are ignored */
    topo_t *topo;
    uint64_t boundary, cut, started_ms, exchange_deadline;
    uint64_t cursor;
    bool tombs_done;
    uint64_t **tables;             /* [topo->n]: this round's digest tables, owned while DIGESTING,
                                    * then published: the book owns them, the round reads them */
    bool published;
    unsigned level;                /* this round's tables have 2^level digests */
    uint8_t (*bits)[DIGEST_BITMAP_BYTES_MAX]; /* [topo->n]: buckets that differ with each member */
    unsigned *bits_level;          /* [topo->n]: ... at this level (the smaller of the two tables') */
    uint8_t any[DIGEST_BITMAP_BYTES_MAX]; /* their union, at DIGEST_LEVEL_MAX */
    uint8_t *state;                /* [topo->n]: REPAIR_M_* */
    unsigned pending;              /* digests in flight */
    unsigned inflight;             /* offer and entry batches in flight */
    repair_batch_t **batches;      /* [topo->n]: the batch being filled */
    /* A scan step's items (keys in scratch). */
    repair_item_t *step;
    size_t nstep, step_cap;
    char *scratch;
    size_t slen, scap;
    bool scratch_failed;
    tomb_item_t *tombs;            /* the tombstones, copied out once per scan, sorted by hash */
    size_t ntombs, tombs_cap;
};

enum { REPAIR_M_SKIP = 0, REPAIR_M_ASK, REPAIR_M_RETRY, REPAIR_M_DONE };

static void repair_tick_cb(uv_timer_t *t);
static void repair_schedule(repair_t *r);

repair_t *repair_new(uv_loop_t *loop, route_t *rt, const peer_pool_config_t *pool_cfg, const repair_config_t *cfg)
{
    repair_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->loop = loop;
    r->rt = rt;
    r->cfg = *cfg;
    if (!r->cfg.settle_ms) r->cfg.settle_ms = 2000;
    if (!r->cfg.scan_step) r->cfg.scan_step = 1024;
    if (!r->cfg.max_inflight) r->cfg.max_inflight = 4;
    r->pool = peer_pool_new(loop, pool_cfg);
    if (!r->pool) {
        free(r);
        return NULL;
    }
    uv_timer_init(loop, &r->timer);
    uv_timer_init(loop, &r->tick);
    r->timer.data = r->tick.data = r;
    closer_add(&r->closer, 3);
    return r;
}

/* ---- the round's state ------------------------------------------------- */

static void repair_batch_free(repair_batch_t *b)
{
    if (!b) return;
    free(b->keys);
    free(b);
}

static void repair_reset(repair_t *r)
{
    if (r->topo) {
        for (size_t i = 0; r->tables && !r->published && i < r->topo->n; i++) free(r->tables[i]);
        for (size_t i = 0; r->batches && i < r->topo->n; i++) repair_batch_free(r->batches[i]);
    }
    if (!r->published) free(r->tables);
    r->published = false;
    free(r->batches);
    free(r->bits);
    free(r->bits_level);
    free(r->state);
    r->tables = NULL;
    r->batches = NULL;
    r->bits = NULL;
    r->bits_level = NULL;
    r->state = NULL;
    topo_unref(r->topo);
    r->topo = NULL;
    r->phase = REPAIR_IDLE;
    r->round++;
    r->pending = 0;
    uv_timer_stop(&r->tick);
    atomic_store(&r->rt->repair.running, 0);
}

static void repair_finish(repair_t *r)
{
    uint64_t took = uv_now(r->loop) - r->started_ms;
    atomic_fetch_add(&r->rt->repair.rounds, 1);
    atomic_store(&r->rt->repair.last_duration_ms, took);
    repair_reset(r);
    repair_schedule(r);
}

/* Why a round must not run now (NULL: it may). */
static const char *repair_hold(repair_t *r, const topo_t *t)
{
    route_t *rt = r->rt;
    if (!r->self[0] || !t || t->self < 0 || t->n < 2) return "alone";
    /* After a stall or a rejoin (reads still checked) a round is what
     * this node needs: the others' tombstones from its absence are alive
     * for that long, and tell it what to drop. */
    if (atomic_load(&rt->sync.syncing) || route_stalled(rt, uv_now(r->loop))) return "syncing";
    if (route_minority(rt)) return "minority";
    if (route_draining(rt)) return "draining";
    if (atomic_load(&rt->handoff.running)) return "handoff";
    return NULL;
}

/* ---- scanning ---------------------------------------------------------- */

/* The version of this node's tombstone for a hash (0: none), from the
 * round's sorted copy: no lock per entry scanned. */
static uint64_t repair_tomb_of(const repair_t *r, uint64_t hash)
{
    size_t lo = 0, hi = r->ntombs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->tombs[mid].hash < hash) lo = mid + 1;
        else hi = mid;
    }
    return lo < r->ntombs && r->tombs[lo].hash == hash ? r->tombs[lo].version : 0;
}

/* Copies an entry's hash, version and (when offering, in a differing
 * bucket) key out of the store; runs under the shard's lock. */
static void repair_scan_one(const store_entry_t *e, void *ctx)
{
    repair_t *r = ctx;
    size_t klen;
    const char *key = store_entry_key(e, &klen);
    uint64_t h = tomb_key_hash(key, klen), version = store_entry_version(e);
    uint64_t deleted = repair_tomb_of(r, h);
    if (deleted <= version) deleted = 0;
    bool offering = r->phase == REPAIR_OFFERING;
    if (offering && !deleted && !digest_bit(r->any, DIGEST_LEVEL_MAX, h)) return;
    bool copy = offering || deleted;
    if (r->nstep == r->step_cap) {
        size_t cap = r->step_cap ? r->step_cap * 2 : 4096;
        repair_item_t *s = realloc(r->step, cap * sizeof *s);
        if (!s) {
            r->scratch_failed = true;
            return;
        }
        r->step = s;
        r->step_cap = cap;
    }
    repair_item_t *it = &r->step[r->nstep];
    *it = (repair_item_t){.hash = h, .version = version, .koff = r->slen, .klen = copy ? klen : 0, .deleted = deleted};
    if (copy) {
        if (r->slen + klen > r->scap) {
            size_t cap = r->scap ? r->scap : 65536;
            while (cap < r->slen + klen) cap *= 2;
            char *s = realloc(r->scratch, cap);
            if (!s) {
                r->scratch_failed = true;
                return;
            }
            r->scratch = s;
            r->scap = cap;
        }
        memcpy(r->scratch + r->slen, key, klen);
        r->slen += klen;
    }
    r->nstep++;
}

static bool repair_copy_tombs(repair_t *r)
{
    r->ntombs = 0;
    if (!r->rt->tomb) return true;
    long n = tomb_copy(r->rt->tomb, store_now_ms(r->rt->store), &r->tombs, &r->tombs_cap);
    if (n < 0) return false;
    r->ntombs = (size_t)n;
    return true;
}

/* An entry older than this node's own tombstone: a delete learnt by hash
 * (handoff or repair of tombstones) that could not find it then. */
static bool repair_sweep(repair_t *r, const repair_item_t *it)
{
    if (!it->deleted) return false;
    if (store_delete_versioned(r->rt->store, r->scratch + it->koff, it->klen, STORE_DELETE_IF_OLDER, it->deleted))
        atomic_fetch_add(&r->rt->repair.entries_deleted, 1);
    return true;
}

static void repair_fold(repair_t *r, uint64_t hash, uint64_t version, bool tomb)
{
    if (hlc_physical_ms(version) > (int64_t)r->cut) return;
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = ring_owners_hash(r->topo->ring, hash, owners, RING_REPLICAS_MAX);
    if (!topo_is_owner(r->topo, owners, n)) return;
    uint64_t mix = digest_item(hash, version, tomb);
    uint32_t bucket = digest_bucket(hash, r->level);
    for (size_t i = 0; i < n; i++) {
        uint32_t o = owners[i];
        if ((int32_t)o == r->topo->self) continue;
        if (!r->tables[o]) {
            r->tables[o] = calloc(digest_buckets(r->level), sizeof **r->tables);
            if (!r->tables[o]) continue; /* compares unequal: costs an offer, never a wrong answer */
        }
        r->tables[o][bucket] ^= mix;
    }
}

/* ---- offers ------------------------------------------------------------ */

static void repair_send_batch(repair_t *r, uint32_t member);

/* A delete learnt from another owner (an answer or an offer): remembered
 * as a tombstone that expires from its version's time, and this node's
 * older copy goes when its key is known (by hash alone it goes at the next
 * checked read or repair scan). */
static void repair_learn_delete(route_t *rt, const void *key, size_t klen, uint64_t hash, uint64_t version)
{
    int64_t now = store_now_ms(rt->store);
    uint64_t h = klen ? tomb_key_hash(key, klen) : hash;
    atomic_fetch_add_explicit(&rt->deletes, 1, memory_order_release);
    if (rt->tomb && tomb_version_hash(rt->tomb, h, now) < version) {
        atomic_fetch_add(&rt->repair.tombstones_learnt, 1);
        tomb_add_hash(rt->tomb, h, version, tomb_expiry_of(rt->tomb, version), now);
    }
    if (klen && store_delete_versioned(rt->store, key, klen, STORE_DELETE_IF_OLDER, version))
        atomic_fetch_add(&rt->repair.entries_deleted, 1);
}

typedef struct repair_push {
    repair_t *r;
} repair_push_t;

static void repair_push_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    repair_push_t *p = ctx;
    repair_t *r = p->r;
    (void)res;
    (void)resp;
    free(p);
    r->inflight--;
    if (r->phase == REPAIR_OFFERING) repair_tick_cb(&r->tick);
}

/* Sends the entries a member asked for, as they are here now (a newer
 * write since the offer is only better), in HANDOFF batches. */
static void repair_push(repair_t *r, uint32_t member, const repair_batch_t *b, const uint32_t *want, size_t nwant)
{
    const topo_member_t *m = &r->topo->members[member];
    peer_entry_t *entries = calloc(nwant, sizeof *entries);
    store_entry_t **held = calloc(nwant, sizeof *held);
    size_t i = 0;
    while (entries && held && i < nwant) {
        size_t n = 0, bytes = 0;
        for (; i < nwant && (n == 0 || bytes < REPAIR_BATCH_BYTES); i++) {
            const repair_item_t *it = &b->items[want[i]];
            store_entry_t *e;
            if (store_peek(r->rt->store, b->keys + it->koff, it->klen, &e) != STORE_OK) continue;
            peer_entry_t *pe = &entries[n];
            size_t len;
            pe->key.p = (const uint8_t *)store_entry_key(e, &len);
            pe->key.len = len;
            pe->value.p = (const uint8_t *)store_entry_value(e, &len);
            pe->value.len = len;
            const char *ct = store_entry_content_type(e, &len);
            pe->content_type = (peer_bytes_t){(const uint8_t *)ct, ct ? len : 0};
            pe->version = store_entry_version(e);
            pe->expires_at_ms = (uint64_t)store_entry_expires_at(e);
            bytes += pe->key.len + pe->value.len;
            held[n++] = e;
        }
        if (n) {
            peer_msg_t req = {.type = PEER_MSG_HANDOFF, .flags = PEER_F_FORWARDED, .count = (uint32_t)n,
                              .entries = entries};
            size_t size = peer_msg_size(&req);
            repair_push_t *p = malloc(sizeof *p);
            if (p) {
                p->r = r;
                if (peer_pool_request(r->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0,
                                      repair_push_reply, p) == PEER_OK) {
                    r->inflight++;
                    atomic_fetch_add(&r->rt->repair.entries_sent, n);
                    atomic_fetch_add(&r->rt->repair.bytes_sent, size);
                } else {
                    free(p);
                }
            }
        }
        for (size_t k = 0; k < n; k++) store_entry_release(held[k]);
    }
    free(entries);
    free(held);
}

static void repair_offer_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    repair_batch_t *b = ctx;
    repair_t *r = b->r;
    r->inflight--;
    if (res == PEER_OK && resp->type == PEER_MSG_REPAIR_OFFER_RESP && b->round == r->round && r->topo) {
        uint32_t *want = malloc(b->n * sizeof *want);
        size_t nwant = 0;
        peer_iter_t it;
        peer_iter_init(&it, resp);
        peer_answer_t a;
        while (peer_iter_answer(&it, &a)) {
            if (a.index >= b->n) continue;
            const repair_item_t *item = &b->items[a.index];
            if (item->tomb) continue;
            if (a.version && route_plausible(r->rt, a.version))
                repair_learn_delete(r->rt, b->keys + item->koff, item->klen, item->hash, a.version);
            else if (want && nwant < b->n) want[nwant++] = a.index;
        }
        if (nwant) repair_push(r, b->member, b, want, nwant);
        free(want);
    }
    repair_batch_free(b);
    if (r->phase == REPAIR_OFFERING) repair_tick_cb(&r->tick);
}

static void repair_send_batch(repair_t *r, uint32_t member)
{
    repair_batch_t *b = r->batches[member];
    r->batches[member] = NULL;
    if (!b || b->n == 0) {
        repair_batch_free(b);
        return;
    }
    peer_offer_t *offers = calloc(b->n, sizeof *offers);
    const topo_member_t *m = &r->topo->members[member];
    peer_result_t res = PEER_ERR_INVALID;
    size_t size = 0;
    if (offers) {
        for (unsigned i = 0; i < b->n; i++) {
            const repair_item_t *it = &b->items[i];
            offers[i] = (peer_offer_t){.hash = it->hash, .version = it->version, .tomb = it->tomb,
                                       .key = {(const uint8_t *)b->keys + it->koff, it->klen}};
        }
        peer_msg_t req = {.type = PEER_MSG_REPAIR_OFFER, .flags = PEER_F_FORWARDED, .count = b->n,
                          .offers = offers};
        size = peer_msg_size(&req);
        res = peer_pool_request(r->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, repair_offer_reply, b);
        free(offers);
    }
    if (res != PEER_OK) {
        repair_batch_free(b);
        return;
    }
    r->inflight++;
    atomic_fetch_add(&r->rt->repair.items_offered, b->n);
    atomic_fetch_add(&r->rt->repair.bytes_sent, size);
}

static void repair_offer_item(repair_t *r, uint32_t member, const repair_item_t *it, const char *key)
{
    repair_batch_t *b = r->batches[member];
    if (b && (b->n == REPAIR_OFFER_ITEMS || b->klen + it->klen > REPAIR_BATCH_BYTES)) {
        repair_send_batch(r, member);
        b = NULL;
    }
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b) return;
        b->r = r;
        b->round = r->round;
        b->member = member;
        r->batches[member] = b;
    }
    if (b->klen + it->klen > b->kcap) {
        size_t cap = b->kcap ? b->kcap : 16384;
        while (cap < b->klen + it->klen) cap *= 2;
        char *k = realloc(b->keys, cap);
        if (!k) return;
        b->keys = k;
        b->kcap = cap;
    }
    repair_item_t *dst = &b->items[b->n++];
    *dst = *it;
    dst->koff = b->klen;
    if (it->klen) memcpy(b->keys + b->klen, key, it->klen);
    b->klen += it->klen;
}

/* Offers one item to every other owner whose digests differed in its bucket. */
static void repair_route_offer(repair_t *r, const repair_item_t *it, const char *key)
{
    uint32_t owners[RING_REPLICAS_MAX];
    size_t n = ring_owners_hash(r->topo->ring, it->hash, owners, RING_REPLICAS_MAX);
    if (!topo_is_owner(r->topo, owners, n)) return;
    for (size_t i = 0; i < n; i++) {
        uint32_t o = owners[i];
        if ((int32_t)o == r->topo->self || r->state[o] != REPAIR_M_DONE ||
            !digest_bit(r->bits[o], r->bits_level[o], it->hash))
            continue;
        repair_offer_item(r, o, it, key);
    }
}

/* ---- the exchange ------------------------------------------------------ */

typedef struct repair_ask {
    repair_t *r;
    uint64_t round;
    uint32_t member;
} repair_ask_t;

static void repair_start_offers(repair_t *r);

static void repair_exchange_step(repair_t *r);

static void repair_digest_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    repair_ask_t *a = ctx;
    repair_t *r = a->r;
    bool current = a->round == r->round && r->phase == REPAIR_EXCHANGING;
    uint32_t o = a->member;
    free(a);
    if (!current) return;
    r->pending--;
    unsigned level = res == PEER_OK && resp->type == PEER_MSG_REPAIR_DIGEST_RESP ? digest_bitmap_level(resp->blob.len)
                                                                                 : 0;
    if (level && level <= r->level && resp->status == PEER_STATUS_OK) {
        memcpy(r->bits[o], resp->blob.p, resp->blob.len);
        r->bits_level[o] = level;
        r->state[o] = REPAIR_M_DONE;
        size_t differ = digest_bits_count(r->bits[o], level);
        atomic_fetch_add(&r->rt->repair.buckets_compared, digest_buckets(level));
        atomic_fetch_add(&r->rt->repair.buckets_differing, differ);
        digest_bits_widen(r->bits[o], level, r->any, DIGEST_LEVEL_MAX);
    } else if (res == PEER_OK && resp->type == PEER_MSG_REPAIR_DIGEST_RESP &&
               resp->status == PEER_STATUS_UNAVAILABLE) {
        r->state[o] = REPAIR_M_RETRY; /* not at this round yet */
    } else {
        r->state[o] = REPAIR_M_SKIP;
        atomic_fetch_add(&r->rt->repair.digests_unanswered, 1);
    }
    if (r->pending == 0) repair_exchange_step(r);
}

static void repair_ask(repair_t *r, uint32_t o)
{
    const topo_member_t *m = &r->topo->members[o];
    static const uint64_t zero[DIGEST_BUCKETS_MAX];
    uint8_t *blob = malloc(digest_table_bytes(r->level));
    if (!blob) {
        r->state[o] = REPAIR_M_SKIP;
        return;
    }
    digest_table_encode(r->tables[o] ? r->tables[o] : zero, r->level, blob);
    peer_msg_t req = {.type = PEER_MSG_REPAIR_DIGEST, .flags = PEER_F_FORWARDED, .ring = r->topo->fingerprint,
                      .cut = r->cut, .blob = {blob, digest_table_bytes(r->level)}};
    req.name = (peer_bytes_t){(const uint8_t *)r->self, strlen(r->self)};
    memcpy(req.run, r->run, sizeof req.run);
    repair_ask_t *a = malloc(sizeof *a);
    if (!a) {
        free(blob);
        r->state[o] = REPAIR_M_SKIP;
        return;
    }
    *a = (repair_ask_t){.r = r, .round = r->round, .member = o};
    size_t size = peer_msg_size(&req);
    peer_result_t res = peer_pool_request(r->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0,
                                          repair_digest_reply, a);
    free(blob);
    if (res != PEER_OK) {
        free(a);
        r->state[o] = REPAIR_M_SKIP;
        atomic_fetch_add(&r->rt->repair.digests_unanswered, 1);
        return;
    }
    r->state[o] = REPAIR_M_ASK;
    r->pending++;
    atomic_fetch_add(&r->rt->repair.digests_sent, 1);
    atomic_fetch_add(&r->rt->repair.bytes_sent, size);
}

/* Asks the members that were not ready again, later, until the deadline;
 * then offers what differs. */
static void repair_exchange_step(repair_t *r)
{
    if (r->pending) return;
    bool retry = false;
    for (size_t i = 0; i < r->topo->n; i++) retry |= r->state[i] == REPAIR_M_RETRY;
    if (retry && uv_now(r->loop) < r->exchange_deadline) {
        uv_timer_start(&r->tick, repair_tick_cb, REPAIR_RETRY_MS, 0);
        return;
    }
    for (size_t i = 0; i < r->topo->n; i++)
        if (r->state[i] == REPAIR_M_RETRY) {
            r->state[i] = REPAIR_M_SKIP;
            atomic_fetch_add(&r->rt->repair.digests_unanswered, 1);
        }
    if (digest_bits_count(r->any, DIGEST_LEVEL_MAX) == 0) {
        repair_finish(r);
        return;
    }
    repair_start_offers(r);
}

static void repair_start_exchange(repair_t *r)
{
    /* The book takes the tables; this round keeps reading them. */
    uint64_t **mine = malloc(r->topo->n * sizeof *mine);
    if (!mine) {
        repair_finish(r);
        return;
    }
    memcpy(mine, r->tables, r->topo->n * sizeof *mine);
    free(r->tables);
    repair_book_publish(&r->rt->repair_book, r->topo->fingerprint, r->cut, r->level, mine, r->topo->n);
    r->tables = mine;
    r->published = true;
    r->phase = REPAIR_EXCHANGING;
    /* Members not at this round yet are asked again until three quarters
     * into the interval: a round that waited longer would start the next
     * one a boundary late, and two members a boundary apart would never
     * meet again. */
    uint64_t wall = (uint64_t)store_now_ms(r->rt->store), until = r->boundary + r->cfg.interval_ms / 4 * 3;
    r->exchange_deadline = uv_now(r->loop) + (until > wall ? until - wall : 0);
    memset(r->any, 0, sizeof r->any);
    for (size_t i = 0; i < r->topo->n; i++) {
        const topo_member_t *m = &r->topo->members[i];
        /* Holding nothing of what we share, this node has nothing to offer
         * that member: what it holds for us comes in its own round. */
        bool ask = (int32_t)i != r->topo->self && m->peer.ss_family != 0 && !m->suspect && r->tables[i];
        r->state[i] = ask ? REPAIR_M_RETRY : REPAIR_M_SKIP;
    }
    repair_tick_cb(&r->tick);
}

static void repair_start_offers(repair_t *r)
{
    r->phase = REPAIR_OFFERING;
    r->cursor = 0;
    r->tombs_done = false;
    r->batches = calloc(r->topo->n, sizeof *r->batches);
    if (!r->batches || !repair_copy_tombs(r)) {
        repair_finish(r);
        return;
    }
    uv_timer_start(&r->tick, repair_tick_cb, 0, REPAIR_TICK_MS);
}

/* ---- the driver -------------------------------------------------------- */

/* One step of the current phase. */
static void repair_tick_cb(uv_timer_t *t)
{
    repair_t *r = t->data;
    if (r->closing) return;
    switch (r->phase) {
    case REPAIR_IDLE:
        return;
    case REPAIR_DIGESTING:
        r->nstep = r->slen = 0;
        r->scratch_failed = false;
        r->cursor = store_scan(r->rt->store, r->cursor, NULL, 0, r->cfg.scan_step, repair_scan_one, r);
        for (size_t i = 0; i < r->nstep; i++)
            if (!repair_sweep(r, &r->step[i])) repair_fold(r, r->step[i].hash, r->step[i].version, false);
        if (r->cursor != 0) return;
        for (size_t i = 0; i < r->ntombs; i++) repair_fold(r, r->tombs[i].hash, r->tombs[i].version, true);
        uv_timer_stop(&r->tick);
        repair_start_exchange(r);
        return;
    case REPAIR_EXCHANGING:
        for (size_t i = 0; i < r->topo->n; i++)
            if (r->state[i] == REPAIR_M_RETRY) repair_ask(r, (uint32_t)i);
        if (r->pending == 0) repair_exchange_step(r);
        return;
    case REPAIR_OFFERING:
        if (r->inflight >= r->cfg.max_inflight) return;
        if (!r->tombs_done) {
            for (size_t i = 0; i < r->ntombs; i++) {
                repair_item_t it = {.hash = r->tombs[i].hash, .version = r->tombs[i].version, .tomb = true};
                if (digest_bit(r->any, DIGEST_LEVEL_MAX, it.hash)) repair_route_offer(r, &it, NULL);
            }
            r->tombs_done = true;
            return;
        }
        if (r->cursor != UINT64_MAX) {
            r->nstep = r->slen = 0;
            r->scratch_failed = false;
            r->cursor = store_scan(r->rt->store, r->cursor, NULL, 0, r->cfg.scan_step, repair_scan_one, r);
            for (size_t i = 0; i < r->nstep; i++)
                if (!repair_sweep(r, &r->step[i])) repair_route_offer(r, &r->step[i], r->scratch + r->step[i].koff);
            if (r->cursor == 0) {
                r->cursor = UINT64_MAX; /* scanned: send what is left */
                for (size_t i = 0; i < r->topo->n; i++)
                    if (r->batches[i]) repair_send_batch(r, (uint32_t)i);
            }
            return;
        }
        if (r->inflight == 0) repair_finish(r);
        return;
    }
}

static void repair_begin(repair_t *r)
{
    if (r->closing || r->phase != REPAIR_IDLE) return;
    topo_t *t = topo_slot_get(&r->rt->topo);
    const char *why = repair_hold(r, t);
    if (why) {
        topo_unref(t);
        atomic_fetch_add(&r->rt->repair.rounds_skipped, 1);
        repair_schedule(r);
        return;
    }
    r->topo = t;
    r->tables = calloc(t->n, sizeof *r->tables);
    r->bits = calloc(t->n, sizeof *r->bits);
    r->bits_level = calloc(t->n, sizeof *r->bits_level);
    r->state = calloc(t->n, sizeof *r->state);
    if (!r->tables || !r->bits || !r->bits_level || !r->state) {
        log_error("out of memory starting a repair round", NULL);
        repair_reset(r);
        repair_schedule(r);
        return;
    }
    int64_t wall = store_now_ms(r->rt->store);
    uint64_t interval = r->cfg.interval_ms ? r->cfg.interval_ms : 1;
    /* The boundary this round belongs to: the same number on every node
     * that starts it within the interval. */
    uint64_t boundary = (uint64_t)wall / interval * interval;
    r->boundary = boundary;
    r->cut = boundary > r->cfg.settle_ms ? boundary - r->cfg.settle_ms : 1;
    /* About what this node shares with one other owner: its keys spread
     * over the others' replica slots. */
    size_t others = t->n > 1 ? t->n - 1 : 1, replicas = ring_replicas(t->ring);
    uint64_t shared = (uint64_t)store_entry_count(r->rt->store) * (replicas > 1 ? replicas - 1 : 1) / others;
    r->level = digest_level_for(shared);
    r->phase = REPAIR_DIGESTING;
    r->cursor = 0;
    r->started_ms = uv_now(r->loop);
    if (!repair_copy_tombs(r)) {
        log_error("out of memory starting a repair round", NULL);
        repair_reset(r);
        repair_schedule(r);
        return;
    }
    atomic_store(&r->rt->repair.running, 1);
    uv_timer_start(&r->tick, repair_tick_cb, 0, REPAIR_TICK_MS);
}

static void repair_timer_cb(uv_timer_t *t)
{
    repair_begin(t->data);
}

/* The next round at the next multiple of the interval on the wall clock
 * (plus a little: every node's clock reads the boundary a little apart). */
static void repair_schedule(repair_t *r)
{
    if (r->closing || !r->cfg.interval_ms || !r->self[0]) return;
    uint64_t wall = (uint64_t)store_now_ms(r->rt->store), i = r->cfg.interval_ms;
    uint64_t next = (wall / i + 1) * i;
    uv_timer_start(&r->timer, repair_timer_cb, next - wall + 50, 0);
}

void repair_set_self(repair_t *r, const char *name, const uint8_t *run)
{
    snprintf(r->self, sizeof r->self, "%s", name);
    memcpy(r->run, run, sizeof r->run);
    if (r->phase == REPAIR_IDLE) repair_schedule(r);
}

void repair_run_now(repair_t *r)
{
    if (r->phase != REPAIR_IDLE) return;
    uv_timer_stop(&r->timer);
    repair_begin(r);
}

static void repair_handle_closed(uv_handle_t *h)
{
    repair_t *r = h->data;
    closer_closed(&r->closer);
}

void repair_close(repair_t *r, void (*done)(void *arg), void *arg)
{
    r->closing = true;
    repair_reset(r);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, repair_handle_closed);
    uv_close((uv_handle_t *)&r->tick, repair_handle_closed);
    peer_pool_close(r->pool, closer_closed_cb, &r->closer);
    closer_finish(&r->closer, done, arg);
}

void repair_free(repair_t *r)
{
    if (!r) return;
    peer_pool_free(r->pool);
    free(r->step);
    free(r->scratch);
    free(r->tombs);
    free(r);
}

/* ---- answering another owner ------------------------------------------- */

void repair_serve_digest(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    route_t *rt = w->route;
    unsigned their_level = digest_table_level(req->blob.len), level = 0;
    if (!their_level) {
        peer_server_respond_error(call, PEER_STATUS_BAD_REQUEST, "digest table of the wrong size");
        return;
    }
    topo_t *t = route_topo(w);
    long differ = -1;
    uint8_t bits[DIGEST_BITMAP_BYTES_MAX];
    if (t && t->fingerprint == req->ring) {
        for (size_t i = 0; i < t->n; i++) {
            const topo_member_t *m = &t->members[i];
            if (strlen(m->name) == req->name.len && memcmp(m->name, req->name.p, req->name.len) == 0 &&
                memcmp(m->run, req->run, sizeof m->run) == 0) {
                differ = repair_book_compare(&rt->repair_book, req->ring, req->cut, i, req->blob.p, their_level,
                                             bits, &level);
                break;
            }
        }
    }
    peer_msg_t m = {.type = PEER_MSG_REPAIR_DIGEST_RESP, .status = PEER_STATUS_UNAVAILABLE};
    if (differ >= 0) {
        m.status = PEER_STATUS_OK;
        m.blob = (peer_bytes_t){bits, digest_bitmap_bytes(level)};
        atomic_fetch_add(&rt->repair.digests_answered, 1);
    }
    peer_server_respond(call, &m);
}

void repair_serve_offer(route_worker_t *w, peer_call_t *call, const peer_msg_t *req)
{
    route_t *rt = w->route;
    peer_answer_t *answers = req->count ? malloc(req->count * sizeof *answers) : NULL;
    if (req->count && !answers) {
        peer_server_respond_error(call, PEER_STATUS_UNAVAILABLE, "out of memory");
        return;
    }
    /* A member near its memory limit evicted what it lacks, most likely:
     * taking it back would only evict something else. It still takes newer
     * versions of what it holds. */
    store_stats_t ss;
    store_get_stats(rt->store, &ss);
    bool full = ss.max_bytes && ss.bytes > ss.max_bytes / 10 * 9;
    full |= ss.max_entries && ss.entries > ss.max_entries / 10 * 9;
    uint32_t n = 0, index = 0;
    int64_t now = store_now_ms(rt->store);
    peer_iter_t it;
    peer_iter_init(&it, req);
    peer_offer_t o;
    for (; peer_iter_offer(&it, &o); index++) {
        if (!route_plausible(rt, o.version)) continue;
        if (o.tomb) {
            /* A delete this node may have missed: learnt as it is. */
            repair_learn_delete(rt, o.key.p, o.key.len, o.hash, o.version);
            continue;
        }
        uint64_t deleted = rt->tomb ? tomb_version(rt->tomb, o.key.p, o.key.len, now) : 0;
        if (deleted > o.version) {
            answers[n++] = (peer_answer_t){.index = index, .version = deleted};
            continue;
        }
        store_entry_t *e;
        uint64_t have = 0;
        if (store_peek(rt->store, o.key.p, o.key.len, &e) == STORE_OK) {
            have = store_entry_version(e);
            store_entry_release(e);
        }
        if (o.version > have && (have || !full)) answers[n++] = (peer_answer_t){.index = index, .version = 0};
    }
    peer_msg_t m = {.type = PEER_MSG_REPAIR_OFFER_RESP, .count = n, .answers = answers};
    peer_server_respond(call, &m);
    free(answers);
}
