/* journal: the local replay journal of writes that could not reach Redis
 * (--l2-write-mode journal). Writes are appended in order and made durable
 * by group commit; when Redis is back the journal is drained in order and
 * removed only after Redis acknowledged every record.
 *
 * Files, in one directory:
 *   journal.active     appends go here
 *   journal.draining   the records being replayed; appends made while a
 *                      drain runs go to a fresh journal.active, so
 *                      removing the drained file never loses them
 * A node restarted with either file drains it (draining first: it is
 * older).
 *
 *   record  = [payload length u32 LE][crc32c(payload) u32 LE][payload]
 *   payload = [op u8][version u64 LE][expires_at_ms i64 LE][key length u16 LE]
 *             [content type length u8][value length u32 LE][key][content type][value]
 *   op: 1 = SET (value stored until expires_at_ms, 0 = never), 2 = DEL.
 * A torn record at the end (a crash in the middle of a write) fails its
 * length or checksum: reading stops there and the file is cut back to the
 * last whole record, so later appends are readable.
 *
 * Group commit: a disk sync per write would stall the loop that asked and
 * serialise every loop behind it. Appends are encoded by the caller and
 * queued; one writer thread, owned by the journal (started by
 * journal_open, joined by journal_close), takes everything queued as one
 * group, writes it, calls fdatasync once for the group and then completes
 * every append of it: with 0 only after that fdatasync returned success
 * ("acknowledged means durable"), or, when the write or the sync failed,
 * with that errno for every append of the group (the file is cut back to
 * the last synced group). Appends complete in the order they were queued,
 * so each caller's appends are on disk in its order.
 *
 * Bounds: max_bytes over both files plus the appends queued or being
 * written; an append that does not fit is refused at once with -ENOSPC
 * and the caller falls back to refusing the write. journal_get_stats
 * shows the queue and the groups (l2_journal_* in /metrics).
 *
 * Pending keys (node/l2/journal_pending.h): the journal keeps a table of
 * the keys whose records Redis has not acknowledged yet, so that a read
 * through to Redis does not take Redis's older value of a key whose newer
 * write is only here (journal_lookup). A record is entered by the writer
 * thread once its group's fdatasync succeeded and before any append of
 * the group completes (entering it when queued would leave a failed
 * group's records pending with nothing to drain them); the records of the
 * files found at open are entered again; journal_drain_done clears the
 * drained file's generation, so a record appended while a drain ran (to
 * the fresh active file) stays pending. Its bound: max_bytes divided by
 * the smallest record, at most JOURNAL_PENDING_MAX keys.
 *
 * Threads:
 *   - the writer thread: the only one that writes or syncs journal.active;
 *   - journal_append_async, journal_port_*: the port's loop thread, which
 *     the completions come back to (a uv_async_t per port);
 *   - journal_append: blocks until its group is synced; any thread but a
 *     loop's (tests; nothing on a loop uses it);
 *   - the drain calls: one thread at a time (the drainer, on the main
 *     loop). journal_drain_begin swaps the files between two groups, so it
 *     may wait for the group being synced;
 *   - journal_bytes, journal_records, journal_get_stats, journal_hold,
 *     journal_lookup: any thread, never waiting for disk.
 * Ownership: the caller owns the journal_t, and closes it only after every
 * port is freed and no journal_append runs. Each port belongs to its loop's
 * owner: journal_port_close, then journal_port_free after its `done`.
 * Records are copied (encoded) before an append returns; the records passed
 * to the read callback are valid during the call only.
 */
#ifndef DCACHE_JOURNAL_H
#define DCACHE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "node/l2/journal_pending.h"

#define JOURNAL_OP_SET 1
#define JOURNAL_OP_DEL 2

typedef struct journal journal_t;

typedef struct journal_rec {
    uint8_t op;
    uint64_t version;
    int64_t expires_at_ms;     /* SET: absolute expiry, 0 = never */
    const void *key;
    size_t klen;               /* 1..65535 */
    const char *ct;
    size_t ctlen;              /* 0..255 */
    const void *value;
    size_t vlen;
} journal_rec_t;

/* Opens (creating dir and files as needed), validates what is there and
 * starts the writer thread. Returns 0 or a negative errno with a message
 * in err. */
