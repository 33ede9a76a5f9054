/* node/origin/origin_http against a small HTTP/1.1 server of the test's
 * own, on the same loop (127.0.0.1, a port the kernel picks), answering by
 * path: values with their freshness, 404/410/500/302, bodies too large
 * (by Content-Length, chunked, and on an error page), a 100 Continue
 * before the answer, a path that never answers, a port that refuses, 20
 * requests at once under a connection limit, and close with requests in
 * flight; then the URL template expansion.
 *
 * Each test runs its own loop, polled until a condition holds or a
 * deadline passes (no sleeps; tests/unit/fixture/loop.h); the teardown
 * closes the client and the server and requires uv_loop_close to succeed,
 * so a handle left open fails the test. Timings are only checked as lower
 * bounds ("not before"); deadlines only tell a failure from a hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "node/origin/origin_http.h"
#include "tests/unit/fixture/loop.h"

#define WAIT_MS 10000 /* generous: the machine is shared */
#define MAX_BODY 1000
#define NCONC 20
#define HOSTCONN 4

/* ---- the server ---- */

typedef struct srv srv_t;

typedef struct sconn {
    srv_t *s;
    uv_tcp_t tcp;
    struct sconn *prev, *next;
    char buf[16384];
    size_t len;
} sconn_t;

struct srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    sconn_t *conns;
    unsigned open, max_open; /* connections now, and at most at once */
    unsigned requests, held; /* requests read; of which left unanswered */
    unsigned closes_pending; /* our handles closing */
};

typedef struct swrite {
    uv_write_t req;
    char *data;
} swrite_t;

static void srv_written(uv_write_t *w, int status)
{
    swrite_t *sw = (swrite_t *)w;
    free(sw->data);
    free(sw);
}

static void srv_send(sconn_t *k, const char *data, size_t len)
{
    swrite_t *sw = malloc(sizeof *sw);
    assert_non_null(sw);
    sw->data = malloc(len);
    assert_non_null(sw->data);
    memcpy(sw->data, data, len);
    uv_buf_t b = uv_buf_init(sw->data, (unsigned)len);
    if (uv_write(&sw->req, (uv_stream_t *)&k->tcp, &b, 1, srv_written) != 0) {
        free(sw->data);
        free(sw);
    }
}

/* A response with a Content-Length of the body. */
static void srv_reply(sconn_t *k, const char *status_line, const char *headers, const char *body, size_t blen)
{
    size_t cap = 1024 + strlen(headers) + blen;
    char *out = malloc(cap);
    assert_non_null(out);
    int n = snprintf(out, cap, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n", status_line, headers, blen);
    memcpy(out + n, body, blen);
    srv_send(k, out, (size_t)n + blen);
    free(out);
}

static void srv_reply_str(sconn_t *k, const char *status_line, const char *headers, const char *body)
{
    srv_reply(k, status_line, headers, body, strlen(body));
}

/* The value of header `name` in the request head, or "". */
static void srv_header(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = 0;
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') v++;
            size_t vl = strcspn(v, "\r");
            if (vl >= cap) vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = 0;
            return;
        }
    }
}

