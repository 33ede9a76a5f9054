/* node/route: the data path through its reply interface (route_reply.h),
 * without sockets. Each test has a route_t over a store on a virtual
 * clock, a uv loop and one route_worker_t whose peer server listens in
 * one test only and whose serve function must otherwise never run; no L2. Answers are recorded by
 * a route_reply_ops_t of the test's own (the value copied, release
 * called).
 *
 * Without a ring this node owns every key. With one, it is one of three
 * members and the other two advertise no peer address, so anything it
 * would have to forward has nowhere to go: the answer is "owner
 * unavailable", at once, and nothing is sent. One test gives two members
 * a loopback port nothing listens on, to see how a write treats an owner
 * that is down; it then makes the worker's own peer server listen, to play
 * a third member that answers.
 *
 * A reply may come now or later on the loop: every request waits for its
 * answer with fixture_loop_run_until (which returns at once when the
 * answer is already there); nothing sleeps. The teardown closes the worker,
 * requires uv_loop_close to succeed and frees everything, so ASan's leak
 * check sees a clean exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/route/route.h"
#include "node/route/route_local.h"
#include "node/route/route_read.h"
#include "node/route/route_reply.h"
#include "node/route/route_scatter.h"
#include "node/route/route_write.h"
#include "tests/unit/fixture/loop.h"

#define WAIT_MS 5000                 /* generous: the machine is shared */
#define T0_MS 1700000000000ll        /* the virtual clock's start */
#define SELF "n1"

/* ---- a reply that records what it was told ---- */

typedef enum { ANS_NONE = 0, ANS_VALUE, ANS_MISS, ANS_STORED, ANS_DELETED, ANS_FAIL } answer_t;

typedef struct rec {
    unsigned calls;                  /* every operation counts: exactly one is expected */
    answer_t what;
    /* value */
    char value[256];
    size_t len;
    char ct[64];
    size_t ctlen;
    uint64_t version;
    int64_t ttl_ms;
    route_source_t source;
    unsigned released;
    /* value, miss, stored, deleted */
    char node[64], owner[64];
    /* stored, deleted */
    char key[64];
    size_t klen;
    bool created, existed, journaled;
    /* fail */
    route_error_t err;
    char message[256];
} rec_t;

static void rec_names(rec_t *r, answer_t what, const char *node, const char *owner)
{
    r->calls++;
    r->what = what;
    snprintf(r->node, sizeof r->node, "%s", node ? node : "(null)");
    snprintf(r->owner, sizeof r->owner, "%s", owner ? owner : "(null)");
}

static void rec_value(void *ctx, const route_value_t *v, void (*release)(void *), void *release_ctx)
{
    rec_t *r = ctx;
    rec_names(r, ANS_VALUE, v->node, v->owner);
    r->len = v->len;
    if (v->len <= sizeof r->value) memcpy(r->value, v->value, v->len);
    r->ctlen = v->ctlen;
    if (v->ctlen && v->ctlen <= sizeof r->ct) memcpy(r->ct, v->ct, v->ctlen);
    r->version = v->version;
    r->ttl_ms = v->ttl_ms;
    r->source = v->source;
    release(release_ctx);
    r->released++;
}

static void rec_miss(void *ctx, const char *node, const char *owner)
{
    rec_names(ctx, ANS_MISS, node, owner);
}

static void rec_written(rec_t *r, answer_t what, const route_written_t *w)
{
    rec_names(r, what, w->node, w->owner);
    r->klen = w->klen;
    if (w->klen <= sizeof r->key) memcpy(r->key, w->key, w->klen);
    r->version = w->version;
    r->ttl_ms = w->ttl_ms;
    r->created = w->created;
    r->existed = w->existed;
    r->journaled = w->journaled;
}

static void rec_stored(void *ctx, const route_written_t *w)
{
    rec_written(ctx, ANS_STORED, w);
}

static void rec_deleted(void *ctx, const route_written_t *w)
{
    rec_written(ctx, ANS_DELETED, w);
}

static void rec_fail(void *ctx, route_error_t err, const char *message)
{
    rec_t *r = ctx;
    r->calls++;
    r->what = ANS_FAIL;
    r->err = err;
    snprintf(r->message, sizeof r->message, "%s", message ? message : "");
}

static const route_reply_ops_t rec_ops = {
    .value = rec_value, .miss = rec_miss, .stored = rec_stored, .deleted = rec_deleted, .fail = rec_fail};

static route_reply_t rec_reply(rec_t *r)
{
    memset(r, 0, sizeof *r);
    return (route_reply_t){.ops = &rec_ops, .ctx = r};
}

static bool rec_answered(void *arg)
{
    return ((rec_t *)arg)->calls > 0;
}

/* ---- the fixture ---- */

typedef struct fx {
    config_t cfg;
    _Atomic int64_t now;             /* the store's (and so the version clock's) time */
    store_t *store;
    metrics_t metrics;
    route_t rt;
    uv_loop_t loop;
    route_worker_t w;
    bool worker_up, worker_closed;
    unsigned served;                 /* peer calls: there must be none ... */
    bool answer_sync;                /* ... but SYNCs (and INVALIDATEs) when a test listens to play
                                      * another member */
    unsigned syncs_answered;
} fx_t;

static int64_t fx_clock(void *ctx)
{
    return atomic_load(&((fx_t *)ctx)->now);
}

static void fx_serve(peer_call_t *call, const peer_msg_t *req, void *ctx)
{
    fx_t *f = ctx;
    if (f->answer_sync && req->type == PEER_MSG_SYNC) {
        f->syncs_answered++;
        peer_msg_t m = {.type = PEER_MSG_SYNC_RESP, .clock = route_stamp(&f->rt)};
        peer_server_respond(call, &m);
        return;
    }
    if (f->answer_sync && req->type == PEER_MSG_INVALIDATE) {
        /* A DELETE right after a ring change tells the non-owners. */
        peer_msg_t m = {.type = PEER_MSG_INVALIDATE_RESP};
        peer_server_respond(call, &m);
        return;
    }
    fprintf(stderr, "served a peer call of type %d\n", (int)req->type);
    f->served++;
}

static void fx_set_flag(void *arg)
{
    *(bool *)arg = true;
}

