/* breaker: a circuit breaker. Closed: calls go through. `threshold`
 * consecutive failures (errors or timeouts) open it: calls fail at once for
 * `open_ms`. Then it is half-open: one call goes through as the trial; its
 * success closes the breaker, its failure opens it again for another pause.
 * A failure reported while already open (a call sent before it opened) does
 * not extend the pause.
 *
 * One state machine, two forms:
 *   - breaker_fsm_t, unlocked, for one thread that knows which of its calls
 *     is the trial (the peer pool: one per peer, on its loop). The caller
 *     claims the trial when that call is really out and gives it back with
 *     breaker_fsm_release() when it ends, however it ends; the trial stays
 *     out until then (or, if trial_ms >= 0, for at most trial_ms).
 *     Transitions are not reported: compare `state` before and after.
 *   - breaker_t, locked, shared by threads whose calls carry no identity
 *     (Redis as L2, every loop): any outcome reported ends the trial, a
 *     trial that never reports is replaced after open_ms, and transitions
 *     go to on_change outside the lock.
 *
 * Time comes in as an argument (ms on any monotonic clock), so tests drive
 * it without waiting.
 */
#ifndef DCACHE_BREAKER_H
#define DCACHE_BREAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* What the peer pool and L2 use unless configured otherwise (README: 5
 * consecutive failures open a breaker for 2 s). */
#define BREAKER_THRESHOLD_DEFAULT 5
#define BREAKER_OPEN_MS_DEFAULT 2000
/* trial_ms for a trial that is out until released. */
#define BREAKER_TRIAL_NO_TIMEOUT (-1)

typedef enum { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 } breaker_state_t;

const char *breaker_state_name(breaker_state_t s);

/* ---- the unlocked form ---- */

typedef enum {
    BREAKER_REJECT = 0, /* fail the call at once */
    BREAKER_PASS,       /* closed: go */
    BREAKER_TRIAL,      /* half-open: go; this call is the trial */
} breaker_verdict_t;

/* Threads: one owner thread calls everything. Ownership: the caller owns the
 * struct; nothing is allocated (no destroy). Read `state` freely. */
typedef struct breaker_fsm {
    breaker_state_t state;
    unsigned failures;           /* consecutive */
    unsigned threshold;
    int64_t open_ms, open_until;
    int64_t trial_ms;            /* < 0: the trial is out until released */
    bool trial_out;              /* half-open: the trial call is in flight */
    int64_t trial_until;         /* ... and another may go after this (trial_ms >= 0) */
} breaker_fsm_t;

/* threshold >= 1 consecutive failures (0 counts as 1) open it for open_ms. */
void breaker_fsm_init(breaker_fsm_t *f, unsigned threshold, int64_t open_ms, int64_t trial_ms);
/* May a call go out now? Moves open to half-open once the pause is over.
 * BREAKER_TRIAL: this call may be the trial. Claim it with
 * breaker_fsm_claim() once the call is really out (until then, every call
 * is told TRIAL), and release it when that call ends. */
breaker_verdict_t breaker_fsm_allow(breaker_fsm_t *f, int64_t now_ms);
/* The call breaker_fsm_allow() answered TRIAL is out: it is the trial. */
void breaker_fsm_claim(breaker_fsm_t *f, int64_t now_ms);
/* What breaker_fsm_allow() would answer now (REJECT or not), changing
 * nothing. */
bool breaker_fsm_would_allow(const breaker_fsm_t *f, int64_t now_ms);
/* A call succeeded: closed, failures forgotten. */
void breaker_fsm_success(breaker_fsm_t *f);
/* A call failed: open once `threshold` failed in a row, or at once when
 * half-open. */
void breaker_fsm_failure(breaker_fsm_t *f, int64_t now_ms);
/* The trial call ended: another call may be the next trial. */
void breaker_fsm_release(breaker_fsm_t *f);

/* ---- the locked form ---- */

typedef void (*breaker_change_fn)(breaker_state_t from, breaker_state_t to, void *ctx);

/* Threads: every function may be called from any thread (a mutex guards
 * the state machine; counters are atomic and readable without the lock).
 * on_change runs on the thread whose call made the transition, after the
 * lock is released, once per transition, before that call returns.
 * Ownership: the caller owns the struct (breaker_init, breaker_destroy). */
typedef struct breaker {
    pthread_mutex_t lock;
    breaker_fsm_t fsm;
    breaker_change_fn on_change;
    void *ctx;
    atomic_uint_fast64_t opens, rejected;
    atomic_int state_seen;       /* fsm.state, readable without the lock (metrics) */
} breaker_t;

/* threshold >= 1 consecutive failures open it for open_ms. on_change may be
 * NULL. */
void breaker_init(breaker_t *b, unsigned threshold, int64_t open_ms, breaker_change_fn on_change, void *ctx);
void breaker_destroy(breaker_t *b);
/* May a call go out now? False (and counted in `rejected`) while open, or
 * half-open with the trial already out (for less than open_ms: a trial that
 * never reports is replaced). A true in half-open makes this call the
 * trial: report its outcome. */
bool breaker_allow(breaker_t *b, int64_t now_ms);
void breaker_success(breaker_t *b, int64_t now_ms);
void breaker_failure(breaker_t *b, int64_t now_ms);
breaker_state_t breaker_state(breaker_t *b);

#endif
