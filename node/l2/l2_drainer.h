/* l2_drainer: replays the journal into Redis, on the main loop: every
 * 500 ms, when the journal holds records and the breaker is not open, in
 * order, in pipelined batches through its own l2_t; the drained file is
 * removed once Redis acknowledged all of it. A failed batch is sent again
 * later (records are versioned: a replay never overwrites a newer value).
 *
 * Threads: every call, and `done`, on the loop given to l2_drainer_new().
 * Ownership: the caller owns the drainer (l2_drainer_close(), then
 * l2_drainer_free() after `done`); it borrows the shared state, which must
 * outlive it.
 */
#ifndef DCACHE_L2_DRAINER_H
#define DCACHE_L2_DRAINER_H

#include <uv.h>

#include "node/l2/l2.h"

typedef struct l2_drainer l2_drainer_t;

/* NULL on allocation failure. Starts its timer at once. */
l2_drainer_t *l2_drainer_new(uv_loop_t *loop, l2_shared_t *s);
/* Stops replaying and closes its timer and client; `done` runs once, on
 * the loop, after both closed, never from inside this call. */
void l2_drainer_close(l2_drainer_t *d, void (*done)(void *arg), void *arg);
void l2_drainer_free(l2_drainer_t *d);

#endif