static bool fx_flag(void *arg)
{
    return *(bool *)arg;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    if (!f) return -1;
    /* Values of at most 64 bytes: a larger one is refused by the store. */
    char *argv[] = {"test_route", "--replicas", "1", "--max-value-size", "64", NULL};
    char *envp[] = {NULL};
    FILE *devnull = fopen("/dev/null", "w");
    config_result_t cr = config_load(&f->cfg, 5, argv, envp, devnull, stderr);
    if (devnull) fclose(devnull);
    if (cr != CONFIG_OK) return -1;
    atomic_init(&f->now, T0_MS);
    store_config_t sc = {.max_entries = (size_t)f->cfg.l1_max_entries,
                         .max_bytes = (size_t)f->cfg.l1_max_memory,
                         .max_value_bytes = (size_t)f->cfg.max_value_size,
                         .clock = fx_clock,
                         .clock_ctx = f};
    f->store = store_new(&sc);
    if (!f->store) return -1;
    metrics_init(&f->metrics);
    route_init(&f->rt, &f->cfg, f->store, &f->metrics);
    atomic_store(&f->rt.self_name, SELF);
    if (!f->rt.tomb || uv_loop_init(&f->loop) != 0) return -1;
    if (route_worker_init(&f->w, &f->rt, &f->loop, fx_serve, f) != 0) return -1;
    f->worker_up = true;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = 0;
    if (f->worker_up) {
        route_worker_close(&f->w, fx_set_flag, &f->worker_closed);
        if (!fixture_loop_run_until(&f->loop, fx_flag, &f->worker_closed, WAIT_MS)) {
            fprintf(stderr, "the worker did not close\n");
            return -1; /* its handles still point into f: leak it */
        }
        route_worker_free(&f->w);
    }
    if (fixture_loop_close(&f->loop) != 0) return -1;
    if (f->served) rc = -1, fprintf(stderr, "%u peer calls served\n", f->served);
    route_destroy(&f->rt);
    store_free(f->store);
    config_free(&f->cfg);
    free(f);
    return rc;
}

static void fx_advance(fx_t *f, int64_t ms)
{
    atomic_fetch_add(&f->now, ms);
}

/* ---- requests, each waiting for its one answer ---- */

static void wait_answer(fx_t *f, rec_t *r)
{
    assert_true(fixture_loop_run_until(&f->loop, rec_answered, r, WAIT_MS));
    assert_int_equal(r->calls, 1);
}

static void get(fx_t *f, rec_t *r, const char *key)
{
    route_read_get(&f->w, rec_reply(r), key, strlen(key));
    wait_answer(f, r);
}

static void put_ttl(fx_t *f, rec_t *r, const char *key, const char *value, const char *ct, int64_t ttl_ms)
{
    store_put_args_t a = {.key = key, .key_len = strlen(key), .value = value, .value_len = strlen(value),
                          .content_type = ct, .content_type_len = ct ? strlen(ct) : 0, .ttl_ms = ttl_ms};
    route_write_put(&f->w, rec_reply(r), &a);
    wait_answer(f, r);
}

static void put(fx_t *f, rec_t *r, const char *key, const char *value)
{
    put_ttl(f, r, key, value, NULL, 0);
}

static void del(fx_t *f, rec_t *r, const char *key)
{
    route_write_delete(&f->w, rec_reply(r), key, strlen(key));
    wait_answer(f, r);
}

/* A PUT expected to succeed; its version. */
static uint64_t put_ok(fx_t *f, const char *key, const char *value)
{
    rec_t r;
    put(f, &r, key, value);
    assert_int_equal(r.what, ANS_STORED);
    return r.version;
}

/* A GET expected to find value; its version. */
static uint64_t get_value(fx_t *f, const char *key, const char *value)
{
    rec_t r;
    get(f, &r, key);
    assert_int_equal(r.what, ANS_VALUE);
    assert_int_equal(r.len, strlen(value));
    assert_memory_equal(r.value, value, r.len);
    assert_int_equal(r.released, 1);
    return r.version;
}

static void get_miss(fx_t *f, const char *key)
{
    rec_t r;
    get(f, &r, key);
    assert_int_equal(r.what, ANS_MISS);
}

static store_status_t replica_put(fx_t *f, const char *key, const char *value, uint64_t version, bool *created)
{
    store_put_args_t a = {.key = key, .key_len = strlen(key), .value = value, .value_len = strlen(value),
                          .version = version};
    bool c = false;
    store_status_t st = route_write_replica_put(&f->rt, &a, &c);
    if (created) *created = c;
    return st;
}

/* ---- without a ring: this node owns every key ---- */

/* A PUT is stamped by this node's clock, stored and answered; a GET finds
 * the value with that version, its content type and remaining TTL, in
 * this node's L1. */
static void test_put_then_get(void **state)
{
    fx_t *f = *state;
    rec_t r;
    put_ttl(f, &r, "user:1", "{\"a\":1}", "application/json", 60000);
    assert_int_equal(r.what, ANS_STORED);
    assert_int_equal(r.klen, 6);
    assert_memory_equal(r.key, "user:1", 6);
    assert_true(r.created);
    assert_false(r.journaled);
    assert_int_equal(r.ttl_ms, 60000);
    assert_string_equal(r.node, SELF);
    assert_string_equal(r.owner, SELF);
    assert_true(r.version != 0);
    assert_int_equal(hlc_physical_ms(r.version), T0_MS); /* stamped now, by the virtual clock */
    uint64_t stamped = r.version;

    get(f, &r, "user:1");
    assert_int_equal(r.what, ANS_VALUE);
    assert_int_equal(r.len, 7);
    assert_memory_equal(r.value, "{\"a\":1}", 7);
    assert_int_equal(r.ctlen, 16);
    assert_memory_equal(r.ct, "application/json", 16);
    assert_true(r.version == stamped);
    assert_int_equal(r.ttl_ms, 60000);
    assert_int_equal(r.source, ROUTE_SRC_L1);
    assert_string_equal(r.node, SELF);
    assert_string_equal(r.owner, SELF);
    assert_int_equal(r.released, 1);

    /* The TTL runs on the store's clock. */
    fx_advance(f, 59999);
    get(f, &r, "user:1");
    assert_int_equal(r.what, ANS_VALUE);
    assert_int_equal(r.ttl_ms, 1);
    fx_advance(f, 1);
    get_miss(f, "user:1");
}

static void test_get_absent(void **state)
{
    fx_t *f = *state;
    rec_t r;
    get(f, &r, "nobody");
    assert_int_equal(r.what, ANS_MISS);
    assert_string_equal(r.node, SELF);
    assert_string_equal(r.owner, SELF);
}

/* DELETE of a held key says it existed and leaves nothing behind; a second
 * DELETE says it did not. */
static void test_delete(void **state)
{
    fx_t *f = *state;
    uint64_t v = put_ok(f, "k", "v");
    rec_t r;
    del(f, &r, "k");
    assert_int_equal(r.what, ANS_DELETED);
    assert_true(r.existed);
    assert_true(r.version > v);
    assert_int_equal(r.klen, 1);
    assert_memory_equal(r.key, "k", 1);
    assert_string_equal(r.node, SELF);
    assert_string_equal(r.owner, SELF);
    get_miss(f, "k");
    store_entry_t *e;
    assert_int_equal(store_get(f->store, "k", 1, &e), STORE_NOT_FOUND);
    del(f, &r, "k");
    assert_int_equal(r.what, ANS_DELETED);
    assert_false(r.existed);
}

