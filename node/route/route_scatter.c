#include "node/route/route_scatter.h"

#include <stdlib.h>
#include <string.h>

#include "node/route/route_local.h"

/* A member must scan its whole L1 for a pattern: give it longer than a
 * single-key request. */
static uint64_t route_scatter_timeout_ms(route_worker_t *w)
{
    return w->route->cfg->peer_timeout_ms * 5;
}

typedef struct route_scatter {
    route_worker_t *w;
    route_scatter_kind_t kind;
    bool by_keys;              /* invalidating listed keys, not a pattern */
    route_scatter_done_fn done;
    void *ctx;
    topo_t *topo;
    unsigned pending;          /* replies outstanding, +1 while sending */
    bool *failed;              /* by ring index */
    route_scatter_node_t *per_node; /* by ring index (one entry without a ring) */
    uint64_t matched, invalidated;
    peer_bytes_t *sample;      /* keys point into sample_bytes (offsets until the end) */
    char *sample_bytes;
    size_t nsample, sample_max, sample_used;
    char *pattern;
    size_t plen;
    bool dry_run;
    uint64_t version;          /* the invalidation's, stamped here once after reading the
                                  * others' clocks (0: dry run, preview) */
    peer_bytes_t *keys;        /* by_keys: point into key_bytes */
    char *key_bytes;
    size_t nkeys;
    bool l2_done;              /* L2 was cleared (once per cluster operation, here) */
    route_scatter_l2_t l2;
    uint64_t l2_unlinked;
} route_scatter_t;

typedef struct route_scatter_req {
    route_scatter_t *s;
    uint32_t node;
} route_scatter_req_t;

static void route_scatter_sample_add(route_scatter_t *s, const void *key, size_t klen)
{
    if (s->nsample >= s->sample_max) return;
    memcpy(s->sample_bytes + s->sample_used, key, klen);
    s->sample[s->nsample++] = (peer_bytes_t){.p = (const uint8_t *)(uintptr_t)s->sample_used, .len = klen};
    s->sample_used += klen;
}

static void route_scatter_members(route_scatter_t *s);

static void route_scatter_free(route_scatter_t *s)
{
    topo_unref(s->topo);
    free(s->failed);
    free(s->per_node);
    free(s->pattern);
    free(s->keys);
    free(s->key_bytes);
    free(s->sample);
    free(s->sample_bytes);
    free(s);
}

static void route_scatter_l2_done(void *ctx, l2_result_t res, uint64_t unlinked)
{
    route_scatter_t *s = ctx;
    s->l2 = res == L2_OK ? ROUTE_SCATTER_L2_OK : ROUTE_SCATTER_L2_UNAVAILABLE;
    s->l2_unlinked = unlinked;
    route_scatter_members(s);
}

/* Clears L2 before any L1 (see route_scatter.h); true when that is under
 * way and route_scatter_members follows from its callback. */
static bool route_scatter_l2(route_scatter_t *s)
{
    l2_t *l = s->w->l2;
    if (!l || s->l2_done) return false;
    s->l2_done = true;
    if (s->kind == ROUTE_SCATTER_INVALIDATE && !s->by_keys && !s->dry_run) {
        l2_del_matching(l, s->pattern, s->plen, s->version, route_scatter_l2_done, s);
        return true;
    }
    if (s->by_keys) {
        const void **keys = malloc(s->nkeys * sizeof *keys);
        size_t *lens = malloc(s->nkeys * sizeof *lens);
        if (!keys || !lens) {
            free(keys);
            free(lens);
            s->l2 = ROUTE_SCATTER_L2_UNAVAILABLE;
            return false;
        }
        for (size_t i = 0; i < s->nkeys; i++) {
            keys[i] = s->keys[i].p;
            lens[i] = s->keys[i].len;
        }
        l2_del_keys(l, keys, lens, s->nkeys, s->version, route_scatter_l2_done, s);
        free(keys);
        free(lens);
        return true;
    }
    return false;
}

static void route_scatter_answer(route_scatter_t *s);

/* The journal synced the deletes (status 0) or failed them: only now may
 * the result say they are kept. */
static void route_scatter_journaled(void *ctx, int status)
{
    route_scatter_t *s = ctx;
    l2_shared_t *l2 = s->w->route->l2;
    if (status == 0) {
        s->l2 = ROUTE_SCATTER_L2_JOURNALED;
        atomic_fetch_add(&l2->stats.writes_journaled, s->nkeys);
    } else {
        atomic_fetch_add(&l2->stats.writes_refused, 1);
    }
    route_scatter_answer(s);
}

/* Redis missed a key invalidation: in journal mode the deletes wait in the
 * journal (replayed like writes). True when the append is under way
 * (route_scatter_journaled answers). */
