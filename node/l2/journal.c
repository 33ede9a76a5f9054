#include "node/l2/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cluster/ring.h"
#include "cluster/seal.h"

#define JOURNAL_HEADER 8u
#define JOURNAL_FIXED 24u /* op, version, expires, key len, ct len, value len */
#define JOURNAL_RECORD_MAX ((uint64_t)1 << 31)
/* The smallest record (a one-byte key, no content type, no value): the
 * files hold at most max_bytes / JOURNAL_RECORD_MIN records. */
#define JOURNAL_RECORD_MIN (JOURNAL_HEADER + JOURNAL_FIXED + 1u)

/* iovecs per pwritev of a group (well under IOV_MAX). */
#define JOURNAL_IOV 64

typedef struct journal_file {
    int fd;                /* -1 when absent */
    uint64_t bytes, records;
    uint64_t gen;          /* its generation in the pending table */
} journal_file_t;

/* What the pending table needs of a record, taken when it is encoded. */
typedef struct journal_key {
    uint64_t hash, version;
    bool del;
} journal_key_t;

/* One append, from the caller's queue to its completion. The encoded
 * records are the writer's to free once written; the rest travels back to
 * whoever waits (the port's loop, or a blocked journal_append). */
typedef struct journal_wait {
    struct journal_wait *next;
    uint8_t *buf;
    journal_key_t *keys;       /* nrecs, for the pending table; the writer's like buf */
    size_t len, nrecs;
    int status;
    journal_port_t *port;      /* NULL: journal_append waits for `done` */
    journal_done_fn cb;
    void *ctx;
    bool done;                 /* journal_append: under the journal's lock */
} journal_wait_t;

struct journal_port {
    journal_t *j;
    uv_async_t async;
    pthread_mutex_t lock;      /* the completed list: the writer adds, the loop takes */
    journal_wait_t *head, *tail;
    /* The loop thread's own: */
    size_t pending;            /* appends whose callback has not run */
    bool closing, async_closing;
    void (*done)(void *arg);
    void *done_arg;
};

/* Lock order: io, then lock. The writer holds io (not lock) for a group's
 * write and sync, so callers queuing and counters read for /metrics never
 * wait for the disk; only the file swap of a drain waits for it. */
struct journal {
    pthread_mutex_t lock;      /* the queue, the counters, the files' state */
    pthread_cond_t work;       /* writer: something queued, hold released, or stopping */
    pthread_cond_t done;       /* journal_append: a group completed */
    pthread_mutex_t io;        /* a group's write and sync against the swap of files */
    pthread_t writer;
    bool writer_running, stopping, held;
    char active_path[4096], draining_path[4096];
    uint64_t max_bytes;
    /* active's fd and counts change under io and lock (read under either);
     * draining's under lock, by the drainer. */
    journal_file_t active, draining;
    journal_wait_t *head, *tail;   /* queued, not yet taken by the writer */
    uint64_t queued_bytes, queued_appends; /* queued plus the group being written */
    uint64_t fsyncs, group_records, group_appends, failed_groups;
    /* Keys with records Redis has not acknowledged (journal_pending.h),
     * filled by the writer under io (so each record gets the generation of
     * the file it went to) and at open, cleared by the drain. */
    journal_pending_t *pending;
    uint64_t next_gen;         /* the generation of the next fresh active file; under io */
};

static void journal_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void journal_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void journal_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t journal_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static bool journal_rec_ok(const journal_rec_t *r)
{
    return (r->op == JOURNAL_OP_SET || r->op == JOURNAL_OP_DEL) && r->klen >= 1 && r->klen <= 65535 &&
           r->ctlen <= 255 && (r->vlen == 0 || r->value) && (r->ctlen == 0 || r->ct) &&
           JOURNAL_FIXED + r->klen + r->ctlen + (uint64_t)r->vlen < JOURNAL_RECORD_MAX;
}

static size_t journal_rec_size(const journal_rec_t *r)
{
    return JOURNAL_HEADER + JOURNAL_FIXED + r->klen + r->ctlen + r->vlen;
}

