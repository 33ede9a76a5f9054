/* resync: catching up after a start, a stall or a rejoin (see resync.h). */
#include "node/route/resync.h"

#include <stdlib.h>
#include <string.h>

#include "node/core/closer.h"
#include "node/core/log.h"

#define RESYNC_HEARTBEAT_MS 100
/* Clock comparisons: how often, and with how many members at most. */
#define RESYNC_CLOCK_MS 2000
#define RESYNC_CLOCK_SAMPLE 5
/* How long a larger ring counts as "the cluster" after members vanish. */
#define RESYNC_PEAK_MS 60000

struct resync {
    uv_loop_t *loop;
    route_t *rt;
    resync_config_t cfg;
    peer_pool_t *pool;
    uv_timer_t poll, heartbeat, clock;
    closer_t closer;
    bool closing;
    char self[SWIM_NAME_MAX];
    uint8_t run[SWIM_ID_LEN];
    bool active;
    route_sync_reason_t why;
    uint64_t started_ms, deadline_ms, last_beat_ms;
    unsigned round_pending;       /* SYNC requests of the current round not answered yet */
    uint64_t round;               /* bumped per round and per restart: late answers are ignored */
    char (*done)[SWIM_NAME_MAX];  /* members that answered "done" in this sync */
    size_t ndone, done_cap;
    size_t members;               /* in the ring now */
    size_t reachable;             /* ... not suspected (this node included) */
    size_t peak;                  /* the most members the ring had lately */
    uint64_t peak_ms;             /* when it last had them */
    uint64_t clock_round;         /* bumped per clock comparison: late answers are ignored */
    unsigned clock_pending, clock_answers, clock_apart;
    size_t clock_next;            /* ring index the next comparison starts at */
};

/* One SYNC in flight; owned by the pool's callback. */
typedef struct resync_call {
    resync_t *r;
    uint64_t round;
    char name[SWIM_NAME_MAX];
} resync_call_t;

static bool resync_is_done(const resync_t *r, const char *name)
{
    for (size_t i = 0; i < r->ndone; i++)
        if (strcmp(r->done[i], name) == 0) return true;
    return false;
}

static void resync_mark_done(resync_t *r, const char *name)
{
    if (resync_is_done(r, name)) return;
    if (r->ndone == r->done_cap) {
        size_t cap = r->done_cap ? r->done_cap * 2 : 16;
        char (*d)[SWIM_NAME_MAX] = realloc(r->done, cap * sizeof *d);
        if (!d) return; /* asked again next round */
        r->done = d;
        r->done_cap = cap;
    }
    snprintf(r->done[r->ndone++], SWIM_NAME_MAX, "%s", name);
}

static void resync_finish(resync_t *r, bool timed_out)
{
    uint64_t took = uv_now(r->loop) - r->started_ms;
    size_t done = r->ndone;
    r->active = false;
    r->round++;
    r->ndone = 0;
    uv_timer_stop(&r->poll);
    atomic_store(&r->rt->sync.syncing, 0);
    atomic_store(&r->rt->woke, false);
    atomic_store(&r->rt->sync.last_duration_ms, took);
    if (timed_out) {
        atomic_fetch_add(&r->rt->sync.timed_out, 1);
        log_warn("sync timed out; serving what this node has",
                 "\"reason\":\"%s\",\"duration_ms\":%llu,\"members_done\":%zu", route_sync_reason_name(r->why),
                 (unsigned long long)took, done);
    } else {
        atomic_fetch_add(&r->rt->sync.completed, 1);
        log_info("synced", "\"reason\":\"%s\",\"duration_ms\":%llu", route_sync_reason_name(r->why),
                 (unsigned long long)took);
    }
}

static void resync_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    resync_call_t *c = ctx;
    resync_t *r = c->r;
    if (res == PEER_OK && resp->type == PEER_MSG_SYNC_RESP) {
        /* Its clock first: even a "not yet" tells us how far the cluster is. */
        route_observe(r->rt, resp->clock);
        if (resp->done && r->active && c->round == r->round) resync_mark_done(r, c->name);
    }
    if (c->round == r->round && r->round_pending) r->round_pending--;
    free(c);
}

/* ---------- clock comparison ---------- */