static bool route_scatter_journal_keys(route_scatter_t *s)
{
    l2_shared_t *l2 = s->w->route->l2;
    if (!s->by_keys || !l2 || l2->write_mode != L2_WRITE_JOURNAL || !l2->journal || !s->w->l2) return false;
    journal_rec_t *recs = calloc(s->nkeys, sizeof *recs);
    if (!recs) return false;
    for (size_t i = 0; i < s->nkeys; i++)
        recs[i] = (journal_rec_t){.op = JOURNAL_OP_DEL, .version = s->version, .key = s->keys[i].p, .klen = s->keys[i].len};
    bool ok = l2_journal_append(s->w->l2, recs, s->nkeys, route_scatter_journaled, s) == 0;
    free(recs);
    return ok;
}

static void route_scatter_finish(route_scatter_t *s)
{
    route_t *rt = s->w->route;
    if (s->l2 == ROUTE_SCATTER_L2_UNAVAILABLE) {
        if (route_scatter_journal_keys(s)) return;
        if (rt->l2) atomic_fetch_add(&rt->l2->stats.writes_refused, 1);
    }
    route_scatter_answer(s);
}

/* Calls done with the merged result and frees s. */
static void route_scatter_answer(route_scatter_t *s)
{
    for (size_t i = 0; i < s->nsample; i++)
        s->sample[i].p = (const uint8_t *)s->sample_bytes + (uintptr_t)s->sample[i].p;
    size_t nodes = s->topo ? s->topo->n : 1, nun = 0;
    const char **unreachable = calloc(nodes, sizeof *unreachable);
    for (size_t i = 0; unreachable && s->topo && i < s->topo->n; i++)
        if (s->failed[i]) unreachable[nun++] = s->topo->members[i].name;
    for (size_t i = 0; i < nodes; i++) {
        s->per_node[i].name = s->topo ? s->topo->members[i].name : route_self_name(s->w->route);
        s->per_node[i].answered = !s->failed[i];
    }
    route_scatter_result_t res = {.matched = s->matched,
                                  .invalidated = s->invalidated,
                                  .sample = s->sample,
                                  .nsample = s->nsample,
                                  .unreachable = unreachable,
                                  .nunreachable = nun,
                                  .nodes = nodes,
                                  .per_node = s->per_node,
                                  .l2 = s->l2,
                                  .l2_unlinked = s->l2_unlinked};
    s->done(s->ctx, &res);
    free(unreachable);
    route_scatter_free(s);
}

static void route_scatter_done_one(route_scatter_t *s)
{
    if (--s->pending == 0) route_scatter_finish(s);
}

static void route_scatter_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_scatter_req_t *q = ctx;
    route_scatter_t *s = q->s;
    if (res == PEER_OK && resp->type == PEER_MSG_INVALIDATE_RESP) {
        s->matched += resp->matched;
        s->invalidated += resp->invalidated;
        s->per_node[q->node].matched += resp->matched;
        s->per_node[q->node].invalidated += resp->invalidated;
    } else if (res == PEER_OK && resp->type == PEER_MSG_KEYS_RESP) {
        peer_iter_t it;
        peer_iter_init(&it, resp);
        peer_keyinfo_t ki;
        while (peer_iter_keyinfo(&it, &ki)) route_scatter_sample_add(s, ki.key.p, ki.key.len);
    } else {
        s->failed[q->node] = true;
    }
    free(q);
    route_scatter_done_one(s);
}

static void route_scatter_send(route_scatter_t *s, uint32_t node, const peer_msg_t *req)
{
    const topo_member_t *m = &s->topo->members[node];
    route_scatter_req_t *q = malloc(sizeof *q);
    if (!q || m->peer.ss_family == 0) {
        free(q);
        s->failed[node] = true;
        return;
    }
    q->s = s;
    q->node = node;
    s->pending++;
    peer_result_t res = peer_pool_request(s->w->pool, m->name, (const struct sockaddr *)&m->peer, req,
                                          route_scatter_timeout_ms(s->w), route_scatter_reply, q);
    if (res != PEER_OK) {
        s->pending--;
        s->failed[node] = true;
        free(q);
    }
}

