#include "node/l2/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/seal.h"

#define JOURNAL_HEADER 8u
#define JOURNAL_FIXED 24u /* op, version, expires, key len, ct len, value len */
#define JOURNAL_RECORD_MAX ((uint64_t)1 << 31)

typedef struct journal_file {
    int fd;                /* -1 when absent */
    uint64_t bytes, records;
} journal_file_t;

struct journal {
    pthread_mutex_t lock;
    char active_path[4096], draining_path[4096];
    uint64_t max_bytes;
    journal_file_t active, draining;
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

/* Reads the record at pos; 1 with *rec and *next set, 0 at a clean end or a
 * torn tail, negative errno on a read error. *buf grows as needed. */
static int journal_read_at(int fd, uint64_t pos, uint8_t **buf, size_t *cap, journal_rec_t *rec, uint64_t *next)
{
    uint8_t h[JOURNAL_HEADER];
    ssize_t n = pread(fd, h, sizeof h, (off_t)pos);
    if (n < 0) return -errno;
    if (n < (ssize_t)sizeof h) return 0;
    uint64_t len = journal_get(h, 4);
    if (len < JOURNAL_FIXED || len >= JOURNAL_RECORD_MAX) return 0;
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

/* Opens a file, counts its whole records and cuts a torn tail. */
static int journal_file_open(journal_file_t *f, const char *path, bool create)
{
    f->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    f->bytes = f->records = 0;
    if (f->fd < 0) return errno == ENOENT && !create ? 0 : -errno;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t pos = 0, next;
    journal_rec_t r;
    int rc;
    while ((rc = journal_read_at(f->fd, pos, &buf, &cap, &r, &next)) == 1) {
        pos = next;
        f->records++;
    }
    free(buf);
    if (rc < 0) return rc;
    struct stat st;
    if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size > pos && ftruncate(f->fd, (off_t)pos) != 0) return -errno;
    f->bytes = pos;
    if (lseek(f->fd, (off_t)pos, SEEK_SET) < 0) return -errno;
    return 0;
}

int journal_open(journal_t **out, const char *dir, uint64_t max_bytes, char *err, size_t errcap)
{
    *out = NULL;
    journal_t *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errcap, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&j->lock, NULL);
    j->max_bytes = max_bytes;
    j->active.fd = j->draining.fd = -1;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;
        snprintf(err, errcap, "cannot create %s: %s", dir, strerror(errno));
        journal_close(j);
        return rc;
    }
    snprintf(j->active_path, sizeof j->active_path, "%s/journal.active", dir);
    snprintf(j->draining_path, sizeof j->draining_path, "%s/journal.draining", dir);
    int rc = journal_file_open(&j->active, j->active_path, true);
    if (rc == 0) rc = journal_file_open(&j->draining, j->draining_path, false);
    if (rc != 0) {
        snprintf(err, errcap, "cannot open the journal in %s: %s", dir, strerror(-rc));
        journal_close(j);
        return rc;
    }
    *out = j;
    return 0;
}

void journal_close(journal_t *j)
{
    if (!j) return;
    if (j->active.fd >= 0) close(j->active.fd);
    if (j->draining.fd >= 0) close(j->draining.fd);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

int journal_append(journal_t *j, const journal_rec_t *recs, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!journal_rec_ok(&recs[i])) return -EINVAL;
        total += journal_rec_size(&recs[i]);
    }
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf) return -ENOMEM;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        journal_encode(&recs[i], buf + off);
        off += journal_rec_size(&recs[i]);
    }
    pthread_mutex_lock(&j->lock);
    int rc = 0;
    if (j->active.bytes + j->draining.bytes + total > j->max_bytes) {
        rc = -ENOSPC;
    } else {
        size_t done = 0;
        while (done < total) {
            ssize_t w = write(j->active.fd, buf + done, total - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = -errno;
                break;
            }
            done += (size_t)w;
        }
        if (rc == 0 && fdatasync(j->active.fd) != 0) rc = -errno;
        if (rc == 0) {
            j->active.bytes += total;
            j->active.records += n;
        } else if (ftruncate(j->active.fd, (off_t)j->active.bytes) != 0 ||
                   lseek(j->active.fd, (off_t)j->active.bytes, SEEK_SET) < 0) {
            /* The file now ends in a torn batch; the next open cuts it. */
        }
    }
    pthread_mutex_unlock(&j->lock);
    free(buf);
    return rc;
}

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

int64_t journal_drain_begin(journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    int64_t rc = 0;
    if (j->draining.fd >= 0 && j->draining.records == 0) {
        /* Nothing readable left in it (emptied, or cut back to nothing on
         * open): it must not block the active file behind it. */
        close(j->draining.fd);
        j->draining.fd = -1;
        j->draining.bytes = 0;
        unlink(j->draining_path);
    }
    if (j->draining.fd < 0 && j->active.records > 0) {
        if (rename(j->active_path, j->draining_path) != 0) {
            rc = -errno;
        } else {
            j->draining = j->active;
            rc = journal_file_open(&j->active, j->active_path, true);
        }
    }
    if (rc == 0) rc = (int64_t)j->draining.records;
    pthread_mutex_unlock(&j->lock);
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
        int rc = journal_read_at(fd, *pos, &buf, &cap, &r, &next);
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
    if (j->draining.fd >= 0) {
        close(j->draining.fd);
        j->draining.fd = -1;
        j->draining.bytes = j->draining.records = 0;
        if (unlink(j->draining_path) != 0 && errno != ENOENT) rc = -errno;
    }
    pthread_mutex_unlock(&j->lock);
    return rc;
}
