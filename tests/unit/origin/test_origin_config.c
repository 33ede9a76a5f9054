/* origin_config: the --origins file's parser and key binding, and the
 * URL expansion of origin.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "node/origin/origin.h"
#include "node/origin/origin_config.h"

static origin_set_t *parse(const char *json, char *err, size_t errlen)
{
    err[0] = '\0';
    return origin_set_parse(json, strlen(json), err, errlen);
}

static void test_parse_and_match(void **state)
{
    (void)state;
    char err[400];
    origin_set_t *s = parse("{\"origins\": ["
                            "{\"name\": \"catalog\", \"type\": \"http\", \"url\": \"http://127.0.0.1:9/i/{rest}\","
                            " \"keys\": [\"products:*\", \"p?:*\"], \"ttl\": \"90s\", \"stale_if_error\": 600,"
                            " \"timeout\": \"250ms\", \"concurrency\": 4, \"max_value_bytes\": \"2kb\","
                            " \"headers\": {\"Authorization\": \"Bearer x\"}},"
                            "{\"name\": \"db\", \"type\": \"postgres\", \"conninfo\": \"host=127.0.0.1\","
                            " \"query\": \"SELECT v FROM t WHERE k = $1\", \"param\": \"rest\", \"keys\": [\"*\"]}]}",
                            err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->n, 2);
    const origin_def_t *c = &s->defs[0];
    assert_string_equal(c->name, "catalog");
    assert_int_equal(c->kind, ORIGIN_KIND_HTTP);
    assert_int_equal(c->ttl_ms, 90000);
    assert_int_equal(c->stale_ms, 600000);
    assert_int_equal(c->timeout_ms, 250);
    assert_int_equal(c->concurrency, 4);
    assert_int_equal(c->max_value_bytes, 2048);
    assert_string_equal(c->headers[0], "Authorization: Bearer x");
    assert_null(c->headers[1]);
    assert_true(s->defs[1].param_rest);
    /* The first origin in file order whose pattern matches; the rest
     * starts after the pattern's literal prefix. */
    size_t rest = 99;
    assert_ptr_equal(origin_set_match(s, "products:42", 11, &rest), c);
    assert_int_equal(rest, 9);
    assert_ptr_equal(origin_set_match(s, "pq:1", 4, &rest), c);
    assert_int_equal(rest, 1);
    assert_ptr_equal(origin_set_match(s, "users:1", 7, &rest), &s->defs[1]);
    assert_int_equal(rest, 0);
    assert_int_equal(origin_set_find(s, "db"), 1);
    assert_int_equal(origin_set_find(s, "nope"), -1);
    assert_null(origin_set_match(NULL, "x", 1, NULL));
    /* References: the set lives until the last one goes. */
    origin_set_t *again = origin_set_ref(s);
    origin_set_unref(s);
    assert_string_equal(again->defs[0].name, "catalog");
    origin_set_unref(again);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[400];
    origin_set_t *s = parse("{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"https://x/{key}\","
                            " \"keys\": [\"a:*\"]}]}", err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->defs[0].ttl_ms, 300000);
    assert_int_equal(s->defs[0].stale_ms, 0);
    assert_int_equal(s->defs[0].timeout_ms, 2000);
    assert_int_equal(s->defs[0].concurrency, 16);
    assert_null(s->defs[0].headers[0]);
    origin_set_unref(s);
    s = parse("{\"origins\": []}", err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->n, 0);
    assert_null(origin_set_match(s, "a:1", 3, NULL));
    origin_set_unref(s);
}

