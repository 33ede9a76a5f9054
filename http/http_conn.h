/* http_conn: one client connection of an http_server: reading, parsing with
 * llhttp, dispatching one request at a time, and writing responses in order.
 * Internal to http/; the public contract is http_server.h.
 *
 * Ownership: the server owns its connections (a linked list); a connection
 * owns its request, its buffered input and its queued output. A connection
 * whose socket is closed while its handler still holds the request lives on
 * (http_conn_t.refs) until the handler responds.
 */
#ifndef DCACHE_HTTP_CONN_H
#define DCACHE_HTTP_CONN_H

#include <llhttp.h>

#include "http/http_server.h"

typedef struct http_conn http_conn_t;

typedef struct http_header_ref {
    uint32_t name_off, name_len, value_off, value_len;
} http_header_ref_t;

struct http_request {
    http_conn_t *conn;
    http_method_t method;
    uint64_t start_ns;
    /* Request line and header bytes, copied out of the read buffer because
     * llhttp may deliver them in pieces across reads. */
    char *hbuf;
    size_t hbuf_len, hbuf_cap;
    size_t url_len; /* the URL is hbuf[0 .. url_len) */
    http_header_ref_t *headers;
    unsigned nheaders, headers_cap;
    char *body;
    size_t body_len, body_cap, body_limit;
    bool keep_alive;
    bool in_handler;  /* dispatched, no response yet */
    int tag;
};

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
    HTTP_CONN_CLOSING,
} http_conn_state_t;

struct http_conn {
    uv_tcp_t tcp;
    http_server_t *server;
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
    unsigned writes_in_flight;
    char peer[64];
};

/* Sets up a connection accepted on the server's listener and starts
 * reading. On failure the connection is closed and freed. */
void http_conn_start(http_server_t *s, http_conn_t *c);
/* Closes the socket; the connection is freed when nothing holds it. */
void http_conn_close(http_conn_t *c);
/* Closes the connection if it is between requests (shutdown, idle timeout). */
bool http_conn_close_if_idle(http_conn_t *c);
/* Called by the server's sweep timer. */
void http_conn_check_timeouts(http_conn_t *c, uint64_t now_ms);

/* Internal to the server, used by connections. */
uv_loop_t *http_server_loop(http_server_t *s);
const http_limits_t *http_server_limits(http_server_t *s);
const http_handler_t *http_server_handler(http_server_t *s);
bool http_server_draining(http_server_t *s);
const char *http_server_date(http_server_t *s);
void http_server_conn_closed(http_server_t *s, http_conn_t *c);
char *http_server_read_buffer(http_server_t *s, size_t *len);

#endif
