/* Unit tests for node/store: eviction order, TTL in virtual time, limits,
 * binary keys, incremental rehashing, scan guarantees, references and a
 * multi-threaded stress with invariant checks. No sleeps, no timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/store/store.h"

/* ---- helpers ---- */

typedef struct vclock {
    _Atomic int64_t now;
} vclock_t;

static int64_t vclock_read(void *ctx)
{
    return atomic_load(&((vclock_t *)ctx)->now);
}

static void vclock_advance(vclock_t *c, int64_t ms)
{
    atomic_fetch_add(&c->now, ms);
}

static store_status_t put_full(store_t *s, const void *key, size_t klen, const void *val, size_t vlen,
                               int64_t ttl, uint64_t version)
{
    store_put_args_t a = {.key = key, .key_len = klen, .value = val, .value_len = vlen,
                          .ttl_ms = ttl, .version = version};
    return store_put(s, &a, NULL);
}

static store_status_t put_str(store_t *s, const char *key, const char *val, int64_t ttl)
{
    return put_full(s, key, strlen(key), val, strlen(val), ttl, 0);
}

static bool has(store_t *s, const char *key)
{
    store_entry_t *e = NULL;
    store_status_t st = store_peek(s, key, strlen(key), &e);
    if (st == STORE_OK) store_entry_release(e);
    return st == STORE_OK;
}

static bool touch(store_t *s, const char *key)
{
    store_entry_t *e = NULL;
    store_status_t st = store_get(s, key, strlen(key), &e);
    if (st == STORE_OK) store_entry_release(e);
    return st == STORE_OK;
}

/* Value of `key`, compared against `want`. */
static void assert_value(store_t *s, const char *key, const char *want)
{
    store_entry_t *e = NULL;
    assert_int_equal(store_get(s, key, strlen(key), &e), STORE_OK);
    size_t len;
    const char *v = store_entry_value(e, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    store_entry_release(e);
}

static void key_of(char *buf, size_t cap, const char *prefix, int i)
{
    snprintf(buf, cap, "%s%08d", prefix, i);
}

typedef struct sum_ctx {
    size_t n;
    uint64_t bytes;
} sum_ctx_t;

static void sum_cb(const store_entry_t *e, void *ctx)
{
    sum_ctx_t *c = ctx;
    c->n++;
    c->bytes += store_entry_size(e);
}

/* Scans everything; checks that stats agree with what is really linked. */
static void assert_accounting(store_t *s)
{
    /* Settle first: a retired bucket array is charged until it is unmapped. */
    store_maintain(s, 60u * 1000 * 1000);
    sum_ctx_t c = {0};
    uint64_t cur = 0;
    do cur = store_scan(s, cur, NULL, 0, 1000, sum_cb, &c);
    while (cur != 0);
    store_stats_t st;
    store_get_stats(s, &st);
    assert_int_equal(c.n, st.entries);
    assert_int_equal(c.bytes + st.buckets * sizeof(void *), st.bytes);
}

/* ---- LRU ---- */

static void test_lru_exact_order(void **state)
{
    (void)state;
    store_config_t cfg = {.max_entries = 100, .shards = 1};
    store_t *s = store_new(&cfg);
    assert_non_null(s);
    char k[32];
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, "k", i);
        assert_int_equal(put_str(s, k, "v", 0), STORE_OK);
    }
    /* Touch in a permuted order; that becomes the eviction order. */
    int order[100];
    for (int i = 0; i < 100; i++) order[i] = (i * 37) % 100;
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, "k", order[i]);
        assert_true(touch(s, k));
    }
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, "n", i);
        assert_int_equal(put_str(s, k, "v", 0), STORE_OK);
        key_of(k, sizeof k, "k", order[i]);
        assert_false(has(s, k)); /* peek does not disturb the order */
        if (i + 1 < 100) {
            key_of(k, sizeof k, "k", order[i + 1]);
            assert_true(has(s, k));
        }
    }
    store_stats_t st;
    store_get_stats(s, &st);
    assert_int_equal(st.evictions, 100);
    assert_int_equal(st.entries, 100);
    store_free(s);
}

static void test_lru_replace_refreshes(void **state)
{
    (void)state;
    store_config_t cfg = {.max_entries = 3, .shards = 8};
    store_t *s = store_new(&cfg);
    put_str(s, "a", "1", 0);
    put_str(s, "b", "1", 0);
    put_str(s, "c", "1", 0);
    bool replaced = false;
    store_put_args_t a = {.key = "a", .key_len = 1, .value = "2", .value_len = 1};
    assert_int_equal(store_put(s, &a, &replaced), STORE_OK);
    assert_true(replaced);
    put_str(s, "d", "1", 0);
    assert_false(has(s, "b"));
    assert_value(s, "a", "2");
    assert_int_equal(store_entry_count(s), 3);
    store_free(s);
}

