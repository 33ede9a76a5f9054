/* route: the data path's state. One route_t is shared by every worker loop
 * (the store, the version clock, tombstones, the published ring, the L2
 * settings, the data-path counters); each worker loop has a route_worker_t
 * with what only that loop touches (its peer pool and peer server, its ring
 * snapshot, its Redis client, its table of forwarded GETs in flight), so a
 * request never crosses threads on its hot path (DESIGN section 3 of
 * docs/ARCHITECTURE.md).
 *
 * The routing itself lives in route_read (GET), route_write (PUT, DELETE),
 * route_local (what this node does for itself), route_scatter (cluster-wide
 * listing and invalidation) and route_serve (answering peers); handoff
 * rebalances after ring changes. They answer through route_reply.h, never
 * through a transport they know.
 *
 * Ownership: route_t borrows the config, store and metrics (owned by main)
 * for its whole life, owns the topology slot, the version clock and the
 * tombstone table; main sets keyring and l2 before the workers start and
 * never changes them after. A worker owns its route_worker_t
 * (route_worker_init, route_worker_close, then route_worker_free).
 *
 * Threads: route_t is read by every worker; its mutable parts are atomics,
 * the clock's mutex, the store's and tombstones' own locks and the
 * topology slot. route_worker_t belongs to its loop's thread.
 */
#ifndef DCACHE_ROUTE_H
#define DCACHE_ROUTE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cluster/hlc.h"
#include "node/core/closer.h"
#include "node/core/config.h"
#include "node/l2/l2.h"
#include "node/member/topo.h"
#include "node/metrics/metrics.h"
#include "node/origin/origin.h"
#include "node/peer/peer.h"
#include "node/peer/peer_server.h"
#include "node/route/handoff.h"
#include "node/route/repair_book.h"
#include "node/route/route_reply.h"
#include "node/store/store.h"
#include "node/route/route_dedupe.h"
#include "node/store/tomb.h"

/* Which operation a forward is (route_stats_t.forwarded[] index). */
enum { ROUTE_FWD_GET = 0, ROUTE_FWD_PUT = 1, ROUTE_FWD_DELETE = 2 };

/* Syncing (driven by node/route/resync; see there): why it started. */
typedef enum {
    ROUTE_SYNC_START = 0,   /* the process started */
    ROUTE_SYNC_STALL,       /* the loops stood still longer than the peer timeout */
    ROUTE_SYNC_REJOIN,      /* the ring grew by at least as many members as it kept */
    ROUTE_SYNC_DECLARED_DEAD, /* others declared this node dead (it refuted): they went on without it */
    ROUTE_SYNC_REASONS
} route_sync_reason_t;

/* Whether this node's clock agrees with the others' (resync.h): until it
 * was compared with theirs, and while it is more than --max-clock-drift
 * apart from most of them, writes and invalidations are not stamped here. */
typedef enum { ROUTE_CLOCK_UNCHECKED = 0, ROUTE_CLOCK_OK, ROUTE_CLOCK_SKEWED } route_clock_state_t;

typedef struct route_sync_stats {
    atomic_int_fast64_t syncing;           /* 1 while syncing */
    atomic_int_fast64_t minority;          /* 1 while this node sees less than half of the recent ring */
    atomic_int_fast64_t clock;             /* route_clock_state_t (resync.h) */
    atomic_uint_fast64_t clock_skews;      /* times the clock was found apart from the others' */
    atomic_uint_fast64_t started[ROUTE_SYNC_REASONS];
    atomic_uint_fast64_t completed, timed_out;
    atomic_uint_fast64_t last_duration_ms;
    atomic_uint_fast64_t verified_reads;   /* owner reads checked against the other owners */
    atomic_uint_fast64_t verify_repaired;  /* ... that found a newer value or tombstone elsewhere */
    atomic_uint_fast64_t dropped;          /* entries dropped after a stall longer than --tombstone-grace */
    atomic_uint_fast64_t peak;             /* members the ring had lately (resync.c): what a majority is of */
} route_sync_stats_t;

/* route_sync_stats_t's series in /metrics. */
extern const metrics_table_t route_sync_metrics_table;

const char *route_sync_reason_name(route_sync_reason_t why);

