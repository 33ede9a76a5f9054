/* closer: calls `done` once when all the parts of an object have closed.
 *
 * An object built of libuv handles and child objects that close
 * asynchronously (timers, listeners, Redis clients, peer pools,
 * connections) counts each part here from the moment it is open until it
 * reports that it has closed: a handle from its uv_close() callback, a
 * child through closer_closed_cb as its `done`. When the owner closes, it
 * starts closing its parts and calls closer_finish() with whom to tell;
 * `done` runs once the last part has reported.
 *
 * Handles keep their own close callback (data pointing at the owner):
 * libuv may still call a closing handle's other callbacks (a stream's
 * writes, with UV_ECANCELED) and owners call their timer callbacks
 * directly, so the handle's data is not the closer's to take.
 *
 * When `done` runs: exactly once, on the loop thread. If no part is open
 * when closer_finish() is called, at once, inside that call; otherwise from
 * the report of the last part (a libuv close callback, or a child's own
 * `done`), so never inside closer_finish(). Parts that report before
 * closer_finish() (a connection dropped by its peer) only lower the count.
 * `done` may free the object the closer is embedded in.
 *
 * Threads: one loop thread; not thread-safe. Ownership: embedded in its
 * owner (zeroed, or closer_init()); nothing is allocated.
 */
#ifndef DCACHE_CLOSER_H
#define DCACHE_CLOSER_H

#include <stdbool.h>

typedef struct closer {
    unsigned open;              /* parts not yet closed */
    bool finishing;             /* closer_finish() was called */
    void (*done)(void *arg);
    void *arg;
} closer_t;

void closer_init(closer_t *c);
/* n more parts are open; each must report once with closer_closed(). */
void closer_add(closer_t *c, unsigned n);
/* A part has closed. */
void closer_closed(closer_t *c);
/* closer_closed() shaped as a child's `done` callback (arg = the closer). */
void closer_closed_cb(void *closer);
/* The owner is closing: call done(arg) once every part has closed. Call
 * once. */
void closer_finish(closer_t *c, void (*done)(void *arg), void *arg);

#endif