/* ---- LFU ---- */

static void test_lfu_hot_survive(void **state)
{
    (void)state;
    vclock_t clk = {1000000};
    store_config_t cfg = {.max_entries = 1000, .shards = 1, .policy = STORE_EVICT_LFU,
                          .clock = vclock_read, .clock_ctx = &clk, .seed = 42};
    store_t *s = store_new(&cfg);
    char k[32];
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, "hot", i);
        put_str(s, k, "v", 0);
        for (int j = 0; j < 200; j++) assert_true(touch(s, k));
    }
    for (int i = 0; i < 20000; i++) {
        key_of(k, sizeof k, "cold", i);
        assert_int_equal(put_str(s, k, "v", 0), STORE_OK);
    }
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, "hot", i);
        assert_true(has(s, k));
    }
    assert_int_equal(store_entry_count(s), 1000);
    store_free(s);
}

static void test_lfu_decay(void **state)
{
    (void)state;
    vclock_t clk = {1000000};
    store_config_t cfg = {.max_entries = 256, .shards = 1, .policy = STORE_EVICT_LFU,
                          .lfu_decay_ms = 1000, .clock = vclock_read, .clock_ctx = &clk, .seed = 7};
    store_t *s = store_new(&cfg);
    char k[32];
    put_str(s, "old", "v", 0);
    for (int j = 0; j < 500; j++) touch(s, "old");
    for (int i = 0; i < 255; i++) {
        key_of(k, sizeof k, "f", i);
        put_str(s, k, "v", 0);
    }
    /* While hot, churn does not displace it. */
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, "a", i);
        put_str(s, k, "v", 0);
        assert_true(has(s, "old"));
    }
    /* 100 decay periods later it has forgotten its popularity; keys used
     * since then are preferred. */
    vclock_advance(&clk, 100 * 1000);
    for (int i = 0; i < 255; i++) {
        key_of(k, sizeof k, "f", i);
        touch(s, k);
        key_of(k, sizeof k, "a", i);
        touch(s, k);
    }
    int i;
    for (i = 0; i < 256 && has(s, "old"); i++) {
        key_of(k, sizeof k, "n", i);
        put_str(s, k, "v", 0);
    }
    assert_false(has(s, "old"));
    store_free(s);
}

/* ---- TTL ---- */

static void test_ttl_virtual_time(void **state)
{
    (void)state;
    vclock_t clk = {5000000};
    store_config_t cfg = {.clock = vclock_read, .clock_ctx = &clk};
    store_t *s = store_new(&cfg);
    assert_int_equal(store_now_ms(s), 5000000);
    put_str(s, "a", "1", 100);
    put_str(s, "b", "1", 0);
    store_entry_t *e;
    assert_int_equal(store_peek(s, "a", 1, &e), STORE_OK);
    assert_int_equal(store_entry_expires_at(e), 5000100);
    store_entry_release(e);
    vclock_advance(&clk, 99);
    assert_true(touch(s, "a"));
    vclock_advance(&clk, 1);
    assert_false(touch(s, "a"));
    assert_false(has(s, "a"));
    assert_false(store_delete(s, "a", 1));
    /* Scan never reports an expired entry either. */
    put_str(s, "c", "1", 10);
    vclock_advance(&clk, 10);
    sum_ctx_t c = {0};
    assert_int_equal(store_scan(s, 0, NULL, 0, 100, sum_cb, &c), 0);
    assert_int_equal(c.n, 1);
    vclock_advance(&clk, (int64_t)1000 * 1000 * 1000 * 1000);
    assert_true(touch(s, "b"));
    store_get(s, "b", 1, &e);
    assert_int_equal(store_entry_expires_at(e), 0);
    store_entry_release(e);
    /* A huge TTL saturates instead of wrapping into the past. */
    put_str(s, "d", "1", INT64_MAX);
    assert_true(has(s, "d"));
    store_free(s);
}

