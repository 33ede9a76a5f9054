/* dcache-node: configuration, the main loop (maintenance, metrics history,
 * signals) and the HTTP worker threads. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "autoconfig.h"
#include "node/api/api.h"
#include "node/api/api_audit.h"
#include "node/api/api_events.h"
#include "node/api/api_inbound.h"
#include "node/api/api_metrics.h"
#include "node/audit/audit.h"
#include "node/core/config.h"
#include "node/member/gossip.h"
#include "node/core/log.h"
#include "node/core/sbuf.h"
#include "node/metrics/metrics.h"
#include "node/metrics/metrics_history.h"
#include "node/origin/origin.h"
#include "node/warm/warm.h"
#include "node/store/store.h"
#include "node/core/sysinfo.h"
#include "node/l2/l2_drainer.h"
#include "node/l2/l2_sentinel.h"
#include "node/member/topo.h"
#include "node/route/repair.h"
#include "node/route/resync.h"
#include "node/worker.h"

#define MAINTAIN_INTERVAL_MS 100
#define MAINTAIN_BUDGET_US 2000

typedef struct node {
    config_t cfg;
    store_t *store;
    metrics_t metrics;
    metrics_history_t *history;
    api_t api;
    worker_t *workers;
    unsigned nworkers;
    unsigned next_peer_worker;   /* round robin of peer connections handed over */
    uv_loop_t *loop;
    uv_timer_t maintain, sample, tick;
    uv_signal_t sigterm, sigint, sighup;
    bool stopping;
    gossip_t *gossip;
    seal_keyring_t keyring;      /* the cluster key(s): gossip and peer channel */
    char *self_name;             /* published to the workers through api.route.self_name */
    /* The ring: rebuilt from gossip a moment after membership changes. */
    uv_timer_t ring_timer;
    uint64_t ring_version;
    uint8_t ring_digest[32];     /* of the member set last published */
    uint64_t suspects;           /* hash of which of them were suspected then */
    topo_t *topo;                /* the ring last published (own reference) */
    handoff_t *handoff;
    resync_t *resync;            /* catching up after a start, a stall or a rejoin */
    audit_t *audit;              /* the audit trail's writer */
    api_events_relay_t *relay;   /* this node's events to the other members' feeds */
    api_inbound_t *inbound;      /* --invalidate-listen */
    repair_t *repair;            /* anti-entropy with the other owners */
    uv_timer_t prev_timer;       /* forgets the previous ring once a change is old */
    l2_shared_t l2;              /* Redis as L2 (enabled with --redis) */
    l2_drainer_t *drainer;       /* journal mode: replays the journal */
    l2_sentinel_t *sentinel;     /* --redis-sentinel: finds and follows the master */
    origin_t *origin;            /* --origins: read-through loads (its own thread) */
    warm_t *warm;                /* warming jobs */
    _Atomic(warm_t *) warm_shared; /* the same, for workers' hot lists (NULL once it stops) */
    uint64_t ticks;
} node_t;

/* After a ring change, new owners ask previous owners for keys they miss
 * for this long (and for as long as this node's own handoff runs). */
#define NODE_PREV_RING_MS 30000

#define NODE_RING_DEBOUNCE_MS 20

static void node_maintain_cb(uv_timer_t *t)
{
    node_t *n = t->data;
    store_maintain(n->store, MAINTAIN_BUDGET_US);
}

static void node_sample_cb(uv_timer_t *t)
{
    node_t *n = t->data;
    api_metrics_sample(&n->api);
}

#define NODE_TICK_MS 1000
#define NODE_HOT_EVERY 5         /* ticks between sharing this node's hot keys */
#define NODE_HOT_LOCAL 256       /* keys of this node's merged list kept for warming */

/* This node's hot keys (the workers' lists merged) for warming, and the
 * first of them shared with the other members. */
static void node_hot_share(node_t *n)
{
    struct hotkeys *hs[API_MAX_WORKERS];
    size_t k = api_hotkeys(&n->api, hs);
    hotkeys_entry_t *top = malloc(NODE_HOT_LOCAL * sizeof *top);
    if (!top || !k || !n->warm) {
        free(top);
        return;
    }
    size_t m = hotkeys_merge(hs, k, top, NODE_HOT_LOCAL);
    warm_hot_local(warm_predicted(n->warm), top, m);
    if (m && n->api.feed.events) {
        sbuf_t b;
        sbuf_init(&b);
        warm_hot_event(route_self_name(&n->api.route), top, m, &b);
        if (!b.failed) api_events_publish(&n->api.feed, "hot", b.data, b.len, true);
        sbuf_free(&b);
    }
    free(top);
}

static void node_tick_cb(uv_timer_t *t)
{
    node_t *n = t->data;
    api_metrics_tick(&n->api, NODE_TICK_MS);
    if (++n->ticks % NODE_HOT_EVERY == 0) node_hot_share(n);
}

static void node_hot_received(void *ctx, const char *json, size_t len)
{
    node_t *n = ctx;
    warm_t *w = atomic_load(&n->warm_shared);
    if (w) warm_hot_remote(warm_predicted(w), json, len);
}

static void node_gossip_closed(void *arg)
{
    (void)arg;
}

