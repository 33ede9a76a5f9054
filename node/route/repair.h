/* repair: anti-entropy between the owners of the same keys
 * (docs/ARCHITECTURE.md, "Repair").
 *
 * Every --repair-interval, at the same wall-clock boundaries on every node
 * (multiples of the interval), a round runs on the main loop:
 *   1. digest: this node scans its L1 and its key tombstones and folds every
 *      item (key hash, version, live or deleted) it owns into one table of
 *      bucket digests per other owner of the key (cluster/digest.h; 2^level
 *      buckets, the level from the number of keys they share).
 *      Items stamped after the round's cut (the boundary minus a settle
 *      time) are left out, so two owners that scan a little apart still
 *      compare the same writes. The tables are published in the book
 *      (repair_book.h) for the other owners' digests;
 *   2. exchange: each table goes to its member (REPAIR_DIGEST), which
 *      compares it with its own table for this node, for the same ring and
 *      cut, and answers which buckets differ (or "not ready": asked again
 *      for a while);
 *   3. offer: this node scans again and offers the items of differing
 *      buckets to that member (REPAIR_OFFER: key hash, version, key).
 *      The member learns offered tombstones newer than what it has (a
 *      delete it missed: its copy goes), answers "send it" for live entries
 *      it lacks or holds older (they follow in HANDOFF batches, taken only
 *      if still newer), and "deleted at V" for entries it has a newer
 *      tombstone for (this node's copy goes).
 * Each owner runs its own rounds, so what one holds newer reaches the other
 * from either side within one interval. Both scans also drop entries older
 * than this node's own tombstone for their key: a delete learnt by hash
 * (handoff and repair pass tombstones without keys) removes the copy it
 * could not find when it arrived.
 *
 * Not while this node syncs, is in a minority, drains, or hands off
 * (skipped rounds are counted): what it holds is then in doubt or moving.
 * Right after a sync it does run: the other owners' tombstones of deletes
 * made while it was away live --tombstone-grace from the delete, and
 * answer its offers of what they deleted with "deleted at V".
 *
 * Bounds: the digest tables (8 KiB to 512 KiB per other owner: about 8
 * shared keys a bucket, cluster/digest.h; the book's and this
 * round's), at most max_inflight offer or entry batches (PEER_OFFER_MAX
 * items, 1 MiB) in flight, a scan step's copy of scan_step entries' keys.
 *
 * Threads: the driver runs on the main loop; repair_serve_* on the worker
 * loop that received the request (they read the book and the store, both
 * thread-safe). Ownership: the creator owns the repair_t (repair_close,
 * then repair_free after `done`); it owns its peer pool and round state and
 * borrows the route_t.
 */
#ifndef DCACHE_REPAIR_H
#define DCACHE_REPAIR_H

#include <stdint.h>
#include <uv.h>

#include "node/peer/peer.h"
#include "node/peer/peer_server.h"
#include "node/route/route.h"

typedef struct repair_config {
    uint64_t interval_ms;     /* --repair-interval; 0: no rounds (digests are still answered) */
    uint64_t settle_ms;       /* items newer than boundary - settle_ms are left out (2000) */
    unsigned scan_step;       /* entries scanned per loop turn (1024) */
    unsigned max_inflight;    /* offer and entry batches in flight (4) */
} repair_config_t;

typedef struct repair repair_t;

repair_t *repair_new(uv_loop_t *loop, route_t *rt, const peer_pool_config_t *pool_cfg, const repair_config_t *cfg);
/* This node's name and run (SWIM id), once gossip started: rounds start
 * after this. */
void repair_set_self(repair_t *r, const char *name, const uint8_t *run);
/* Runs a round now (tests, and an operator who wants one). */
void repair_run_now(repair_t *r);
void repair_close(repair_t *r, void (*done)(void *arg), void *arg);
void repair_free(repair_t *r);

/* Answers another owner's REPAIR_DIGEST / REPAIR_OFFER (route_serve). */
void repair_serve_digest(route_worker_t *w, peer_call_t *call, const peer_msg_t *req);
void repair_serve_offer(route_worker_t *w, peer_call_t *call, const peer_msg_t *req);

#endif
