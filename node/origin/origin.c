/* origin: the loader thread, its table of loads in flight, and the
 * workers' clients (see the header). Everything shared between the
 * loader and the clients is under one mutex, o->mu: the inbox, each
 * load's waiters, each client's finished results. Origin loads are not a
 * hot path (they stand for a miss), so one lock is enough; what the
 * workers read on every GET (the set in force, the load times) is read
 * without it. */
#include "node/origin/origin.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ring.h"
#include "node/core/breaker.h"
#include "node/core/log.h"
#include "node/origin/origin_http.h"
#include "node/pg/pg_uv.h"

#define ORIGIN_LOAD_BUCKETS 1024u
#define ORIGIN_BREAKER_THRESHOLD 5
#define ORIGIN_BREAKER_OPEN_MS 2000
#define BYTEAOID_ 17 /* pg_type.h's BYTEAOID, which libpq-fe.h does not export */

/* One asker of a load: which client gets the answer, and what to call. */
typedef struct origin_waiter {
    struct origin_waiter *next;
    origin_client_t *client;
    origin_load_fn cb;
    void *ctx;
} origin_waiter_t;

/* A request from a worker, in the inbox. */
typedef struct origin_req {
    struct origin_req *next;
    origin_waiter_t *waiter;
    uint64_t version, min_version;
    size_t klen;
    char key[];
} origin_req_t;

/* What the origin answered, shared by every waiter's result. */
typedef struct origin_blob {
    atomic_uint refs;
    origin_result_t r;          /* value, ct, origin and error point into data */
    char data[];
} origin_blob_t;

/* A finished result waiting for its client's loop. */
typedef struct origin_done {
    struct origin_done *next;
    origin_load_fn cb;
    void *ctx;
    origin_blob_t *blob;
} origin_done_t;

typedef struct origin_runtime origin_runtime_t;

/* A load: one request to an origin, and everyone waiting for it. */
typedef struct origin_load {
    struct origin_load *next;       /* hash chain */
    struct origin_load *qnext;      /* the origin's FIFO */
    origin_t *o;
    origin_set_t *set;              /* a reference: def lives in it */
    const origin_def_t *def;
    origin_runtime_t *rt;
    uint64_t hash, version;
    bool in_table;
    origin_waiter_t *waiters;       /* under o->mu */
    uint64_t started_us;
    char *param;                    /* postgres: $1 */
    size_t klen;
    char key[];
} origin_load_t;

/* Per origin name: in-flight accounting, the FIFO, the breaker and the
 * postgres connections. The loader thread's alone (stats are atomics). */
struct origin_runtime {
    origin_stats_t *stats;
    unsigned in_flight;
    origin_load_t *qhead, *qtail;
    size_t queued;
    breaker_fsm_t breaker;
    pg_uv_t **pg;                   /* concurrency connections, made on first use */
    size_t npg, next_pg;
    char *conninfo;                 /* what pg was made for */
};

struct origin_client {
    origin_t *o;
    uv_loop_t *loop;
    uv_async_t async;
    bool closed;                    /* under o->mu: closing, nothing more is delivered */
    bool handle_closed;             /* under o->mu: the async is closed; freed at refs 0 */
    unsigned refs;                  /* under o->mu: waiters naming it, and its own while open */
    origin_done_t *done_head, *done_tail; /* under o->mu */
    origin_set_t *set;              /* cached set in force */
    uint64_t set_gen;
};

struct origin {
    pthread_mutex_t mu;
    pthread_t thread;
    bool started, stopping;
    uv_loop_t loop;
    uv_async_t wake;
    origin_req_t *inbox_head, *inbox_tail;      /* under mu */
    _Atomic(origin_set_t *) set_ptr;            /* under set_mu for writers */
    pthread_mutex_t set_mu;
    atomic_uint_fast64_t set_gen;
    origin_load_t *table[ORIGIN_LOAD_BUCKETS];  /* loader thread */
    origin_stats_t stats[ORIGIN_SLOTS];
    origin_runtime_t rt[ORIGIN_SLOTS];          /* index = stats slot */
    origin_http_t *http;
    pg_uv_stats_t pg_stats;
    pg_uv_t **retired;                          /* connections a reload replaced: freed at stop */
    size_t nretired;
};

static const char *const origin_status_names[ORIGIN_STATUS_MAX] = {
    "ok", "not_found", "failed", "breaker", "busy", "unbound", "shutdown"};

const char *origin_status_name(origin_status_t s)
{
    return (unsigned)s < ORIGIN_STATUS_MAX ? origin_status_names[s] : "unknown";
}

static void origin_closed_noop(void *arg)
{
    (void)arg;
}

static uint64_t origin_now_us(void)
{
    return uv_hrtime() / 1000u;
}

/* ---------- the set in force ---------- */