/* After the leave had time to spread: stop serving and close everything. */
static void node_finish(void *arg)
{
    node_t *n = arg;
    for (unsigned i = 0; i < n->nworkers; i++) worker_stop(&n->workers[i]);
    if (n->gossip) gossip_stop(n->gossip, node_gossip_closed, n);
    uv_timer_stop(&n->maintain);
    uv_timer_stop(&n->sample);
    uv_timer_stop(&n->tick);
    uv_timer_stop(&n->ring_timer);
    uv_close((uv_handle_t *)&n->ring_timer, NULL);
    uv_timer_stop(&n->prev_timer);
    uv_close((uv_handle_t *)&n->prev_timer, NULL);
    if (n->handoff) handoff_close(n->handoff, node_gossip_closed, n);
    if (n->resync) resync_close(n->resync, node_gossip_closed, n);
    if (n->repair) repair_close(n->repair, node_gossip_closed, n);
    if (n->relay) api_events_relay_close(n->relay, node_gossip_closed, n);
    if (n->inbound) api_inbound_close(n->inbound, node_gossip_closed, n);
    if (n->drainer) l2_drainer_close(n->drainer, node_gossip_closed, n);
    if (n->sentinel) l2_sentinel_close(n->sentinel, node_gossip_closed, n);
    if (n->warm) {
        atomic_store(&n->api.warm, NULL);
        atomic_store(&n->warm_shared, NULL);
        warm_close(n->warm, node_gossip_closed, n);
    }
    uv_close((uv_handle_t *)&n->maintain, NULL);
    uv_close((uv_handle_t *)&n->sample, NULL);
    uv_close((uv_handle_t *)&n->tick, NULL);
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    uv_close((uv_handle_t *)&n->sighup, NULL);
}

/* --origins FILE again, its origins and its jobs: a part that does not
 * parse leaves what is in force, and says why. */
static void node_reload_origins(node_t *n)
{
    char err[512], esc[600];
    int64_t started = sysinfo_now_ms();
    bool ok = origin_reload(n->origin, n->cfg.origins, err, sizeof err);
    audit_record_t rec = {.time_ms = started, .action = AUDIT_ORIGINS_RELOAD, .matched = -1, .invalidated = -1,
                          .status = ok ? 200 : 500};
    snprintf(rec.actor, sizeof rec.actor, "SIGHUP");
    snprintf(rec.result, sizeof rec.result, "%s", ok ? "ok" : "origins_file_refused");
    if (ok) {
        origin_set_t *set = origin_current(n->origin);
        log_info("origins reloaded", "\"origins\":%zu", set ? set->n : 0);
        origin_set_unref(set);
    } else {
        log_error("origins file not reloaded; the origins in force stay", "\"error\":\"%s\"",
                  log_escape(err, esc, sizeof esc));
    }
    if (n->warm) {
        if (warm_reload(n->warm, n->cfg.origins, err, sizeof err)) {
            log_info("warming jobs reloaded", "\"jobs\":%lld", (long long)atomic_load(&warm_stats(n->warm)->jobs));
        } else {
            log_error("warming jobs not reloaded; the jobs in force stay", "\"error\":\"%s\"",
                      log_escape(err, esc, sizeof esc));
            rec.status = 500;
            snprintf(rec.result, sizeof rec.result, "jobs_refused");
        }
    }
    rec.duration_us = (uint64_t)(sysinfo_now_ms() - started) * 1000;
    api_audit_publish(&n->api, &rec, NULL);
}

/* A warming run started, moved or ended: the event feed shows it (to every
 * member's), the trail keeps its end. */
static void node_warm_run(void *ctx, const warm_run_info_t *r, bool ended)
{
    node_t *n = ctx;
    sbuf_t b;
    sbuf_init(&b);
    warm_run_json(r, &b);
    if (!b.failed) api_events_publish(&n->api.feed, "warm", b.data, b.len, true);
    sbuf_free(&b);
    if (!ended) return;
    audit_record_t rec = {.time_ms = r->started_ms, .action = AUDIT_WARM, .key_count = r->total,
                          .matched = (int64_t)r->loaded, .invalidated = -1,
                          .status = strcmp(r->state, "done") == 0 ? 200 : 500};
    rec.duration_us = (uint64_t)(r->ended_ms - r->started_ms) * 1000;
    snprintf(rec.request_id, sizeof rec.request_id, "%.47s", r->id);
    snprintf(rec.actor, sizeof rec.actor, "%.71s", r->trigger);
    snprintf(rec.result, sizeof rec.result, "%s", strcmp(r->state, "done") == 0 ? "ok" : r->state);
    audit_submit(n->audit, &rec);
}

/* SIGHUP rereads the tokens file and the origins file (and never stops
 * the node, as its default action would). */
