#include "node/route/handoff.h"

#include <stdlib.h>
#include <string.h>

#include "node/core/closer.h"
#include "node/core/log.h"

#define HANDOFF_TICK_MS 10
#define HANDOFF_SCAN_STEP 64

/* One entry copied out of the store, shared by the batches that carry it. */
typedef struct handoff_item {
    unsigned pending;      /* batches still to answer */
    bool drop, failed;
    uint64_t version, expires_at;
    size_t klen, vlen, ctlen;
    char data[];           /* key, value, content type */
} handoff_item_t;

typedef struct handoff_batch {
    handoff_t *h;
    handoff_item_t **items;
    unsigned n;
    size_t bytes;
} handoff_batch_t;

struct handoff {
    uv_loop_t *loop;
    store_t *store;
    tomb_t *tomb;                  /* NULL: no tombstones to hand over */
    handoff_config_t cfg;
    handoff_stats_t *stats;
    peer_pool_t *pool;
    uv_timer_t tick;
    bool closing;
    /* The run. */
    topo_t *old, *cur;
    bool running, scan_done, failed;
    bool tombs_sent;               /* this run's tombstones went out (after the entries) */
    uint64_t cursor;
    uint64_t started_ms, last_refill_ms, retry_at;
    double tokens;
    int32_t *old_index;            /* cur member index -> old member index, -1 when new (or restarted) */
    handoff_batch_t **batches;     /* by cur member index: the batch being filled */
    unsigned inflight;
    /* Entries of the last scan step. */
    handoff_item_t **scanned;
    size_t nscanned, scanned_cap;
    closer_t closer;               /* the timer and the pool */
};

/* ---- pattern tombstones ------------------------------------------------
 * Every member keeps every pattern tombstone, so a member new to the ring
 * (a joiner, a restart, one back from the other side of a partition, which
 * the pattern's invalidation never reached) is sent all the live ones, as
 * the invalidations they were: it drops what they cover and refuses older
 * fills. Each member that sees it come sends them; what arrives twice
 * changes nothing. */

static void handoff_pattern_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    handoff_t *h = ctx;
    if (res != PEER_OK || resp->type != PEER_MSG_INVALIDATE_RESP) {
        atomic_fetch_add(&h->stats->batches_failed, 1);
        h->failed = true;
    }
    h->inflight--;
}

static void handoff_send_patterns(handoff_t *h)
{
    if (!h->tomb) return;
    bool any_new = false;
    for (size_t i = 0; i < h->cur->n && !any_new; i++)
        any_new = (int32_t)i != h->cur->self && h->old_index[i] < 0 && h->cur->members[i].peer.ss_family != 0;
    if (!any_new) return;
    tomb_pattern_item_t *items = malloc(TOMB_PATTERNS * sizeof *items);
    if (!items) {
        h->failed = true;
        return;
    }
    long n = tomb_copy_patterns(h->tomb, store_now_ms(h->store), items, TOMB_PATTERNS);
    for (uint32_t target = 0; target < h->cur->n; target++) {
        const topo_member_t *m = &h->cur->members[target];
        if ((int32_t)target == h->cur->self || h->old_index[target] >= 0 || m->peer.ss_family == 0) continue;
        for (long i = 0; i < n; i++) {
            peer_msg_t req = {.type = PEER_MSG_INVALIDATE_PATTERN, .flags = PEER_F_FORWARDED,
                              .version = items[i].version};
            req.pattern = (peer_bytes_t){(const uint8_t *)items[i].bytes, items[i].len};
            if (peer_pool_request(h->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, handoff_pattern_reply,
                                  h) == PEER_OK) {
                h->inflight++;
                atomic_fetch_add(&h->stats->tombstones_sent, 1);
            } else {
                atomic_fetch_add(&h->stats->batches_failed, 1);
                h->failed = true;
            }
        }
    }
    free(items);
}

static void handoff_tick_cb(uv_timer_t *t);