origin_t *origin_new(void)
{
    origin_t *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    pthread_mutex_init(&o->mu, NULL);
    pthread_mutex_init(&o->set_mu, NULL);
    atomic_init(&o->set_ptr, NULL);
    for (size_t i = 0; i < ORIGIN_SLOTS; i++) {
        o->rt[i].stats = &o->stats[i];
        breaker_fsm_init(&o->rt[i].breaker, ORIGIN_BREAKER_THRESHOLD, ORIGIN_BREAKER_OPEN_MS, 0);
    }
    return o;
}

/* The stats slot of a name, taken if new (and "" past ORIGIN_SLOTS:
 * counted in the last slot). Names are only written here, under set_mu,
 * before the set naming them is published. */
static unsigned origin_slot(origin_t *o, const char *name)
{
    for (unsigned i = 0; i < ORIGIN_SLOTS; i++) {
        if (strcmp(o->stats[i].name, name) == 0) return i;
        if (!o->stats[i].name[0]) {
            snprintf(o->stats[i].name, sizeof o->stats[i].name, "%s", name);
            return i;
        }
    }
    return ORIGIN_SLOTS - 1;
}

origin_set_t *origin_current(origin_t *o)
{
    pthread_mutex_lock(&o->set_mu);
    origin_set_t *s = origin_set_ref(atomic_load(&o->set_ptr));
    pthread_mutex_unlock(&o->set_mu);
    return s;
}

bool origin_reload(origin_t *o, const char *path, char *err, size_t errlen)
{
    origin_set_t *s = origin_set_load(path, err, errlen);
    if (!s) return false;
    pthread_mutex_lock(&o->set_mu);
    for (size_t i = 0; i < s->n; i++) s->defs[i].slot = origin_slot(o, s->defs[i].name);
    origin_set_t *old = atomic_exchange(&o->set_ptr, s);
    atomic_fetch_add(&o->set_gen, 1);
    pthread_mutex_unlock(&o->set_mu);
    origin_set_unref(old);
    if (o->started) uv_async_send(&o->wake);
    return true;
}

origin_stats_t *origin_stats(origin_t *o, size_t *n)
{
    size_t used = 0;
    while (used < ORIGIN_SLOTS && o->stats[used].name[0]) used++;
    *n = used;
    return o->stats;
}

/* ---------- answering ---------- */

static origin_blob_t *origin_blob_new(origin_status_t st, const char *origin, const char *error, const void *value,
                                      size_t len, const char *ct, size_t ctlen)
{
    size_t olen = strlen(origin), elen = error ? strlen(error) : 0;
    origin_blob_t *b = malloc(sizeof *b + len + ctlen + olen + elen + 3);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    memset(&b->r, 0, sizeof b->r);
    char *p = b->data;
    if (len) memcpy(p, value, len);
    b->r.value = p;
    b->r.len = len;
    p += len;
    if (ctlen) memcpy(p, ct, ctlen);
    b->r.ct = p;
    b->r.ctlen = ctlen;
    p += ctlen;
    memcpy(p, origin, olen + 1);
    b->r.origin = p;
    p += olen + 1;
    if (error) memcpy(p, error, elen);
    p[elen] = '\0';
    b->r.error = p;
    b->r.status = st;
    return b;
}

static void origin_blob_unref(origin_blob_t *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) free(b);
}

/* A waiter is done with its client (under o->mu): a client closed while
 * the loader still held one of its waiters is freed with the last. */
static void origin_waiter_free_locked(origin_waiter_t *wt)
{
    origin_client_t *c = wt->client;
    free(wt);
    if (--c->refs == 0 && c->handle_closed) {
        origin_set_unref(c->set);
        free(c);
    }
}

/* Hands the blob to a waiter's client (under o->mu); frees the waiter. */
static void origin_deliver_locked(origin_waiter_t *wt, origin_blob_t *b)
{
    origin_client_t *c = wt->client;
    origin_done_t *d = c->closed ? NULL : malloc(sizeof *d);
    if (d) {
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
        *d = (origin_done_t){.cb = wt->cb, .ctx = wt->ctx, .blob = b};
        if (c->done_tail) c->done_tail->next = d;
        else c->done_head = d;
        c->done_tail = d;
        uv_async_send(&c->async);
    } else if (!c->closed) {
        log_error("origin: out of memory answering a load; its asker waits for its own timeout", NULL);
    }
    origin_waiter_free_locked(wt);
}

/* Answers every waiter in the list with one result (loader thread). */
static void origin_answer(origin_t *o, origin_waiter_t *list, origin_blob_t *b)
{
    pthread_mutex_lock(&o->mu);
    while (list) {
        origin_waiter_t *next = list->next;
        origin_deliver_locked(list, b);
        list = next;
    }
    pthread_mutex_unlock(&o->mu);
}

