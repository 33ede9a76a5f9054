#include "node/audit/audit_pg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/core/log.h"
#include "node/pg/pg_uv.h"

#define AUDIT_PG_BATCH_BYTES (256u << 10)
#define AUDIT_PG_BATCH_LINES 500
#define AUDIT_PG_RETRY_MS 1000

static const char *const audit_pg_schema[] = {
    "CREATE TABLE IF NOT EXISTS dcache_audit (node text NOT NULL, id text NOT NULL, time timestamptz NOT NULL, "
    "time_ms bigint NOT NULL, actor text NOT NULL, action text NOT NULL, request_id text NOT NULL, "
    "status integer NOT NULL, result text NOT NULL, record jsonb NOT NULL, PRIMARY KEY (node, id))",
    "CREATE INDEX IF NOT EXISTS dcache_audit_time_idx ON dcache_audit (time_ms DESC)",
    "CREATE INDEX IF NOT EXISTS dcache_audit_action_time_idx ON dcache_audit (action, time_ms DESC)",
};
#define AUDIT_PG_SCHEMA_STEPS (sizeof audit_pg_schema / sizeof audit_pg_schema[0])

static const char audit_pg_insert[] =
    "INSERT INTO dcache_audit (node, id, time, time_ms, actor, action, request_id, status, result, record) "
    "SELECT r->>'node', r->>'id', to_timestamp((r->>'time_ms')::bigint / 1000.0), (r->>'time_ms')::bigint, "
    "r->>'actor', r->>'action', r->>'request_id', (r->>'status')::integer, r->>'result', r "
    "FROM jsonb_array_elements($1::jsonb) AS r ON CONFLICT (node, id) DO NOTHING";

struct audit_pg {
    uv_loop_t *loop;
    audit_pg_config_t cfg;
    char *path, *state_path;      /* NULL until audit_pg_start */
    pg_uv_t *pg;
    uv_timer_t retry;
    unsigned schema_done;          /* statements of audit_pg_schema done */
    bool busy;                     /* a statement in flight */
    bool closing;
    /* Where the shipper is: file number fno (the current file is number
     * `rotations`; <path>.k is rotations - k) and the offset in it. */
    uint64_t rotations, fno;
    uint64_t offset;
    uint64_t batch_end;            /* offset after the batch in flight */
    uint64_t batch_fno;
    void (*done)(void *arg);
    void *done_arg;
};

/* <path> for index 0, <path>.k otherwise; the caller frees. */
static char *audit_pg_file(const audit_pg_t *s, uint64_t index)
{
    size_t cap = strlen(s->path) + 24;
    char *p = malloc(cap);
    if (!p) return NULL;
    if (index == 0) snprintf(p, cap, "%s", s->path);
    else snprintf(p, cap, "%s.%" PRIu64, s->path, index);
    return p;
}

/* The id of a file's first record ("" when it has none). */
static void audit_pg_first_id(const char *file, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(file, "re");
    if (!f) return;
    char line[512];
    if (fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "{\"id\":\"");
        if (at == line) {
            at += 7;
            const char *end = strchr(at, '"');
            if (end && (size_t)(end - at) < cap) {
                memcpy(out, at, (size_t)(end - at));
                out[end - at] = '\0';
            }
        }
    }
    fclose(f);
}

static void audit_pg_save(audit_pg_t *s)
{
    char *file = audit_pg_file(s, s->rotations - s->fno);
    char id[64];
    if (!file) return;
    audit_pg_first_id(file, id, sizeof id);
    free(file);
    FILE *f = fopen(s->state_path, "we");
    if (!f) return;
    fprintf(f, "%s %" PRIu64 "\n", id, s->offset);
    fclose(f);
}

/* At start: the file whose first record the state names, else the oldest. */
static void audit_pg_load(audit_pg_t *s)
{
    s->rotations = s->cfg.files;
    s->fno = 0; /* the oldest possible: <path>.files */
    s->offset = 0;
    FILE *f = fopen(s->state_path, "re");
    char id[64] = "";
    unsigned long long off = 0;
    if (f) {
        if (fscanf(f, "%63s %llu", id, &off) != 2) id[0] = '\0';
        fclose(f);
    }
    for (uint64_t k = s->cfg.files + 1; k-- > 0;) {
        char *file = audit_pg_file(s, k);
        if (!file) continue;
        char first[64];
        audit_pg_first_id(file, first, sizeof first);
        bool exists = access(file, F_OK) == 0;
        free(file);
        if (!exists) continue;
        if (id[0] && strcmp(first, id) == 0) {
            s->fno = s->rotations - k;
            s->offset = off;
            return;
        }
    }
    /* Not found (first run, or rotated away): everything there is, once
     * more; what PostgreSQL has already is skipped by the insert. */
}

