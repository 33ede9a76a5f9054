#include "node/audit/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "node/audit/audit_pg.h"
#include "node/core/log.h"
#include "node/core/sysinfo.h"

#define AUDIT_COUNTER(F, name, labels, help) METRICS_ATOMIC_COUNTER(audit_stats_t, F, name, labels, help)
static const metrics_desc_t audit_metrics_rows[] = {
    AUDIT_COUNTER(recorded, "audit_records_total", NULL,
                  "Audit records taken (deletes, invalidations, warming triggers, tokens reloads)."),
    AUDIT_COUNTER(written, "audit_written_total", "sink=\"file\"", "Audit records written, by where they went."),
    AUDIT_COUNTER(pg.shipped, "audit_written_total", "sink=\"postgres\"", ""),
    AUDIT_COUNTER(dropped_queue, "audit_dropped_total", "reason=\"queue_full\"",
                  "Audit records lost: the queue to the writer was full (16384), or the sink refused them."),
    AUDIT_COUNTER(dropped_write, "audit_dropped_total", "reason=\"write_failed\"", ""),
    AUDIT_COUNTER(pg.dropped_spool, "audit_dropped_total", "reason=\"spool_full\"", ""),
    AUDIT_COUNTER(pg.dropped_torn, "audit_dropped_total", "reason=\"torn_line\"", ""),
    AUDIT_COUNTER(syncs, "audit_syncs_total", NULL, "Group commits (fdatasync) of the audit file."),
    AUDIT_COUNTER(rotations, "audit_rotations_total", NULL, "Audit files rotated (past --audit-file-size)."),
    METRICS_ATOMIC_GAUGE(audit_stats_t, queued, "audit_queued", NULL, "Audit records waiting for the writer."),
    METRICS_ATOMIC_GAUGE(audit_stats_t, pg.backlog_bytes, "audit_backlog_bytes", NULL,
                         "With --audit-db: bytes of audit records in the files and not in PostgreSQL yet."),
    METRICS_ATOMIC_GAUGE(audit_stats_t, pg.up, "audit_db_up", NULL,
                         "With --audit-db: 1 while audit records reach PostgreSQL."),
};
const metrics_table_t audit_metrics_table = METRICS_TABLE(audit_metrics_rows);

/* ---- the writer ---- */

struct audit {
    audit_config_t cfg;
    char *node, *dir, *path;
    audit_stats_t stats;
    pthread_t thread;
    bool thread_started;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t sync_timer;
    /* Shared with the submitters, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t flushed_cond;
    audit_record_t *queue;        /* a ring of queue_max */
    char (*ids)[32];              /* the ring's ids */
    size_t head, count;
    uint64_t seq;
    int64_t last_id_ms;
    uint64_t submitted, done;     /* records handed in / written (or dropped) and synced */
    bool closing;
    /* Writer thread only. */
    audit_pg_t *pg;               /* --audit-db's shipper, or NULL */
    int fd;
    bool open_failed;
    uint64_t file_bytes;
    bool dirty;                   /* written since the last sync */
    uint64_t written_unsynced;    /* records written since the last sync */
};