static void journal_encode(const journal_rec_t *r, uint8_t *out)
{
    uint8_t *p = out + JOURNAL_HEADER;
    p[0] = r->op;
    journal_put_u64(p + 1, r->version);
    journal_put_u64(p + 9, (uint64_t)r->expires_at_ms);
    journal_put_u16(p + 17, (uint16_t)r->klen);
    p[19] = (uint8_t)r->ctlen;
    journal_put_u32(p + 20, (uint32_t)r->vlen);
    memcpy(p + JOURNAL_FIXED, r->key, r->klen);
    if (r->ctlen) memcpy(p + JOURNAL_FIXED + r->klen, r->ct, r->ctlen);
    if (r->vlen) memcpy(p + JOURNAL_FIXED + r->klen + r->ctlen, r->value, r->vlen);
    size_t len = JOURNAL_FIXED + r->klen + r->ctlen + r->vlen;
    journal_put_u32(out, (uint32_t)len);
    journal_put_u32(out + 4, seal_crc32c(p, len));
}

/* Reads the record at pos of a file of `size` bytes; 1 with *rec and *next
 * set, 0 at a clean end or a torn tail, negative errno on a read error.
 * *buf grows as needed, never past what the file holds: a torn header's
 * length is garbage, and taking it at its word would ask for up to 2 GiB
 * (and fail the open on a small machine). */
static int journal_read_at(int fd, uint64_t size, uint64_t pos, uint8_t **buf, size_t *cap, journal_rec_t *rec,
                           uint64_t *next)
{
    uint8_t h[JOURNAL_HEADER];
    ssize_t n = pread(fd, h, sizeof h, (off_t)pos);
    if (n < 0) return -errno;
    if (n < (ssize_t)sizeof h) return 0;
    uint64_t len = journal_get(h, 4);
    if (len < JOURNAL_FIXED || len >= JOURNAL_RECORD_MAX || pos + JOURNAL_HEADER > size ||
        len > size - pos - JOURNAL_HEADER)
        return 0;
    if (len > *cap) {
        uint8_t *b = realloc(*buf, len);
        if (!b) return -ENOMEM;
        *buf = b;
        *cap = len;
    }
    n = pread(fd, *buf, len, (off_t)(pos + JOURNAL_HEADER));
    if (n < 0) return -errno;
    if ((uint64_t)n < len || seal_crc32c(*buf, len) != (uint32_t)journal_get(h + 4, 4)) return 0;
    const uint8_t *p = *buf;
    rec->op = p[0];
    rec->version = journal_get(p + 1, 8);
    rec->expires_at_ms = (int64_t)journal_get(p + 9, 8);
    rec->klen = journal_get(p + 17, 2);
    rec->ctlen = p[19];
    rec->vlen = journal_get(p + 20, 4);
    if (JOURNAL_FIXED + rec->klen + rec->ctlen + rec->vlen != len || rec->klen == 0 ||
        (rec->op != JOURNAL_OP_SET && rec->op != JOURNAL_OP_DEL))
        return 0;
    rec->key = p + JOURNAL_FIXED;
    rec->ct = (const char *)p + JOURNAL_FIXED + rec->klen;
    rec->value = p + JOURNAL_FIXED + rec->klen + rec->ctlen;
    *next = pos + JOURNAL_HEADER + len;
    return 1;
}

/* Opens a file, counts its whole records, enters each into `pending` (when
 * not NULL) at the file's generation and cuts a torn tail. */
static int journal_file_open(journal_file_t *f, const char *path, bool create, journal_pending_t *pending)
{
    f->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    f->bytes = f->records = 0;
    if (f->fd < 0) return errno == ENOENT && !create ? 0 : -errno;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t pos = 0, next;
    journal_rec_t r;
    struct stat st;
    if (fstat(f->fd, &st) != 0) return -errno;
    int rc;
    while ((rc = journal_read_at(f->fd, (uint64_t)st.st_size, pos, &buf, &cap, &r, &next)) == 1) {
        pos = next;
        f->records++;
        if (pending) journal_pending_add(pending, ring_key_hash(r.key, r.klen), r.version, r.op == JOURNAL_OP_DEL, f->gen);
    }
    free(buf);
    if (rc < 0) return rc;
    if ((uint64_t)st.st_size > pos && ftruncate(f->fd, (off_t)pos) != 0) return -errno;
    f->bytes = pos;
    if (lseek(f->fd, (off_t)pos, SEEK_SET) < 0) return -errno;
    return 0;
}

