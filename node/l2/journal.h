/* journal: the local replay journal of writes that could not reach Redis
 * (--l2-write-mode journal). Writes are appended in order and fsync'd once
 * per batch; when Redis is back the journal is drained in order and
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
 * Bounds: max_bytes over both files; an append that does not fit is
 * refused with -ENOSPC and the caller falls back to refusing the write.
 *
 * Threads: every function may be called from any thread; a mutex orders
 * appends against rotation. Ownership: the caller owns the journal_t; the
 * records passed to the read callback are valid during the call only.
 */
#ifndef DCACHE_JOURNAL_H
#define DCACHE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Opens (creating dir and files as needed) and validates what is there.
 * Returns 0 or a negative errno with a message in err. */
int journal_open(journal_t **out, const char *dir, uint64_t max_bytes, char *err, size_t errcap);
void journal_close(journal_t *j);

/* Appends n records and fsyncs once. 0, -ENOSPC when they do not fit
 * max_bytes, -EINVAL for a record out of bounds, or a negative errno from
 * the file system (nothing of the batch counts as written then). */
int journal_append(journal_t *j, const journal_rec_t *recs, size_t n);

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
/* Every drained record is in Redis: removes the draining file. */
int journal_drain_done(journal_t *j);

#endif
