#include "node/route/route.h"

#include <stdlib.h>
#include <string.h>


#define ROUTE_COUNTER(F, name, labels, help) METRICS_ATOMIC_COUNTER(route_stats_t, F, name, labels, help)
static const metrics_desc_t route_metrics_rows[] = {
    ROUTE_COUNTER(forwarded[ROUTE_FWD_GET], "route_forwarded_total", "operation=\"get\"",
                  "Client requests sent on to an owner, by operation."),
    ROUTE_COUNTER(forwarded[ROUTE_FWD_PUT], "route_forwarded_total", "operation=\"put\"", ""),
    ROUTE_COUNTER(forwarded[ROUTE_FWD_DELETE], "route_forwarded_total", "operation=\"delete\"", ""),
    ROUTE_COUNTER(failovers, "route_failovers_total", NULL, "Owners that failed, so the next owner was tried."),
    ROUTE_COUNTER(unavailable, "route_unavailable_total", NULL, "Requests answered 503 because no owner answered."),
    ROUTE_COUNTER(coalesced, "route_coalesced_total", NULL, "GETs that joined a forwarded GET for the same key in flight."),
    ROUTE_COUNTER(replica_ok, "route_replica_writes_total", "result=\"ok\"",
                  "Writes sent to replicas, by result (skipped: the replica was down and a majority of the "
                  "members answered after the write began; down_no_majority: down, and no majority answered "
                  "(the small side of a partition?), so the write failed)."),
    ROUTE_COUNTER(replica_failed, "route_replica_writes_total", "result=\"failed\"", ""),
    ROUTE_COUNTER(replica_skipped, "route_replica_writes_total", "result=\"skipped\"", ""),
    ROUTE_COUNTER(replica_unskipped, "route_replica_writes_total", "result=\"down_no_majority\"", ""),
    ROUTE_COUNTER(majority_rounds, "route_majority_checks_total", NULL,
                  "Rounds of SYNCs to every member that writes with an owner down sent, to learn whether this "
                  "node is in touch with a majority before leaving the owner out."),
    ROUTE_COUNTER(writes_unreplicated, "route_writes_unreplicated_total", NULL,
                  "Writes refused with 503 because fewer owners than --write-acks stored them."),
    ROUTE_COUNTER(broadcasts, "route_invalidation_broadcasts_total", NULL,
                  "Invalidations of a key sent to members that do not own it."),
    ROUTE_COUNTER(fallbacks, "route_fallbacks_total", NULL,
                  "Misses at a new owner, right after a ring change, that asked the previous owners."),
    ROUTE_COUNTER(fallback_filled, "route_fallback_hits_total", NULL, "Fallbacks that found the key at a previous owner."),
    ROUTE_COUNTER(read_repairs, "route_read_repairs_total", NULL,
                  "Owners a checked read found holding an older copy, or none, that were sent the newest copy or delete."),
    METRICS_ATOMIC_GAUGE(route_stats_t, flights, "route_forwards_in_flight", NULL,
                         "Forwarded GETs in flight (bound: 65536 per worker)."),
    ROUTE_COUNTER(clock_refusals, "route_clock_drift_refusals_total", NULL,
                  "Versions from a clock more than --max-clock-drift ahead: replica writes refused, others not followed."),
    ROUTE_COUNTER(origin_fills, "route_origin_fills_total", NULL,
                  "Values loaded from an origin on a miss and stored (then sent to the other owners and Redis)."),
    ROUTE_COUNTER(origin_stale, "route_origin_stale_served_total", NULL,
                  "Copies past their TTL served (X-Cache: STALE) because the origin failed, inside stale_if_error."),
    ROUTE_COUNTER(origin_refreshes, "route_origin_refreshes_total", "result=\"started\"",
                  "Refresh-ahead: reads of a key near expiry that reloaded it from its origin early (XFetch)."),
    ROUTE_COUNTER(origin_refreshed, "route_origin_refreshes_total", "result=\"stored\"", ""),
};
const metrics_table_t route_metrics_table = METRICS_TABLE(route_metrics_rows);

