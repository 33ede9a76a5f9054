/* http_request: one HTTP/1.1 request as the application sees it (method,
 * target, headers, body), the response it answers with, and the handler a
 * server hands complete requests to.
 *
 * A connection (http_conn) parses the request and decides how a response is
 * written; this module only reads what was parsed and passes the response
 * on, so it depends on neither the connection nor the server.
 *
 * Ownership: the connection owns the request and every byte an accessor
 * returns; nothing here is NUL-terminated unless said so. A request and those
 * bytes are valid from on_request until http_respond() returns.
 *
 * Threads: a request belongs to the loop thread of the server that parsed
 * it; call everything here on that thread.
 */
#ifndef DCACHE_HTTP_REQUEST_H
#define DCACHE_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* The application's side. Every callback runs on the loop thread; ctx is
 * the application's and must outlive the server. */
typedef struct http_handler {
    /* Called while parsing, when the request's headers are complete: the
     * largest body this request may carry. NULL = limits.max_body_bytes. */
    size_t (*body_limit)(const http_request_t *req, void *ctx);
    /* Called once per complete request. The handler must call
     * http_respond() exactly once, before returning or later on the loop
     * thread. Pipelined requests are dispatched as soon as the previous one
     * is answered, so on_request for the next request may run inside
     * http_respond(): keep no state across that call that the next request
     * could change. */
    void (*on_request)(http_request_t *req, void *ctx);
    /* Called once per response as it is queued, from inside http_respond()
     * or, for the ones the server makes itself (400, 408, 413, 431, 503),
     * from inside its own processing; for accounting. May be NULL. */
    void (*on_response)(const http_request_t *req, int status, void *ctx);
    void *ctx;
} http_handler_t;

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
/* The peer's address as text ("127.0.0.1:51234"), NUL-terminated. */
const char *http_request_peer(const http_request_t *r);
/* A small integer the handler may attach (e.g. which operation this is, for
 * on_response's accounting); 0 until set. */
void http_request_set_tag(http_request_t *r, int tag);
int http_request_tag(const http_request_t *r);
/* Header lines ("Name: value\r\n"...) every response to this request
 * carries, whichever handler or error answers it (CORS, for one). At most
 * HTTP_EXTRA_HEADERS_MAX bytes in all; false (nothing added) beyond that
 * or when memory runs out. */
#define HTTP_EXTRA_HEADERS_MAX 1024
bool http_request_add_headers(http_request_t *r, const char *lines, size_t len);

/* Room the application may use for its own state of this request (who
 * asked, the request id), suitably aligned for any type. Not cleared
 * between requests: the application sets it up when on_request starts. */
#define HTTP_REQUEST_APP_BYTES 160
void *http_request_app(const http_request_t *r);

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
     * body_release(body_release_ctx) exactly once, on the loop thread, once
     * it is written or dropped (possibly before http_respond() returns).
     * When NULL, a body is copied before http_respond() returns. */
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