static void audit_pg_backlog(audit_pg_t *s)
{
    uint64_t bytes = 0;
    for (uint64_t fno = s->fno; fno <= s->rotations; fno++) {
        char *file = audit_pg_file(s, s->rotations - fno);
        struct stat st;
        if (file && stat(file, &st) == 0) {
            uint64_t size = (uint64_t)st.st_size;
            bytes += fno == s->fno ? (size > s->offset ? size - s->offset : 0) : size;
        }
        free(file);
    }
    atomic_store(&s->cfg.stats->backlog_bytes, (int64_t)bytes);
}

static void audit_pg_ship(audit_pg_t *s);

static void audit_pg_retry_cb(uv_timer_t *t)
{
    audit_pg_ship(t->data);
}

static void audit_pg_later(audit_pg_t *s)
{
    if (!s->closing) uv_timer_start(&s->retry, audit_pg_retry_cb, AUDIT_PG_RETRY_MS, 0);
}

static void audit_pg_failed(audit_pg_t *s, const char *what, const char *err)
{
    if (atomic_exchange(&s->cfg.stats->up, 0) != 0 || !s->schema_done) {
        char esc[300];
        log_warn("audit records wait in the files for PostgreSQL", "\"step\":\"%s\",\"error\":\"%s\"", what,
                 log_escape(err ? err : "", esc, sizeof esc));
    }
    audit_pg_later(s);
}

static void audit_pg_schema_cb(void *ctx, pg_uv_result_t res, const PGresult *r, const char *err)
{
    audit_pg_t *s = ctx;
    s->busy = false;
    if (s->closing) return;
    if (res != PG_UV_OK || PQresultStatus(r) != PGRES_COMMAND_OK) {
        audit_pg_failed(s, "schema", res == PG_UV_OK ? PQresultErrorMessage(r) : err);
        return;
    }
    s->schema_done++;
    audit_pg_ship(s);
}

static void audit_pg_insert_cb(void *ctx, pg_uv_result_t res, const PGresult *r, const char *err)
{
    audit_pg_t *s = ctx;
    s->busy = false;
    if (s->closing) return;
    if (res != PG_UV_OK || PQresultStatus(r) != PGRES_COMMAND_OK) {
        audit_pg_failed(s, "insert", res == PG_UV_OK ? PQresultErrorMessage(r) : err);
        return;
    }
    if (atomic_exchange(&s->cfg.stats->up, 1) == 0) log_info("audit records reach PostgreSQL", NULL);
    atomic_fetch_add(&s->cfg.stats->shipped, strtoull(PQcmdTuples((PGresult *)r), NULL, 10));
    /* A rotation in between dropped the file (counted), or moved it. */
    if (s->batch_fno == s->fno) s->offset = s->batch_end;
    audit_pg_save(s);
    audit_pg_ship(s);
}

/* The next batch of whole lines from the shipper's file, as a JSON array;
 * NULL when there is nothing to ship now. Moves on to the next file at
 * the end of a rotated one. */
static char *audit_pg_batch(audit_pg_t *s, size_t *nlines)
{
    *nlines = 0;
    for (;;) {
        uint64_t index = s->rotations - s->fno;
        char *file = audit_pg_file(s, index);
        if (!file) return NULL;
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        free(file);
        char *buf = malloc(AUDIT_PG_BATCH_BYTES);
        ssize_t n = fd >= 0 && buf ? pread(fd, buf, AUDIT_PG_BATCH_BYTES, (off_t)s->offset) : -1;
        if (fd >= 0) close(fd);
        if (n <= 0) {
            free(buf);
            if (index == 0) return NULL; /* the current file: all shipped */
            s->fno++;                    /* a rotated file done (or gone): the next one */
            s->offset = 0;
            continue;
        }
        sbuf_t b;
        sbuf_init(&b);
        sbuf_puts(&b, "[");
        size_t used = 0, start = 0;
        for (size_t i = 0; i < (size_t)n && *nlines < AUDIT_PG_BATCH_LINES; i++) {
            if (buf[i] != '\n') continue;
            /* A line that is not JSON (torn by a crash mid-write) would
             * fail the whole batch forever: it is counted and skipped. */
            json_t *o = json_loadb(buf + start, i - start, 0, NULL);
            if (json_is_object(o)) {
                if (*nlines) sbuf_puts(&b, ",");
                sbuf_append(&b, buf + start, i - start);
                (*nlines)++;
            } else if (i > start) {
                atomic_fetch_add(&s->cfg.stats->dropped_torn, 1);
            }
            json_decref(o);
            start = used = i + 1;
        }
        free(buf);
        sbuf_puts(&b, "]");
        s->batch_end = s->offset + used;
        s->batch_fno = s->fno;
        if (b.failed) {
            sbuf_free(&b);
            return NULL;
        }
        if (*nlines == 0) {
            sbuf_free(&b);
            if (used == 0) return NULL; /* a partial line: the rest is being written */
            s->offset = s->batch_end;  /* only torn lines: past them */
            continue;
        }
        return sbuf_steal(&b, NULL);
    }
}