static void origin_answer_status(origin_t *o, origin_waiter_t *list, origin_status_t st, const char *origin,
                                 const char *error, uint64_t version)
{
    origin_blob_t *b = origin_blob_new(st, origin, error, NULL, 0, NULL, 0);
    if (b) b->r.version = version;
    if (!b) {
        /* Out of memory: the waiters are dropped; their flights time out
         * with the client's request. Rare enough not to spend a reserve. */
        pthread_mutex_lock(&o->mu);
        while (list) {
            origin_waiter_t *next = list->next;
            origin_waiter_free_locked(list);
            list = next;
        }
        pthread_mutex_unlock(&o->mu);
        return;
    }
    origin_answer(o, list, b);
    origin_blob_unref(b);
}

/* ---------- loads ---------- */

/* The table changes under mu (a closing client walks it); the loader
 * thread, its only writer, reads it without. */
static void origin_load_unlink(origin_t *o, origin_load_t *l)
{
    if (!l->in_table) return;
    pthread_mutex_lock(&o->mu);
    origin_load_t **pp = &o->table[l->hash & (ORIGIN_LOAD_BUCKETS - 1)];
    while (*pp && *pp != l) pp = &(*pp)->next;
    if (*pp) *pp = l->next;
    l->in_table = false;
    pthread_mutex_unlock(&o->mu);
}

static void origin_load_free(origin_load_t *l)
{
    origin_set_unref(l->set);
    free(l->param);
    free(l);
}

static void origin_start_next(origin_runtime_t *rt);

/* The load is over: everyone waiting gets b; the next queued load of its
 * origin may start. */
static void origin_load_finish(origin_load_t *l, origin_blob_t *b)
{
    origin_t *o = l->o;
    origin_runtime_t *rt = l->rt;
    origin_load_unlink(o, l);
    pthread_mutex_lock(&o->mu);
    origin_waiter_t *list = l->waiters;
    l->waiters = NULL;
    pthread_mutex_unlock(&o->mu);
    uint64_t took = origin_now_us() - l->started_us;
    origin_stats_t *st = rt->stats;
    if (b) {
        b->r.version = l->version;
        b->r.stale_ms = (int64_t)l->def->stale_ms;
        atomic_fetch_add(&st->results[b->r.status], 1);
        if (b->r.status == ORIGIN_OK || b->r.status == ORIGIN_NOT_FOUND) {
            breaker_fsm_success(&rt->breaker);
            uint64_t prev = atomic_load(&st->load_us_ewma);
            atomic_store(&st->load_us_ewma, prev ? prev - prev / 8 + took / 8 : took);
            atomic_fetch_add(&st->load_us_sum, took);
        } else if (b->r.status != ORIGIN_SHUTDOWN) {
            breaker_fsm_failure(&rt->breaker, (int64_t)(uv_hrtime() / 1000000u));
        }
        atomic_store(&st->breaker_open, rt->breaker.state == BREAKER_OPEN);
        origin_answer(o, list, b);
        origin_blob_unref(b);
    } else {
        atomic_fetch_add(&st->results[ORIGIN_FAILED], 1);
        origin_answer_status(o, list, ORIGIN_FAILED, l->def->name, "out of memory", l->version);
    }
    rt->in_flight--;
    atomic_fetch_sub(&st->in_flight, 1);
    origin_load_free(l);
    origin_start_next(rt);
}

static void origin_http_done(void *ctx, origin_http_result_t res, const origin_http_response_t *resp)
{
    origin_load_t *l = ctx;
    origin_blob_t *b;
    if (res == ORIGIN_HTTP_OK) {
        b = origin_blob_new(ORIGIN_OK, l->def->name, NULL, resp->body, resp->len, resp->content_type, resp->ctlen);
        if (b) {
            int64_t max_age = resp->max_age_ms;
            b->r.ttl_ms = max_age >= 0 ? max_age : (int64_t)l->def->ttl_ms;
            b->r.keep = !resp->no_store && max_age != 0;
        }
    } else if (res == ORIGIN_HTTP_NOT_FOUND) {
        b = origin_blob_new(ORIGIN_NOT_FOUND, l->def->name, NULL, NULL, 0, NULL, 0);
    } else {
        char why[96];
        if (res == ORIGIN_HTTP_STATUS) snprintf(why, sizeof why, "the origin answered HTTP %ld", resp ? resp->status : 0L);
        else if (res == ORIGIN_HTTP_TOO_LARGE)
            snprintf(why, sizeof why, "the origin's answer is larger than max_value_bytes (%zu)", l->def->max_value_bytes);
        else snprintf(why, sizeof why, "HTTP request failed: %s", origin_http_result_name(res));
        b = origin_blob_new(res == ORIGIN_HTTP_SHUTDOWN ? ORIGIN_SHUTDOWN : ORIGIN_FAILED, l->def->name, why, NULL, 0,
                            NULL, 0);
    }
    origin_load_finish(l, b);
}