/* A second PUT replaces the value with a newer version. */
static void test_overwrite(void **state)
{
    fx_t *f = *state;
    uint64_t v1 = put_ok(f, "k", "one");
    rec_t r;
    put(f, &r, "k", "two");
    assert_int_equal(r.what, ANS_STORED);
    assert_false(r.created);
    assert_true(r.version > v1);
    assert_true(get_value(f, "k", "two") == r.version);
}

/* ---- replica writes (what a primary sends to the other owners) ---- */

/* An older version than the one held is refused; the newer value stays. */
static void test_replica_put_stale(void **state)
{
    fx_t *f = *state;
    uint64_t v = route_stamp(&f->rt);
    bool created = false;
    assert_int_equal(replica_put(f, "k", "new", v + 10, &created), STORE_OK);
    assert_true(created);
    created = true;
    assert_int_equal(replica_put(f, "k", "old", v, &created), STORE_STALE);
    assert_false(created); /* a refused write created nothing */
    assert_true(get_value(f, "k", "new") == v + 10);
    /* A newer one replaces it. */
    assert_int_equal(replica_put(f, "k", "newer", v + 20, &created), STORE_OK);
    assert_false(created);
    assert_true(get_value(f, "k", "newer") == v + 20);
}

/* A forwarded write tried again (its answer got lost) on an owner that
 * carried it out, as primary or as a replica, is answered with the version
 * it got: not stamped again over a write another client made meanwhile. */
static void test_forwarded_write_retried(void **state)
{
    fx_t *f = *state;
    uint8_t rid[PEER_ID_LEN], rid2[PEER_ID_LEN], none[PEER_ID_LEN] = {0};
    memset(rid, 0x5a, sizeof rid);
    memset(rid2, 0xa5, sizeof rid2);
    store_put_args_t a = {.key = "k", .key_len = 1, .value = "first", .value_len = 5};
    rec_t r;
    route_write_coordinate_put(&f->w, rec_reply(&r), &a, rid);
    wait_answer(f, &r);
    assert_int_equal(r.what, ANS_STORED);
    assert_true(r.created);
    uint64_t v1 = r.version;
    uint64_t v2 = put_ok(f, "k", "second");
    assert_true(v2 > v1);
    route_write_coordinate_put(&f->w, rec_reply(&r), &a, rid);
    wait_answer(f, &r);
    assert_int_equal(r.what, ANS_STORED);
    assert_true(r.version == v1);
    assert_true(r.created);
    assert_true(get_value(f, "k", "second") == v2);
    assert_int_equal(atomic_load(&route_dedupe_stats(f->rt.dedupe)->hits), 1);
    /* No id: a new request, stamped anew. */
    route_write_coordinate_put(&f->w, rec_reply(&r), &a, none);
    wait_answer(f, &r);
    assert_true(r.version > v2);

    /* Learnt as a replica write: a retry of it coordinated here. */
    uint64_t v3 = route_stamp(&f->rt);
    assert_int_equal(replica_put(f, "j", "replica", v3, NULL), STORE_OK);
    route_write_note_rid(&f->rt, rid2, v3, true);
    store_put_args_t b = {.key = "j", .key_len = 1, .value = "again", .value_len = 5};
    route_write_coordinate_put(&f->w, rec_reply(&r), &b, rid2);
    wait_answer(f, &r);
    assert_true(r.version == v3);
    assert_true(get_value(f, "j", "replica") == v3);

    /* A DELETE likewise: its retry does not delete a newer write. */
    uint8_t rid3[PEER_ID_LEN];
    memset(rid3, 0x33, sizeof rid3);
    route_write_coordinate_delete(&f->w, rec_reply(&r), "d", 1, rid3);
    wait_answer(f, &r);
    assert_int_equal(r.what, ANS_DELETED);
    uint64_t vd = put_ok(f, "d", "after");
    route_write_coordinate_delete(&f->w, rec_reply(&r), "d", 1, rid3);
    wait_answer(f, &r);
    assert_int_equal(r.what, ANS_DELETED);
    assert_true(get_value(f, "d", "after") == vd);
}

/* A replica write stamped by a clock 30 s ahead is refused (so its primary
 * cannot count it acknowledged) and does not drag this node's clock; one
 * 4 s ahead, within --max-clock-drift (5 s), is taken. */
static void test_replica_put_from_runaway_clock(void **state)
{
    fx_t *f = *state;
    uint64_t far = (uint64_t)(T0_MS + 30000) << HLC_LOGICAL_BITS;
    uint64_t near = (uint64_t)(T0_MS + 4000) << HLC_LOGICAL_BITS;
    bool created = true;
    assert_int_equal(replica_put(f, "k", "ahead", far, &created), STORE_BAD_KEY);
    assert_false(created);
    get_miss(f, "k");
    assert_int_equal(atomic_load(&f->rt.stats.clock_refusals), 1);
    assert_true(hlc_physical_ms(route_stamp(&f->rt)) < T0_MS + 1000);
    assert_int_equal(replica_put(f, "k", "near", near, NULL), STORE_OK);
    assert_true(get_value(f, "k", "near") == near);
    assert_true(route_stamp(&f->rt) > near);
}

/* A delete older than the write held does not remove it. */
static void test_replica_delete_older(void **state)
{
    fx_t *f = *state;
    uint64_t v = route_stamp(&f->rt);
    assert_int_equal(replica_put(f, "k", "kept", v + 10, NULL), STORE_OK);
    assert_false(route_write_replica_delete(&f->rt, "k", 1, v));
    assert_true(get_value(f, "k", "kept") == v + 10);
}

/* A delete removes what is older and leaves a tombstone: a write older
 * than the delete that arrives after it is refused, a newer one is kept. */
static void test_replica_delete_tombstone(void **state)
{
    fx_t *f = *state;
    uint64_t v = route_stamp(&f->rt);
    assert_int_equal(replica_put(f, "k", "a", v, NULL), STORE_OK);
    assert_true(route_write_replica_delete(&f->rt, "k", 1, v + 10));
    get_miss(f, "k");
    assert_int_equal(replica_put(f, "k", "late", v + 5, NULL), STORE_STALE);
    get_miss(f, "k");
    bool created = false;
    assert_int_equal(replica_put(f, "k", "after", v + 20, &created), STORE_OK);
    assert_true(created);
    assert_true(get_value(f, "k", "after") == v + 20);
    /* A delete of a key never held still leaves its tombstone. */
    assert_false(route_write_replica_delete(&f->rt, "other", 5, v + 10));
    assert_int_equal(replica_put(f, "other", "late", v + 9, NULL), STORE_STALE);
    get_miss(f, "other");
}