/* Data-path counters (atomic: every worker adds). */
typedef struct route_stats {
    atomic_uint_fast64_t forwarded[3];         /* requests sent to an owner: get, put, delete */
    atomic_uint_fast64_t failovers;            /* an owner failed; the next one was tried */
    atomic_uint_fast64_t unavailable;          /* no owner answered: 503 */
    atomic_uint_fast64_t coalesced;            /* GETs that joined a forward already in flight */
    atomic_uint_fast64_t replica_ok, replica_failed, replica_skipped; /* writes to replicas */
    atomic_uint_fast64_t replica_unskipped;    /* ... down, but not skipped: no majority answered */
    atomic_uint_fast64_t majority_rounds;      /* route_quorum's rounds of SYNCs */
    atomic_uint_fast64_t writes_unreplicated;  /* writes refused: too few owners stored them */
    atomic_uint_fast64_t broadcasts;           /* invalidations sent to non-owners */
    atomic_uint_fast64_t fallbacks;            /* misses at a new owner that asked previous owners */
    atomic_uint_fast64_t fallback_filled;      /* ... and found the key there */
    atomic_uint_fast64_t read_repairs;         /* owners a checked read found behind, sent the newest */
    atomic_int_fast64_t flights;               /* forwarded GETs in flight now */
    atomic_uint_fast64_t clock_refusals;       /* versions from a clock over --max-clock-drift ahead */
    atomic_uint_fast64_t origin_fills;         /* values loaded from an origin and stored here */
    atomic_uint_fast64_t origin_stale;         /* stale copies served because the origin failed */
    atomic_uint_fast64_t origin_refreshes;     /* refresh-ahead loads started (XFetch) */
    atomic_uint_fast64_t origin_refreshed;     /* ... that stored a newer value */
} route_stats_t;

/* route_stats_t's series in /metrics. */
extern const metrics_table_t route_metrics_table;

typedef struct route {
    const config_t *cfg;
    store_t *store;
    metrics_t *metrics;                        /* hits, misses, invalidations */
    pthread_mutex_t hlc_lock;
    hlc_t hlc;
    const seal_keyring_t *keyring;             /* peer channel sealing */
    _Atomic(const char *) self_name;           /* this node's name, published once gossip runs
                                                * ("" before); owned by main */
    topo_slot_t topo;                          /* the ring, published by main */
    peer_stats_t peer_stats;
    route_stats_t stats;
    handoff_stats_t handoff;
    l2_shared_t *l2;                           /* NULL: no L2 (owned by main) */
    tomb_t *tomb;                              /* recent deletes; NULL if it could not be made */
    route_dedupe_t *dedupe;                    /* forwarded writes carried out lately, by request id;
                                                * NULL if it could not be made */
    route_sync_stats_t sync;                   /* syncing (node/route/resync.h) */
    repair_stats_t repair;                     /* anti-entropy (node/route/repair.h) */
    repair_book_t repair_book;                 /* its digests, for the other owners' */
    atomic_uint_fast64_t verify_until_ms;      /* owner reads are checked until then (uv_now: every
                                                * loop reads the same monotonic clock) */
    atomic_uint_fast64_t heartbeat_ms;         /* the main loop's last tick (uv_now) */
    uint64_t stall_ms;                         /* a heartbeat older than this: the process stood still */
    atomic_bool woke;                          /* back from a stall and not synced yet: no writes */
    atomic_bool draining;                      /* leaving the cluster: the others own its keys now */
    atomic_uint_fast64_t deletes;              /* bumped by every delete or invalidation applied here:
                                                * a GET in flight from before is not joined after */
    /* Another member's event (PEER_MSG_EVENT), for this node's feed: set
     * before the workers start; called on a worker's loop. */
    void (*on_event)(void *ctx, const peer_msg_t *m);
    void *on_event_ctx;
    origin_t *origin;                          /* read-through (--origins); NULL: none. Owned by main,
                                                * set before the workers start */
    double refresh_beta;                       /* XFetch's beta; 0: no refresh-ahead */
} route_t;

/* What one worker loop owns. */
typedef struct route_worker {
    route_t *route;
    uv_loop_t *loop;
    peer_pool_t *pool;
    peer_server_t *peer_server;
    topo_cache_t topo;
    l2_t *l2;                                  /* this loop's Redis client; NULL without L2 */
    origin_client_t *origin;                   /* this loop's way to the origins; NULL without */
    struct route_flight **flights;             /* forwarded GETs in flight by key (route_read) */
    size_t nflights;
    struct route_quorum_round *quorum_rounds;  /* route_quorum's rounds in flight, newest first: each
                                                * lives until its SYNCs are answered, within
                                                * --peer-timeout */
    closer_t closer;                           /* the peer pool, peer server and Redis client */
} route_worker_t;