static const char *const route_sync_reason_names[ROUTE_SYNC_REASONS] = {"start", "stall", "rejoin", "declared_dead"};

const char *route_sync_reason_name(route_sync_reason_t why)
{
    return why < ROUTE_SYNC_REASONS ? route_sync_reason_names[why] : "unknown";
}

static const metrics_desc_t route_sync_metrics_rows[] = {
    METRICS_ATOMIC_GAUGE(route_sync_stats_t, syncing, "syncing", NULL,
                         "1 while this node syncs: reads of its keys are checked against the other owners."),
    METRICS_ATOMIC_GAUGE(route_sync_stats_t, minority, "cluster_minority", NULL,
                         "1 while this node sees less than half of the members its ring had in the last minute."),
    METRICS_ATOMIC_GAUGE(route_sync_stats_t, clock, "clock_state", NULL,
                         "0: not compared with the other members' clocks yet, 1: within --max-clock-drift of most "
                         "of them, 2: apart (writes through this node are refused)."),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, clock_skews, "clock_skews_total", NULL,
                           "Times this node's clock was found more than --max-clock-drift apart from most members'."),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, started[ROUTE_SYNC_START], "sync_started_total", "reason=\"start\"",
                           "Times this node started syncing (it may hold less than it owns), by reason."),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, started[ROUTE_SYNC_STALL], "sync_started_total", "reason=\"stall\"", ""),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, started[ROUTE_SYNC_REJOIN], "sync_started_total", "reason=\"rejoin\"", ""),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, started[ROUTE_SYNC_DECLARED_DEAD], "sync_started_total",
                           "reason=\"declared_dead\"", ""),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, completed, "sync_completed_total", NULL,
                           "Syncs that ended with every other member done handing over."),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, timed_out, "sync_timeouts_total", NULL,
                           "Syncs given up after --sync-timeout (a member never answered)."),
    {"sync_last_duration_seconds", NULL, METRICS_GAUGE, METRICS_ATOMIC_U64,
     offsetof(route_sync_stats_t, last_duration_ms), "Duration of the last sync.", 1000},
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, verified_reads, "sync_verified_reads_total", NULL,
                           "Reads of owned keys checked against the other owners while syncing."),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, verify_repaired, "sync_verify_repaired_total", NULL,
                           "Checked reads that found a newer value or a delete at another owner."),
    METRICS_ATOMIC_COUNTER(route_sync_stats_t, dropped, "sync_dropped_entries_total", NULL,
                           "Entries dropped after the process stood still longer than --tombstone-grace."),
};
const metrics_table_t route_sync_metrics_table = METRICS_TABLE(route_sync_metrics_rows);

void route_init(route_t *rt, const config_t *cfg, store_t *store, metrics_t *metrics)
{
    memset(rt, 0, sizeof *rt);
    rt->cfg = cfg;
    rt->store = store;
    rt->metrics = metrics;
    pthread_mutex_init(&rt->hlc_lock, NULL);
    hlc_init(&rt->hlc);
    topo_slot_init(&rt->topo);
    /* --tombstone-grace: covers any fill in flight when the delete landed,
     * and bounds how long a node back from an absence can learn from the
     * other owners that what it held was deleted (resync.h). */
    rt->tomb = tomb_new(65536, (int64_t)cfg->tombstone_grace_ms);
    rt->dedupe = route_dedupe_new();
    repair_book_init(&rt->repair_book);
}

void route_pool_heard(void *ctx, const char *name, uint64_t now_ms)
{
    route_t *rt = ctx;
    topo_t *t = topo_slot_get(&rt->topo);
    topo_note_heard(t, name, now_ms);
    topo_unref(t);
}

size_t route_cluster_size(route_t *rt, const topo_t *t)
{
    size_t size = t ? t->n : 1;
    size_t peak = (size_t)atomic_load_explicit(&rt->sync.peak, memory_order_relaxed);
    return peak > size ? peak : size;
}