static void srv_answer(sconn_t *k, const char *path, const char *head)
{
    srv_t *s = k->s;
    char big[100000];
    memset(big, 'x', sizeof big);
    if (strcmp(path, "/ok") == 0) {
        srv_reply_str(k, "200 OK", "Content-Type: application/json\r\nCache-Control: public, max-age=30\r\n", "{\"v\":1}");
    } else if (strcmp(path, "/smaxage") == 0) {
        srv_reply_str(k, "200 OK", "Cache-Control: s-maxage=5, max-age=30\r\n", "v");
    } else if (strcmp(path, "/nostore") == 0) {
        srv_reply_str(k, "200 OK", "Cache-Control: no-store\r\n", "v");
    } else if (strcmp(path, "/quoted") == 0) {
        srv_reply_str(k, "200 OK",
                      "content-type:   text/plain; charset=utf-8  \r\n"
                      "CACHE-CONTROL: no-cache=\"Set-Cookie, X-Foo\" ,  MAX-AGE = \"7\"\r\n",
                      "v");
    } else if (strcmp(path, "/private") == 0) {
        srv_reply_str(k, "200 OK", "Cache-Control:Private,max-age=9\r\n", "v");
    } else if (strcmp(path, "/twice") == 0) {
        /* Two headers add up; s-maxage wins wherever it stands. */
        srv_reply_str(k, "200 OK", "Cache-Control: s-maxage=5\r\nCache-Control: max-age=30, must-revalidate\r\n", "v");
    } else if (strcmp(path, "/nocc") == 0) {
        srv_reply_str(k, "200 OK", "Cache-Control: public, must-revalidate, max-age=oops\r\n", "v");
    } else if (strcmp(path, "/longct") == 0) {
        char h[400];
        snprintf(h, sizeof h, "Content-Type: text/%.300s\r\n", big);
        srv_reply_str(k, "200 OK", h, "v");
    } else if (strcmp(path, "/missing") == 0) {
        srv_reply_str(k, "404 Not Found", "Cache-Control: max-age=60\r\n", "nope");
    } else if (strcmp(path, "/gone") == 0) {
        srv_reply_str(k, "410 Gone", "", "");
    } else if (strcmp(path, "/error") == 0) {
        srv_reply_str(k, "500 Internal Server Error", "", "boom");
    } else if (strcmp(path, "/moved") == 0) {
        srv_reply_str(k, "302 Found", "Location: /ok\r\n", "");
    } else if (strcmp(path, "/big") == 0) {
        srv_reply(k, "200 OK", "", big, sizeof big);
    } else if (strcmp(path, "/exact") == 0) {
        srv_reply(k, "200 OK", "", big, MAX_BODY);
    } else if (strcmp(path, "/bigerror") == 0) {
        srv_reply(k, "503 Service Unavailable", "", big, 5000);
    } else if (strcmp(path, "/bigchunked") == 0) {
        /* No Content-Length: only counting the bytes can stop it. */
        char out[4096];
        int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 3; i++) {
            n += snprintf(out + n, sizeof out - (size_t)n, "258\r\n");
            memcpy(out + n, big, 600);
            n += 600;
            n += snprintf(out + n, sizeof out - (size_t)n, "\r\n");
        }
        n += snprintf(out + n, sizeof out - (size_t)n, "0\r\n\r\n");
        srv_send(k, out, (size_t)n);
    } else if (strcmp(path, "/continue") == 0) {
        /* What the 100 said is not the answer's. */
        static const char r[] = "HTTP/1.1 100 Continue\r\nCache-Control: no-store, max-age=99\r\nContent-Type: text/bogus\r\n\r\n"
                                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        srv_send(k, r, sizeof r - 1);
    } else if (strcmp(path, "/empty") == 0) {
        srv_reply_str(k, "200 OK", "", "");
    } else if (strcmp(path, "/echo") == 0) {
        char v[256];
        srv_header(head, "X-Test", v, sizeof v);
        srv_reply_str(k, "200 OK", "", v);
    } else if (strncmp(path, "/n/", 3) == 0) {
        srv_reply_str(k, "200 OK", "", path + 3);
    } else if (strcmp(path, "/slow") == 0) {
        s->held++; /* never answered */
    } else {
        srv_reply_str(k, "400 Bad Request", "", "unknown path");
    }
}

static void srv_conn_closed(uv_handle_t *h)
{
    sconn_t *k = h->data;
    k->s->closes_pending--;
    free(k);
}

static void srv_conn_close(sconn_t *k)
{
    srv_t *s = k->s;
    if (k->prev) k->prev->next = k->next;
    else s->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    s->open--;
    s->closes_pending++;
    uv_close((uv_handle_t *)&k->tcp, srv_conn_closed);
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    sconn_t *k = h->data;
    *b = uv_buf_init(k->buf + k->len, (unsigned)(sizeof k->buf - k->len));
}

