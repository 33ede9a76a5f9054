#include "node/l2/l2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/core/closer.h"
#include "node/core/log.h"

#define L2_MAGIC "dc1"
#define L2_HEADER (3 + 16 + 16 + 2)
#define L2_SCAN_COUNT "1000"

static const metrics_desc_t l2_stats_metrics_rows[] = {
    METRICS_ATOMIC_COUNTER(l2_stats_t, gets, "l2_gets_total", NULL, "L1 misses looked up in Redis."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, hits, "l2_hits_total", NULL, "Lookups Redis answered with a value."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, misses, "l2_misses_total", NULL, "Lookups Redis did not have."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, sets, "l2_sets_total", NULL, "Values written to Redis (write-through and journal replay)."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, dels, "l2_deletes_total", NULL, "Deletes sent to Redis."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, errors, "l2_errors_total", NULL, "Redis calls that failed (errors, timeouts, breaker open)."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, fills_stale, "l2_fills_stale_total", NULL, "Values read from Redis older than L1's, not kept."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, writes_refused, "l2_writes_refused_total", NULL, "Writes refused with 503: Redis down in sync mode, or the journal full."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, writes_journaled, "l2_writes_journaled_total", NULL, "Writes accepted into the local journal while Redis was down."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, journal_drained, "l2_journal_replayed_total", NULL, "Journal records replayed into Redis."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, keys_scanned, "l2_pattern_keys_scanned_total", NULL, "Redis keys SCAN returned for pattern invalidation."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, keys_unlinked, "l2_pattern_keys_unlinked_total", NULL, "Redis values replaced by an invalidation's tombstone (keys or pattern)."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, reads_journal_pending, "l2_reads_journal_pending_total", NULL, "L1 misses refused with 503 journal_pending: a newer write of the key waits in this node's journal, and Redis holds an older value."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, reads_journal_deleted, "l2_reads_journal_deleted_total", NULL, "L1 misses answered not found although Redis held a value: a newer DELETE of the key waits in this node's journal."),
    METRICS_ATOMIC_COUNTER(l2_stats_t, reads_journal_in_doubt, "l2_reads_journal_in_doubt_total", NULL, "L1 misses refused with 503 journal_pending because the table of pending journal records overflowed (any key may be pending)."),
};
const metrics_table_t l2_stats_metrics_table = METRICS_TABLE(l2_stats_metrics_rows);

static const metrics_desc_t l2_metrics_rows[] = {
    METRICS_ROW(l2_metrics_t, up, METRICS_GAUGE, METRICS_U64, "l2_up", NULL, "1 when Redis is configured and its breaker is closed."),
    METRICS_ROW(l2_metrics_t, breaker_state, METRICS_GAUGE, METRICS_U64, "l2_breaker_state", NULL, "The L2 breaker: 0 closed, 1 open, 2 half-open."),
    METRICS_ROW(l2_metrics_t, breaker_opens, METRICS_COUNTER, METRICS_U64, "l2_breaker_opens_total", NULL, "Times the L2 breaker opened."),
    METRICS_ROW(l2_metrics_t, breaker_rejected, METRICS_COUNTER, METRICS_U64, "l2_breaker_rejected_total", NULL, "L2 calls refused at once by the open breaker."),
    METRICS_ROW(l2_metrics_t, journal_records, METRICS_GAUGE, METRICS_U64, "l2_journal_records", NULL, "Writes in the journal waiting for Redis."),
    METRICS_ROW(l2_metrics_t, journal_bytes, METRICS_GAUGE, METRICS_U64, "l2_journal_bytes", NULL, "Bytes of the journal (bound: --l2-journal-max)."),
    METRICS_ROW(l2_metrics_t, journal_queued_bytes, METRICS_GAUGE, METRICS_U64, "l2_journal_queued_bytes", NULL, "Bytes of appends waiting for the journal's writer thread or being synced (bound: l2_journal_max_bytes, with l2_journal_bytes)."),
    METRICS_ROW(l2_metrics_t, journal_queued_appends, METRICS_GAUGE, METRICS_U64, "l2_journal_queued_appends", NULL, "Appends waiting for the journal's writer thread or being synced."),
    METRICS_ROW(l2_metrics_t, journal_max_bytes, METRICS_GAUGE, METRICS_U64, "l2_journal_max_bytes", NULL, "--l2-journal-max: the bound of l2_journal_bytes plus l2_journal_queued_bytes."),
    METRICS_ROW(l2_metrics_t, journal_fsyncs, METRICS_COUNTER, METRICS_U64, "l2_journal_fsyncs_total", NULL, "fdatasync calls of the journal's writer thread, one per group of appends."),
    METRICS_ROW(l2_metrics_t, journal_group_records, METRICS_COUNTER, METRICS_U64, "l2_journal_group_records_total", NULL, "Records those fdatasync calls covered (divided by l2_journal_fsyncs_total: records per sync)."),
    METRICS_ROW(l2_metrics_t, journal_group_appends, METRICS_COUNTER, METRICS_U64, "l2_journal_group_appends_total", NULL, "Appends (writes, invalidations) those fdatasync calls covered."),
    METRICS_ROW(l2_metrics_t, journal_failed_groups, METRICS_COUNTER, METRICS_U64, "l2_journal_failed_groups_total", NULL, "Groups whose write or fdatasync failed: every write in them was refused."),
    METRICS_ROW(l2_metrics_t, journal_pending_keys, METRICS_GAUGE, METRICS_U64, "l2_journal_pending_keys", NULL, "Keys with a journal record Redis has not acknowledged yet: reads of them do not take Redis's older value."),
    METRICS_ROW(l2_metrics_t, journal_pending_max, METRICS_GAUGE, METRICS_U64, "l2_journal_pending_max", NULL, "The bound of l2_journal_pending_keys (from --l2-journal-max, at most 65536)."),
    METRICS_ROW(l2_metrics_t, journal_pending_overflows, METRICS_COUNTER, METRICS_U64, "l2_journal_pending_overflows_total", NULL, "Journal records that did not fit the pending table: every L1 miss is refused until their file is drained."),
    METRICS_ROW(l2_metrics_t, journal_pending_in_doubt, METRICS_GAUGE, METRICS_U64, "l2_journal_pending_in_doubt", NULL, "1 while the pending table overflowed and the records it lost are not drained yet."),
};
const metrics_table_t l2_metrics_table = METRICS_TABLE(l2_metrics_rows);

