/* backoff: how long to wait before the next attempt after failures in a
 * row: min_ms, then twice the previous wait, never more than max_ms; a
 * success starts over at min_ms. Peers and Redis reconnect with it, and a
 * node retries joining the cluster with it.
 *
 * It only computes delays: the caller keeps the clock (and any deadline).
 *
 * Threads: plain data, not thread-safe; each user keeps its own (per peer,
 * per client, per gossip driver) on its loop thread. Ownership: the caller
 * owns the struct; nothing is allocated.
 */
#ifndef DCACHE_BACKOFF_H
#define DCACHE_BACKOFF_H

#include <stdint.h>

typedef struct backoff {
    uint64_t min_ms, max_ms;
    uint64_t cur_ms;   /* the last wait handed out; 0 = none since the reset */
} backoff_t;

/* min_ms > max_ms is allowed: every wait is then max_ms. */
void backoff_init(backoff_t *b, uint64_t min_ms, uint64_t max_ms);
/* The wait before the next attempt, after one more failure. */
uint64_t backoff_next(backoff_t *b);
/* A success: the next wait is min_ms again. */
void backoff_reset(backoff_t *b);

#endif