static void origin_pg_done(void *ctx, pg_uv_result_t res, const PGresult *r, const char *err)
{
    origin_load_t *l = ctx;
    origin_blob_t *b = NULL;
    char why[160];
    if (res != PG_UV_OK) {
        snprintf(why, sizeof why, "PostgreSQL: %s%s%s", pg_uv_result_name(res), err ? ": " : "", err ? err : "");
        b = origin_blob_new(res == PG_UV_ERR_SHUTDOWN ? ORIGIN_SHUTDOWN : ORIGIN_FAILED, l->def->name, why, NULL, 0,
                            NULL, 0);
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, sizeof why, "PostgreSQL refused the query: %.120s", PQresultErrorMessage(r));
        for (char *p = why; *p; p++)
            if (*p == '\n') *p = ' ';
        b = origin_blob_new(ORIGIN_FAILED, l->def->name, why, NULL, 0, NULL, 0);
    } else if (PQntuples(r) == 0 || PQnfields(r) == 0 || PQgetisnull(r, 0, 0)) {
        b = origin_blob_new(ORIGIN_NOT_FOUND, l->def->name, NULL, NULL, 0, NULL, 0);
    } else {
        const char *ct = NULL;
        size_t ctlen = 0;
        int ctcol = PQfnumber(r, "content_type");
        if (ctcol > 0 && !PQgetisnull(r, 0, ctcol)) {
            ct = PQgetvalue(r, 0, ctcol);
            ctlen = (size_t)PQgetlength(r, 0, ctcol);
            if (ctlen > 255) ctlen = 0;
        }
        unsigned char *raw = NULL;
        size_t len = (size_t)PQgetlength(r, 0, 0);
        const char *val = PQgetvalue(r, 0, 0);
        if (PQftype(r, 0) == BYTEAOID_) {
            raw = PQunescapeBytea((const unsigned char *)val, &len);
            val = (const char *)raw;
        }
        if (!val) b = origin_blob_new(ORIGIN_FAILED, l->def->name, "out of memory", NULL, 0, NULL, 0);
        else if (len > l->def->max_value_bytes) {
            snprintf(why, sizeof why, "the query's value is larger than max_value_bytes (%zu)", l->def->max_value_bytes);
            b = origin_blob_new(ORIGIN_FAILED, l->def->name, why, NULL, 0, NULL, 0);
        } else {
            b = origin_blob_new(ORIGIN_OK, l->def->name, NULL, val, len, ct, ctlen);
            if (b) {
                b->r.ttl_ms = (int64_t)l->def->ttl_ms;
                b->r.keep = true;
            }
        }
        if (raw) PQfreemem(raw);
    }
    origin_load_finish(l, b);
}

/* The postgres connection a load goes out on: one of concurrency, made on
 * first use, remade when the conninfo changed. */
static pg_uv_t *origin_pg_client(origin_t *o, origin_runtime_t *rt, const origin_def_t *d)
{
    if (rt->conninfo && strcmp(rt->conninfo, d->conninfo) != 0) {
        /* A reload changed it: the old connections finish what they run,
         * then close. */
        pg_uv_t **more = realloc(o->retired, (o->nretired + rt->npg) * sizeof *more);
        if (!more) return NULL;
        o->retired = more;
        for (size_t i = 0; i < rt->npg; i++)
            if (rt->pg[i]) {
                pg_uv_close(rt->pg[i], origin_closed_noop, NULL);
                o->retired[o->nretired++] = rt->pg[i];
            }
        free(rt->pg);
        rt->pg = NULL;
        rt->npg = 0;
        free(rt->conninfo);
        rt->conninfo = NULL;
    }
    if (!rt->pg) {
        rt->pg = calloc(d->concurrency, sizeof *rt->pg);
        rt->conninfo = strdup(d->conninfo);
        if (!rt->pg || !rt->conninfo) return NULL;
        rt->npg = d->concurrency;
    }
    size_t i = rt->next_pg++ % rt->npg;
    if (!rt->pg[i]) {
        pg_uv_config_t cfg = {.conninfo = d->conninfo,
                              .connect_timeout_ms = d->timeout_ms,
                              .query_timeout_ms = d->timeout_ms,
                              .stats = &o->pg_stats};
        rt->pg[i] = pg_uv_new(&o->loop, &cfg);
    }
    return rt->pg[i];
}

/* Appends src percent-encoded (RFC 3986: only unreserved characters
 * stay), so a key cannot change the URL's path or query structure. */
static size_t origin_url_encode(const char *src, size_t len, char *out, size_t cap, size_t at)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        bool keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                    ch == '.' || ch == '_' || ch == '~';
        if (keep) {
            if (at + 1 < cap) out[at] = (char)ch;
            at++;
        } else {
            char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            for (int k = 0; k < 3; k++, at++)
                if (at + 1 < cap) out[at] = enc[k];
        }
    }
    return at;
}