static void resync_clock_judge(resync_t *r)
{
    route_t *rt = r->rt;
    if (r->clock_answers == 0) return; /* nothing learnt: as it was */
    route_clock_state_t was = (route_clock_state_t)atomic_load(&rt->sync.clock);
    route_clock_state_t now = r->clock_apart * 2 > r->clock_answers ? ROUTE_CLOCK_SKEWED : ROUTE_CLOCK_OK;
    if (now == was) return;
    atomic_store(&rt->sync.clock, now);
    if (now == ROUTE_CLOCK_SKEWED) {
        atomic_fetch_add(&rt->sync.clock_skews, 1);
        log_warn("this node's clock is more than --max-clock-drift apart from most members'; refusing writes",
                 "\"asked\":%u,\"apart\":%u", r->clock_answers, r->clock_apart);
    } else if (was == ROUTE_CLOCK_SKEWED) {
        log_info("this node's clock agrees with the others' again", "\"asked\":%u,\"apart\":%u",
                 r->clock_answers, r->clock_apart);
    }
}

typedef struct resync_clock_call {
    resync_t *r;
    uint64_t round;
} resync_clock_call_t;

static void resync_clock_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    resync_clock_call_t *c = ctx;
    resync_t *r = c->r;
    bool current = c->round == r->clock_round;
    free(c);
    if (!current) return;
    if (res == PEER_OK && resp->type == PEER_MSG_SYNC_RESP) {
        r->clock_answers++;
        /* Compared before it is merged: merging would hide how far apart. */
        if (route_clock_apart(r->rt, resp->clock)) r->clock_apart++;
        route_observe(r->rt, resp->clock);
    }
    if (--r->clock_pending == 0) resync_clock_judge(r);
}

/* Compares this node's clock with a few other members' (their SYNC answers
 * carry it) and merges theirs: a node whose clock is apart from most of
 * them stamps versions that win over later writes elsewhere (ahead) or
 * lose to earlier ones (behind), so it refuses writes until it agrees
 * again. Most, not all: one member with a bad clock must not stop the
 * others. The members asked rotate around the ring. */
static void resync_clock_compare(resync_t *r)
{
    if (r->closing || r->clock_pending || !r->self[0]) return;
    topo_t *t = topo_slot_get(&r->rt->topo);
    if (!t || t->self < 0 || t->n < 2) {
        /* Alone: nothing to compare with; whoever joins is compared first. */
        atomic_store(&r->rt->sync.clock, ROUTE_CLOCK_UNCHECKED);
        topo_unref(t);
        return;
    }
    r->clock_round++;
    r->clock_answers = r->clock_apart = 0;
    r->clock_pending = 1;
    size_t looked = 0, asked = 0;
    for (; looked < t->n && asked < RESYNC_CLOCK_SAMPLE; looked++) {
        const topo_member_t *m = &t->members[(r->clock_next + looked) % t->n];
        if (m == &t->members[t->self] || m->peer.ss_family == 0 || m->suspect) continue;
        resync_clock_call_t *c = malloc(sizeof *c);
        if (!c) break;
        *c = (resync_clock_call_t){r, r->clock_round};
        peer_msg_t req = {.type = PEER_MSG_SYNC, .flags = PEER_F_FORWARDED};
        req.name = (peer_bytes_t){(const uint8_t *)r->self, strlen(r->self)};
        memcpy(req.run, r->run, sizeof req.run);
        r->clock_pending++;
        if (peer_pool_request(r->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, resync_clock_reply, c) !=
            PEER_OK) {
            r->clock_pending--;
            free(c);
            continue;
        }
        asked++;
    }
    r->clock_next = (r->clock_next + looked) % t->n;
    topo_unref(t);
    if (--r->clock_pending == 0) resync_clock_judge(r);
}

static void resync_clock_cb(uv_timer_t *t)
{
    resync_clock_compare(t->data);
}