/* Buckets of a worker's table of forwarded GETs in flight (a power of 2). */
#define ROUTE_FLIGHT_BUCKETS 1024u

void route_init(route_t *rt, const config_t *cfg, store_t *store, metrics_t *metrics);
void route_destroy(route_t *rt);

/* Sets up a worker's state on its loop: peer pool, peer server (not
 * listening yet; it answers with `serve(call, req, serve_ctx)`), Redis
 * client. Returns 0 or a uv error (nothing to free then). */
int route_worker_init(route_worker_t *w, route_t *rt, uv_loop_t *loop, peer_serve_fn serve,
                      void *serve_ctx);
/* Closes the worker's peer pool, peer server and Redis client; done(arg)
 * runs once on the loop, after all of them closed, never from inside this
 * call. */
void route_worker_close(route_worker_t *w, void (*done)(void *arg), void *arg);
/* Frees what route_worker_init made; after close's done, or instead of it
 * when the loop never ran. */
void route_worker_free(route_worker_t *w);

/* A new version from this node's hybrid logical clock. */
uint64_t route_stamp(route_t *rt);
/* A version newer than any other node stamped up to this millisecond (its
 * physical part is the next one): for an operation stamped here that must
 * beat writes the keys' primaries acknowledged just before it, in the same
 * millisecond with a larger logical counter (an invalidation). Clock skew
 * between nodes still counts against it (docs/ARCHITECTURE.md). */
uint64_t route_stamp_past_now(route_t *rt);
/* Moves the clock past a version seen from another node, unless that
 * version comes from a clock more than --max-clock-drift ahead of ours
 * (counted): one runaway clock must not drag every node's versions along. */
void route_observe(route_t *rt, uint64_t version);
/* False (and counted) when a version is more than --max-clock-drift ahead
 * of this node's clock. */
bool route_plausible(route_t *rt, uint64_t version);
/* Remaining TTL of a live entry in ms (at least 1); 0 when it never
 * expires. */
int64_t route_entry_ttl_ms(route_t *rt, const store_entry_t *e);
/* True when reads of this node's keys must be checked against the other
 * owners: it is syncing, came back from a stall or a rejoin less than a
 * tombstone TTL ago, or the main loop has not ticked for longer than a
 * stall (the process just woke up, and the main loop has yet to notice). */
/* True when the main loop has not ticked for longer than a stall: the
 * process just woke (SIGCONT, a VM resumed) and the main loop has yet to
 * notice. What it reads now may have waited in a socket all along. */
static inline bool route_stalled(route_t *rt, uint64_t loop_now_ms)
{
    uint64_t beat = atomic_load_explicit(&rt->heartbeat_ms, memory_order_relaxed);
    return rt->stall_ms && beat && loop_now_ms > beat + rt->stall_ms;
}
static inline bool route_must_verify(route_t *rt, uint64_t loop_now_ms)
{
    if (atomic_load_explicit(&rt->sync.syncing, memory_order_relaxed)) return true;
    if (atomic_load_explicit(&rt->verify_until_ms, memory_order_relaxed) > loop_now_ms) return true;
    return route_stalled(rt, loop_now_ms);
}
/* True while this node syncs and has not joined anyone yet: its ring is
 * itself alone, so as the sole owner of everything it would acknowledge
 * writes and invalidations the real owners never see (they get 503
 * syncing instead). */
bool route_syncing_alone(route_worker_t *w);
/* True while this node sees fewer than half of the members its ring had
 * lately (resync.h): it is most likely on the small side of a partition.
 * It then answers reads, writes and invalidations with 503 minority
 * (reads go to Redis when there is one): what it holds may have been
 * overwritten or deleted on the other side, and what it misses written
 * there. */
static inline bool route_minority(route_t *rt)
{
    return atomic_load_explicit(&rt->sync.minority, memory_order_relaxed) != 0;
}
/* Contact evidence for the ring's members (topo_note_heard): a peer
 * pool's `heard` hook (ctx is the route_t). */
