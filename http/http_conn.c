#include "http/http_conn.h"
#include "http/http_stream.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Bodies at least this large are written from the caller's memory instead
 * of being copied next to the headers. */
#define HTTP_ZERO_COPY_MIN 16384
/* Stop reading a client that does not read its responses. */
#define HTTP_WRITE_QUEUE_MAX (4u << 20)
/* Responses queued here and not yet handed to libuv: past either bound the
 * next pipelined request waits until the output drains (back-pressure), so
 * a burst of pipelined requests cannot grow the queue without limit. */
#define HTTP_PENDING_SEGS_MAX 64u
#define HTTP_PENDING_BYTES_MAX (1u << 20)
/* After a response that closes the connection, keep draining what the
 * client still sends for this long, so it reads our answer instead of a
 * reset. */
#define HTTP_LINGER_MS 2000

typedef struct http_write {
    uv_write_t req;
    http_conn_t *conn;
    size_t nsegs;
    uv_buf_t *bufs;           /* nsegs of them, after segs in the same allocation */
    http_seg_t segs[];
} http_write_t;

static void http_conn_process(http_conn_t *c);
static void http_conn_flush(http_conn_t *c);
static bool http_conn_output_full(http_conn_t *c);
static void http_conn_update_reading(http_conn_t *c);

/* ---------- small buffers ---------- */

static bool http_grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need) ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (!nb) return false;
    *buf = nb;
    *cap = ncap;
    return true;
}

static bool http_wbuf_append(http_conn_t *c, const void *data, size_t len)
{
    if (!http_grow(&c->wbuf, &c->wbuf_cap, c->wbuf_len + len)) return false;
    memcpy(c->wbuf + c->wbuf_len, data, len);
    c->wbuf_len += len;
    return true;
}

static bool http_push_seg(http_conn_t *c, const char *base, size_t len, void (*release)(void *), void *ctx)
{
    if (c->nsegs == c->segs_cap) {
        size_t ncap = c->segs_cap ? c->segs_cap * 2 : 4;
        http_seg_t *ns = realloc(c->segs, ncap * sizeof *ns);
        if (!ns) return false;
        c->segs = ns;
        c->segs_cap = ncap;
    }
    c->segs[c->nsegs++] = (http_seg_t){base, len, release, ctx};
    c->segs_bytes += len;
    return true;
}

static void http_seg_release(http_seg_t *s)
{
    if (s->release) s->release(s->ctx);
    s->release = NULL;
}

/* ---------- parser callbacks ---------- */

static http_conn_t *http_conn_of(llhttp_t *p)
{
    return (http_conn_t *)p->data;
}

static int http_fail(http_conn_t *c, int status, const char *code, const char *message)
{
    c->pending_status = status;
    c->pending_code = code;
    c->pending_message = message;
    return HPE_USER;
}

static int http_hbuf_append(http_conn_t *c, const char *at, size_t len)
{
    http_request_t *r = &c->req;
    const http_limits_t *lim = c->env->limits;
    if (r->hbuf_len + len > lim->max_header_bytes)
        return http_fail(c, 431, "header_too_large", "request header section too large");
    if (!http_grow(&r->hbuf, &r->hbuf_cap, r->hbuf_len + len))
        return http_fail(c, 503, "no_memory", "out of memory");
    memcpy(r->hbuf + r->hbuf_len, at, len);
    r->hbuf_len += len;
    return 0;
}

static int http_on_message_begin(llhttp_t *p)
{
    http_conn_t *c = http_conn_of(p);
    http_request_t *r = &c->req;
    r->hbuf_len = r->url_len = 0;
    r->nheaders = 0;
    r->body_len = 0;
    r->keep_alive = false;
    r->tag = 0;
    r->start_ns = uv_hrtime();
    c->state = HTTP_CONN_READING;
    c->request_start_ms = uv_now(c->env->loop);
    c->responded = false;
    return 0;
}