/* Asks every alive member not done yet; finishes when none is left. */
static void resync_round(resync_t *r)
{
    uint64_t now = uv_now(r->loop);
    if (now >= r->deadline_ms) {
        resync_finish(r, true);
        return;
    }
    if (r->round_pending) return;
    topo_t *t = topo_slot_get(&r->rt->topo);
    /* Not in a ring with others yet (still joining): nothing to ask. */
    if (!t || t->self < 0 || t->n < 2 || !r->self[0]) {
        topo_unref(t);
        return;
    }
    r->round++;
    size_t waiting = 0;
    for (size_t i = 0; i < t->n; i++) {
        const topo_member_t *m = &t->members[i];
        if ((int32_t)i == t->self || m->peer.ss_family == 0 || resync_is_done(r, m->name)) continue;
        waiting++;
        /* A suspected member may be gone: not asked now, but not done
         * either (it answers when it is back, or is declared dead and
         * leaves the ring). */
        if (m->suspect) continue;
        resync_call_t *c = calloc(1, sizeof *c);
        if (!c) continue;
        c->r = r;
        c->round = r->round;
        snprintf(c->name, sizeof c->name, "%s", m->name);
        peer_msg_t req = {.type = PEER_MSG_SYNC, .flags = PEER_F_FORWARDED};
        req.name = (peer_bytes_t){(const uint8_t *)r->self, strlen(r->self)};
        memcpy(req.run, r->run, sizeof req.run);
        r->round_pending++;
        if (peer_pool_request(r->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, resync_reply, c) !=
            PEER_OK) {
            r->round_pending--;
            free(c);
        }
    }
    topo_unref(t);
    if (waiting == 0) resync_finish(r, false);
}

static void resync_poll_cb(uv_timer_t *t)
{
    resync_round(t->data);
}

/* Minority: fewer than half of the members the ring had lately. */
static void resync_judge_minority(resync_t *r, uint64_t now)
{
    if (r->members >= r->peak || now - r->peak_ms > RESYNC_PEAK_MS) {
        r->peak = r->members;
        r->peak_ms = now;
    }
    atomic_store(&r->rt->sync.peak, r->peak);
    /* Suspected members count as gone: a node cut off from the rest
     * suspects everyone long before it declares anyone dead (Lifeguard
     * makes it slower still), and it must not act as the cluster meanwhile. */
    size_t reachable = r->reachable < r->members ? r->reachable : r->members;
    bool minority = reachable * 2 < r->peak;
    if (minority == (atomic_load(&r->rt->sync.minority) != 0)) return;
    atomic_store(&r->rt->sync.minority, minority ? 1 : 0);
    if (minority)
        log_warn("this node sees less than half of the cluster; refusing writes",
                 "\"members\":%zu,\"reachable\":%zu,\"recently\":%zu", r->members, reachable, r->peak);
    else log_info("back in the majority", "\"members\":%zu,\"reachable\":%zu", r->members, reachable);
}

/* Notices a stall from the main loop's side: a tick that comes far later
 * than asked means the whole process stood still. */
static void resync_heartbeat_cb(uv_timer_t *t)
{
    resync_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    if (r->last_beat_ms && now - r->last_beat_ms > r->cfg.stall_ms) {
        log_warn("this node stood still; its keys may have changed elsewhere",
                 "\"stalled_ms\":%llu", (unsigned long long)(now - r->last_beat_ms));
        resync_begin(r, ROUTE_SYNC_STALL, now - r->last_beat_ms);
    }
    r->last_beat_ms = now;
    atomic_store(&r->rt->heartbeat_ms, now);
    if (atomic_load(&r->rt->sync.minority)) resync_judge_minority(r, now);
}

resync_t *resync_new(uv_loop_t *loop, route_t *rt, const peer_pool_config_t *pool_cfg, const resync_config_t *cfg)
{
    resync_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->loop = loop;
    r->rt = rt;
    r->cfg = *cfg;
    if (!r->cfg.poll_ms) r->cfg.poll_ms = 250;
    if (!r->cfg.stall_ms) r->cfg.stall_ms = 1000;
    r->pool = peer_pool_new(loop, pool_cfg);
    if (!r->pool) {
        free(r);
        return NULL;
    }
    uv_timer_init(loop, &r->poll);
    uv_timer_init(loop, &r->heartbeat);
    uv_timer_init(loop, &r->clock);
    r->poll.data = r->heartbeat.data = r->clock.data = r;
    closer_add(&r->closer, 4);
    rt->stall_ms = r->cfg.stall_ms;
    atomic_store(&rt->heartbeat_ms, uv_now(loop));
    uv_timer_start(&r->heartbeat, resync_heartbeat_cb, RESYNC_HEARTBEAT_MS, RESYNC_HEARTBEAT_MS);
    uv_timer_start(&r->clock, resync_clock_cb, RESYNC_CLOCK_MS, RESYNC_CLOCK_MS);
    return r;
}

void resync_set_self(resync_t *r, const char *name, const uint8_t *run)
{
    snprintf(r->self, sizeof r->self, "%s", name);
    memcpy(r->run, run, sizeof r->run);
}

/* True when every key this node owns has another owner: more than one
 * member and at least two replicas. */
