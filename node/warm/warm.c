/* warm: warming jobs on the main loop (see the header). */
#include "node/warm/warm.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/limits.h"
#include "cluster/ring.h"
#include "node/core/log.h"
#include "node/core/sysinfo.h"
#include "node/pg/pg_uv.h"
#include "node/route/route_read.h"
#include "node/route/route_serve.h"

#define WARM_TICK_MS 1000
#define WARM_SYNC_MS 2000
#define WARM_LEASE_MS 15000
#define WARM_QUERY_ROWS_MAX 1000000u

/* The lease renewal, which also answers a cancel asked on another node:
 * -1 cancelled, 0 the lease is not ours any more, 1 renewed. */
#define WARM_RENEW_SCRIPT                                                                                           \
    "if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DEL', KEYS[2]) return -1 end "                        \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "           \
    "return 0"
#define WARM_RELEASE_SCRIPT "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
/* A takeover from a runner the cluster no longer counts as a member: the
 * lease if it lapsed or is still that runner's (ARGV[2]). The answer is
 * SET's, as for a plain claim: OK, or nil when someone else holds it. */
#define WARM_STEAL_SCRIPT                                                                                           \
    "local cur = redis.call('GET', KEYS[1]) "                                                                       \
    "if cur == false or cur == ARGV[2] then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) end "        \
    "return false"

typedef struct warm_run warm_run_t;

/* A job known here, by name. */
typedef struct warm_entry {
    bool used;
    warm_job_t job;
    int64_t next_fire;           /* scheduled: the next firing (wall ms) */
    bool has_last;
    warm_run_info_t last;
    uint64_t runs;
    bool persist, unpersist;     /* API change not in Redis yet (HSET / HDEL) */
    bool trigger;                /* run now, asked through the API */
    char trigger_actor[72];
    bool cancel;
    warm_run_t *run;             /* running here */
    int64_t seen_in_redis_ms;    /* the last sync that found it there */
} warm_entry_t;

struct warm_run {
    warm_run_t *next;
    bool owned_only;             /* HOT after a ring change: only the keys this node owns */
    warm_t *w;
    warm_job_t job;              /* a copy: the registry may change meanwhile */
    warm_run_info_t info;        /* under w->mu (the API reads it) */
    bool adhoc;
    char **list;                 /* KEYS (borrowed from job), HOT, QUERY (owned): the keys */
    size_t nlist;
    bool own_list;
    size_t pos;                  /* next key of list to issue */
    char **page;                 /* PATTERN: the current SCAN page (owned) */
    size_t npage, ppos;
    char cursor[32];             /* PATTERN: the cursor of the next page; "0" after the last */
    char page_cursor[32];        /* PATTERN: the cursor that gave the current page (progress) */
    bool source_ready;           /* HOT, QUERY: the list is fetched */
    bool source_done, fetching;
    unsigned in_flight;
    bool cancelled, stopped;     /* stopped: the lease was lost, another node runs it */
    bool leased;
    bool ended;
    pg_uv_t *pg;                 /* QUERY */
    int64_t last_progress_ms;
};

struct warm {
    uv_loop_t *loop;
    route_t *rt;
    route_worker_t rw;
    bool rw_up;
    warm_hooks_t hooks;
    pthread_mutex_t mu;
    warm_entry_t jobs[WARM_JOBS_MAX];          /* under mu */
    warm_job_t *adhoc;                         /* under mu: ad-hoc runs asked for */
    char (*adhoc_actor)[72];
    char (*adhoc_id)[96];
    size_t nadhoc;
    warm_run_t *runs;                          /* main loop; info under mu */
    char *history[WARM_HISTORY_MAX];           /* under mu: JSON of runs, newest first */
    size_t nhistory;
    bool history_from_redis;
    uv_timer_t tick;
    uv_async_t wake;
    unsigned in_flight;
    int64_t last_sync;
    bool syncing;
    bool closing;
    int pending_closes;
    void (*done)(void *);
    void *done_arg;
    warm_stats_t stats;
    bool pumping, pump_again;
    warm_hot_t hot;                            /* predicted hot keys */
    uv_timer_t prefetch;
};

static const char *warm_self(warm_t *w)
{
    const char *n = route_self_name(w->rt);
    return *n ? n : "this-node";
}

static int64_t warm_now(void)
{
    return sysinfo_now_ms();
}

static bool warm_redis(warm_t *w)
{
    return w->rw_up && w->rw.l2;
}

/* <prefix>warm:<what> into out. */
static size_t warm_rkey(warm_t *w, char *out, size_t cap, const char *what, const char *name)
{
    size_t plen;
    const char *p = l2_prefix(w->rw.l2, &plen);
    int n = snprintf(out, cap, "%.*swarm:%s%s%s", (int)plen, p, what, name ? ":" : "", name ? name : "");
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static void warm_ignore_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    (void)ctx;
    (void)res;
    (void)reply;
}

static void warm_cmd(warm_t *w, int argc, const char **argv, l2_reply_fn cb, void *ctx)
{
    size_t lens[8];
    for (int i = 0; i < argc && i < 8; i++) lens[i] = strlen(argv[i]);
    l2_command(w->rw.l2, argc, argv, lens, cb ? cb : warm_ignore_reply, ctx);
}

/* ---------- runs as JSON ---------- */

void warm_run_json(const warm_run_info_t *r, sbuf_t *out)
{
    int64_t end = r->ended_ms ? r->ended_ms : warm_now();
    /* A run inside one millisecond counts as one. */
    double secs = (double)(end > r->started_ms ? end - r->started_ms : 1) / 1000.0;
    sbuf_puts(out, "{\"id\":");
    sbuf_json_string(out, r->id, strlen(r->id));
    sbuf_puts(out, ",\"job\":");
    sbuf_json_string(out, r->job, strlen(r->job));
    sbuf_puts(out, ",\"node\":");
    sbuf_json_string(out, r->node, strlen(r->node));
    sbuf_puts(out, ",\"trigger\":");
    sbuf_json_string(out, r->trigger, strlen(r->trigger));
    sbuf_printf(out, ",\"state\":\"%s\",\"started_ms\":%lld,\"ended_ms\":", r->state, (long long)r->started_ms);
    if (r->ended_ms) sbuf_printf(out, "%lld", (long long)r->ended_ms);
    else sbuf_puts(out, "null");
    sbuf_printf(out, ",\"keys\":%llu,\"loaded\":%llu,\"missing\":%llu,\"failed\":%llu,\"keys_per_s\":%.1f,"
                     "\"success_rate\":%.4f",
                (unsigned long long)r->total, (unsigned long long)r->loaded, (unsigned long long)r->missing,
                (unsigned long long)r->failed, secs > 0 ? (double)r->total / secs : 0.0,
                r->total ? (double)(r->total - r->failed) / (double)r->total : 1.0);
    if (r->error[0]) {
        sbuf_puts(out, ",\"error\":");
        sbuf_json_string(out, r->error, strlen(r->error));
    }
    sbuf_puts(out, "}");
}