/* ---- handoff batches ---- */

#define BIG_VALUE "0123456789012345678901234567890123456789012345678901234567890123456789"

static peer_entry_t entry(const char *key, const char *value, uint64_t version, uint64_t expires_at_ms)
{
    return (peer_entry_t){.key = {(const uint8_t *)key, strlen(key)},
                          .value = {(const uint8_t *)value, strlen(value)},
                          .content_type = {(const uint8_t *)"text/plain", 10},
                          .version = version,
                          .expires_at_ms = expires_at_ms};
}

/* A batch as a receiver sees it: encoded, then decoded (the entries are
 * only iterable in a decoded message). */
static uint32_t accept_batch(fx_t *f, const peer_entry_t *entries, uint32_t n)
{
    static uint8_t buf[8192];
    peer_msg_t m = {.type = PEER_MSG_HANDOFF, .id = 1, .count = n, .entries = entries}, d;
    size_t len = 0;
    assert_int_equal(peer_msg_encode(&m, buf, sizeof buf, &len), PEER_PROTO_OK);
    assert_int_equal(peer_msg_decode(buf, len, &d), PEER_PROTO_OK);
    assert_int_equal(d.count, n);
    return route_local_accept_handoff(&f->rt, &d);
}

/* Kept: live entries newer than what is here and than any delete since.
 * Settled without keeping: older than a tombstone, expired, older than the
 * copy here (the sender's copy is obsolete). Unsettled: what the store
 * refused (the sender keeps it and retries). */
static void test_handoff(void **state)
{
    fx_t *f = *state;
    uint64_t v = route_stamp(&f->rt);
    uint64_t now = (uint64_t)T0_MS;
    route_write_replica_delete(&f->rt, "deleted", 7, v + 10);
    route_write_replica_delete(&f->rt, "revived", 7, v + 10);
    assert_int_equal(replica_put(f, "held", "here", v + 30, NULL), STORE_OK);
    assert_int_equal(replica_put(f, "older", "here", v + 1, NULL), STORE_OK);
    const peer_entry_t batch[] = {
        entry("deleted", "x", v + 5, 0),          /* older than its delete */
        entry("revived", "y", v + 20, 0),         /* newer than its delete: kept */
        entry("expired", "x", v + 1, now - 1),    /* expired before it came */
        entry("expiring", "x", v + 1, now),       /* expires as it comes */
        entry("fresh", "z", v + 1, now + 5000),   /* kept, with what is left of its TTL */
        entry("held", "x", v + 25, 0),            /* older than the copy here */
        entry("older", "w", v + 40, 0),           /* newer than the copy here: kept */
        entry("big", BIG_VALUE, v + 1, 0),        /* over --max-value-size: refused, unsettled */
    };
    /* Settled: kept, or obsolete (the sender may drop those); not the refused one. */
    assert_int_equal(accept_batch(f, batch, sizeof batch / sizeof batch[0]), 7);
    get_miss(f, "deleted");
    assert_true(get_value(f, "revived", "y") == v + 20);
    get_miss(f, "expired");
    get_miss(f, "expiring");
    assert_true(get_value(f, "fresh", "z") == v + 1);
    rec_t r;
    get(f, &r, "fresh");
    assert_int_equal(r.ttl_ms, 5000);
    assert_int_equal(r.ctlen, 10);
    assert_memory_equal(r.ct, "text/plain", 10);
    assert_true(get_value(f, "held", "here") == v + 30);
    assert_true(get_value(f, "older", "w") == v + 40);
    get_miss(f, "big");
    /* The clock moved past every version it took. */
    assert_true(route_stamp(&f->rt) > v + 40);
}

/* ---- with a ring of three: n1 (this node), n2 and n3 without peer addresses ---- */

static topo_t *publish_ring(fx_t *f)
{
    topo_member_t m[3];
    memset(m, 0, sizeof m);
    static const char *const names[] = {"n1", "n2", "n3"};
    for (int i = 0; i < 3; i++) snprintf(m[i].name, sizeof m[i].name, "%s", names[i]);
    topo_t *t = topo_build(m, 3, SELF, (unsigned)f->cfg.replicas, 1);
    assert_non_null(t);
    assert_true(t->self >= 0);
    assert_string_equal(t->members[t->self].name, SELF);
    topo_slot_publish(&f->rt.topo, topo_ref(t));
    /* What resync's first clock comparison does in a node. */
    atomic_store(&f->rt.sync.clock, ROUTE_CLOCK_OK);
    return t; /* the caller's reference, for topo_owners */
}

/* The first key "<prefix><i>" whose only owner is (mine) or is not (!mine)
 * this node. */
static void pick_key(const topo_t *t, bool mine, const char *prefix, int from, char *out, size_t cap)
{
    for (int i = from; i < from + 10000; i++) {
        snprintf(out, cap, "%s%d", prefix, i);
        uint32_t owners[RING_REPLICAS_MAX];
        size_t n = topo_owners(t, out, strlen(out), owners, RING_REPLICAS_MAX);
        assert_int_equal(n, 1); /* --replicas 1 */
        if (((int32_t)owners[0] == t->self) == mine) return;
    }
    fail_msg("no key found");
}

/* Writes wait until the clock was compared with the others' and are
 * refused while it is apart; alone, nothing is compared and nothing waits. */
static void test_clock_refusals(void **state)
{
    fx_t *f = *state;
    rec_t r;
    put(f, &r, "alone", "v");
    assert_int_equal(r.what, ANS_STORED);
    topo_t *t = publish_ring(f);
    char key[32];
    pick_key(t, true, "key:", 0, key, sizeof key);
    atomic_store(&f->rt.sync.clock, ROUTE_CLOCK_UNCHECKED);
    put(f, &r, key, "v");
    assert_int_equal(r.what, ANS_FAIL);
    assert_int_equal(r.err, ROUTE_ERR_CLOCK_SKEW);
    atomic_store(&f->rt.sync.clock, ROUTE_CLOCK_SKEWED);
    del(f, &r, key);
    assert_int_equal(r.what, ANS_FAIL);
    assert_int_equal(r.err, ROUTE_ERR_CLOCK_SKEW);
    atomic_store(&f->rt.sync.clock, ROUTE_CLOCK_OK);
    put(f, &r, key, "v");
    assert_int_equal(r.what, ANS_STORED);
    topo_unref(t);
}

/* A reading more than --max-clock-drift (5 s by default) from this node's
 * clock, either way, is apart; this node's clock is its HLC, so a version it
 * merged from a clock ahead counts. */