static void test_ttl_maintain_reclaims(void **state)
{
    (void)state;
    vclock_t clk = {1000};
    store_config_t cfg = {.clock = vclock_read, .clock_ctx = &clk, .shards = 4};
    store_t *s = store_new(&cfg);
    char k[32];
    for (int i = 0; i < 3000; i++) {
        key_of(k, sizeof k, "t", i);
        put_str(s, k, "some value bytes", 50);
    }
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, "p", i);
        put_str(s, k, "some value bytes", 0);
    }
    store_stats_t before, after;
    store_get_stats(s, &before);
    assert_int_equal(store_maintain(s, 1000000), 0);
    vclock_advance(&clk, 50);
    size_t n = 0;
    for (int round = 0; round < 10 && n < 3000; round++) n += store_maintain(s, 1000000);
    assert_int_equal(n, 3000);
    store_maintain(s, 1000000); /* and shrinks the emptied bucket arrays */
    store_get_stats(s, &after);
    assert_int_equal(after.entries, 100);
    assert_int_equal(after.expirations, 3000);
    assert_true(after.bytes < before.bytes / 10);
    assert_accounting(s);
    store_free(s);
}

/* An entry with a stale window: invisible once expired, but kept for
 * store_get_stale (an origin's stale-if-error fallback) until the window
 * closes; a delete removes it like a live one. */
static void test_stale_window(void **state)
{
    (void)state;
    vclock_t clk = {1000};
    store_config_t cfg = {.clock = vclock_read, .clock_ctx = &clk};
    store_t *s = store_new(&cfg);
    store_put_args_t a = {.key = "k", .key_len = 1, .value = "v1", .value_len = 2, .ttl_ms = 100,
                          .version = 7, .stale_ms = 50};
    assert_int_equal(store_put(s, &a, NULL), STORE_OK);
    a.key = "d";
    assert_int_equal(store_put(s, &a, NULL), STORE_OK);
    store_entry_t *e;
    vclock_advance(&clk, 100);
    assert_false(has(s, "k"));
    assert_false(touch(s, "k"));
    assert_int_equal(store_get_stale(s, "k", 1, &e), STORE_OK);
    assert_int_equal(store_entry_version(e), 7);
    assert_int_equal(store_entry_expires_at(e), 1100);
    store_entry_release(e);
    /* Maintenance leaves it within the window; scans do not see it. */
    assert_int_equal(store_maintain(s, 1000000), 0);
    sum_ctx_t c = {0};
    store_scan(s, 0, NULL, 0, 100, sum_cb, &c);
    assert_int_equal(c.n, 0);
    /* A delete takes the stale copy too: an invalidated value is not a
     * fallback. */
    store_delete_versioned(s, "d", 1, STORE_DELETE_IF_OLDER, 8);
    assert_int_equal(store_get_stale(s, "d", 1, &e), STORE_NOT_FOUND);
    vclock_advance(&clk, 49);
    assert_int_equal(store_get_stale(s, "k", 1, &e), STORE_OK);
    store_entry_release(e);
    vclock_advance(&clk, 1);
    assert_int_equal(store_get_stale(s, "k", 1, &e), STORE_NOT_FOUND);
    store_stats_t st;
    store_get_stats(s, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.expirations, 2);
    assert_accounting(s);
    store_free(s);
}

/* ---- limits ---- */

static void test_entry_limit(void **state)
{
    (void)state;
    store_config_t cfg = {.max_entries = 4096};
    store_t *s = store_new(&cfg);
    char k[32];
    for (int i = 0; i < 20000; i++) {
        key_of(k, sizeof k, "k", i);
        assert_int_equal(put_str(s, k, "v", 0), STORE_OK);
        assert_true(store_entry_count(s) <= 4096);
    }
    store_stats_t st;
    store_get_stats(s, &st);
    assert_int_equal(st.shards, 16);
    assert_true(st.entries > 4096 / 2);
    assert_int_equal(st.evictions, 20000 - st.entries);
    assert_accounting(s);
    store_free(s);
}

/* dcache-node's defaults: no entry limit, memory alone binds. A working set
 * far over the old 10000-entry default stays whole while it fits. */
static void test_no_entry_limit(void **state)
{
    (void)state;
    store_config_t cfg = {.max_entries = 0, .max_bytes = 512u << 20};
    store_t *s = store_new(&cfg);
    assert_non_null(s);
    char k[32];
    for (int i = 0; i < 100000; i++) {
        key_of(k, sizeof k, "k", i);
        assert_int_equal(put_str(s, k, "value", 0), STORE_OK);
    }
    store_stats_t st;
    store_get_stats(s, &st);
    assert_int_equal(st.entries, 100000);
    assert_int_equal(st.evictions, 0);
    assert_true(st.bytes <= 512u << 20);
    for (int i = 0; i < 100000; i += 997) {
        key_of(k, sizeof k, "k", i);
        assert_true(has(s, k));
    }
    assert_accounting(s);
    store_free(s);
}