static void srv_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    sconn_t *k = st->data;
    if (nread < 0 || (nread == 0 && k->len == sizeof k->buf)) {
        srv_conn_close(k);
        return;
    }
    k->len += (size_t)nread;
    char *end;
    while ((end = memmem(k->buf, k->len, "\r\n\r\n", 4))) {
        size_t hlen = (size_t)(end - k->buf) + 4;
        char head[16384];
        memcpy(head, k->buf, hlen);
        head[hlen] = 0;
        memmove(k->buf, k->buf + hlen, k->len - hlen);
        k->len -= hlen;
        k->s->requests++;
        char path[512] = "";
        sscanf(head, "GET %511s HTTP/1.1", path);
        srv_answer(k, path, head);
    }
}

static void srv_accept(uv_stream_t *l, int status)
{
    srv_t *s = l->data;
    if (status != 0) return;
    sconn_t *k = calloc(1, sizeof *k);
    assert_non_null(k);
    k->s = s;
    uv_tcp_init(s->loop, &k->tcp);
    k->tcp.data = k;
    if (uv_accept(l, (uv_stream_t *)&k->tcp) != 0) {
        s->closes_pending++;
        uv_close((uv_handle_t *)&k->tcp, srv_conn_closed);
        return;
    }
    k->next = s->conns;
    if (k->next) k->next->prev = k;
    s->conns = k;
    if (++s->open > s->max_open) s->max_open = s->open;
    uv_read_start((uv_stream_t *)&k->tcp, srv_alloc, srv_read);
}

static int bound_port(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_start(srv_t *s, uv_loop_t *loop)
{
    *s = (srv_t){.loop = loop};
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, srv_accept), 0);
    s->port = bound_port(&s->listener);
}

static void srv_listener_closed(uv_handle_t *h)
{
    srv_t *s = h->data;
    s->closes_pending--;
}

static void srv_stop(srv_t *s)
{
    while (s->conns) srv_conn_close(s->conns);
    s->closes_pending++;
    uv_close((uv_handle_t *)&s->listener, srv_listener_closed);
}

/* ---- the fixture ---- */

typedef struct answer {
    int calls;
    bool inside;        /* ran from inside origin_http_get */
    origin_http_result_t res;
    long status;
    char body[MAX_BODY + 1];
    size_t len;
    bool terminated;    /* body[len] was a NUL */
    char ctype[300];
    size_t ctlen;
    int64_t max_age_ms;
    bool no_store;
    uint64_t at_ns;
    /* From the callback: ask again, and what that returned. */
    origin_http_t *again;
    int again_rc;
} answer_t;

typedef struct fx {
    uv_loop_t loop;
    srv_t srv;
    origin_http_t *c;
    bool closed;        /* origin_http_close called */
    int done_calls;
    bool in_get;
    bool in_close;
    int inside_close;   /* callbacks that ran from inside origin_http_close */
    char base[64];
    uv_tcp_t refuser;   /* a port that refuses */
    answer_t a[NCONC + 8];
} fx_t;

static fx_t *cur; /* for callbacks that want to know where they run */

static void on_answer(void *ctx, origin_http_result_t res, const origin_http_response_t *resp)
{
    answer_t *a = ctx;
    a->calls++;
    a->inside = cur->in_get;
    if (cur->in_close) cur->inside_close++;
    a->res = res;
    a->status = resp->status;
    a->len = resp->len < sizeof a->body - 1 ? resp->len : sizeof a->body - 1;
    memcpy(a->body, resp->body, a->len);
    a->body[a->len] = 0;
    a->terminated = resp->body[resp->len] == 0;
    a->ctlen = resp->ctlen < sizeof a->ctype ? resp->ctlen : sizeof a->ctype;
    memcpy(a->ctype, resp->content_type, a->ctlen);
    a->max_age_ms = resp->max_age_ms;
    a->no_store = resp->no_store;
    a->at_ns = uv_hrtime();
    if (a->again) a->again_rc = origin_http_get(a->again, "http://127.0.0.1:1/", NULL, 1000, 10, on_answer, a);
}