static void node_sighup_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    node_t *n = s->data;
    if (n->origin) node_reload_origins(n);
    if (!n->cfg.tokens[0]) {
        if (!n->origin) log_info("SIGHUP: nothing to reload (no --tokens, no --origins)", NULL);
        return;
    }
    char err[512], esc[600];
    int64_t started = sysinfo_now_ms();
    bool ok = api_auth_reload(&n->api.auth, err, sizeof err);
    if (ok)
        log_info("tokens reloaded", "\"tokens\":%lld", (long long)atomic_load(&n->api.auth.stats.tokens));
    else
        log_error("tokens file not reloaded; the tokens in force stay", "\"error\":\"%s\"",
                  log_escape(err, esc, sizeof esc));
    audit_record_t rec = {.time_ms = started, .action = AUDIT_TOKENS_RELOAD, .matched = -1,
                          .invalidated = ok ? (int64_t)atomic_load(&n->api.auth.stats.tokens) : -1,
                          .status = ok ? 200 : 500};
    rec.duration_us = (uint64_t)(sysinfo_now_ms() - started) * 1000;
    snprintf(rec.actor, sizeof rec.actor, "SIGHUP");
    snprintf(rec.result, sizeof rec.result, "%s", ok ? "ok" : "tokens_file_refused");
    api_audit_publish(&n->api, &rec, NULL);
}

static void node_signal_cb(uv_signal_t *s, int signum)
{
    node_t *n = s->data;
    if (n->stopping) return;
    n->stopping = true;
    log_info("shutting down", "\"signal\":\"%s\"", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    atomic_store(&n->api.draining, true);
    atomic_store(&n->api.route.draining, true);
    /* Tell the cluster first, so nobody takes our silence for a failure. */
    if (n->gossip) gossip_leave(n->gossip, node_finish, n);
    else node_finish(n);
}

/* The cluster key: --cluster-key, or every key of --cluster-keyring. */
static bool node_load_keyring(const config_t *cfg, seal_keyring_t *ring)
{
    seal_keyring_init(ring);
    if (cfg->cluster_key[0]) {
        uint8_t key[SEAL_KEY_LEN];
        if (!seal_key_from_base64(cfg->cluster_key, key)) {
            fprintf(stderr, "dcache-node: --cluster-key must be base64 of 32 bytes (openssl rand -base64 32)\n");
            return false;
        }
        seal_keyring_add(ring, key);
        sodium_memzero(key, sizeof key);
        return true;
    }
    if (!cfg->cluster_keyring[0]) return true;
    FILE *f = fopen(cfg->cluster_keyring, "r");
    if (!f) {
        fprintf(stderr, "dcache-node: cannot read --cluster-keyring %s: %s\n", cfg->cluster_keyring, strerror(errno));
        return false;
    }
    char text[8192];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    char err[256];
    bool ok = seal_keyring_parse(ring, text, len, err, sizeof err);
    sodium_memzero(text, sizeof text);
    if (!ok) fprintf(stderr, "dcache-node: --cluster-keyring %s: %s\n", cfg->cluster_keyring, err);
    return ok;
}

static void node_prev_timer_cb(uv_timer_t *t)
{
    node_t *n = t->data;
    if (n->handoff && handoff_running(n->handoff)) {
        uv_timer_start(&n->prev_timer, node_prev_timer_cb, 5000, 0);
        return;
    }
    topo_slot_clear_prev(&n->api.route.topo);
}

typedef struct node_members {
    topo_member_t *m;
    size_t n, cap;
    bool failed;
} node_members_t;

static void node_collect_member(const swim_member_view_t *v, void *ctx)
{
    node_members_t *c = ctx;
    if (v->state != SWIM_STATE_ALIVE && v->state != SWIM_STATE_SUSPECT) return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        topo_member_t *m = realloc(c->m, cap * sizeof *m);
        if (!m) {
            c->failed = true;
            return;
        }
        c->m = m;
        c->cap = cap;
    }
    topo_member_t *m = &c->m[c->n++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", v->info->name);
    memcpy(m->run, v->info->id.b, sizeof m->run);
    snprintf(m->zone, sizeof m->zone, "%s", v->info->zone);
    if (v->info->peer.family) gossip_sockaddr(&v->info->peer, &m->peer);
    gossip_addr_text(&v->info->peer, m->peer_text, sizeof m->peer_text);
    gossip_addr_text(&v->info->http, m->http_text, sizeof m->http_text);
    m->suspect = v->state == SWIM_STATE_SUSPECT;
}

static int node_member_cmp(const void *a, const void *b)
{
    return strcmp(((const topo_member_t *)a)->name, ((const topo_member_t *)b)->name);
}

/* Publishes a new ring when the set of members (or their runs, addresses
 * or zones) changed since the last one. */
static void node_rebuild_ring(node_t *n)
{
    node_members_t c = {0};
    gossip_foreach(n->gossip, node_collect_member, &c);
    if (c.failed || c.n == 0) {
        free(c.m);
        if (c.failed) log_error("out of memory building the ring; keeping the previous one", NULL);
        return;
    }
    qsort(c.m, c.n, sizeof *c.m, node_member_cmp);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof n->ring_digest);
    for (size_t i = 0; i < c.n; i++) {
        crypto_generichash_update(&st, (const unsigned char *)c.m[i].name, sizeof c.m[i].name);
        crypto_generichash_update(&st, c.m[i].run, sizeof c.m[i].run);
        crypto_generichash_update(&st, (const unsigned char *)c.m[i].zone, sizeof c.m[i].zone);
        crypto_generichash_update(&st, (const unsigned char *)c.m[i].peer_text, sizeof c.m[i].peer_text);
    }
    uint8_t digest[sizeof n->ring_digest];
    crypto_generichash_final(&st, digest, sizeof digest);
    uint64_t suspects = 0;
    for (size_t i = 0; i < c.n; i++)
        if (c.m[i].suspect) suspects = (suspects ^ (i + 1)) * 0x9e3779b97f4a7c15ull;
    bool same_members = n->ring_version && memcmp(digest, n->ring_digest, sizeof digest) == 0;
    if (same_members && suspects == n->suspects) {
        free(c.m);
        return;
    }
    topo_t *t = topo_build(c.m, c.n, n->self_name, (unsigned)n->cfg.replicas, n->ring_version + 1);
    free(c.m);
    if (!t) {
        log_error("cannot build the ring; keeping the previous one", NULL);
        return;
    }
    n->suspects = suspects;
    n->ring_version++;
    topo_carry_heard(t, n->topo);
    if (same_members) {
        /* Only suspicion changed: the owners are the same, nothing moves,
         * but whoever reads the ring (sync, repair, reads that skip
         * suspected owners) must see who is suspected now: a member
         * left marked suspected is never asked again. */
        log_debug("ring suspicion updated", "\"version\":%llu", (unsigned long long)n->ring_version);
        topo_unref(n->topo);
        n->topo = topo_ref(t);
        topo_slot_replace(&n->api.route.topo, t);
        if (n->resync) resync_reachable(n->resync, topo_reachable(t));
        return;
    }
    memcpy(n->ring_digest, digest, sizeof digest);
    if (n->handoff) handoff_start(n->handoff, n->topo, t);
    if (n->resync) {
        size_t kept = 0, added = 0;
        for (size_t i = 0; i < t->n; i++) {
            if ((int32_t)i == t->self) continue;
            bool had = false;
            for (size_t j = 0; n->topo && j < n->topo->n && !had; j++)
                had = topo_same_member(&t->members[i], &n->topo->members[j]);
            if (had) kept++;
            else added++;
        }
        resync_ring_changed(n->resync, kept, added, t->n, topo_reachable(t));
    }
    topo_unref(n->topo);
    n->topo = topo_ref(t);
    uv_timer_start(&n->prev_timer, node_prev_timer_cb, NODE_PREV_RING_MS, 0);
    ring_stats_t rs;
    ring_get_stats(t->ring, &rs);
    log_info("ring updated", "\"version\":%llu,\"members\":%zu,\"replicas\":%u,\"balance\":%.3f",
             (unsigned long long)n->ring_version, rs.members, rs.replicas, rs.balance);
    {
        char ev[256];
        int len = snprintf(ev, sizeof ev,
                           "{\"version\":%llu,\"members\":%zu,\"replicas\":%u,\"balance\":%.3f,\"time_ms\":%lld}",
                           (unsigned long long)n->ring_version, rs.members, rs.replicas, rs.balance,
                           (long long)sysinfo_now_ms());
        api_events_publish(&n->api.feed, "ring", ev, (size_t)len, false);
    }
    topo_slot_publish(&n->api.route.topo, t);
    if (n->warm) warm_ring_changed(n->warm);
}