static void audit_pg_ship(audit_pg_t *s)
{
    if (s->busy || s->closing || !s->path) return;
    uv_timer_stop(&s->retry);
    if (s->schema_done < AUDIT_PG_SCHEMA_STEPS) {
        s->busy = pg_uv_query(s->pg, audit_pg_schema[s->schema_done], 0, NULL, audit_pg_schema_cb, s) == 0;
        if (!s->busy) audit_pg_later(s);
        return;
    }
    size_t n;
    char *batch = audit_pg_batch(s, &n);
    audit_pg_backlog(s);
    if (!batch) return;
    const char *params[] = {batch};
    s->busy = pg_uv_query(s->pg, audit_pg_insert, 1, params, audit_pg_insert_cb, s) == 0;
    free(batch);
    if (!s->busy) audit_pg_later(s);
}

audit_pg_t *audit_pg_new(uv_loop_t *loop, const audit_pg_config_t *cfg, char *err, size_t errcap)
{
    audit_pg_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->cfg = *cfg;
    pg_uv_config_t pc = {.conninfo = cfg->conninfo, .query_timeout_ms = 10000};
    if (!(s->pg = pg_uv_new(loop, &pc))) {
        snprintf(err, errcap, "not a usable PostgreSQL connection string: give "
                              "postgres://user:password@127.0.0.1:5432/db, with an IP address, not a host name");
        free(s);
        return NULL;
    }
    uv_timer_init(loop, &s->retry);
    s->retry.data = s;
    return s;
}

void audit_pg_start(audit_pg_t *s, const char *path)
{
    if (s->path) return;
    size_t cap = strlen(path) + 16;
    s->path = strdup(path);
    s->state_path = malloc(cap);
    if (!s->path || !s->state_path) {
        free(s->path);
        free(s->state_path);
        s->path = s->state_path = NULL;
        log_error("out of memory starting the audit shipper; records stay in the files", NULL);
        return;
    }
    snprintf(s->state_path, cap, "%s.shipped", path);
    audit_pg_load(s);
    audit_pg_ship(s);
}

void audit_pg_kick(audit_pg_t *s)
{
    audit_pg_ship(s);
}

void audit_pg_rotating(audit_pg_t *s)
{
    if (!s->path) return;
    /* The oldest kept file goes: what of it was not shipped is lost. */
    uint64_t oldest = s->rotations >= s->cfg.files ? s->rotations - s->cfg.files : 0;
    if (s->fno <= oldest && s->rotations >= s->cfg.files) {
        char *file = audit_pg_file(s, s->rotations - s->fno);
        FILE *f = file ? fopen(file, "re") : NULL;
        uint64_t lost = 0;
        if (f && fseeko(f, (off_t)s->offset, SEEK_SET) == 0) {
            int c;
            while ((c = fgetc(f)) != EOF) lost += c == '\n';
        }
        if (f) fclose(f);
        free(file);
        atomic_fetch_add(&s->cfg.stats->dropped_spool, lost);
        if (lost) log_error("audit records rotated away before PostgreSQL took them", "\"lost\":%" PRIu64, lost);
        s->fno = oldest + 1;
        s->offset = 0;
    }
    s->rotations++;
}

static void audit_pg_closed(void *arg)
{
    audit_pg_t *s = arg;
    if (s->done) s->done(s->done_arg);
}

static void audit_pg_timer_closed(uv_handle_t *h)
{
    audit_pg_t *s = h->data;
    pg_uv_close(s->pg, audit_pg_closed, s);
}