#define HANDOFF_COUNTER(F, name, help) METRICS_ATOMIC_COUNTER(handoff_stats_t, F, name, NULL, help)
static const metrics_desc_t handoff_metrics_rows[] = {
    HANDOFF_COUNTER(entries_sent, "handoff_entries_total", "Entries handed to their new owners after ring changes."),
    HANDOFF_COUNTER(bytes_sent, "handoff_bytes_total", "Key and value bytes handed to new owners."),
    HANDOFF_COUNTER(tombstones_sent, "handoff_tombstones_total",
                    "Tombstones handed on after a ring change (keys' to their new owners, patterns to members new to "
                    "the ring), so a copy held from before does not outlive the delete."),
    HANDOFF_COUNTER(entries_dropped, "handoff_dropped_total", "Entries removed here once their new owners had them."),
    HANDOFF_COUNTER(batches_failed, "handoff_batches_failed_total", "Handoff batches a new owner did not take (retried)."),
    HANDOFF_COUNTER(runs, "handoff_runs_total", "Handoff scans finished."),
    {"handoff_last_duration_seconds", NULL, METRICS_GAUGE, METRICS_ATOMIC_U64,
     offsetof(handoff_stats_t, last_duration_ms), "Duration of the last handoff scan.", 1000},
    METRICS_ATOMIC_GAUGE(handoff_stats_t, running, "handoff_running", NULL, "1 while a handoff is in progress."),
};
const metrics_table_t handoff_metrics_table = METRICS_TABLE(handoff_metrics_rows);

handoff_t *handoff_new(uv_loop_t *loop, store_t *store, tomb_t *tomb, const peer_pool_config_t *pool_cfg,
                       const handoff_config_t *cfg, handoff_stats_t *stats)
{
    handoff_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->loop = loop;
    h->store = store;
    h->tomb = tomb;
    h->cfg = *cfg;
    if (!h->cfg.batch_entries) h->cfg.batch_entries = 256;
    if (!h->cfg.batch_bytes) h->cfg.batch_bytes = (size_t)1 << 20;
    if (!h->cfg.max_inflight) h->cfg.max_inflight = 4;
    if (!h->cfg.retry_ms) h->cfg.retry_ms = 5000;
    h->stats = stats;
    h->pool = peer_pool_new(loop, pool_cfg);
    if (!h->pool) {
        free(h);
        return NULL;
    }
    uv_timer_init(loop, &h->tick);
    h->tick.data = h;
    closer_add(&h->closer, 2);
    return h;
}

bool handoff_running(const handoff_t *h)
{
    return h->running;
}

static void handoff_item_release(handoff_t *h, handoff_item_t *it)
{
    if (--it->pending) return;
    if (it->drop && !it->failed) {
        /* Drop it only if nothing newer arrived meanwhile. */
        if (store_delete_versioned(h->store, it->data, it->klen, STORE_DELETE_IF_VERSION, it->version))
            atomic_fetch_add(&h->stats->entries_dropped, 1);
    }
    free(it);
}

static void handoff_batch_free(handoff_batch_t *b)
{
    free(b->items);
    free(b);
}

static void handoff_reset_run(handoff_t *h)
{
    if (h->batches) {
        for (size_t i = 0; h->cur && i < h->cur->n; i++) {
            handoff_batch_t *b = h->batches[i];
            if (!b) continue;
            for (unsigned k = 0; k < b->n; k++) {
                b->items[k]->failed = true;
                handoff_item_release(h, b->items[k]);
            }
            handoff_batch_free(b);
        }
    }
    free(h->batches);
    free(h->old_index);
    h->batches = NULL;
    h->old_index = NULL;
    topo_unref(h->old);
    topo_unref(h->cur);
    h->old = h->cur = NULL;
}

static void handoff_batch_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    handoff_batch_t *b = ctx;
    handoff_t *h = b->h;
    /* Only a wholly settled batch may be dropped here: the answer says how
     * many entries the receiver kept or found obsolete, not which. */
    bool ok = res == PEER_OK && resp->type == PEER_MSG_HANDOFF_RESP && resp->accepted == b->n;
    if (ok) {
        atomic_fetch_add(&h->stats->entries_sent, b->n);
        atomic_fetch_add(&h->stats->bytes_sent, b->bytes);
    } else {
        atomic_fetch_add(&h->stats->batches_failed, 1);
        h->failed = true;
    }
    for (unsigned k = 0; k < b->n; k++) {
        if (!ok) b->items[k]->failed = true;
        handoff_item_release(h, b->items[k]);
    }
    handoff_batch_free(b);
    h->inflight--;
}

