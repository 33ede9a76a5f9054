/* warm_job: a warming job parsed, printed and parsed back, and each
 * mistake refused with a message naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "node/warm/warm_job.h"

static void test_roundtrip(void **state)
{
    (void)state;
    static const char *const jobs[] = {
        "{\"name\":\"a\",\"schedule\":\"*/5 * * * *\",\"source\":{\"keys\":[\"k1\",\"k 2\"]},\"priority\":5,"
        "\"batch_size\":10,\"concurrency\":3,\"enabled\":false}",
        "{\"name\":\"b.c-d_e\",\"source\":{\"pattern\":\"users:*\"}}",
        "{\"name\":\"q\",\"schedule\":\"@every 30s\",\"source\":{\"query\":\"SELECT id FROM t\",\"origin\":\"db\","
        "\"key_prefix\":\"t:\"}}",
        "{\"name\":\"h\",\"source\":{\"hot\":100},\"priority\":-3}",
    };
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
        warm_job_t j, again;
        char err[300];
        if (!warm_job_parse(&j, jobs[i], strlen(jobs[i]), err, sizeof err)) fail_msg("job %zu: %s", i, err);
        sbuf_t b;
        sbuf_init(&b);
        warm_job_json(&j, &b);
        assert_true(warm_job_parse(&again, b.data, b.len, err, sizeof err));
        sbuf_t b2;
        sbuf_init(&b2);
        warm_job_json(&again, &b2);
        assert_int_equal(b.len, b2.len);
        assert_memory_equal(b.data, b2.data, b.len);
        warm_job_t copy;
        assert_true(warm_job_copy(&copy, &j));
        warm_job_clear(&j);
        sbuf_t b3;
        sbuf_init(&b3);
        warm_job_json(&copy, &b3);
        assert_int_equal(b3.len, b2.len);
        assert_memory_equal(b3.data, b2.data, b2.len);
        sbuf_free(&b);
        sbuf_free(&b2);
        sbuf_free(&b3);
        warm_job_clear(&again);
        warm_job_clear(&copy);
    }
    warm_job_t j;
    char err[300];
    const char *one = "{\"name\":\"a\",\"source\":{\"keys\":[\"k\"]}}";
    assert_true(warm_job_parse(&j, one, strlen(one), err, sizeof err));
    assert_int_equal(j.source, WARM_SRC_KEYS);
    assert_int_equal(j.batch_size, 1000);
    assert_int_equal(j.concurrency, 64);
    assert_true(j.enabled);
    assert_false(j.scheduled);
    assert_string_equal(warm_source_name(j.source), "keys");
    warm_job_clear(&j);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json, *says;
    } cases[] = {
        {"[1]", "JSON object"},
        {"nope", "not JSON"},
        {"{\"source\":{\"hot\":1}}", "\"name\""},
        {"{\"name\":\"a/b\",\"source\":{\"hot\":1}}", "\"name\""},
        {"{\"name\":\"a\"}", "\"source\" is required"},
        {"{\"name\":\"a\",\"source\":{}}", "\"source\" must be"},
        {"{\"name\":\"a\",\"source\":{\"keys\":[]}}", "1 to 100000 keys"},
        {"{\"name\":\"a\",\"source\":{\"keys\":[\"\"]}}", "keys[0]"},
        {"{\"name\":\"a\",\"source\":{\"keys\":[\"k\"],\"pattern\":\"x\"}}", "nothing else"},
        {"{\"name\":\"a\",\"source\":{\"pattern\":\"\"}}", "\"pattern\""},
        {"{\"name\":\"a\",\"source\":{\"query\":\"SELECT 1\"}}", "\"origin\""},
        {"{\"name\":\"a\",\"source\":{\"hot\":0}}", "\"hot\""},
        {"{\"name\":\"a\",\"source\":{\"files\":1}}", "must have"},
        {"{\"name\":\"a\",\"source\":{\"hot\":1},\"schedule\":\"61 * * * *\"}", "\"schedule\": minute"},
        {"{\"name\":\"a\",\"source\":{\"hot\":1},\"priority\":5000}", "\"priority\""},
        {"{\"name\":\"a\",\"source\":{\"hot\":1},\"concurrency\":0}", "\"concurrency\""},
        {"{\"name\":\"a\",\"source\":{\"hot\":1},\"enabled\":\"yes\"}", "\"enabled\""},
        {"{\"name\":\"a\",\"source\":{\"hot\":1},\"cron\":\"x\"}", "\"cron\" is not a field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        warm_job_t j;
        char err[300] = "";
        if (warm_job_parse(&j, cases[i].json, strlen(cases[i].json), err, sizeof err) ||
            !strstr(err, cases[i].says))
            fail_msg("case %zu: %s -> [%s], wanted [%s]", i, cases[i].json, err, cases[i].says);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
