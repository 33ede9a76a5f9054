/* config: defaults, precedence of flags over DCACHE_* over the seed's
 * variable names, value parsing, and clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/core/config.h"

static config_result_t load(config_t *cfg, int argc, char **argv, char **env, char *errbuf, size_t errcap)
{
    FILE *out = fopen("/dev/null", "w");
    FILE *err = fmemopen(errbuf, errcap, "w");
    config_result_t r = config_load(cfg, argc, argv, env, out, err);
    fclose(out);
    fclose(err);
    return r;
}

static void test_defaults(void **state)
{
    config_t c;
    char *argv[] = {"dcache-node"};
    char *env[] = {NULL};
    char err[256] = "";
    assert_int_equal(load(&c, 1, argv, env, err, sizeof err), CONFIG_OK);
    assert_string_equal(c.http_host, "127.0.0.1");
    assert_int_equal(c.http_port, 8080);
    assert_int_equal(c.l1_max_entries, 0); /* no entry limit: memory binds */
    assert_int_equal(c.l1_max_memory, 512ull << 20);
    assert_int_equal(c.max_value_size, 8ull << 20);
    assert_string_equal(c.eviction, "lru");
    assert_int_equal(c.default_ttl_ms, 3600000);
    assert_int_equal(c.metrics_interval_ms, 5000);
    assert_int_equal(c.cluster_port, 7946);
    assert_true(c.peer_shared);
    config_free(&c);
}

static void test_precedence(void **state)
{
    config_t c;
    char err[256] = "";
    char *env[] = {"L1_CACHE_MAX_SIZE=5", "CACHE_EVICTION_POLICY=lfu", "CACHE_MANAGER_PORT=9000",
                   "DCACHE_HTTP_PORT=9001", "L2_CACHE_DEFAULT_TTL=60", "METRICS_COLLECTION_INTERVAL=1000", NULL};
    char *argv[] = {"dcache-node", "--http-port", "9002"};
    assert_int_equal(load(&c, 3, argv, env, err, sizeof err), CONFIG_OK);
    assert_int_equal(c.l1_max_entries, 5);       /* seed name */
    assert_string_equal(c.eviction, "lfu");      /* seed name */
    assert_int_equal(c.http_port, 9002);         /* flag beats both variables */
    assert_int_equal(c.default_ttl_ms, 60000);   /* seed TTL is in seconds */
    assert_int_equal(c.metrics_interval_ms, 1000); /* seed interval is in ms */
    config_free(&c);
    char *argv2[] = {"dcache-node"};
    assert_int_equal(load(&c, 1, argv2, env, err, sizeof err), CONFIG_OK);
    assert_int_equal(c.http_port, 9001);         /* DCACHE_* beats the seed name */
    config_free(&c);
}

static void test_values(void **state)
{
    config_t c;
    char err[256] = "";
    char *env[] = {NULL};
    char *argv[] = {"dcache-node", "--l1-max-memory=2gb", "--default-ttl", "10m", "--header-timeout=500ms",
                    "--max-value-size", "64k"};
    assert_int_equal(load(&c, 7, argv, env, err, sizeof err), CONFIG_OK);
    assert_int_equal(c.l1_max_memory, 2ull << 30);
    assert_int_equal(c.default_ttl_ms, 600000);
    assert_int_equal(c.header_timeout_ms, 500);
    assert_int_equal(c.max_value_size, 65536);
    config_free(&c);
    /* An entry limit when asked for, and 0 (no limit) spelled out. */
    char *argv2[] = {"dcache-node", "--l1-max-entries", "250000"};
    assert_int_equal(load(&c, 3, argv2, env, err, sizeof err), CONFIG_OK);
    assert_int_equal(c.l1_max_entries, 250000);
    config_free(&c);
    char *argv3[] = {"dcache-node", "--l1-max-entries=0"};
    char *env3[] = {"L1_CACHE_MAX_SIZE=10000", NULL};
    assert_int_equal(load(&c, 2, argv3, env3, err, sizeof err), CONFIG_OK);
    assert_int_equal(c.l1_max_entries, 0);
    config_free(&c);
    uint64_t v;
    assert_true(config_parse_size("512mb", &v) && v == 512ull << 20);
    assert_false(config_parse_size("12xb", &v));
    assert_false(config_parse_size("-1", &v));
    assert_false(config_parse_size("99999999999999999999gb", &v));
    assert_true(config_parse_duration("2h", 1000, &v) && v == 7200000);
    assert_true(config_parse_duration("7", 1000, &v) && v == 7000);
    assert_false(config_parse_duration("7 s", 1000, &v));
}

/* One port per node by default: the peer channel shares the cluster port
 * unless --peer-port names another (0: a free one). */