static void handoff_send(handoff_t *h, uint32_t target)
{
    handoff_batch_t *b = h->batches[target];
    h->batches[target] = NULL;
    const topo_member_t *m = &h->cur->members[target];
    peer_entry_t *entries = calloc(b->n, sizeof *entries);
    peer_result_t res = PEER_ERR_INVALID;
    if (entries) {
        for (unsigned k = 0; k < b->n; k++) {
            handoff_item_t *it = b->items[k];
            entries[k].key = (peer_bytes_t){(const uint8_t *)it->data, it->klen};
            entries[k].value = (peer_bytes_t){(const uint8_t *)it->data + it->klen, it->vlen};
            entries[k].content_type = (peer_bytes_t){(const uint8_t *)it->data + it->klen + it->vlen, it->ctlen};
            entries[k].version = it->version;
            entries[k].expires_at_ms = it->expires_at;
        }
        peer_msg_t req = {.type = PEER_MSG_HANDOFF, .flags = PEER_F_FORWARDED, .count = b->n, .entries = entries};
        res = peer_pool_request(h->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, handoff_batch_reply, b);
        free(entries);
    }
    if (res == PEER_OK) {
        h->inflight++;
        return;
    }
    h->inflight++; /* the reply path below takes it back */
    handoff_batch_reply(b, res, NULL);
}

static bool handoff_add(handoff_t *h, uint32_t target, handoff_item_t *it)
{
    handoff_batch_t *b = h->batches[target];
    /* A large value travels alone rather than push a batch past the
     * frame limit. */
    if (b && b->bytes + it->klen + it->vlen > h->cfg.batch_bytes) {
        handoff_send(h, target);
        b = NULL;
    }
    if (!b) {
        b = calloc(1, sizeof *b);
        if (b) b->items = malloc(h->cfg.batch_entries * sizeof *b->items);
        if (!b || !b->items) {
            free(b);
            return false;
        }
        b->h = h;
        h->batches[target] = b;
    }
    b->items[b->n++] = it;
    b->bytes += it->klen + it->vlen;
    it->pending++;
    if (b->n >= h->cfg.batch_entries || b->bytes >= h->cfg.batch_bytes) handoff_send(h, target);
    return true;
}

static void handoff_scan_one(const store_entry_t *e, void *ctx)
{
    handoff_t *h = ctx;
    if (h->nscanned == h->scanned_cap) return;
    size_t klen, vlen, ctlen;
    const char *key = store_entry_key(e, &klen);
    const char *value = store_entry_value(e, &vlen);
    const char *ct = store_entry_content_type(e, &ctlen);
    handoff_item_t *it = malloc(sizeof *it + klen + vlen + ctlen);
    if (!it) return;
    memset(it, 0, sizeof *it);
    it->version = store_entry_version(e);
    it->expires_at = (uint64_t)store_entry_expires_at(e);
    it->klen = klen;
    it->vlen = vlen;
    it->ctlen = ct ? ctlen : 0;
    memcpy(it->data, key, klen);
    memcpy(it->data + klen, value, vlen);
    if (ct) memcpy(it->data + klen + vlen, ct, ctlen);
    h->scanned[h->nscanned++] = it;
}

/* Decides where one scanned entry goes. */
static void handoff_route(handoff_t *h, handoff_item_t *it)
{
    uint32_t owners[RING_REPLICAS_MAX], old_owners[RING_REPLICAS_MAX];
    size_t n = topo_owners(h->cur, it->data, it->klen, owners, RING_REPLICAS_MAX);
    size_t on = h->old ? topo_owners(h->old, it->data, it->klen, old_owners, RING_REPLICAS_MAX) : 0;
    bool self_owns = topo_is_owner(h->cur, owners, n);
    it->drop = !self_owns;
    it->pending = 1; /* held while routing */
    unsigned added = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t o = owners[i];
        if ((int32_t)o == h->cur->self || h->cur->members[o].peer.ss_family == 0) continue;
        if (self_owns) {
            /* Still ours: only owners that gained the key need it. */
            bool had = false;
            for (size_t j = 0; j < on && !had; j++) had = h->old_index[o] == (int32_t)old_owners[j];
            if (had) continue;
        }
        if (handoff_add(h, o, it)) added++;
        else it->failed = true;
    }
    /* Not ours and nobody to give it to (no reachable owner): keep it. */
    if (it->drop && added == 0) it->failed = true;
    handoff_item_release(h, it);
}