/* The URL template with {key} and {rest} filled in; like snprintf, returns
 * the length it needs. */
size_t origin_url_expand(const char *tmpl, const char *key, size_t klen, const char *rest, size_t rlen, char *out,
                         size_t cap)
{
    size_t at = 0;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{key}", 5) == 0) {
            at = origin_url_encode(key, klen, out, cap, at);
            p += 5;
        } else if (strncmp(p, "{rest}", 6) == 0) {
            at = origin_url_encode(rest, rlen, out, cap, at);
            p += 6;
        } else {
            if (at + 1 < cap) out[at] = *p;
            at++;
            p++;
        }
    }
    if (cap) out[at < cap ? at : cap - 1] = '\0';
    return at;
}

/* Sends the load (the origin has room for it). */
static void origin_send(origin_load_t *l)
{
    origin_t *o = l->o;
    origin_runtime_t *rt = l->rt;
    const origin_def_t *d = l->def;
    rt->in_flight++;
    atomic_fetch_add(&rt->stats->in_flight, 1);
    l->started_us = origin_now_us();
    int64_t now_ms = (int64_t)(uv_hrtime() / 1000000u);
    breaker_verdict_t v = breaker_fsm_allow(&rt->breaker, now_ms);
    if (v == BREAKER_REJECT) {
        origin_load_unlink(o, l);
        pthread_mutex_lock(&o->mu);
        origin_waiter_t *list = l->waiters;
        l->waiters = NULL;
        pthread_mutex_unlock(&o->mu);
        atomic_fetch_add(&rt->stats->results[ORIGIN_BREAKER], 1);
        origin_answer_status(o, list, ORIGIN_BREAKER, d->name, "the origin's breaker is open after failures in a row",
                             l->version);
        rt->in_flight--;
        atomic_fetch_sub(&rt->stats->in_flight, 1);
        origin_load_free(l);
        return;
    }
    if (v == BREAKER_TRIAL) breaker_fsm_claim(&rt->breaker, now_ms);
    atomic_fetch_add(&rt->stats->loads, 1);
    if (d->kind == ORIGIN_KIND_HTTP) {
        size_t need = origin_url_expand(d->url, l->key, l->klen, l->param, strlen(l->param), NULL, 0);
        char *url = malloc(need + 1);
        if (url) origin_url_expand(d->url, l->key, l->klen, l->param, strlen(l->param), url, need + 1);
        if (url && origin_http_get(o->http, url, (const char *const *)d->headers, (long)d->timeout_ms,
                                   d->max_value_bytes, origin_http_done, l) == 0) {
            free(url);
            return;
        }
        free(url);
    } else {
        pg_uv_t *pg = origin_pg_client(o, rt, d);
        const char *param = d->param_rest ? l->param : l->key;
        if (pg && pg_uv_query(pg, d->query, 1, &param, origin_pg_done, l) == 0) return;
    }
    origin_load_finish(l, origin_blob_new(ORIGIN_FAILED, d->name, "could not start the request", NULL, 0,
                                          NULL, 0));
}

static void origin_start_next(origin_runtime_t *rt)
{
    while (rt->qhead && rt->in_flight < rt->qhead->def->concurrency) {
        origin_load_t *l = rt->qhead;
        rt->qhead = l->qnext;
        if (!rt->qhead) rt->qtail = NULL;
        rt->queued--;
        atomic_fetch_sub(&rt->stats->queued, 1);
        origin_send(l);
    }
}

