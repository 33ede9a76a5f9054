/* http_server on a real loopback socket: pipelining, keep-alive, every
 * limit, malformed input, zero-copy bodies and graceful shutdown. The server
 * runs its loop on a thread; the test talks to it with blocking sockets. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/http_server.h"
#include "http/http_stream.h"
#include "http/http_url.h"

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    uv_thread_t thread;
    http_server_t *server;
    int port;
    atomic_int releases;   /* zero-copy bodies given back */
    atomic_int drained;
    atomic_int late_responses; /* /async requests answered */
    http_request_t *held;  /* an /async request waiting for its timer */
    uv_timer_t async_timer;
    http_stream_t *stream; /* /stream or /flood while it lives (server thread) */
    bool flood;            /* write 16 KiB a tick instead of a line */
    uv_timer_t stream_timer;
    atomic_int ticks;      /* writes to the stream */
    atomic_int stream_closed; /* its `closed` ran */
} fixture_t;

static char big_body[100000];

static void release_body(void *ctx)
{
    fixture_t *f = ctx;
    atomic_fetch_add(&f->releases, 1);
}

static void respond_echo(http_request_t *r, const char *tag)
{
    size_t plen, blen;
    const char *path = http_request_path(r, &plen);
    const char *body = http_request_body(r, &blen);
    char out[4096];
    int n = snprintf(out, sizeof out, "%s %s %.*s body=%.*s", tag, http_request_method_name(r), (int)plen, path,
                     (int)(blen > 2000 ? 2000 : blen), body);
    http_response_t resp = {.status = 200, .content_type = "text/plain", .body = out, .body_len = (size_t)n};
    http_respond(r, &resp);
}

static bool on_stream_request(fixture_t *f, http_request_t *r, const char *path, size_t plen);

static void async_timer_cb(uv_timer_t *t)
{
    fixture_t *f = t->data;
    http_request_t *r = f->held;
    f->held = NULL;
    respond_echo(r, "late");
    atomic_fetch_add(&f->late_responses, 1);
}

static void on_request(http_request_t *r, void *ctx)
{
    fixture_t *f = ctx;
    size_t plen;
    const char *path = http_request_path(r, &plen);
    if (plen == 6 && memcmp(path, "/async", 6) == 0) {
        f->held = r;
        uv_timer_start(&f->async_timer, async_timer_cb, 50, 0);
        return;
    }
    if (on_stream_request(f, r, path, plen)) return;
    if (plen >= 4 && memcmp(path, "/big", 4) == 0) {
        /* /big: 100000 bytes; /big20: 20000 */
        size_t blen = plen == 6 && memcmp(path, "/big20", 6) == 0 ? 20000 : sizeof big_body;
        http_response_t resp = {.status = 200,
                                .body = big_body,
                                .body_len = blen,
                                .body_release = release_body,
                                .body_release_ctx = f};
        http_respond(r, &resp);
        return;
    }
    respond_echo(r, "now");
}

static void stream_closed(void *ctx)
{
    fixture_t *f = ctx;
    f->stream = NULL;
    uv_timer_stop(&f->stream_timer);
    atomic_fetch_add(&f->stream_closed, 1);
}

static void stream_timer_cb(uv_timer_t *t)
{
    fixture_t *f = t->data;
    static char chunk[16384];
    char line[32];
    int n = snprintf(line, sizeof line, "tick %d\n", atomic_load(&f->ticks));
    atomic_fetch_add(&f->ticks, 1);
    if (f->stream) http_stream_write(f->stream, f->flood ? chunk : line, f->flood ? sizeof chunk : (size_t)n);
}

/* /stream: a line now and one every 10 ms; /flood: 16 KiB every 10 ms, at
 * most 64 KiB unsent; /stream-end: "abc", then the end. */