static int audit_file_open(audit_t *a)
{
    a->fd = open(a->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (a->fd < 0) return -errno;
    struct stat st;
    a->file_bytes = fstat(a->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

static void audit_sync(audit_t *a)
{
    if (a->dirty && a->fd >= 0) {
        if (fdatasync(a->fd) != 0) log_warn("audit file sync failed", "\"error\":\"%s\"", strerror(errno));
        atomic_fetch_add(&a->stats.syncs, 1);
        a->dirty = false;
    }
    pthread_mutex_lock(&a->lock);
    a->done += a->written_unsynced;
    a->written_unsynced = 0;
    pthread_cond_broadcast(&a->flushed_cond);
    pthread_mutex_unlock(&a->lock);
}

/* <node>.jsonl -> .1 -> .2 ... -> .files (dropped). */
static void audit_rotate(audit_t *a)
{
    audit_sync(a);
    if (a->pg) audit_pg_rotating(a->pg);
    close(a->fd);
    a->fd = -1;
    size_t cap = strlen(a->path) + 16;
    char *from = malloc(cap), *to = malloc(cap);
    if (from && to) {
        for (unsigned i = a->cfg.files; i >= 1; i--) {
            snprintf(to, cap, "%s.%u", a->path, i);
            if (i == 1) snprintf(from, cap, "%s", a->path);
            else snprintf(from, cap, "%s.%u", a->path, i - 1);
            if (rename(from, to) != 0 && errno != ENOENT)
                log_warn("audit file rotation failed", "\"error\":\"%s\"", strerror(errno));
        }
    }
    free(from);
    free(to);
    atomic_fetch_add(&a->stats.rotations, 1);
    if (audit_file_open(a) != 0) log_error("cannot open the audit file after rotating", "\"error\":\"%s\"", strerror(errno));
}

static void audit_write_line(audit_t *a, const audit_record_t *r, const char *id)
{
    sbuf_t b;
    sbuf_init(&b);
    audit_record_json(&b, r, a->node, id);
    sbuf_puts(&b, "\n");
    bool ok = !b.failed && a->fd >= 0;
    if (ok && a->file_bytes + b.len > a->cfg.file_max_bytes && a->file_bytes > 0) audit_rotate(a);
    size_t off = 0;
    while (ok && off < b.len) {
        ssize_t n = write(a->fd, b.data + off, b.len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ok = false;
        else off += (size_t)n;
    }
    sbuf_free(&b);
    if (ok) {
        a->file_bytes += off;
        a->dirty = true;
        atomic_fetch_add(&a->stats.written, 1);
    } else {
        atomic_fetch_add(&a->stats.dropped_write, 1);
    }
    a->written_unsynced++;
}

/* Takes everything queued as one group; nothing before the node's name
 * (the file's) is known. */
static void audit_drain(audit_t *a)
{
    pthread_mutex_lock(&a->lock);
    bool named = a->path != NULL;
    pthread_mutex_unlock(&a->lock);
    if (!named) return;
    if (a->pg) audit_pg_start(a->pg, a->path);
    if (a->fd < 0 && !a->open_failed && audit_file_open(a) != 0) {
        a->open_failed = true;
        log_error("cannot open the audit file; audit records are dropped", "\"path\":\"%s\",\"error\":\"%s\"",
                  a->path, strerror(errno));
    }
    for (;;) {
        audit_record_t r;
        char id[32];
        pthread_mutex_lock(&a->lock);
        if (a->count == 0) {
            pthread_mutex_unlock(&a->lock);
            break;
        }
        r = a->queue[a->head];
        memcpy(id, a->ids[a->head], sizeof id);
        a->head = (a->head + 1) % a->cfg.queue_max;
        a->count--;
        pthread_mutex_unlock(&a->lock);
        atomic_fetch_sub(&a->stats.queued, 1);
        audit_write_line(a, &r, id);
        audit_record_clear(&r);
    }
}

static void audit_sync_cb(uv_timer_t *t)
{
    audit_sync(t->data);
}

static void audit_wake_cb(uv_async_t *h)
{
    audit_t *a = h->data;
    audit_drain(a);
    pthread_mutex_lock(&a->lock);
    bool closing = a->closing;
    pthread_mutex_unlock(&a->lock);
    if (closing) {
        audit_sync(a);
        if (a->pg) audit_pg_close(a->pg, NULL, NULL);
        uv_close((uv_handle_t *)&a->wake, NULL);
        uv_close((uv_handle_t *)&a->sync_timer, NULL);
        return;
    }
    if (a->pg) audit_pg_kick(a->pg);
    if (a->written_unsynced && !uv_is_active((uv_handle_t *)&a->sync_timer))
        uv_timer_start(&a->sync_timer, audit_sync_cb, a->cfg.sync_ms, 0);
}

static void *audit_thread(void *arg)
{
    audit_t *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
    return NULL;
}

static char *audit_safe_name(const char *name)
{
    char *s = strdup(name && name[0] ? name : "node");
    for (char *p = s; p && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == '_'))
            *p = '_';
    return s;
}

static void audit_free(audit_t *a)
{
    if (!a) return;
    if (a->fd >= 0) close(a->fd);
    for (size_t i = 0; a->queue && i < a->count; i++) audit_record_clear(&a->queue[(a->head + i) % a->cfg.queue_max]);
    free(a->queue);
    free(a->ids);
    free(a->node);
    free(a->dir);
    free(a->path);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->flushed_cond);
    free(a);
}

int audit_open(audit_t **out, const audit_config_t *cfg, char *err, size_t errcap)
{
    *out = NULL;
    audit_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errcap, "out of memory");
        return -ENOMEM;
    }
    a->fd = -1;
    a->cfg = *cfg;
    if (!a->cfg.file_max_bytes) a->cfg.file_max_bytes = 64u << 20;
    if (!a->cfg.files) a->cfg.files = 4;
    if (!a->cfg.queue_max) a->cfg.queue_max = 16384;
    if (!a->cfg.sync_ms) a->cfg.sync_ms = 100;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->flushed_cond, NULL);
    a->dir = strdup(cfg->dir ? cfg->dir : "");
    a->queue = calloc(a->cfg.queue_max, sizeof *a->queue);
    a->ids = calloc(a->cfg.queue_max, sizeof *a->ids);
    if (!a->dir || !a->queue || !a->ids) {
        audit_free(a);
        snprintf(err, errcap, "out of memory");
        return -ENOMEM;
    }
    /* Refused now, not at the first record: an operator should hear of a
     * directory it cannot write before the node serves. */
    if ((mkdir(a->dir, 0750) != 0 && errno != EEXIST) || access(a->dir, W_OK | X_OK) != 0) {
        int e = errno;
        snprintf(err, errcap, "cannot write the audit directory %s: %s", a->dir, strerror(e));
        audit_free(a);
        return -e;
    }
    if (uv_loop_init(&a->loop) != 0) {
        snprintf(err, errcap, "cannot start the audit loop");
        audit_free(a);
        return -ENOMEM;
    }
    uv_async_init(&a->loop, &a->wake, audit_wake_cb);
    uv_timer_init(&a->loop, &a->sync_timer);
    a->wake.data = a->sync_timer.data = a;
    if (cfg->db && cfg->db[0]) {
        audit_pg_config_t pc = {.conninfo = cfg->db, .files = a->cfg.files, .stats = &a->stats.pg};
        a->stats.pg.configured = true;
        char perr[256];
        if (!(a->pg = audit_pg_new(&a->loop, &pc, perr, sizeof perr))) {
            snprintf(err, errcap, "--audit-db: %s", perr);
            uv_close((uv_handle_t *)&a->wake, NULL);
            uv_close((uv_handle_t *)&a->sync_timer, NULL);
            uv_run(&a->loop, UV_RUN_DEFAULT);
            uv_loop_close(&a->loop);
            audit_free(a);
            return -EINVAL;
        }
    }
    if (pthread_create(&a->thread, NULL, audit_thread, a) != 0) {
        uv_close((uv_handle_t *)&a->wake, NULL);
        uv_close((uv_handle_t *)&a->sync_timer, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        snprintf(err, errcap, "cannot start the audit writer thread");
        audit_free(a);
        return -EAGAIN;
    }
    a->thread_started = true;
    if (cfg->node && cfg->node[0]) audit_set_node(a, cfg->node);
    *out = a;
    return 0;
}