static int http_on_url(llhttp_t *p, const char *at, size_t len)
{
    return http_hbuf_append(http_conn_of(p), at, len);
}

static int http_on_url_complete(llhttp_t *p)
{
    http_conn_t *c = http_conn_of(p);
    c->req.url_len = c->req.hbuf_len;
    c->req.llhttp_method = p->method; /* parsed before the URL */
    return 0;
}

static int http_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = http_conn_of(p);
    http_request_t *r = &c->req;
    /* A field may arrive in several pieces; a new header starts when the
     * last one already has its value position. */
    if (r->nheaders == 0 || r->headers[r->nheaders - 1].value_off != UINT32_MAX) {
        const http_limits_t *lim = c->env->limits;
        if (r->nheaders >= lim->max_headers)
            return http_fail(c, 431, "too_many_headers", "too many request header fields");
        if (r->nheaders == r->headers_cap) {
            unsigned ncap = r->headers_cap ? r->headers_cap * 2 : 16;
            http_header_ref_t *nh = realloc(r->headers, ncap * sizeof *nh);
            if (!nh) return http_fail(c, 503, "no_memory", "out of memory");
            r->headers = nh;
            r->headers_cap = ncap;
        }
        r->headers[r->nheaders++] = (http_header_ref_t){(uint32_t)r->hbuf_len, 0, UINT32_MAX, 0};
    }
    int rc = http_hbuf_append(c, at, len);
    if (rc == 0) r->headers[r->nheaders - 1].name_len += (uint32_t)len;
    return rc;
}

static int http_on_header_field_complete(llhttp_t *p)
{
    http_request_t *r = &http_conn_of(p)->req;
    if (r->nheaders) r->headers[r->nheaders - 1].value_off = (uint32_t)r->hbuf_len;
    return 0;
}

static int http_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = http_conn_of(p);
    http_request_t *r = &c->req;
    int rc = http_hbuf_append(c, at, len);
    if (rc == 0 && r->nheaders) r->headers[r->nheaders - 1].value_len += (uint32_t)len;
    return rc;
}

static http_method_t http_method_from_llhttp(uint8_t m)
{
    switch (m) {
    case HTTP_GET: return HTTP_M_GET;
    case HTTP_HEAD: return HTTP_M_HEAD;
    case HTTP_PUT: return HTTP_M_PUT;
    case HTTP_POST: return HTTP_M_POST;
    case HTTP_DELETE: return HTTP_M_DELETE;
    case HTTP_OPTIONS: return HTTP_M_OPTIONS;
    default: return HTTP_M_OTHER;
    }
}

static int http_on_headers_complete(llhttp_t *p)
{
    http_conn_t *c = http_conn_of(p);
    http_request_t *r = &c->req;
    const http_handler_t *h = c->env->handler;
    r->method = http_method_from_llhttp(p->method);
    r->body_limit = h->body_limit ? h->body_limit(r, h->ctx) : c->env->limits->max_body_bytes;
    bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    if (has_length && p->content_length > r->body_limit) {
        c->pending_status = 413;
        c->pending_code = "body_too_large";
        c->pending_message = "request body too large";
        return -1;
    }
    bool expects_body = (has_length && p->content_length > 0) || (p->flags & F_CHUNKED);
    size_t vlen;
    const char *expect = http_request_header(r, "expect", &vlen);
    if (expect && expects_body) {
        if (vlen == 12 && strncasecmp(expect, "100-continue", 12) == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            http_wbuf_append(c, cont, sizeof cont - 1);
        } else {
            c->pending_status = 417;
            c->pending_code = "expectation_failed";
            c->pending_message = "only Expect: 100-continue is supported";
            return -1;
        }
    }
    if (has_length && p->content_length > r->body_cap) {
        char *nb = realloc(r->body, (size_t)p->content_length);
        if (!nb) {
            c->pending_status = 503;
            c->pending_code = "no_memory";
            c->pending_message = "out of memory";
            return -1;
        }
        r->body = nb;
        r->body_cap = (size_t)p->content_length;
    }
    c->state = HTTP_CONN_BODY;
    return 0;
}

