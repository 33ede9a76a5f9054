/* sim: a deterministic simulator of many SWIM cores in one process
 * (DESIGN.md section 2): a virtual clock, a seeded PRNG and a network with
 * per-link latency, loss, one- and two-way partitions, paused members (a
 * stopped process: nothing is processed, packets wait) and crashed members
 * (packets are lost). A run is reproducible from its seed.
 *
 * Members are numbered 0..n-1; member i's gossip address is 10.x.y.z:7946
 * with x.y.z encoding i. Member info is interned: a core's record points at
 * the simulator's copy, so thousands of cores each knowing thousands of
 * members stay affordable.
 *
 * Ownership: sim_t owns its cores, events and packets. Single-threaded.
 */
#ifndef DCACHE_SIM_H
#define DCACHE_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/swim.h"

typedef struct sim sim_t;

typedef struct sim_config {
    size_t n;
    uint64_t seed;
    uint32_t latency_ms;      /* one-way base latency */
    uint32_t link_spread_ms;  /* plus a fixed 0..spread per link (some pairs are farther apart) */
    uint32_t jitter_ms;       /* plus uniform 0..jitter per datagram */
    double loss;              /* probability a datagram is lost */
    bool converged_start;     /* members start knowing each other (no join storm) */
    swim_config_t swim;       /* base config for every core (self, seed filled per member) */
} sim_config_t;

void sim_config_default(sim_config_t *c, size_t n, uint64_t seed);

/* Creates the members; every member except 0 joins through member 0 at a
 * random time within the first second (or, with converged_start, they all
 * start knowing each other). */
sim_t *sim_new(const sim_config_t *cfg);
void sim_free(sim_t *s);

int64_t sim_now(const sim_t *s);
/* Runs events up to and including time t. */
void sim_run_until(sim_t *s, int64_t t_ms);
/* Runs until pred(sim, ctx) holds (checked after each virtual 50 ms) or
 * the deadline passes; returns the time it first held, or -1. */
int64_t sim_run_until_true(sim_t *s, int64_t deadline_ms, bool (*pred)(sim_t *, void *), void *ctx);

void sim_crash(sim_t *s, size_t i);
/* Restarts a crashed member as a new run (new id, incarnation = now) that
 * joins through `via`. */
void sim_restart(sim_t *s, size_t i, size_t via);
void sim_pause(sim_t *s, size_t i, int64_t until_ms);
/* Partition: side[i] names member i's side; packets between different sides
 * are dropped (one_way: only from a lower side number to a higher one). */
void sim_partition(sim_t *s, const uint8_t *side, bool one_way);
void sim_heal(sim_t *s);
void sim_set_loss(sim_t *s, double loss);
void sim_leave(sim_t *s, size_t i);

bool sim_is_up(const sim_t *s, size_t i);
swim_t *sim_core(sim_t *s, size_t i);
/* How many up members (other than `about`) see member `about` in `state`. */
size_t sim_count_seeing(sim_t *s, size_t about, swim_state_t state);
/* True when every up member sees every up member alive (and nobody else live). */
bool sim_converged(sim_t *s);
/* Sum of the cores' stats, and how many (observer, member) pairs ever saw a
 * member DEAD while that member was up (false positives). */
void sim_totals(sim_t *s, swim_stats_t *out);
uint64_t sim_false_deaths(const sim_t *s);
uint64_t sim_packets_delivered(const sim_t *s);

#endif