static bool warm_run_from_json(warm_run_info_t *r, json_t *o)
{
    memset(r, 0, sizeof *r);
    const char *s;
    if (!json_is_object(o) || !(s = json_string_value(json_object_get(o, "id")))) return false;
    snprintf(r->id, sizeof r->id, "%s", s);
    if ((s = json_string_value(json_object_get(o, "job")))) snprintf(r->job, sizeof r->job, "%s", s);
    if ((s = json_string_value(json_object_get(o, "node")))) snprintf(r->node, sizeof r->node, "%s", s);
    if ((s = json_string_value(json_object_get(o, "trigger")))) snprintf(r->trigger, sizeof r->trigger, "%s", s);
    if ((s = json_string_value(json_object_get(o, "state")))) snprintf(r->state, sizeof r->state, "%s", s);
    if ((s = json_string_value(json_object_get(o, "error")))) snprintf(r->error, sizeof r->error, "%s", s);
    r->started_ms = json_integer_value(json_object_get(o, "started_ms"));
    r->ended_ms = json_integer_value(json_object_get(o, "ended_ms"));
    r->total = (uint64_t)json_integer_value(json_object_get(o, "keys"));
    r->loaded = (uint64_t)json_integer_value(json_object_get(o, "loaded"));
    r->missing = (uint64_t)json_integer_value(json_object_get(o, "missing"));
    r->failed = (uint64_t)json_integer_value(json_object_get(o, "failed"));
    return true;
}

/* ---------- the registry (under mu) ---------- */

static warm_entry_t *warm_find_locked(warm_t *w, const char *name)
{
    for (size_t i = 0; i < WARM_JOBS_MAX; i++)
        if (w->jobs[i].used && strcmp(w->jobs[i].job.name, name) == 0) return &w->jobs[i];
    return NULL;
}

static warm_entry_t *warm_slot_locked(warm_t *w)
{
    for (size_t i = 0; i < WARM_JOBS_MAX; i++)
        if (!w->jobs[i].used) return &w->jobs[i];
    return NULL;
}

static void warm_schedule_locked(warm_entry_t *e, int64_t now)
{
    e->next_fire = e->job.scheduled && e->job.enabled ? warm_cron_next(&e->job.cron, now, 0) : 0;
    if (e->next_fire < 0) e->next_fire = 0;
}

/* Puts j (copied) in force as name's job; keeps its runtime state. */
static warm_api_result_t warm_set_locked(warm_t *w, const warm_job_t *j)
{
    warm_entry_t *e = warm_find_locked(w, j->name);
    bool fresh = !e;
    if (!e && !(e = warm_slot_locked(w))) return WARM_API_FULL;
    warm_job_t copy;
    if (!warm_job_copy(&copy, j)) return WARM_API_NO_MEMORY;
    if (fresh) {
        memset(e, 0, sizeof *e);
        e->used = true;
        atomic_fetch_add(&w->stats.jobs, 1);
    } else {
        warm_job_clear(&e->job);
    }
    e->job = copy;
    warm_schedule_locked(e, warm_now());
    return WARM_API_OK;
}

static void warm_remove_locked(warm_t *w, warm_entry_t *e)
{
    if (e->run) e->run->cancelled = true;
    warm_job_clear(&e->job);
    e->used = false;
    atomic_fetch_sub(&w->stats.jobs, 1);
}

/* The file's "jobs": each file job replaced, file jobs no longer there
 * removed, API jobs kept. */
static bool warm_load_file(warm_t *w, const char *file, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: not JSON: %s (line %d)", file, jerr.text, jerr.line);
        return false;
    }
    json_t *list = json_object_get(root, "jobs");
    size_t n = json_array_size(list);
    if (list && !json_is_array(list)) {
        snprintf(err, errlen, "%s: \"jobs\" must be an array", file);
        json_decref(root);
        return false;
    }
    warm_job_t *jobs = calloc(n ? n : 1, sizeof *jobs);
    bool ok = jobs != NULL;
    char inner[300];
    for (size_t i = 0; ok && i < n; i++) {
        if (!warm_job_from_json(&jobs[i], json_array_get(list, i), inner, sizeof inner)) {
            snprintf(err, errlen, "%s: jobs[%zu]: %s", file, i, inner);
            ok = false;
            break;
        }
        jobs[i].from_file = true;
        for (size_t k = 0; k < i; k++)
            if (strcmp(jobs[k].name, jobs[i].name) == 0) {
                snprintf(err, errlen, "%s: job %s is declared twice", file, jobs[i].name);
                ok = false;
            }
    }
    if (!jobs) snprintf(err, errlen, "out of memory");
    if (ok) {
        pthread_mutex_lock(&w->mu);
        for (size_t i = 0; i < WARM_JOBS_MAX; i++) {
            warm_entry_t *e = &w->jobs[i];
            if (!e->used || !e->job.from_file) continue;
            bool kept = false;
            for (size_t k = 0; k < n && !kept; k++) kept = strcmp(jobs[k].name, e->job.name) == 0;
            if (!kept) warm_remove_locked(w, e);
        }
        for (size_t k = 0; k < n && ok; k++) {
            warm_entry_t *e = warm_find_locked(w, jobs[k].name);
            if (e && !e->job.from_file) {
                snprintf(err, errlen, "%s: job %s is also an API job: delete that one first", file, jobs[k].name);
                ok = false;
            } else if (warm_set_locked(w, &jobs[k]) != WARM_API_OK) {
                snprintf(err, errlen, "%s: too many jobs (at most %d)", file, WARM_JOBS_MAX);
                ok = false;
            }
        }
        pthread_mutex_unlock(&w->mu);
    }
    for (size_t i = 0; jobs && i < n; i++) warm_job_clear(&jobs[i]); /* zeroed ones too: a no-op */
    free(jobs);
    json_decref(root);
    return ok;
}

/* ---------- running ---------- */

static void warm_pump(warm_t *w);
static void warm_pump_once(warm_t *w);
static void warm_run_end(warm_run_t *r, const char *state, const char *error);

typedef struct warm_item {
    warm_run_t *run;
} warm_item_t;

static void warm_item_done(warm_item_t *it, int outcome)
{
    warm_run_t *r = it->run;
    warm_t *w = r->w;
    free(it);
    pthread_mutex_lock(&w->mu);
    if (outcome == 0) r->info.loaded++;
    else if (outcome == 1) r->info.missing++;
    else r->info.failed++;
    pthread_mutex_unlock(&w->mu);
    atomic_fetch_add(outcome == 0 ? &w->stats.keys_loaded : outcome == 1 ? &w->stats.keys_missing
                                                                          : &w->stats.keys_failed,
                     1);
    r->in_flight--;
    w->in_flight--;
    atomic_fetch_sub(&w->stats.in_flight, 1);
    warm_pump(w);
}

static void warm_reply_value(void *ctx, const route_value_t *v, void (*release)(void *), void *rctx)
{
    (void)v;
    if (release) release(rctx);
    warm_item_done(ctx, 0);
}

static void warm_reply_miss(void *ctx, const char *node, const char *owner)
{
    (void)node;
    (void)owner;
    warm_item_done(ctx, 1);
}

static void warm_reply_written(void *ctx, const route_written_t *wr)
{
    (void)wr;
    warm_item_done(ctx, 2);
}

static void warm_reply_fail(void *ctx, route_error_t err, const char *message)
{
    (void)err;
    (void)message;
    warm_item_done(ctx, 2);
}

static const route_reply_ops_t warm_reply_ops = {
    .value = warm_reply_value,
    .miss = warm_reply_miss,
    .stored = warm_reply_written,
    .deleted = warm_reply_written,
    .fail = warm_reply_fail,
};

static void warm_issue(warm_run_t *r, const char *key)
{
    warm_t *w = r->w;
    warm_item_t *it = malloc(sizeof *it);
    pthread_mutex_lock(&w->mu);
    r->info.total++;
    if (!it) r->info.failed++;
    pthread_mutex_unlock(&w->mu);
    if (!it) return;
    it->run = r;
    r->in_flight++;
    w->in_flight++;
    atomic_fetch_add(&w->stats.in_flight, 1);
    route_read_get(&w->rw, (route_reply_t){.ops = &warm_reply_ops, .ctx = it}, key, strlen(key));
}

static void warm_free_page(warm_run_t *r)
{
    for (size_t i = 0; i < r->npage; i++) free(r->page[i]);
    free(r->page);
    r->page = NULL;
    r->npage = r->ppos = 0;
}