/* This node's part, then a request to every other member. */
static void route_scatter_members(route_scatter_t *s)
{
    route_worker_t *w = s->w;
    s->pending = 1;
    uint64_t matched = 0, invalidated = 0;
    if (s->by_keys) {
        invalidated = route_local_invalidate_keys(w, s->keys, s->nkeys, s->version);
    } else {
        route_local_invalidate_pattern(w, s->pattern, s->plen, s->dry_run, s->version, &matched, &invalidated);
        if (s->kind == ROUTE_SCATTER_PREVIEW && s->sample_max) {
            route_local_page_t page = {0};
            uint64_t cursor = 0;
            do {
                if (!route_local_keys(w, s->pattern, s->plen, cursor, (uint32_t)s->sample_max, true, &page)) break;
                for (size_t i = 0; i < page.n; i++)
                    route_scatter_sample_add(s, page.items[i].key.p, page.items[i].key.len);
                cursor = page.next;
                route_local_page_free(&page);
            } while (cursor != 0 && s->nsample < s->sample_max);
        }
    }
    s->matched += matched;
    s->invalidated += invalidated;
    if (!s->topo || s->topo->self >= 0) {
        route_scatter_node_t *self = &s->per_node[s->topo ? (size_t)s->topo->self : 0];
        self->matched += matched;
        self->invalidated += invalidated;
    }
    for (uint32_t i = 0; s->topo && i < s->topo->n; i++) {
        if ((int32_t)i == s->topo->self) continue;
        peer_msg_t req = {.flags = PEER_F_FORWARDED, .version = s->version};
        if (s->by_keys) {
            req.type = PEER_MSG_INVALIDATE;
            req.count = (uint32_t)s->nkeys;
            req.keys = s->keys;
        } else {
            req.type = PEER_MSG_INVALIDATE_PATTERN;
            req.pattern.p = (const uint8_t *)s->pattern;
            req.pattern.len = s->plen;
            req.dry_run = s->dry_run;
        }
        route_scatter_send(s, i, &req);
        if (s->kind == ROUTE_SCATTER_PREVIEW && s->sample_max) {
            peer_msg_t kr = {.type = PEER_MSG_KEYS,
                             .flags = PEER_F_FORWARDED | PEER_F_PRIMARY,
                             .limit = (uint32_t)s->sample_max};
            kr.pattern = req.pattern;
            route_scatter_send(s, i, &kr);
        }
    }
    route_scatter_done_one(s);
}

static route_scatter_t *route_scatter_new(route_worker_t *w, route_scatter_kind_t kind, route_scatter_done_fn done,
                                          void *ctx)
{
    route_scatter_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->w = w;
    s->kind = kind;
    s->done = done;
    s->ctx = ctx;
    s->topo = topo_ref(route_topo(w));
    size_t n = s->topo ? s->topo->n : 1;
    s->failed = calloc(n, sizeof *s->failed);
    s->per_node = calloc(n, sizeof *s->per_node);
    if (!s->failed || !s->per_node) {
        route_scatter_free(s);
        return NULL;
    }
    return s;
}

/* L2 first (route_scatter_l2), then the members. */
static void route_scatter_apply(route_scatter_t *s)
{
    if (!route_scatter_l2(s)) route_scatter_members(s);
}

static void route_scatter_stamp(route_scatter_t *s)
{
    s->version = route_stamp_past_now(s->w->route);
    route_scatter_apply(s);
}

static void route_scatter_clock_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_scatter_t *s = ctx;
    if (res == PEER_OK && resp->type == PEER_MSG_SYNC_RESP) route_observe(s->w->route, resp->clock);
    if (--s->pending == 0) route_scatter_stamp(s);
}

/* An invalidation is stamped by this node's clock, but the writes it must
 * cover were stamped by their primaries' clocks, which may run ahead of
 * this one (within --max-clock-drift): a version from this clock alone
 * could be older than a write acknowledged before the invalidation was
 * asked for, and that write would survive it. So the other members' clocks
 * are read first (SYNC answers with one) and merged: every primary that
 * acknowledged a write reads at least that write's version, and so does
 * every replica that stored it. A member that does not answer is left out;
 * it will not take the invalidation either, and the result names it. */
static void route_scatter_run(route_scatter_t *s)
{
    if (s->dry_run || !s->topo || s->topo->n < 2) {
        if (!s->dry_run) s->version = route_stamp_past_now(s->w->route);
        route_scatter_apply(s);
        return;
    }
    s->pending = 1;
    route_sync_all(s->w, s->topo, &s->pending, route_scatter_clock_reply, s);
    if (--s->pending == 0) route_scatter_stamp(s);
}

bool route_scatter_keys(route_worker_t *w, const peer_bytes_t *keys, size_t n, route_scatter_done_fn done, void *ctx)
{
    route_scatter_t *s = route_scatter_new(w, ROUTE_SCATTER_INVALIDATE, done, ctx);
    if (!s) return false;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += keys[i].len;
    s->keys = malloc((n ? n : 1) * sizeof *s->keys);
    s->key_bytes = malloc(bytes ? bytes : 1);
    if (!s->keys || !s->key_bytes) {
        route_scatter_free(s);
        return false;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(s->key_bytes + off, keys[i].p, keys[i].len);
        s->keys[i] = (peer_bytes_t){.p = (const uint8_t *)s->key_bytes + off, .len = keys[i].len};
        off += keys[i].len;
    }
    s->nkeys = n;
    s->by_keys = true;
    route_scatter_run(s);
    return true;
}