static int http_on_body(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = http_conn_of(p);
    http_request_t *r = &c->req;
    if (r->body_len + len > r->body_limit)
        return http_fail(c, 413, "body_too_large", "request body too large");
    if (!http_grow(&r->body, &r->body_cap, r->body_len + len))
        return http_fail(c, 503, "no_memory", "out of memory");
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int http_on_message_complete(llhttp_t *p)
{
    http_conn_t *c = http_conn_of(p);
    c->req.keep_alive = llhttp_should_keep_alive(p) != 0;
    /* Stop here: the request is dispatched before the next one is parsed,
     * which is what keeps pipelined responses in order. */
    return HPE_PAUSED;
}

/* Every loop thread's parsers share these: constant from compile time, so no
 * thread ever writes them (llhttp_settings_init() only zeroes the struct). */
static const llhttp_settings_t http_settings = {
    .on_message_begin = http_on_message_begin,
    .on_url = http_on_url,
    .on_url_complete = http_on_url_complete,
    .on_header_field = http_on_header_field,
    .on_header_field_complete = http_on_header_field_complete,
    .on_header_value = http_on_header_value,
    .on_headers_complete = http_on_headers_complete,
    .on_body = http_on_body,
    .on_message_complete = http_on_message_complete,
};

/* ---------- responses ---------- */

/* The Date header changes once a second; formatting it per response would
 * cost more than the rest of a small response. */
static const char *http_conn_date(http_conn_env_t *env)
{
    time_t now = time(NULL);
    if (now != env->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(env->date, sizeof env->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        env->date_sec = now;
    }
    return env->date;
}

static char *http_put_uint(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

/* streamed: no Content-Length, the body follows until the connection
 * closes (http_stream.h). */
static void http_conn_queue_response(http_conn_t *c, http_method_t method, bool http10, const http_response_t *resp,
                                     bool keep_alive, bool streamed)
{
    const char *reason = http_status_reason(resp->status);
    size_t ct_len = resp->content_type ? (resp->content_type_len ? resp->content_type_len : strlen(resp->content_type)) : 0;
    size_t need = 128 + strlen(reason) + ct_len + resp->headers_len + c->req.extra_len;
    bool no_body = resp->status == 204 || resp->status == 304 || (resp->status >= 100 && resp->status < 200);
    bool send_body = !no_body && method != HTTP_M_HEAD && resp->body_len > 0;
    bool inline_body = send_body && !(resp->body_release && resp->body_len >= HTTP_ZERO_COPY_MIN);
    if (inline_body) need += resp->body_len;
    if (!http_grow(&c->wbuf, &c->wbuf_cap, c->wbuf_len + need)) {
        if (resp->body_release) resp->body_release(resp->body_release_ctx);
        c->close_after_write = true;
        return;
    }
    char *p = c->wbuf + c->wbuf_len;
    memcpy(p, "HTTP/1.1 ", 9);
    p = http_put_uint(p + 9, (uint64_t)resp->status);
    *p++ = ' ';
    size_t rl = strlen(reason);
    memcpy(p, reason, rl);
    p += rl;
    static const char server_hdr[] = "\r\nServer: dcache\r\nDate: ";
    memcpy(p, server_hdr, sizeof server_hdr - 1);
    p += sizeof server_hdr - 1;
    const char *date = http_conn_date(c->env);
    size_t dl = strlen(date);
    memcpy(p, date, dl);
    p += dl;
    *p++ = '\r';
    *p++ = '\n';
    if (ct_len) {
        memcpy(p, "Content-Type: ", 14);
        memcpy(p + 14, resp->content_type, ct_len);
        p += 14 + ct_len;
        *p++ = '\r';
        *p++ = '\n';
    }
    if (!no_body && !streamed) {
        memcpy(p, "Content-Length: ", 16);
        p = http_put_uint(p + 16, resp->body_len);
        *p++ = '\r';
        *p++ = '\n';
    }
    if (!keep_alive) {
        memcpy(p, "Connection: close\r\n", 19);
        p += 19;
    } else if (http10) {
        memcpy(p, "Connection: keep-alive\r\n", 24);
        p += 24;
    }
    if (resp->headers_len) {
        memcpy(p, resp->headers, resp->headers_len);
        p += resp->headers_len;
    }
    if (c->req.extra_len) {
        memcpy(p, c->req.extra, c->req.extra_len);
        p += c->req.extra_len;
    }
    *p++ = '\r';
    *p++ = '\n';
    if (inline_body) {
        memcpy(p, resp->body, resp->body_len);
        p += resp->body_len;
    }
    c->wbuf_len = (size_t)(p - c->wbuf);
    if (send_body && !inline_body) {
        /* Keep order: what is buffered goes first, then the body itself. */
        bool ok = true;
        if (c->wbuf_len) {
            ok = http_push_seg(c, c->wbuf, c->wbuf_len, free, c->wbuf);
            if (ok) {
                c->wbuf = NULL;
                c->wbuf_len = c->wbuf_cap = 0;
            }
        }
        if (!ok || !http_push_seg(c, resp->body, resp->body_len, resp->body_release, resp->body_release_ctx)) {
            resp->body_release(resp->body_release_ctx);
            c->close_after_write = true;
        }
    } else if (resp->body_release) {
        resp->body_release(resp->body_release_ctx);
    }
}

/* Resets the request for the next one on this connection; large buffers
 * are given back so an idle connection holds little memory. */
static void http_request_reset(http_request_t *r)
{
    r->in_handler = false;
    r->hbuf_len = r->url_len = 0;
    r->nheaders = 0;
    r->body_len = 0;
    r->extra_len = 0;
    if (r->body_cap > 65536) {
        free(r->body);
        r->body = NULL;
        r->body_cap = 0;
    }
}

static void http_conn_free(http_conn_t *c)
{
    free(c->req.hbuf);
    free(c->req.extra);
    free(c->req.headers);
    free(c->req.body);
    free(c->in);
    free(c->wbuf);
    for (size_t i = 0; i < c->nsegs; i++) http_seg_release(&c->segs[i]);
    free(c->segs);
    free(c);
}

static void http_conn_unref(http_conn_t *c)
{
    if (--c->refs == 0) http_conn_free(c);
}

/* The request's respond hook: every request is the `req` of its connection. */
static void http_conn_respond(http_request_t *r, const http_response_t *resp)
{
    http_conn_t *c = (http_conn_t *)((char *)r - offsetof(http_conn_t, req));
    if (!r->in_handler) {
        /* A second response to one request is a handler bug; dropping it
         * keeps the connection's framing intact. */
        if (resp->body_release) resp->body_release(resp->body_release_ctx);
        return;
    }
    const http_handler_t *h = c->env->handler;
    if (c->state == HTTP_CONN_CLOSING) {
        /* The client went away while the handler worked. */
        if (resp->body_release) resp->body_release(resp->body_release_ctx);
        if (h->on_response) h->on_response(r, resp->status, h->ctx);
        r->in_handler = false;
        http_conn_unref(c);
        return;
    }
    bool keep_alive = r->keep_alive && !c->env->draining;
    http_conn_queue_response(c, r->method, c->parser.http_minor == 0, resp, keep_alive, false);
    if (h->on_response) h->on_response(r, resp->status, h->ctx);
    http_request_reset(r);
    c->responded = true;
    c->state = HTTP_CONN_IDLE;
    c->last_activity_ms = uv_now(c->env->loop);
    if (!keep_alive) c->close_after_write = true;
    c->refs--; /* the handler's hold; the socket's is still there */
    if (!c->processing) {
        http_conn_process(c);
    }
}

/* An error the server answers itself; the connection closes after it. */
static void http_conn_send_error(http_conn_t *c, int status, const char *code, const char *message)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"code\":\"%s\"}", message, code);
    http_response_t resp = {.status = status, .content_type = "application/json", .body = body, .body_len = (size_t)n};
    http_conn_queue_response(c, HTTP_M_OTHER, false, &resp, false, false);
    const http_handler_t *h = c->env->handler;
    if (h->on_response) h->on_response(&c->req, status, h->ctx);
    c->close_after_write = true;
    http_server_stats_t *st = c->env->stats;
    switch (status) {
    case 400: atomic_fetch_add_explicit(&st->malformed, 1, memory_order_relaxed); break;
    case 408: atomic_fetch_add_explicit(&st->header_timeouts, 1, memory_order_relaxed); break;
    case 413: atomic_fetch_add_explicit(&st->body_too_large, 1, memory_order_relaxed); break;
    case 431: atomic_fetch_add_explicit(&st->header_too_large, 1, memory_order_relaxed); break;
    default: break;
    }
}

/* ---------- reading and parsing ---------- */

static void http_conn_dispatch(http_conn_t *c)
{
    http_request_t *r = &c->req;
    const http_handler_t *h = c->env->handler;
    atomic_fetch_add_explicit(&c->env->stats->requests, 1, memory_order_relaxed);
    c->state = HTTP_CONN_HANDLING;
    c->responded = false;
    r->in_handler = true;
    c->refs++;
    h->on_request(r, h->ctx);
}

/* Parses as much of data[0..len) as possible; returns the bytes consumed.
 * Stops early while a handler holds a request or the connection closes. */
static size_t http_conn_parse(http_conn_t *c, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len && c->state != HTTP_CONN_HANDLING && c->state != HTTP_CONN_CLOSING &&
           c->state != HTTP_CONN_STREAMING && !c->close_after_write && !http_conn_output_full(c)) {
        llhttp_errno_t err = llhttp_execute(&c->parser, data + off, len - off);
        if (err == HPE_OK) return len;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            off = (size_t)(llhttp_get_error_pos(&c->parser) - data);
            if (err == HPE_PAUSED) {
                llhttp_resume(&c->parser);
            } else {
                /* No protocol upgrades here: answer, then close. */
                c->req.keep_alive = false;
                off = len;
            }
            http_conn_dispatch(c);
            continue;
        }
        if (c->pending_status) {
            http_conn_send_error(c, c->pending_status, c->pending_code, c->pending_message);
            c->pending_status = 0;
        } else {
            http_conn_send_error(c, 400, "bad_request", "malformed HTTP request");
        }
        return len;
    }
    return off;
}