static void test_clock_apart(void **state)
{
    fx_t *f = *state;
    uint64_t now = (uint64_t)T0_MS << HLC_LOGICAL_BITS;
    assert_false(route_clock_apart(&f->rt, now));
    assert_false(route_clock_apart(&f->rt, now + ((uint64_t)4000 << HLC_LOGICAL_BITS)));
    assert_false(route_clock_apart(&f->rt, now - ((uint64_t)4000 << HLC_LOGICAL_BITS)));
    assert_true(route_clock_apart(&f->rt, now + ((uint64_t)6000 << HLC_LOGICAL_BITS)));
    assert_true(route_clock_apart(&f->rt, now - ((uint64_t)6000 << HLC_LOGICAL_BITS)));
    route_observe(&f->rt, now + ((uint64_t)4000 << HLC_LOGICAL_BITS));
    assert_true(route_clock_apart(&f->rt, now - ((uint64_t)2000 << HLC_LOGICAL_BITS)));
}

static void note_back(const topo_member_t *m, void *ctx)
{
    char *seen = ctx;
    strcat(seen, m->name);
    strcat(seen, " ");
}

/* A new snapshot names the members that are back: new ones, new runs,
 * and those no longer suspected; the same snapshot again names nobody. */
static void test_topo_noting(void **state)
{
    fx_t *f = *state;
    topo_cache_t c = {0};
    char seen[64] = "";
    topo_member_t m[3];
    memset(m, 0, sizeof m);
    static const char *const names[] = {"n1", "n2", "n3"};
    for (int i = 0; i < 3; i++) snprintf(m[i].name, sizeof m[i].name, "%s", names[i]);
    m[2].suspect = true;
    topo_slot_publish(&f->rt.topo, topo_build(m, 2, SELF, 1, 1));
    assert_non_null(topo_cache_get_noting(&c, &f->rt.topo, note_back, seen));
    assert_true(strstr(seen, "n1 ") && strstr(seen, "n2 ") && strlen(seen) == 6); /* in ring order */
    seen[0] = 0;
    assert_non_null(topo_cache_get_noting(&c, &f->rt.topo, note_back, seen));
    assert_string_equal(seen, "");
    topo_slot_publish(&f->rt.topo, topo_build(m, 3, SELF, 1, 1)); /* n3 joins, suspected */
    assert_non_null(topo_cache_get_noting(&c, &f->rt.topo, note_back, seen));
    assert_string_equal(seen, "n3 ");
    seen[0] = 0;
    m[1].run[0] = 7;      /* n2 restarted */
    m[2].suspect = false; /* n3 answers again */
    topo_slot_publish(&f->rt.topo, topo_build(m, 3, SELF, 1, 1));
    assert_non_null(topo_cache_get_noting(&c, &f->rt.topo, note_back, seen));
    assert_true(strstr(seen, "n2 ") && strstr(seen, "n3 ") && strlen(seen) == 6);
    topo_cache_clear(&c);
}

/* A loopback address nothing listens on: a connection to it is refused at
 * once, which the peer pool reports as the peer being down. */
static void closed_port(struct sockaddr_storage *out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    memset(out, 0, sizeof *out);
    memcpy(out, &sin, sizeof sin);
}

/* The worker's own peer server, listening on a loopback port: a member
 * whose address is this answers SYNCs (fx_serve), as a live member would. */
static void live_member(fx_t *f, struct sockaddr_storage *out)
{
    assert_int_equal(peer_server_listen(f->w.peer_server, "127.0.0.1", 0), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                              .sin_port = htons((uint16_t)peer_server_port(f->w.peer_server))};
    memset(out, 0, sizeof *out);
    memcpy(out, &sin, sizeof sin);
    f->answer_sync = true;
}

/* A key this node is the primary of, with n2 as its other owner. */
static void key_with_n2(topo_t *t, char *key, size_t size)
{
    uint32_t n2;
    assert_true(topo_find(t, "n2", &n2));
    for (int i = 0;; i++) {
        assert_true(i < 10000);
        snprintf(key, size, "key:%d", i);
        uint32_t owners[RING_REPLICAS_MAX];
        assert_int_equal(topo_owners(t, key, strlen(key), owners, RING_REPLICAS_MAX), 2);
        if ((int32_t)owners[0] == t->self && owners[1] == n2) return;
    }
}

static bool fx_rounds_done(void *arg)
{
    return ((fx_t *)arg)->w.quorum_rounds == NULL;
}

/* With --write-acks all, an owner that is down is left out of a write's
 * acknowledgement only once a majority of the members answered this node
 * after the write began: cut off on the small side of a partition, the
 * other owner would look just as down, and keeps serving what the write
 * replaced. n2 (the key's other owner) is down throughout. */
static void test_down_owner_skipped_with_majority(void **state)
{
    fx_t *f = *state;
    topo_member_t m[3];
    memset(m, 0, sizeof m);
    static const char *const names[] = {"n1", "n2", "n3"};
    for (int i = 0; i < 3; i++) snprintf(m[i].name, sizeof m[i].name, "%s", names[i]);
    closed_port(&m[1].peer);
    closed_port(&m[2].peer);
    topo_t *t = topo_build(m, 3, SELF, 2, 1);
    assert_non_null(t);
    topo_slot_publish(&f->rt.topo, topo_ref(t));
    atomic_store(&f->rt.sync.clock, ROUTE_CLOCK_OK);
    char key[32];
    key_with_n2(t, key, sizeof key);
    /* n3 is down too: the round of SYNCs finds this node alone, and the
     * refused connection to n2 fails the write. */
    rec_t r;
    put(f, &r, key, "v1");
    assert_int_equal(r.what, ANS_FAIL);
    assert_int_equal(r.err, ROUTE_ERR_NOT_REPLICATED);
    assert_int_equal(atomic_load(&f->rt.stats.replica_unskipped), 1);
    assert_int_equal(atomic_load(&f->rt.stats.replica_skipped), 0);
    assert_int_equal(atomic_load(&f->rt.stats.majority_rounds), 1);
    /* Contact from before the write began is not evidence of now: n3 was
     * heard a moment ago, and is down. */
    topo_note_heard(t, "n3", uv_now(&f->loop) - 1);
    del(f, &r, key);
    assert_int_equal(r.what, ANS_FAIL);
    assert_int_equal(r.err, ROUTE_ERR_NOT_REPLICATED);
    assert_int_equal(atomic_load(&f->rt.stats.replica_unskipped), 2);
    assert_int_equal(atomic_load(&f->rt.stats.majority_rounds), 2);
    assert_true(fixture_loop_run_until(&f->loop, fx_rounds_done, f, WAIT_MS));
    topo_unref(t);

    /* n3 alive: it answers the SYNC, two of three, and the write goes on
     * without n2. */
    live_member(f, &m[2].peer);
    t = topo_build(m, 3, SELF, 2, 2);
    assert_non_null(t);
    topo_slot_publish(&f->rt.topo, topo_ref(t));
    put(f, &r, key, "v2");
    assert_int_equal(r.what, ANS_STORED);
    assert_int_equal(atomic_load(&f->rt.stats.replica_skipped), 1);
    assert_int_equal(atomic_load(&f->rt.stats.majority_rounds), 3);
    assert_true(f->syncs_answered >= 1);
    /* A ring that grew lately counts: two of the four it had are not a
     * majority, however fresh n3's answer. */
    atomic_store(&f->rt.sync.peak, 4);
    del(f, &r, key);
    assert_int_equal(r.what, ANS_FAIL);
    assert_int_equal(r.err, ROUTE_ERR_NOT_REPLICATED);
    assert_int_equal(atomic_load(&f->rt.stats.replica_unskipped), 3);
    assert_true(fixture_loop_run_until(&f->loop, fx_rounds_done, f, WAIT_MS));
    /* The evidence follows the members into the next snapshot. */
    uint64_t heard_at = uv_now(&f->loop);
    topo_note_heard(t, "n3", heard_at);
    topo_t *next = topo_build(m, 3, SELF, 2, 3);
    assert_non_null(next);
    topo_carry_heard(next, t);
    assert_int_equal(topo_heard_since(next, heard_at), 2);
    assert_int_equal(topo_heard_since(next, heard_at + 1), 1);
    topo_unref(next);
    topo_unref(t);
}