static void node_ring_timer_cb(uv_timer_t *t)
{
    node_rebuild_ring(t->data);
}

static void node_gossip_heard(const char *name, void *ctx)
{
    node_t *n = ctx;
    topo_note_heard(n->topo, name, uv_now(n->loop));
}

/* A membership change on /api/events. */
static void node_member_event(node_t *n, const swim_event_t *ev)
{
    static const char *const what[] = {"joined", "updated", "suspect", "alive", "dead", "left", "reaped",
                                       "declared_dead"};
    static const char *const states[] = {"alive", "suspect", "dead", "left"};
    if ((size_t)ev->type >= sizeof what / sizeof what[0]) return;
    char gaddr[64];
    gossip_addr_text(&ev->member->info->gossip, gaddr, sizeof gaddr);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"node\":");
    sbuf_json_string(&b, n->self_name ? n->self_name : "", n->self_name ? strlen(n->self_name) : 0);
    sbuf_puts(&b, ",\"member\":");
    sbuf_json_string(&b, ev->member->info->name, strlen(ev->member->info->name));
    sbuf_printf(&b, ",\"event\":\"%s\",\"state\":\"%s\",\"gossip\":\"%s\",\"incarnation\":%llu,\"time_ms\":%lld}",
                what[ev->type], (size_t)ev->member->state < 4 ? states[ev->member->state] : "unknown", gaddr,
                (unsigned long long)ev->member->incarnation, (long long)sysinfo_now_ms());
    if (!b.failed) api_events_publish(&n->api.feed, "member", b.data, b.len, false);
    sbuf_free(&b);
}

static void node_gossip_event(const swim_event_t *ev, void *ctx)
{
    node_t *n = ctx;
    if (n->stopping) return;
    node_member_event(n, ev);
    if (ev->type == SWIM_EV_LEFT && n->resync) resync_member_left(n->resync);
    /* The cluster wrote and deleted this node's keys elsewhere meanwhile,
     * even if this node's own view never lost anyone (a one-sided
     * partition, a slow failure detector on the cut-off side). */
    if (ev->type == SWIM_EV_DECLARED_DEAD && n->resync) resync_begin(n->resync, ROUTE_SYNC_DECLARED_DEAD, 0);
    if (!uv_is_active((uv_handle_t *)&n->ring_timer))
        uv_timer_start(&n->ring_timer, node_ring_timer_cb, NODE_RING_DEBOUNCE_MS, 0);
}

