/* resync: how a node that may hold less than it owns catches up before it
 * answers for its keys alone (docs/ARCHITECTURE.md, "Syncing").
 *
 * A node is syncing after it starts, after its loop stalled longer than
 * the peer timeout (SIGSTOP, a VM pause: the cluster may have moved its
 * keys and written or deleted them meanwhile), and when it rejoins a
 * cluster from a minority (a partition healed; the ring grew by at least
 * as many members as it kept). While syncing:
 *   - every read of a key it owns is checked against the key's other
 *     owners, newest version (or tombstone) wins (route_read);
 *   - `/ready` answers 503 `syncing`;
 *   - after a stall, writes and invalidations are refused (503 syncing):
 *     what waited in its sockets meanwhile would be stamped now, over
 *     writes made elsewhere after its sender gave up on it.
 * It stops syncing once every other alive member of the ring answered a
 * SYNC with "done": that member's ring holds this node in its current run
 * and its handoff has finished, so whatever it had for us is here. The
 * answers carry their clocks, which this node observes, so a node restarted
 * with a clock behind the cluster's does not stamp versions that lose to
 * writes it acknowledged. A member that never answers ends the wait after
 * --sync-timeout (logged and counted: its keys may be incomplete here).
 *
 * Minority: a node that sees fewer than half of the members its ring had
 * within the last minute (RESYNC_PEAK_MS) alive and unsuspected is most
 * likely cut off from the rest (a partition) rather than the sole
 * survivor: route_minority() is set and it answers 503 (reads, writes,
 * invalidations), so what the cluster does on the other side is neither
 * contradicted nor served stale here. Suspected members count as gone: a
 * cut-off node suspects everyone seconds before it declares anyone dead.
 * After a minute of the smaller ring it takes it for the cluster (the
 * others died); members that left on purpose do not count.
 *
 * After a stall or a rejoin, reads stay checked for the tombstone grace even
 * once synced: what this node held from before may have been deleted
 * elsewhere, and the other owners' tombstones say so only that long. A node
 * that stood still longer than the grace cannot learn the deletes it
 * missed from anyone: when every key it owns has another owner (two
 * replicas or more), it drops everything it held (counted) and its reads
 * are checked with the other owners until repair brought its keys back.
 * A rejoin does not drop: both sides of a partition rejoin, and neither
 * knows that the other kept up.
 *
 * Clocks: every 2 s (RESYNC_CLOCK_MS), and right after a ring with company
 * is published while it has not compared yet, it sends SYNC to up to 5
 * members in turn around the ring, merges their clocks (within
 * --max-clock-drift) and sets route_t's sync.clock: ROUTE_CLOCK_SKEWED
 * when more than half of those that answered are more than the drift away
 * from its own HLC, either way, else ROUTE_CLOCK_OK (route_write_refusal
 * refuses writes unless OK while others are in the ring).
 *
 * Threads: main loop only; the state workers read (route_t's sync stats,
 * verify_until_ms and heartbeat_ms) is atomic. Ownership: the creator owns the
 * resync_t (resync_close, then resync_free after `done`); it owns its peer
 * pool and borrows the route_t.
 */
#ifndef DCACHE_RESYNC_H
#define DCACHE_RESYNC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "node/peer/peer.h"
#include "node/route/route.h"

typedef struct resync_config {
    uint64_t timeout_ms;     /* --sync-timeout */
    uint64_t poll_ms;        /* between rounds of SYNC requests (250) */
    uint64_t stall_ms;       /* a loop gap longer than this is a stall (--peer-timeout) */
    uint64_t grace_ms;       /* --tombstone-grace: away longer, what this node held is dropped */
    uint64_t verify_ms;      /* reads stay checked this long after a stall or rejoin (the grace, or two
                              * repair rounds if longer: what repair has to bring back) */
} resync_config_t;

typedef struct resync resync_t;

resync_t *resync_new(uv_loop_t *loop, route_t *rt, const peer_pool_config_t *pool_cfg,
                     const resync_config_t *cfg);
/* This node's name and run (SWIM id), once gossip started. */
void resync_set_self(resync_t *r, const char *name, const uint8_t *run);
/* Starts syncing (or restarts the wait when already syncing); away_ms: how
 * long this node was away, as far as it knows (0: not known). */
void resync_begin(resync_t *r, route_sync_reason_t why, uint64_t away_ms);
/* A new ring was published: `kept` members were in the previous one, `added`
 * were not (this node not counted); it has `members` in all, `reachable`
 * of them not suspected (this node included). */
void resync_ring_changed(resync_t *r, size_t kept, size_t added, size_t members, size_t reachable);
/* Only suspicion changed: `reachable` members are not suspected now. */
void resync_reachable(resync_t *r, size_t reachable);
/* A member left on purpose: the ring shrinking by it is no partition. */
void resync_member_left(resync_t *r);
bool resync_active(const resync_t *r);
void resync_close(resync_t *r, void (*done)(void *arg), void *arg);
void resync_free(resync_t *r);

#endif
