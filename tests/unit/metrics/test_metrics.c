/* metrics and metrics_history: histogram percentiles, Prometheus text, the
 * bounded history ring and its downsampling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/metrics/metrics.h"
#include "node/metrics/metrics_history.h"

static void test_percentiles(void **state)
{
    metrics_t *m = malloc(sizeof *m);
    metrics_init(m);
    /* 90 fast (80 us) and 10 slow (40 ms) requests. */
    for (int i = 0; i < 90; i++) metrics_observe(m, METRICS_OP_GET, 80000);
    for (int i = 0; i < 10; i++) metrics_observe(m, METRICS_OP_GET, 40000000);
    metrics_percentiles_t p;
    metrics_percentiles(&m->latency[METRICS_OP_GET], &p);
    assert_int_equal(p.count, 100);
    assert_true(p.p50_s > 0.00005 && p.p50_s <= 0.0001);
    assert_true(p.p99_s > 0.025 && p.p99_s <= 0.05);
    assert_true(p.mean_s > 0.003 && p.mean_s < 0.005);
    metrics_percentiles(&m->latency[METRICS_OP_PUT], &p);
    assert_int_equal(p.count, 0);
    assert_true(p.p99_s == 0);
    free(m);
}

static void test_prometheus_text(void **state)
{
    metrics_t *m = malloc(sizeof *m);
    metrics_init(m);
    metrics_add(&m->hits, 3);
    metrics_count_status(m, 404);
    metrics_count_error(m, METRICS_ERR_TOO_LARGE);
    metrics_observe(m, METRICS_OP_PUT, 2000000);
    metrics_observe(m, METRICS_OP_PUT, 20000000000ull); /* beyond the last bound */
    sbuf_t b;
    sbuf_init(&b);
    metrics_render_prometheus(m, &b);
    assert_false(b.failed);
    assert_non_null(strstr(b.data, "# TYPE cache_hits_total counter\ncache_hits_total 3\n"));
    assert_non_null(strstr(b.data, "http_requests_total{code=\"404\"} 1\n"));
    assert_non_null(strstr(b.data, "errors_total{type=\"too_large\"} 1\n"));
    assert_non_null(strstr(b.data, "cache_latency_seconds_bucket{operation=\"put\",le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(b.data, "cache_latency_seconds_bucket{operation=\"put\",le=\"10\"} 1\n"));
    assert_non_null(strstr(b.data, "cache_latency_seconds_bucket{operation=\"put\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(b.data, "cache_latency_seconds_count{operation=\"put\"} 2\n"));
    sbuf_free(&b);
    free(m);
}

static void test_history_ring_is_bounded(void **state)
{
    metrics_history_t *h = metrics_history_new(60000); /* one a minute: 1440 a day */
    assert_int_equal(metrics_history_capacity(h), 1440);
    for (int i = 0; i < 5000; i++) {
        metrics_sample_t s = {.t_ms = (int64_t)i * 60000, .hits = (uint64_t)i * 10, .requests = (uint64_t)i * 20};
        metrics_history_record(h, &s);
    }
    assert_int_equal(metrics_history_count(h), 1440);
    metrics_history_free(h);
}

static void test_history_window_and_downsampling(void **state)
{
    metrics_history_t *h = metrics_history_new(1000);
    int64_t now = 10000000;
    for (int i = 0; i < 600; i++) { /* the last 10 minutes, one a second */
        metrics_sample_t s = {.t_ms = now - 599000 + (int64_t)i * 1000,
                              .hits = (uint64_t)i * 3,
                              .misses = (uint64_t)i,
                              .requests = (uint64_t)i * 4,
                              .entries = (uint64_t)i};
        metrics_history_record(h, &s);
    }
    sbuf_t b;
    sbuf_init(&b);
    metrics_history_render(h, "1m", metrics_history_window_ms("1m"), now, 120, &b);
    /* 60 samples fit in 120 points: one point a sample, 3 hits and 1 miss each. */
    int points = 0;
    for (char *p = b.data; (p = strstr(p, "\"t\":")); p++) points++;
    assert_int_equal(points, 60);
    assert_non_null(strstr(b.data, "\"hits\":3,\"misses\":1,\"hit_rate\":0.7500,\"requests_per_sec\":4.000"));
    sbuf_free(&b);
    sbuf_init(&b);
    metrics_history_render(h, "5m", metrics_history_window_ms("5m"), now, 120, &b);
    points = 0;
    for (char *p = b.data; (p = strstr(p, "\"t\":")); p++) points++;
    assert_true(points <= 120 && points >= 100);
    assert_non_null(strstr(b.data, "\"interval_ms\":3000"));
    assert_non_null(strstr(b.data, "\"entries\":599,"));
    sbuf_free(&b);
    assert_int_equal(metrics_history_window_ms("2d"), 0);
    metrics_history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_prometheus_text),
        cmocka_unit_test(test_history_ring_is_bounded),
        cmocka_unit_test(test_history_window_and_downsampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
