#include "http/http_server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    bool sweep_closing;
    void (*on_drained)(void *arg);
    void *on_drained_arg;
    unsigned handles_open;   /* listener + sweep timer, for shutdown */
    int port;
    http_conn_env_t env;     /* lent to every connection; env.draining is the server's flag */
    char read_buffer[HTTP_READ_BUFFER];
    http_server_stats_t stats;
};

http_server_stats_t *http_server_stats(http_server_t *s)
{
    return &s->stats;
}

static void http_handle_closed(uv_handle_t *h);

static void http_server_maybe_drained(http_server_t *s)
{
    if (!s->env.draining || s->nconns) return;
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

/* env.closed: a connection's socket is closed. */
static void http_server_conn_closed(http_conn_t *c, void *ctx)
{
    http_server_t *s = ctx;
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
        if (s->env.draining) http_conn_close_if_idle(c);
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
    s->env = (http_conn_env_t){.loop = loop,
                               .limits = &s->limits,
                               .handler = &s->handler,
                               .stats = &s->stats,
                               .read_buffer = s->read_buffer,
                               .read_buffer_len = sizeof s->read_buffer,
                               .closed = http_server_conn_closed,
                               .ctx = s};
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
    if (status < 0 || s->env.draining) return;
    if (s->nconns >= s->limits.max_connections) {
        http_reject(listener, s);
        return;
    }
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(s->loop, &c->tcp);
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
    http_conn_start(&s->env, c);
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
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, HTTP_LISTEN_BACKLOG) != 0) {
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
        (rc = uv_listen((uv_stream_t *)&s->listener, HTTP_LISTEN_BACKLOG, http_on_connection)) != 0) {
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
    s->env.draining = true;
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