static bool on_stream_request(fixture_t *f, http_request_t *r, const char *path, size_t plen)
{
    bool end = plen == 11 && memcmp(path, "/stream-end", 11) == 0;
    bool flood = plen == 6 && memcmp(path, "/flood", 6) == 0;
    if (!end && !flood && !(plen == 7 && memcmp(path, "/stream", 7) == 0)) return false;
    http_response_t head = {.status = 200, .content_type = "text/event-stream",
                            .headers = "Cache-Control: no-cache\r\n", .headers_len = 25};
    http_stream_config_t cfg = {.max_buffered = flood ? 65536 : 0, .closed = stream_closed, .ctx = f};
    http_stream_t *s = http_respond_stream(r, &head, &cfg);
    if (!s) return true;
    if (end) {
        http_stream_write(s, "ab", 2);
        http_stream_write(s, "c", 1);
        http_stream_end(s);
        return true;
    }
    f->stream = s;
    f->flood = flood;
    http_stream_write(s, "hello\n", 6);
    uv_timer_start(&f->stream_timer, stream_timer_cb, 10, 10);
    return true;
}

static size_t body_limit(const http_request_t *r, void *ctx)
{
    return 1000;
}

static void drained(void *arg)
{
    fixture_t *f = arg;
    atomic_store(&f->drained, 1);
    uv_close((uv_handle_t *)&f->stop, NULL);
    uv_close((uv_handle_t *)&f->async_timer, NULL);
    uv_close((uv_handle_t *)&f->stream_timer, NULL);
}

static void stop_cb(uv_async_t *a)
{
    fixture_t *f = a->data;
    http_server_shutdown(f->server, drained, f);
}

static void server_thread(void *arg)
{
    fixture_t *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static fixture_t *start_server(const http_limits_t *limits)
{
    fixture_t *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->stop, stop_cb);
    f->stop.data = f;
    uv_timer_init(&f->loop, &f->async_timer);
    f->async_timer.data = f;
    uv_timer_init(&f->loop, &f->stream_timer);
    f->stream_timer.data = f;
    http_handler_t h = {.body_limit = body_limit, .on_request = on_request, .ctx = f};
    f->server = http_server_new(&f->loop, limits, &h);
    assert_non_null(f->server);
    assert_int_equal(http_server_listen(f->server, "127.0.0.1", 0), 0);
    f->port = http_server_port(f->server);
    assert_true(f->port > 0);
    uv_thread_create(&f->thread, server_thread, f);
    return f;
}

static void stop_server(fixture_t *f)
{
    uv_async_send(&f->stop);
    uv_thread_join(&f->thread);
    assert_int_equal(atomic_load(&f->drained), 1);
    uv_loop_close(&f->loop);
    http_server_free(f->server);
    free(f);
}

static int setup_default(void **state)
{
    http_limits_t l;
    http_limits_default(&l);
    l.max_header_bytes = 2048;
    l.header_timeout_ms = 300;
    l.idle_timeout_ms = 600;
    l.max_connections = 8;
    *state = start_server(&l);
    return 0;
}

static int teardown(void **state)
{
    stop_server(*state);
    return 0;
}

static int client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0) return;
        data += n;
        len -= (size_t)n;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* Reads until `count` occurrences of `needle` were seen, the peer closes,
 * or 5 s pass. Returns a malloc'd NUL-terminated buffer. */
static char *read_until(int fd, const char *needle, int count, size_t *total)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        buf[len] = 0;
        int seen = 0;
        for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), needle, strlen(needle))); p++) seen++;
        if (needle && seen >= count) break;
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    if (total) *total = len;
    return buf;
}

/* Reads until the peer closes (or 5 s). */
static char *read_all(int fd, size_t *total)
{
    return read_until(fd, "\x01never\x02", 1, total);
}

static void test_get_and_keepalive(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    char *r1 = read_until(fd, "body=", 1, NULL);
    assert_non_null(strstr(r1, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r1, "now GET /a body="));
    send_str(fd, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    char *r2 = read_until(fd, "body=", 1, NULL);
    assert_non_null(strstr(r2, "now GET /b"));
    free(r1);
    free(r2);
    close(fd);
}

static void test_pipelining_keeps_order_across_async(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /three HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /four HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    char *all = read_all(fd, NULL);
    char *one = strstr(all, "now GET /one"), *two = strstr(all, "late GET /async"),
         *three = strstr(all, "now POST /three body=abc"), *four = strstr(all, "now GET /four");
    assert_non_null(one);
    assert_non_null(two);
    assert_non_null(three);
    assert_non_null(four);
    assert_true(one < two && two < three && three < four);
    free(all);
    close(fd);
}

/* Counts response bytes until the peer closes (or 5 s of silence). */
static size_t count_until_close(int fd, int *statuses)
{
    static char buf[65536];
    size_t total = 0;
    char prev[16] = {0};
    *statuses = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        total += (size_t)n;
        /* Status lines may straddle reads: search with the previous tail. */
        char join[sizeof prev + sizeof buf];
        size_t pl = strlen(prev);
        memcpy(join, prev, pl);
        memcpy(join + pl, buf, (size_t)n);
        size_t jl = pl + (size_t)n;
        /* prev keeps 11 bytes, too few to hold a whole status line, so no
         * line is counted twice; bodies are 'B' bytes. */
        for (const char *p = join; (p = memmem(p, jl - (size_t)(p - join), "HTTP/1.1 200", 12)); p++) (*statuses)++;
        size_t keep = jl < 11 ? jl : 11;
        memcpy(prev, join + jl - keep, keep);
        prev[keep] = 0;
    }
    return total;
}