bool route_scatter_pattern(route_worker_t *w, route_scatter_kind_t kind, const char *pattern, size_t plen,
                           bool dry_run, size_t sample_max, route_scatter_done_fn done, void *ctx)
{
    route_scatter_t *s = route_scatter_new(w, kind, done, ctx);
    if (!s) return false;
    s->pattern = malloc(plen ? plen : 1);
    if (sample_max) {
        s->sample = malloc(sample_max * sizeof *s->sample);
        s->sample_bytes = malloc(sample_max * LIMITS_KEY_MAX);
    }
    if (!s->pattern || (sample_max && (!s->sample || !s->sample_bytes))) {
        route_scatter_free(s);
        return false;
    }
    memcpy(s->pattern, pattern, plen);
    s->plen = plen;
    /* A preview never removes anything. */
    s->dry_run = dry_run || kind == ROUTE_SCATTER_PREVIEW;
    s->sample_max = sample_max;
    route_scatter_run(s);
    return true;
}

/* ---------- listing: one member per page ---------- */

typedef struct route_scatter_list {
    route_worker_t *w;
    route_scatter_page_fn done;
    void *ctx;
    topo_t *topo;                 /* NULL: this node alone */
    uint32_t node;
} route_scatter_list_t;

static void route_scatter_list_answer(route_scatter_list_t *k, const peer_keyinfo_t *items, size_t n, uint64_t next,
                                      bool unreachable, bool no_memory)
{
    route_scatter_page_t page = {.items = items,
                                 .n = n,
                                 .node = k->topo ? k->topo->members[k->node].name : route_self_name(k->w->route),
                                 .node_index = k->node,
                                 .nodes = k->topo ? k->topo->n : 0,
                                 .next = next,
                                 .unreachable = unreachable,
                                 .no_memory = no_memory};
    k->done(k->ctx, &page);
    topo_unref(k->topo);
    free(k);
}

static void route_scatter_list_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    route_scatter_list_t *k = ctx;
    if (res != PEER_OK || resp->type != PEER_MSG_KEYS_RESP) {
        route_scatter_list_answer(k, NULL, 0, 0, true, false);
        return;
    }
    peer_keyinfo_t *items = malloc((resp->count ? resp->count : 1) * sizeof *items);
    if (!items) {
        route_scatter_list_answer(k, NULL, 0, 0, false, true);
        return;
    }
    peer_iter_t it;
    peer_iter_init(&it, resp);
    size_t n = 0;
    while (n < resp->count && peer_iter_keyinfo(&it, &items[n])) n++;
    route_scatter_list_answer(k, items, n, resp->cursor, false, false);
    free(items);
}

route_scatter_start_t route_scatter_list(route_worker_t *w, const char *pattern, size_t plen, uint32_t node_index,
                                         uint64_t cursor, uint32_t limit, route_scatter_page_fn done, void *ctx)
{
    topo_t *t = route_topo(w);
    if ((t && node_index >= t->n) || (!t && node_index != 0)) return ROUTE_SCATTER_BAD_NODE;
    route_scatter_list_t *k = calloc(1, sizeof *k);
    if (!k) return ROUTE_SCATTER_NO_MEMORY;
    k->w = w;
    k->done = done;
    k->ctx = ctx;
    k->node = node_index;
    k->topo = t && t->n > 1 ? topo_ref(t) : NULL;
    if (!k->topo || (int32_t)node_index == t->self) {
        route_local_page_t page = {0};
        if (!route_local_keys(w, pattern, plen, cursor, limit, k->topo != NULL, &page)) {
            route_scatter_list_answer(k, NULL, 0, 0, false, true);
        } else {
            route_scatter_list_answer(k, page.items, page.n, page.next, false, false);
            route_local_page_free(&page);
        }
        return ROUTE_SCATTER_STARTED;
    }
    const topo_member_t *m = &t->members[node_index];
    peer_msg_t req = {.type = PEER_MSG_KEYS, .flags = PEER_F_FORWARDED | PEER_F_PRIMARY, .cursor = cursor,
                      .limit = limit};
    req.pattern.p = (const uint8_t *)pattern;
    req.pattern.len = plen;
    if (m->peer.ss_family == 0 ||
        peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, route_scatter_timeout_ms(w),
                          route_scatter_list_reply, k) != PEER_OK)
        route_scatter_list_answer(k, NULL, 0, 0, true, false);
    return ROUTE_SCATTER_STARTED;
}