static void warm_scan_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    warm_run_t *r = ctx;
    warm_t *w = r->w;
    r->fetching = false;
    if (r->cancelled || r->stopped || w->closing) {
        warm_pump(w);
        return;
    }
    if (res != L2_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_ARRAY) {
        warm_run_end(r, "failed", res != L2_OK ? "Redis is unavailable" : "Redis answered SCAN oddly");
        return;
    }
    size_t plen;
    (void)l2_prefix(w->rw.l2, &plen);
    const redisReply *keys = reply->element[1];
    warm_free_page(r);
    snprintf(r->page_cursor, sizeof r->page_cursor, "%s", r->cursor);
    snprintf(r->cursor, sizeof r->cursor, "%.*s", (int)reply->element[0]->len, reply->element[0]->str);
    if (strcmp(r->cursor, "0") == 0) r->source_done = true;
    r->page = calloc(keys->elements ? keys->elements : 1, sizeof *r->page);
    for (size_t i = 0; r->page && i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len <= plen || k->len - plen > LIMITS_KEY_MAX) continue;
        if (memchr(k->str + plen, 0, k->len - plen)) continue; /* warmed by name: a NUL cannot be one */
        char *copy = malloc(k->len - plen + 1);
        if (!copy) break;
        memcpy(copy, k->str + plen, k->len - plen);
        copy[k->len - plen] = '\0';
        r->page[r->npage++] = copy;
    }
    warm_pump(w);
}

static void warm_scan_next(warm_run_t *r)
{
    warm_t *w = r->w;
    char match[L2_PREFIX_MAX + LIMITS_KEY_MAX + 1], count[16];
    size_t plen;
    const char *p = l2_prefix(w->rw.l2, &plen);
    snprintf(match, sizeof match, "%.*s%s", (int)plen, p, r->job.pattern);
    snprintf(count, sizeof count, "%u", r->job.batch_size);
    const char *argv[6] = {"SCAN", r->cursor, "MATCH", match, "COUNT", count};
    r->fetching = true;
    warm_cmd(w, 6, argv, warm_scan_reply, r);
}

static void warm_pg_closed(void *arg)
{
    pg_uv_free(arg);
}

static void warm_query_reply(void *ctx, pg_uv_result_t res, const PGresult *pr, const char *err)
{
    warm_run_t *r = ctx;
    r->fetching = false;
    char why[200] = "";
    if (res != PG_UV_OK) snprintf(why, sizeof why, "the key query failed: %s%s%s", pg_uv_result_name(res),
                                  err ? ": " : "", err ? err : "");
    else if (PQresultStatus(pr) != PGRES_TUPLES_OK)
        snprintf(why, sizeof why, "the key query was refused: %.150s", PQresultErrorMessage(pr));
    else if ((unsigned)PQntuples(pr) > WARM_QUERY_ROWS_MAX)
        snprintf(why, sizeof why, "the key query returned more than %u rows: give it a LIMIT", WARM_QUERY_ROWS_MAX);
    if (!why[0]) {
        size_t n = (size_t)PQntuples(pr), plen = strlen(r->job.key_prefix);
        r->list = calloc(n ? n : 1, sizeof *r->list);
        r->own_list = true;
        for (size_t i = 0; r->list && i < n; i++) {
            if (PQgetisnull(pr, (int)i, 0)) continue;
            size_t vlen = (size_t)PQgetlength(pr, (int)i, 0);
            if (plen + vlen == 0 || plen + vlen > LIMITS_KEY_MAX) continue;
            char *k = malloc(plen + vlen + 1);
            if (!k) break;
            memcpy(k, r->job.key_prefix, plen);
            memcpy(k + plen, PQgetvalue(pr, (int)i, 0), vlen);
            k[plen + vlen] = '\0';
            r->list[r->nlist++] = k;
        }
        r->source_ready = true;
    }
    pg_uv_close(r->pg, warm_pg_closed, r->pg);
    r->pg = NULL;
    for (char *p = why; *p; p++)
        if (*p == '\n') *p = ' ';
    if (why[0]) warm_run_end(r, "failed", why);
    else warm_pump(r->w);
}

/* HOT and QUERY fetch their list first. */
static void warm_fetch_list(warm_run_t *r)
{
    warm_t *w = r->w;
    if (r->job.source == WARM_SRC_HOT) {
        warm_hot_item_t *items = NULL;
        size_t n = warm_hot_merged(&w->hot, &items);
        r->list = calloc(r->job.hot, sizeof *r->list);
        r->own_list = true;
        topo_t *t = r->owned_only ? route_topo(&w->rw) : NULL;
        for (size_t i = 0; r->list && i < n && r->nlist < r->job.hot; i++) {
            if (memchr(items[i].key, 0, items[i].klen)) continue;
            if (t) {
                uint32_t owners[RING_REPLICAS_MAX];
                size_t no = topo_owners(t, items[i].key, items[i].klen, owners, RING_REPLICAS_MAX);
                if (!topo_is_owner(t, owners, no)) continue;
            }
            char *k = malloc(items[i].klen + 1);
            if (!k) break;
            memcpy(k, items[i].key, items[i].klen);
            k[items[i].klen] = '\0';
            r->list[r->nlist++] = k;
        }
        warm_hot_items_free(items, n);
        r->source_ready = true;
        return;
    }
    /* QUERY: the named postgres origin's database. */
    origin_set_t *set = w->rt->origin ? origin_current(w->rt->origin) : NULL;
    int idx = origin_set_find(set, r->job.origin);
    const origin_def_t *d = idx >= 0 ? &set->defs[idx] : NULL;
    if (!d || d->kind != ORIGIN_KIND_POSTGRES) {
        origin_set_unref(set);
        warm_run_end(r, "failed", "the job's \"origin\" names no postgres origin of the origins file");
        return;
    }
    pg_uv_config_t cfg = {.conninfo = d->conninfo, .connect_timeout_ms = 5000, .query_timeout_ms = 60000};
    r->pg = pg_uv_new(w->loop, &cfg);
    origin_set_unref(set);
    r->fetching = true;
    if (!r->pg || pg_uv_query(r->pg, r->job.query, 0, NULL, warm_query_reply, r) != 0) {
        r->fetching = false;
        if (r->pg) pg_uv_close(r->pg, warm_pg_closed, r->pg);
        r->pg = NULL;
        warm_run_end(r, "failed", "could not start the key query");
    }
}

/* The run's next key, or NULL when none is at hand (fetching, or done). */
static const char *warm_next_key(warm_run_t *r)
{
    if (r->job.source == WARM_SRC_PATTERN) {
        if (!warm_redis(r->w)) {
            warm_run_end(r, "failed", "a pattern source scans Redis: the node needs --redis");
            return NULL;
        }
        if (r->ppos < r->npage) return r->page[r->ppos++];
        if (!r->source_done && !r->fetching && r->in_flight == 0) warm_scan_next(r);
        return NULL;
    }
    if (!r->source_ready) {
        if (!r->fetching) warm_fetch_list(r);
        return NULL;
    }
    if (r->pos < r->nlist) return r->list[r->pos++];
    r->source_done = true;
    return NULL;
}

static int warm_run_cmp(const void *a, const void *b)
{
    const warm_run_t *x = *(warm_run_t *const *)a, *y = *(warm_run_t *const *)b;
    return (y->job.priority > x->job.priority) - (y->job.priority < x->job.priority);
}

/* Hands out the budget: highest priority first, each run up to its
 * concurrency; ends the runs that are through. */
