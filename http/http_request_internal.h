/* http_request_internal: the request's layout, for the connection that fills
 * it in (http_conn.c) and the accessors (http_request.c). Not a public
 * interface: the application sees http_request_t only through
 * http_request.h. */
#ifndef DCACHE_HTTP_REQUEST_INTERNAL_H
#define DCACHE_HTTP_REQUEST_INTERNAL_H

#include <stddef.h>

#include "http/http_request.h"

typedef struct http_header_ref {
    uint32_t name_off, name_len, value_off, value_len;
} http_header_ref_t;

struct http_request {
    /* How http_respond() answers: set by the connection that owns the
     * request, which is the only one that knows how to write to its
     * client. */
    void (*respond)(http_request_t *r, const http_response_t *resp);
    http_method_t method;
    uint8_t llhttp_method;  /* llhttp's code, for the method's name */
    const char *peer;       /* the connection's address text, owned by it */
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
    /* Header lines the handler added to whatever response this request
     * gets (http_request_add_headers); kept across requests, emptied by
     * the reset. */
    char *extra;
    size_t extra_len, extra_cap;
    /* The application's per-request state (http_request_app). */
    _Alignas(max_align_t) unsigned char app[HTTP_REQUEST_APP_BYTES];
};

#endif
