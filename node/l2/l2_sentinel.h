/* l2_sentinel: Redis Sentinel discovery, on the main loop. Asks the
 * sentinels of `list` ("host:port,...", port 26379 by default) for the
 * address of master `name` at once and then every second, and moves every
 * client (l2_shared_set_master) when a failover changed it. Polling rather
 * than subscribing to +switch-master: the client keeps one request and one
 * reply per command; a failover is seen within a second.
 *
 * Threads: every call, and `done`, on the loop given to l2_sentinel_new().
 * Ownership: the caller owns the watcher (l2_sentinel_close(), then
 * l2_sentinel_free() after `done`); it borrows the shared state, which must
 * outlive it, and copies `list` and `name`.
 */
#ifndef DCACHE_L2_SENTINEL_H
#define DCACHE_L2_SENTINEL_H

#include <uv.h>

#include "node/l2/l2.h"

typedef struct l2_sentinel l2_sentinel_t;

/* NULL on allocation failure or when `list` names no sentinel. */
l2_sentinel_t *l2_sentinel_new(uv_loop_t *loop, l2_shared_t *s, const char *list, const char *name);
/* Stops asking and closes its timer and clients; `done` runs once, on the
 * loop, after all of them closed, never from inside this call. */
void l2_sentinel_close(l2_sentinel_t *t, void (*done)(void *arg), void *arg);
void l2_sentinel_free(l2_sentinel_t *t);

#endif