/* Parses buffered input, flushes output and decides whether to read on. */
static void http_conn_process(http_conn_t *c)
{
    if (c->processing) return;
    c->processing = true;
    c->refs++; /* a handler may close the connection under us */
    /* Parse until the input is used up or something makes us wait: a
     * handler holding a request, or output to drain first (then the write
     * callback comes back here). */
    for (;;) {
        size_t used = 0;
        if (c->in_len && c->state != HTTP_CONN_CLOSING) {
            used = http_conn_parse(c, c->in, c->in_len);
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
        }
        http_conn_flush(c);
        if (!used || !c->in_len || c->state == HTTP_CONN_CLOSING || c->state == HTTP_CONN_HANDLING ||
            c->close_after_write || c->writes_in_flight)
            break;
    }
    http_conn_update_reading(c);
    c->processing = false;
    http_conn_unref(c);
}

static void http_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http_conn_t *c = h->data;
    buf->base = c->env->read_buffer;
    buf->len = c->env->read_buffer_len;
}

static void http_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    http_conn_t *c = stream->data;
    if (nread < 0) {
        http_conn_close(c);
        return;
    }
    if (nread == 0) return;
    atomic_fetch_add_explicit(&c->env->stats->bytes_in, (uint64_t)nread, memory_order_relaxed);
    c->last_activity_ms = uv_now(c->env->loop);
    if (c->close_after_write || c->state == HTTP_CONN_CLOSING || c->state == HTTP_CONN_STREAMING)
        return; /* lingering, or a stream's client, which has nothing more to say: discard */
    c->processing = true;
    c->refs++;
    size_t used = 0;
    if (c->in_len == 0) used = http_conn_parse(c, buf->base, (size_t)nread);
    size_t rest = (size_t)nread - used;
    if (rest && c->state != HTTP_CONN_CLOSING && !c->close_after_write) {
        if (http_grow(&c->in, &c->in_cap, c->in_len + rest)) {
            memcpy(c->in + c->in_len, buf->base + used, rest);
            c->in_len += rest;
        } else {
            http_conn_close(c);
        }
    }
    c->processing = false;
    http_conn_process(c);
    http_conn_unref(c);
}

