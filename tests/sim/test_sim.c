/* Simulated SWIM clusters: convergence, crash detection, partitions that
 * heal, paused members, graceful leave, restarts, determinism. Bounds are
 * generous (these are behaviours, not speeds); the seed comes from
 * DCACHE_SIM_SEED when set and is always printed, so a failure replays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/sim/sim.h"

static uint64_t seed;

static sim_t *start(size_t n, double loss)
{
    sim_config_t c;
    sim_config_default(&c, n, seed);
    c.loss = loss;
    sim_t *s = sim_new(&c);
    assert_non_null(s);
    return s;
}

static bool converged(sim_t *s, void *ctx)
{
    return sim_converged(s);
}

static void test_fifty_members_converge(void **state)
{
    sim_t *s = start(50, 0);
    /* Gossip reaches nearly everyone within seconds; the periodic push-pull
     * (30 s) mops up the rest. */
    int64_t t = sim_run_until_true(s, 60000, converged, NULL);
    if (t < 0) fail_msg("50 members did not converge in 60 s (seed %llu)", (unsigned long long)seed);
    sim_run_until(s, sim_now(s) + 60000);
    assert_true(sim_converged(s));
    assert_int_equal(sim_false_deaths(s), 0);
    sim_free(s);
}

typedef struct seen_ctx {
    size_t about;
    swim_state_t state;
    size_t want;
} seen_ctx_t;

static bool all_see(sim_t *s, void *ctx)
{
    seen_ctx_t *c = ctx;
    return sim_count_seeing(s, c->about, c->state) >= c->want;
}

static void test_crash_is_detected_by_all(void **state)
{
    sim_t *s = start(30, 0);
    assert_true(sim_run_until_true(s, 60000, converged, NULL) >= 0);
    int64_t crash_at = sim_now(s);
    sim_crash(s, 7);
    seen_ctx_t c = {7, SWIM_STATE_DEAD, 29};
    int64_t t = sim_run_until_true(s, crash_at + 120000, all_see, &c);
    if (t < 0) fail_msg("crash not seen by all within 120 s (seed %llu)", (unsigned long long)seed);
    /* Detection takes at least the minimum suspicion timeout. */
    int64_t min_ms, max_ms;
    sim_config_t cfg;
    sim_config_default(&cfg, 30, seed);
    swim_suspicion_bounds(&cfg.swim, 30, &min_ms, &max_ms);
    assert_true(t - crash_at >= min_ms);
    assert_int_equal(sim_false_deaths(s), 0);
    sim_free(s);
}

static void test_partition_heals_and_sides_remerge(void **state)
{
    sim_t *s = start(20, 0);
    assert_true(sim_run_until_true(s, 60000, converged, NULL) >= 0);
    uint8_t side[20];
    for (int i = 0; i < 20; i++) side[i] = i < 10 ? 0 : 1;
    sim_partition(s, side, false);
    seen_ctx_t c = {15, SWIM_STATE_DEAD, 10}; /* the other side sees 15 dead... */
    seen_ctx_t d = {3, SWIM_STATE_DEAD, 10};
    int64_t t = sim_run_until_true(s, sim_now(s) + 120000, all_see, &c);
    assert_true(t >= 0);
    assert_true(sim_run_until_true(s, sim_now(s) + 60000, all_see, &d) >= 0);
    sim_heal(s);
    t = sim_run_until_true(s, sim_now(s) + 240000, converged, NULL);
    if (t < 0) fail_msg("sides did not re-merge within 240 s of healing (seed %llu)", (unsigned long long)seed);
    sim_free(s);
}

static void test_paused_member_is_not_declared_dead(void **state)
{
    sim_t *s = start(30, 0);
    assert_true(sim_run_until_true(s, 60000, converged, NULL) >= 0);
    int64_t min_ms, max_ms;
    sim_config_t cfg;
    sim_config_default(&cfg, 30, seed);
    swim_suspicion_bounds(&cfg.swim, 30, &min_ms, &max_ms);
    /* Paused for less than the minimum suspicion timeout: may be suspected,
     * must come back without anyone declaring it dead. */
    sim_pause(s, 5, sim_now(s) + min_ms / 2);
    sim_run_until(s, sim_now(s) + 60000);
    assert_int_equal(sim_false_deaths(s), 0);
    assert_true(sim_converged(s));
    sim_free(s);
}

static void test_leave_is_not_a_failure(void **state)
{
    sim_t *s = start(20, 0);
    assert_true(sim_run_until_true(s, 60000, converged, NULL) >= 0);
    sim_leave(s, 4);
    seen_ctx_t c = {4, SWIM_STATE_LEFT, 19};
    assert_true(sim_run_until_true(s, sim_now(s) + 10000, all_see, &c) >= 0);
    assert_int_equal(sim_count_seeing(s, 4, SWIM_STATE_DEAD), 0);
    sim_free(s);
}

static void test_restart_replaces_old_record(void **state)
{
    sim_t *s = start(20, 0);
    assert_true(sim_run_until_true(s, 60000, converged, NULL) >= 0);
    sim_crash(s, 9);
    sim_run_until(s, sim_now(s) + 500);
    sim_restart(s, 9, 0);
    int64_t t = sim_run_until_true(s, sim_now(s) + 30000, converged, NULL);
    if (t < 0) fail_msg("restarted member not seen alive by all (seed %llu)", (unsigned long long)seed);
    /* One record per name: 20 members, not 21. */
    assert_int_equal(swim_member_count(sim_core(s, 0), -1), 20);
    sim_free(s);
}

static void test_lossy_network_converges_without_false_deaths(void **state)
{
    sim_t *s = start(40, 0.05);
    assert_true(sim_run_until_true(s, 60000, converged, NULL) >= 0);
    sim_run_until(s, sim_now(s) + 120000);
    assert_int_equal(sim_false_deaths(s), 0);
    sim_free(s);
}

static void test_same_seed_same_run(void **state)
{
    swim_stats_t a, b;
    for (int k = 0; k < 2; k++) {
        sim_t *s = start(25, 0.02);
        sim_run_until(s, 20000);
        sim_crash(s, 3);
        sim_run_until(s, 40000);
        sim_totals(s, k ? &b : &a);
        assert_true(sim_packets_delivered(s) > 0);
        sim_free(s);
    }
    assert_memory_equal(&a, &b, sizeof a);
}

int main(void)
{
    const char *env = getenv("DCACHE_SIM_SEED");
    seed = env ? strtoull(env, NULL, 10) : 20261125;
    printf("sim seed %llu (set DCACHE_SIM_SEED to replay)\n", (unsigned long long)seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifty_members_converge),
        cmocka_unit_test(test_crash_is_detected_by_all),
        cmocka_unit_test(test_partition_heals_and_sides_remerge),
        cmocka_unit_test(test_paused_member_is_not_declared_dead),
        cmocka_unit_test(test_leave_is_not_a_failure),
        cmocka_unit_test(test_restart_replaces_old_record),
        cmocka_unit_test(test_lossy_network_converges_without_false_deaths),
        cmocka_unit_test(test_same_seed_same_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