static int setup_ring(void **state)
{
    if (setup(state) != 0) return -1;
    fx_t *f = *state;
    topo_unref(publish_ring(f));
    return 0;
}

/* A key only the others own: GET, PUT and DELETE fail at once, as
 * "owner unavailable", and nothing is stored here. */
static void test_ring_owner_unavailable(void **state)
{
    fx_t *f = *state;
    topo_t *t = topo_slot_get(&f->rt.topo);
    char key[32];
    pick_key(t, false, "key:", 0, key, sizeof key);
    assert_false(route_is_primary(&f->w, key, strlen(key)));
    rec_t r;
    get(f, &r, key);
    assert_int_equal(r.what, ANS_FAIL);
    assert_int_equal(r.err, ROUTE_ERR_OWNER_UNAVAILABLE);
    assert_int_equal(atomic_load(&f->rt.stats.unavailable), 1);
    assert_int_equal(f->w.nflights, 0); /* the forward is over */
    put(f, &r, key, "v");
    assert_int_equal(r.what, ANS_FAIL);
    assert_int_equal(r.err, ROUTE_ERR_OWNER_UNAVAILABLE);
    store_entry_t *e;
    assert_int_equal(store_get(f->store, key, strlen(key), &e), STORE_NOT_FOUND);
    del(f, &r, key);
    assert_int_equal(r.what, ANS_FAIL);
    assert_int_equal(r.err, ROUTE_ERR_OWNER_UNAVAILABLE);
    assert_int_equal(atomic_load(&f->rt.stats.unavailable), 3);
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&f->rt.stats.forwarded[i]), 0);
    topo_unref(t);
}

/* A key this node is the primary of is served here. */
static void test_ring_primary_local(void **state)
{
    fx_t *f = *state;
    topo_t *t = topo_slot_get(&f->rt.topo);
    char key[32];
    pick_key(t, true, "key:", 0, key, sizeof key);
    assert_true(route_is_primary(&f->w, key, strlen(key)));
    get_miss(f, key);
    rec_t r;
    put(f, &r, key, "mine");
    assert_int_equal(r.what, ANS_STORED);
    assert_string_equal(r.node, SELF);
    assert_string_equal(r.owner, SELF);
    get(f, &r, key);
    assert_int_equal(r.what, ANS_VALUE);
    assert_int_equal(r.len, 4);
    assert_memory_equal(r.value, "mine", 4);
    assert_int_equal(r.source, ROUTE_SRC_L1);
    assert_string_equal(r.node, SELF);
    assert_string_equal(r.owner, SELF);
    del(f, &r, key);
    assert_int_equal(r.what, ANS_DELETED);
    assert_true(r.existed);
    get_miss(f, key);
    assert_int_equal(atomic_load(&f->rt.stats.unavailable), 0);
    topo_unref(t);
}

/* Invalidation by pattern removes every copy held here, but counts only
 * the keys this node is the primary of (each key is counted once in the
 * cluster). */
static void test_ring_invalidate_counts_primaries(void **state)
{
    fx_t *f = *state;
    topo_t *t = topo_slot_get(&f->rt.topo);
    uint64_t v = route_stamp(&f->rt);
    char key[32];
    int mine = 0;
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "p:%d", i);
        assert_int_equal(replica_put(f, key, "v", v, NULL), STORE_OK); /* held here, whoever owns it */
        if (route_is_primary(&f->w, key, strlen(key))) mine++;
    }
    assert_true(mine > 0 && mine < 30);
    uint64_t matched = 0, invalidated = 0;
    route_local_invalidate_pattern(&f->w, "p:*", 3, false, route_stamp(&f->rt), &matched, &invalidated);
    assert_int_equal(matched, mine);
    assert_int_equal(invalidated, mine);
    assert_int_equal(store_entry_count(f->store), 0);
    assert_int_equal(atomic_load(&f->metrics.invalidations), 30);
    topo_unref(t);
}

/* ---- local listing and invalidation, without a ring ---- */

static void test_invalidate_pattern(void **state)
{
    fx_t *f = *state;
    char key[32];
    for (int i = 0; i < 5; i++) put_ok(f, (snprintf(key, sizeof key, "user:%d", i), key), "u");
    for (int i = 0; i < 3; i++) put_ok(f, (snprintf(key, sizeof key, "order:%d", i), key), "o");
    uint64_t matched = 99, invalidated = 99;
    route_local_invalidate_pattern(&f->w, "user:*", 6, true, 0, &matched, &invalidated);
    assert_int_equal(matched, 5);
    assert_int_equal(invalidated, 0);
    assert_int_equal(store_entry_count(f->store), 8);
    assert_int_equal(atomic_load(&f->metrics.invalidations), 0);
    get_value(f, "user:3", "u");

    route_local_invalidate_pattern(&f->w, "user:*", 6, false, route_stamp(&f->rt), &matched, &invalidated);
    assert_int_equal(matched, 5);
    assert_int_equal(invalidated, 5);
    assert_int_equal(store_entry_count(f->store), 3);
    assert_int_equal(atomic_load(&f->metrics.invalidations), 5);
    for (int i = 0; i < 5; i++) get_miss(f, (snprintf(key, sizeof key, "user:%d", i), key));
    for (int i = 0; i < 3; i++) get_value(f, (snprintf(key, sizeof key, "order:%d", i), key), "o");

    /* Nothing left to match. */
    route_local_invalidate_pattern(&f->w, "user:*", 6, false, route_stamp(&f->rt), &matched, &invalidated);
    assert_int_equal(matched, 0);
    assert_int_equal(invalidated, 0);
}

