/* swim-sim: long simulator runs of the SWIM core, each beside the same run
 * with Lifeguard off (plain SWIM) as the reference. Prints figures; never
 * fails. Run through tools/bench/swim-sim.
 *
 *   swim_sim_bench [--sizes 100,1000,10000] [--trials N] [--fp-seconds S] [--fp-members N]
 *                  [--seed S] [--only detect,dissem,load,fp,speed] [--fp-scenario 0|1|2]
 *
 * Every run starts from a converged cluster (members know each other), so
 * the figures describe steady state, not the join storm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/sim/sim.h"

static uint64_t seed = 20261125;
static int trials = 5;
static int fp_seconds = 3600;
static char sections[128] = "detect,dissem,load,fp,speed";
static int fp_scenario = -1; /* -1 = all */

static bool want(const char *section)
{
    return strstr(sections, section) != NULL;
}

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static sim_t *start(size_t n, bool lifeguard, double loss, uint64_t s)
{
    sim_config_t c;
    sim_config_default(&c, n, s);
    c.converged_start = true;
    c.loss = loss;
    c.swim.lifeguard = lifeguard;
    return sim_new(&c);
}

typedef struct seen {
    size_t about;
    swim_state_t state;
    size_t want;
} seen_t;

static bool all_see(sim_t *s, void *ctx)
{
    seen_t *c = ctx;
    return sim_count_seeing(s, c->about, c->state) >= c->want;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(int64_t *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int i = (int)ceil(p * n) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}

/* Crash `trials` members one after another; time until every up member
 * sees each one dead. Also measures load over the first quiet stretch. */
static void detection_and_load(size_t n, bool lg, int64_t *p50, int64_t *p99, double *pkts, double *bytes,
                               double *create_s)
{
    double t0 = wall();
    sim_t *s = start(n, lg, 0, seed);
    *create_s = wall() - t0;
    sim_run_until(s, 5000);
    swim_stats_t a, b;
    sim_totals(s, &a);
    sim_run_until(s, 25000);
    sim_totals(s, &b);
    *pkts = (double)(b.packets_out - a.packets_out) / (double)n / 20.0;
    *bytes = (double)(b.bytes_out - a.bytes_out) / (double)n / 20.0;
    int64_t d[64];
    int k = 0;
    size_t up = n;
    for (int t = 0; t < trials && t < 64; t++) {
        size_t victim = (size_t)(7 + t * 131) % n;
        int64_t at = sim_now(s);
        sim_crash(s, victim);
        up--;
        seen_t c = {victim, SWIM_STATE_DEAD, up};
        int64_t when = sim_run_until_true(s, at + 600000, all_see, &c);
        d[k++] = when < 0 ? 600000 : when - at;
        sim_run_until(s, sim_now(s) + 2000);
    }
    *p50 = pct(d, k, 0.5);
    *p99 = pct(d, k, 0.99);
    sim_free(s);
}

/* A member leaves `trials` times (a fresh member each time); time until
 * every member has the update. */
static void dissemination(size_t n, bool lg, int64_t *p50, int64_t *p99)
{
    sim_t *s = start(n, lg, 0, seed + 1);
    sim_run_until(s, 5000);
    int64_t d[64];
    int k = 0;
    size_t up = n;
    for (int t = 0; t < trials && t < 64; t++) {
        size_t who = (size_t)(11 + t * 97) % n;
        int64_t at = sim_now(s);
        sim_leave(s, who);
        seen_t c = {who, SWIM_STATE_LEFT, up - 1};
        int64_t when = sim_run_until_true(s, at + 120000, all_see, &c);
        d[k++] = when < 0 ? 120000 : when - at;
        sim_crash(s, who); /* it is gone now */
        up--;
        sim_run_until(s, sim_now(s) + 1000);
    }
    *p50 = pct(d, k, 0.5);
    *p99 = pct(d, k, 0.99);
    sim_free(s);
}

/* False deaths over fp_seconds at n members: lossy network, or 5 % of the
 * members paused 2-5 s at random times. */
static uint64_t false_positives(size_t n, bool lg, double loss, bool pauses)
{
    sim_t *s = start(n, lg, loss, seed + 2);
    uint64_t rng = seed * 2654435761u + 1;
    int64_t end = (int64_t)fp_seconds * 1000;
    if (pauses) {
        /* Each member of the 5 % pauses once per minute on average. */
        size_t npaused = n / 20 ? n / 20 : 1;
        int64_t *until = calloc(npaused, sizeof *until);
        for (int64_t t = 0; t < end; t += 1000) {
            sim_run_until(s, t);
            for (size_t i = 0; i < npaused; i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                /* A pause never extends one in progress: back-to-back pauses
                 * would make one long stop, which is a real failure. */
                if ((rng >> 33) % 60 != 0 || until[i] > t) continue;
                int64_t len = 2000 + (int64_t)((rng >> 13) % 3001);
                until[i] = t + len;
                sim_pause(s, i * 20 % n, t + len);
            }
        }
        free(until);
    }
    sim_run_until(s, end);
    uint64_t fd = sim_false_deaths(s);
    sim_free(s);
    return fd;
}

static void parse_sizes(const char *arg, size_t *sizes, int *count)
{
    *count = 0;
    char *copy = strdup(arg), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && *count < 8; t = strtok_r(NULL, ",", &save))
        sizes[(*count)++] = (size_t)strtoull(t, NULL, 10);
    free(copy);
}

