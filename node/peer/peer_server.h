/* peer_server: the serving side of the peer channel on one libuv loop.
 * Connections come one of two ways:
 *   - with --peer-port, every worker loop listens on that port
 *     (SO_REUSEPORT, as for HTTP), so the kernel spreads peer connections
 *     over the workers;
 *   - by default the peer channel shares the cluster port: gossip's TCP
 *     listener (main loop) takes each connection that starts with
 *     PEER_STREAM_PREAMBLE for the peer channel and hands its socket to a
 *     worker's server with peer_server_adopt (thread-safe).
 *
 * Each request reaches the serve callback as a call; the callee answers it
 * with peer_server_respond, at once or later on the same loop (a write that
 * waits for its replicas). Answers go out in whatever order they are ready;
 * the client matches them by request id.
 *
 * Bounds: at most max_conns connections (more are closed at accept) and
 * max_calls unanswered calls per connection (more are answered UNAVAILABLE
 * at once), so a flood of requests cannot grow memory without limit.
 *
 * Threads: everything on the server's loop thread, but peer_server_adopt.
 * Ownership: the creator owns the server (peer_server_close, then
 * peer_server_free after `done`). A call is owned by the callee until it
 * responds; a call whose connection closed meanwhile is still answered
 * (the answer is dropped) so its memory is released.
 */
#ifndef DCACHE_PEER_SERVER_H
#define DCACHE_PEER_SERVER_H

#include <uv.h>

#include "cluster/peer_proto.h"
#include "node/peer/peer_conn.h"

typedef struct peer_server peer_server_t;
typedef struct peer_call peer_call_t;

/* req and what it points to are valid during the call only: copy what an
 * asynchronous answer needs. */
typedef void (*peer_serve_fn)(peer_call_t *call, const peer_msg_t *req, void *ctx);

typedef struct peer_server_config {
    peer_conn_config_t conn;
    unsigned max_conns;   /* 4096 */
    unsigned max_calls;   /* 10000 per connection */
} peer_server_config_t;

peer_server_t *peer_server_new(uv_loop_t *loop, const peer_server_config_t *cfg, peer_serve_fn fn, void *ctx);
/* Listens on host:port (0 = any; peer_server_port tells). 0 or a uv error. */
int peer_server_listen(peer_server_t *s, const char *host, int port);
int peer_server_port(const peer_server_t *s);
/* Lets other threads hand this server connections (peer_server_adopt);
 * on the loop thread, once. 0 or a uv error. */
int peer_server_adopt_start(peer_server_t *s);
/* Any thread: serves the connected socket fd, whose first `len` bytes
 * (after the preamble) were already read. 0: the server owns fd now (it
 * copied data); otherwise (closing, no memory, adoption not started) the
 * caller still owns fd. */
int peer_server_adopt(peer_server_t *s, uv_os_sock_t fd, const uint8_t *data, size_t len);
/* Answers a call (resp->id is set from the request) and releases it. */
void peer_server_respond(peer_call_t *call, const peer_msg_t *resp);
/* Answers with an ERROR frame. */
void peer_server_respond_error(peer_call_t *call, peer_status_t code, const char *message);
/* The request's flags and type, for the callee's bookkeeping. */
uint32_t peer_call_flags(const peer_call_t *call);
peer_msg_type_t peer_call_type(const peer_call_t *call);
/* Stops accepting and closes every connection; `done` once all are closed.
 * Calls still held by callees stay valid until answered. */
void peer_server_close(peer_server_t *s, void (*done)(void *arg), void *arg);
void peer_server_free(peer_server_t *s);

#endif