static void on_done(void *arg)
{
    fx_t *f = arg;
    f->done_calls++;
}

static int get(fx_t *f, const char *path, long timeout_ms, size_t max_body, answer_t *a)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    f->in_get = true;
    int rc = origin_http_get(f->c, url, NULL, timeout_ms, max_body, on_answer, a);
    f->in_get = false;
    return rc;
}

static bool answered(void *arg)
{
    return ((answer_t *)arg)->calls > 0;
}

/* One request, answered: its answer. */
static answer_t *fetch(fx_t *f, const char *path, size_t max_body)
{
    answer_t *a = &f->a[0];
    *a = (answer_t){0};
    assert_int_equal(get(f, path, WAIT_MS, max_body, a), 0);
    assert_int_equal(a->calls, 0);
    assert_true(fixture_loop_run_until(&f->loop, answered, a, WAIT_MS));
    assert_int_equal(a->calls, 1);
    assert_false(a->inside);
    assert_true(a->terminated);
    assert_int_equal(origin_http_in_flight(f->c), 0);
    return a;
}

static bool closed_done(void *arg)
{
    return ((fx_t *)arg)->done_calls > 0;
}

static void close_client(fx_t *f)
{
    if (!f->closed) {
        f->closed = true;
        f->in_close = true;
        origin_http_close(f->c, on_done, f);
        f->in_close = false;
    }
    assert_true(fixture_loop_run_until(&f->loop, closed_done, f, WAIT_MS));
    assert_int_equal(f->done_calls, 1);
}

static int setup_with(void **state, unsigned hostconn)
{
    fx_t *f = calloc(1, sizeof *f);
    if (!f) return -1;
    cur = f;
    if (uv_loop_init(&f->loop) != 0) return -1;
    srv_start(&f->srv, &f->loop);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->srv.port);
    f->c = origin_http_new(&f->loop, hostconn);
    if (!f->c) return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, HOSTCONN);
}

static int setup_one_conn(void **state)
{
    return setup_with(state, 1);
}