static void test_byte_limit(void **state)
{
    (void)state;
    const size_t max = 4u << 20;
    for (int p = 0; p < 2; p++) {
        store_config_t cfg = {.max_bytes = max, .policy = (store_policy_t)p, .seed = 3};
        store_t *s = store_new(&cfg);
        char k[32], v[300];
        memset(v, 'x', sizeof v);
        for (int i = 0; i < 60000; i++) {
            key_of(k, sizeof k, "k", i);
            assert_int_equal(put_full(s, k, strlen(k), v, (size_t)(i % 300), 0, 0), STORE_OK);
            if (i % 97 == 0) {
                store_stats_t st;
                store_get_stats(s, &st);
                assert_true(st.bytes <= max);
            }
        }
        store_stats_t st;
        store_get_stats(s, &st);
        assert_int_equal(st.shards, 4); /* 1 MiB minimum share */
        assert_true(st.bytes <= max);
        assert_true(st.bytes > max / 2);
        assert_true(st.evictions > 0);
        /* A value bigger than one shard's share cannot be stored. */
        char *big = calloc(1, 2u << 20);
        assert_int_equal(put_full(s, "big", 3, big, 2u << 20, 0, 0), STORE_TOO_LARGE);
        free(big);
        assert_accounting(s);
        store_free(s);
    }
}