static void warm_pump(warm_t *w)
{
    /* A key L1 answers at once completes inside warm_issue, which pumps
     * again: loop here instead of recursing once per key. */
    if (w->pumping) {
        w->pump_again = true;
        return;
    }
    w->pumping = true;
    do {
        w->pump_again = false;
        warm_pump_once(w);
    } while (w->pump_again);
    w->pumping = false;
}

static void warm_pump_once(warm_t *w)
{
    warm_run_t *order[64];
    size_t n = 0;
    for (warm_run_t *r = w->runs; r && n < 64; r = r->next)
        if (!r->ended) order[n++] = r;
    qsort(order, n, sizeof *order, warm_run_cmp);
    for (size_t i = 0; i < n; i++) {
        warm_run_t *r = order[i];
        if (r->ended) continue;
        bool stop = r->cancelled || r->stopped || w->closing;
        while (!stop && r->in_flight < r->job.concurrency && w->in_flight < WARM_IN_FLIGHT_MAX) {
            const char *key = warm_next_key(r);
            if (!key || r->ended) break;
            warm_issue(r, key);
        }
        if (r->ended || r->in_flight || r->fetching) continue;
        if (stop) warm_run_end(r, r->stopped || w->closing ? "stopped" : "cancelled", NULL);
        else if (r->source_done && (r->job.source != WARM_SRC_PATTERN || r->ppos >= r->npage))
            warm_run_end(r, "done", NULL);
    }
}

/* Progress for another node to take over from: where the source stands. */
static void warm_save_progress(warm_run_t *r)
{
    warm_t *w = r->w;
    if (!warm_redis(w) || r->adhoc) return;
    sbuf_t b;
    sbuf_init(&b);
    pthread_mutex_lock(&w->mu);
    sbuf_puts(&b, "{\"run\":");
    warm_run_json(&r->info, &b);
    pthread_mutex_unlock(&w->mu);
    size_t done = r->pos > r->job.concurrency ? r->pos - r->job.concurrency : 0;
    sbuf_printf(&b, ",\"pos\":%zu,\"cursor\":", done);
    sbuf_json_string(&b, r->page_cursor[0] ? r->page_cursor : "0", strlen(r->page_cursor[0] ? r->page_cursor : "0"));
    sbuf_puts(&b, "}");
    if (!b.failed) {
        char key[L2_PREFIX_MAX + 64];
        warm_rkey(w, key, sizeof key, "runs", NULL);
        const char *argv[4] = {"HSET", key, r->job.name, b.data};
        warm_cmd(w, 4, argv, NULL, NULL);
    }
    sbuf_free(&b);
}

static void warm_history_add(warm_t *w, const warm_run_info_t *info)
{
    sbuf_t b;
    sbuf_init(&b);
    warm_run_json(info, &b);
    if (b.failed) {
        sbuf_free(&b);
        return;
    }
    if (warm_redis(w)) {
        char key[L2_PREFIX_MAX + 64], keep[16];
        warm_rkey(w, key, sizeof key, "history", NULL);
        const char *push[3] = {"LPUSH", key, b.data};
        warm_cmd(w, 3, push, NULL, NULL);
        snprintf(keep, sizeof keep, "%d", WARM_HISTORY_MAX - 1);
        const char *trim[4] = {"LTRIM", key, "0", keep};
        warm_cmd(w, 4, trim, NULL, NULL);
    }
    size_t len;
    char *json = sbuf_steal(&b, &len);
    pthread_mutex_lock(&w->mu);
    if (w->nhistory == WARM_HISTORY_MAX) free(w->history[--w->nhistory]);
    memmove(w->history + 1, w->history, w->nhistory * sizeof *w->history);
    w->history[0] = json;
    w->nhistory++;
    pthread_mutex_unlock(&w->mu);
}

static void warm_run_free(warm_run_t *r)
{
    if (r->own_list) {
        for (size_t i = 0; i < r->nlist; i++) free(r->list[i]);
        free(r->list);
    }
    warm_free_page(r);
    warm_job_clear(&r->job);
    free(r);
}

/* Unlinks and frees runs that ended and have nothing in flight. */
static void warm_reap(warm_t *w)
{
    for (warm_run_t **pp = &w->runs; *pp;) {
        warm_run_t *r = *pp;
        if (r->ended && r->in_flight == 0 && !r->fetching && !r->pg) {
            *pp = r->next;
            warm_run_free(r);
        } else {
            pp = &r->next;
        }
    }
}

static void warm_run_end(warm_run_t *r, const char *state, const char *error)
{
    warm_t *w = r->w;
    if (r->ended) return;
    r->ended = true;
    bool stopped = strcmp(state, "stopped") == 0;
    pthread_mutex_lock(&w->mu);
    snprintf(r->info.state, sizeof r->info.state, "%s", state);
    if (error) snprintf(r->info.error, sizeof r->info.error, "%s", error);
    r->info.ended_ms = warm_now();
    warm_run_info_t info = r->info;
    warm_entry_t *e = r->adhoc ? NULL : warm_find_locked(w, r->job.name);
    if (e && e->run == r) {
        e->run = NULL;
        if (!stopped) {
            e->last = info;
            e->has_last = true;
            e->runs++;
        }
    }
    pthread_mutex_unlock(&w->mu);
    atomic_fetch_sub(&w->stats.running, 1);
    if (stopped) {
        /* Another node holds the lease, or this one is stopping: the run
         * goes on elsewhere from the progress saved. */
        log_info("warming run handed over", "\"run\":\"%s\"", info.id);
        return;
    }
    if (strcmp(state, "done") == 0) atomic_fetch_add(&w->stats.runs_done, 1);
    else if (strcmp(state, "cancelled") == 0) atomic_fetch_add(&w->stats.runs_cancelled, 1);
    else atomic_fetch_add(&w->stats.runs_failed, 1);
    if (warm_redis(w) && !r->adhoc) {
        char key[L2_PREFIX_MAX + 64], lease[L2_PREFIX_MAX + 96];
        warm_rkey(w, key, sizeof key, "runs", NULL);
        const char *hdel[3] = {"HDEL", key, r->job.name};
        warm_cmd(w, 3, hdel, NULL, NULL);
        warm_rkey(w, lease, sizeof lease, "lease", r->job.name);
        const char *rel[5] = {"EVAL", WARM_RELEASE_SCRIPT, "1", lease, warm_self(w)};
        warm_cmd(w, 5, rel, NULL, NULL);
    }
    warm_history_add(w, &info);
    log_info("warming run ended", "\"run\":\"%s\",\"state\":\"%s\",\"keys\":%llu,\"loaded\":%llu,\"failed\":%llu",
             info.id, info.state, (unsigned long long)info.total, (unsigned long long)info.loaded,
             (unsigned long long)info.failed);
    if (w->hooks.on_run) w->hooks.on_run(w->hooks.ctx, &info, true);
}

/* Starts a run of job here (leased already, when Redis coordinates);
 * from: the progress of a run taken over, or NULL. */