static void test_peer_port(void **state)
{
    (void)state;
    config_t c;
    char err[256] = "";
    char *env[] = {NULL};
    char *argv[] = {"dcache-node", "--cluster-port", "7000"};
    assert_int_equal(load(&c, 3, argv, env, err, sizeof err), CONFIG_OK);
    assert_true(c.peer_shared);
    assert_int_equal(c.peer_port, 7000);
    config_free(&c);
    char *argv2[] = {"dcache-node", "--cluster-port", "7000", "--peer-port", "7001"};
    assert_int_equal(load(&c, 5, argv2, env, err, sizeof err), CONFIG_OK);
    assert_false(c.peer_shared);
    assert_int_equal(c.peer_port, 7001);
    config_free(&c);
    char *argv3[] = {"dcache-node", "--cluster-port=0", "--peer-port=0"};
    assert_int_equal(load(&c, 3, argv3, env, err, sizeof err), CONFIG_OK);
    assert_false(c.peer_shared); /* a free port of its own */
    assert_int_equal(c.peer_port, 0);
    config_free(&c);
    char *argv4[] = {"dcache-node", "--cluster-port=7000", "--peer-port=7000"};
    assert_int_equal(load(&c, 3, argv4, env, err, sizeof err), CONFIG_OK);
    assert_true(c.peer_shared); /* the cluster port named twice: shared, not a clash */
    config_free(&c);
    char *env5[] = {"DCACHE_PEER_PORT=7005", NULL};
    char *argv5[] = {"dcache-node"};
    assert_int_equal(load(&c, 1, argv5, env5, err, sizeof err), CONFIG_OK);
    assert_false(c.peer_shared);
    assert_int_equal(c.peer_port, 7005);
    config_free(&c);
    char *env6[] = {"DCACHE_PEER_PORT=", NULL};
    assert_int_equal(load(&c, 1, argv5, env6, err, sizeof err), CONFIG_OK);
    assert_true(c.peer_shared); /* empty is none, as the default */
    assert_int_equal(c.peer_port, 7946);
    config_free(&c);
}

static void expect_error(int argc, char **argv, char **env, const char *needle)
{
    config_t c;
    char err[512] = "";
    assert_int_equal(load(&c, argc, argv, env, err, sizeof err), CONFIG_ERROR);
    if (!strstr(err, needle)) fail_msg("error '%s' does not mention '%s'", err, needle);
    config_free(&c);
}

static void test_errors(void **state)
{
    char *env[] = {NULL};
    expect_error(2, (char *[]){"n", "--bogus"}, env, "unknown option '--bogus'");
    expect_error(2, (char *[]){"n", "--http-port"}, env, "needs a value");
    expect_error(3, (char *[]){"n", "--http-port", "70000"}, env, "out of range");
    expect_error(3, (char *[]){"n", "--http-port", "eighty"}, env, "expected a whole number");
    expect_error(3, (char *[]){"n", "--peer-port", "70000"}, env, "out of range");
    expect_error(2, (char *[]){"n", "--eviction=fifo"}, env, "not a policy");
    expect_error(2, (char *[]){"n", "--log-level=loud"}, env, "not a level");
    expect_error(2, (char *[]){"n", "--l1-max-memory=lots"}, env, "expected a size");
    expect_error(3, (char *[]){"n", "--max-value-size", "9mb"}, env, "in one peer frame");
    expect_error(5, (char *[]){"n", "--l1-max-memory", "1mb", "--max-value-size", "2mb"}, env,
                 "larger than --l1-max-memory");
    expect_error(2, (char *[]){"n", "stray"}, env, "unexpected argument");
    char *bad_env[] = {"L1_CACHE_MAX_SIZE=many", NULL};
    expect_error(1, (char *[]){"n"}, bad_env, "environment L1_CACHE_MAX_SIZE");
}

static void test_redis_url(void **state)
{
    (void)state;
    config_redis_t r;
    assert_true(config_parse_redis_url("redis://127.0.0.1:6380/2", &r));
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 6380);
    assert_int_equal(r.db, 2);
    assert_string_equal(r.password, "");
    assert_true(config_parse_redis_url("redis://alice:s3cr:et@redis.local", &r));
    assert_string_equal(r.user, "alice");
    assert_string_equal(r.password, "s3cr:et");
    assert_string_equal(r.host, "redis.local");
    assert_int_equal(r.port, 6379);
    assert_true(config_parse_redis_url("redis://:pw@[::1]:7000/", &r));
    assert_string_equal(r.user, "");
    assert_string_equal(r.password, "pw");
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 7000);
    assert_true(config_parse_redis_url("10.0.0.5:6400", &r));
    assert_int_equal(r.port, 6400);
    assert_false(config_parse_redis_url("redis://", &r));
    assert_false(config_parse_redis_url("redis://h:0", &r));
    assert_false(config_parse_redis_url("redis://h:70000", &r));
    assert_false(config_parse_redis_url("redis://h:6379/x", &r));
    assert_false(config_parse_redis_url("redis://[::1", &r));
    assert_false(config_parse_redis_url("redis://h:6379junk", &r));

    /* The seed's variables build the URL; --redis wins over them. */
    char *env[] = {"REDIS_HOST=10.1.2.3", "REDIS_PORT=6390", "REDIS_PASSWORD=pw", NULL};
    config_t cfg;
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(config_load(&cfg, 1, (char *[]){"n", NULL}, env, devnull, devnull), CONFIG_OK);
    assert_string_equal(cfg.redis_target.host, "10.1.2.3");
    assert_int_equal(cfg.redis_target.port, 6390);
    assert_string_equal(cfg.redis_target.password, "pw");
    config_free(&cfg);
    assert_int_equal(config_load(&cfg, 3, (char *[]){"n", "--redis", "redis://h2:7001", NULL}, env, devnull, devnull),
                     CONFIG_OK);
    assert_string_equal(cfg.redis_target.host, "h2");
    assert_int_equal(cfg.redis_target.port, 7001);
    config_free(&cfg);
    fclose(devnull);
    char *none[] = {NULL};
    expect_error(3, (char *[]){"n", "--redis", "redis://h:99999"}, none, "is not redis://");
    expect_error(3, (char *[]){"n", "--l2-write-mode", "lazy"}, none, "must be sync or journal");
}

