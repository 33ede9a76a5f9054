/* handoff: rebalancing after a ring change (DESIGN.md section 4). The main
 * loop scans this node's L1 once per change and, for every entry:
 *   - when this node no longer owns the key: sends it to every new owner,
 *     then drops it here once all of them stored it (or had newer);
 *   - when it still owns the key: sends it to the owners that gained it
 *     (a joiner, or the replacement of an owner that died), so the key
 *     keeps --replicas copies and a join does not empty the cache.
 * Entries travel in HANDOFF batches over the peer channel; receivers keep
 * an entry only if it is newer than theirs (versions respected). After the
 * entries, the live tombstones go the same way (by their hash, as tombstone
 * items of REPAIR_OFFER messages): a new owner that held a copy from before
 * (a member back from a partition) learns the deletes it missed, and its
 * reads and repair rounds act on them. Members new to the ring are also
 * sent every live pattern tombstone, as the invalidation it was. The scan
 * is rate-limited (entries per second); a run that met failures is retried
 * from the start after a pause (keys already handed over are gone from
 * here, so a retry only sends what is left); a newer ring change restarts
 * the run with the new ring.
 *
 * Bounds: at most max_inflight batches in flight, each at most
 * batch_entries entries and batch_bytes bytes: the memory a run holds.
 *
 * Threads: main loop only; stats are atomic (read by HTTP workers).
 * Ownership: the creator owns the handoff_t (handoff_close, then
 * handoff_free after `done`). It holds references to the two rings of the
 * run and owns its peer pool and in-flight batches; it borrows the store.
 */
#ifndef DCACHE_HANDOFF_H
#define DCACHE_HANDOFF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "node/metrics/metrics.h"
#include "node/peer/peer.h"
#include "node/store/store.h"
#include "node/store/tomb.h"
#include "node/member/topo.h"

typedef struct handoff_config {
    uint64_t rate;            /* entries scanned per second; 0 = as fast as the batches go */
    unsigned batch_entries;   /* 256 */
    size_t batch_bytes;       /* 1 MiB (one value may exceed it: a batch holds at least one entry) */
    unsigned max_inflight;    /* 4 batches */
    uint64_t retry_ms;        /* 5000: pause before a run that met failures starts over */
} handoff_config_t;

typedef struct handoff_stats {
    atomic_uint_fast64_t entries_sent, bytes_sent;  /* entries (and value bytes) stored by a new owner */
    atomic_uint_fast64_t entries_dropped;           /* no longer owned here, handed over, removed */
    atomic_uint_fast64_t tombstones_sent;           /* key tombstones to new owners, patterns to new members */
    atomic_uint_fast64_t batches_failed;            /* batches a new owner did not take (retried later) */
    atomic_uint_fast64_t runs;                      /* scans finished */
    atomic_uint_fast64_t last_duration_ms;          /* of the last finished scan */
    atomic_int_fast64_t running;                    /* 1 while a scan or its batches are in progress */
} handoff_stats_t;

/* handoff_stats_t's series in /metrics. */
extern const metrics_table_t handoff_metrics_table;

typedef struct handoff handoff_t;

handoff_t *handoff_new(uv_loop_t *loop, store_t *store, tomb_t *tomb, const peer_pool_config_t *pool_cfg,
                       const handoff_config_t *cfg, handoff_stats_t *stats);
/* A ring change: hands off what `cur` says belongs elsewhere; `old` (may be
 * NULL) says who held keys before. Takes its own references. Restarts a run
 * in progress. */
void handoff_start(handoff_t *h, topo_t *old, topo_t *cur);
bool handoff_running(const handoff_t *h);
void handoff_close(handoff_t *h, void (*done)(void *arg), void *arg);
void handoff_free(handoff_t *h);

#endif
