/* audit: the trail of what changed the cache, who asked and what came of
 * it (README "Audit"). Every DELETE, key invalidation, pattern
 * invalidation (dry runs too), warming trigger and tokens reload is
 * recorded once, by the node that received the request.
 *
 * Where records go: without a database, to this node's JSON-lines file
 * `<dir>/<node>.jsonl`, rotated by size into `<node>.jsonl.1` .. `.N`
 * (the oldest is removed); `audit_query_file` reads them back, newest
 * first. One line per record:
 *   {"id":"<ms>.<seq>","time":"2026-12-02T16:30:00.123Z","time_ms":...,
 *    "node":..,"actor":..,"action":..,"keys":[first 10],"key_count":..,
 *    "pattern":..,"dry_run":..,"matched":..,"invalidated":..,"status":..,
 *    "result":..,"duration_ms":..,"request_id":..}
 * (absent members: not applicable). `id` orders a node's records as
 * they were written: the submission time (never going back within a run)
 * and a sequence number of this run.
 *
 * Threads: audit_submit from any thread (a mutex around a bounded queue,
 * then a uv_async wakes the writer). One writer thread, owned by the
 * audit_t (started by audit_open, joined by audit_close), runs its own
 * libuv loop: it takes everything queued as one group, writes it and
 * fdatasyncs the file at most every sync_ms (group commit: the HTTP
 * workers never wait for the disk). audit_query_file blocks on file
 * reads: run it off the loops (uv_queue_work).
 *
 * Bounds: queue_max records queued; a record that does not fit is dropped
 * and counted (audit_dropped_total{reason="queue_full"}), as is one the
 * file refuses (reason="write_failed"): nothing is dropped silently. The
 * files: (files + 1) * file_max_bytes at most.
 *
 * Ownership: the caller owns the audit_t (audit_open, audit_close frees
 * it). audit_submit takes the record's heap fields (keys, pattern) over,
 * even when it drops the record.
 */
#ifndef DCACHE_AUDIT_H
#define DCACHE_AUDIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/audit/audit_pg.h"
#include "node/audit/audit_record.h"
#include "node/core/sbuf.h"
#include "node/metrics/metrics.h"

typedef struct audit_config {
    const char *node;            /* this node's name (file name, "node" of each record); NULL: later */
    const char *dir;             /* where the files go; created if missing */
    uint64_t file_max_bytes;     /* 64 MiB: rotate past this */
    unsigned files;              /* 4 rotated files kept */
    size_t queue_max;            /* 16384 */
    uint64_t sync_ms;            /* 100: group commit interval */
    const char *db;              /* PostgreSQL (audit_pg.h); NULL or "": files only */
} audit_config_t;

typedef struct audit_stats {
    atomic_uint_fast64_t recorded;          /* submitted and kept */
    atomic_uint_fast64_t written;           /* in the file */
    atomic_uint_fast64_t dropped_queue;     /* the queue was full */
    atomic_uint_fast64_t dropped_write;     /* the file refused it */
    atomic_uint_fast64_t syncs;             /* fdatasync calls */
    atomic_uint_fast64_t rotations;
    atomic_int_fast64_t queued;             /* waiting for the writer */
    audit_pg_stats_t pg;                    /* with --audit-db (audit_pg.h) */
} audit_stats_t;

/* audit_stats_t's series in /metrics. */
extern const metrics_table_t audit_metrics_table;

typedef struct audit audit_t;

/* 0, or -errno with a message in err (the directory cannot be made or
 * written, the thread cannot start). Without cfg->node, records wait in
 * the queue until audit_set_node names the node (its name may only be
 * known once membership runs). */
int audit_open(audit_t **out, const audit_config_t *cfg, char *err, size_t errcap);
/* Names the node, once (later calls change nothing): the file is
 * <dir>/<node>.jsonl, and what waited is written. Any thread. */
void audit_set_node(audit_t *a, const char *node);
/* Writes what is queued, syncs, stops the writer and frees everything. */
void audit_close(audit_t *a);
/* Queues a record (time and node are the caller's and this node's); its
 * id is given here. false when dropped (counted). Takes r's heap fields. */
bool audit_submit(audit_t *a, audit_record_t *r);
audit_stats_t *audit_stats(audit_t *a);
/* Blocks until everything submitted before the call is written and
 * synced (tests, shutdown). */
void audit_flush(audit_t *a);
const char *audit_dir(const audit_t *a);
/* "" until audit_set_node; then valid until audit_close. */
const char *audit_node(audit_t *a);

/* Reads `<dir>/<node>.jsonl` and its rotations newest first and appends
 * {"records":[...],"next":"..."|null,"source":"file"} to out. Blocks on
 * file reads (run it in the thread pool). false with err when the files
 * cannot be read (a missing file is an empty trail). */
bool audit_query_file(const char *dir, const char *node, const audit_query_t *q, sbuf_t *out, char *err,
                      size_t errcap);

#endif