static warm_run_t *warm_run_start(warm_t *w, const warm_job_t *job, const char *trigger, bool adhoc, json_t *from,
                                  const char *run_id)
{
    warm_run_t *r = calloc(1, sizeof *r);
    if (!r || !warm_job_copy(&r->job, job)) {
        free(r);
        return NULL;
    }
    r->w = w;
    r->adhoc = adhoc;
    r->leased = !adhoc && warm_redis(w);
    snprintf(r->cursor, sizeof r->cursor, "0");
    int64_t now = warm_now();
    warm_run_info_t *i = &r->info;
    if (from && warm_run_from_json(i, json_object_get(from, "run"))) {
        r->pos = (size_t)json_integer_value(json_object_get(from, "pos"));
        const char *c = json_string_value(json_object_get(from, "cursor"));
        snprintf(r->cursor, sizeof r->cursor, "%s", c && *c ? c : "0");
        snprintf(i->trigger, sizeof i->trigger, "takeover");
        if (strcmp(r->cursor, "0") != 0) snprintf(r->page_cursor, sizeof r->page_cursor, "%s", r->cursor);
        atomic_fetch_add(&w->stats.takeovers, 1);
    } else {
        if (run_id && *run_id) snprintf(i->id, sizeof i->id, "%s", run_id);
        else snprintf(i->id, sizeof i->id, "%s-%lld", job->name, (long long)now);
        snprintf(i->job, sizeof i->job, "%s", job->name);
        snprintf(i->trigger, sizeof i->trigger, "%s", trigger);
        i->started_ms = now;
    }
    snprintf(i->node, sizeof i->node, "%s", warm_self(w));
    snprintf(i->state, sizeof i->state, "running");
    i->ended_ms = 0;
    if (job->source == WARM_SRC_KEYS) {
        r->list = r->job.keys;
        r->nlist = r->job.nkeys;
        r->source_ready = true;
    }
    r->last_progress_ms = now;
    r->next = w->runs;
    w->runs = r;
    atomic_fetch_add(&w->stats.running, 1);
    atomic_fetch_add(&w->stats.runs_started, 1);
    log_info("warming run started", "\"run\":\"%s\",\"source\":\"%s\",\"trigger\":\"%s\"", i->id,
             warm_source_name(job->source), i->trigger);
    if (w->hooks.on_run) w->hooks.on_run(w->hooks.ctx, i, false);
    warm_save_progress(r);
    return r;
}

/* ---------- claiming runs (with Redis) ---------- */

typedef struct warm_claim {
    warm_t *w;
    char name[WARM_NAME_MAX];
    char trigger[80];
    char run_id[96];
    json_t *from;                /* takeover: the saved progress (own reference) */
    char gone[SWIM_NAME_MAX];    /* takeover from a runner out of the ring: its lease may be taken
                                  * before it lapses ("" otherwise) */
    int step;                    /* 0: the firing's slot, 1: the lease */
} warm_claim_t;

static void warm_claim_start(warm_claim_t *c)
{
    warm_t *w = c->w;
    pthread_mutex_lock(&w->mu);
    warm_entry_t *e = warm_find_locked(w, c->name);
    warm_job_t job;
    bool ok = e && !e->run && !w->closing && warm_job_copy(&job, &e->job);
    pthread_mutex_unlock(&w->mu);
    if (ok) {
        warm_run_t *r = warm_run_start(w, &job, c->trigger, false, c->from, c->run_id);
        warm_job_clear(&job);
        pthread_mutex_lock(&w->mu);
        e = warm_find_locked(w, c->name);
        if (r && e) e->run = r;
        pthread_mutex_unlock(&w->mu);
        if (r) warm_pump(w);
    }
    if (c->from) json_decref(c->from);
    free(c);
}

/* A takeover holds the lease now: the run must still be in Redis (its
 * runner may have finished it between the sync's read and the lease). */
static void warm_recheck_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    warm_claim_t *c = ctx;
    warm_t *w = c->w;
    json_t *fresh = res == L2_OK && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL)
                                                                      : NULL;
    json_decref(c->from);
    c->from = fresh;
    if (fresh) {
        warm_claim_start(c);
        return;
    }
    char lease[L2_PREFIX_MAX + 96];
    warm_rkey(w, lease, sizeof lease, "lease", c->name);
    const char *rel[5] = {"EVAL", WARM_RELEASE_SCRIPT, "1", lease, warm_self(w)};
    warm_cmd(w, 5, rel, NULL, NULL);
    free(c);
}

static void warm_lease_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    warm_claim_t *c = ctx;
    if (res == L2_OK && reply->type == REDIS_REPLY_STATUS) {
        if (c->from) {
            char key[L2_PREFIX_MAX + 64];
            warm_rkey(c->w, key, sizeof key, "runs", NULL);
            const char *argv[3] = {"HGET", key, c->name};
            warm_cmd(c->w, 3, argv, warm_recheck_reply, c);
            return;
        }
        warm_claim_start(c);
        return;
    }
    if (c->from) json_decref(c->from);
    free(c);
}

static void warm_claim_lease(warm_claim_t *c)
{
    warm_t *w = c->w;
    char key[L2_PREFIX_MAX + 96], ms[24];
    warm_rkey(w, key, sizeof key, "lease", c->name);
    snprintf(ms, sizeof ms, "%d", WARM_LEASE_MS);
    if (c->gone[0]) {
        const char *steal[7] = {"EVAL", WARM_STEAL_SCRIPT, "1", key, warm_self(w), c->gone, ms};
        warm_cmd(w, 7, steal, warm_lease_reply, c);
        return;
    }
    const char *argv[6] = {"SET", key, warm_self(w), "NX", "PX", ms};
    warm_cmd(w, 6, argv, warm_lease_reply, c);
}

static void warm_slot_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    warm_claim_t *c = ctx;
    if (res == L2_OK && reply->type == REDIS_REPLY_STATUS) {
        warm_claim_lease(c);
        return;
    }
    free(c);
}

/* Starts a run of the named job: with Redis, once it won the firing's slot
 * (fire_ms > 0: a scheduled firing every node tries to claim) and the lease. */
static void warm_claim(warm_t *w, const char *name, const char *trigger, int64_t fire_ms, json_t *from,
                       const char *gone)
{
    warm_claim_t *c = calloc(1, sizeof *c);
    if (!c) {
        if (from) json_decref(from);
        return;
    }
    c->w = w;
    c->from = from;
    if (gone) snprintf(c->gone, sizeof c->gone, "%s", gone);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->trigger, sizeof c->trigger, "%s", trigger);
    if (!warm_redis(w)) {
        warm_claim_start(c);
        return;
    }
    if (fire_ms > 0) {
        char key[L2_PREFIX_MAX + 128], when[24];
        snprintf(when, sizeof when, "%lld", (long long)fire_ms);
        char slot[WARM_NAME_MAX + 24];
        snprintf(slot, sizeof slot, "%s:%s", name, when);
        warm_rkey(w, key, sizeof key, "fired", slot);
        const char *argv[6] = {"SET", key, warm_self(w), "NX", "PX", "86400000"};
        warm_cmd(w, 6, argv, warm_slot_reply, c);
        return;
    }
    warm_claim_lease(c);
}

/* Without Redis a file job runs on the ring primary of "warm:<job>", so
 * that one node runs it and another takes it when that one leaves. */
static bool warm_designated(warm_t *w, const char *name)
{
    char key[WARM_NAME_MAX + 8];
    snprintf(key, sizeof key, "warm:%s", name);
    return route_is_primary(&w->rw, key, strlen(key));
}

/* ---------- Redis sync: jobs, history, runs to take over ---------- */

static void warm_sync_jobs_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    warm_t *w = ctx;
    if (res != L2_OK || reply->type != REDIS_REPLY_ARRAY) return;
    int64_t now = warm_now();
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *v = reply->element[i + 1];
        if (v->type != REDIS_REPLY_STRING) continue;
        warm_job_t job;
        char err[200];
        if (!warm_job_parse(&job, v->str, v->len, err, sizeof err)) continue;
        warm_entry_t *e = warm_find_locked(w, job.name);
        if (e && (e->job.from_file || e->persist || e->unpersist)) {
            if (!e->job.from_file && e->persist) e->seen_in_redis_ms = now;
            warm_job_clear(&job);
            continue;
        }
        sbuf_t mine, theirs;
        sbuf_init(&mine);
        sbuf_init(&theirs);
        if (e) warm_job_json(&e->job, &mine);
        warm_job_json(&job, &theirs);
        bool changed = !e || mine.len != theirs.len || memcmp(mine.data, theirs.data, mine.len) != 0;
        sbuf_free(&mine);
        sbuf_free(&theirs);
        if (changed) warm_set_locked(w, &job);
        e = warm_find_locked(w, job.name);
        if (e) e->seen_in_redis_ms = now;
        warm_job_clear(&job);
    }
    /* API jobs another node deleted (not in Redis, not waiting to be written). */
    for (size_t i = 0; i < WARM_JOBS_MAX; i++) {
        warm_entry_t *e = &w->jobs[i];
        if (e->used && !e->job.from_file && !e->persist && !e->unpersist && e->seen_in_redis_ms < now)
            warm_remove_locked(w, e);
    }
    pthread_mutex_unlock(&w->mu);
}

