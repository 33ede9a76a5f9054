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
 * it; every function here must be called on that thread, except
 * http_server_stats() whose counters are atomic.
 */
#ifndef DCACHE_HTTP_SERVER_H
#define DCACHE_HTTP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_server http_server_t;
typedef struct http_request http_request_t;

typedef enum {
    HTTP_M_OTHER = 0,
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_PUT,
    HTTP_M_POST,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS,
} http_method_t;

typedef struct http_limits {
    size_t max_header_bytes;    /* default 16 KiB */
    unsigned max_headers;       /* default 100 */
    size_t max_body_bytes;      /* used when the handler has no body_limit; default 1 MiB */
    uint64_t header_timeout_ms; /* default 10 s */
    uint64_t idle_timeout_ms;   /* default 60 s */
    size_t max_connections;     /* per server; default 10000 */
} http_limits_t;

typedef struct http_handler {
    /* Called when the request's headers are complete: the largest body this
     * request may carry. NULL = limits.max_body_bytes. */
    size_t (*body_limit)(const http_request_t *req, void *ctx);
    /* Called with a complete request. The handler must call http_respond()
     * exactly once, before returning or later on the loop thread. */
    void (*on_request)(http_request_t *req, void *ctx);
    /* Called after every response is queued, including the ones the server
     * makes itself (400, 408, 413, 431, 503), for accounting. May be NULL. */
    void (*on_response)(const http_request_t *req, int status, void *ctx);
    void *ctx;
} http_handler_t;

typedef struct http_server_stats {
    atomic_uint_fast64_t connections_accepted;
    atomic_uint_fast64_t connections_rejected;   /* over max_connections */
    atomic_int_fast64_t connections_active;
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t malformed;              /* 400 from the parser */
    atomic_uint_fast64_t header_too_large;       /* 431 */
    atomic_uint_fast64_t body_too_large;         /* 413 */
    atomic_uint_fast64_t header_timeouts;        /* 408 */
    atomic_uint_fast64_t idle_timeouts;
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
} http_server_stats_t;

void http_limits_default(http_limits_t *l);

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
/* The listening socket http_server_listen uses (SO_REUSEPORT, backlog
 * 1024), for other TCP services that share a port across loops: *fd_out is
 * a bound, listening socket and *port_out its port. */
int http_listen_socket(const char *host, int port, int *fd_out, int *port_out);
/* 0 when host:port is free, else a negative errno (EADDRINUSE). SO_REUSEPORT
 * lets any process of the same user share a port silently, so a node checks
 * its ports with this before its workers bind them. Port 0: always 0. */
int http_probe_port(const char *host, int port);

/* Graceful stop: stops accepting, closes idle connections, lets requests in
 * flight finish (their responses carry `Connection: close`), and calls
 * `done` on the loop thread once every connection is closed. */
void http_server_shutdown(http_server_t *s, void (*done)(void *arg), void *arg);
/* Frees the server; only after the shutdown's `done` ran. */
void http_server_free(http_server_t *s);

http_server_stats_t *http_server_stats(http_server_t *s);

/* --- requests: valid from on_request until http_respond() returns --- */

http_method_t http_request_method(const http_request_t *r);
const char *http_request_method_name(const http_request_t *r);
/* The request target's path, still percent-encoded, and the query string
 * after '?' (empty when absent). Neither is NUL-terminated. */
const char *http_request_path(const http_request_t *r, size_t *len);
const char *http_request_query(const http_request_t *r, size_t *len);
/* Case-insensitive header lookup; NULL when absent. Not NUL-terminated. */
const char *http_request_header(const http_request_t *r, const char *name, size_t *len);
const char *http_request_body(const http_request_t *r, size_t *len);
/* uv_hrtime() when the request's first byte was parsed. */
uint64_t http_request_start_ns(const http_request_t *r);
/* The peer's address as text ("127.0.0.1:51234"). */
const char *http_request_peer(const http_request_t *r);
/* A small integer the handler may attach (e.g. which operation this is, for
 * on_response's accounting); 0 until set. */
void http_request_set_tag(http_request_t *r, int tag);
int http_request_tag(const http_request_t *r);

typedef struct http_response {
    int status;
    const char *content_type;      /* NULL = no Content-Type header */
    size_t content_type_len;       /* 0 = strlen(content_type) */
    /* Extra header lines, each ending in "\r\n"; NULL = none. Copied. */
    const char *headers;
    size_t headers_len;
    const void *body;
    size_t body_len;
    /* When set, the server keeps `body` without copying and calls
     * body_release(body_release_ctx) once it is written or dropped. When
     * NULL, a body is copied before http_respond() returns. */
    void (*body_release)(void *ctx);
    void *body_release_ctx;
} http_response_t;

/* Sends the response (HEAD requests get the headers and Content-Length but
 * no body). The request is invalid afterwards. */
void http_respond(http_request_t *r, const http_response_t *resp);
/* Convenience: a JSON body. */
void http_respond_json(http_request_t *r, int status, const char *json, size_t len);
/* Convenience: {"error": message, "code": code}. `message` is escaped. */
void http_respond_error(http_request_t *r, int status, const char *code, const char *message);

const char *http_status_reason(int status);

#endif