/* ---------- the writer thread ---------- */

/* Writes the group's buffers at off, however the kernel splits them. */
static int journal_write_group(int fd, uint64_t off, journal_wait_t *w)
{
    size_t skip = 0; /* bytes of w already written */
    while (w) {
        struct iovec iov[JOURNAL_IOV];
        int n = 0;
        size_t s = skip;
        for (journal_wait_t *x = w; x && n < JOURNAL_IOV; x = x->next, s = 0)
            iov[n++] = (struct iovec){.iov_base = x->buf + s, .iov_len = x->len - s};
        ssize_t r = pwritev(fd, iov, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -errno;
        off += (uint64_t)r;
        size_t left = (size_t)r;
        while (w && left >= w->len - skip) {
            left -= w->len - skip;
            w = w->next;
            skip = 0;
        }
        if (w) skip += left;
        if (r == 0 && w) return -EIO; /* no progress on a non-empty write */
    }
    return 0;
}

static void journal_complete(journal_t *j, journal_wait_t *w)
{
    journal_port_t *p = w->port;
    if (!p) {
        /* A blocked journal_append owns w again once done is set. */
        pthread_mutex_lock(&j->lock);
        w->done = true;
        pthread_cond_broadcast(&j->done);
        pthread_mutex_unlock(&j->lock);
        return;
    }
    /* The send happens under the port's lock: the loop can only see this
     * completion, and so only close and free the port, after it. */
    pthread_mutex_lock(&p->lock);
    w->next = NULL;
    if (p->tail) p->tail->next = w;
    else p->head = w;
    p->tail = w;
    uv_async_send(&p->async);
    pthread_mutex_unlock(&p->lock);
}

/* One group: one write, one fdatasync, then every append completes with
 * the group's outcome. */
static void journal_commit(journal_t *j, journal_wait_t *group)
{
    uint64_t bytes = 0, records = 0, appends = 0;
    for (journal_wait_t *w = group; w; w = w->next) {
        bytes += w->len;
        records += w->nrecs;
        appends++;
    }
    pthread_mutex_lock(&j->io);
    int fd = j->active.fd;
    uint64_t end = j->active.bytes;
    bool synced = false;
    int rc = journal_write_group(fd, end, group);
    if (rc == 0) {
        synced = true;
        if (fdatasync(fd) != 0) rc = -errno;
    }
    if (rc != 0 && ftruncate(fd, (off_t)end) != 0) {
        /* The file now ends in a torn group; the next open cuts it, and
         * the next group is written over it from `end`. */
    }
    pthread_mutex_lock(&j->lock);
    if (rc == 0) {
        j->active.bytes += bytes;
        j->active.records += records;
    } else {
        j->failed_groups++;
    }
    if (synced) {
        j->fsyncs++;
        j->group_records += records;
        j->group_appends += appends;
    }
    j->queued_bytes -= bytes;
    j->queued_appends -= appends;
    pthread_mutex_unlock(&j->lock);
    if (rc == 0) {
        /* Before any append of the group completes: a read that follows a
         * client's OK already sees the record pending. Still under io, so
         * the generation is the file's the records are in. */
        for (journal_wait_t *w = group; w; w = w->next)
            for (size_t i = 0; i < w->nrecs; i++)
                journal_pending_add(j->pending, w->keys[i].hash, w->keys[i].version, w->keys[i].del, j->active.gen);
    }
    pthread_mutex_unlock(&j->io);
    while (group) {
        journal_wait_t *next = group->next;
        free(group->buf);
        group->buf = NULL;
        free(group->keys);
        group->keys = NULL;
        group->status = rc;
        journal_complete(j, group);
        group = next;
    }
}

static void *journal_writer(void *arg)
{
    journal_t *j = arg;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        while ((!j->head || j->held) && !j->stopping) pthread_cond_wait(&j->work, &j->lock);
        if (!j->head) break; /* stopping, and everything queued is written */
        journal_wait_t *group = j->head;
        j->head = j->tail = NULL;
        pthread_mutex_unlock(&j->lock);
        journal_commit(j, group);
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* ---------- open and close ---------- */

int journal_open(journal_t **out, const char *dir, uint64_t max_bytes, char *err, size_t errcap)
{
    *out = NULL;
    journal_t *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errcap, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_mutex_init(&j->io, NULL);
    pthread_cond_init(&j->work, NULL);
    pthread_cond_init(&j->done, NULL);
    j->max_bytes = max_bytes;
    j->active.fd = j->draining.fd = -1;
    /* The files never hold more records than this, so a smaller bound
     * would only put the table in doubt sooner. */
    uint64_t max_keys = max_bytes / JOURNAL_RECORD_MIN;
    j->pending = journal_pending_new(max_keys < JOURNAL_PENDING_MAX ? (size_t)(max_keys ? max_keys : 1) : JOURNAL_PENDING_MAX);
    if (!j->pending) {
        snprintf(err, errcap, "out of memory");
        journal_close(j);
        return -ENOMEM;
    }
    /* The draining file is older than the active one. */
    j->draining.gen = 1;
    j->active.gen = 2;
    j->next_gen = 3;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;
        snprintf(err, errcap, "cannot create %s: %s", dir, strerror(errno));
        journal_close(j);
        return rc;
    }
    snprintf(j->active_path, sizeof j->active_path, "%s/journal.active", dir);
    snprintf(j->draining_path, sizeof j->draining_path, "%s/journal.draining", dir);
    /* Their records are not in Redis yet (they are replayed later): they
     * are pending again. */
    int rc = journal_file_open(&j->active, j->active_path, true, j->pending);
    if (rc == 0) rc = journal_file_open(&j->draining, j->draining_path, false, j->pending);
    if (rc != 0) {
        snprintf(err, errcap, "cannot open the journal in %s: %s", dir, strerror(-rc));
        journal_close(j);
        return rc;
    }
    /* Signals are for the loops: the writer starts with all of them
     * blocked (it inherits the mask), so none interrupts a sync. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&j->writer, NULL, journal_writer, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errcap, "cannot start the journal writer: %s", strerror(-rc));
        journal_close(j);
        return rc;
    }
    j->writer_running = true;
    *out = j;
    return 0;
}

void journal_close(journal_t *j)
{
    if (!j) return;
    if (j->writer_running) {
        pthread_mutex_lock(&j->lock);
        j->stopping = true;
        j->held = false;
        pthread_cond_signal(&j->work);
        pthread_mutex_unlock(&j->lock);
        pthread_join(j->writer, NULL);
    }
    if (j->active.fd >= 0) close(j->active.fd);
    if (j->draining.fd >= 0) close(j->draining.fd);
    pthread_cond_destroy(&j->work);
    pthread_cond_destroy(&j->done);
    pthread_mutex_destroy(&j->io);
    pthread_mutex_destroy(&j->lock);
    journal_pending_free(j->pending);
    free(j);
}

void journal_hold(journal_t *j, bool hold)
{
    pthread_mutex_lock(&j->lock);
    j->held = hold;
    pthread_cond_signal(&j->work);
    pthread_mutex_unlock(&j->lock);
}

/* ---------- appending ---------- */

/* Validates and encodes n records into a new wait; 0 or a negative errno. */
static int journal_wait_new(const journal_rec_t *recs, size_t n, journal_wait_t **out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!journal_rec_ok(&recs[i])) return -EINVAL;
        total += journal_rec_size(&recs[i]);
    }
    journal_wait_t *w = calloc(1, sizeof *w);
    uint8_t *buf = malloc(total ? total : 1);
    journal_key_t *keys = malloc((n ? n : 1) * sizeof *keys);
    if (!w || !buf || !keys) {
        free(w);
        free(buf);
        free(keys);
        return -ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        journal_encode(&recs[i], buf + off);
        off += journal_rec_size(&recs[i]);
        keys[i] = (journal_key_t){.hash = ring_key_hash(recs[i].key, recs[i].klen), .version = recs[i].version,
                                  .del = recs[i].op == JOURNAL_OP_DEL};
    }
    w->buf = buf;
    w->keys = keys;
    w->len = total;
    w->nrecs = n;
    *out = w;
    return 0;
}