/* A connection to the cluster port that opened with the peer channel's
 * preamble: a worker serves it (round robin; the next one while a worker
 * is closing). */
static void node_divert_peer(void *ctx, uv_os_sock_t fd, const uint8_t *data, size_t len)
{
    node_t *n = ctx;
    for (unsigned i = 0; i < n->nworkers; i++) {
        worker_t *w = &n->workers[n->next_peer_worker++ % n->nworkers];
        if (worker_adopt_peer(w, fd, data, len) == 0) return;
    }
    close(fd);
}

static int node_start_gossip(node_t *n, int http_port, int peer_port)
{
    gossip_config_t gc;
    memset(&gc, 0, sizeof gc);
    gc.keyring = n->keyring;
    gc.peer_port = peer_port;
    if (n->cfg.peer_shared) {
        /* One port per node: the peer channel rides on gossip's TCP listener. */
        gc.peer_port = GOSSIP_PEER_SHARED;
        gc.divert = node_divert_peer;
        gc.divert_ctx = n;
        gc.divert_byte = PEER_STREAM_PREAMBLE;
    }
    gc.name = n->cfg.name;
    gc.bind_host = n->cfg.cluster_host[0] ? n->cfg.cluster_host : n->cfg.http_host;
    gc.port = (int)n->cfg.cluster_port;
    gc.advertise_host = n->cfg.advertise[0] ? n->cfg.advertise : gc.bind_host;
    gc.seeds = n->cfg.seeds;
    gc.zone = n->cfg.zone;
    gc.http_host = n->cfg.http_host;
    gc.http_port = http_port;
    swim_config_default(&gc.swim);
    gc.swim.probe_interval_ms = (uint32_t)n->cfg.probe_interval_ms;
    gc.swim.probe_timeout_ms = (uint32_t)n->cfg.probe_timeout_ms;
    gc.swim.gossip_interval_ms = (uint32_t)n->cfg.gossip_interval_ms;
    gc.swim.push_pull_interval_ms = (uint32_t)n->cfg.push_pull_interval_ms;
    gc.swim.suspicion_mult = (uint32_t)n->cfg.suspicion_mult;
    gc.swim.indirect_checks = (uint32_t)n->cfg.indirect_checks;
    gc.swim.gossip_nodes = (uint32_t)n->cfg.gossip_nodes;
    int rc = gossip_start(&n->gossip, n->loop, &gc);
    sodium_memzero(&gc.keyring, sizeof gc.keyring);
    if (rc != 0) return rc;
    if (n->cfg.peer_shared) {
        char esc[256];
        log_info("peer listening", "\"addr\":\"%s:%d\",\"port\":%d,\"shared\":\"cluster port\"",
                 log_escape(gc.bind_host, esc, sizeof esc), gossip_port(n->gossip), gossip_port(n->gossip));
    }
    n->self_name = strdup(gossip_name(n->gossip));
    if (!n->self_name) return UV_ENOMEM;
    atomic_store(&n->api.route.self_name, n->self_name);
    if (n->audit) audit_set_node(n->audit, n->self_name);
    atomic_store(&n->api.gossip, n->gossip);
    gossip_subscribe(n->gossip, node_gossip_event, n);
    gossip_on_heard(n->gossip, node_gossip_heard, n);
    if (n->resync) resync_set_self(n->resync, n->self_name, gossip_run(n->gossip));
    if (n->repair) repair_set_self(n->repair, n->self_name, gossip_run(n->gossip));
    node_rebuild_ring(n);
    return 0;
}

/* L2 from --redis; the journal when --l2-write-mode journal. */
static bool node_setup_l2(node_t *n)
{
    const config_t *c = &n->cfg;
    if (!c->redis[0] && !c->redis_sentinel[0]) return true;
    l2_shared_t *s = &n->l2;
    s->enabled = true;
    snprintf(s->prefix, sizeof s->prefix, "%s", c->l2_prefix);
    s->prefix_len = strlen(s->prefix);
    s->write_mode = strcmp(c->l2_write_mode, "journal") == 0 ? L2_WRITE_JOURNAL : L2_WRITE_SYNC;
    s->tombstone_ttl_ms = c->l2_tombstone_ttl_ms;
    const config_redis_t *t = &c->redis_target;
    s->redis = (redis_uv_config_t){.host = t->host,
                                   .port = t->port,
                                   .username = t->user[0] ? t->user : NULL,
                                   .password = t->password[0] ? t->password : NULL,
                                   .db = t->db,
                                   .connect_timeout_ms = c->l2_connect_timeout_ms,
                                   .command_timeout_ms = c->l2_timeout_ms,
                                   .max_pending = (unsigned)c->l2_pipeline};
    /* With Sentinel the master's address comes from it, later. */
    if (!c->redis_sentinel[0]) l2_shared_set_master(s, t->host, t->port);
    if (s->write_mode == L2_WRITE_JOURNAL) {
        char err[512];
        if (journal_open(&s->journal, c->l2_journal_dir, c->l2_journal_max, err, sizeof err) != 0) {
            fprintf(stderr, "dcache-node: --l2-journal-dir: %s\n", err);
            return false;
        }
        if (journal_records(s->journal))
            log_info("journal holds writes to replay", "\"records\":%llu",
                     (unsigned long long)journal_records(s->journal));
    }
    n->api.route.l2 = s;
    return true;
}