static void http_conn_update_reading(http_conn_t *c)
{
    if (c->state == HTTP_CONN_CLOSING) return;
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    bool want = c->state != HTTP_CONN_HANDLING && c->in_len == 0 &&
                uv_stream_get_write_queue_size(s) < HTTP_WRITE_QUEUE_MAX;
    if (c->close_after_write) want = true; /* lingering drain */
    if (want && !c->reading) {
        if (uv_read_start(s, http_alloc_cb, http_read_cb) == 0) c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop(s);
        c->reading = false;
    }
}

/* ---------- writing ---------- */

static void http_shutdown_cb(uv_shutdown_t *req, int status)
{
    free(req);
}

static void http_conn_maybe_finish(http_conn_t *c)
{
    if (!c->close_after_write || c->shut_down || c->writes_in_flight || c->nsegs || c->wbuf_len ||
        c->state == HTTP_CONN_CLOSING)
        return;
    if (c->state == HTTP_CONN_HANDLING) return;
    /* Half-close and drain until the client closes or the linger ends. */
    uv_shutdown_t *sd = malloc(sizeof *sd);
    if (!sd || uv_shutdown(sd, (uv_stream_t *)&c->tcp, http_shutdown_cb) != 0) {
        free(sd);
        http_conn_close(c);
        return;
    }
    c->shut_down = true;
    c->last_activity_ms = uv_now(c->env->loop);
}