static void test_shard_policy(void **state)
{
    (void)state;
    struct { store_config_t cfg; unsigned want; } cases[] = {
        {{.max_entries = 0}, 16},
        {{.shards = 3}, 2},
        {{.shards = 1000}, 256},
        {{.max_entries = 1000}, 2},
        {{.max_entries = 10}, 1},
        {{.max_bytes = 100000}, 1},
        {{.max_bytes = 64u << 20, .max_value_bytes = 8u << 20}, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        store_t *s = store_new(&cases[i].cfg);
        store_stats_t st;
        store_get_stats(s, &st);
        assert_int_equal(st.shards, cases[i].want);
        store_free(s);
    }
}

/* ---- keys and values ---- */

static void test_binary_keys(void **state)
{
    (void)state;
    store_t *s = store_new(NULL);
    store_entry_t *e;
    assert_int_equal(put_full(s, "a\0b", 3, "1", 1, 0, 0), STORE_OK);
    assert_int_equal(put_full(s, "a\0c", 3, "2", 1, 0, 0), STORE_OK);
    assert_int_equal(put_full(s, "a", 1, "3", 1, 0, 0), STORE_OK);
    assert_int_equal(store_get(s, "a\0c", 3, &e), STORE_OK);
    size_t len;
    assert_memory_equal(store_entry_value(e, &len), "2", 1);
    assert_memory_equal(store_entry_key(e, &len), "a\0c", 3);
    assert_int_equal(len, 3);
    store_entry_release(e);
    assert_int_equal(store_entry_count(s), 3);

    char big[1025];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    assert_int_equal(put_full(s, big, 1024, "x", 1, 0, 0), STORE_OK);
    assert_int_equal(store_get(s, big, 1024, &e), STORE_OK);
    store_entry_release(e);
    assert_int_equal(put_full(s, big, 1025, "x", 1, 0, 0), STORE_BAD_KEY);
    assert_int_equal(put_full(s, big, 0, "x", 1, 0, 0), STORE_BAD_KEY);
    assert_int_equal(store_get(s, big, 1025, &e), STORE_BAD_KEY);
    assert_null(e);
    assert_int_equal(store_get(s, big, 0, &e), STORE_BAD_KEY);
    assert_int_equal(store_peek(s, NULL, 3, &e), STORE_BAD_KEY);
    assert_false(store_delete(s, big, 1025));
    assert_true(store_delete(s, "a\0b", 3));
    assert_false(store_delete(s, "a\0b", 3));
    assert_true(has(s, "a"));
    store_free(s);
}

static void test_value_limits_and_ctype(void **state)
{
    (void)state;
    store_config_t cfg = {.max_value_bytes = 1000};
    store_t *s = store_new(&cfg);
    char v[1001] = {0};
    assert_int_equal(put_full(s, "k", 1, v, 1000, 0, 0), STORE_OK);
    assert_int_equal(put_full(s, "k", 1, v, 1001, 0, 0), STORE_TOO_LARGE);
    assert_int_equal(put_full(s, "empty", 5, NULL, 0, 0, 0), STORE_OK);
    assert_int_equal(put_full(s, "nullv", 5, NULL, 3, 0, 0), STORE_BAD_KEY);
    assert_int_equal(put_full(s, "neg", 3, "v", 1, -1, 0), STORE_BAD_KEY);

    char ct[256];
    memset(ct, 'c', sizeof ct);
    store_put_args_t a = {.key = "ct", .key_len = 2, .value = "v", .value_len = 1,
                          .content_type = ct, .content_type_len = 256};
    assert_int_equal(store_put(s, &a, NULL), STORE_TOO_LARGE);
    a.content_type_len = 255;
    assert_int_equal(store_put(s, &a, NULL), STORE_OK);
    store_entry_t *e;
    size_t len;
    assert_int_equal(store_get(s, "ct", 2, &e), STORE_OK);
    assert_memory_equal(store_entry_content_type(e, &len), ct, 255);
    assert_int_equal(len, 255);
    assert_memory_equal(store_entry_value(e, &len), "v", 1);
    store_entry_release(e);
    a.content_type = "";
    a.content_type_len = 0;
    store_put(s, &a, NULL);
    assert_int_equal(store_get(s, "ct", 2, &e), STORE_OK);
    assert_null(store_entry_content_type(e, &len));
    assert_int_equal(len, 0);
    store_entry_release(e);
    assert_int_equal(store_get(s, "empty", 5, &e), STORE_OK);
    store_entry_value(e, &len);
    assert_int_equal(len, 0);
    store_entry_release(e);
    store_free(s);
}

static void test_bad_input(void **state)
{
    (void)state;
    store_entry_t *e = (store_entry_t *)&e;
    store_put_args_t a = {.key = "k", .key_len = 1};
    assert_int_equal(store_get(NULL, "k", 1, &e), STORE_BAD_KEY);
    assert_null(e);
    assert_int_equal(store_put(NULL, &a, NULL), STORE_BAD_KEY);
    store_t *s = store_new(NULL);
    assert_int_equal(store_put(s, NULL, NULL), STORE_BAD_KEY);
    assert_int_equal(store_get(s, "k", 1, NULL), STORE_BAD_KEY);
    assert_false(store_delete(NULL, "k", 1));
    assert_int_equal(store_delete_matching(s, NULL, 3), 0);
    assert_int_equal(store_delete_matching(s, "", 0), 0);
    assert_int_equal(store_scan(s, 0, NULL, 0, 10, NULL, NULL), 0);
    sum_ctx_t c = {0};
    /* A garbage cursor is just a position, never a crash. */
    for (uint64_t cur = 0xdeadbeefcafebabeull, i = 0; cur != 0 && i < 100000; i++)
        cur = store_scan(s, cur, NULL, 0, 10, sum_cb, &c);
    assert_int_equal(store_maintain(NULL, 10), 0);
    store_entry_release(NULL);
    store_free(NULL);
    store_free(s);
}

/* ---- versions and references ---- */

static void test_delete_versioned(void **state)
{
    (void)state;
    vclock_t clk = {100};
    store_config_t cfg = {.clock = vclock_read, .clock_ctx = &clk};
    store_t *s = store_new(&cfg);
    store_put_args_t a = {.key = "k", .key_len = 1, .value = "seven", .value_len = 5, .version = 7};
    assert_int_equal(store_put(s, &a, NULL), STORE_OK);
    /* A handoff drop of another version, a delete older than the value: kept. */
    assert_false(store_delete_versioned(s, "k", 1, STORE_DELETE_IF_VERSION, 6));
    assert_false(store_delete_versioned(s, "k", 1, STORE_DELETE_IF_OLDER, 6));
    assert_value(s, "k", "seven");
    assert_true(store_delete_versioned(s, "k", 1, STORE_DELETE_IF_VERSION, 7));
    assert_int_equal(store_entry_count(s), 0);
    assert_int_equal(store_put(s, &a, NULL), STORE_OK);
    assert_true(store_delete_versioned(s, "k", 1, STORE_DELETE_IF_OLDER, 7));
    assert_false(store_delete_versioned(s, "absent", 6, STORE_DELETE_ANY, 0));
    store_free(s);
}

static void test_put_if_newer(void **state)
{
    (void)state;
    vclock_t clk = {100};
    store_config_t cfg = {.clock = vclock_read, .clock_ctx = &clk};
    store_t *s = store_new(&cfg);
    store_put_args_t a = {.key = "k", .key_len = 1, .value = "five", .value_len = 4, .version = 5};
    bool replaced = true;
    assert_int_equal(store_put_if_newer(s, &a, &replaced), STORE_OK);
    assert_false(replaced);
    a.value = "four";
    a.version = 4;
    assert_int_equal(store_put_if_newer(s, &a, &replaced), STORE_STALE);
    assert_value(s, "k", "five");
    a.value = "fiv2";
    a.version = 5;
    assert_int_equal(store_put_if_newer(s, &a, &replaced), STORE_OK);
    assert_true(replaced);
    a.value = "six!";
    a.version = 6;
    assert_int_equal(store_put_if_newer(s, &a, NULL), STORE_OK);
    store_entry_t *e;
    store_get(s, "k", 1, &e);
    assert_int_equal(store_entry_version(e), 6);
    store_entry_release(e);
    a.value = "one!";
    a.version = 1;
    assert_int_equal(store_put(s, &a, NULL), STORE_OK); /* plain put always wins */
    assert_value(s, "k", "one!");
    /* An expired entry's version no longer counts. */
    a.version = 9;
    a.ttl_ms = 10;
    store_put(s, &a, NULL);
    vclock_advance(&clk, 10);
    a.version = 1;
    assert_int_equal(store_put_if_newer(s, &a, &replaced), STORE_OK);
    assert_false(replaced);
    store_free(s);
}

static void test_refs_survive_delete_and_eviction(void **state)
{
    (void)state;
    store_config_t cfg = {.max_entries = 8, .shards = 1};
    store_t *s = store_new(&cfg);
    put_str(s, "k", "original", 0);
    store_entry_t *a, *b;
    assert_int_equal(store_get(s, "k", 1, &a), STORE_OK);
    assert_int_equal(store_peek(s, "k", 1, &b), STORE_OK);
    size_t before = store_entry_size(a);
    assert_true(store_delete(s, "k", 1));
    store_stats_t st;
    store_get_stats(s, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, st.buckets * sizeof(void *)); /* bytes left with the entry */
    put_str(s, "k", "replacement", 0);
    store_entry_t *c;
    store_get(s, "k", 1, &c);
    char k[32];
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, "x", i);
        put_str(s, k, "filler", 0);
    }
    assert_false(has(s, "k")); /* evicted while still referenced */
    size_t len;
    assert_memory_equal(store_entry_value(a, &len), "original", 8);
    assert_memory_equal(store_entry_value(c, &len), "replacement", 11);
    assert_int_equal(store_entry_size(a), before);
    store_entry_release(a);
    assert_memory_equal(store_entry_key(b, &len), "k", 1);
    store_entry_release(b);
    store_free(s); /* `c` outlives the store itself */
    assert_memory_equal(store_entry_value(c, &len), "replacement", 11);
    store_entry_release(c);
}