void audit_set_node(audit_t *a, const char *node)
{
    char *name = strdup(node && node[0] ? node : "node");
    char *safe = audit_safe_name(name);
    size_t plen = strlen(a->dir) + (safe ? strlen(safe) : 0) + 16;
    char *path = malloc(plen);
    if (!name || !safe || !path) {
        free(name);
        free(safe);
        free(path);
        return;
    }
    snprintf(path, plen, "%s/%s.jsonl", a->dir, safe);
    free(safe);
    pthread_mutex_lock(&a->lock);
    if (a->path) {
        free(name);
        free(path);
    } else {
        a->node = name;
        a->path = path;
    }
    pthread_mutex_unlock(&a->lock);
    uv_async_send(&a->wake);
}

bool audit_submit(audit_t *a, audit_record_t *r)
{
    pthread_mutex_lock(&a->lock);
    if (a->count == a->cfg.queue_max || a->closing) {
        pthread_mutex_unlock(&a->lock);
        atomic_fetch_add(&a->stats.dropped_queue, 1);
        audit_record_clear(r);
        return false;
    }
    size_t at = (a->head + a->count) % a->cfg.queue_max;
    a->queue[at] = *r;
    /* Ids follow the order records are written in: submission time (never
     * going back within a run), then a sequence number. */
    int64_t now = sysinfo_now_ms();
    if (now < a->last_id_ms) now = a->last_id_ms;
    a->last_id_ms = now;
    snprintf(a->ids[at], sizeof a->ids[at], "%" PRId64 ".%" PRIu64, now, ++a->seq);
    a->count++;
    a->submitted++;
    pthread_mutex_unlock(&a->lock);
    r->keys = r->pattern = NULL;
    atomic_fetch_add(&a->stats.recorded, 1);
    atomic_fetch_add(&a->stats.queued, 1);
    uv_async_send(&a->wake);
    return true;
}

void audit_flush(audit_t *a)
{
    pthread_mutex_lock(&a->lock);
    uint64_t want = a->submitted;
    pthread_mutex_unlock(&a->lock);
    uv_async_send(&a->wake);
    pthread_mutex_lock(&a->lock);
    while (a->done < want) pthread_cond_wait(&a->flushed_cond, &a->lock);
    pthread_mutex_unlock(&a->lock);
}

void audit_close(audit_t *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->lock);
    a->closing = true;
    pthread_mutex_unlock(&a->lock);
    uv_async_send(&a->wake);
    if (a->thread_started) pthread_join(a->thread, NULL);
    uv_loop_close(&a->loop);
    audit_pg_free(a->pg);
    audit_free(a);
}

audit_stats_t *audit_stats(audit_t *a)
{
    return &a->stats;
}

const char *audit_dir(const audit_t *a)
{
    return a->dir;
}

const char *audit_node(audit_t *a)
{
    pthread_mutex_lock(&a->lock);
    const char *node = a->node ? a->node : "";
    pthread_mutex_unlock(&a->lock);
    return node;
}