static void handoff_finish_run(handoff_t *h)
{
    uint64_t now = uv_now(h->loop);
    atomic_fetch_add(&h->stats->runs, 1);
    atomic_store(&h->stats->last_duration_ms, now - h->started_ms);
    if (h->failed) {
        log_warn("handoff incomplete; retrying", "\"ring_version\":%llu,\"retry_ms\":%llu",
                 (unsigned long long)h->cur->version, (unsigned long long)h->cfg.retry_ms);
        h->failed = false;
        h->scan_done = false;
        h->tombs_sent = false;
        h->cursor = 0;
        h->retry_at = now + h->cfg.retry_ms;
        return;
    }
    log_info("handoff done", "\"ring_version\":%llu,\"duration_ms\":%llu", (unsigned long long)h->cur->version,
             (unsigned long long)(now - h->started_ms));
    h->running = false;
    atomic_store(&h->stats->running, 0);
    uv_timer_stop(&h->tick);
}

/* ---- tombstones ---------------------------------------------------------
 * A new owner must also learn the deletes the old owners remember, or a
 * copy it held from before (a member back from a partition) would outlive
 * them: each live tombstone goes, by its hash, to the owners that gained
 * its key (to every owner when this node no longer owns it), as tombstone
 * items of a REPAIR_OFFER, which the receiver learns as they are. */

static void handoff_tombs_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    handoff_t *h = ctx;
    if (res != PEER_OK || resp->type != PEER_MSG_REPAIR_OFFER_RESP) {
        atomic_fetch_add(&h->stats->batches_failed, 1);
        h->failed = true;
    }
    h->inflight--;
}

static void handoff_tombs_flush(handoff_t *h, uint32_t target, peer_offer_t *offers, unsigned *n)
{
    if (*n == 0) return;
    const topo_member_t *m = &h->cur->members[target];
    peer_msg_t req = {.type = PEER_MSG_REPAIR_OFFER, .flags = PEER_F_FORWARDED, .count = *n, .offers = offers};
    if (peer_pool_request(h->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, handoff_tombs_reply, h) ==
        PEER_OK) {
        h->inflight++;
        atomic_fetch_add(&h->stats->tombstones_sent, *n);
    } else {
        atomic_fetch_add(&h->stats->batches_failed, 1);
        h->failed = true;
    }
    *n = 0;
}

static void handoff_send_tombs(handoff_t *h)
{
    if (!h->tomb) return;
    tomb_item_t *items = NULL;
    size_t cap = 0;
    long n = tomb_copy(h->tomb, store_now_ms(h->store), &items, &cap);
    /* One offer buffer per member, filled in one pass: each tombstone's
     * owners are looked up once. */
    peer_offer_t **per = calloc(h->cur->n, sizeof *per);
    unsigned *counts = calloc(h->cur->n, sizeof *counts);
    if (n < 0 || !per || !counts) {
        h->failed = true;
        goto out;
    }
    for (long i = 0; i < n; i++) {
        uint32_t owners[RING_REPLICAS_MAX], old_owners[RING_REPLICAS_MAX];
        size_t no = ring_owners_hash(h->cur->ring, items[i].hash, owners, RING_REPLICAS_MAX);
        bool self_owns = topo_is_owner(h->cur, owners, no);
        size_t on = self_owns && h->old ? ring_owners_hash(h->old->ring, items[i].hash, old_owners, RING_REPLICAS_MAX) : 0;
        for (size_t k = 0; k < no; k++) {
            uint32_t target = owners[k];
            if ((int32_t)target == h->cur->self || h->cur->members[target].peer.ss_family == 0) continue;
            /* Still ours: only owners that gained the key need it. */
            bool had = false;
            for (size_t j = 0; j < on && !had; j++) had = h->old_index[target] == (int32_t)old_owners[j];
            if (had) continue;
            if (!per[target] && !(per[target] = malloc((size_t)PEER_OFFER_MAX * sizeof **per))) {
                h->failed = true;
                continue;
            }
            per[target][counts[target]++] = (peer_offer_t){.hash = items[i].hash, .version = items[i].version,
                                                           .tomb = true};
            if (counts[target] == PEER_OFFER_MAX) handoff_tombs_flush(h, target, per[target], &counts[target]);
        }
    }
    for (uint32_t target = 0; target < h->cur->n; target++)
        if (per[target]) handoff_tombs_flush(h, target, per[target], &counts[target]);
out:
    for (uint32_t target = 0; per && target < h->cur->n; target++) free(per[target]);
    free(per);
    free(counts);
    free(items);
}

