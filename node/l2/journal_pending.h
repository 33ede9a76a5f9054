/* journal_pending: which keys have a record in the journal that Redis has
 * not acknowledged yet, by key hash (ring_key_hash), with the newest such
 * version and whether that newest record is a DEL.
 *
 * Why: in --l2-write-mode journal a write Redis refused is acknowledged
 * once the journal synced it; until the drainer has replayed it, Redis
 * still holds an older value (or none, or an older tombstone). A read
 * through to Redis (an owner's L1 miss: an eviction, a restart, a new
 * owner) must not serve or cache that older value: the route layer asks
 * this table first (node/route/route_read.c).
 *
 * The journal owns the table (journal_lookup, node/l2/journal.h), because
 * the journal alone sees the three moments that change it: a group's
 * fdatasync succeeding (records become acknowledgeable: entered then, by
 * the writer thread, before any append of the group completes, so no
 * client can be told OK before a read sees its record), a drained file
 * removed after Redis acknowledged all of it (its generation is cleared),
 * and the files found at open (entered again: they are replayed later).
 * Each journal file is one generation; the table keeps, per key, the
 * generation of its newest record: once that file is drained Redis holds
 * that version or a newer one, so the key is no longer pending even if an
 * older record of it waits in a later file (the replay's Lua refuses it).
 *
 * Bound: max_entries keys. A record that does not fit (the table full, or
 * out of memory) is counted and is not silently dropped: from then on every
 * lookup answers JOURNAL_PENDING_IN_DOUBT, for any key, until the
 * generation it belongs to is cleared (its file drained).
 *
 * A 64-bit hash names a key, as the tombstones do: two keys sharing one
 * would share an entry (a read of the other key refused, or answered "not
 * found" for a pending DEL), at odds of about entries / 2^64. Probes start
 * at a keyed hash of it, so keys crafted to share low bits cannot crowd one
 * probe run.
 *
 * Threads: every call is thread-safe (one mutex, never held across I/O).
 */
#ifndef DCACHE_JOURNAL_PENDING_H
#define DCACHE_JOURNAL_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The default bound of the table (see journal_open for how the journal
 * derives its own from --l2-journal-max). */
#define JOURNAL_PENDING_MAX 65536u

typedef struct journal_pending journal_pending_t;

typedef enum {
    JOURNAL_PENDING_NONE = 0,  /* nothing of this key waits: Redis's answer stands */
    JOURNAL_PENDING_SET,       /* the newest pending record is a SET at *version */
    JOURNAL_PENDING_DEL,       /* the newest pending record is a DEL at *version */
    JOURNAL_PENDING_IN_DOUBT,  /* a record could not be entered: any key may be pending */
} journal_pending_state_t;

typedef struct journal_pending_stats {
    uint64_t entries;          /* keys pending */
    uint64_t max_entries;      /* the bound */
    uint64_t overflows;        /* records that could not be entered */
    bool in_doubt;             /* since one of those, until its generation is cleared */
} journal_pending_stats_t;

/* NULL on allocation failure; max_entries >= 1. */
journal_pending_t *journal_pending_new(size_t max_entries);
void journal_pending_free(journal_pending_t *p);

/* A record of key `hash` at `version` (del: a DEL) is durable in
 * generation gen (>= 1). The newest version of a key wins; at an equal
 * version the later generation is kept. False when it could not be
 * entered: counted, and the table is in doubt until gen is cleared. */
bool journal_pending_add(journal_pending_t *p, uint64_t hash, uint64_t version, bool del, uint64_t gen);
/* Every record of generations up to gen is in Redis: their keys are no
 * longer pending, and an overflow of those generations no longer puts the
 * table in doubt. */
void journal_pending_clear(journal_pending_t *p, uint64_t gen);
/* What waits for this key; *version is set for SET and DEL. */
journal_pending_state_t journal_pending_lookup(journal_pending_t *p, uint64_t hash, uint64_t *version);
void journal_pending_get_stats(journal_pending_t *p, journal_pending_stats_t *out);

#endif