/* A request from the inbox: joins a load in flight or starts one. */
static void origin_take(origin_t *o, origin_set_t *set, origin_req_t *q)
{
    origin_waiter_t *wt = q->waiter;
    size_t rest_off = 0;
    const origin_def_t *d = origin_set_match(set, q->key, q->klen, &rest_off);
    if (!d) {
        origin_answer_status(o, wt, ORIGIN_UNBOUND, "", "no origin serves this key", q->version);
        return;
    }
    origin_runtime_t *rt = &o->rt[d->slot];
    atomic_fetch_add(&rt->stats->requests, 1);
    uint64_t hash = ring_key_hash(q->key, q->klen);
    for (origin_load_t *l = o->table[hash & (ORIGIN_LOAD_BUCKETS - 1)]; l; l = l->next) {
        if (l->hash != hash || l->klen != q->klen || memcmp(l->key, q->key, q->klen) != 0 || l->def != d) continue;
        if (l->version <= q->min_version) continue;
        pthread_mutex_lock(&o->mu);
        wt->next = l->waiters;
        l->waiters = wt;
        pthread_mutex_unlock(&o->mu);
        atomic_fetch_add(&rt->stats->coalesced, 1);
        return;
    }
    origin_load_t *l = calloc(1, sizeof *l + q->klen + 1);
    char *param = l ? malloc(q->klen - rest_off + 1) : NULL;
    if (!l || !param) {
        free(l);
        free(param);
        origin_answer_status(o, wt, ORIGIN_FAILED, d->name, "out of memory", q->version);
        return;
    }
    l->o = o;
    l->set = origin_set_ref(set);
    l->def = d;
    l->rt = rt;
    l->hash = hash;
    l->version = q->version;
    l->waiters = wt;
    wt->next = NULL;
    memcpy(l->key, q->key, q->klen);
    l->klen = q->klen;
    memcpy(param, q->key + rest_off, q->klen - rest_off);
    param[q->klen - rest_off] = '\0';
    l->param = param;
    origin_load_t **slot = &o->table[hash & (ORIGIN_LOAD_BUCKETS - 1)];
    pthread_mutex_lock(&o->mu);
    l->next = *slot;
    *slot = l;
    l->in_table = true;
    pthread_mutex_unlock(&o->mu);
    if (rt->in_flight < d->concurrency) {
        origin_send(l);
        return;
    }
    if (rt->queued >= ORIGIN_QUEUE_MAX) {
        origin_load_unlink(o, l);
        pthread_mutex_lock(&o->mu);
        origin_waiter_t *list = l->waiters;
        l->waiters = NULL;
        pthread_mutex_unlock(&o->mu);
        atomic_fetch_add(&rt->stats->results[ORIGIN_BUSY], 1);
        origin_answer_status(o, list, ORIGIN_BUSY, d->name, "too many loads wait for this origin", q->version);
        origin_load_free(l);
        return;
    }
    if (rt->qtail) rt->qtail->qnext = l;
    else rt->qhead = l;
    rt->qtail = l;
    rt->queued++;
    atomic_fetch_add(&rt->stats->queued, 1);
}

static void origin_wake_cb(uv_async_t *h)
{
    origin_t *o = h->data;
    pthread_mutex_lock(&o->mu);
    origin_req_t *q = o->inbox_head;
    o->inbox_head = o->inbox_tail = NULL;
    bool stopping = o->stopping;
    pthread_mutex_unlock(&o->mu);
    origin_set_t *set = origin_current(o);
    while (q) {
        origin_req_t *next = q->next;
        if (stopping) origin_answer_status(o, q->waiter, ORIGIN_SHUTDOWN, "", "the node is stopping", q->version);
        else origin_take(o, set, q);
        free(q);
        q = next;
    }
    origin_set_unref(set);
    if (stopping) {
        /* Everything queued fails; what is in flight fails as curl and
         * libpq give it back (SHUTDOWN). */
        for (size_t i = 0; i < ORIGIN_SLOTS; i++) {
            origin_runtime_t *rt = &o->rt[i];
            while (rt->qhead) {
                origin_load_t *l = rt->qhead;
                rt->qhead = l->qnext;
                rt->queued--;
                atomic_fetch_sub(&rt->stats->queued, 1);
                origin_load_unlink(o, l);
                pthread_mutex_lock(&o->mu);
                origin_waiter_t *list = l->waiters;
                l->waiters = NULL;
                pthread_mutex_unlock(&o->mu);
                origin_answer_status(o, list, ORIGIN_SHUTDOWN, l->def->name, "the node is stopping", l->version);
                origin_load_free(l);
            }
            rt->qtail = NULL;
            for (size_t k = 0; k < rt->npg; k++)
                if (rt->pg[k]) pg_uv_close(rt->pg[k], origin_closed_noop, NULL);
        }
        if (o->http) origin_http_close(o->http, origin_closed_noop, NULL);
        uv_close((uv_handle_t *)&o->wake, NULL);
    }
}

static void origin_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void *origin_thread(void *arg)
{
    origin_t *o = arg;
    uv_run(&o->loop, UV_RUN_DEFAULT);
    /* Anything left (a timer of a client closed without a callback). */
    uv_walk(&o->loop, origin_walk_close, NULL);
    uv_run(&o->loop, UV_RUN_DEFAULT);
    return NULL;
}

int origin_start(origin_t *o)
{
    if (uv_loop_init(&o->loop) != 0) return -1;
    o->http = origin_http_new(&o->loop, 0);
    if (!o->http || uv_async_init(&o->loop, &o->wake, origin_wake_cb) != 0) {
        if (o->http) origin_http_free(o->http);
        o->http = NULL;
        uv_loop_close(&o->loop);
        return -1;
    }
    o->wake.data = o;
    if (pthread_create(&o->thread, NULL, origin_thread, o) != 0) {
        uv_close((uv_handle_t *)&o->wake, NULL);
        uv_run(&o->loop, UV_RUN_DEFAULT);
        origin_http_free(o->http);
        o->http = NULL;
        uv_loop_close(&o->loop);
        return -1;
    }
    o->started = true;
    return 0;
}

