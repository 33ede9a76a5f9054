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

#include "node/core/sbuf.h"
#include "node/metrics/metrics.h"

typedef enum {
    AUDIT_DELETE = 0,
    AUDIT_INVALIDATE,           /* keys */
    AUDIT_INVALIDATE_PATTERN,   /* dry runs too */
    AUDIT_WARM,
    AUDIT_TOKENS_RELOAD,
    AUDIT_ACTIONS
} audit_action_t;

const char *audit_action_name(audit_action_t a);
/* false when s names no action. */
bool audit_action_parse(const char *s, size_t len, audit_action_t *out);

#define AUDIT_KEYS_MAX 10        /* keys listed in a record; key_count has them all */
#define AUDIT_ID_MAX 48          /* request ids */
#define AUDIT_ACTOR_MAX 72       /* a token name, or a client address */

typedef struct audit_record {
    int64_t time_ms;             /* wall clock when the request arrived */
    uint64_t duration_us;
    audit_action_t action;
    char request_id[AUDIT_ID_MAX];
    char actor[AUDIT_ACTOR_MAX];
    uint64_t key_count;          /* keys the request named */
    char *keys;                  /* JSON array of the first AUDIT_KEYS_MAX keys, or NULL (owned) */
    char *pattern;               /* the pattern, NUL-terminated, or NULL (owned) */
    bool dry_run;
    int64_t matched, invalidated; /* -1: not applicable */
    int status;                  /* the HTTP status answered */
    char result[32];             /* "ok", or the error code answered */
} audit_record_t;

/* Frees the record's heap fields (not the record). */
void audit_record_clear(audit_record_t *r);

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
    /* With --audit-db (audit_pg.h). */
    atomic_uint_fast64_t shipped;           /* inserted into PostgreSQL */
    atomic_uint_fast64_t dropped_spool;     /* rotated away before PostgreSQL took them */
    atomic_int_fast64_t pg_backlog_bytes;   /* in the files, not in PostgreSQL yet */
    atomic_int_fast64_t pg_up;              /* 1 while inserts succeed */
    bool pg;                                /* --audit-db given */
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

/* One record as a JSON object (no newline). */
void audit_record_json(sbuf_t *b, const audit_record_t *r, const char *node, const char *id);

/* What GET /api/audit asks for. */
typedef struct audit_query {
    int64_t since_ms, until_ms;  /* 0: unbounded */
    int action;                  /* audit_action_t, or -1: any */
    char actor[AUDIT_ACTOR_MAX]; /* "": any */
    unsigned limit;              /* 1..1000 */
    char cursor[64];             /* "": the newest; else the `next` of the previous page */
} audit_query_t;

/* Reads `<dir>/<node>.jsonl` and its rotations newest first and appends
 * {"records":[...],"next":"..."|null,"source":"file"} to out. Blocks on
 * file reads (run it in the thread pool). false with err when the files
 * cannot be read (a missing file is an empty trail). */
bool audit_query_file(const char *dir, const char *node, const audit_query_t *q, sbuf_t *out, char *err,
                      size_t errcap);

#endif