/* A key invalidation is a delete at its version: what is held goes unless
 * newer, and a fill older than it that comes later (a replica write, a
 * handoff batch) is refused, also of a key this node did not hold; a newer
 * one is kept. */
static void test_invalidate_keys_versioned(void **state)
{
    fx_t *f = *state;
    uint64_t v = route_stamp(&f->rt);
    assert_int_equal(replica_put(f, "a", "old", v, NULL), STORE_OK);
    assert_int_equal(replica_put(f, "newer", "kept", v + 30, NULL), STORE_OK);
    const peer_bytes_t keys[] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"b", 1},
                                 {(const uint8_t *)"newer", 5}};
    assert_int_equal(route_local_invalidate_keys(&f->w, keys, 3, v + 10), 1);
    assert_int_equal(atomic_load(&f->metrics.invalidations), 1);
    get_miss(f, "a");
    assert_true(get_value(f, "newer", "kept") == v + 30);
    assert_int_equal(replica_put(f, "a", "late", v + 5, NULL), STORE_STALE);
    assert_int_equal(replica_put(f, "b", "late", v + 9, NULL), STORE_STALE);
    const peer_entry_t batch[] = {entry("a", "handed", v + 1, 0)};
    assert_int_equal(accept_batch(f, batch, 1), 1); /* settled: obsolete */
    get_miss(f, "a");
    get_miss(f, "b");
    assert_int_equal(replica_put(f, "a", "after", v + 11, NULL), STORE_OK);
    assert_true(get_value(f, "a", "after") == v + 11);
    /* The clock moved past the invalidation's version. */
    assert_true(route_stamp(&f->rt) > v + 10);
}

/* Version 0 (an older peer) and a version from a clock too far ahead clear
 * what is held, newer or not, and leave no tombstone. */
static void test_invalidate_keys_unversioned(void **state)
{
    fx_t *f = *state;
    uint64_t v = route_stamp(&f->rt);
    const peer_bytes_t k = {(const uint8_t *)"k", 1};
    assert_int_equal(replica_put(f, "k", "v", v, NULL), STORE_OK);
    assert_int_equal(route_local_invalidate_keys(&f->w, &k, 1, 0), 1);
    get_miss(f, "k");
    assert_int_equal(replica_put(f, "k", "v", v, NULL), STORE_OK);
    uint64_t runaway = (uint64_t)(T0_MS + 3600 * 1000) << HLC_LOGICAL_BITS;
    assert_int_equal(route_local_invalidate_keys(&f->w, &k, 1, runaway), 1);
    assert_int_equal(atomic_load(&f->rt.stats.clock_refusals), 1);
    get_miss(f, "k");
    assert_int_equal(replica_put(f, "k", "v", v + 1, NULL), STORE_OK);
    assert_true(route_stamp(&f->rt) < runaway);
    assert_int_equal(tomb_count(f->rt.tomb, T0_MS), 0);
}

/* A pattern invalidation leaves a pattern tombstone: fills of matching keys
 * older than it are refused, whether the key was held or not; newer fills
 * and other keys go through; a dry run leaves nothing. */
static void test_invalidate_pattern_versioned(void **state)
{
    fx_t *f = *state;
    uint64_t v = route_stamp(&f->rt), matched, invalidated;
    assert_int_equal(replica_put(f, "user:1", "old", v, NULL), STORE_OK);
    assert_int_equal(replica_put(f, "user:2", "newer", v + 30, NULL), STORE_OK);
    route_local_invalidate_pattern(&f->w, "user:*", 6, true, v + 10, &matched, &invalidated);
    assert_int_equal(matched, 2);
    assert_int_equal(tomb_pattern_count(f->rt.tomb, T0_MS), 0);
    assert_int_equal(replica_put(f, "user:9", "x", v + 1, NULL), STORE_OK);
    route_local_invalidate_pattern(&f->w, "user:*", 6, false, v + 10, &matched, &invalidated);
    assert_int_equal(matched, 3);
    assert_int_equal(invalidated, 2); /* user:2 is newer: kept */
    assert_int_equal(atomic_load(&f->metrics.invalidations), 2);
    get_miss(f, "user:1");
    get_miss(f, "user:9");
    assert_true(get_value(f, "user:2", "newer") == v + 30);
    assert_int_equal(tomb_pattern_count(f->rt.tomb, T0_MS), 1);
    assert_int_equal(replica_put(f, "user:1", "late", v + 5, NULL), STORE_STALE);
    assert_int_equal(replica_put(f, "user:7", "late", v + 5, NULL), STORE_STALE);
    const peer_entry_t batch[] = {entry("user:8", "handed", v + 1, 0), entry("order:1", "o", v + 1, 0)};
    assert_int_equal(accept_batch(f, batch, 2), 2);
    get_miss(f, "user:8");
    get_value(f, "order:1", "o");
    assert_int_equal(replica_put(f, "user:1", "after", v + 11, NULL), STORE_OK);
    /* Until the tombstone expires (the table's TTL, 60 s). */
    fx_advance(f, 60 * 1000);
    assert_int_equal(replica_put(f, "user:7", "late", v + 5, NULL), STORE_OK);
}

/* Pages through every key matching a pattern; seen[i] counts key <prefix><i>. */
static unsigned list_all(fx_t *f, const char *pattern, uint32_t limit, const char *prefix, unsigned *seen,
                         int nkeys)
{
    unsigned pages = 0;
    uint64_t cursor = 0;
    size_t plen = strlen(prefix);
    do {
        route_local_page_t page = {0};
        assert_true(route_local_keys(&f->w, pattern, pattern ? strlen(pattern) : 0, cursor, limit, false, &page));
        pages++;
        assert_true(pages < 100000); /* the cursor moves on */
        for (size_t i = 0; i < page.n; i++) {
            const peer_keyinfo_t *ki = &page.items[i];
            assert_true(ki->key.len > plen && ki->key.len < 32);
            assert_memory_equal(ki->key.p, prefix, plen);
            char num[32];
            memcpy(num, ki->key.p + plen, ki->key.len - plen);
            num[ki->key.len - plen] = '\0';
            int k = atoi(num);
            assert_true(k >= 0 && k < nkeys);
            seen[k]++;
            assert_int_equal(ki->size, 3);                    /* "v%02d" */
            assert_int_equal(ki->ttl_ms, k % 2 ? 30000 : -1); /* odd keys expire */
        }
        cursor = page.next;
        route_local_page_free(&page);
    } while (cursor != 0);
    return pages;
}

