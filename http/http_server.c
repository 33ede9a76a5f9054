#include "http/http_server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http_conn.h"

#define HTTP_READ_BUFFER 65536
#define HTTP_SWEEP_MS 250

struct http_server {
    uv_loop_t *loop;
    http_limits_t limits;
    http_handler_t handler;
    uv_tcp_t listener;
    bool listening;
    uv_timer_t sweep;
    http_conn_t *conns;      /* every open connection */
    size_t nconns;
    bool draining;
    bool sweep_closing;
    void (*on_drained)(void *arg);
    void *on_drained_arg;
    unsigned handles_open;   /* listener + sweep timer, for shutdown */
    int port;
    char date[40];
    time_t date_sec;
    char read_buffer[HTTP_READ_BUFFER];
    http_server_stats_t stats;
};

void http_limits_default(http_limits_t *l)
{
    l->max_header_bytes = 16384;
    l->max_headers = 100;
    l->max_body_bytes = 1u << 20;
    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->max_connections = 10000;
}

uv_loop_t *http_server_loop(http_server_t *s)
{
    return s->loop;
}

const http_limits_t *http_server_limits(http_server_t *s)
{
    return &s->limits;
}

const http_handler_t *http_server_handler(http_server_t *s)
{
    return &s->handler;
}

bool http_server_draining(http_server_t *s)
{
    return s->draining;
}

http_server_stats_t *http_server_stats(http_server_t *s)
{
    return &s->stats;
}

char *http_server_read_buffer(http_server_t *s, size_t *len)
{
    *len = sizeof s->read_buffer;
    return s->read_buffer;
}

/* The Date header changes once a second; formatting it per response would
 * cost more than the rest of a small response. */
const char *http_server_date(http_server_t *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

static void http_handle_closed(uv_handle_t *h);

static void http_server_maybe_drained(http_server_t *s)
{
    if (!s->draining || s->nconns) return;
    if (!s->sweep_closing) {
        s->sweep_closing = true;
        uv_close((uv_handle_t *)&s->sweep, http_handle_closed);
        return;
    }
    if (s->handles_open == 0 && s->on_drained) {
        void (*cb)(void *) = s->on_drained;
        s->on_drained = NULL;
        cb(s->on_drained_arg);
    }
}

void http_server_conn_closed(http_server_t *s, http_conn_t *c)
{
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nconns--;
    atomic_fetch_sub_explicit(&s->stats.connections_active, 1, memory_order_relaxed);
    http_server_maybe_drained(s);
}

static void http_sweep_cb(uv_timer_t *t)
{
    http_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (http_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (s->draining) http_conn_close_if_idle(c);
        else http_conn_check_timeouts(c, now);
    }
}

http_server_t *http_server_new(uv_loop_t *loop, const http_limits_t *limits, const http_handler_t *handler)
{
    http_server_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->limits = *limits;
    s->handler = *handler;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    s->handles_open = 1;
    uv_timer_start(&s->sweep, http_sweep_cb, HTTP_SWEEP_MS, HTTP_SWEEP_MS);
    uv_unref((uv_handle_t *)&s->sweep);
    return s;
}

static void http_reject(uv_stream_t *listener, http_server_t *s)
{
    /* Accept and answer at once so the client learns why, instead of
     * waiting in the backlog. */
    uv_tcp_t *tmp = malloc(sizeof *tmp);
    if (!tmp) return;
    uv_tcp_init(s->loop, tmp);
    atomic_fetch_add_explicit(&s->stats.connections_rejected, 1, memory_order_relaxed);
    uv_os_fd_t fd;
    if (uv_accept(listener, (uv_stream_t *)tmp) == 0 && uv_fileno((uv_handle_t *)tmp, &fd) == 0) {
        static const char msg[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 56\r\n"
            "Connection: close\r\n\r\n{\"error\":\"too many connections\",\"code\":\"too_many_conns\"}";
        ssize_t n = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
}

static void http_on_connection(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    if (status < 0 || s->draining) return;
    if (s->nconns >= s->limits.max_connections) {
        http_reject(listener, s);
        return;
    }
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->server = s;
    c->refs = 1;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->state = HTTP_CONN_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    atomic_fetch_add_explicit(&s->stats.connections_accepted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->stats.connections_active, 1, memory_order_relaxed);
    http_conn_start(s, c);
}

int http_listen_socket(const char *host, int port, int *fd_out, int *port_out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) return -EINVAL;
    /* libuv 1.44 cannot set SO_REUSEPORT, so the socket is made here and
     * handed over; every worker binds its own and the kernel balances. */
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        freeaddrinfo(res);
        return rc;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        rc = -errno;
        close(fd);
        freeaddrinfo(res);
        return rc;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

int http_probe_port(const char *host, int port)
{
    if (port == 0) return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0) return -EINVAL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
    } else {
        /* SO_REUSEADDR only: a socket another process holds with
         * SO_REUSEPORT makes this bind fail, as it should. */
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) rc = -errno;
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

int http_server_listen(http_server_t *s, const char *host, int port)
{
    int fd, rc;
    if ((rc = http_listen_socket(host, port, &fd, &s->port)) != 0) return rc;
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_open(&s->listener, fd)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 1024, http_on_connection)) != 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        return rc;
    }
    s->listening = true;
    s->handles_open++;
    return 0;
}