int main(int argc, char **argv)
{
    size_t sizes[8] = {100, 1000, 10000};
    int nsizes = 3;
    size_t fp_n = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--sizes")) parse_sizes(argv[i + 1], sizes, &nsizes);
        else if (!strcmp(argv[i], "--trials")) trials = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--fp-seconds")) fp_seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--fp-members")) fp_n = (size_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--only")) snprintf(sections, sizeof sections, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--fp-scenario")) fp_scenario = atoi(argv[i + 1]);
    }
    printf("swim-sim: seed %llu, %d trials per figure, defaults of memberlist's LAN profile\n",
           (unsigned long long)seed, trials);
    swim_config_t def;
    swim_config_default(&def);

    double pk[8][2] = {{0}}, by[8][2] = {{0}};
    if (want("detect") || want("load")) {
    printf("\ndetection: crash -> every live member marks it dead (ms)\n");
    printf("  %6s  %9s  %18s  %18s  %12s\n", "N", "min susp", "Lifeguard p50/p99", "plain p50/p99",
           "target p99");
    for (int i = 0; i < nsizes; i++) {
        int64_t lo, hi, a50, a99, b50, b99;
        double cr;
        swim_suspicion_bounds(&def, sizes[i], &lo, &hi);
        detection_and_load(sizes[i], true, &a50, &a99, &pk[i][0], &by[i][0], &cr);
        detection_and_load(sizes[i], false, &b50, &b99, &pk[i][1], &by[i][1], &cr);
        printf("  %6zu  %9lld  %8lld/%-9lld  %8lld/%-9lld  <= %-9lld %s\n", sizes[i], (long long)lo, (long long)a50,
               (long long)a99, (long long)b50, (long long)b99, (long long)(lo * 3 / 2),
               a99 <= lo * 3 / 2 ? "met" : "MISSED");
        fflush(stdout);
    }
    }

    if (want("dissem")) {
    printf("\ndissemination: a leave reaches every member (ms; gossip interval %u ms)\n", def.gossip_interval_ms);
    printf("  %6s  %18s  %18s  %14s\n", "N", "Lifeguard p50/p99", "plain p50/p99", "target p99");
    for (int i = 0; i < nsizes; i++) {
        int64_t a50, a99, b50, b99;
        dissemination(sizes[i], true, &a50, &a99);
        dissemination(sizes[i], false, &b50, &b99);
        int64_t target = (int64_t)(2.0 * log2((double)sizes[i]) * def.gossip_interval_ms);
        printf("  %6zu  %8lld/%-9lld  %8lld/%-9lld  <= %-9lld %s\n", sizes[i], (long long)a50, (long long)a99,
               (long long)b50, (long long)b99, (long long)target, a99 <= target ? "met" : "MISSED");
        fflush(stdout);
    }
    }

    if (want("detect") || want("load")) {
    printf("\nload: per member per second, steady state (Lifeguard / plain)\n");
    printf("  %6s  %16s  %18s\n", "N", "packets out", "bytes out");
    for (int i = 0; i < nsizes; i++)
        printf("  %6zu  %7.2f / %-6.2f  %8.1f / %-8.1f\n", sizes[i], pk[i][0], pk[i][1], by[i][0], by[i][1]);
    if (nsizes >= 2)
        printf("  ratio N=%zu / N=%zu: packets %.3f, bytes %.3f (target: within 15%%)\n", sizes[nsizes - 1],
               sizes[0], pk[nsizes - 1][0] / pk[0][0], by[nsizes - 1][0] / by[0][0]);
    fflush(stdout);
    }

    if (want("fp")) {
    printf("\nfalse positives: members wrongly declared dead in %d simulated s at N=%zu\n", fp_seconds, fp_n);
    printf("  %-24s  %10s  %10s\n", "scenario", "Lifeguard", "plain");
    struct {
        const char *name;
        double loss;
        bool pauses;
    } sc[] = {{"5% packet loss", 0.05, false}, {"10% packet loss", 0.10, false}, {"5% paused 2-5 s", 0, true}};
    for (int i = 0; i < 3; i++) {
        if (fp_scenario >= 0 && fp_scenario != i) continue;
        uint64_t a = false_positives(fp_n, true, sc[i].loss, sc[i].pauses);
        uint64_t b = false_positives(fp_n, false, sc[i].loss, sc[i].pauses);
        printf("  %-24s  %10llu  %10llu\n", sc[i].name, (unsigned long long)a, (unsigned long long)b);
        fflush(stdout);
    }
    }
    if (!want("speed")) return 0;

    size_t big = sizes[nsizes - 1];
    double t0 = wall();
    sim_t *s = start(big, true, 0, seed + 3);
    double t1 = wall();
    sim_run_until(s, 60000);
    double t2 = wall();
    sim_free(s);
    printf("\nsimulator speed: N=%zu, 60 virtual s in %.1f s wall (setup %.1f s) (target <= 60 s)\n", big, t2 - t1,
           t1 - t0);
    return 0;
}
