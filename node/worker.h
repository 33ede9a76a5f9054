/* worker: one worker thread with its own libuv loop and its own listening
 * sockets on the shared HTTP and peer ports (SO_REUSEPORT) (DESIGN.md
 * section 3). When the peer channel shares the cluster port, the worker
 * has no peer listener: the main loop hands it peer connections instead
 * (peer_server_adopt on aw.peer_server).
 *
 * Ownership: main owns the worker_t array; each worker owns its loop and
 * server. Threads: worker_start/worker_stop/worker_join are called from the
 * main thread; everything else runs on the worker's thread.
 */
#ifndef DCACHE_WORKER_H
#define DCACHE_WORKER_H

#include <uv.h>

#include "http/http_server.h"
#include "node/api/api.h"

typedef struct worker {
    int index;
    api_t *api;
    const char *host;
    int port;                 /* in: port to bind (0 = any); out: the bound port */
    const char *peer_host;
    int peer_port;            /* the same for the peer channel */
    bool peer_shared;         /* no peer listener: connections are handed over */
    http_limits_t limits;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t stop;
    uv_sem_t started;
    int start_rc;             /* 0 or the bind/listen error */
    http_server_t *server;
    api_worker_t aw;          /* peer pool, peer server, ring snapshot of this loop */
    bool aw_ready;
} worker_t;

/* Starts the thread and waits until it listens (or failed: returns the error). */
int worker_start(worker_t *w);
/* Any thread, while the worker runs (peer_shared): hands it a connected
 * peer socket and the bytes already read after the preamble. 0: the worker
 * owns fd now; otherwise (stopping) the caller still does. */
int worker_adopt_peer(worker_t *w, uv_os_sock_t fd, const uint8_t *data, size_t len);
/* Asks the worker to drain and stop (returns at once). */
void worker_stop(worker_t *w);
void worker_join(worker_t *w);

#endif
