/* breaker: a circuit breaker shared by the threads that use one backend
 * (Redis as L2). Closed: calls go through. `threshold` consecutive failures
 * (errors or timeouts) open it: calls fail at once for `open_ms`. Then it is
 * half-open: one call goes through as a trial; its success closes the
 * breaker, its failure opens it again. Transitions are reported to
 * on_change (for logs), outside the lock.
 *
 * Time comes in as an argument (ms on any monotonic clock), so tests drive
 * it without waiting.
 *
 * Threads: every function may be called from any thread (a mutex guards the
 * state; counters are atomic). Ownership: the caller owns the struct.
 */
#ifndef DCACHE_BREAKER_H
#define DCACHE_BREAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 } breaker_state_t;

typedef void (*breaker_change_fn)(breaker_state_t from, breaker_state_t to, void *ctx);

typedef struct breaker {
    pthread_mutex_t lock;
    breaker_state_t state;
    unsigned failures;           /* consecutive */
    unsigned threshold;
    int64_t open_ms, open_until;
    bool trial_out;              /* half-open: the trial call is in flight */
    int64_t trial_until;         /* ... and another may go after this */
    breaker_change_fn on_change;
    void *ctx;
    atomic_uint_fast64_t opens, rejected;
    atomic_int state_seen;       /* state, readable without the lock (metrics) */
} breaker_t;

/* threshold >= 1 consecutive failures open it for open_ms. */
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
const char *breaker_state_name(breaker_state_t s);

#endif