void origin_stop(origin_t *o)
{
    if (!o || !o->started) return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_mutex_unlock(&o->mu);
    uv_async_send(&o->wake);
    pthread_join(o->thread, NULL);
    o->started = false;
    for (size_t i = 0; i < ORIGIN_SLOTS; i++) {
        origin_runtime_t *rt = &o->rt[i];
        for (size_t k = 0; k < rt->npg; k++)
            if (rt->pg[k]) pg_uv_free(rt->pg[k]);
        free(rt->pg);
        rt->pg = NULL;
        rt->npg = 0;
        free(rt->conninfo);
        rt->conninfo = NULL;
    }
    for (size_t i = 0; i < o->nretired; i++) pg_uv_free(o->retired[i]);
    free(o->retired);
    o->retired = NULL;
    o->nretired = 0;
    origin_http_free(o->http);
    o->http = NULL;
    uv_loop_close(&o->loop);
}

void origin_free(origin_t *o)
{
    if (!o) return;
    origin_set_unref(atomic_load(&o->set_ptr));
    pthread_mutex_destroy(&o->mu);
    pthread_mutex_destroy(&o->set_mu);
    free(o);
}

/* ---------- clients ---------- */

static void origin_client_drain(uv_async_t *h)
{
    origin_client_t *c = h->data;
    origin_t *o = c->o;
    pthread_mutex_lock(&o->mu);
    origin_done_t *d = c->done_head;
    c->done_head = c->done_tail = NULL;
    pthread_mutex_unlock(&o->mu);
    while (d) {
        origin_done_t *next = d->next;
        d->cb(d->ctx, &d->blob->r);
        origin_blob_unref(d->blob);
        free(d);
        d = next;
    }
}

origin_client_t *origin_client_new(origin_t *o, uv_loop_t *loop)
{
    origin_client_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->o = o;
    c->loop = loop;
    c->refs = 1;
    if (uv_async_init(loop, &c->async, origin_client_drain) != 0) {
        free(c);
        return NULL;
    }
    c->async.data = c;
    return c;
}

const origin_def_t *origin_client_match(origin_client_t *c, const char *key, size_t klen, size_t *rest_off)
{
    uint64_t gen = atomic_load_explicit(&c->o->set_gen, memory_order_acquire);
    if (gen != c->set_gen) {
        origin_set_unref(c->set);
        c->set = origin_current(c->o);
        c->set_gen = gen;
    }
    return c->set && c->set->n ? origin_set_match(c->set, key, klen, rest_off) : NULL;
}

double origin_client_load_ms(origin_client_t *c, const origin_def_t *d)
{
    return (double)atomic_load_explicit(&c->o->stats[d->slot].load_us_ewma, memory_order_relaxed) / 1000.0;
}

void origin_client_load(origin_client_t *c, const char *key, size_t klen, uint64_t version, uint64_t min_version,
                        origin_load_fn cb, void *ctx)
{
    origin_t *o = c->o;
    origin_req_t *q = malloc(sizeof *q + klen);
    origin_waiter_t *wt = q ? malloc(sizeof *wt) : NULL;
    if (!q || !wt) {
        free(q);
        free(wt);
        origin_result_t r = {.status = ORIGIN_FAILED, .origin = "", .error = "out of memory", .version = version};
        cb(ctx, &r);
        return;
    }
    *wt = (origin_waiter_t){.client = c, .cb = cb, .ctx = ctx};
    q->next = NULL;
    q->waiter = wt;
    q->version = version;
    q->min_version = min_version;
    q->klen = klen;
    memcpy(q->key, key, klen);
    pthread_mutex_lock(&o->mu);
    bool refuse = !o->started || o->stopping;
    if (!refuse) {
        c->refs++;
        if (o->inbox_tail) o->inbox_tail->next = q;
        else o->inbox_head = q;
        o->inbox_tail = q;
        uv_async_send(&o->wake);
    }
    pthread_mutex_unlock(&o->mu);
    if (refuse) {
        free(q);
        free(wt);
        origin_result_t r = {.status = ORIGIN_SHUTDOWN, .origin = "", .error = "the node is stopping",
                             .version = version};
        cb(ctx, &r);
    }
}

static void origin_client_closed(uv_handle_t *h)
{
    origin_client_t *c = h->data;
    pthread_mutex_lock(&c->o->mu);
    c->handle_closed = true;
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->o->mu);
    if (last) {
        origin_set_unref(c->set);
        free(c);
    }
}

/* Takes this client's waiters out of a list (under o->mu). */
static void origin_steal_waiters(origin_waiter_t **list, origin_client_t *c, origin_waiter_t **out)
{
    while (*list) {
        origin_waiter_t *w = *list;
        if (w->client == c) {
            *list = w->next;
            w->next = *out;
            *out = w;
        } else {
            list = &w->next;
        }
    }
}

