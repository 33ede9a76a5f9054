/* tomb: short-lived tombstones of deleted keys (DESIGN.md section 4). A
 * delete leaves its version here for `ttl_ms`; a fill that arrives later
 * with an older version (an L2 read, a handoff batch, a previous owner's
 * answer, a replica write that was overtaken by the delete) is refused, so
 * a value that was deleted does not come back.
 *
 * Bounds: a fixed table of `slots` entries (a power of two, probed 8 deep);
 * when full, the tombstone closest to expiry gives way, counted
 * (tomb_evictions), and is not forgotten: its version raises the floor of
 * its key range (1024 ranges by ring hash), and until it would have
 * expired every fill in that range not newer than the floor is refused as
 * in doubt (TOMB_IN_DOUBT: the key may or may not have been deleted, so
 * the value is served when it comes from L2 or a previous owner, which
 * hold the delete themselves, but not kept; a handoff entry stays with its
 * sender). A pattern tombstone that gives way raises a floor over every
 * range. A key is known by
 * its ring hash (tomb_key_hash: the same on every node, so owners can
 * compare and exchange tombstones by hash in anti-entropy repair, where a
 * tombstone's key is no longer known); a collision refuses a fill, which
 * costs a miss, never a stale read. Where a hash sits in the table is
 * keyed (SipHash with a per-process key), so crafted keys cannot crowd a
 * victim's tombstone out.
 *
 * Lifetime: a local delete's tombstone lives `ttl_ms` from now; one learnt
 * from another owner by repair lives `ttl_ms` from its version's time
 * (tomb_expiry_of), so owners passing a tombstone back and forth never
 * extend its life.
 *
 * Pattern tombstones: a pattern invalidation leaves its glob pattern
 * (cluster/glob.h) and version for the same `ttl_ms`, and a fill of any key
 * the pattern matches that is older is refused the same way: the keys a
 * pattern names are not known in advance, so they cannot be tombstoned one
 * by one. They live in a second table of TOMB_PATTERNS slots, each with
 * room for a pattern of LIMITS_KEY_MAX bytes (the longest the API and the
 * peer channel accept); when it is full the one closest to expiry gives way,
 * counted (tomb_pattern_evictions), leaving a floor over every range.
 * Every fill looks at every live
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
/* The hash a key's tombstone is known by (its ring hash, never 0). */
uint64_t tomb_key_hash(const void *key, size_t klen);
/* Records that key was deleted at version (the newest version wins), for
 * ttl_ms from now. */
void tomb_add(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms);
/* The same by hash, until expires_ms (at most ttl_ms from now; nothing
 * when it is past). A tombstone already there keeps the later expiry. */
void tomb_add_hash(tomb_t *t, uint64_t hash, uint64_t version, int64_t expires_ms, int64_t now_ms);
/* When a tombstone of this version expires when learnt from elsewhere. */
int64_t tomb_expiry_of(const tomb_t *t, uint64_t version);
/* The version of the live key tombstone with this hash (0: none; pattern
 * tombstones are not looked at). */
uint64_t tomb_version_hash(tomb_t *t, uint64_t hash, int64_t now_ms);
/* Calls fn for every live key tombstone, with the lock held: fn must not
 * call back into the table. Patterns are not included. */
typedef void (*tomb_scan_fn)(uint64_t hash, uint64_t version, void *ctx);
void tomb_scan(tomb_t *t, int64_t now_ms, tomb_scan_fn fn, void *ctx);
/* The live key tombstones as (hash, version) pairs sorted by hash, in
 * *items (grown with realloc as needed; *cap its room; the caller owns and
 * frees it), for work that must not hold the lock (handoff, repair).
 * Returns how many, or -1 when it could not grow *items. */
typedef struct tomb_item {
    uint64_t hash, version;
} tomb_item_t;
long tomb_copy(tomb_t *t, int64_t now_ms, tomb_item_t **items, size_t *cap);
/* Records that every key matching pattern (a glob of 1..LIMITS_KEY_MAX
 * bytes) was invalidated at version (the same pattern again keeps the newer
 * version). False, and nothing recorded, for a pattern out of those
 * bounds. */
bool tomb_add_pattern(tomb_t *t, const char *pattern, size_t plen, uint64_t version, int64_t now_ms);
/* The same until expires_ms (at most ttl_ms from now; nothing when it is
 * past; true all the same): a pattern tombstone learnt from another node
 * expires at tomb_expiry_of(version), however often it is passed on. */
bool tomb_add_pattern_until(tomb_t *t, const char *pattern, size_t plen, uint64_t version, int64_t expires_ms,
                            int64_t now_ms);
/* The live pattern tombstones, at most cap of them (TOMB_PATTERNS is all),
 * copied into items (the caller's), for work that must not hold the lock
 * (handoff: a member back in the ring learns the patterns it missed).
 * Returns how many. */
typedef struct tomb_pattern_item {
    uint64_t version;
    int64_t expires;
    size_t len;
    char bytes[LIMITS_KEY_MAX];
} tomb_pattern_item_t;
long tomb_copy_patterns(tomb_t *t, int64_t now_ms, tomb_pattern_item_t *items, size_t cap);
/* What the tombstones say of a fill of key at version: TOMB_DELETED when a
 * live tombstone newer than version covers it (its own, or a pattern's
 * that matches it), TOMB_IN_DOUBT when only a floor does (version not newer
 * than it). Either is counted in tomb_refused(), a floor's also in
 * tomb_floor_refused(). */
typedef enum { TOMB_CLEAR = 0, TOMB_DELETED, TOMB_IN_DOUBT } tomb_verdict_t;
tomb_verdict_t tomb_check(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms);
/* tomb_check() != TOMB_CLEAR: refuse the fill. */
bool tomb_blocks(tomb_t *t, const void *key, size_t klen, uint64_t version, int64_t now_ms);
/* The newest version a live tombstone (the key's, or a pattern's that
 * matches it) records for key; 0 when there is none (what a peer that
 * verifies its copy against ours needs to know). */
uint64_t tomb_version(tomb_t *t, const void *key, size_t klen, int64_t now_ms);
size_t tomb_count(tomb_t *t, int64_t now_ms);
uint64_t tomb_refused(tomb_t *t);
size_t tomb_pattern_count(tomb_t *t, int64_t now_ms);
/* Live key tombstones that gave way to a newer one (the table was full). */
uint64_t tomb_evictions(tomb_t *t);
/* Live pattern tombstones that gave way to a newer one (the table was full). */
uint64_t tomb_pattern_evictions(tomb_t *t);
/* Key ranges with a live floor (all of them while a pattern's is live). */
size_t tomb_floor_count(tomb_t *t, int64_t now_ms);
/* Fills refused by a floor alone. */
uint64_t tomb_floor_refused(tomb_t *t);

/* What /metrics shows of the table, taken by tomb_get_metrics (t may be
 * NULL: all zero). */
typedef struct tomb_metrics {
    uint64_t count, refused;
    uint64_t patterns, pattern_evictions;
    uint64_t evictions;
    uint64_t floors, floor_refused;
} tomb_metrics_t;
void tomb_get_metrics(tomb_t *t, int64_t now_ms, tomb_metrics_t *out);
extern const metrics_table_t tomb_metrics_table;

#endif