int journal_open(journal_t **out, const char *dir, uint64_t max_bytes, char *err, size_t errcap);
/* Lets the writer write and sync what is still queued (those appends
 * complete as usual), joins it and closes the files. */
void journal_close(journal_t *j);

/* An append's outcome: 0 once its group was fdatasync'd, else the negative
 * errno of the group's write or sync (nothing of the append counts as
 * written). */
typedef void (*journal_done_fn)(void *ctx, int status);

/* A loop's way in: completions are handed back to `loop` through a
 * uv_async_t and a completion queue under a mutex (uv_async_send
 * coalesces wakeups, the queue does not lose completions). The port holds
 * its loop alive until closed. NULL on allocation failure. */
typedef struct journal_port journal_port_t;
journal_port_t *journal_port_new(journal_t *j, uv_loop_t *loop);
/* Queues n records (encoded here: the caller's buffers are free once it
 * returns) and returns at once. 0: cb(ctx, status) runs exactly once,
 * later, on the port's loop, never from inside this call. Otherwise cb
 * will not run: -ENOSPC when they do not fit max_bytes, -EINVAL for a
 * record out of bounds, -ENOMEM, -ESHUTDOWN once the port is closing. */
int journal_append_async(journal_port_t *p, const journal_rec_t *recs, size_t n, journal_done_fn cb, void *ctx);
/* Refuses new appends, runs the callbacks of those still in the writer's
 * hands as they complete (the writer always finishes a group), then
 * closes the uv_async_t and calls done(arg) once, on the loop, never from
 * inside this call. */
void journal_port_close(journal_port_t *p, void (*done)(void *arg), void *arg);
/* Only after journal_port_close's `done`. NULL is ignored. */
void journal_port_free(journal_port_t *p);

/* The same, blocking until the group is synced: the status, or one of the
 * immediate refusals above. Never on a loop thread. */
int journal_append(journal_t *j, const journal_rec_t *recs, size_t n);

typedef struct journal_stats {
    uint64_t bytes, records;       /* held in both files (durable) */
    uint64_t queued_bytes;         /* appends queued or in the group being written */
    uint64_t queued_appends;
    uint64_t max_bytes;            /* the bound of bytes + queued_bytes */
    uint64_t fsyncs;               /* fdatasync calls: one per group */
    uint64_t group_records;        /* records those calls covered: / fsyncs = records per sync */
    uint64_t group_appends;        /* appends they covered (callers woken per sync) */
    uint64_t failed_groups;        /* groups whose write or sync failed (every append failed) */
    uint64_t pending_keys;         /* keys with a record Redis has not acknowledged */
    uint64_t pending_max;          /* the bound of pending_keys */
    uint64_t pending_overflows;    /* records that did not fit the pending table */
    bool pending_in_doubt;         /* since one of those, until its file is drained */
} journal_stats_t;
void journal_get_stats(journal_t *j, journal_stats_t *out);

/* Tests: while held, the writer takes no new group and appends pile up in
 * the queue (still bounded), so a test can make a group of a known size.
 * journal_close releases it. */
void journal_hold(journal_t *j, bool hold);

/* What waits in the journal for the key with this ring_key_hash: the
 * newest pending version and whether it is a DEL, nothing, or "in doubt"
 * (the table overflowed: any key may be pending). */
journal_pending_state_t journal_lookup(journal_t *j, uint64_t hash, uint64_t *version);

/* Bytes and records held (both files). */
uint64_t journal_bytes(journal_t *j);
uint64_t journal_records(journal_t *j);

/* Starts (or resumes) a drain: when no draining file exists, the active
 * file becomes it. Returns the records to replay. */
int64_t journal_drain_begin(journal_t *j);
/* Reads up to max records of the draining file from *pos (start at 0),
 * calling fn for each; *pos advances past what was read. Returns the count
 * read (0 at the end) or a negative errno (-EIO: a record no longer reads:
 * the file was damaged after it was opened; nothing after it is dropped).
 * fn returning non-zero stops early (that record is not consumed). */
typedef int (*journal_fn)(const journal_rec_t *r, void *ctx);
int64_t journal_drain_read(journal_t *j, uint64_t *pos, size_t max, journal_fn fn, void *ctx);
/* Every drained record is in Redis: removes the draining file, and its
 * keys are no longer pending (unless a newer record waits in the active
 * file). */
int journal_drain_done(journal_t *j);

#endif