static void http_write_cb(uv_write_t *req, int status)
{
    http_write_t *w = (http_write_t *)req;
    http_conn_t *c = w->conn;
    for (size_t i = 0; i < w->nsegs; i++) http_seg_release(&w->segs[i]);
    free(w);
    c->writes_in_flight--;
    if (status < 0) {
        http_conn_close(c);
        return;
    }
    if (c->state != HTTP_CONN_CLOSING) {
        http_conn_maybe_finish(c);
        if (c->state != HTTP_CONN_CLOSING && !c->processing) http_conn_process(c);
    }
}

static bool http_conn_output_full(http_conn_t *c)
{
    return c->nsegs >= HTTP_PENDING_SEGS_MAX || c->wbuf_len + c->segs_bytes >= HTTP_PENDING_BYTES_MAX ||
           uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) >= HTTP_WRITE_QUEUE_MAX;
}

static void http_conn_flush(http_conn_t *c)
{
    if (c->state == HTTP_CONN_CLOSING) return;
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    http_server_stats_t *st = c->env->stats;
    if (c->nsegs == 0 && c->writes_in_flight == 0 && c->wbuf_len) {
        /* Fast path: one buffer, written straight away, kept for reuse. */
        uv_buf_t b = uv_buf_init(c->wbuf, (unsigned)c->wbuf_len);
        int n = uv_try_write(s, &b, 1);
        if (n > 0) {
            atomic_fetch_add_explicit(&st->bytes_out, (uint64_t)n, memory_order_relaxed);
            memmove(c->wbuf, c->wbuf + n, c->wbuf_len - (size_t)n);
            c->wbuf_len -= (size_t)n;
        } else if (n < 0 && n != UV_EAGAIN) {
            http_conn_close(c);
            return;
        }
    }
    if (c->wbuf_len) {
        if (!http_push_seg(c, c->wbuf, c->wbuf_len, free, c->wbuf)) {
            http_conn_close(c);
            return;
        }
        c->wbuf = NULL;
        c->wbuf_len = c->wbuf_cap = 0;
    }
    if (c->nsegs) {
        http_write_t *w = malloc(sizeof *w + c->nsegs * (sizeof(http_seg_t) + sizeof(uv_buf_t)));
        if (!w) {
            http_conn_close(c);
            return;
        }
        w->conn = c;
        w->nsegs = c->nsegs;
        w->bufs = (uv_buf_t *)(void *)&w->segs[c->nsegs];
        size_t total = 0;
        for (size_t i = 0; i < c->nsegs; i++) {
            w->segs[i] = c->segs[i];
            w->bufs[i] = uv_buf_init((char *)c->segs[i].base, (unsigned)c->segs[i].len);
            total += c->segs[i].len;
        }
        c->nsegs = 0;
        c->segs_bytes = 0;
        if (uv_write(&w->req, s, w->bufs, (unsigned)w->nsegs, http_write_cb) != 0) {
            for (size_t i = 0; i < w->nsegs; i++) http_seg_release(&w->segs[i]);
            free(w);
            http_conn_close(c);
            return;
        }
        atomic_fetch_add_explicit(&st->bytes_out, total, memory_order_relaxed);
        c->writes_in_flight++;
    }
    http_conn_maybe_finish(c);
}