void route_destroy(route_t *rt)
{
    topo_slot_destroy(&rt->topo);
    tomb_free(rt->tomb);
    route_dedupe_free(rt->dedupe);
    repair_book_destroy(&rt->repair_book);
    pthread_mutex_destroy(&rt->hlc_lock);
}

int route_worker_init(route_worker_t *w, route_t *rt, uv_loop_t *loop, peer_serve_fn serve, void *serve_ctx)
{
    memset(w, 0, sizeof *w);
    w->route = rt;
    w->loop = loop;
    w->flights = calloc(ROUTE_FLIGHT_BUCKETS, sizeof *w->flights);
    peer_conn_config_t cc = {.keyring = rt->keyring, .stats = &rt->peer_stats};
    peer_pool_config_t pc = {.conn = cc,
                             .connect_timeout_ms = rt->cfg->peer_connect_timeout_ms,
                             .request_timeout_ms = rt->cfg->peer_timeout_ms,
                             .heard = route_pool_heard,
                             .heard_ctx = rt};
    peer_server_config_t sc = {.conn = cc};
    w->pool = peer_pool_new(loop, &pc);
    w->peer_server = peer_server_new(loop, &sc, serve, serve_ctx);
    if (rt->l2 && rt->l2->enabled && !(w->l2 = l2_new(loop, rt->l2))) {
        route_worker_free(w);
        return UV_ENOMEM;
    }
    if (!w->flights || !w->pool || !w->peer_server) {
        route_worker_free(w);
        return UV_ENOMEM;
    }
    /* Last: a client's handle needs the loop to run to be closed. */
    if (rt->origin && !(w->origin = origin_client_new(rt->origin, loop))) {
        route_worker_free(w);
        return UV_ENOMEM;
    }
    return 0;
}

void route_worker_close(route_worker_t *w, void (*done)(void *arg), void *arg)
{
    /* Loads still out are answered (ORIGIN_SHUTDOWN) before anything they
     * would use goes. */
    origin_client_close(w->origin);
    w->origin = NULL;
    topo_cache_clear(&w->topo);
    closer_add(&w->closer, w->l2 ? 3 : 2);
    peer_server_close(w->peer_server, closer_closed_cb, &w->closer);
    peer_pool_close(w->pool, closer_closed_cb, &w->closer);
    if (w->l2) l2_close(w->l2, closer_closed_cb, &w->closer);
    closer_finish(&w->closer, done, arg);
}

void route_worker_free(route_worker_t *w)
{
    peer_pool_free(w->pool);
    peer_server_free(w->peer_server);
    l2_free(w->l2);
    free(w->flights);
    topo_cache_clear(&w->topo);
    w->l2 = NULL;
    w->pool = NULL;
    w->peer_server = NULL;
    w->flights = NULL;
}

static void route_member_back(const topo_member_t *m, void *ctx)
{
    route_worker_t *w = ctx;
    if (w->pool) peer_pool_forgive(w->pool, m->name);
}

topo_t *route_topo(route_worker_t *w)
{
    return topo_cache_get_noting(&w->topo, &w->route->topo, route_member_back, w);
}

uint64_t route_stamp(route_t *rt)
{
    pthread_mutex_lock(&rt->hlc_lock);
    uint64_t v = hlc_stamp(&rt->hlc, store_now_ms(rt->store));
    pthread_mutex_unlock(&rt->hlc_lock);
    return v;
}

bool route_syncing_alone(route_worker_t *w)
{
    route_t *a = w->route;
    if (!atomic_load(&a->sync.syncing)) return false;
    topo_t *t = route_topo(w);
    return !t || t->n < 2;
}

bool route_clock_untrusted(route_t *rt)
{
    switch ((route_clock_state_t)atomic_load(&rt->sync.clock)) {
    case ROUTE_CLOCK_OK: return false;
    case ROUTE_CLOCK_SKEWED: return true;
    case ROUTE_CLOCK_UNCHECKED: break;
    }
    topo_t *t = topo_slot_get(&rt->topo);
    bool company = t && t->n >= 2;
    topo_unref(t);
    return company;
}

