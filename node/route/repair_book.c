#include "node/route/repair_book.h"

#include <stdlib.h>

#include "cluster/digest.h"

#define REPAIR_COUNTER(F, name, help) METRICS_ATOMIC_COUNTER(repair_stats_t, F, name, NULL, help)
static const metrics_desc_t repair_metrics_rows[] = {
    REPAIR_COUNTER(rounds, "repair_rounds_total", "Anti-entropy rounds finished."),
    REPAIR_COUNTER(rounds_skipped, "repair_rounds_skipped_total",
                   "Rounds not run: syncing, in a minority, draining, handing off, or alone."),
    REPAIR_COUNTER(digests_sent, "repair_digests_total", "Digest tables sent to the other owners."),
    REPAIR_COUNTER(digests_unanswered, "repair_digests_unanswered_total",
                   "Digest tables no other owner compared this round (down, or not at the same round or ring)."),
    REPAIR_COUNTER(buckets_compared, "repair_buckets_compared_total", "Digest buckets compared with other owners."),
    REPAIR_COUNTER(buckets_differing, "repair_buckets_differing_total",
                   "Digest buckets that differed from another owner's (their items were compared one by one)."),
    REPAIR_COUNTER(items_offered, "repair_items_offered_total",
                   "Entries and tombstones of differing buckets offered to another owner."),
    REPAIR_COUNTER(entries_sent, "repair_entries_sent_total",
                   "Entries sent to an owner that lacked them or held an older version."),
    REPAIR_COUNTER(tombstones_learnt, "repair_tombstones_learnt_total",
                   "Deletes learnt from another owner by repair."),
    REPAIR_COUNTER(entries_deleted, "repair_entries_deleted_total",
                   "Entries removed here because another owner had deleted them."),
    REPAIR_COUNTER(bytes_sent, "repair_bytes_total", "Bytes of digests, offers and entries repair sent."),
    REPAIR_COUNTER(digests_answered, "repair_digests_answered_total", "Other owners' digest tables compared here."),
    {"repair_last_duration_seconds", NULL, METRICS_GAUGE, METRICS_ATOMIC_U64,
     offsetof(repair_stats_t, last_duration_ms), "Duration of the last repair round.", 1000},
    METRICS_ATOMIC_GAUGE(repair_stats_t, running, "repair_running", NULL, "1 while a repair round is in progress."),
};
const metrics_table_t repair_metrics_table = METRICS_TABLE(repair_metrics_rows);

static void repair_book_free_tables(uint64_t **tables, size_t n)
{
    for (size_t i = 0; tables && i < n; i++) free(tables[i]);
    free(tables);
}

void repair_book_init(repair_book_t *b)
{
    pthread_mutex_init(&b->lock, NULL);
    b->ring = b->cut = 0;
    b->n = 0;
    b->tables = NULL;
}

void repair_book_destroy(repair_book_t *b)
{
    repair_book_free_tables(b->tables, b->n);
    pthread_mutex_destroy(&b->lock);
}

void repair_book_publish(repair_book_t *b, uint64_t ring, uint64_t cut, unsigned level, uint64_t **tables,
                         size_t n)
{
    pthread_mutex_lock(&b->lock);
    uint64_t **old = b->tables;
    size_t oldn = b->n;
    b->ring = ring;
    b->cut = cut;
    b->level = level;
    b->tables = tables;
    b->n = n;
    pthread_mutex_unlock(&b->lock);
    repair_book_free_tables(old, oldn);
}

long repair_book_compare(repair_book_t *b, uint64_t ring, uint64_t cut, size_t from, const uint8_t *theirs,
                         unsigned their_level, uint8_t *bits, unsigned *level)
{
    static const uint64_t zero[DIGEST_BUCKETS_MAX];
    long n = -1;
    pthread_mutex_lock(&b->lock);
    if (b->cut && b->cut == cut && b->ring == ring && from < b->n)
        n = (long)digest_compare(b->tables[from] ? b->tables[from] : zero, b->level, theirs, their_level, bits,
                                 level);
    pthread_mutex_unlock(&b->lock);
    return n;
}
