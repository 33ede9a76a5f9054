/* http_server: an HTTP/1.1 server on one libuv loop, parsing with llhttp.
 *
 * It knows nothing about caches: it accepts connections, parses requests,
 * enforces limits and hands each complete request to the handler, which
 * answers with http_respond() now or later.
 *
 * Keep-alive and pipelining: requests on one connection are handled one at a
 * time in arrival order, so responses always leave in request order. While a
 * request waits for its response, the bytes of the next requests stay
 * buffered and the socket is not read (backpressure).
 *
 * Limits (each counted in http_server_stats_t):
 *   - header section (request line + headers) over max_header_bytes or
 *     max_headers fields: 431, connection closed;
 *   - body over the handler's body_limit(): 413 sent as soon as the headers
 *     say so (Content-Length), before any body byte is read; with
 *     `Expect: 100-continue` the 100 is sent only when the body is
 *     acceptable; a chunked body that grows past the limit gets 413 too;
 *   - header section not complete within header_timeout_ms of its first
 *     byte (slowloris): 408, closed; no byte for idle_timeout_ms, between or
 *     inside requests: closed;
 *   - more than max_connections open: the new one gets 503 and is closed.
 * Malformed requests get 400 with a JSON body and the connection is closed.
 *
 * Several servers may listen on one address and port (SO_REUSEPORT), one
 * per worker loop; the kernel spreads connections between them.
 *
 * Threads: a server and its requests belong to the loop thread that created
 * it; every function taking a server must be called on that thread, except
 * http_server_stats() whose counters are atomic. http_listen_socket() and
 * http_probe_port() touch no server and may run on any thread.
 *
 * Requests, responses and the handler are declared in http_request.h, the
 * limits and counters in http_limits.h; both are part of this contract.
 */
#ifndef DCACHE_HTTP_SERVER_H
#define DCACHE_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/http_limits.h"
#include "http/http_request.h"

typedef struct http_server http_server_t;

/* Creates a server on `loop`. The limits and handler are copied. Returns NULL
 * on allocation failure. Owned by the caller; release with
 * http_server_shutdown() then http_server_free(). */
http_server_t *http_server_new(uv_loop_t *loop, const http_limits_t *limits,
                               const http_handler_t *handler);

/* Binds host:port with SO_REUSEPORT and starts accepting. port 0 picks a free
 * port; http_server_port() tells which. Returns 0 or a negative errno/uv
 * error code. */
int http_server_listen(http_server_t *s, const char *host, int port);
int http_server_port(const http_server_t *s);
/* The listen backlog of http_server_listen and of the other TCP services
 * that share its sockets. */
#define HTTP_LISTEN_BACKLOG 1024
/* The listening socket http_server_listen uses (SO_REUSEPORT, backlog
 * HTTP_LISTEN_BACKLOG), for other TCP services that share a port across
 * loops: *fd_out is a bound, listening socket and *port_out its port. */
int http_listen_socket(const char *host, int port, int *fd_out, int *port_out);
/* 0 when host:port is free, else a negative errno (EADDRINUSE). SO_REUSEPORT
 * lets any process of the same user share a port silently, so a node checks
 * its ports with this before its workers bind them. Port 0: always 0. */
int http_probe_port(const char *host, int port);

/* Graceful stop: stops accepting, closes idle connections, lets requests in
 * flight finish (their responses carry `Connection: close`), and calls
 * `done` once, on the loop thread, when every connection and handle is
 * closed; never from inside this call, so the caller may finish its own
 * bookkeeping first. Call it once per server. */
void http_server_shutdown(http_server_t *s, void (*done)(void *arg), void *arg);
/* Frees the server; only after the shutdown's `done` ran. */
void http_server_free(http_server_t *s);

/* The server's counters, owned by it (valid until http_server_free()). */
http_server_stats_t *http_server_stats(http_server_t *s);

#endif