static void warm_sync_history_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    warm_t *w = ctx;
    if (res != L2_OK || reply->type != REDIS_REPLY_ARRAY) return;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->nhistory; i++) free(w->history[i]);
    w->nhistory = 0;
    for (size_t i = 0; i < reply->elements && w->nhistory < WARM_HISTORY_MAX; i++) {
        const redisReply *v = reply->element[i];
        if (v->type != REDIS_REPLY_STRING) continue;
        char *copy = malloc(v->len + 1);
        if (!copy) break;
        memcpy(copy, v->str, v->len);
        copy[v->len] = '\0';
        w->history[w->nhistory++] = copy;
    }
    w->history_from_redis = true;
    pthread_mutex_unlock(&w->mu);
}

/* The node a run's saved progress (warm_save_progress) names as its
 * runner, when the ring no longer has it (declared dead, or left): NULL
 * while it is a member, or is this node, or when this node's own view is
 * not to be trusted for it (alone in its ring, or in a minority: the
 * runner may be alive on the other side; the lease then lapses as usual). */
static const char *warm_runner_gone(warm_t *w, json_t *progress)
{
    const char *node = json_string_value(json_object_get(json_object_get(progress, "run"), "node"));
    if (!node || !node[0] || strcmp(node, warm_self(w)) == 0 || route_minority(w->rw.route)) return NULL;
    topo_t *t = route_topo(&w->rw);
    uint32_t at;
    return t && t->n >= 2 && !topo_find(t, node, &at) ? node : NULL;
}

/* Runs in progress elsewhere whose lease lapsed (their runner died), or
 * whose runner the ring no longer has: the failure detector is quicker
 * than the lease. */
static void warm_sync_runs_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    warm_t *w = ctx;
    w->syncing = false;
    if (res != L2_OK || reply->type != REDIS_REPLY_ARRAY || w->closing) return;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        char name[WARM_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", (int)k->len, k->str);
        pthread_mutex_lock(&w->mu);
        warm_entry_t *e = warm_find_locked(w, name);
        bool candidate = e && !e->run;
        pthread_mutex_unlock(&w->mu);
        if (!candidate) continue;
        json_t *from = json_loadb(v->str, v->len, 0, NULL);
        if (from) warm_claim(w, name, "takeover", 0, from, warm_runner_gone(w, from));
    }
}

static void warm_sync(warm_t *w)
{
    if (!warm_redis(w) || w->syncing || !l2_available(w->rw.l2)) return;
    w->syncing = true;
    char jobs[L2_PREFIX_MAX + 64], hist[L2_PREFIX_MAX + 64], runs[L2_PREFIX_MAX + 64], last[16];
    warm_rkey(w, jobs, sizeof jobs, "jobs", NULL);
    warm_rkey(w, hist, sizeof hist, "history", NULL);
    warm_rkey(w, runs, sizeof runs, "runs", NULL);
    snprintf(last, sizeof last, "%d", WARM_HISTORY_MAX - 1);
    const char *a1[2] = {"HGETALL", jobs};
    warm_cmd(w, 2, a1, warm_sync_jobs_reply, w);
    const char *a2[4] = {"LRANGE", hist, "0", last};
    warm_cmd(w, 4, a2, warm_sync_history_reply, w);
    const char *a3[2] = {"HGETALL", runs};
    warm_cmd(w, 2, a3, warm_sync_runs_reply, w);
}