/* Each mistake is refused with a message that names what is wrong. */
static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json, *says;
    } cases[] = {
        {"not json", "not JSON"},
        {"{\"origins\": {}}", "expected {\"origins\""},
        {"{\"origins\": [], \"other\": []}", "nothing else"},
        {"{\"origins\": [1]}", "origins[0] is not an object"},
        {"{\"origins\": [{\"type\": \"http\"}]}", "\"name\""},
        {"{\"origins\": [{\"name\": \"a b\", \"type\": \"http\"}]}", "\"name\""},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"ftp\"}]}", "\"type\" must be"},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"keys\": [\"a:*\"]}]}", "needs a \"url\""},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"ftp://x\", \"keys\": [\"a:*\"]}]}",
         "http:// or https://"},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://x\"}]}", "\"keys\""},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://x\", \"keys\": []}]}", "\"keys\""},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://x\", \"keys\": [\"a\"], \"tll\": 5}]}",
         "\"tll\" is not a field"},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://x\", \"keys\": [\"a\"], "
         "\"ttl\": \"soon\"}]}", "\"ttl\""},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://x\", \"keys\": [\"a\"], "
         "\"concurrency\": 0}]}", "\"concurrency\""},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://x\", \"keys\": [\"a\"], "
         "\"headers\": {\"X\": \"1\\r\\nEvil: 2\"}}]}", "without line breaks"},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://x\", \"keys\": [\"a\"], "
         "\"query\": \"SELECT 1\"}]}", "\"query\" is not a field of a http origin"},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"postgres\", \"conninfo\": \"\", \"keys\": [\"a\"]}]}",
         "\"conninfo\" and \"query\""},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"postgres\", \"conninfo\": \"x\", \"query\": \"q\", "
         "\"param\": \"id\", \"keys\": [\"a\"]}]}", "\"param\""},
        {"{\"origins\": [{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://x\", \"keys\": [\"a\"]},"
         "{\"name\": \"a\", \"type\": \"http\", \"url\": \"http://y\", \"keys\": [\"b\"]}]}", "declared twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[400];
        origin_set_t *s = parse(cases[i].json, err, sizeof err);
        if (s || !strstr(err, cases[i].says))
            fail_msg("case %zu: %s -> [%s], wanted [%s]", i, cases[i].json, err, cases[i].says);
    }
}

static void test_load_file(void **state)
{
    (void)state;
    char err[400];
    assert_null(origin_set_load("/nonexistent/origins.json", err, sizeof err));
    assert_non_null(strstr(err, "cannot open /nonexistent/origins.json"));
}

/* A key cannot reshape the URL: everything but RFC 3986's unreserved
 * characters is percent-encoded. */
static void test_url_expand(void **state)
{
    (void)state;
    char out[128];
    const char *key = "products:a/b c?\xc3\xa9";
    size_t need = origin_url_expand("http://h/i/{rest}?k={key}", key, strlen(key), key + 9, strlen(key) - 9, NULL, 0);
    size_t n = origin_url_expand("http://h/i/{rest}?k={key}", key, strlen(key), key + 9, strlen(key) - 9, out,
                                 sizeof out);
    assert_int_equal(n, need);
    assert_string_equal(out, "http://h/i/a%2Fb%20c%3F%C3%A9?k=products%3Aa%2Fb%20c%3F%C3%A9");
    /* Too small a buffer: cut, terminated, and the length it needed. */
    char small[8];
    assert_int_equal(origin_url_expand("http://h/{key}", "k-._~", 5, "", 0, small, sizeof small), 14);
    assert_string_equal(small, "http://");
    assert_int_equal(origin_url_expand("{key}{key}", "x", 1, "", 0, out, sizeof out), 2);
    assert_string_equal(out, "xx");
}

/* ---- URL templates ---- */

static void expect_expand(const char *tmpl, const char *key, size_t klen, const char *want)
{
    char out[512];
    size_t need = origin_url_expand(tmpl, key, klen, "", 0, NULL, 0);
    assert_int_equal(need, strlen(want));
    memset(out, '#', sizeof out);
    assert_int_equal(origin_url_expand(tmpl, key, klen, "", 0, out, need + 1), need);
    assert_string_equal(out, want);
}

static void test_expand(void **state)
{
    (void)state;
    expect_expand("http://o/v/{key}", "a/b:c d", 7, "http://o/v/a%2Fb%3Ac%20d");
    expect_expand("http://o/v/{key}", "caf\xc3\xa9", 5, "http://o/v/caf%C3%A9");
    expect_expand("/{key}", "AZaz09-._~", 10, "/AZaz09-._~");
    expect_expand("/{key}", "?#%+&=", 6, "/%3F%23%25%2B%26%3D");
    expect_expand("/{key}/{key}?k={key}", "x y", 3, "/x%20y/x%20y?k=x%20y");
    expect_expand("/{key}", "a\0b", 3, "/a%00b");
    expect_expand("/{key}", "", 0, "/");
    expect_expand("/static", "k", 1, "/static");
    expect_expand("/{ke}{KEY}{key", "k", 1, "/{ke}{KEY}{key");
    expect_expand("{{key}}", "k", 1, "{k}");
    expect_expand("", "k", 1, "");

    /* Too small: cut, NUL-terminated, and the whole length returned. */
    char out[8];
    memset(out, '#', sizeof out);
    assert_int_equal(origin_url_expand("http://o/{key}", "a b", 3, "", 0, out, 5), strlen("http://o/a%20b"));
    assert_string_equal(out, "http");
    assert_int_equal(out[5], '#'); /* nothing past cap */
    assert_int_equal(origin_url_expand("/{key}", "a b", 3, "", 0, out, 1), 6);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_match),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_url_expand),
        cmocka_unit_test(test_expand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