/* ---- growth and scanning ---- */

static void test_rehash_under_load(void **state)
{
    (void)state;
    const int n = 200000;
    store_config_t cfg = {.shards = 4, .seed = 11};
    store_t *s = store_new(&cfg);
    char k[32];
    uint64_t rng = 1;
    for (int i = 0; i < n; i++) {
        key_of(k, sizeof k, "r", i);
        assert_int_equal(put_str(s, k, k, 0), STORE_OK);
        assert_value(s, k, k);
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        key_of(k, sizeof k, "r", (int)((rng >> 33) % (uint64_t)(i + 1)));
        assert_true(has(s, k));
        if (i % 997 == 0) store_maintain(s, 50);
        if (i % 25000 == 24999) {
            for (int j = 0; j <= i; j++) {
                key_of(k, sizeof k, "r", j);
                assert_true(has(s, k));
            }
        }
    }
    store_stats_t st;
    store_get_stats(s, &st);
    assert_int_equal(st.entries, n);
    assert_true(st.rehash_steps > 0);
    assert_true(st.buckets >= (uint64_t)n / 2);
    assert_accounting(s);
    store_free(s);
}

typedef struct seen {
    uint32_t *count; /* per key index */
    int n;
    const char *prefix;
    size_t reported;
} seen_t;

static void seen_cb(const store_entry_t *e, void *ctx)
{
    seen_t *sn = ctx;
    size_t len;
    const char *key = store_entry_key(e, &len);
    size_t plen = strlen(sn->prefix);
    sn->reported++;
    if (len != plen + 8 || memcmp(key, sn->prefix, plen) != 0) return;
    int idx = atoi(key + plen);
    if (idx >= 0 && idx < sn->n) sn->count[idx]++;
}