void audit_pg_close(audit_pg_t *s, void (*done)(void *arg), void *arg)
{
    s->closing = true;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->retry, audit_pg_timer_closed);
}

void audit_pg_free(audit_pg_t *s)
{
    if (!s) return;
    pg_uv_free(s->pg);
    free(s->path);
    free(s->state_path);
    free(s);
}

/* ---- reading the trail back ---- */

/* "pg.<time_ms>.<id>.<node in hex>" */
static bool audit_pg_cursor(const char *c, long long *ms, char *id, size_t idcap, char *node, size_t nodecap)
{
    if (strncmp(c, "pg.", 3) != 0) return false;
    char *end;
    *ms = strtoll(c + 3, &end, 10);
    if (*end != '.') return false;
    const char *idp = end + 1;
    /* The id is "<ms>.<seq>": two numbers. */
    const char *dot = strchr(idp, '.');
    if (!dot) return false;
    const char *sep = strchr(dot + 1, '.');
    if (!sep || (size_t)(sep - idp) >= idcap) return false;
    memcpy(id, idp, (size_t)(sep - idp));
    id[sep - idp] = '\0';
    const char *hex = sep + 1;
    size_t hl = strlen(hex);
    if (hl % 2 || hl / 2 >= nodecap) return false;
    for (size_t i = 0; i < hl / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return false;
        node[i] = (char)v;
    }
    node[hl / 2] = '\0';
    return true;
}

bool audit_pg_query(const char *conninfo, const audit_query_t *q, sbuf_t *out, char *err, size_t errcap)
{
    long long cms = 0;
    char cid[64] = "", cnode[128] = "";
    if (q->cursor[0] && !audit_pg_cursor(q->cursor, &cms, cid, sizeof cid, cnode, sizeof cnode)) {
        snprintf(err, errcap, "cursor must be the \"next\" of an earlier page");
        return false;
    }
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errcap, "PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        return false;
    }
    char since[24], until[24], ms[24], limit[16];
    snprintf(since, sizeof since, "%lld", (long long)q->since_ms);
    snprintf(until, sizeof until, "%lld", (long long)q->until_ms);
    snprintf(ms, sizeof ms, "%lld", cms);
    snprintf(limit, sizeof limit, "%u", q->limit + 1);
    const char *params[8] = {q->since_ms ? since : NULL,
                             q->until_ms ? until : NULL,
                             q->action >= 0 ? audit_action_name((audit_action_t)q->action) : NULL,
                             q->actor[0] ? q->actor : NULL,
                             q->cursor[0] ? ms : NULL,
                             q->cursor[0] ? cnode : NULL,
                             q->cursor[0] ? cid : NULL,
                             limit};
    PGresult *r = PQexecParams(
        c,
        "SELECT record::text, time_ms, node, id FROM dcache_audit WHERE ($1::bigint IS NULL OR time_ms >= $1) "
        "AND ($2::bigint IS NULL OR time_ms < $2) AND ($3::text IS NULL OR action = $3) "
        "AND ($4::text IS NULL OR actor = $4) "
        "AND ($5::bigint IS NULL OR (time_ms, node, id) < ($5::bigint, $6::text, $7::text)) "
        "ORDER BY time_ms DESC, node DESC, id DESC LIMIT $8::integer",
        8, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(err, errcap, "PostgreSQL: %s", PQresultErrorMessage(r));
    } else {
        int rows = PQntuples(r);
        bool more = rows > (int)q->limit;
        if (more) rows = (int)q->limit;
        sbuf_puts(out, "{\"records\":[");
        for (int i = 0; i < rows; i++) {
            if (i) sbuf_puts(out, ",");
            sbuf_puts(out, PQgetvalue(r, i, 0));
        }
        sbuf_puts(out, "],\"next\":");
        if (more && rows > 0) {
            const char *node = PQgetvalue(r, rows - 1, 2);
            sbuf_printf(out, "\"pg.%s.%s.", PQgetvalue(r, rows - 1, 1), PQgetvalue(r, rows - 1, 3));
            for (const char *p = node; *p; p++) sbuf_printf(out, "%02x", (unsigned char)*p);
            sbuf_puts(out, "\"");
        } else {
            sbuf_puts(out, "null");
        }
        sbuf_puts(out, ",\"source\":\"postgres\"}");
    }
    PQclear(r);
    PQfinish(c);
    return ok;
}
