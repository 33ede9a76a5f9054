/* http_stream: a response whose body is written over time (Server-Sent
 * Events), instead of all at once by http_respond.
 *
 * http_respond_stream answers the request with a status line and headers
 * but no Content-Length and `Connection: close`: the body is whatever the
 * application writes until it ends the stream, and the connection closes
 * after it. The request is consumed as by http_respond (the response hook
 * runs now); the connection reads nothing more from the client but its
 * going away.
 *
 * Slow consumers are dropped, not buffered without end: a write that would
 * leave more than max_buffered bytes unsent closes the connection instead
 * (counted in the server's slow_streams).
 *
 * Lifetime: the stream lives until the application ends it
 * (http_stream_end) or the connection closes under it (the client left, a
 * write failed, it was too slow, the server shuts down), whichever comes
 * first. In the second case `closed(ctx)` runs once, from the loop, never
 * from inside a call made by the application; the stream is invalid once
 * it returns, and must not be ended. After http_stream_end, `closed` never
 * runs.
 *
 * Threads: the loop thread of the request's server.
 */
#ifndef DCACHE_HTTP_STREAM_H
#define DCACHE_HTTP_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http_request.h"

typedef struct http_stream http_stream_t;

typedef struct http_stream_config {
    size_t max_buffered;          /* 0: 256 KiB */
    void (*closed)(void *ctx);    /* required */
    void *ctx;
} http_stream_config_t;

/* head: status, content type and extra headers (its body is ignored).
 * NULL when the client is already gone: the request is consumed all the
 * same and `closed` will not run. */
http_stream_t *http_respond_stream(http_request_t *r, const http_response_t *head, const http_stream_config_t *cfg);
/* Queues len bytes. false when the stream is closing (the client left, or
 * this write would pass max_buffered): `closed` follows. */
bool http_stream_write(http_stream_t *s, const void *data, size_t len);
/* Bytes written by the application and not yet sent. */
size_t http_stream_buffered(http_stream_t *s);
/* Ends the body: the connection closes once it is sent. s is invalid after. */
void http_stream_end(http_stream_t *s);

#endif