/* API changes to write to Redis. */
static void warm_persist(warm_t *w)
{
    if (!warm_redis(w)) return;
    char key[L2_PREFIX_MAX + 64];
    warm_rkey(w, key, sizeof key, "jobs", NULL);
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < WARM_JOBS_MAX; i++) {
        warm_entry_t *e = &w->jobs[i];
        if (!e->used) continue;
        if (e->unpersist) {
            const char *argv[3] = {"HDEL", key, e->job.name};
            warm_cmd(w, 3, argv, NULL, NULL);
            warm_remove_locked(w, e);
        } else if (e->persist) {
            sbuf_t b;
            sbuf_init(&b);
            warm_job_json(&e->job, &b);
            if (!b.failed) {
                const char *argv[4] = {"HSET", key, e->job.name, b.data};
                warm_cmd(w, 4, argv, NULL, NULL);
                e->persist = false;
                e->seen_in_redis_ms = warm_now();
            }
            sbuf_free(&b);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

/* ---------- the tick ---------- */

typedef struct warm_renew {
    warm_t *w;
    warm_run_t *r;
} warm_renew_t;

static bool warm_run_alive(warm_t *w, warm_run_t *r)
{
    for (warm_run_t *x = w->runs; x; x = x->next)
        if (x == r) return true;
    return false;
}

static void warm_renew_reply(void *ctx, l2_result_t res, const redisReply *reply)
{
    warm_renew_t *n = ctx;
    warm_t *w = n->w;
    warm_run_t *r = n->r;
    free(n);
    if (!warm_run_alive(w, r) || r->ended || res != L2_OK || reply->type != REDIS_REPLY_INTEGER) return;
    if (reply->integer < 0) r->cancelled = true;
    else if (reply->integer == 0) r->stopped = true;
    if (reply->integer <= 0) warm_pump(w);
}

static void warm_tick_cb(uv_timer_t *t)
{
    warm_t *w = t->data;
    int64_t now = warm_now();
    warm_persist(w);
    if (now - w->last_sync >= WARM_SYNC_MS) {
        w->last_sync = now;
        warm_sync(w);
    }
    /* Firings due, triggers asked, cancels asked. */
    typedef struct {
        char name[WARM_NAME_MAX];
        char trigger[80];
        int64_t fire;
    } due_t;
    due_t due[16];
    size_t ndue = 0;
    char remote_cancel[16][WARM_NAME_MAX];
    size_t ncancel = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < WARM_JOBS_MAX; i++) {
        warm_entry_t *e = &w->jobs[i];
        if (!e->used) continue;
        if (e->cancel) {
            e->cancel = false;
            if (e->run) e->run->cancelled = true;
            else if (warm_redis(w) && ncancel < 16)
                snprintf(remote_cancel[ncancel++], sizeof remote_cancel[0], "%s", e->job.name);
        }
        bool fire = e->next_fire && now >= e->next_fire;
        if (!fire && !e->trigger) continue;
        int64_t fired = fire ? e->next_fire : 0;
        if (fire) warm_schedule_locked(e, now);
        if (e->run || ndue == 16) {
            e->trigger = false;
            continue;
        }
        /* Scheduled: every node tries, Redis picks one; without Redis only
         * the designated node (an API job: the node that has it). */
        if (!e->trigger && !warm_redis(w) && e->job.from_file && !warm_designated(w, e->job.name)) continue;
        snprintf(due[ndue].name, sizeof due[ndue].name, "%s", e->job.name);
        if (e->trigger) snprintf(due[ndue].trigger, sizeof due[ndue].trigger, "%s", e->trigger_actor);
        else snprintf(due[ndue].trigger, sizeof due[ndue].trigger, "schedule");
        due[ndue++].fire = e->trigger ? 0 : fired;
        e->trigger = false;
    }
    size_t nadhoc = w->nadhoc;
    warm_job_t *adhoc = w->adhoc;
    char(*actors)[72] = w->adhoc_actor;
    char(*ids)[96] = w->adhoc_id;
    w->adhoc = NULL;
    w->adhoc_actor = NULL;
    w->adhoc_id = NULL;
    w->nadhoc = 0;
    pthread_mutex_unlock(&w->mu);
    /* The runner is another node: it finds the flag when it renews its
     * lease, within a second; a run that starts after the flag lapsed is
     * not touched by it. */
    for (size_t i = 0; i < ncancel; i++) {
        char key[L2_PREFIX_MAX + 96];
        warm_rkey(w, key, sizeof key, "cancel", remote_cancel[i]);
        const char *argv[5] = {"SET", key, "1", "PX", "5000"};
        warm_cmd(w, 5, argv, NULL, NULL);
    }
    for (size_t i = 0; i < ndue; i++) warm_claim(w, due[i].name, due[i].trigger, due[i].fire, NULL, NULL);
    for (size_t i = 0; i < nadhoc; i++) {
        warm_run_start(w, &adhoc[i], actors[i], true, NULL, ids[i]);
        warm_job_clear(&adhoc[i]);
    }
    free(adhoc);
    free(actors);
    free(ids);
    /* Leases and progress; progress events. */
    for (warm_run_t *r = w->runs; r; r = r->next) {
        if (r->ended) continue;
        if (r->leased) {
            char lease[L2_PREFIX_MAX + 96], cancel[L2_PREFIX_MAX + 96], ms[16];
            warm_rkey(w, lease, sizeof lease, "lease", r->job.name);
            warm_rkey(w, cancel, sizeof cancel, "cancel", r->job.name);
            snprintf(ms, sizeof ms, "%d", WARM_LEASE_MS);
            warm_renew_t *n = malloc(sizeof *n);
            if (n) {
                *n = (warm_renew_t){.w = w, .r = r};
                const char *argv[7] = {"EVAL", WARM_RENEW_SCRIPT, "2", lease, cancel, warm_self(w), ms};
                warm_cmd(w, 7, argv, warm_renew_reply, n);
            }
            warm_save_progress(r);
        }
        if (w->hooks.on_run && now - r->last_progress_ms >= 1000) {
            r->last_progress_ms = now;
            pthread_mutex_lock(&w->mu);
            warm_run_info_t info = r->info;
            pthread_mutex_unlock(&w->mu);
            w->hooks.on_run(w->hooks.ctx, &info, false);
        }
    }
    warm_pump(w);
    warm_reap(w);
}

static void warm_wake_cb(uv_async_t *h)
{
    warm_tick_cb(&((warm_t *)h->data)->tick);
}

/* After a ring change: the hot keys this node owns now, before their
 * misses arrive. */
static void warm_prefetch_cb(uv_timer_t *t)
{
    warm_t *w = t->data;
    if (w->closing) return;
    warm_job_t job = {.source = WARM_SRC_HOT, .hot = WARM_PREFETCH_KEYS, .batch_size = 1000, .concurrency = 64,
                      .priority = -1, .enabled = true};
    snprintf(job.name, sizeof job.name, "prefetch");
    warm_hot_item_t *items = NULL;
    size_t n = warm_hot_merged(&w->hot, &items);
    warm_hot_items_free(items, n);
    if (n == 0) return;
    warm_run_t *r = warm_run_start(w, &job, "ring", true, NULL, NULL);
    if (r) r->owned_only = true;
    warm_pump(w);
}

void warm_ring_changed(warm_t *w)
{
    if (!w->closing) uv_timer_start(&w->prefetch, warm_prefetch_cb, WARM_PREFETCH_DELAY_MS, 0);
}

/* ---------- life ---------- */

warm_t *warm_new(uv_loop_t *loop, route_t *rt, const char *file, const warm_hooks_t *hooks, char *err, size_t errlen)
{
    warm_t *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->loop = loop;
    w->rt = rt;
    if (hooks) w->hooks = *hooks;
    pthread_mutex_init(&w->mu, NULL);
    warm_hot_init(&w->hot);
    if (file && *file && !warm_load_file(w, file, err, errlen)) {
        warm_free(w);
        return NULL;
    }
    w->rw_up = route_worker_init(&w->rw, rt, loop, route_serve, &w->rw) == 0;
    if (!w->rw_up) {
        snprintf(err, errlen, "out of memory");
        warm_free(w);
        return NULL;
    }
    uv_timer_init(loop, &w->tick);
    w->tick.data = w;
    uv_async_init(loop, &w->wake, warm_wake_cb);
    w->wake.data = w;
    uv_timer_init(loop, &w->prefetch);
    w->prefetch.data = w;
    return w;
}

void warm_start(warm_t *w)
{
    uv_timer_start(&w->tick, warm_tick_cb, WARM_TICK_MS, WARM_TICK_MS);
}

bool warm_reload(warm_t *w, const char *file, char *err, size_t errlen)
{
    return warm_load_file(w, file, err, errlen);
}

static void warm_part_closed(void *arg)
{
    warm_t *w = arg;
    if (--w->pending_closes == 0 && w->done) w->done(w->done_arg);
}

static void warm_handle_closed(uv_handle_t *h)
{
    warm_part_closed(h->data);
}

void warm_close(warm_t *w, void (*done)(void *arg), void *arg)
{
    w->closing = true;
    w->done = done;
    w->done_arg = arg;
    uv_timer_stop(&w->tick);
    /* What runs stops; with Redis its lease lapses and another node takes
     * it over from the progress saved. */
    warm_pump(w);
    w->pending_closes = 4;
    uv_close((uv_handle_t *)&w->prefetch, warm_handle_closed);
    uv_close((uv_handle_t *)&w->tick, warm_handle_closed);
    uv_close((uv_handle_t *)&w->wake, warm_handle_closed);
    route_worker_close(&w->rw, warm_part_closed, w);
}

void warm_free(warm_t *w)
{
    if (!w) return;
    while (w->runs) {
        warm_run_t *r = w->runs;
        w->runs = r->next;
        warm_run_free(r);
    }
    if (w->rw_up) route_worker_free(&w->rw);
    for (size_t i = 0; i < WARM_JOBS_MAX; i++)
        if (w->jobs[i].used) warm_job_clear(&w->jobs[i].job);
    for (size_t i = 0; i < w->nhistory; i++) free(w->history[i]);
    warm_hot_destroy(&w->hot);
    for (size_t i = 0; i < w->nadhoc; i++) warm_job_clear(&w->adhoc[i]);
    free(w->adhoc);
    free(w->adhoc_actor);
    free(w->adhoc_id);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

warm_hot_t *warm_predicted(warm_t *w)
{
    return &w->hot;
}

warm_stats_t *warm_stats(warm_t *w)
{
    return &w->stats;
}

void warm_metrics(warm_t *w, sbuf_t *out)
{
    warm_stats_t *s = &w->stats;
    metrics_prom_header(out, "warm_runs_total", "counter",
                        "Warming runs by how they ended (started: begun here, takeover: taken over from a dead runner).");
    metrics_prom_uint(out, "warm_runs_total", "result=\"started\"", atomic_load(&s->runs_started));
    metrics_prom_uint(out, "warm_runs_total", "result=\"done\"", atomic_load(&s->runs_done));
    metrics_prom_uint(out, "warm_runs_total", "result=\"failed\"", atomic_load(&s->runs_failed));
    metrics_prom_uint(out, "warm_runs_total", "result=\"cancelled\"", atomic_load(&s->runs_cancelled));
    metrics_prom_uint(out, "warm_runs_total", "result=\"takeover\"", atomic_load(&s->takeovers));
    metrics_prom_header(out, "warm_keys_total", "counter", "Keys warming runs loaded, found nowhere, or failed.");
    metrics_prom_uint(out, "warm_keys_total", "result=\"loaded\"", atomic_load(&s->keys_loaded));
    metrics_prom_uint(out, "warm_keys_total", "result=\"missing\"", atomic_load(&s->keys_missing));
    metrics_prom_uint(out, "warm_keys_total", "result=\"failed\"", atomic_load(&s->keys_failed));
    metrics_prom_header(out, "warm_running", "gauge", "Warming runs in progress on this node.");
    metrics_prom_value(out, "warm_running", NULL, (double)atomic_load(&s->running));
    metrics_prom_header(out, "warm_in_flight", "gauge", "Keys being warmed now (bound 2048).");
    metrics_prom_value(out, "warm_in_flight", NULL, (double)atomic_load(&s->in_flight));
    metrics_prom_header(out, "warm_jobs", "gauge", "Warming jobs known to this node (bound 256).");
    metrics_prom_value(out, "warm_jobs", NULL, (double)atomic_load(&s->jobs));
}

/* ---------- the API ---------- */

warm_api_result_t warm_api_put(warm_t *w, const warm_job_t *job)
{
    pthread_mutex_lock(&w->mu);
    warm_entry_t *e = warm_find_locked(w, job->name);
    warm_api_result_t res = WARM_API_OK;
    if (e && e->job.from_file) res = WARM_API_READ_ONLY;
    else {
        warm_job_t j = *job;
        j.from_file = false;
        res = warm_set_locked(w, &j);
        if (res == WARM_API_OK) {
            e = warm_find_locked(w, job->name);
            e->persist = true;
            e->unpersist = false;
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (res == WARM_API_OK) uv_async_send(&w->wake);
    return res;
}

warm_api_result_t warm_api_delete(warm_t *w, const char *name)
{
    pthread_mutex_lock(&w->mu);
    warm_entry_t *e = warm_find_locked(w, name);
    warm_api_result_t res = !e ? WARM_API_NOT_FOUND : e->job.from_file ? WARM_API_READ_ONLY : WARM_API_OK;
    if (res == WARM_API_OK) {
        if (e->run) e->run->cancelled = true;
        e->cancel = true;
        e->persist = false;
        e->unpersist = true;
        if (!w->rt->l2 || !w->rt->l2->enabled) warm_remove_locked(w, e);
    }
    pthread_mutex_unlock(&w->mu);
    if (res == WARM_API_OK) uv_async_send(&w->wake);
    return res;
}

warm_api_result_t warm_api_trigger(warm_t *w, const char *name, const char *actor, char *run_id, size_t cap)
{
    pthread_mutex_lock(&w->mu);
    warm_entry_t *e = warm_find_locked(w, name);
    warm_api_result_t res = !e ? WARM_API_NOT_FOUND : e->run ? WARM_API_BUSY : WARM_API_OK;
    if (res == WARM_API_OK) {
        e->trigger = true;
        snprintf(e->trigger_actor, sizeof e->trigger_actor, "api:%s", actor);
    }
    pthread_mutex_unlock(&w->mu);
    if (run_id && cap) snprintf(run_id, cap, "%s", res == WARM_API_OK ? name : "");
    if (res == WARM_API_OK) uv_async_send(&w->wake);
    return res;
}

warm_api_result_t warm_api_trigger_adhoc(warm_t *w, const warm_job_t *job, const char *actor, char *run_id, size_t cap)
{
    pthread_mutex_lock(&w->mu);
    warm_api_result_t res = WARM_API_OK;
    size_t n = w->nadhoc + 1;
    warm_job_t *jobs = n <= 64 ? realloc(w->adhoc, n * sizeof *jobs) : NULL;
    if (jobs) w->adhoc = jobs;
    char(*actors)[72] = jobs ? realloc(w->adhoc_actor, n * sizeof *actors) : NULL;
    if (actors) w->adhoc_actor = actors;
    char(*ids)[96] = actors ? realloc(w->adhoc_id, n * sizeof *ids) : NULL;
    if (ids) w->adhoc_id = ids;
    if (!jobs || !actors || !ids) res = n > 64 ? WARM_API_FULL : WARM_API_NO_MEMORY;
    else if (!warm_job_copy(&jobs[w->nadhoc], job)) res = WARM_API_NO_MEMORY;
    else {
        snprintf(actors[w->nadhoc], sizeof actors[0], "api:%s", actor);
        snprintf(ids[w->nadhoc], sizeof ids[0], "%s-%lld-%zu", job->name, (long long)warm_now(), w->nadhoc);
        if (run_id && cap) snprintf(run_id, cap, "%s", ids[w->nadhoc]);
        w->nadhoc++;
    }
    pthread_mutex_unlock(&w->mu);
    if (res == WARM_API_OK) uv_async_send(&w->wake);
    return res;
}

warm_api_result_t warm_api_cancel(warm_t *w, const char *name)
{
    pthread_mutex_lock(&w->mu);
    warm_entry_t *e = warm_find_locked(w, name);
    warm_api_result_t res = e ? WARM_API_OK : WARM_API_NOT_FOUND;
    if (e) e->cancel = true;
    pthread_mutex_unlock(&w->mu);
    if (res == WARM_API_OK) uv_async_send(&w->wake);
    return res;
}

void warm_api_jobs_json(warm_t *w, sbuf_t *out)
{
    sbuf_puts(out, "{\"jobs\":[");
    pthread_mutex_lock(&w->mu);
    bool first = true;
    for (size_t i = 0; i < WARM_JOBS_MAX; i++) {
        warm_entry_t *e = &w->jobs[i];
        if (!e->used) continue;
        if (!first) sbuf_puts(out, ",");
        first = false;
        sbuf_t job;
        sbuf_init(&job);
        warm_job_json(&e->job, &job);
        /* The job's fields, then its state. */
        sbuf_append(out, job.data, job.len ? job.len - 1 : 0);
        sbuf_free(&job);
        sbuf_printf(out, ",\"source_type\":\"%s\",\"from_file\":%s,\"next_run_ms\":", warm_source_name(e->job.source),
                    e->job.from_file ? "true" : "false");
        if (e->next_fire) sbuf_printf(out, "%lld", (long long)e->next_fire);
        else sbuf_puts(out, "null");
        sbuf_printf(out, ",\"runs\":%llu,\"last_run\":", (unsigned long long)e->runs);
        if (e->has_last) warm_run_json(&e->last, out);
        else sbuf_puts(out, "null");
        sbuf_puts(out, ",\"running\":");
        if (e->run) warm_run_json(&e->run->info, out);
        else sbuf_puts(out, "null");
        sbuf_puts(out, "}");
    }
    pthread_mutex_unlock(&w->mu);
    sbuf_puts(out, "]}");
}

void warm_api_history_json(warm_t *w, size_t limit, sbuf_t *out)
{
    sbuf_puts(out, "{\"runs\":[");
    pthread_mutex_lock(&w->mu);
    bool first = true;
    /* Runs in progress here first, then the ended ones, newest first. */
    for (warm_run_t *r = w->runs; r && limit; r = r->next) {
        if (r->ended) continue;
        if (!first) sbuf_puts(out, ",");
        first = false;
        warm_run_json(&r->info, out);
        limit--;
    }
    for (size_t i = 0; i < w->nhistory && limit; i++, limit--) {
        if (!first) sbuf_puts(out, ",");
        first = false;
        sbuf_puts(out, w->history[i]);
    }
    pthread_mutex_unlock(&w->mu);
    sbuf_puts(out, "]}");
}