/* ---- reading the files back ---- */

/* "<ms>.<seq>" of a record, for ordering and cursors. */
typedef struct audit_pos {
    int64_t ms;
    uint64_t seq;
} audit_pos_t;

static bool audit_pos_parse(const char *s, audit_pos_t *p)
{
    char *end;
    errno = 0;
    long long ms = strtoll(s, &end, 10);
    if (errno || *end != '.') return false;
    unsigned long long seq = strtoull(end + 1, &end, 10);
    if (errno || *end) return false;
    p->ms = ms;
    p->seq = seq;
    return true;
}

static bool audit_pos_before(audit_pos_t a, audit_pos_t b)
{
    return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq);
}

typedef struct audit_match {
    const audit_query_t *q;
    bool have_cursor;
    audit_pos_t cursor;
    sbuf_t *out;
    unsigned n;
    audit_pos_t last;
    bool more;
} audit_match_t;

/* One line; false once the page is full (and one more matched). */
static bool audit_match_line(audit_match_t *m, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return true; /* a torn last line after a crash */
    }
    const char *id = json_string_value(json_object_get(o, "id"));
    audit_pos_t pos;
    bool keep = id && audit_pos_parse(id, &pos);
    const audit_query_t *q = m->q;
    int64_t t = json_integer_value(json_object_get(o, "time_ms"));
    if (keep && m->have_cursor && !audit_pos_before(pos, m->cursor)) keep = false;
    if (keep && q->since_ms && t < q->since_ms) keep = false;
    if (keep && q->until_ms && t >= q->until_ms) keep = false;
    if (keep && q->action >= 0) {
        const char *act = json_string_value(json_object_get(o, "action"));
        keep = act && strcmp(act, audit_action_name((audit_action_t)q->action)) == 0;
    }
    if (keep && q->actor[0]) {
        const char *actor = json_string_value(json_object_get(o, "actor"));
        keep = actor && strcmp(actor, q->actor) == 0;
    }
    json_decref(o);
    if (!keep) return true;
    if (m->n == q->limit) {
        m->more = true;
        return false;
    }
    if (m->n) sbuf_puts(m->out, ",");
    sbuf_append(m->out, line, len);
    m->n++;
    m->last = pos;
    return true;
}

/* The lines of one file, last first; false when the page filled up. */
static bool audit_match_file(audit_match_t *m, const char *path, bool *failed)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno != ENOENT) *failed = true;
        return true;
    }
    sbuf_t data;
    sbuf_init(&data);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sbuf_append(&data, buf, n);
    bool read_failed = ferror(f) != 0;
    fclose(f);
    if (read_failed || data.failed) {
        sbuf_free(&data);
        *failed = true;
        return true;
    }
    bool go = true;
    size_t end = data.len;
    while (go && end > 0) {
        size_t start = end;
        if (data.data[start - 1] == '\n') start--;
        size_t line_end = start;
        while (start > 0 && data.data[start - 1] != '\n') start--;
        if (line_end > start) go = audit_match_line(m, data.data + start, line_end - start);
        end = start;
    }
    sbuf_free(&data);
    return go;
}

bool audit_query_file(const char *dir, const char *node, const audit_query_t *q, sbuf_t *out, char *err,
                      size_t errcap)
{
    audit_match_t m = {.q = q, .out = out};
    if (q->cursor[0]) {
        if (!audit_pos_parse(q->cursor, &m.cursor)) {
            snprintf(err, errcap, "cursor must be the \"next\" of an earlier page");
            return false;
        }
        m.have_cursor = true;
    }
    char *safe = audit_safe_name(node);
    size_t cap = strlen(dir) + (safe ? strlen(safe) : 0) + 32;
    char *path = malloc(cap);
    if (!safe || !path) {
        free(safe);
        free(path);
        snprintf(err, errcap, "out of memory");
        return false;
    }
    sbuf_puts(out, "{\"records\":[");
    bool failed = false;
    for (unsigned i = 0; i <= 64; i++) {
        if (i == 0) snprintf(path, cap, "%s/%s.jsonl", dir, safe);
        else snprintf(path, cap, "%s/%s.jsonl.%u", dir, safe, i);
        if (i > 0 && access(path, F_OK) != 0) break;
        if (!audit_match_file(&m, path, &failed)) break;
    }
    free(safe);
    free(path);
    if (failed) {
        snprintf(err, errcap, "cannot read the audit files in %s", dir);
        return false;
    }
    sbuf_puts(out, "],\"next\":");
    if (m.more) sbuf_printf(out, "\"%" PRId64 ".%" PRIu64 "\"", m.last.ms, m.last.seq);
    else sbuf_puts(out, "null");
    sbuf_puts(out, ",\"source\":\"file\"}");
    return true;
}
