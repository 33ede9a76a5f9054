/* audit_pg: the audit trail in PostgreSQL (--audit-db).
 *
 * The node's JSON-lines files (audit.h) are the spool: every record is
 * written and synced there first, and a shipper on the audit writer's loop
 * reads them in order from where it left off and inserts them, a batch at
 * a time, into the table dcache_audit (created at start if missing). When
 * PostgreSQL is down or slow the records wait in the files and go in, in
 * order, when it answers; a batch that fails is sent again. Inserts are
 * idempotent (ON CONFLICT (node, id) DO NOTHING), so a batch sent twice
 * (its answer lost, or the node restarted before it saved how far it got)
 * is stored once.
 *
 * Where the shipper is: the id of the first record of the file it reads and
 * the offset in it, saved in <dir>/<node>.shipped after each batch
 * (unsynced: losing it only sends records again). A file is known by its
 * first record, so the position survives rotations and restarts.
 *
 * Bound: the files are the spool, (files + 1) x --audit-file-size; a file
 * rotated away before it was shipped loses its unshipped records, counted
 * in audit_dropped_total{reason="spool_full"}.
 *
 *   CREATE TABLE dcache_audit (node text, id text, time timestamptz,
 *     time_ms bigint, actor text, action text, request_id text,
 *     status integer, result text, record jsonb, PRIMARY KEY (node, id))
 *   indexes: (time_ms DESC), (action, time_ms DESC)
 * `record` is the JSON line as written; the other columns are its fields.
 *
 * Threads: audit_pg_* on the audit writer's loop thread, except
 * audit_pg_query, which blocks (libpq's PQconnectdb, PQexecParams): run it
 * in the thread pool. Ownership: the audit writer owns the shipper.
 */
#ifndef DCACHE_AUDIT_PG_H
#define DCACHE_AUDIT_PG_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <stdatomic.h>

#include "node/audit/audit_record.h"
#include "node/core/sbuf.h"

typedef struct audit_pg audit_pg_t;

/* The shipper's counters (embedded in audit_stats_t, which /metrics shows). */
typedef struct audit_pg_stats {
    atomic_uint_fast64_t shipped;           /* inserted into PostgreSQL */
    atomic_uint_fast64_t dropped_spool;     /* rotated away before PostgreSQL took them */
    atomic_uint_fast64_t dropped_torn;      /* lines that were not JSON (torn by a crash), skipped */
    atomic_int_fast64_t backlog_bytes;      /* in the files, not in PostgreSQL yet */
    atomic_int_fast64_t up;                 /* 1 while inserts succeed */
    bool configured;                        /* --audit-db given */
} audit_pg_stats_t;

typedef struct audit_pg_config {
    const char *conninfo;
    unsigned files;               /* rotated files kept */
    audit_pg_stats_t *stats;
} audit_pg_config_t;

/* NULL on a bad conninfo (err says why) or no memory. Ships nothing
 * before audit_pg_start. */
audit_pg_t *audit_pg_new(uv_loop_t *loop, const audit_pg_config_t *cfg, char *err, size_t errcap);
/* The current file is `path` (<dir>/<node>.jsonl): finds where the
 * shipper left off and starts. */
void audit_pg_start(audit_pg_t *s, const char *path);
/* Records were appended to the current file. */
void audit_pg_kick(audit_pg_t *s);
/* The current file is about to become <path>.1 (and the oldest rotated
 * file to go): what of it was not shipped is counted as dropped. */
void audit_pg_rotating(audit_pg_t *s);
void audit_pg_close(audit_pg_t *s, void (*done)(void *arg), void *arg);
void audit_pg_free(audit_pg_t *s);

/* Reads the trail from PostgreSQL as audit_query_file reads the files,
 * appending {"records":[...],"next":...,"source":"postgres"}. Blocks. */
bool audit_pg_query(const char *conninfo, const audit_query_t *q, sbuf_t *out, char *err, size_t errcap);

#endif