int http_server_port(const http_server_t *s)
{
    return s->port;
}

static void http_handle_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->handles_open--;
    http_server_maybe_drained(s);
}

void http_server_shutdown(http_server_t *s, void (*done)(void *arg), void *arg)
{
    s->draining = true;
    s->on_drained = done;
    s->on_drained_arg = arg;
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, http_handle_closed);
    }
    /* Keep the sweep running (referenced) so connections still in flight
     * are closed as soon as their response is out. */
    uv_ref((uv_handle_t *)&s->sweep);
    for (http_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        http_conn_close_if_idle(c);
    }
    if (s->nconns) uv_timer_start(&s->sweep, http_sweep_cb, 50, 50);
    http_server_maybe_drained(s);
}

void http_server_free(http_server_t *s)
{
    free(s);
}

/* ---------- request accessors ---------- */

http_method_t http_request_method(const http_request_t *r)
{
    return r->method;
}

const char *http_request_method_name(const http_request_t *r)
{
    return llhttp_method_name((llhttp_method_t)r->conn->parser.method);
}

/* Splits the request target into path and query; an absolute-form target
 * (http://host/path) is reduced to its path. */
static void http_request_target(const http_request_t *r, const char **path, size_t *plen, const char **query,
                                size_t *qlen)
{
    const char *u = r->hbuf;
    size_t n = r->url_len;
    size_t start = 0;
    if (n > 7 && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0)) {
        const char *slash = memchr(u + 8, '/', n - 8);
        start = slash ? (size_t)(slash - u) : n;
    }
    size_t end = n;
    const char *hash = memchr(u + start, '#', n - start);
    if (hash) end = (size_t)(hash - u);
    const char *q = memchr(u + start, '?', end - start);
    size_t pend = q ? (size_t)(q - u) : end;
    *path = u + start;
    *plen = pend - start;
    *query = q ? q + 1 : u + end;
    *qlen = q ? end - (pend + 1) : 0;
}

const char *http_request_path(const http_request_t *r, size_t *len)
{
    const char *p, *q;
    size_t ql;
    http_request_target(r, &p, len, &q, &ql);
    return p;
}

const char *http_request_query(const http_request_t *r, size_t *len)
{
    const char *p, *q;
    size_t pl;
    http_request_target(r, &p, &pl, &q, len);
    return q;
}

const char *http_request_header(const http_request_t *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (unsigned i = 0; i < r->nheaders; i++) {
        const http_header_ref_t *h = &r->headers[i];
        if (h->name_len == nl && h->value_off != UINT32_MAX && strncasecmp(r->hbuf + h->name_off, name, nl) == 0) {
            const char *v = r->hbuf + h->value_off;
            size_t vl = h->value_len;
            while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
            *len = vl;
            return v;
        }
    }
    *len = 0;
    return NULL;
}

const char *http_request_body(const http_request_t *r, size_t *len)
{
    *len = r->body_len;
    return r->body_len ? r->body : "";
}

uint64_t http_request_start_ns(const http_request_t *r)
{
    return r->start_ns;
}

const char *http_request_peer(const http_request_t *r)
{
    return r->conn->peer;
}

void http_request_set_tag(http_request_t *r, int tag)
{
    r->tag = tag;
}

int http_request_tag(const http_request_t *r)
{
    return r->tag;
}

/* ---------- response helpers ---------- */

void http_respond_json(http_request_t *r, int status, const char *json, size_t len)
{
    http_response_t resp = {.status = status, .content_type = "application/json", .body = json, .body_len = len};
    http_respond(r, &resp);
}

void http_respond_error(http_request_t *r, int status, const char *code, const char *message)
{
    char body[1024];
    size_t n = 0;
    static const char head[] = "{\"error\":\"";
    memcpy(body, head, sizeof head - 1);
    n = sizeof head - 1;
    /* Escape for JSON; messages may quote client input. */
    for (const unsigned char *m = (const unsigned char *)message; *m && n < sizeof body - 80; m++) {
        if (*m == '"' || *m == '\\') {
            body[n++] = '\\';
            body[n++] = (char)*m;
        } else if (*m < 0x20) {
            n += (size_t)snprintf(body + n, 8, "\\u%04x", *m);
        } else {
            body[n++] = (char)*m;
        }
    }
    n += (size_t)snprintf(body + n, sizeof body - n, "\",\"code\":\"%s\"}", code);
    if (n >= sizeof body) n = sizeof body - 1;
    http_respond_json(r, status, body, n);
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}