static void put_numbered(fx_t *f, const char *prefix, int n)
{
    char key[32], value[8];
    for (int i = 0; i < n; i++) {
        rec_t r;
        snprintf(key, sizeof key, "%s%d", prefix, i);
        snprintf(value, sizeof value, "v%02d", i % 100);
        put_ttl(f, &r, key, value, NULL, i % 2 ? 30000 : 0);
        assert_int_equal(r.what, ANS_STORED);
    }
}

/* Every key shows up in a listing, in more than one page when the pages are
 * small, with its size and TTL; a pattern lists only its matches. */
static void test_keys_pages(void **state)
{
    fx_t *f = *state;
    enum { N = 300 };
    put_numbered(f, "k:", N);
    put_numbered(f, "other:", 10);
    unsigned seen[N];
    memset(seen, 0, sizeof seen);
    unsigned pages = list_all(f, "k:*", 7, "k:", seen, N);
    assert_true(pages > 1);
    for (int i = 0; i < N; i++) {
        if (seen[i] == 0) fail_msg("k:%d was not listed", i);
    }
    /* A pattern of one digit after the prefix: k:0 .. k:9. */
    memset(seen, 0, sizeof seen);
    list_all(f, "k:?", 5, "k:", seen, N);
    for (int i = 0; i < N; i++) assert_int_equal(seen[i] != 0, i < 10);
}

/* The smallest pages (limit 1) still list every key, even where a bucket
 * holds more than one. */
static void test_keys_small_pages(void **state)
{
    fx_t *f = *state;
    enum { N = 2000 };
    put_numbered(f, "k:", N);
    static unsigned seen[N];
    memset(seen, 0, sizeof seen);
    list_all(f, NULL, 1, "k:", seen, N);
    unsigned missing = 0;
    for (int i = 0; i < N; i++) missing += seen[i] == 0;
    if (missing) fail_msg("%u of %d keys were not listed", missing, N);
}

/* ---- cluster-wide operations, without a ring: this node alone ---- */

typedef struct scatter_rec {
    unsigned calls;
    uint64_t matched, invalidated;
    size_t nunreachable, nodes, nsample;
    route_scatter_l2_t l2;
} scatter_rec_t;

static void scatter_done(void *ctx, const route_scatter_result_t *res)
{
    scatter_rec_t *s = ctx;
    s->calls++;
    s->matched = res->matched;
    s->invalidated = res->invalidated;
    s->nunreachable = res->nunreachable;
    s->nodes = res->nodes;
    s->nsample = res->nsample;
    s->l2 = res->l2;
}

static void test_scatter_pattern_alone(void **state)
{
    fx_t *f = *state;
    char key[32];
    for (int i = 0; i < 4; i++) put_ok(f, (snprintf(key, sizeof key, "s:%d", i), key), "v");
    put_ok(f, "t:0", "v");

    /* A dry run counts and removes nothing; done runs before the call
     * returns (nothing had to wait: no ring, no Redis). */
    scatter_rec_t s = {0};
    assert_true(route_scatter_pattern(&f->w, ROUTE_SCATTER_INVALIDATE, "s:*", 3, true, 0, scatter_done, &s));
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.matched, 4);
    assert_int_equal(s.invalidated, 0);
    assert_int_equal(s.nunreachable, 0);
    assert_int_equal(s.nodes, 1);
    assert_int_equal(s.l2, ROUTE_SCATTER_L2_NONE);
    assert_int_equal(store_entry_count(f->store), 5);

    memset(&s, 0, sizeof s);
    assert_true(route_scatter_pattern(&f->w, ROUTE_SCATTER_INVALIDATE, "s:*", 3, false, 0, scatter_done, &s));
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.matched, 4);
    assert_int_equal(s.invalidated, 4);
    assert_int_equal(s.nunreachable, 0);
    assert_int_equal(s.nodes, 1);
    assert_int_equal(s.l2, ROUTE_SCATTER_L2_NONE);
    assert_int_equal(store_entry_count(f->store), 1);
    get_miss(f, "s:2");
    get_value(f, "t:0", "v");

    /* A preview counts and samples, and removes nothing. */
    memset(&s, 0, sizeof s);
    assert_true(route_scatter_pattern(&f->w, ROUTE_SCATTER_PREVIEW, "t:*", 3, true, 10, scatter_done, &s));
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.matched, 1);
    assert_int_equal(s.nsample, 1);
    assert_int_equal(store_entry_count(f->store), 1);
    /* Even when the caller forgets to ask for a dry run. */
    memset(&s, 0, sizeof s);
    assert_true(route_scatter_pattern(&f->w, ROUTE_SCATTER_PREVIEW, "t:*", 3, false, 10, scatter_done, &s));
    assert_int_equal(s.invalidated, 0);
    assert_int_equal(store_entry_count(f->store), 1);
}

/* The whole request, as a client's: the version is stamped by this node,
 * and fills stamped before it are refused afterwards. */
static void test_scatter_invalidate_refuses_older_fills(void **state)
{
    fx_t *f = *state;
    uint64_t before = route_stamp(&f->rt);
    const peer_bytes_t k = {(const uint8_t *)"k:1", 3};
    scatter_rec_t s = {0};
    assert_true(route_scatter_keys(&f->w, &k, 1, scatter_done, &s));
    assert_int_equal(s.calls, 1);
    assert_int_equal(replica_put(f, "k:1", "late", before, NULL), STORE_STALE);
    memset(&s, 0, sizeof s);
    assert_true(route_scatter_pattern(&f->w, ROUTE_SCATTER_INVALIDATE, "p:*", 3, false, 0, scatter_done, &s));
    assert_int_equal(s.calls, 1);
    assert_int_equal(replica_put(f, "p:1", "late", before, NULL), STORE_STALE);
    assert_int_equal(replica_put(f, "q:1", "other", before, NULL), STORE_OK);
    uint64_t after = route_stamp(&f->rt);
    assert_int_equal(replica_put(f, "k:1", "new", after, NULL), STORE_OK);
    assert_int_equal(replica_put(f, "p:1", "new", after, NULL), STORE_OK);
    assert_true(tomb_refused(f->rt.tomb) == 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_then_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forwarded_write_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_put_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_put_from_runaway_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_delete_older, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_delete_tombstone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_owner_unavailable, setup_ring, teardown),
        cmocka_unit_test_setup_teardown(test_ring_primary_local, setup_ring, teardown),
        cmocka_unit_test_setup_teardown(test_ring_invalidate_counts_primaries, setup_ring, teardown),
        cmocka_unit_test_setup_teardown(test_invalidate_pattern, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalidate_keys_versioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalidate_keys_unversioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalidate_pattern_versioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_small_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scatter_pattern_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topo_noting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_owner_skipped_with_majority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scatter_invalidate_refuses_older_fills, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