static int node_start_workers(node_t *n)
{
    n->nworkers = n->cfg.workers ? (unsigned)n->cfg.workers : sysinfo_cores();
    n->workers = calloc(n->nworkers, sizeof *n->workers);
    if (!n->workers) return UV_ENOMEM;
    http_limits_t limits;
    http_limits_default(&limits);
    limits.max_header_bytes = n->cfg.max_header_size;
    limits.max_body_bytes = n->cfg.max_request_body;
    limits.header_timeout_ms = n->cfg.header_timeout_ms;
    limits.idle_timeout_ms = n->cfg.idle_timeout_ms;
    limits.max_connections = n->cfg.max_connections;
    int port = (int)n->cfg.http_port, peer_port = (int)n->cfg.peer_port;
    const char *peer_host = n->cfg.cluster_host[0] ? n->cfg.cluster_host : n->cfg.http_host;
    struct {
        const char *what, *host;
        int port;
    } probes[] = {{"http", n->cfg.http_host, port}, {"peer", peer_host, peer_port}};
    /* A shared peer channel has no port of its own (gossip binds it later). */
    for (size_t i = 0; i < (n->cfg.peer_shared ? 1u : 2u); i++) {
        int rc = http_probe_port(probes[i].host, probes[i].port);
        if (rc != 0) {
            char esc[256];
            log_error("cannot listen", "\"what\":\"%s\",\"addr\":\"%s:%d\",\"error\":\"%s\"", probes[i].what,
                      log_escape(probes[i].host, esc, sizeof esc), probes[i].port, uv_strerror(rc));
            n->nworkers = 0;
            return rc;
        }
    }
    for (unsigned i = 0; i < n->nworkers; i++) {
        worker_t *w = &n->workers[i];
        w->index = (int)i;
        w->api = &n->api;
        w->host = n->cfg.http_host;
        w->port = port;
        w->peer_host = peer_host;
        w->peer_port = peer_port;
        w->peer_shared = n->cfg.peer_shared;
        w->limits = limits;
        int rc = worker_start(w);
        if (rc != 0) {
            char esc[256];
            log_error("cannot listen", "\"addr\":\"%s:%d\",\"error\":\"%s\"",
                      log_escape(n->cfg.http_host, esc, sizeof esc), port, uv_strerror(rc));
            for (unsigned k = 0; k < i; k++) {
                worker_stop(&n->workers[k]);
                worker_join(&n->workers[k]);
            }
            n->nworkers = 0;
            return rc;
        }
        /* Port 0: the first worker picked one; the others share it. */
        port = w->port;
        peer_port = w->peer_port;
    }
    char esc[256];
    log_info("http listening", "\"addr\":\"%s:%d\",\"port\":%d,\"workers\":%u",
             log_escape(n->cfg.http_host, esc, sizeof esc), port, port, n->nworkers);
    if (!n->cfg.peer_shared)
        log_info("peer listening", "\"addr\":\"%s:%d\",\"port\":%d",
                 log_escape(n->workers[0].peer_host, esc, sizeof esc), peer_port, peer_port);
    return 0;
}