void l2_get_metrics(l2_shared_t *s, l2_metrics_t *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return;
    breaker_state_t bs = breaker_state(&s->breaker);
    out->up = bs == BREAKER_CLOSED;
    out->breaker_state = (uint64_t)bs;
    out->breaker_opens = atomic_load(&s->breaker.opens);
    out->breaker_rejected = atomic_load(&s->breaker.rejected);
    if (!s->journal) return;
    journal_stats_t js;
    journal_get_stats(s->journal, &js);
    out->journal_records = js.records;
    out->journal_bytes = js.bytes;
    out->journal_queued_bytes = js.queued_bytes;
    out->journal_queued_appends = js.queued_appends;
    out->journal_max_bytes = js.max_bytes;
    out->journal_fsyncs = js.fsyncs;
    out->journal_group_records = js.group_records;
    out->journal_group_appends = js.group_appends;
    out->journal_failed_groups = js.failed_groups;
    out->journal_pending_keys = js.pending_keys;
    out->journal_pending_max = js.pending_max;
    out->journal_pending_overflows = js.pending_overflows;
    out->journal_pending_in_doubt = js.pending_in_doubt;
}

journal_pending_state_t l2_journal_pending(l2_shared_t *s, uint64_t hash, uint64_t *version)
{
    if (!s || !s->journal) return JOURNAL_PENDING_NONE;
    return journal_lookup(s->journal, hash, version);
}

/* Store only if Redis holds no newer version, of a value or of a delete
 * (versions compare as fixed-width hex strings). */
