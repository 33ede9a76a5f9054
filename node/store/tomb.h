/* tomb: short-lived tombstones of deleted keys (DESIGN.md section 4). A
 * delete leaves its version here for `ttl_ms`; a fill that arrives later
 * with an older version (an L2 read, a handoff batch, a previous owner's
 * answer, a replica write that was overtaken by the delete) is refused, so
 * a value that was deleted does not come back.
 *
 * Bounds: a fixed table of `slots` entries (a power of two, probed 8 deep);
 * when full, the tombstone closest to expiry gives way. A key is known by a
 * keyed 64-bit hash (SipHash): a collision refuses a fill, which costs a
 * miss, never a stale read.
 *
 * Pattern tombstones: a pattern invalidation leaves its glob pattern
 * (cluster/glob.h) and version for the same `ttl_ms`, and a fill of any key
 * the pattern matches that is older is refused the same way: the keys a
 * pattern names are not known in advance, so they cannot be tombstoned one
 * by one. They live in a second table of TOMB_PATTERNS slots, each with
 * room for a pattern of LIMITS_KEY_MAX bytes (the longest the API and the
 * peer channel accept); when it is full the one closest to expiry gives way
 * and that is counted (tomb_pattern_evictions: a fill older than that
 * invalidation may come back again). Every fill looks at every live
 * pattern, so the number of live patterns is kept in an atomic and read
 * before the lock: with none, a fill costs what it did without them.
 *
 * Threads: every function may be called from any thread (one mutex; deletes
 * and fills are the slow paths). Ownership: the caller owns the tomb_t,
 * which owns both tables (allocated by tomb_new, freed by tomb_free; adding
 * never allocates); patterns are copied in.
 */
#ifndef DCACHE_TOMB_H
#define DCACHE_TOMB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/limits.h"
#include "node/metrics/metrics.h"

/* Pattern tombstones kept at once. */
#define TOMB_PATTERNS 256

typedef struct tomb tomb_t;

/* NULL on allocation failure. slots is rounded up to a power of two. */
tomb_t *tomb_new(size_t slots, int64_t ttl_ms);
void tomb_free(tomb_t *t);
/* Records that key was deleted at version (the newest version wins). */
void tomb_add(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms);
/* Records that every key matching pattern (a glob of 1..LIMITS_KEY_MAX
 * bytes) was invalidated at version (the same pattern again keeps the newer
 * version). False, and nothing recorded, for a pattern out of those
 * bounds. */
bool tomb_add_pattern(tomb_t *t, const char *pattern, size_t plen, uint64_t version, int64_t now_ms);
/* True when a live tombstone newer than version covers key, its own or a
 * pattern's that matches it: refuse the fill. Counted in tomb_refused(). */
bool tomb_blocks(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms);
/* The newest version a live tombstone (the key's, or a pattern's that
 * matches it) records for key; 0 when there is none (what a peer that
 * verifies its copy against ours needs to know). */
uint64_t tomb_version(tomb_t *t, const void *key, size_t klen, int64_t now_ms);
size_t tomb_count(tomb_t *t, int64_t now_ms);
uint64_t tomb_refused(tomb_t *t);
size_t tomb_pattern_count(tomb_t *t, int64_t now_ms);
/* Live pattern tombstones that gave way to a newer one (the table was full). */
uint64_t tomb_pattern_evictions(tomb_t *t);

/* What /metrics shows of the table, taken by tomb_get_metrics (t may be
 * NULL: all zero). */
typedef struct tomb_metrics {
    uint64_t count, refused;
    uint64_t patterns, pattern_evictions;
} tomb_metrics_t;
void tomb_get_metrics(tomb_t *t, int64_t now_ms, tomb_metrics_t *out);
extern const metrics_table_t tomb_metrics_table;

#endif