/* ---------- lifecycle ---------- */

static void http_close_cb(uv_handle_t *h)
{
    http_conn_t *c = h->data;
    c->env->closed(c, c->env->ctx);
    if (c->stream_live) {
        c->stream_live = false;
        atomic_fetch_sub_explicit(&c->env->stats->streams_active, 1, memory_order_relaxed);
        c->stream_closed(c->stream_ctx);
        http_conn_unref(c); /* the stream's hold */
    }
    http_conn_unref(c);
}

void http_conn_close(http_conn_t *c)
{
    if (c->state == HTTP_CONN_CLOSING && uv_is_closing((uv_handle_t *)&c->tcp)) return;
    c->state = HTTP_CONN_CLOSING;
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, http_close_cb);
}

bool http_conn_close_if_idle(http_conn_t *c)
{
    /* A stream waits for nothing from its client: shutting down ends it. */
    if (c->state == HTTP_CONN_STREAMING) {
        http_conn_close(c);
        return true;
    }
    if (c->state != HTTP_CONN_IDLE || c->in_len || c->writes_in_flight) return false;
    http_conn_close(c);
    return true;
}

void http_conn_check_timeouts(http_conn_t *c, uint64_t now_ms)
{
    const http_limits_t *lim = c->env->limits;
    http_server_stats_t *st = c->env->stats;
    switch (c->state) {
    case HTTP_CONN_READING:
        if (!c->close_after_write && now_ms - c->request_start_ms > lim->header_timeout_ms) {
            http_conn_send_error(c, 408, "request_timeout", "request headers not received in time");
            http_conn_flush(c);
        } else if (c->close_after_write && now_ms - c->last_activity_ms > HTTP_LINGER_MS) {
            http_conn_close(c);
        }
        break;
    case HTTP_CONN_STREAMING:
        /* Ended and half-closed: the client has a linger to hang up. */
        if (c->close_after_write && c->shut_down && now_ms - c->last_activity_ms > HTTP_LINGER_MS) http_conn_close(c);
        break;
    case HTTP_CONN_IDLE:
    case HTTP_CONN_BODY:
        if (c->close_after_write) {
            if (now_ms - c->last_activity_ms > HTTP_LINGER_MS) http_conn_close(c);
        } else if (now_ms - c->last_activity_ms > lim->idle_timeout_ms) {
            atomic_fetch_add_explicit(&st->idle_timeouts, 1, memory_order_relaxed);
            http_conn_close(c);
        }
        break;
    default:
        break;
    }
}