static void test_help_lists_every_option(void **state)
{
    config_t c;
    static char out[32768]; /* the help is over 8 KiB */
    memset(out, 0, sizeof out);
    FILE *o = fmemopen(out, sizeof out, "w");
    FILE *e = fopen("/dev/null", "w");
    char *argv[] = {"dcache-node", "--help"};
    char *env[] = {NULL};
    assert_int_equal(config_load(&c, 2, argv, env, o, e), CONFIG_EXIT_OK);
    fclose(o);
    fclose(e);
    config_free(&c);
    const char *flags[] = {"--http-host", "--http-port", "--workers", "--l1-max-entries", "--l1-max-memory",
                           "--max-value-size", "--eviction", "--default-ttl", "--max-header-size",
                           "--max-request-body", "--header-timeout", "--idle-timeout", "--max-connections",
                           "--log-level", "--metrics-interval", "L1_CACHE_MAX_SIZE", "DCACHE_HTTP_PORT",
                           "--handoff-rate", "--peer-timeout", "--tokens", "--public-read", "--rate-limit",
                           "--cors-origins", "--allow-unsealed", /* the last ones */
                           "0 = no entry limit", "shares --cluster-port's TCP listener"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(out, flags[i])) fail_msg("--help does not mention %s", flags[i]);
}

static void test_security(void **state)
{
    (void)state;
    config_t c;
    char *env[] = {"DCACHE_PUBLIC_READ=yes", NULL};
    char err[512] = "";
    /* A switch alone is on and never eats the next argument. */
    char *a1[] = {"dcache-node", "--tokens", "/x", "--metrics-auth", "--rate-limit", "50:200", "--cors-origins",
                  "https://a.example, http://b.example:8080"};
    assert_int_equal(load(&c, 8, a1, env, err, sizeof err), CONFIG_OK);
    assert_true(c.metrics_auth);
    assert_true(c.public_read);
    assert_false(c.allow_anonymous);
    assert_true(c.rate_rps == 50 && c.rate_burst == 200);
    assert_true(config_origin_listed(c.cors_origins, "http://b.example:8080", 21));
    assert_false(config_origin_listed(c.cors_origins, "https://a.example.evil", 22));
    config_free(&c);

    char *a2[] = {"dcache-node", "--rate-limit", "0.5", "--public-read=false"};
    char *noenv[] = {NULL};
    assert_int_equal(load(&c, 4, a2, noenv, err, sizeof err), CONFIG_OK);
    assert_true(c.rate_rps == 0.5 && c.rate_burst == 1);
    assert_false(c.public_read);
    config_free(&c);

    struct {
        int argc;
        char *argv[6];
        const char *says;
    } bad[] = {
        {3, {"dcache-node", "--http-host", "0.0.0.0"}, "--allow-anonymous"},
        {3, {"dcache-node", "--cluster-host", "10.0.0.1"}, "--cluster-key"},
        {4, {"dcache-node", "--http-host", "10.0.0.1", "--allow-anonymous"}, "--cluster-key"},
        {3, {"dcache-node", "--rate-limit", "0"}, "RPS:BURST"},
        {3, {"dcache-node", "--rate-limit", "5:0"}, "RPS:BURST"},
        {3, {"dcache-node", "--cors-origins", "*"}, "not an origin"},
        {3, {"dcache-node", "--cors-origins", "https://a.example/path"}, "not an origin"},
        {2, {"dcache-node", "--public-read"}, "only means something with --tokens"},
        {2, {"dcache-node", "--metrics-auth=maybe"}, "true or false"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(err, 0, sizeof err);
        config_result_t r = load(&c, bad[i].argc, bad[i].argv, noenv, err, sizeof err);
        config_free(&c);
        if (r != CONFIG_ERROR || !strstr(err, bad[i].says))
            fail_msg("case %zu: expected an error saying '%s', got %d '%s'", i, bad[i].says, r, err);
    }
    /* Off loopback, both switches make an open node start. */
    char *a3[] = {"dcache-node", "--http-host", "0.0.0.0", "--allow-anonymous", "--allow-unsealed"};
    assert_int_equal(load(&c, 5, a3, noenv, err, sizeof err), CONFIG_OK);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_peer_port),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_help_lists_every_option),
        cmocka_unit_test(test_security),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