static void journal_wait_free(journal_wait_t *w)
{
    free(w->buf);
    free(w->keys);
    free(w);
}

/* Queues w for the writer unless it does not fit the bound. */
static int journal_enqueue(journal_t *j, journal_wait_t *w)
{
    pthread_mutex_lock(&j->lock);
    int rc = 0;
    if (j->stopping) {
        rc = -ESHUTDOWN;
    } else if (j->active.bytes + j->draining.bytes + j->queued_bytes + w->len > j->max_bytes) {
        rc = -ENOSPC;
    } else {
        if (j->tail) j->tail->next = w;
        else j->head = w;
        j->tail = w;
        j->queued_bytes += w->len;
        j->queued_appends++;
        pthread_cond_signal(&j->work);
    }
    pthread_mutex_unlock(&j->lock);
    return rc;
}

int journal_append(journal_t *j, const journal_rec_t *recs, size_t n)
{
    journal_wait_t *w;
    int rc = journal_wait_new(recs, n, &w);
    if (rc != 0) return rc;
    if ((rc = journal_enqueue(j, w)) != 0) {
        journal_wait_free(w);
        return rc;
    }
    pthread_mutex_lock(&j->lock);
    while (!w->done) pthread_cond_wait(&j->done, &j->lock);
    pthread_mutex_unlock(&j->lock);
    rc = w->status;
    journal_wait_free(w);
    return rc;
}