/* 40 pipelined GETs of a 20 KB zero-copy body in one write (80 output
 * segments): every response arrives, in one connection, and every body is
 * released. This used to close the connection with no response. */
static void test_pipelined_large_responses(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    char req[64 * 40 + 64];
    size_t len = 0;
    for (int i = 0; i < 40; i++) len += (size_t)sprintf(req + len, "GET /big20 HTTP/1.1\r\nHost: x\r\n\r\n");
    len += (size_t)sprintf(req + len, "GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    send_all(fd, req, len);
    int statuses;
    size_t total = count_until_close(fd, &statuses);
    assert_int_equal(statuses, 41);
    assert_true(total > 40 * 20000);
    close(fd);
    for (int i = 0; i < 200 && atomic_load(&f->releases) < 40; i++) usleep(5000);
    assert_int_equal(atomic_load(&f->releases), 40);
}

/* A client that pipelines far more output than the server queues (300 x
 * 100 KB) and reads slowly gets it all: the server waits for the output to
 * drain before answering the next request instead of queueing without
 * bound or giving up. */
static void test_pipelined_backpressure(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    static char req[40 * 300 + 64];
    size_t len = 0;
    for (int i = 0; i < 300; i++) len += (size_t)sprintf(req + len, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    len += (size_t)sprintf(req + len, "GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    send_all(fd, req, len);
    int statuses;
    size_t total = count_until_close(fd, &statuses);
    assert_int_equal(statuses, 301);
    assert_true(total > 300 * 100000);
    close(fd);
}

static void test_fragmented_request(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    const char *req = "PUT /frag HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    for (const char *p = req; *p; p++) send_all(fd, p, 1);
    char *r = read_until(fd, "body=hello", 1, NULL);
    assert_non_null(strstr(r, "now PUT /frag body=hello"));
    free(r);
    close(fd);
}

static void test_chunked_body(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    char *r = read_until(fd, "body=abcde", 1, NULL);
    assert_non_null(strstr(r, "body=abcde"));
    free(r);
    close(fd);
}

static void test_http10_closes(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET /old HTTP/1.0\r\n\r\n");
    char *r = read_all(fd, NULL);
    assert_non_null(strstr(r, "Connection: close"));
    assert_non_null(strstr(r, "now GET /old"));
    free(r);
    close(fd);
}

static void test_header_limit_431(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    char req[4096];
    memset(req, 'a', sizeof req);
    memcpy(req, "GET / HTTP/1.1\r\nX: ", 19);
    memcpy(req + sizeof req - 4, "\r\n\r\n", 4);
    send_all(fd, req, sizeof req);
    char *r = read_all(fd, NULL);
    assert_non_null(strstr(r, "HTTP/1.1 431 "));
    assert_non_null(strstr(r, "\"code\":\"header_too_large\""));
    free(r);
    close(fd);
    http_server_stats_t *st = http_server_stats(f->server);
    assert_true(atomic_load(&st->header_too_large) >= 1);
}

static void test_body_limit_413_before_body(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
    char *r = read_all(fd, NULL);
    assert_non_null(strstr(r, "HTTP/1.1 413 "));
    assert_null(strstr(r, "100 Continue"));
    free(r);
    close(fd);
    assert_true(atomic_load(&http_server_stats(f->server)->body_too_large) >= 1);
}

static void test_chunked_body_over_limit(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    char chunk[700];
    memset(chunk, 'z', sizeof chunk);
    send_str(fd, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 2; i++) {
        send_str(fd, "2bc\r\n");
        send_all(fd, chunk, sizeof chunk);
        send_str(fd, "\r\n");
    }
    char *r = read_all(fd, NULL);
    assert_non_null(strstr(r, "HTTP/1.1 413 "));
    free(r);
    close(fd);
}

static void test_expect_continue(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    char *c = read_until(fd, "\r\n\r\n", 1, NULL);
    assert_string_equal(c, "HTTP/1.1 100 Continue\r\n\r\n");
    send_str(fd, "data");
    char *r = read_until(fd, "body=data", 1, NULL);
    assert_non_null(strstr(r, "now PUT /e body=data"));
    free(c);
    free(r);
    close(fd);
}

static void test_malformed_400(void **state)
{
    fixture_t *f = *state;
    const char *bad[] = {
        "NOT A REQUEST\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = client(f->port);
        send_str(fd, bad[i]);
        char *r = read_all(fd, NULL);
        if (!strstr(r, "HTTP/1.1 400 ")) fail_msg("case %zu got: %.80s", i, r);
        assert_non_null(strstr(r, "Connection: close"));
        free(r);
        close(fd);
    }
    assert_true(atomic_load(&http_server_stats(f->server)->malformed) >= 5);
}

static void test_header_timeout_408(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET / HTTP/1.1\r\nHost: x\r\n");
    char *r = read_all(fd, NULL);
    assert_non_null(strstr(r, "HTTP/1.1 408 "));
    free(r);
    close(fd);
}

static void test_idle_timeout_closes(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    size_t len;
    char *r = read_all(fd, &len);
    assert_int_equal(len, 0); /* closed without a word, well before 5 s */
    free(r);
    close(fd);
    assert_true(atomic_load(&http_server_stats(f->server)->idle_timeouts) >= 1);
}

static void test_max_connections_503(void **state)
{
    fixture_t *f = *state;
    int fds[8];
    for (int i = 0; i < 8; i++) fds[i] = client(f->port);
    /* Make sure all 8 were accepted before the ninth arrives. */
    for (int i = 0; i < 8; i++) {
        send_str(fds[i], "GET /p HTTP/1.1\r\nHost: x\r\n\r\n");
        free(read_until(fds[i], "body=", 1, NULL));
    }
    int extra = client(f->port);
    char *r = read_all(extra, NULL);
    assert_non_null(strstr(r, "HTTP/1.1 503 "));
    free(r);
    close(extra);
    for (int i = 0; i < 8; i++) close(fds[i]);
    assert_true(atomic_load(&http_server_stats(f->server)->connections_rejected) >= 1);
}

static void test_zero_copy_body_released(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    size_t len;
    char *r = read_all(fd, &len);
    assert_non_null(strstr(r, "Content-Length: 100000\r\n"));
    char *body = strstr(r, "\r\n\r\n");
    assert_non_null(body);
    assert_int_equal(len - (size_t)(body + 4 - r), sizeof big_body);
    free(r);
    close(fd);
    /* HEAD drops the body without sending it, and releases it too. */
    fd = client(f->port);
    send_str(fd, "HEAD /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    r = read_all(fd, &len);
    assert_non_null(strstr(r, "Content-Length: 100000\r\n"));
    assert_int_equal(len, (size_t)(strstr(r, "\r\n\r\n") + 4 - r));
    free(r);
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&f->releases) < 2; i++) usleep(10000);
    assert_int_equal(atomic_load(&f->releases), 2);
}

static void test_client_gone_before_async_response(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    close(fd);
    /* The server must survive answering a closed connection; prove it by
     * serving another request after the late answer went nowhere. */
    for (int i = 0; i < 500 && atomic_load(&f->late_responses) == 0; i++) usleep(10000);
    assert_int_equal(atomic_load(&f->late_responses), 1);
    fd = client(f->port);
    send_str(fd, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    char *r = read_until(fd, "body=", 1, NULL);
    assert_non_null(strstr(r, "now GET /after"));
    free(r);
    close(fd);
}

static void test_shutdown_finishes_in_flight(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Wait until the request is held by the handler, then ask to stop. */
    for (int i = 0; i < 500 && atomic_load(&http_server_stats(f->server)->requests) == 0; i++) usleep(2000);
    uv_async_send(&f->stop);
    char *r = read_all(fd, NULL);
    assert_non_null(strstr(r, "late GET /async"));
    assert_non_null(strstr(r, "Connection: close"));
    free(r);
    close(fd);
    uv_thread_join(&f->thread);
    assert_int_equal(atomic_load(&f->drained), 1);
    uv_loop_close(&f->loop);
    http_server_free(f->server);
    free(f);
    *state = NULL;
}

/* A streamed response: headers without Content-Length, what was written,
 * then the connection closes at the end. */
static void test_stream_ends(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET /stream-end HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    char *r = read_all(fd, NULL);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Type: text/event-stream\r\n"));
    assert_non_null(strstr(r, "Connection: close\r\n"));
    assert_null(strstr(r, "Content-Length"));
    assert_non_null(strstr(r, "\r\n\r\nabc"));
    assert_null(strstr(r, "/after")); /* nothing pipelined behind a stream is answered */
    free(r);
    close(fd);
    assert_int_equal(atomic_load(&f->stream_closed), 0); /* ended, not closed under it */
}

/* The client hangs up: `closed` runs and the server goes on; a stream open
 * at shutdown is closed by it (the teardown checks the drain). */
static void test_stream_client_leaves(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    send_str(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    char *r = read_until(fd, "tick", 3, NULL);
    assert_non_null(strstr(r, "hello\ntick"));
    free(r);
    assert_int_equal(atomic_load(&http_server_stats(f->server)->streams_active), 1);
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&f->stream_closed) == 0; i++) usleep(10000);
    assert_int_equal(atomic_load(&f->stream_closed), 1);
    assert_int_equal(atomic_load(&http_server_stats(f->server)->streams_active), 0);
    fd = client(f->port);
    send_str(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    free(read_until(fd, "hello", 1, NULL));
    close(fd);
}

/* A client that reads nothing is dropped once 64 KiB wait unsent, rather
 * than buffered without end. */
static void test_stream_slow_consumer_dropped(void **state)
{
    fixture_t *f = *state;
    int fd = client(f->port);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    send_str(fd, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 1000 && atomic_load(&f->stream_closed) == 0; i++) usleep(10000);
    assert_int_equal(atomic_load(&f->stream_closed), 1);
    assert_int_equal(atomic_load(&http_server_stats(f->server)->streams_slow), 1);
    close(fd);
}

static int teardown_none(void **state)
{
    return 0;
}

static void test_url_helpers(void **state)
{
    char out[64];
    assert_int_equal(http_url_decode("a%2Fb%20c", 9, out, false), 5);
    assert_memory_equal(out, "a/b c", 5);
    assert_int_equal(http_url_decode("a+b", 3, out, true), 3);
    assert_memory_equal(out, "a b", 3);
    assert_int_equal(http_url_decode("%zz", 3, out, false), -1);
    assert_int_equal(http_url_decode("%4", 2, out, false), -1);
    assert_int_equal(http_url_decode("%00", 3, out, false), 1);
    const char *q = "pattern=users%3A*&limit=5&flag";
    assert_int_equal(http_query_get(q, strlen(q), "pattern", out, sizeof out), 7);
    assert_string_equal(out, "users:*");
    assert_int_equal(http_query_get(q, strlen(q), "limit", out, sizeof out), 1);
    assert_int_equal(http_query_get(q, strlen(q), "flag", out, sizeof out), 0);
    assert_int_equal(http_query_get(q, strlen(q), "missing", out, sizeof out), -1);
    assert_int_equal(http_query_get(q, strlen(q), "pattern", out, 4), -2);
}

int main(void)
{
    memset(big_body, 'B', sizeof big_body);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_helpers),
        cmocka_unit_test_setup_teardown(test_get_and_keepalive, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_keeps_order_across_async, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_large_responses, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_backpressure, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_fragmented_request, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_http10_closes, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_header_limit_431, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit_413_before_body, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body_over_limit, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_400, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_header_timeout_408, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout_closes, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections_503, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_zero_copy_body_released, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_before_async_response, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_finishes_in_flight, setup_default, teardown_none),
        cmocka_unit_test_setup_teardown(test_stream_ends, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_stream_client_leaves, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_stream_slow_consumer_dropped, setup_default, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