static bool resync_others_hold_all(resync_t *r)
{
    topo_t *t = topo_slot_get(&r->rt->topo);
    bool others = t && t->n >= 2 && ring_replicas(t->ring) >= 2;
    topo_unref(t);
    return others;
}

void resync_begin(resync_t *r, route_sync_reason_t why, uint64_t away_ms)
{
    if (r->closing) return;
    uint64_t now = uv_now(r->loop);
    size_t held = store_entry_count(r->rt->store);
    if (why == ROUTE_SYNC_STALL && away_ms > r->cfg.grace_ms && held > 0 && resync_others_hold_all(r)) {
        /* Deletes made while it stood still are forgotten everywhere by
         * now: nothing could tell it which of its entries are gone, and
         * every key it owns has another owner that kept up. */
        size_t dropped = store_delete_matching(r->rt->store, "*", 1);
        atomic_fetch_add(&r->rt->sync.dropped, dropped);
        log_warn("away longer than --tombstone-grace; dropped what this node held",
                 "\"reason\":\"%s\",\"away_ms\":%llu,\"dropped\":%zu", route_sync_reason_name(why),
                 (unsigned long long)away_ms, dropped);
        atomic_store(&r->rt->verify_until_ms, now + r->cfg.verify_ms);
    }
    if (!r->active) {
        r->started_ms = now;
        r->why = why;
        log_info("syncing", "\"reason\":\"%s\"", route_sync_reason_name(why));
    }
    r->active = true;
    r->round++;
    r->round_pending = 0;
    r->ndone = 0;
    r->deadline_ms = now + r->cfg.timeout_ms;
    atomic_fetch_add(&r->rt->sync.started[why], 1);
    if (why == ROUTE_SYNC_STALL) atomic_store(&r->rt->woke, true);
    atomic_store(&r->rt->sync.syncing, 1);
    /* What it held from before may have been deleted elsewhere; an empty
     * L1 (a node forming a cluster) has nothing to doubt. */
    if (why != ROUTE_SYNC_START && held > 0) atomic_store(&r->rt->verify_until_ms, now + r->cfg.verify_ms);
    uv_timer_start(&r->poll, resync_poll_cb, 0, r->cfg.poll_ms);
}

void resync_member_left(resync_t *r)
{
    if (r->peak > 1) r->peak--;
    atomic_store(&r->rt->sync.peak, r->peak);
    resync_judge_minority(r, uv_now(r->loop));
}

void resync_reachable(resync_t *r, size_t reachable)
{
    r->reachable = reachable;
    resync_judge_minority(r, uv_now(r->loop));
}

void resync_ring_changed(resync_t *r, size_t kept, size_t added, size_t members, size_t reachable)
{
    r->members = members;
    r->reachable = reachable;
    resync_judge_minority(r, uv_now(r->loop));
    /* Not compared yet (just started, or was alone): right after this ring
     * is published (the caller publishes it next), not at the next tick,
     * since writes wait for it. */
    if (atomic_load(&r->rt->sync.clock) == ROUTE_CLOCK_UNCHECKED && !r->closing)
        uv_timer_start(&r->clock, resync_clock_cb, 0, RESYNC_CLOCK_MS);
    /* This node's previous view was at most half of the new one: it was on
     * the small side of a partition (or alone, joining) and the others may
     * have written and deleted its keys meanwhile. */
    if (added > 0 && added >= kept) resync_begin(r, ROUTE_SYNC_REJOIN, 0);
    /* A member that was done may have restarted: ask everyone again. */
    else if (r->active) r->ndone = 0;
}

bool resync_active(const resync_t *r)
{
    return r->active;
}

static void resync_timer_closed(uv_handle_t *h)
{
    resync_t *r = h->data;
    closer_closed(&r->closer);
}

void resync_close(resync_t *r, void (*done)(void *arg), void *arg)
{
    r->closing = true;
    r->active = false;
    r->round++;
    uv_timer_stop(&r->poll);
    uv_timer_stop(&r->heartbeat);
    uv_timer_stop(&r->clock);
    uv_close((uv_handle_t *)&r->poll, resync_timer_closed);
    uv_close((uv_handle_t *)&r->heartbeat, resync_timer_closed);
    uv_close((uv_handle_t *)&r->clock, resync_timer_closed);
    peer_pool_close(r->pool, closer_closed_cb, &r->closer);
    closer_finish(&r->closer, done, arg);
}

void resync_free(resync_t *r)
{
    if (!r) return;
    peer_pool_free(r->pool);
    free(r->done);
    free(r);
}
