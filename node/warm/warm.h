/* warm: warming jobs. A job names keys (a list, a pattern over Redis, a
 * query on a postgres origin's database, or the cluster's predicted hot
 * keys, warm_job.h) and, optionally, a schedule; running it loads each
 * key into its primary's L1 ahead of demand. A key is warmed by a GET
 * through the data path from this node (route_read_get on a route_worker
 * of the main loop): its primary serves it from L1, or fills it from
 * Redis or its origin, with every check a read makes (tombstones, the
 * journal, coalescing), so warming never brings back a deleted value.
 *
 * Jobs come from the --origins file ("jobs", read-only through the API)
 * and from the API. With --redis the API's jobs are kept in Redis
 * (<prefix>warm:jobs), every node reading them every 2 s, and a run is
 * coordinated there: one node claims each scheduled firing
 * (<prefix>warm:fired:<job>:<ms>, SET NX), the runner holds a lease
 * (<prefix>warm:lease:<job>, 15 s, renewed every second) and saves its
 * progress (<prefix>warm:runs); when a runner dies its lease lapses and
 * another node takes the run over from the last progress saved. The last
 * 200 runs are kept in <prefix>warm:history. Without Redis a job created
 * through the API lives on the node that got it, and a file job runs on
 * the ring primary of "warm:<job>".
 *
 * Runs share this node's budget (WARM_IN_FLIGHT_MAX keys loading at once);
 * the highest priority run takes its share (its concurrency) first.
 *
 * Ownership: main owns the warm_t (warm_new, warm_close, warm_free after
 * `done`). Callbacks borrow what they are given.
 * Threads: the main loop, except the warm_api_* calls and warm_stats,
 * which any thread may make (a mutex, never held across I/O).
 */
#ifndef DCACHE_WARM_H
#define DCACHE_WARM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "node/core/sbuf.h"
#include "node/route/route.h"
#include "node/warm/warm_hot.h"
#include "node/warm/warm_job.h"

#define WARM_JOBS_MAX 256
#define WARM_IN_FLIGHT_MAX 2048
#define WARM_HISTORY_MAX 200
#define WARM_PREFETCH_KEYS 1000     /* hot keys a node warms after a ring change */
#define WARM_PREFETCH_DELAY_MS 6000 /* ... once the others' lists had time to arrive */

typedef struct warm warm_t;

/* A run, as the API, the history, the audit trail and the events see it. */
typedef struct warm_run_info {
    char id[96];                 /* "<job>-<start ms>" */
    char job[WARM_NAME_MAX];
    char node[64];               /* the runner */
    char trigger[80];            /* "schedule", "takeover", or who asked ("api:<actor>") */
    char state[12];              /* running, done, failed, cancelled */
    char error[160];
    int64_t started_ms, ended_ms;
    uint64_t total;              /* keys taken from the source */
    uint64_t loaded;             /* ... that some owner now holds */
    uint64_t missing;            /* ... that exist nowhere (404) */
    uint64_t failed;             /* ... that could not be loaded (an owner, Redis or the origin failed) */
} warm_run_info_t;

/* The run as JSON: its fields, keys_per_s and success_rate. */
void warm_run_json(const warm_run_info_t *r, sbuf_t *out);

typedef struct warm_stats {
    atomic_uint_fast64_t runs_started, runs_done, runs_failed, runs_cancelled, takeovers;
    atomic_uint_fast64_t keys_loaded, keys_missing, keys_failed;
    atomic_int_fast64_t running, in_flight, jobs;
} warm_stats_t;

typedef struct warm_hooks {
    /* A run started, made progress (about every second) or ended. */
    void (*on_run)(void *ctx, const warm_run_info_t *r, bool ended);
    void *ctx;
} warm_hooks_t;

/* file: the --origins file (its "jobs"), or NULL. NULL with err set when
 * the file's jobs do not parse. */
warm_t *warm_new(uv_loop_t *loop, route_t *rt, const char *file, const warm_hooks_t *hooks, char *err, size_t errlen);
/* Starts the timers (after the workers and gossip started). */
void warm_start(warm_t *w);
/* Rereads the file's jobs; false (and the jobs in force stay) when it does
 * not parse. */
bool warm_reload(warm_t *w, const char *file, char *err, size_t errlen);
/* Cancels what runs (its progress stays in Redis for another node) and
 * closes; done(arg) once everything is closed. */
void warm_close(warm_t *w, void (*done)(void *arg), void *arg);
void warm_free(warm_t *w);
warm_stats_t *warm_stats(warm_t *w);
/* warm_stats_t's series in /metrics. */
void warm_metrics(warm_t *w, sbuf_t *out);

/* ---- predicted hot keys (warm_hot.h) ---- */

/* The table the `hot` source and the prefetch read; main and the API hand
 * it lists and read it (any thread). Lives as long as w. */
warm_hot_t *warm_predicted(warm_t *w);
/* The ring changed: in WARM_PREFETCH_DELAY_MS this node warms the hot keys
 * it owns now (from their previous owners, Redis or origins). Main loop. */
void warm_ring_changed(warm_t *w);

/* ---- the API's calls: any thread ---- */

typedef enum {
    WARM_API_OK = 0,
    WARM_API_NOT_FOUND,          /* no such job */
    WARM_API_READ_ONLY,          /* declared in the file */
    WARM_API_FULL,               /* WARM_JOBS_MAX jobs already */
    WARM_API_BUSY,               /* the job is running already */
    WARM_API_NO_MEMORY,
} warm_api_result_t;

/* Creates or replaces an API job (the job is copied). */
warm_api_result_t warm_api_put(warm_t *w, const warm_job_t *job);
warm_api_result_t warm_api_delete(warm_t *w, const char *name);
/* Runs the job now (or an ad-hoc one: job not in the registry, run once
 * here and forgotten). *run_id gets the run's id. */
warm_api_result_t warm_api_trigger(warm_t *w, const char *name, const char *actor, char *run_id, size_t cap);
warm_api_result_t warm_api_trigger_adhoc(warm_t *w, const warm_job_t *job, const char *actor, char *run_id, size_t cap);
/* Stops the job's run, here or (with Redis) on whichever node runs it. */
warm_api_result_t warm_api_cancel(warm_t *w, const char *name);
/* {"jobs":[...]}: every job with its schedule's next run, its last run and
 * the run in progress. */
void warm_api_jobs_json(warm_t *w, sbuf_t *out);
/* {"runs":[...]}: newest first, at most limit. */
void warm_api_history_json(warm_t *w, size_t limit, sbuf_t *out);

#endif