void route_sync_all(route_worker_t *w, const topo_t *t, unsigned *pending, peer_reply_fn fn, void *ctx)
{
    const char *self = route_self_name(w->route);
    for (uint32_t i = 0; i < t->n; i++) {
        const topo_member_t *m = &t->members[i];
        if ((int32_t)i == t->self || m->peer.ss_family == 0) continue;
        peer_msg_t req = {.type = PEER_MSG_SYNC, .flags = PEER_F_FORWARDED};
        req.name = (peer_bytes_t){(const uint8_t *)self, strlen(self)};
        (*pending)++;
        if (peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, 0, fn, ctx) != PEER_OK)
            (*pending)--;
    }
}

route_error_t route_write_refusal(route_worker_t *w, const char **why)
{
    if (route_draining(w->route)) {
        *why = "this node is leaving the cluster; send it to another node";
        return ROUTE_ERR_DRAINING;
    }
    if (route_minority(w->route)) {
        *why = "this node sees less than half of the cluster (a partition?); write through another node";
        return ROUTE_ERR_MINORITY;
    }
    if (route_clock_untrusted(w->route)) {
        *why = atomic_load(&w->route->sync.clock) == ROUTE_CLOCK_SKEWED
                   ? "this node's clock is more than --max-clock-drift apart from the other members' (fix NTP); "
                     "write through another node"
                   : "this node has not compared its clock with the other members' yet";
        return ROUTE_ERR_CLOCK_SKEW;
    }
    if (atomic_load(&w->route->woke) || route_stalled(w->route, uv_now(w->loop)) || route_syncing_alone(w)) {
        *why = "this node is syncing (it has not joined the cluster yet, or just woke from a stall)";
        return ROUTE_ERR_SYNCING;
    }
    return ROUTE_ERR_COUNT;
}

uint64_t route_stamp_past_now(route_t *rt)
{
    pthread_mutex_lock(&rt->hlc_lock);
    uint64_t v = hlc_stamp(&rt->hlc, store_now_ms(rt->store) + 1);
    pthread_mutex_unlock(&rt->hlc_lock);
    return v;
}

static int64_t route_max_drift(route_t *rt)
{
    return rt->cfg->max_clock_drift_ms ? (int64_t)rt->cfg->max_clock_drift_ms : 5000;
}

void route_observe(route_t *rt, uint64_t version)
{
    pthread_mutex_lock(&rt->hlc_lock);
    bool ok = hlc_observe_within(&rt->hlc, version, store_now_ms(rt->store), route_max_drift(rt));
    pthread_mutex_unlock(&rt->hlc_lock);
    if (!ok) atomic_fetch_add(&rt->stats.clock_refusals, 1);
}

bool route_clock_apart(route_t *rt, uint64_t reading)
{
    pthread_mutex_lock(&rt->hlc_lock);
    uint64_t last = rt->hlc.last;
    pthread_mutex_unlock(&rt->hlc_lock);
    int64_t mine = hlc_physical_ms(last), now = store_now_ms(rt->store);
    if (now > mine) mine = now;
    int64_t theirs = hlc_physical_ms(reading), d = theirs > mine ? theirs - mine : mine - theirs;
    return d > route_max_drift(rt);
}

bool route_plausible(route_t *rt, uint64_t version)
{
    if (hlc_plausible(version, store_now_ms(rt->store), route_max_drift(rt))) return true;
    atomic_fetch_add(&rt->stats.clock_refusals, 1);
    return false;
}

int64_t route_entry_ttl_ms(route_t *rt, const store_entry_t *e)
{
    int64_t exp = store_entry_expires_at(e);
    if (exp == 0) return 0;
    int64_t left = exp - store_now_ms(rt->store);
    return left > 0 ? left : 1;
}

bool route_is_primary(route_worker_t *w, const void *key, size_t klen)
{
    topo_t *t = route_topo(w);
    if (!t || t->self < 0) return true;
    uint32_t primary;
    return topo_owners(t, key, klen, &primary, 1) == 1 && (int32_t)primary == t->self;
}
