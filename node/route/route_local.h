/* route_local: what this node does for itself in a cluster-wide operation,
 * whether the request came from a client here or from a peer: invalidating
 * by keys or by pattern, listing a page of its keys, taking a handoff
 * batch.
 *
 * Every node holds copies of the keys it owns (--replicas of them), so to
 * count and list each key once a node reports only the keys it is the
 * primary of (route_is_primary), while it removes every copy it holds.
 *
 * Threads: the worker's loop (route_is_primary reads its ring snapshot);
 * route_local_accept_handoff may run on any thread.
 */
#ifndef DCACHE_ROUTE_LOCAL_H
#define DCACHE_ROUTE_LOCAL_H

#include "node/route/route.h"

/* Key listing: the default page size and the largest one. */
#define ROUTE_LOCAL_KEYS_DEFAULT 50
#define ROUTE_LOCAL_KEYS_MAX 1000

/* Invalidations carry the version the node that received the request
 * stamped for all of it. Versioned, they are deletes: what is held here
 * goes only if it is not newer, and a tombstone (the key's, or the
 * pattern's) refuses older fills arriving later (route_tomb_check). Version
 * 0 (an older peer), or one from a clock more than --max-clock-drift ahead
 * (counted), clears what is held whatever its version and leaves no
 * tombstone: a tombstone from a runaway clock would refuse every write for
 * its whole life. */

/* Removes the copies held here of keys matching the pattern (none when
 * dry_run, and no tombstone); *matched: matches this node is the primary
 * of; *invalidated: those of them removed (0 when dry_run). */
void route_local_invalidate_pattern(route_worker_t *w, const char *pattern, size_t plen, bool dry_run,
                                    uint64_t version, uint64_t *matched, uint64_t *invalidated);
/* Removes the keys held here; returns how many of them this node is the
 * primary of. */
uint64_t route_local_invalidate_keys(route_worker_t *w, const peer_bytes_t *keys, size_t n, uint64_t version);

/* One page of this node's keys; items point into bytes, both owned by the
 * page (route_local_page_free). */
typedef struct route_local_page {
    peer_keyinfo_t *items;
    char *bytes;
    size_t n;
    uint64_t next;               /* cursor of the next page; 0 = done */
} route_local_page_t;

/* limit 0 = ROUTE_LOCAL_KEYS_DEFAULT; capped at ROUTE_LOCAL_KEYS_MAX (a page
 * may hold a little more: a bucket comes whole). Scans on until the page
 * holds `limit` keys or ROUTE_LOCAL_KEYS_SCANS scans (of at most 10 * limit
 * buckets each) were made, so a page may still hold fewer with more to
 * come. False when out of memory. */
#define ROUTE_LOCAL_KEYS_SCANS 32
bool route_local_keys(route_worker_t *w, const char *pattern, size_t plen, uint64_t cursor, uint32_t limit,
                      bool primary_only, route_local_page_t *page);
void route_local_page_free(route_local_page_t *page);

/* Keeps the entries of a HANDOFF batch that are live, newer than what is
 * here and not deleted since. Returns how many are settled: kept, or
 * obsolete (expired, deleted since, older than the copy here); an entry
 * the store could not take (no memory, too large, a bad key) is not, and
 * the sender keeps every entry of a batch that was not wholly settled. */
uint32_t route_local_accept_handoff(route_t *rt, const peer_msg_t *batch);

#endif