static void handoff_tick_cb(uv_timer_t *t)
{
    handoff_t *h = t->data;
    if (!h->running) return;
    uint64_t now = uv_now(h->loop);
    if (now < h->retry_at) return;
    if (h->cfg.rate) {
        h->tokens += (double)(now - h->last_refill_ms) * (double)h->cfg.rate / 1000.0;
        if (h->tokens > (double)h->cfg.rate) h->tokens = (double)h->cfg.rate;
    }
    h->last_refill_ms = now;
    while (!h->scan_done && h->inflight < h->cfg.max_inflight && (!h->cfg.rate || h->tokens >= 1)) {
        size_t step = HANDOFF_SCAN_STEP;
        if (h->cfg.rate && h->tokens < (double)step) step = (size_t)h->tokens;
        h->nscanned = 0;
        /* A scan step may report a little more than asked (a bucket comes whole). */
        h->cursor = store_scan(h->store, h->cursor, NULL, 0, step, handoff_scan_one, h);
        if (h->cursor == 0) h->scan_done = true;
        if (h->cfg.rate) h->tokens -= (double)(h->nscanned ? h->nscanned : 1);
        for (size_t i = 0; i < h->nscanned; i++) handoff_route(h, h->scanned[i]);
    }
    if (h->scan_done) {
        for (size_t i = 0; i < h->cur->n; i++)
            if (h->batches[i]) handoff_send(h, (uint32_t)i);
        if (!h->tombs_sent) {
            h->tombs_sent = true;
            handoff_send_tombs(h);
            handoff_send_patterns(h);
        }
        if (h->inflight == 0) handoff_finish_run(h);
    }
}

void handoff_start(handoff_t *h, topo_t *old, topo_t *cur)
{
    if (h->closing || !cur) return;
    /* A run cut short by this change may not have handed anything over
     * yet: what the owners held is still the old ring of that run, not the
     * ring in between (a member added in between would count as having
     * had keys it never received). */
    topo_t *base = h->running && h->old ? topo_ref(h->old) : topo_ref(old);
    handoff_reset_run(h);
    h->old = base;
    h->cur = topo_ref(cur);
    h->old_index = malloc(cur->n * sizeof *h->old_index);
    h->batches = calloc(cur->n, sizeof *h->batches);
    if (!h->scanned) {
        h->scanned_cap = 16 * HANDOFF_SCAN_STEP;
        h->scanned = malloc(h->scanned_cap * sizeof *h->scanned);
    }
    if (!h->old_index || !h->batches || !h->scanned || cur->self < 0) {
        if (cur->self >= 0) log_error("out of memory starting a handoff", NULL);
        handoff_reset_run(h);
        h->running = false;
        atomic_store(&h->stats->running, 0);
        return;
    }
    for (size_t i = 0; i < cur->n; i++) {
        h->old_index[i] = -1;
        for (size_t j = 0; old && j < old->n; j++)
            if (topo_same_member(&cur->members[i], &old->members[j])) h->old_index[i] = (int32_t)j;
    }
    h->running = true;
    h->scan_done = h->failed = h->tombs_sent = false;
    h->cursor = 0;
    h->retry_at = 0;
    h->tokens = h->cfg.rate ? (double)HANDOFF_SCAN_STEP : 0;
    h->started_ms = h->last_refill_ms = uv_now(h->loop);
    atomic_store(&h->stats->running, 1);
    uv_timer_start(&h->tick, handoff_tick_cb, 0, HANDOFF_TICK_MS);
}

static void handoff_timer_closed(uv_handle_t *t)
{
    handoff_t *h = t->data;
    closer_closed(&h->closer);
}

void handoff_close(handoff_t *h, void (*done)(void *arg), void *arg)
{
    h->closing = true;
    h->running = false;
    uv_timer_stop(&h->tick);
    handoff_reset_run(h);
    uv_close((uv_handle_t *)&h->tick, handoff_timer_closed);
    peer_pool_close(h->pool, closer_closed_cb, &h->closer);
    closer_finish(&h->closer, done, arg);
}

void handoff_free(handoff_t *h)
{
    if (!h) return;
    peer_pool_free(h->pool);
    free(h->scanned);
    free(h);
}