void origin_client_close(origin_client_t *c)
{
    if (!c) return;
    origin_t *o = c->o;
    origin_waiter_t *mine = NULL;
    pthread_mutex_lock(&o->mu);
    c->closed = true;
    /* The inbox and the loads: the loader thread only changes waiter lists
     * under mu, so they can be taken here. */
    for (origin_req_t **pq = &o->inbox_head; *pq;) {
        origin_req_t *q = *pq;
        if (q->waiter->client == c) {
            *pq = q->next;
            q->waiter->next = mine;
            mine = q->waiter;
            free(q);
        } else {
            pq = &q->next;
        }
    }
    o->inbox_tail = NULL;
    for (origin_req_t *q = o->inbox_head; q; q = q->next) o->inbox_tail = q;
    if (o->started)
        for (size_t b = 0; b < ORIGIN_LOAD_BUCKETS; b++)
            for (origin_load_t *l = o->table[b]; l; l = l->next) origin_steal_waiters(&l->waiters, c, &mine);
    origin_done_t *done = c->done_head;
    c->done_head = c->done_tail = NULL;
    pthread_mutex_unlock(&o->mu);
    while (done) {
        origin_done_t *next = done->next;
        done->cb(done->ctx, &done->blob->r);
        origin_blob_unref(done->blob);
        free(done);
        done = next;
    }
    while (mine) {
        origin_waiter_t *next = mine->next;
        origin_result_t r = {.status = ORIGIN_SHUTDOWN, .origin = "", .error = "the node is stopping"};
        mine->cb(mine->ctx, &r);
        pthread_mutex_lock(&o->mu);
        origin_waiter_free_locked(mine);
        pthread_mutex_unlock(&o->mu);
        mine = next;
    }
    uv_close((uv_handle_t *)&c->async, origin_client_closed);
}

/* ---------- metrics ---------- */

void origin_metrics(origin_t *o, sbuf_t *out)
{
    size_t n;
    origin_stats_t *st = origin_stats(o, &n);
    if (!n) return;
    char labels[160];
    metrics_prom_header(out, "origin_requests_total", "counter",
                        "Values asked of an origin by the data path (misses and refreshes).");
    for (size_t i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "origin=\"%.63s\"", st[i].name);
        metrics_prom_uint(out, "origin_requests_total", labels, atomic_load(&st[i].requests));
    }
    metrics_prom_header(out, "origin_coalesced_total", "counter",
                        "Requests that joined a load of the same key already in flight.");
    for (size_t i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "origin=\"%.63s\"", st[i].name);
        metrics_prom_uint(out, "origin_coalesced_total", labels, atomic_load(&st[i].coalesced));
    }
    metrics_prom_header(out, "origin_loads_total", "counter", "Requests sent to an origin.");
    for (size_t i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "origin=\"%.63s\"", st[i].name);
        metrics_prom_uint(out, "origin_loads_total", labels, atomic_load(&st[i].loads));
    }
    metrics_prom_header(out, "origin_results_total", "counter", "Loads (and refusals) by outcome.");
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < ORIGIN_STATUS_MAX; r++) {
            if (r == ORIGIN_UNBOUND) continue;
            snprintf(labels, sizeof labels, "origin=\"%.63s\",result=\"%s\"", st[i].name, origin_status_name(r));
            metrics_prom_uint(out, "origin_results_total", labels, atomic_load(&st[i].results[r]));
        }
    metrics_prom_header(out, "origin_in_flight", "gauge", "Loads in flight to an origin.");
    for (size_t i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "origin=\"%.63s\"", st[i].name);
        metrics_prom_value(out, "origin_in_flight", labels, (double)atomic_load(&st[i].in_flight));
    }
    metrics_prom_header(out, "origin_queued", "gauge", "Loads waiting for an origin's concurrency (bound 4096).");
    for (size_t i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "origin=\"%.63s\"", st[i].name);
        metrics_prom_value(out, "origin_queued", labels, (double)atomic_load(&st[i].queued));
    }
    metrics_prom_header(out, "origin_load_seconds", "gauge", "A load's time, smoothed (what refresh-ahead uses).");
    for (size_t i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "origin=\"%.63s\"", st[i].name);
        metrics_prom_value(out, "origin_load_seconds", labels, (double)atomic_load(&st[i].load_us_ewma) / 1e6);
    }
    metrics_prom_header(out, "origin_breaker_open", "gauge", "1 while an origin's breaker is open.");
    for (size_t i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "origin=\"%.63s\"", st[i].name);
        metrics_prom_value(out, "origin_breaker_open", labels, (double)atomic_load(&st[i].breaker_open));
    }
}