static void test_scan_across_rehash(void **state)
{
    (void)state;
    const int n = 1000;
    store_config_t cfg = {.shards = 2, .seed = 5};
    store_t *s = store_new(&cfg);
    char k[32];
    for (int i = 0; i < n; i++) {
        key_of(k, sizeof k, "o", i);
        put_str(s, k, "v", 0);
    }
    seen_t sn = {.count = calloc(n, sizeof(uint32_t)), .n = n, .prefix = "o"};
    uint64_t cur = 0;
    int calls = 0;
    do {
        cur = store_scan(s, cur, NULL, 0, 10, seen_cb, &sn);
        calls++;
        if (calls == 5) { /* grow; stop right after a resize has started */
            store_stats_t st;
            uint64_t prev = 0;
            int i = 0;
            do {
                key_of(k, sizeof k, "g", i++);
                put_str(s, k, "v", 0);
                prev = i == 1 ? UINT64_MAX : st.buckets;
                store_get_stats(s, &st);
            } while (i < 5000 || st.buckets <= prev);
        }
        if (calls == 30) store_maintain(s, 1000000); /* finish the growth */
        if (calls == 60) { /* shrink again under the cursor */
            store_delete_matching(s, "g*", 2);
            store_maintain(s, 1);
        }
    } while (cur != 0);
    for (int i = 0; i < n; i++) assert_true(sn.count[i] >= 1);
    assert_true(calls > 60);

    /* Without resizing, each key is reported exactly once. */
    memset(sn.count, 0, n * sizeof(uint32_t));
    store_maintain(s, 1000000);
    cur = 0;
    do cur = store_scan(s, cur, "o*", 2, 7, seen_cb, &sn);
    while (cur != 0);
    for (int i = 0; i < n; i++) assert_int_equal(sn.count[i], 1);
    free(sn.count);
    store_free(s);
}

static void test_scan_patterns_and_delete_matching(void **state)
{
    (void)state;
    store_t *s = store_new(NULL);
    char k[32];
    for (int i = 1; i <= 100; i++) {
        snprintf(k, sizeof k, "user:%d", i);
        put_str(s, k, "v", 0);
        snprintf(k, sizeof k, "item:%d", i);
        put_str(s, k, "v", 0);
    }
    put_full(s, "user:\0bin", 9, "v", 1, 0, 0);
    seen_t sn = {.count = calloc(1, sizeof(uint32_t)), .n = 0, .prefix = "-"};
    uint64_t cur = 0;
    do cur = store_scan(s, cur, "user:*", 6, 3, seen_cb, &sn);
    while (cur != 0);
    assert_int_equal(sn.reported, 101);
    /* A limit bounds each call: at most the limit plus one bucket's worth. */
    sn.reported = 0;
    cur = store_scan(s, 0, NULL, 0, 5, seen_cb, &sn);
    assert_true(cur != 0);
    assert_true(sn.reported >= 5 && sn.reported < 20);

    assert_int_equal(store_delete_matching(s, "user:1*", 7), 12); /* 1, 10-19, 100 */
    assert_false(has(s, "user:15"));
    assert_true(has(s, "user:2"));
    assert_int_equal(store_delete_matching(s, "item:5", 6), 1);       /* literal: direct */
    assert_int_equal(store_delete_matching(s, "item:5", 6), 0);
    assert_int_equal(store_delete_matching(s, "item:[0-4]", 10), 4); /* 1..4 */
    assert_int_equal(store_delete_matching(s, "nothing*", 8), 0);
    assert_int_equal(store_entry_count(s), 201 - 12 - 1 - 4);
    assert_int_equal(store_delete_matching(s, "*", 1), 201 - 12 - 1 - 4);
    assert_int_equal(store_entry_count(s), 0);
    assert_accounting(s);
    free(sn.count);
    store_free(s);
}

static void test_shrink_after_mass_delete(void **state)
{
    (void)state;
    store_config_t cfg = {.shards = 1};
    store_t *s = store_new(&cfg);
    char k[32];
    for (int i = 0; i < 50000; i++) {
        key_of(k, sizeof k, "s", i);
        put_str(s, k, "v", 0);
    }
    store_stats_t st;
    store_get_stats(s, &st);
    assert_true(st.buckets >= 50000);
    assert_int_equal(store_delete_matching(s, "s*", 2), 50000);
    for (int i = 0; i < 20; i++) store_maintain(s, 1000000);
    store_get_stats(s, &st);
    assert_true(st.buckets <= 64);
    assert_int_equal(st.bytes, st.buckets * sizeof(void *));
    store_free(s);
}

/* ---- concurrency ---- */

#define CONC_KEYS 3000
#define CONC_OPS 60000

typedef struct conc {
    store_t *s;
    size_t max_entries;
    size_t max_bytes;
    int id;
    _Atomic int *failures;
} conc_t;

static void conc_scan_cb(const store_entry_t *e, void *ctx)
{
    _Atomic int *failures = ctx;
    size_t klen, vlen;
    const char *k = store_entry_key(e, &klen);
    const char *v = store_entry_value(e, &vlen);
    if (vlen < klen || memcmp(k, v, klen) != 0) atomic_fetch_add(failures, 1);
}