static bool srv_quiet(void *arg)
{
    return ((srv_t *)arg)->closes_pending == 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    close_client(f);
    origin_http_free(f->c);
    srv_stop(&f->srv);
    fixture_loop_run_until(&f->loop, srv_quiet, &f->srv, WAIT_MS);
    int rc = fixture_loop_close(&f->loop);
    free(f);
    cur = NULL;
    return rc == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_ok(void **state)
{
    fx_t *f = *state;
    answer_t *a = fetch(f, "/ok", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
    assert_int_equal(a->status, 200);
    assert_string_equal(a->body, "{\"v\":1}");
    assert_int_equal(a->len, 7);
    assert_int_equal(a->ctlen, strlen("application/json"));
    assert_memory_equal(a->ctype, "application/json", a->ctlen);
    assert_int_equal(a->max_age_ms, 30000);
    assert_false(a->no_store);

    a = fetch(f, "/empty", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
    assert_int_equal(a->len, 0);
    assert_int_equal(a->ctlen, 0);
    assert_int_equal(a->max_age_ms, -1);

    a = fetch(f, "/exact", MAX_BODY); /* max_body itself is allowed */
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
    assert_int_equal(a->len, MAX_BODY);
}

static void test_freshness(void **state)
{
    fx_t *f = *state;
    answer_t *a = fetch(f, "/smaxage", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
    assert_int_equal(a->max_age_ms, 5000);
    assert_false(a->no_store);

    a = fetch(f, "/twice", MAX_BODY);
    assert_int_equal(a->max_age_ms, 5000);

    a = fetch(f, "/nostore", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
    assert_true(a->no_store);
    assert_int_equal(a->max_age_ms, -1);

    a = fetch(f, "/quoted", MAX_BODY); /* case, spaces, quotes, a comma inside quotes */
    assert_true(a->no_store);
    assert_int_equal(a->max_age_ms, 7000);
    assert_int_equal(a->ctlen, strlen("text/plain; charset=utf-8"));
    assert_memory_equal(a->ctype, "text/plain; charset=utf-8", a->ctlen);

    a = fetch(f, "/private", MAX_BODY);
    assert_true(a->no_store);
    assert_int_equal(a->max_age_ms, 9000);

    a = fetch(f, "/nocc", MAX_BODY); /* a bad number is no number */
    assert_false(a->no_store);
    assert_int_equal(a->max_age_ms, -1);

    a = fetch(f, "/longct", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
    assert_int_equal(a->ctlen, 0);

    a = fetch(f, "/continue", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
    assert_int_equal(a->status, 200);
    assert_string_equal(a->body, "hi");
    assert_int_equal(a->ctlen, 0);
    assert_int_equal(a->max_age_ms, -1);
    assert_false(a->no_store);
}

static void test_statuses(void **state)
{
    fx_t *f = *state;
    answer_t *a = fetch(f, "/missing", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_NOT_FOUND);
    assert_int_equal(a->status, 404);
    assert_string_equal(a->body, "nope");
    assert_int_equal(a->max_age_ms, -1); /* freshness is a value's */

    a = fetch(f, "/gone", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_NOT_FOUND);
    assert_int_equal(a->status, 410);

    a = fetch(f, "/error", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_STATUS);
    assert_int_equal(a->status, 500);
    assert_string_equal(a->body, "boom");

    a = fetch(f, "/moved", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_STATUS);
    assert_int_equal(a->status, 302);
    unsigned before = f->srv.requests;
    fixture_loop_run_for(&f->loop, 50);
    assert_int_equal(f->srv.requests, before); /* not followed */

    /* An error page longer than max_body is cut, and still the answer. */
    a = fetch(f, "/bigerror", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_STATUS);
    assert_int_equal(a->status, 503);
    assert_int_equal(a->len, MAX_BODY);

    /* The client still works after the aborted transfers. */
    a = fetch(f, "/ok", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
}

static void test_too_large(void **state)
{
    fx_t *f = *state;
    answer_t *a = fetch(f, "/big", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_TOO_LARGE);
    assert_int_equal(a->status, 200);
    assert_int_equal(a->len, 0);

    a = fetch(f, "/bigchunked", MAX_BODY);
    assert_int_equal(a->res, ORIGIN_HTTP_TOO_LARGE);
    assert_int_equal(a->len, 0);

    a = fetch(f, "/exact", MAX_BODY - 1);
    assert_int_equal(a->res, ORIGIN_HTTP_TOO_LARGE);

    a = fetch(f, "/ok", 0);
    assert_int_equal(a->res, ORIGIN_HTTP_TOO_LARGE);

    a = fetch(f, "/empty", 0);
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
}

static void test_timeout(void **state)
{
    fx_t *f = *state;
    answer_t *a = &f->a[0];
    uint64_t t0 = uv_hrtime();
    assert_int_equal(get(f, "/slow", 300, MAX_BODY, a), 0);
    assert_true(fixture_loop_run_until(&f->loop, answered, a, WAIT_MS));
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->res, ORIGIN_HTTP_TIMEOUT);
    assert_int_equal(a->status, 0);
    assert_true(a->at_ns - t0 >= 250 * 1000000ull); /* not before its time */
    assert_int_equal(f->srv.held, 1);
    assert_int_equal(origin_http_in_flight(f->c), 0);
}

/* With one connection per host, the second request waits for the
 * first's connection (held by a path that never answers): its clock runs
 * meanwhile. */
static void test_timeout_waiting(void **state)
{
    fx_t *f = *state;
    assert_int_equal(get(f, "/slow", WAIT_MS, MAX_BODY, &f->a[0]), 0);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(get(f, "/slow", 300, MAX_BODY, &f->a[1]), 0);
    assert_true(fixture_loop_run_until(&f->loop, answered, &f->a[1], WAIT_MS));
    assert_int_equal(f->a[1].calls, 1);
    assert_int_equal(f->a[1].res, ORIGIN_HTTP_TIMEOUT);
    assert_true(f->a[1].at_ns - t0 >= 250 * 1000000ull);
    assert_int_equal(f->a[0].calls, 0); /* still holding the connection */
    assert_int_equal(f->srv.held, 1);   /* the second never went out */
    assert_int_equal(f->srv.max_open, 1);
    assert_int_equal(origin_http_in_flight(f->c), 1);
}

static void test_connect(void **state)
{
    fx_t *f = *state;
    /* Bound and not listening: the port refuses, and stays ours. */
    uv_tcp_t *sock = &f->refuser;
    struct sockaddr_in a4;
    uv_ip4_addr("127.0.0.1", 0, &a4);
    assert_int_equal(uv_tcp_init(&f->loop, sock), 0);
    assert_int_equal(uv_tcp_bind(sock, (const struct sockaddr *)&a4, 0), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", bound_port(sock));
    answer_t *a = &f->a[0];
    f->in_get = true;
    assert_int_equal(origin_http_get(f->c, url, NULL, WAIT_MS, MAX_BODY, on_answer, a), 0);
    f->in_get = false;
    assert_true(fixture_loop_run_until(&f->loop, answered, a, WAIT_MS));
    assert_int_equal(a->calls, 1);
    assert_false(a->inside);
    assert_int_equal(a->res, ORIGIN_HTTP_CONNECT);
    assert_int_equal(a->status, 0);
    uv_close((uv_handle_t *)sock, NULL); /* f outlives the loop */
}

static void test_errors(void **state)
{
    fx_t *f = *state;
    static const char *const bad[] = {"ftp://127.0.0.1/x", "http://[::1", "nonsense://"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        answer_t *a = &f->a[i];
        f->in_get = true;
        assert_int_equal(origin_http_get(f->c, bad[i], NULL, WAIT_MS, MAX_BODY, on_answer, a), 0);
        f->in_get = false;
        assert_int_equal(a->calls, 0); /* never from inside the call */
        assert_true(fixture_loop_run_until(&f->loop, answered, a, WAIT_MS));
        assert_int_equal(a->calls, 1);
        assert_int_equal(a->res, ORIGIN_HTTP_ERROR);
    }

    /* Refused at once, and then no callback. */
    answer_t *a = &f->a[5];
    static const char *const crlf[] = {"X-Test: a\r\nX-Evil: b", NULL};
    assert_int_equal(origin_http_get(f->c, NULL, NULL, 1000, MAX_BODY, on_answer, a), -1);
    assert_int_equal(origin_http_get(f->c, f->base, NULL, 1000, MAX_BODY, NULL, a), -1);
    assert_int_equal(origin_http_get(f->c, f->base, NULL, 0, MAX_BODY, on_answer, a), -1);
    assert_int_equal(origin_http_get(f->c, f->base, crlf, 1000, MAX_BODY, on_answer, a), -1);
    assert_int_equal(origin_http_in_flight(f->c), 0);
    fixture_loop_run_for(&f->loop, 20);
    assert_int_equal(a->calls, 0);

    assert_string_equal(origin_http_result_name(ORIGIN_HTTP_OK), "ok");
    assert_string_equal(origin_http_result_name(ORIGIN_HTTP_NOT_FOUND), "not_found");
    assert_string_equal(origin_http_result_name(ORIGIN_HTTP_TOO_LARGE), "too_large");
    assert_string_equal(origin_http_result_name(ORIGIN_HTTP_SHUTDOWN), "shutdown");
    assert_int_equal(origin_http_global_init(), 0);
}

static void test_headers(void **state)
{
    fx_t *f = *state;
    static const char *const h[] = {"X-Test: hello origin", "Accept: application/json", NULL};
    char url[128];
    snprintf(url, sizeof url, "%s/echo", f->base);
    answer_t *a = &f->a[0];
    assert_int_equal(origin_http_get(f->c, url, h, WAIT_MS, MAX_BODY, on_answer, a), 0);
    assert_true(fixture_loop_run_until(&f->loop, answered, a, WAIT_MS));
    assert_int_equal(a->res, ORIGIN_HTTP_OK);
    assert_string_equal(a->body, "hello origin");
}

static bool all_answered(void *arg)
{
    fx_t *f = arg;
    for (int i = 0; i < NCONC; i++)
        if (!f->a[i].calls) return false;
    return true;
}

static void test_concurrent(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < NCONC; i++) {
        char path[32];
        snprintf(path, sizeof path, "/n/%d", i);
        assert_int_equal(get(f, path, WAIT_MS, MAX_BODY, &f->a[i]), 0);
    }
    assert_int_equal(origin_http_in_flight(f->c), NCONC);
    assert_true(fixture_loop_run_until(&f->loop, all_answered, f, WAIT_MS));
    fixture_loop_run_for(&f->loop, 20); /* nothing answers twice */
    for (int i = 0; i < NCONC; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        assert_int_equal(f->a[i].calls, 1);
        assert_false(f->a[i].inside);
        assert_int_equal(f->a[i].res, ORIGIN_HTTP_OK);
        assert_string_equal(f->a[i].body, want);
    }
    assert_int_equal(origin_http_in_flight(f->c), 0);
    assert_int_equal(f->srv.requests, NCONC);
    assert_true(f->srv.max_open >= 1 && f->srv.max_open <= HOSTCONN);
}

static bool srv_holds_3(void *arg)
{
    return ((fx_t *)arg)->srv.held == 3;
}

static void test_close_in_flight(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 3; i++) {
        f->a[i].again = f->c; /* each asks again from its callback */
        assert_int_equal(get(f, "/slow", WAIT_MS, MAX_BODY, &f->a[i]), 0);
    }
    /* Wait until they are on the wire, not just queued ... */
    assert_true(fixture_loop_run_until(&f->loop, srv_holds_3, f, WAIT_MS));
    /* ... and add one not yet started. */
    assert_int_equal(get(f, "/ok", WAIT_MS, MAX_BODY, &f->a[3]), 0);
    assert_int_equal(origin_http_in_flight(f->c), 4);

    close_client(f);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f->a[i].calls, 1);
        assert_int_equal(f->a[i].res, ORIGIN_HTTP_SHUTDOWN);
        assert_int_equal(f->a[i].len, 0);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(f->a[i].again_rc, -1);
    assert_int_equal(f->inside_close, 4);
    assert_int_equal(origin_http_in_flight(f->c), 0);

    /* Closed: refused, no callback; a second close does nothing. */
    answer_t *late = &f->a[6];
    assert_int_equal(get(f, "/ok", WAIT_MS, MAX_BODY, late), -1);
    origin_http_close(f->c, on_done, f);
    fixture_loop_run_for(&f->loop, 20);
    assert_int_equal(late->calls, 0);
    assert_int_equal(f->done_calls, 1);
}

/* Close right after the call, before the loop ran: nothing started yet. */
static void test_close_at_once(void **state)
{
    fx_t *f = *state;
    assert_int_equal(get(f, "/ok", WAIT_MS, MAX_BODY, &f->a[0]), 0);
    f->closed = true;
    f->in_close = true;
    origin_http_close(f->c, on_done, f);
    f->in_close = false;
    assert_int_equal(f->a[0].calls, 1);
    assert_int_equal(f->a[0].res, ORIGIN_HTTP_SHUTDOWN);
    assert_int_equal(f->done_calls, 0); /* from the loop, not from inside close */
    assert_true(fixture_loop_run_until(&f->loop, closed_done, f, WAIT_MS));
    assert_int_equal(f->done_calls, 1);
}

int main(void)
{
    /* A proxy from the environment would take the loopback requests away. */
    static const char *const proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) unsetenv(proxies[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freshness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_waiting, setup_one_conn, teardown),
        cmocka_unit_test_setup_teardown(test_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_at_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