/* ---------- ports: completions back on a loop ---------- */

static void journal_port_closed(uv_handle_t *h)
{
    journal_port_t *p = h->data;
    p->done(p->done_arg);
}

static void journal_port_maybe_closed(journal_port_t *p)
{
    if (!p->closing || p->pending || p->async_closing) return;
    p->async_closing = true;
    uv_close((uv_handle_t *)&p->async, journal_port_closed);
}

static void journal_port_cb(uv_async_t *a)
{
    journal_port_t *p = a->data;
    pthread_mutex_lock(&p->lock);
    journal_wait_t *w = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (w) {
        journal_wait_t *next = w->next;
        p->pending--;
        w->cb(w->ctx, w->status);
        journal_wait_free(w);
        w = next;
    }
    journal_port_maybe_closed(p);
}

journal_port_t *journal_port_new(journal_t *j, uv_loop_t *loop)
{
    journal_port_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->j = j;
    if (uv_async_init(loop, &p->async, journal_port_cb) != 0) {
        free(p);
        return NULL;
    }
    p->async.data = p;
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

int journal_append_async(journal_port_t *p, const journal_rec_t *recs, size_t n, journal_done_fn cb, void *ctx)
{
    if (p->closing) return -ESHUTDOWN;
    journal_wait_t *w;
    int rc = journal_wait_new(recs, n, &w);
    if (rc != 0) return rc;
    w->port = p;
    w->cb = cb;
    w->ctx = ctx;
    if ((rc = journal_enqueue(p->j, w)) != 0) {
        journal_wait_free(w);
        return rc;
    }
    /* Its completion runs on this thread, so not before this. */
    p->pending++;
    return 0;
}

void journal_port_close(journal_port_t *p, void (*done)(void *arg), void *arg)
{
    p->closing = true;
    p->done = done;
    p->done_arg = arg;
    journal_port_maybe_closed(p);
}

void journal_port_free(journal_port_t *p)
{
    if (!p) return;
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---------- sizes and counters ---------- */

uint64_t journal_bytes(journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    uint64_t b = j->active.bytes + j->draining.bytes;
    pthread_mutex_unlock(&j->lock);
    return b;
}

uint64_t journal_records(journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    uint64_t r = j->active.records + j->draining.records;
    pthread_mutex_unlock(&j->lock);
    return r;
}

void journal_get_stats(journal_t *j, journal_stats_t *out)
{
    pthread_mutex_lock(&j->lock);
    *out = (journal_stats_t){.bytes = j->active.bytes + j->draining.bytes,
                             .records = j->active.records + j->draining.records,
                             .queued_bytes = j->queued_bytes,
                             .queued_appends = j->queued_appends,
                             .max_bytes = j->max_bytes,
                             .fsyncs = j->fsyncs,
                             .group_records = j->group_records,
                             .group_appends = j->group_appends,
                             .failed_groups = j->failed_groups};
    pthread_mutex_unlock(&j->lock);
    journal_pending_stats_t ps;
    journal_pending_get_stats(j->pending, &ps);
    out->pending_keys = ps.entries;
    out->pending_max = ps.max_entries;
    out->pending_overflows = ps.overflows;
    out->pending_in_doubt = ps.in_doubt;
}

journal_pending_state_t journal_lookup(journal_t *j, uint64_t hash, uint64_t *version)
{
    return journal_pending_lookup(j->pending, hash, version);
}

/* ---------- draining ---------- */

int64_t journal_drain_begin(journal_t *j)
{
    /* io: no group is being written while the files swap. Only the drainer
     * changes `draining` and only io holders change `active`, so both are
     * read here without `lock`, which is taken only for the swap itself: a
     * loop queuing an append never waits for a rename or an open. */
    pthread_mutex_lock(&j->io);
    int64_t rc = 0;
    if (j->draining.fd >= 0 && j->draining.records == 0) {
        /* Nothing readable left in it (emptied, or cut back to nothing on
         * open): it must not block the active file behind it. */
        close(j->draining.fd);
        unlink(j->draining_path);
        journal_pending_clear(j->pending, j->draining.gen);
        pthread_mutex_lock(&j->lock);
        j->draining = (journal_file_t){.fd = -1, .gen = j->draining.gen};
        pthread_mutex_unlock(&j->lock);
    }
    if (j->draining.fd < 0 && j->active.records > 0) {
        if (rename(j->active_path, j->draining_path) != 0) {
            rc = -errno;
        } else {
            /* Appends from now on go to the next generation: they stay
             * pending when this one is drained. */
            journal_file_t fresh = {.gen = j->next_gen++};
            rc = journal_file_open(&fresh, j->active_path, true, NULL);
            pthread_mutex_lock(&j->lock);
            j->draining = j->active;
            j->active = fresh;
            pthread_mutex_unlock(&j->lock);
        }
    }
    if (rc == 0) rc = (int64_t)j->draining.records;
    pthread_mutex_unlock(&j->io);
    return rc;
}

int64_t journal_drain_read(journal_t *j, uint64_t *pos, size_t max, journal_fn fn, void *ctx)
{
    pthread_mutex_lock(&j->lock);
    int fd = j->draining.fd;
    uint64_t end = j->draining.bytes;
    pthread_mutex_unlock(&j->lock);
    if (fd < 0) return 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int64_t count = 0;
    while ((size_t)count < max && *pos < end) {
        journal_rec_t r;
        uint64_t next;
        int rc = journal_read_at(fd, end, *pos, &buf, &cap, &r, &next);
        if (rc <= 0) {
            /* The file was validated on open: a record that no longer reads
             * is damage, not the end. Say so rather than drop the rest. */
            free(buf);
            if (count) return count; /* the next call reports it */
            return rc < 0 ? rc : -EIO;
        }
        if (fn(&r, ctx) != 0) break;
        *pos = next;
        count++;
    }
    free(buf);
    return count;
}

int journal_drain_done(journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    int rc = 0;
    uint64_t gen = 0;
    if (j->draining.fd >= 0) {
        close(j->draining.fd);
        j->draining.fd = -1;
        j->draining.bytes = j->draining.records = 0;
        gen = j->draining.gen;
        if (unlink(j->draining_path) != 0 && errno != ENOENT) rc = -errno;
    }
    pthread_mutex_unlock(&j->lock);
    /* Redis acknowledged every record of it (the caller's word): its keys
     * hold that version or a newer one there now. */
    if (gen) journal_pending_clear(j->pending, gen);
    return rc;
}