static void *conc_thread(void *arg)
{
    conc_t *c = arg;
    uint64_t rng = 0x1234567ull * (uint64_t)(c->id + 1);
    char k[32], v[600];
    uint64_t cur = 0;
    for (int op = 0; op < CONC_OPS; op++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int key = (int)(rng % CONC_KEYS);
        key_of(k, sizeof k, "c", key);
        size_t klen = strlen(k);
        unsigned what = (unsigned)(rng >> 40) % 16;
        if (what < 6) {
            /* The value starts with the key so readers can check integrity. */
            size_t vlen = klen + (size_t)((rng >> 20) % 500);
            memcpy(v, k, klen);
            memset(v + klen, 'a' + c->id, vlen - klen);
            store_put_args_t a = {.key = k, .key_len = klen, .value = v, .value_len = vlen,
                                  .version = rng, .ttl_ms = (rng & 1) ? 1000 : 0};
            store_status_t st = (what & 1) ? store_put_if_newer(c->s, &a, NULL) : store_put(c->s, &a, NULL);
            if (st != STORE_OK && st != STORE_STALE) atomic_fetch_add(c->failures, 1);
        } else if (what < 12) {
            store_entry_t *e;
            if (store_get(c->s, k, klen, &e) == STORE_OK) {
                conc_scan_cb(e, c->failures);
                store_entry_release(e);
            }
        } else if (what < 14) {
            store_delete(c->s, k, klen);
        } else if (what < 15) {
            cur = store_scan(c->s, cur, (rng & 2) ? "c0000*" : NULL, (rng & 2) ? 6 : 0, 16,
                             conc_scan_cb, c->failures);
        } else if (op % 64 == 0) {
            if (c->id == 0) store_maintain(c->s, 200);
            else if (op % 4096 == 0) store_delete_matching(c->s, "c00001*", 7);
        }
        if (op % 256 == 0) {
            store_stats_t st;
            store_get_stats(c->s, &st);
            if (st.entries > c->max_entries || st.bytes > c->max_bytes) atomic_fetch_add(c->failures, 1);
        }
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    for (int p = 0; p < 2; p++) {
        vclock_t clk = {1000};
        store_config_t cfg = {.max_entries = 2048, .max_bytes = 2u << 20, .shards = 4,
                              .policy = (store_policy_t)p, .clock = vclock_read, .clock_ctx = &clk};
        store_t *s = store_new(&cfg);
        _Atomic int failures = 0;
        store_stats_t after;
        pthread_t th[4];
        conc_t c[4];
        for (int i = 0; i < 4; i++) {
            c[i] = (conc_t){.s = s, .max_entries = 2048, .max_bytes = 2u << 20, .id = i,
                            .failures = &failures};
            assert_int_equal(pthread_create(&th[i], NULL, conc_thread, &c[i]), 0);
        }
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&failures), 0);
        assert_accounting(s);
        store_stats_t st;
        store_get_stats(s, &st);
        assert_true(st.entries <= 2048);
        assert_true(st.evictions > 0);
        /* Half the keys had a TTL: after it, maintenance takes them away. */
        vclock_advance(&clk, 1000);
        size_t expired = 0, n;
        while ((n = store_maintain(s, 10000000)) > 0) expired += n;
        assert_true(expired > 0);
        store_stats_t mid;
        store_get_stats(s, &mid);
        assert_int_equal(mid.entries + expired, st.entries);
        size_t live = store_delete_matching(s, "*", 1);
        store_get_stats(s, &after);
        assert_int_equal(live + (after.expirations - mid.expirations), mid.entries);
        st = after;
        assert_int_equal(st.entries, 0);
        assert_int_equal(st.bytes, st.buckets * sizeof(void *));
        store_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_exact_order),
        cmocka_unit_test(test_lru_replace_refreshes),
        cmocka_unit_test(test_lfu_hot_survive),
        cmocka_unit_test(test_lfu_decay),
        cmocka_unit_test(test_ttl_virtual_time),
        cmocka_unit_test(test_ttl_maintain_reclaims),
        cmocka_unit_test(test_stale_window),
        cmocka_unit_test(test_entry_limit),
        cmocka_unit_test(test_no_entry_limit),
        cmocka_unit_test(test_byte_limit),
        cmocka_unit_test(test_shard_policy),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_value_limits_and_ctype),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_put_if_newer),
        cmocka_unit_test(test_delete_versioned),
        cmocka_unit_test(test_refs_survive_delete_and_eviction),
        cmocka_unit_test(test_rehash_under_load),
        cmocka_unit_test(test_scan_across_rehash),
        cmocka_unit_test(test_scan_patterns_and_delete_matching),
        cmocka_unit_test(test_shrink_after_mass_delete),
        cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