static const char L2_SET_SCRIPT[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "if cur and (string.sub(cur, 1, 3) == 'dc1' or string.sub(cur, 1, 3) == 'dc0') "
    "and string.sub(cur, 4, 19) > string.sub(ARGV[1], 4, 19) then return 0 end "
    "if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1]) "
    "else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end "
    "return 1";
/* A delete replaces what is older with a tombstone, `dc0` + its version,
 * for --l2-tombstone-ttl: a write older than the delete that arrives later
 * (a slow write, a journal replayed from any node) cannot bring the key
 * back. Returns 1 when a value was there. */
static const char L2_DEL_SCRIPT[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "if cur and (string.sub(cur, 1, 3) == 'dc1' or string.sub(cur, 1, 3) == 'dc0') "
    "and string.sub(cur, 4, 19) > ARGV[1] then return 0 end "
    "redis.call('SET', KEYS[1], 'dc0' .. ARGV[1], 'PX', ARGV[2]) "
    "if cur and string.sub(cur, 1, 3) == 'dc1' then return 1 end "
    "return 0";

/* The same for many keys at once (an invalidation): each key older than
 * ARGV[1] becomes its tombstone. A key under our prefix that is not a
 * string (not ours) gives way to the tombstone too, as UNLINK removed it
 * before. Returns how many held a value. */
static const char L2_DEL_MANY_SCRIPT[] =
    "local n = 0 "
    "for _, k in ipairs(KEYS) do "
    "local cur = redis.pcall('GET', k) "
    "if type(cur) ~= 'string' then cur = nil end "
    "if not (cur and (string.sub(cur, 1, 3) == 'dc1' or string.sub(cur, 1, 3) == 'dc0') "
    "and string.sub(cur, 4, 19) > ARGV[1]) then "
    "redis.call('SET', k, 'dc0' .. ARGV[1], 'PX', ARGV[2]) "
    "if cur and string.sub(cur, 1, 3) == 'dc1' then n = n + 1 end "
    "end "
    "end "
    "return n";

typedef struct l2_deferred {
    struct l2_deferred *next;
    l2_result_t res;
    l2_get_fn get_cb;
    l2_done_fn done_cb;
    l2_count_fn count_cb;
    l2_reply_fn reply_cb;
    void *ctx;
} l2_deferred_t;

struct l2 {
    uv_loop_t *loop;
    l2_shared_t *s;
    redis_uv_t *redis;         /* NULL until the master is known */
    uint64_t gen;              /* the addr_gen redis was made for */
    uv_timer_t defer_timer;    /* delivers failures outside the caller's stack */
    l2_deferred_t *deferred, *deferred_tail;
    journal_port_t *journal;   /* journal mode: this loop's way into the journal */
    bool closing;
    closer_t closer;           /* the timer and every client not yet closed */
    void (*close_done)(void *arg);
    void *close_arg;
};

static int64_t l2_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t l2_mono_ms(void)
{
    return (int64_t)(uv_hrtime() / 1000000u);
}

/* ---------- envelope ---------- */

static void l2_hex(char *out, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = hex[v & 15];
        v >>= 4;
    }
}

static bool l2_unhex(const char *in, int digits, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < digits; i++) {
        char c = in[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        x = (x << 4) | (uint64_t)d;
    }
    *v = x;
    return true;
}

size_t l2_envelope_size(size_t ctlen, size_t vlen)
{
    return L2_HEADER + ctlen + vlen;
}

void l2_envelope_encode(char *out, uint64_t version, int64_t expires_at_ms, const char *ct, size_t ctlen,
                        const void *value, size_t vlen)
{
    memcpy(out, L2_MAGIC, 3);
    l2_hex(out + 3, version, 16);
    l2_hex(out + 19, (uint64_t)(expires_at_ms > 0 ? expires_at_ms : 0), 16);
    l2_hex(out + 35, ctlen, 2);
    if (ctlen) memcpy(out + L2_HEADER, ct, ctlen);
    if (vlen) memcpy(out + L2_HEADER + ctlen, value, vlen);
}

bool l2_envelope_decode(const char *in, size_t len, l2_value_t *out)
{
    uint64_t version, expires, ctlen;
    if (len < L2_HEADER || memcmp(in, L2_MAGIC, 3) != 0 || !l2_unhex(in + 3, 16, &version) ||
        !l2_unhex(in + 19, 16, &expires) || !l2_unhex(in + 35, 2, &ctlen) || L2_HEADER + ctlen > len ||
        expires > INT64_MAX)
        return false;
    out->version = version;
    out->expires_at_ms = (int64_t)expires;
    out->ct = in + L2_HEADER;
    out->ctlen = ctlen;
    out->value = in + L2_HEADER + ctlen;
    out->len = len - L2_HEADER - ctlen;
    return true;
}

/* ---------- shared state ---------- */

static void l2_breaker_changed(breaker_state_t from, breaker_state_t to, void *ctx)
{
    (void)ctx;
    log_emit(to == BREAKER_OPEN ? LOG_WARN : LOG_INFO, "l2 breaker", "\"from\":\"%s\",\"to\":\"%s\"",
             breaker_state_name(from), breaker_state_name(to));
}

void l2_shared_init(l2_shared_t *s)
{
    breaker_init(&s->breaker, BREAKER_THRESHOLD_DEFAULT, BREAKER_OPEN_MS_DEFAULT, l2_breaker_changed, s);
    pthread_mutex_init(&s->addr_lock, NULL);
    atomic_init(&s->addr_gen, 0);
}

bool l2_shared_set_master(l2_shared_t *s, const char *host, int port)
{
    pthread_mutex_lock(&s->addr_lock);
    bool changed = strcmp(s->master_host, host) != 0 || s->master_port != port;
    if (changed) {
        snprintf(s->master_host, sizeof s->master_host, "%s", host);
        s->master_port = port;
        atomic_fetch_add(&s->addr_gen, 1);
    }
    pthread_mutex_unlock(&s->addr_lock);
    return changed;
}

void l2_shared_destroy(l2_shared_t *s)
{
    breaker_destroy(&s->breaker);
    pthread_mutex_destroy(&s->addr_lock);
    journal_close(s->journal);
    s->journal = NULL;
}

const char *l2_state_name(l2_shared_t *s)
{
    return s->enabled ? breaker_state_name(breaker_state(&s->breaker)) : "disabled";
}

/* ---------- client ---------- */

static void l2_timer_closed(uv_handle_t *h)
{
    l2_t *l = h->data;
    closer_closed(&l->closer);
}

static void l2_defer_cb(uv_timer_t *t)
{
    l2_t *l = t->data;
    l2_deferred_t *d = l->deferred;
    l->deferred = l->deferred_tail = NULL;
    while (d) {
        l2_deferred_t *next = d->next;
        if (d->get_cb) d->get_cb(d->ctx, d->res, NULL);
        else if (d->reply_cb) d->reply_cb(d->ctx, d->res, NULL);
        else if (d->done_cb) d->done_cb(d->ctx, d->res);
        else d->count_cb(d->ctx, d->res, 0);
        free(d);
        d = next;
    }
}

/* Answers a call from the loop rather than from inside the caller. */
static void l2_answer_later(l2_t *l, l2_result_t res, l2_get_fn g, l2_done_fn dn, l2_count_fn c, void *ctx)
{
    l2_deferred_t *d = calloc(1, sizeof *d);
    if (!d) abort(); /* a few bytes; a lost callback would hang a client request */
    d->res = res;
    d->get_cb = g;
    d->done_cb = dn;
    d->count_cb = c;
    d->ctx = ctx;
    if (l->deferred_tail) l->deferred_tail->next = d;
    else l->deferred = d;
    l->deferred_tail = d;
    if (!uv_is_active((uv_handle_t *)&l->defer_timer)) uv_timer_start(&l->defer_timer, l2_defer_cb, 0, 0);
}

l2_t *l2_new(uv_loop_t *loop, l2_shared_t *s)
{
    l2_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->loop = loop;
    l->s = s;
    if (s->journal && !(l->journal = journal_port_new(s->journal, loop))) {
        free(l);
        return NULL;
    }
    uv_timer_init(loop, &l->defer_timer);
    l->defer_timer.data = l;
    closer_add(&l->closer, 1); /* the timer; each client adds one */
    return l;
}

typedef struct l2_retired {
    l2_t *l;
    redis_uv_t *r;
} l2_retired_t;

static void l2_retired_closed(void *arg)
{
    l2_retired_t *x = arg;
    l2_t *l = x->l;
    redis_uv_free(x->r);
    free(x);
    closer_closed(&l->closer);
}

/* The client for the current master: made on first use, and made again
 * (the old one closed) when the master moved. NULL while it is unknown. */
static redis_uv_t *l2_redis(l2_t *l)
{
    uint64_t g = atomic_load(&l->s->addr_gen);
    if (g == 0 || l->closing) return l->closing ? NULL : l->redis;
    if (l->redis && g == l->gen) return l->redis;
    char host[256];
    redis_uv_config_t rc = l->s->redis;
    pthread_mutex_lock(&l->s->addr_lock);
    snprintf(host, sizeof host, "%s", l->s->master_host);
    rc.port = l->s->master_port;
    g = atomic_load(&l->s->addr_gen);
    pthread_mutex_unlock(&l->s->addr_lock);
    rc.host = host;
    rc.stats = &l->s->redis_stats;
    redis_uv_t *r = redis_uv_new(l->loop, &rc);
    if (!r) return l->redis;
    if (l->redis) {
        l2_retired_t *x = malloc(sizeof *x);
        if (!x) abort(); /* a few bytes; leaking a live client would be worse */
        x->l = l;
        x->r = l->redis;
        redis_uv_close(l->redis, l2_retired_closed, x);
    }
    l->redis = r;
    l->gen = g;
    closer_add(&l->closer, 1);
    return r;
}

bool l2_available(l2_t *l)
{
    redis_uv_t *r = l2_redis(l);
    return r && breaker_state(&l->s->breaker) != BREAKER_OPEN && redis_uv_available(r);
}

/* The outcome of one command for the breaker: transport failures count,
 * answers (even error replies) prove Redis is there. */
static void l2_account(l2_t *l, redis_uv_result_t res)
{
    if (res == REDIS_UV_OK) breaker_success(&l->s->breaker, l2_mono_ms());
    else if (res != REDIS_UV_ERR_SHUTDOWN || !l->closing) breaker_failure(&l->s->breaker, l2_mono_ms());
}

typedef struct l2_call {
    l2_t *l;
    l2_get_fn get_cb;
    l2_done_fn done_cb;
    l2_reply_fn reply_cb;
    void *ctx;
} l2_call_t;

static bool l2_send(l2_t *l, int argc, const char **argv, const size_t *lens, redis_uv_reply_fn fn, l2_call_t *c)
{
    redis_uv_t *r = l2_redis(l);
    if (!r || !breaker_allow(&l->s->breaker, l2_mono_ms())) return false;
    if (redis_uv_command(r, argc, argv, lens, fn, c) != 0) {
        breaker_failure(&l->s->breaker, l2_mono_ms());
        return false;
    }
    return true;
}

/* prefix + key into out (L2_PREFIX_MAX + LIMITS_KEY_MAX bytes); 0 when the
 * key is longer than L1 allows. */
static size_t l2_full_key(const l2_t *l, const void *key, size_t klen, char *out)
{
    if (klen > LIMITS_KEY_MAX) return 0;
    memcpy(out, l->s->prefix, l->s->prefix_len);
    memcpy(out + l->s->prefix_len, key, klen);
    return l->s->prefix_len + klen;
}

static void l2_get_reply(void *ctx, redis_uv_result_t res, const redisReply *reply, const char *err)
{
    (void)err;
    l2_call_t *c = ctx;
    l2_t *l = c->l;
    l2_account(l, res);
    l2_value_t v;
    if (res == REDIS_UV_OK && reply->type == REDIS_REPLY_NIL) {
        atomic_fetch_add(&l->s->stats.misses, 1);
        c->get_cb(c->ctx, L2_MISS, NULL);
    } else if (res == REDIS_UV_OK && reply->type == REDIS_REPLY_STRING &&
               l2_envelope_decode(reply->str, (size_t)reply->len, &v)) {
        if (v.expires_at_ms && v.expires_at_ms <= l2_wall_ms()) {
            atomic_fetch_add(&l->s->stats.misses, 1);
            c->get_cb(c->ctx, L2_MISS, NULL);
        } else {
            atomic_fetch_add(&l->s->stats.hits, 1);
            c->get_cb(c->ctx, L2_OK, &v);
        }
    } else if (res == REDIS_UV_OK && reply->type == REDIS_REPLY_STRING) {
        /* A tombstone (`dc0`: deleted), or not ours (written by something
         * else under our prefix): a miss. */
        atomic_fetch_add(&l->s->stats.misses, 1);
        c->get_cb(c->ctx, L2_MISS, NULL);
    } else {
        atomic_fetch_add(&l->s->stats.errors, 1);
        c->get_cb(c->ctx, L2_UNAVAILABLE, NULL);
    }
    free(c);
}

void l2_get(l2_t *l, const void *key, size_t klen, l2_get_fn cb, void *ctx)
{
    atomic_fetch_add(&l->s->stats.gets, 1);
    l2_call_t *c = calloc(1, sizeof *c);
    char fk[L2_PREFIX_MAX + LIMITS_KEY_MAX];
    size_t flen = l2_full_key(l, key, klen, fk);
    if (c) *c = (l2_call_t){.l = l, .get_cb = cb, .ctx = ctx};
    const char *argv[2] = {"GET", fk};
    size_t lens[2] = {3, flen};
    if (!c || !flen || !l2_send(l, 2, argv, lens, l2_get_reply, c)) {
        free(c);
        l2_answer_later(l, L2_UNAVAILABLE, cb, NULL, NULL, ctx);
    }
}

static void l2_done_reply(void *ctx, redis_uv_result_t res, const redisReply *reply, const char *err)
{
    (void)err;
    l2_call_t *c = ctx;
    l2_account(c->l, res);
    bool ok = res == REDIS_UV_OK && reply->type == REDIS_REPLY_INTEGER;
    if (!ok) atomic_fetch_add(&c->l->s->stats.errors, 1);
    c->done_cb(c->ctx, ok ? L2_OK : L2_UNAVAILABLE);
    free(c);
}

void l2_set(l2_t *l, const void *key, size_t klen, const void *value, size_t vlen, const char *ct, size_t ctlen,
            uint64_t version, int64_t expires_at_ms, l2_done_fn cb, void *ctx)
{
    atomic_fetch_add(&l->s->stats.sets, 1);
    char px[24] = "0";
    if (expires_at_ms > 0) {
        int64_t left = expires_at_ms - l2_wall_ms();
        if (left <= 0) {
            /* Already expired: it still replaces any older value, so the
             * older one must go. */
            atomic_fetch_sub(&l->s->stats.sets, 1);
            l2_del(l, key, klen, version, cb, ctx);
            return;
        }
        snprintf(px, sizeof px, "%lld", (long long)left);
    }
    l2_call_t *c = calloc(1, sizeof *c);
    char fk[L2_PREFIX_MAX + LIMITS_KEY_MAX];
    size_t flen = l2_full_key(l, key, klen, fk), elen = l2_envelope_size(ctlen, vlen);
    char *env = c && flen ? malloc(elen) : NULL;
    if (c) *c = (l2_call_t){.l = l, .done_cb = cb, .ctx = ctx};
    if (env) l2_envelope_encode(env, version, expires_at_ms, ct, ctlen, value, vlen);
    const char *argv[6] = {"EVAL", L2_SET_SCRIPT, "1", fk, env, px};
    size_t lens[6] = {4, sizeof L2_SET_SCRIPT - 1, 1, flen, elen, strlen(px)};
    if (!env || !l2_send(l, 6, argv, lens, l2_done_reply, c)) {
        free(c);
        l2_answer_later(l, L2_UNAVAILABLE, NULL, cb, NULL, ctx);
    }
    free(env);
}

/* --l2-tombstone-ttl in ms, as text for PX. */
static void l2_tomb_ttl(const l2_t *l, char *out, size_t cap)
{
    snprintf(out, cap, "%llu", (unsigned long long)(l->s->tombstone_ttl_ms ? l->s->tombstone_ttl_ms : 3600000));
}

void l2_del(l2_t *l, const void *key, size_t klen, uint64_t version, l2_done_fn cb, void *ctx)
{
    atomic_fetch_add(&l->s->stats.dels, 1);
    l2_call_t *c = calloc(1, sizeof *c);
    char fk[L2_PREFIX_MAX + LIMITS_KEY_MAX];
    size_t flen = l2_full_key(l, key, klen, fk);
    if (c) *c = (l2_call_t){.l = l, .done_cb = cb, .ctx = ctx};
    char ver[16], ttl[24];
    l2_hex(ver, version, 16);
    l2_tomb_ttl(l, ttl, sizeof ttl);
    const char *argv[6] = {"EVAL", L2_DEL_SCRIPT, "1", fk, ver, ttl};
    size_t lens[6] = {4, sizeof L2_DEL_SCRIPT - 1, 1, flen, 16, strlen(ttl)};
    if (!c || !flen || !l2_send(l, 6, argv, lens, l2_done_reply, c)) {
        free(c);
        l2_answer_later(l, L2_UNAVAILABLE, NULL, cb, NULL, ctx);
    }
}

static void l2_command_reply(void *ctx, redis_uv_result_t res, const redisReply *reply, const char *err)
{
    (void)err;
    l2_call_t *c = ctx;
    l2_account(c->l, res);
    if (res == REDIS_UV_OK) c->reply_cb(c->ctx, L2_OK, reply);
    else {
        atomic_fetch_add(&c->l->s->stats.errors, 1);
        c->reply_cb(c->ctx, L2_UNAVAILABLE, NULL);
    }
    free(c);
}

void l2_command(l2_t *l, int argc, const char **argv, const size_t *lens, l2_reply_fn cb, void *ctx)
{
    l2_call_t *c = calloc(1, sizeof *c);
    if (c) *c = (l2_call_t){.l = l, .reply_cb = cb, .ctx = ctx};
    if (!c || !l2_send(l, argc, argv, lens, l2_command_reply, c)) {
        free(c);
        l2_deferred_t *d = calloc(1, sizeof *d);
        if (!d) abort(); /* a few bytes; a lost callback would hang its caller */
        d->res = L2_UNAVAILABLE;
        d->reply_cb = cb;
        d->ctx = ctx;
        if (l->deferred_tail) l->deferred_tail->next = d;
        else l->deferred = d;
        l->deferred_tail = d;
        if (!uv_is_active((uv_handle_t *)&l->defer_timer)) uv_timer_start(&l->defer_timer, l2_defer_cb, 0, 0);
    }
}

const char *l2_prefix(const l2_t *l, size_t *len)
{
    *len = l->s->prefix_len;
    return l->s->prefix;
}

void l2_publish(l2_t *l, const char *channel, const void *msg, size_t len, l2_done_fn cb, void *ctx)
{
    l2_call_t *c = calloc(1, sizeof *c);
    if (c) *c = (l2_call_t){.l = l, .done_cb = cb, .ctx = ctx};
    const char *argv[3] = {"PUBLISH", channel, msg};
    size_t lens[3] = {7, strlen(channel), len};
    if (!c || !l2_send(l, 3, argv, lens, l2_done_reply, c)) {
        free(c);
        l2_answer_later(l, L2_UNAVAILABLE, NULL, cb, NULL, ctx);
    }
}

/* ---------- invalidation: L2_DEL_MANY_SCRIPT by keys, or SCAN MATCH then it ---------- */

/* Arguments before the keys: EVAL script numkeys ... then ver ttl after. */
#define L2_DEL_MANY_HEAD 3
#define L2_DEL_MANY_TAIL 2

typedef struct l2_scan {
    l2_t *l;
    l2_count_fn cb;
    void *ctx;
    char *match;
    size_t match_len;
    char ver[16];              /* the invalidation's version, hex */
    char ttl[24];
    uint64_t unlinked;
    unsigned pending;
    bool failed, scan_done;
} l2_scan_t;

static void l2_scan_check(l2_scan_t *sc)
{
    if (sc->pending || !(sc->scan_done || sc->failed)) return;
    if (sc->failed) atomic_fetch_add(&sc->l->s->stats.errors, 1);
    sc->cb(sc->ctx, sc->failed ? L2_UNAVAILABLE : L2_OK, sc->unlinked);
    free(sc->match);
    free(sc);
}

static void l2_del_many_reply(void *ctx, redis_uv_result_t res, const redisReply *reply, const char *err)
{
    (void)err;
    l2_scan_t *sc = ctx;
    l2_account(sc->l, res);
    sc->pending--;
    if (res == REDIS_UV_OK && reply->type == REDIS_REPLY_INTEGER) {
        sc->unlinked += (uint64_t)reply->integer;
        atomic_fetch_add(&sc->l->s->stats.keys_unlinked, (uint64_t)reply->integer);
    } else {
        sc->failed = true;
    }
    l2_scan_check(sc);
}

/* One L2_DEL_MANY_SCRIPT call over argv[L2_DEL_MANY_HEAD .. + n) (the
 * full keys, already in place); fills in the rest of argv and lens. */
static bool l2_del_many_send(l2_scan_t *sc, const char **argv, size_t *lens, size_t n, char *numkeys, size_t cap)
{
    snprintf(numkeys, cap, "%zu", n);
    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = L2_DEL_MANY_SCRIPT;
    lens[1] = sizeof L2_DEL_MANY_SCRIPT - 1;
    argv[2] = numkeys;
    lens[2] = strlen(numkeys);
    argv[L2_DEL_MANY_HEAD + n] = sc->ver;
    lens[L2_DEL_MANY_HEAD + n] = sizeof sc->ver;
    argv[L2_DEL_MANY_HEAD + n + 1] = sc->ttl;
    lens[L2_DEL_MANY_HEAD + n + 1] = strlen(sc->ttl);
    redis_uv_t *r = l2_redis(sc->l);
    if (!r || redis_uv_command(r, (int)(n + L2_DEL_MANY_HEAD + L2_DEL_MANY_TAIL), argv, lens, l2_del_many_reply, sc) != 0)
        return false;
    sc->pending++;
    return true;
}

static void l2_scan_send(l2_scan_t *sc, const char *cursor, size_t clen);

static void l2_scan_reply(void *ctx, redis_uv_result_t res, const redisReply *reply, const char *err)
{
    (void)err;
    l2_scan_t *sc = ctx;
    l2_t *l = sc->l;
    l2_account(l, res);
    sc->pending--;
    if (res != REDIS_UV_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_ARRAY) {
        sc->failed = true;
        l2_scan_check(sc);
        return;
    }
    const redisReply *keys = reply->element[1];
    atomic_fetch_add(&l->s->stats.keys_scanned, keys->elements);
    if (keys->elements) {
        size_t argc = keys->elements + L2_DEL_MANY_HEAD + L2_DEL_MANY_TAIL;
        const char **argv = malloc(argc * sizeof *argv);
        size_t *lens = malloc(argc * sizeof *lens);
        char numkeys[24];
        if (!argv || !lens) {
            sc->failed = true;
        } else {
            for (size_t i = 0; i < keys->elements; i++) {
                argv[L2_DEL_MANY_HEAD + i] = keys->element[i]->str;
                lens[L2_DEL_MANY_HEAD + i] = (size_t)keys->element[i]->len;
            }
            if (!l2_del_many_send(sc, argv, lens, keys->elements, numkeys, sizeof numkeys)) sc->failed = true;
        }
        free(argv);
        free(lens);
    }
    const redisReply *cur = reply->element[0];
    if (cur->len == 1 && cur->str[0] == '0') sc->scan_done = true;
    else if (!sc->failed) l2_scan_send(sc, cur->str, (size_t)cur->len);
    l2_scan_check(sc);
}

static void l2_scan_send(l2_scan_t *sc, const char *cursor, size_t clen)
{
    const char *argv[6] = {"SCAN", cursor, "MATCH", sc->match, "COUNT", L2_SCAN_COUNT};
    size_t lens[6] = {4, clen, 5, sc->match_len, 5, sizeof L2_SCAN_COUNT - 1};
    redis_uv_t *r = l2_redis(sc->l);
    if (r && redis_uv_command(r, 6, argv, lens, l2_scan_reply, sc) == 0) sc->pending++;
    else sc->failed = true;
}

void l2_del_matching(l2_t *l, const char *pattern, size_t plen, uint64_t version, l2_count_fn cb, void *ctx)
{
    l2_scan_t *sc = calloc(1, sizeof *sc);
    /* The prefix is literal: escape what glob would read as special. */
    char *m = sc ? malloc(2 * l->s->prefix_len + plen) : NULL;
    if (!m || !breaker_allow(&l->s->breaker, l2_mono_ms())) {
        free(sc);
        free(m);
        l2_answer_later(l, L2_UNAVAILABLE, NULL, NULL, cb, ctx);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < l->s->prefix_len; i++) {
        char ch = l->s->prefix[i];
        if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') m[n++] = '\\';
        m[n++] = ch;
    }
    memcpy(m + n, pattern, plen);
    *sc = (l2_scan_t){.l = l, .cb = cb, .ctx = ctx, .match = m, .match_len = n + plen};
    l2_hex(sc->ver, version, 16);
    l2_tomb_ttl(l, sc->ttl, sizeof sc->ttl);
    l2_scan_send(sc, "0", 1);
    if (sc->failed && sc->pending == 0) {
        breaker_failure(&l->s->breaker, l2_mono_ms());
        free(sc->match);
        free(sc);
        l2_answer_later(l, L2_UNAVAILABLE, NULL, NULL, cb, ctx);
    }
}

void l2_del_keys(l2_t *l, const void *const *keys, const size_t *lens, size_t n, uint64_t version, l2_count_fn cb,
                 void *ctx)
{
    l2_scan_t *sc = calloc(1, sizeof *sc);
    if (!sc || n == 0 || !breaker_allow(&l->s->breaker, l2_mono_ms())) {
        free(sc);
        l2_answer_later(l, n == 0 ? L2_OK : L2_UNAVAILABLE, NULL, NULL, cb, ctx);
        return;
    }
    *sc = (l2_scan_t){.l = l, .cb = cb, .ctx = ctx, .scan_done = true};
    l2_hex(sc->ver, version, 16);
    l2_tomb_ttl(l, sc->ttl, sizeof sc->ttl);
    enum { CHUNK = 1000 };
    const char **argv = malloc((CHUNK + L2_DEL_MANY_HEAD + L2_DEL_MANY_TAIL) * sizeof *argv);
    size_t *alen = malloc((CHUNK + L2_DEL_MANY_HEAD + L2_DEL_MANY_TAIL) * sizeof *alen);
    char *buf = malloc(CHUNK * (l->s->prefix_len + LIMITS_KEY_MAX));
    char numkeys[24];
    for (size_t i = 0; argv && alen && buf && i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK, off = 0;
        for (size_t k = 0; k < m; k++) {
            size_t kl = lens[i + k] > LIMITS_KEY_MAX ? LIMITS_KEY_MAX : lens[i + k];
            memcpy(buf + off, l->s->prefix, l->s->prefix_len);
            memcpy(buf + off + l->s->prefix_len, keys[i + k], kl);
            argv[L2_DEL_MANY_HEAD + k] = buf + off;
            alen[L2_DEL_MANY_HEAD + k] = l->s->prefix_len + kl;
            off += l->s->prefix_len + kl;
        }
        if (!l2_del_many_send(sc, argv, alen, m, numkeys, sizeof numkeys)) sc->failed = true;
    }
    if (!argv || !alen || !buf) sc->failed = true;
    free(argv);
    free(alen);
    free(buf);
    if (sc->pending == 0) {
        free(sc);
        l2_answer_later(l, L2_UNAVAILABLE, NULL, NULL, cb, ctx);
    }
}

/* ---------- shutdown ---------- */

/* The journal port closes last: the Redis calls the close fails (from the
 * loop, after l2_close returned) may still be journaled by their callers,
 * and the port then waits for those appends to be synced. */
static void l2_parts_closed(void *arg)
{
    l2_t *l = arg;
    if (l->journal) journal_port_close(l->journal, l->close_done, l->close_arg);
    else l->close_done(l->close_arg);
}

void l2_close(l2_t *l, void (*done)(void *arg), void *arg)
{
    l->closing = true;
    l->close_done = done;
    l->close_arg = arg;
    /* Deferred answers still go out: their callers wait for them. */
    if (l->deferred) l2_defer_cb(&l->defer_timer);
    uv_timer_stop(&l->defer_timer);
    uv_close((uv_handle_t *)&l->defer_timer, l2_timer_closed);
    if (l->redis) redis_uv_close(l->redis, closer_closed_cb, &l->closer);
    closer_finish(&l->closer, l2_parts_closed, l);
}

int l2_journal_append(l2_t *l, const journal_rec_t *recs, size_t n, journal_done_fn cb, void *ctx)
{
    if (!l->journal) return -ENOTSUP;
    return journal_append_async(l->journal, recs, n, cb, ctx);
}

void l2_free(l2_t *l)
{
    if (!l) return;
    if (l->redis) redis_uv_free(l->redis);
    journal_port_free(l->journal);
    free(l);
}

bool l2_closing(const l2_t *l)
{
    return l->closing;
}
