/* http_conn: one client connection of an http_server: reading, parsing with
 * llhttp, dispatching one request at a time, and writing responses in order.
 * Internal to http/; the public contract is http_server.h.
 *
 * A connection knows its server only through an http_conn_env_t, the few
 * things the server lends every connection of its loop, so the server
 * depends on connections and never the other way round.
 *
 * Ownership: the server allocates each connection, links it in its list
 * (prev/next are the server's) and owns the env, which must outlive every
 * connection pointing at it. A connection owns its request, its buffered
 * input and its queued output, and frees itself: once its socket is closed
 * and no handler holds its request (refs), which may be after the server
 * heard it closed (env->closed) if a handler still works on the request.
 *
 * Threads: a connection, its env and everything here belong to the server's
 * loop thread. The env's counters are atomic for readers on other threads.
 */
#ifndef DCACHE_HTTP_CONN_H
#define DCACHE_HTTP_CONN_H

#include <llhttp.h>
#include <time.h>
#include <uv.h>

#include "http/http_limits.h"
#include "http/http_request_internal.h"

typedef struct http_conn http_conn_t;

/* What a connection needs from its server: lent at start, read (and the
 * date cache written) on the loop thread only. */
typedef struct http_conn_env {
    uv_loop_t *loop;
    const http_limits_t *limits;
    const http_handler_t *handler;
    http_server_stats_t *stats;
    /* One read buffer for every connection of the loop: a read is parsed,
     * or copied into the connection's own input, before the next one. */
    char *read_buffer;
    size_t read_buffer_len;
    /* Set by the server when it shuts down: responses then close their
     * connection. */
    bool draining;
    /* Called once per connection, from libuv's close callback (never from
     * inside http_conn_close()), when its socket is closed: the server
     * unlinks it there. The connection may live on a little (a handler
     * still holds its request) but is no longer the server's. */
    void (*closed)(http_conn_t *c, void *ctx);
    void *ctx;
    /* The Date header, formatted once a second (per loop, so unshared). */
    char date[40];
    time_t date_sec;
} http_conn_env_t;

/* An output segment: bytes to write and what to do with them afterwards. */
typedef struct http_seg {
    const char *base;
    size_t len;
    void (*release)(void *ctx); /* NULL = nothing to release */
    void *ctx;
} http_seg_t;

typedef enum {
    HTTP_CONN_IDLE = 0,   /* between requests */
    HTTP_CONN_READING,    /* a request has started arriving */
    HTTP_CONN_BODY,       /* headers done, reading the body */
    HTTP_CONN_HANDLING,   /* the handler has the request */
    HTTP_CONN_STREAMING,  /* answered with a stream the application writes (http_stream.h) */
    HTTP_CONN_CLOSING,
} http_conn_state_t;

struct http_conn {
    uv_tcp_t tcp;
    http_conn_env_t *env;
    http_conn_t *prev, *next;
    llhttp_t parser;
    http_conn_state_t state;
    unsigned refs;            /* 1 for the open socket, 1 while the handler holds the request */
    bool processing;          /* inside http_conn_process(): no re-entry */
    bool reading;             /* uv_read_start active */
    bool close_after_write;   /* close once queued output is written */
    bool shut_down;           /* our side is half-closed; draining the client's */
    bool responded;           /* the current request has its response queued */
    int pending_status;       /* a server-made error to send after the parse stops */
    const char *pending_code, *pending_message;
    uint64_t request_start_ms, last_activity_ms;
    http_request_t req;
    /* Input received but not parsed yet (the next pipelined requests while
     * one is being handled). */
    char *in;
    size_t in_len, in_cap;
    /* Output: a growable buffer for small pieces and a list of segments
     * ready to write, in order. */
    char *wbuf;
    size_t wbuf_len, wbuf_cap;
    http_seg_t *segs;
    size_t nsegs, segs_cap;
    size_t segs_bytes;        /* bytes in segs, not yet handed to libuv */
    unsigned writes_in_flight;
    char peer[64];
    /* A streamed response (http_stream.h), which holds a ref while live. */
    bool stream_live;
    size_t stream_max;
    void (*stream_closed)(void *ctx);
    void *stream_ctx;
};

/* Sets up a connection the server accepted (c->tcp, zeroed otherwise) and
 * starts reading. */
void http_conn_start(http_conn_env_t *env, http_conn_t *c);
/* Closes the socket; env->closed follows from the close callback and the
 * connection is freed when nothing holds it. Safe to call again. */
void http_conn_close(http_conn_t *c);
/* Closes the connection if it is between requests (shutdown, idle timeout). */
bool http_conn_close_if_idle(http_conn_t *c);
/* Called by the server's sweep timer: sends 408 or closes connections that
 * waited too long. */
void http_conn_check_timeouts(http_conn_t *c, uint64_t now_ms);

#endif