void route_pool_heard(void *ctx, const char *name, uint64_t now_ms);
/* The cluster's size a majority is counted against: the larger of t's
 * members and the ring's recent peak (resync.h), so that members lost to a
 * partition still count. */
size_t route_cluster_size(route_t *rt, const topo_t *t);
/* The worker's ring snapshot (topo_cache_get); members that came back since
 * the last one (a new run, or no longer suspected) are forgiven by the
 * worker's peer pool: a breaker opened against the process that went away
 * would otherwise make writes skip, and reads pass over, a member that is
 * back and serving. */
topo_t *route_topo(route_worker_t *w);
/* True when a clock reading from another member (its HLC, as SYNC answers
 * it) is more than --max-clock-drift away from this node's, either way. */
bool route_clock_apart(route_t *rt, uint64_t reading);
/* True while this node must not stamp versions: its clock is apart from
 * the cluster's, or not compared yet while others are in the ring
 * (resync.h compares them). Any thread. */
bool route_clock_untrusted(route_t *rt);
/* Sends a SYNC, which every member answers with its clock, to every other
 * member of t that has a peer address; `*pending` is raised before each
 * request and lowered again when it could not be sent, so `fn(ctx, ...)`
 * runs once for each that counts. */
void route_sync_all(route_worker_t *w, const topo_t *t, unsigned *pending, peer_reply_fn fn, void *ctx);
/* Why a write or invalidation must be refused rather than stamped here now
 * (ROUTE_ERR_COUNT: it need not be; *why then untouched): this node is in
 * a minority (ROUTE_ERR_MINORITY), its clock is apart from the cluster's or
 * not compared yet while others are in the ring (ROUTE_ERR_CLOCK_SKEW: its
 * versions would win over later writes, or lose to earlier ones), or
 * (ROUTE_ERR_SYNCING)
 * route_syncing_alone, or the process woke from a
 * stall and has not synced since (route_stalled, then `woke`): a request
 * may have waited in a socket while its client, or the node that forwarded
 * it, gave up and wrote elsewhere, and stamped now it would overwrite those
 * newer writes. Clients and forwarders go to another owner meanwhile. */
route_error_t route_write_refusal(route_worker_t *w, const char **why);
/* True once this node announced that it leaves: the others took its keys
 * over, so it answers no request for them (503 draining; peers that
 * forwarded here try the next owner). */
static inline bool route_draining(route_t *rt)
{
    return atomic_load_explicit(&rt->draining, memory_order_relaxed);
}
/* True when this node is the key's primary owner (or there is no ring). */
bool route_is_primary(route_worker_t *w, const void *key, size_t klen);

/* Tombstones (node/store/tomb.h), tolerant of a missing table. */
static inline void route_tomb_add(route_t *rt, const void *key, size_t klen, uint64_t version)
{
    atomic_fetch_add_explicit(&rt->deletes, 1, memory_order_release);
    if (rt->tomb) tomb_add(rt->tomb, key, klen, version, store_now_ms(rt->store));
}
static inline void route_tomb_add_pattern(route_t *rt, const char *pattern, size_t plen, uint64_t version)
{
    atomic_fetch_add_explicit(&rt->deletes, 1, memory_order_release);
    /* From its version's time: the same pattern passed on by handoff (to a
     * member back in the ring) is not made to live longer. */
    if (rt->tomb)
        tomb_add_pattern_until(rt->tomb, pattern, plen, version, tomb_expiry_of(rt->tomb, version),
                               store_now_ms(rt->store));
}
static inline tomb_verdict_t route_tomb_check(route_t *rt, const void *key, size_t klen, uint64_t version)
{
    return rt->tomb ? tomb_check(rt->tomb, key, klen, version, store_now_ms(rt->store)) : TOMB_CLEAR;
}
/* Known deleted after version (not merely in doubt, tomb.h). */
static inline bool route_tomb_deleted(route_t *rt, const void *key, size_t klen, uint64_t version)
{
    return route_tomb_check(rt, key, klen, version) == TOMB_DELETED;
}
static inline const char *route_self_name(route_t *rt)
{
    const char *n = atomic_load_explicit(&rt->self_name, memory_order_acquire);
    return n ? n : "";
}
/* The key's primary owner's name (this node's without a ring). */
static inline const char *route_owner_name(route_t *rt, const topo_t *t, const uint32_t *owners, size_t n)
{
    return t && n ? t->members[owners[0]].name : route_self_name(rt);
}

#endif