int main(int argc, char **argv)
{
    node_t n;
    memset(&n, 0, sizeof n);
    config_result_t cr = config_load(&n.cfg, argc, argv, NULL, stdout, stderr);
    if (cr != CONFIG_OK) {
        config_free(&n.cfg);
        return cr == CONFIG_EXIT_OK ? 0 : 2;
    }
    log_level_t lvl;
    log_parse_level(n.cfg.log_level, &lvl);
    log_set_level(lvl);
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0) {
        log_error("libsodium failed to initialise", NULL);
        config_free(&n.cfg);
        return 1;
    }
    if (!node_load_keyring(&n.cfg, &n.keyring)) {
        config_free(&n.cfg);
        return 2;
    }
    if (n.keyring.nkeys == 0)
        log_warn("cluster traffic is NOT authenticated (no --cluster-key): anyone who reaches the cluster port can "
                 "join the cluster and write to it; fine on loopback, otherwise give every node the same "
                 "--cluster-key", NULL);
    if (!n.cfg.tokens[0]) {
        char hesc[300];
        log_warn("the HTTP API is open (no --tokens): anyone who reaches it can read, write and wipe the cache",
                 "\"http_host\":\"%s\"", log_escape(n.cfg.http_host, hesc, sizeof hesc));
    }

    store_config_t sc = {
        .max_entries = (size_t)n.cfg.l1_max_entries,
        .max_bytes = (size_t)n.cfg.l1_max_memory,
        .max_value_bytes = (size_t)n.cfg.max_value_size,
        .policy = strcmp(n.cfg.eviction, "lfu") == 0 ? STORE_EVICT_LFU : STORE_EVICT_LRU,
    };
    n.store = store_new(&sc);
    metrics_init(&n.metrics);
    n.history = metrics_history_new(n.cfg.metrics_interval_ms);
    if (!n.store || !n.history) {
        log_error("out of memory at start", NULL);
        metrics_history_free(n.history);
        store_free(n.store);
        config_free(&n.cfg);
        return 1;
    }
    char aerr[512];
    char *inbound_err = NULL; /* --invalidate-listen refused: said once the loop is set up */
    if (!api_init(&n.api, &n.cfg, n.store, &n.metrics, n.history, aerr, sizeof aerr)) {
        fprintf(stderr, "dcache-node: --tokens: %s\n", aerr);
        metrics_history_free(n.history);
        store_free(n.store);
        config_free(&n.cfg);
        return 2;
    }
    {
        audit_config_t ac = {.node = n.cfg.name, .dir = n.cfg.audit_dir, .file_max_bytes = n.cfg.audit_file_size,
                             .files = (unsigned)n.cfg.audit_files, .db = n.cfg.audit_db};
        char err[512];
        if (audit_open(&n.audit, &ac, err, sizeof err) != 0) {
            fprintf(stderr, "dcache-node: %s%s\n", strncmp(err, "--", 2) == 0 ? "" : "--audit-dir: ", err);
            api_destroy(&n.api);
            metrics_history_free(n.history);
            store_free(n.store);
            config_free(&n.cfg);
            return 2;
        }
        n.api.audit = n.audit;
    }
    if (n.cfg.origins[0]) {
        char err[512];
        n.origin = origin_new();
        if (!n.origin || !origin_reload(n.origin, n.cfg.origins, err, sizeof err) || origin_start(n.origin) != 0) {
            fprintf(stderr, "dcache-node: --origins: %s\n", n.origin ? err : "out of memory");
            origin_free(n.origin);
            audit_close(n.audit);
            api_destroy(&n.api);
            metrics_history_free(n.history);
            store_free(n.store);
            config_free(&n.cfg);
            return 2;
        }
        n.api.route.origin = n.origin;
    }
    n.api.route.refresh_beta = n.cfg.refresh_beta_value;
    l2_shared_init(&n.l2);
    if (!node_setup_l2(&n)) {
        origin_stop(n.origin);
        origin_free(n.origin);
        audit_close(n.audit);
        l2_shared_destroy(&n.l2);
        api_destroy(&n.api);
        metrics_history_free(n.history);
        store_free(n.store);
        config_free(&n.cfg);
        return 2;
    }

    n.loop = uv_default_loop();
    uv_timer_init(n.loop, &n.maintain);
    uv_timer_init(n.loop, &n.sample);
    uv_timer_init(n.loop, &n.tick);
    n.maintain.data = n.sample.data = n.tick.data = &n;
    uv_signal_init(n.loop, &n.sigterm);
    uv_signal_init(n.loop, &n.sigint);
    uv_signal_init(n.loop, &n.sighup);
    n.sigterm.data = n.sigint.data = n.sighup.data = &n;

    n.api.route.keyring = &n.keyring;
    uv_timer_init(n.loop, &n.ring_timer);
    uv_timer_init(n.loop, &n.prev_timer);
    n.ring_timer.data = n.prev_timer.data = &n;
    {
        peer_pool_config_t pc = {.conn = {.keyring = &n.keyring, .stats = &n.api.route.peer_stats},
                                 .connect_timeout_ms = n.cfg.peer_connect_timeout_ms,
                                 .request_timeout_ms = n.cfg.peer_timeout_ms * 5,
                                 .heard = route_pool_heard,
                                 .heard_ctx = &n.api.route};
        handoff_config_t hc = {.rate = n.cfg.handoff_rate};
        n.handoff = handoff_new(n.loop, n.store, n.api.route.tomb, &pc, &hc, &n.api.route.handoff);
        /* A stall longer than a peer timeout: forwarders gave up on us and
         * wrote elsewhere. */
        resync_config_t rc = {.timeout_ms = n.cfg.sync_timeout_ms,
                              .stall_ms = n.cfg.peer_timeout_ms > 1000 ? n.cfg.peer_timeout_ms : 1000,
                              .grace_ms = n.cfg.tombstone_grace_ms,
                              .verify_ms = n.cfg.tombstone_grace_ms > 2 * n.cfg.repair_interval_ms
                                               ? n.cfg.tombstone_grace_ms
                                               : 2 * n.cfg.repair_interval_ms};
        pc.request_timeout_ms = n.cfg.peer_timeout_ms;
        n.resync = resync_new(n.loop, &n.api.route, &pc, &rc);
        /* A node told where the cluster is holds nothing yet of what it
         * will own; one that founds a cluster owns nothing anyone wrote.
         * Before the workers take their first request: until gossip runs
         * there is no ring, and a read would be a confident 404. */
        if (n.resync && n.cfg.seeds[0]) resync_begin(n.resync, ROUTE_SYNC_START, 0);
        repair_config_t rpc = {.interval_ms = n.cfg.repair_interval_ms};
        pc.request_timeout_ms = n.cfg.peer_timeout_ms * 5;
        n.repair = repair_new(n.loop, &n.api.route, &pc, &rpc);
        pc.request_timeout_ms = n.cfg.peer_timeout_ms;
        n.relay = api_events_relay_new(n.loop, &n.api.feed, &pc);
        if (!n.relay) log_warn("no event relay (out of memory): /api/events shows this node's events only", NULL);
        char ierr[300];
        n.inbound = api_inbound_new(n.loop, &n.api, ierr, sizeof ierr);
        if (ierr[0]) inbound_err = strdup(ierr);
        warm_hooks_t wh = {.on_run = node_warm_run, .ctx = &n};
        if (!inbound_err) {
            n.warm = warm_new(n.loop, &n.api.route, n.cfg.origins[0] ? n.cfg.origins : NULL, &wh, ierr, sizeof ierr);
            if (!n.warm) {
                char msg[600];
                snprintf(msg, sizeof msg, "--origins: %s", ierr);
                inbound_err = strdup(msg);
            }
            atomic_store(&n.api.warm, n.warm);
            atomic_store(&n.warm_shared, n.warm);
            n.api.feed.on_hot = node_hot_received;
            n.api.feed.on_hot_ctx = &n;
        }
    }
    if (n.l2.journal) n.drainer = l2_drainer_new(n.loop, &n.l2);
    if (n.l2.enabled && n.cfg.redis_sentinel[0]) {
        n.sentinel = l2_sentinel_new(n.loop, &n.l2, n.cfg.redis_sentinel, n.cfg.redis_master);
        if (!n.sentinel) log_error("--redis-sentinel names no usable sentinel", NULL);
    }
    int rc = 0;
    if (inbound_err) {
        fprintf(stderr, "dcache-node: %s\n", inbound_err);
        free(inbound_err);
        inbound_err = NULL;
        rc = 2;
        n.stopping = true;
        node_finish(&n);
        uv_run(n.loop, UV_RUN_DEFAULT);
        goto teardown;
    }
    if (!n.handoff || !n.resync || !n.repair || (n.l2.journal && !n.drainer) || (n.cfg.redis_sentinel[0] && !n.sentinel) ||
        node_start_workers(&n) != 0 ||
        node_start_gossip(&n, n.workers[0].port, n.workers[0].peer_port) != 0) {
        if (!n.handoff || !n.resync || !n.repair) log_error("out of memory at start", NULL);
        /* Close what did start, then fall through to the common teardown. */
        rc = 1;
        n.stopping = true;
        node_finish(&n);
        uv_run(n.loop, UV_RUN_DEFAULT);
        goto teardown;
    }
    char l2desc[300];
    if (n.l2.enabled && n.cfg.redis_sentinel[0])
        snprintf(l2desc, sizeof l2desc, "redis master %s via sentinels %.200s, %s writes", n.cfg.redis_master,
                 n.cfg.redis_sentinel, n.cfg.l2_write_mode);
    else if (n.l2.enabled)
        snprintf(l2desc, sizeof l2desc, "redis %s:%d db %d, %s writes", n.cfg.redis_target.host,
                 n.cfg.redis_target.port, n.cfg.redis_target.db, n.cfg.l2_write_mode);
    else snprintf(l2desc, sizeof l2desc, "disabled");
    char esc[600];
    log_info("node started",
             "\"version\":\"%s\",\"l1_max_entries\":%llu,\"l1_max_memory\":%llu,\"eviction\":\"%s\","
             "\"default_ttl_s\":%llu,\"l2\":\"%s\"",
             PACKAGE_VERSION, (unsigned long long)n.cfg.l1_max_entries, (unsigned long long)n.cfg.l1_max_memory,
             n.cfg.eviction, (unsigned long long)(n.cfg.default_ttl_ms / 1000), log_escape(l2desc, esc, sizeof esc));

    uv_timer_start(&n.maintain, node_maintain_cb, MAINTAIN_INTERVAL_MS, MAINTAIN_INTERVAL_MS);
    api_metrics_sample(&n.api);
    uv_timer_start(&n.sample, node_sample_cb, n.cfg.metrics_interval_ms, n.cfg.metrics_interval_ms);
    api_metrics_tick(&n.api, NODE_TICK_MS);
    uv_timer_start(&n.tick, node_tick_cb, NODE_TICK_MS, NODE_TICK_MS);
    uv_signal_start(&n.sigterm, node_signal_cb, SIGTERM);
    uv_signal_start(&n.sigint, node_signal_cb, SIGINT);
    uv_signal_start(&n.sighup, node_sighup_cb, SIGHUP);
    warm_start(n.warm);

    uv_run(n.loop, UV_RUN_DEFAULT);

teardown:
    for (unsigned i = 0; i < n.nworkers; i++) worker_join(&n.workers[i]);
    free(n.workers);
    /* After the workers: their clients are closed. */
    origin_stop(n.origin);
    origin_free(n.origin);
    uv_loop_close(n.loop);
    gossip_free(n.gossip);
    handoff_free(n.handoff);
    resync_free(n.resync);
    repair_free(n.repair);
    api_events_relay_free(n.relay);
    api_inbound_free(n.inbound);
    warm_free(n.warm);
    l2_drainer_free(n.drainer);
    l2_sentinel_free(n.sentinel);
    l2_shared_destroy(&n.l2);
    topo_unref(n.topo);
    audit_close(n.audit);
    api_destroy(&n.api);
    free(n.self_name);
    sodium_memzero(&n.keyring, sizeof n.keyring);
    metrics_history_free(n.history);
    store_free(n.store);
    log_info("stopped", NULL);
    config_free(&n.cfg);
    return rc;
}
