/* repair_book: what anti-entropy repair (node/route/repair.h) publishes for
 * the workers that answer other owners' digests, and its counters.
 *
 * Each round a node computes, for every other member of its ring, the
 * bucket digests (cluster/digest.h) of the items both own, as of the
 * round's cut, and publishes them here; a member that sends its own digests
 * for the same ring and cut is told which buckets differ. Only the latest
 * round is kept: a member asking about another round (or ring) is told
 * "unavailable" and asks again.
 *
 * Bounds: one table of 2^level digests per ring member that shares keys
 * with this node (NULL, i.e. all zero, for the others): 8 KiB to 512 KiB a
 * member (cluster/digest.h; the level follows the keys shared).
 *
 * Threads: published by the main loop, read by workers under the mutex.
 * Ownership: the book owns the tables published to it (freed on the next
 * publish or by repair_book_destroy); the publisher may keep reading them
 * until it publishes again (nobody else changes them).
 */
#ifndef DCACHE_REPAIR_BOOK_H
#define DCACHE_REPAIR_BOOK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "node/metrics/metrics.h"

typedef struct repair_stats {
    atomic_uint_fast64_t rounds;             /* rounds finished */
    atomic_uint_fast64_t rounds_skipped;     /* not started: syncing, minority, handoff running, alone */
    atomic_uint_fast64_t digests_sent;       /* digest tables sent to other owners */
    atomic_uint_fast64_t digests_unanswered; /* ... not compared this round (peer not ready or down) */
    atomic_uint_fast64_t buckets_compared;   /* by the other owners, for us */
    atomic_uint_fast64_t buckets_differing;
    atomic_uint_fast64_t items_offered;      /* entries and tombstones offered from differing buckets */
    atomic_uint_fast64_t entries_sent;       /* entries the other owner lacked or held older */
    atomic_uint_fast64_t tombstones_learnt;  /* deletes learnt from another owner */
    atomic_uint_fast64_t entries_deleted;    /* copies here removed because another owner deleted them */
    atomic_uint_fast64_t bytes_sent;         /* digests, offers and entries */
    atomic_uint_fast64_t digests_answered;   /* as the other owner: digests compared here */
    atomic_uint_fast64_t last_duration_ms;
    atomic_int_fast64_t running;
} repair_stats_t;

/* repair_stats_t's series in /metrics. */
extern const metrics_table_t repair_metrics_table;

typedef struct repair_book {
    pthread_mutex_t lock;
    uint64_t ring, cut;      /* of the tables; cut 0: nothing published */
    unsigned level;          /* 2^level digests a table */
    size_t n;
    uint64_t **tables;       /* [n] by ring index; NULL = all zero */
} repair_book_t;

void repair_book_init(repair_book_t *b);
void repair_book_destroy(repair_book_t *b);
/* Replaces what is published by `tables` (n of them, 2^level digests each,
 * taken over). */
void repair_book_publish(repair_book_t *b, uint64_t ring, uint64_t cut, unsigned level, uint64_t **tables,
                         size_t n);
/* Compares the encoded table `theirs` (2^their_level digests) from the
 * member at ring index `from` with ours for it, for that ring and cut, at
 * the smaller of the two levels (*level): marks the differing buckets in
 * bits (DIGEST_BITMAP_BYTES_MAX room) and returns how many differ; -1 when
 * nothing is published for that ring and cut. */
long repair_book_compare(repair_book_t *b, uint64_t ring, uint64_t cut, size_t from, const uint8_t *theirs,
                         unsigned their_level, uint8_t *bits, unsigned *level);

#endif