void http_conn_start(http_conn_env_t *env, http_conn_t *c)
{
    c->env = env;
    c->tcp.data = c;
    c->refs = 1;
    c->req.respond = http_conn_respond;
    c->req.peer = c->peer;
    c->last_activity_ms = uv_now(env->loop);
    llhttp_init(&c->parser, HTTP_REQUEST, &http_settings);
    c->parser.data = c;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    c->peer[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char host[INET6_ADDRSTRLEN] = "";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_conn_update_reading(c);
}

/* ---------- streamed responses (http_stream.h) ---------- */

#define HTTP_STREAM_MAX_DEFAULT (256u << 10)

static http_conn_t *http_conn_of_stream(http_stream_t *s)
{
    return (http_conn_t *)(void *)s;
}

http_stream_t *http_respond_stream(http_request_t *r, const http_response_t *head, const http_stream_config_t *cfg)
{
    http_conn_t *c = (http_conn_t *)((char *)r - offsetof(http_conn_t, req));
    const http_handler_t *h = c->env->handler;
    if (!r->in_handler) return NULL;
    r->in_handler = false;
    if (h->on_response) h->on_response(r, head->status, h->ctx);
    if (c->state == HTTP_CONN_CLOSING) {
        http_conn_unref(c); /* the handler's hold */
        return NULL;
    }
    /* The head as any response's, then no Content-Length: the body runs
     * until the connection closes. */
    http_response_t resp = *head;
    resp.body = NULL;
    resp.body_len = 0;
    resp.body_release = NULL;
    http_conn_queue_response(c, r->method, c->parser.http_minor == 0, &resp, false, true);
    c->in_len = 0; /* requests pipelined behind this one are never answered */
    http_request_reset(r);
    c->responded = true;
    c->state = HTTP_CONN_STREAMING;
    c->stream_live = true;
    c->stream_max = cfg->max_buffered ? cfg->max_buffered : HTTP_STREAM_MAX_DEFAULT;
    c->stream_closed = cfg->closed;
    c->stream_ctx = cfg->ctx;
    atomic_fetch_add_explicit(&c->env->stats->streams_active, 1, memory_order_relaxed);
    /* The handler's hold on the connection is the stream's now. */
    http_conn_flush(c);
    http_conn_update_reading(c);
    return (http_stream_t *)(void *)c;
}

size_t http_stream_buffered(http_stream_t *s)
{
    http_conn_t *c = http_conn_of_stream(s);
    if (c->state == HTTP_CONN_CLOSING) return 0;
    return c->wbuf_len + c->segs_bytes + uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

bool http_stream_write(http_stream_t *s, const void *data, size_t len)
{
    http_conn_t *c = http_conn_of_stream(s);
    if (c->state == HTTP_CONN_CLOSING) return false;
    if (http_stream_buffered(s) + len > c->stream_max) {
        atomic_fetch_add_explicit(&c->env->stats->streams_slow, 1, memory_order_relaxed);
        http_conn_close(c);
        return false;
    }
    if (!http_wbuf_append(c, data, len)) {
        http_conn_close(c);
        return false;
    }
    c->last_activity_ms = uv_now(c->env->loop);
    http_conn_flush(c);
    return c->state != HTTP_CONN_CLOSING;
}

void http_stream_end(http_stream_t *s)
{
    http_conn_t *c = http_conn_of_stream(s);
    if (!c->stream_live) return;
    c->stream_live = false;
    atomic_fetch_sub_explicit(&c->env->stats->streams_active, 1, memory_order_relaxed);
    if (c->state != HTTP_CONN_CLOSING) {
        c->close_after_write = true;
        http_conn_flush(c);
    }
    http_conn_unref(c);
}
