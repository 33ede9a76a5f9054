#include "node/origin/origin_http.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/core/closer.h"

#define ORIGIN_HTTP_CTYPE_MAX 255
#define ORIGIN_HTTP_BODY_MIN 4096 /* first allocation when no Content-Length says better */

/* One request, from origin_http_get until its callback has returned
 * (what it holds) and its deadline timer has closed (the struct). */
typedef struct origin_http_req {
    struct origin_http_req *prev, *next; /* the client's in-flight list */
    origin_http_t *c;
    /* Ours, not curl's: curl (7.88) does not time out a transfer waiting
     * for a connection under max_host_connections until one frees up. */
    uv_timer_t deadline;
    CURL *easy;
    struct curl_slist *headers; /* curl's copies of the caller's */
    origin_http_cb cb;
    void *ctx;

    size_t max_body;
    char *body;       /* cap + 1 bytes (room for the NUL), NULL until data arrives */
    size_t len, cap;
    bool sized;       /* the first body bytes were seen (Content-Length looked at) */
    bool too_large;   /* a 2xx body passed max_body: why the transfer was aborted */
    bool cut;         /* another status's body passed max_body: aborted, the status still answers */
    bool oom;         /* the body could not grow */

    /* From the headers of the last response block (a 1xx's do not count). */
    char ctype[ORIGIN_HTTP_CTYPE_MAX];
    size_t ctlen;
    int64_t max_age_ms, s_maxage_ms; /* -1: absent */
    bool no_store;
} origin_http_req_t;

/* One per socket curl watches, assigned to it with curl_multi_assign;
 * freed from the poll's close callback. */
typedef struct origin_http_sock {
    struct origin_http_sock *prev, *next; /* the client's list, until closing */
    origin_http_t *c;
    curl_socket_t fd;
    uv_poll_t poll;
} origin_http_sock_t;

struct origin_http {
    uv_loop_t *loop;
    CURLM *multi;              /* NULL once closing */
    uv_timer_t timer;          /* the multi handle's timeout */
    origin_http_req_t *reqs;   /* in flight */
    size_t nreqs;
    origin_http_sock_t *socks; /* polls open, not yet closing */
    bool closing;
    /* The timers (ours and each request's) and every poll, from init to
     * their close callbacks. */
    closer_t closer;
};

const char *origin_http_result_name(origin_http_result_t r)
{
    switch (r) {
    case ORIGIN_HTTP_OK: return "ok";
    case ORIGIN_HTTP_NOT_FOUND: return "not_found";
    case ORIGIN_HTTP_STATUS: return "status";
    case ORIGIN_HTTP_TIMEOUT: return "timeout";
    case ORIGIN_HTTP_CONNECT: return "connect";
    case ORIGIN_HTTP_TOO_LARGE: return "too_large";
    case ORIGIN_HTTP_ERROR: return "error";
    case ORIGIN_HTTP_SHUTDOWN: return "shutdown";
    default: return "unknown";
    }
}

/* ---- process-wide ---- */

static pthread_once_t origin_http_once = PTHREAD_ONCE_INIT;
static CURLcode origin_http_global_rc = CURLE_FAILED_INIT;

static void origin_http_global_init_once(void)
{
    origin_http_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int origin_http_global_init(void)
{
    pthread_once(&origin_http_once, origin_http_global_init_once);
    return origin_http_global_rc == CURLE_OK ? 0 : -1;
}

/* ---- headers ---- */

static bool origin_http_ows(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* A delta-seconds value ("30", or quoted "\"30\""), in ms, saturating;
 * -1 when it is not one. */
static int64_t origin_http_delta_ms(const char *v, size_t n)
{
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n == 0) return -1;
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        if (s < INT64_MAX / 1000) s = s * 10 + (v[i] - '0');
    }
    return s >= INT64_MAX / 1000 ? INT64_MAX : s * 1000;
}

static void origin_http_keep_min(int64_t *dst, int64_t v)
{
    if (v >= 0 && (*dst < 0 || v < *dst)) *dst = v;
}

static bool origin_http_is(const char *s, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

/* Cache-Control directives: comma-separated, each a name with an optional
 * =value that may be quoted (and then may hold commas). Several headers
 * add up. Unknown directives are skipped. */
static void origin_http_cache_control(origin_http_req_t *r, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (origin_http_ows(v[i]) || v[i] == ',')) i++;
        size_t name = i;
        while (i < n && v[i] != '=' && v[i] != ',' && !origin_http_ows(v[i])) i++;
        size_t namelen = i - name;
        while (i < n && origin_http_ows(v[i])) i++;
        size_t val = i, vallen = 0;
        if (i < n && v[i] == '=') {
            i++;
            while (i < n && origin_http_ows(v[i])) i++;
            val = i;
            if (i < n && v[i] == '"') {
                for (i++; i < n && v[i] != '"'; i++)
                    if (v[i] == '\\' && i + 1 < n) i++;
                if (i < n) i++; /* the closing quote */
            } else {
                while (i < n && v[i] != ',') i++;
            }
            vallen = i - val;
            while (vallen > 0 && origin_http_ows(v[val + vallen - 1])) vallen--;
        }
        while (i < n && v[i] != ',') i++; /* whatever trails a value */
        const char *d = v + name;
        if (origin_http_is(d, namelen, "max-age")) origin_http_keep_min(&r->max_age_ms, origin_http_delta_ms(v + val, vallen));
        else if (origin_http_is(d, namelen, "s-maxage")) origin_http_keep_min(&r->s_maxage_ms, origin_http_delta_ms(v + val, vallen));
        else if (origin_http_is(d, namelen, "no-store") || origin_http_is(d, namelen, "no-cache") ||
                 origin_http_is(d, namelen, "private"))
            r->no_store = true;
    }
}

static void origin_http_reset_headers(origin_http_req_t *r)
{
    r->ctlen = 0;
    r->max_age_ms = r->s_maxage_ms = -1;
    r->no_store = false;
}

/* One header line at a time, status lines included: a status line starts
 * a new block (after a 1xx, the final response's), whose headers replace
 * what the earlier block said. */
static size_t origin_http_header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    origin_http_req_t *r = ud;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        origin_http_reset_headers(r);
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon) return n; /* the blank line ending a block */
    size_t namelen = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vlen = n - namelen - 1;
    while (vlen > 0 && origin_http_ows(*v)) v++, vlen--;
    while (vlen > 0 && origin_http_ows(v[vlen - 1])) vlen--;
    if (origin_http_is(buf, namelen, "content-type")) {
        if (vlen <= ORIGIN_HTTP_CTYPE_MAX) {
            memcpy(r->ctype, v, vlen);
            r->ctlen = vlen;
        } else {
            r->ctlen = 0;
        }
    } else if (origin_http_is(buf, namelen, "cache-control")) {
        origin_http_cache_control(r, v, vlen);
    }
    return n;
}

/* ---- the body ---- */

static long origin_http_status(const origin_http_req_t *r)
{
    long status = 0;
    if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) return 0;
    return status;
}

static bool origin_http_2xx(long status)
{
    return status >= 200 && status <= 299;
}

static bool origin_http_grow(origin_http_req_t *r, size_t need)
{
    if (need <= r->cap && r->body) return true;
    size_t cap = r->cap ? r->cap : ORIGIN_HTTP_BODY_MIN;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > r->max_body) cap = r->max_body;
    char *p = realloc(r->body, cap + 1);
    if (!p) return false;
    r->body = p;
    r->cap = cap;
    return true;
}

/* Returning anything but n makes curl abort with CURLE_WRITE_ERROR; the
 * flags say why. */
static size_t origin_http_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    origin_http_req_t *r = ud;
    size_t n = size * nmemb;
    bool ok = origin_http_2xx(origin_http_status(r));
    if (!r->sized) {
        r->sized = true;
        curl_off_t cl = -1;
        if (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) != CURLE_OK) cl = -1;
        if (cl > 0 && (uint64_t)cl > r->max_body && ok) {
            r->too_large = true;
            return 0;
        }
        /* Sized once from Content-Length when it fits: no regrowth. */
        if (cl > 0 && !origin_http_grow(r, (uint64_t)cl < r->max_body ? (size_t)cl : r->max_body)) {
            r->oom = true;
            return 0;
        }
    }
    if (n > r->max_body - r->len) {
        if (ok) {
            r->too_large = true;
            return 0;
        }
        r->cut = true;
        n = r->max_body - r->len; /* what fits of an error page is kept, for logs */
        if (n && origin_http_grow(r, r->len + n)) {
            memcpy(r->body + r->len, data, n);
            r->len += n;
        }
        return 0;
    }
    if (n == 0) return 0; /* nothing to keep: not an abort */
    if (!origin_http_grow(r, r->len + n)) {
        r->oom = true;
        return 0;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return n;
}

/* ---- requests ---- */

static void origin_http_req_closed(uv_handle_t *h)
{
    origin_http_req_t *r = h->data;
    origin_http_t *c = r->c;
    free(r);
    closer_closed(&c->closer);
}

/* Frees what r holds now (it is out of the multi handle), and r itself
 * once its timer has closed. */
static void origin_http_req_free(origin_http_req_t *r)
{
    if (r->easy) curl_easy_cleanup(r->easy);
    r->easy = NULL;
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    free(r->body);
    r->body = NULL;
    uv_close((uv_handle_t *)&r->deadline, origin_http_req_closed);
}

static void origin_http_unlink(origin_http_t *c, origin_http_req_t *r)
{
    if (r->prev) r->prev->next = r->next;
    else c->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
    c->nreqs--;
}

static origin_http_result_t origin_http_map(const origin_http_req_t *r, CURLcode rc, long status)
{
    switch (rc) {
    case CURLE_OK: break;
    case CURLE_OPERATION_TIMEDOUT: return ORIGIN_HTTP_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return ORIGIN_HTTP_CONNECT;
    case CURLE_WRITE_ERROR:
        if (r->too_large) return ORIGIN_HTTP_TOO_LARGE;
        if (r->cut) break; /* an error page too long: its status answers */
        return ORIGIN_HTTP_ERROR;
    default: return ORIGIN_HTTP_ERROR;
    }
    if (origin_http_2xx(status)) return ORIGIN_HTTP_OK;
    if (status == 404 || status == 410) return ORIGIN_HTTP_NOT_FOUND;
    if (status >= 100) return ORIGIN_HTTP_STATUS;
    return ORIGIN_HTTP_ERROR;
}

/* Answers r and frees it. r is out of the client's list and the multi
 * handle before the callback runs, which may then close the client. */
static void origin_http_finish(origin_http_t *c, origin_http_req_t *r, CURLcode rc, bool closing)
{
    origin_http_unlink(c, r);
    uv_timer_stop(&r->deadline);
    if (c->multi) curl_multi_remove_handle(c->multi, r->easy);
    long status = origin_http_status(r);
    origin_http_result_t res = closing ? ORIGIN_HTTP_SHUTDOWN : origin_http_map(r, rc, status);
    bool body = res == ORIGIN_HTTP_OK || res == ORIGIN_HTTP_NOT_FOUND || res == ORIGIN_HTTP_STATUS;
    origin_http_response_t resp = {.status = status, .body = "", .content_type = r->ctype, .max_age_ms = -1};
    if (body && r->body) {
        r->body[r->len] = 0;
        resp.body = r->body;
        resp.len = r->len;
    }
    if (res == ORIGIN_HTTP_OK) {
        resp.ctlen = r->ctlen;
        resp.max_age_ms = r->s_maxage_ms >= 0 ? r->s_maxage_ms : r->max_age_ms;
        resp.no_store = r->no_store;
    }
    r->cb(r->ctx, res, &resp);
    origin_http_req_free(r);
}

static void origin_http_deadline_cb(uv_timer_t *t)
{
    origin_http_req_t *r = t->data;
    origin_http_finish(r->c, r, CURLE_OPERATION_TIMEDOUT, false);
}

/* Every transfer curl finished; after each socket_action. */
static void origin_http_drain(origin_http_t *c)
{
    CURLMsg *m;
    int left;
    /* c->multi is checked each time: a callback may close the client. */
    while (c->multi && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result; /* m dies with remove_handle */
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        if (priv) origin_http_finish(c, (origin_http_req_t *)priv, rc, false);
    }
}

/* ---- curl on the loop ---- */

static void origin_http_handle_closed(uv_handle_t *h)
{
    origin_http_t *c = h->data;
    closer_closed(&c->closer);
}

static void origin_http_sock_closed(uv_handle_t *h)
{
    origin_http_sock_t *s = h->data;
    origin_http_t *c = s->c;
    free(s);
    closer_closed(&c->closer);
}

/* uv_close takes the fd out of the loop's poller at once, before curl
 * closes it, so a new socket that gets the same number can be watched. */
static void origin_http_sock_close(origin_http_t *c, origin_http_sock_t *s)
{
    if (s->prev) s->prev->next = s->next;
    else c->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_close((uv_handle_t *)&s->poll, origin_http_sock_closed);
}

static void origin_http_poll_cb(uv_poll_t *h, int status, int events)
{
    origin_http_sock_t *s = h->data;
    origin_http_t *c = s->c;
    if (!c->multi) return; /* closing: nothing more for curl (defensive: a closing handle gets no callbacks) */
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    /* May close this very poll (CURL_POLL_REMOVE): s stays allocated
     * until its close callback, a later turn. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    origin_http_drain(c);
}

static int origin_http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    origin_http_t *c = userp;
    origin_http_sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) origin_http_sock_close(c, s);
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->c = c;
        s->fd = fd;
        s->poll.data = s;
        closer_add(&c->closer, 1);
        s->next = c->socks;
        if (s->next) s->next->prev = s;
        c->socks = s;
        if (curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
            origin_http_sock_close(c, s);
            return -1;
        }
    }
    int events = 0;
    if (what & CURL_POLL_IN) events |= UV_READABLE;
    if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
    if (uv_poll_start(&s->poll, events, origin_http_poll_cb) != 0) return -1;
    return 0;
}

static void origin_http_timer_fired(uv_timer_t *t)
{
    origin_http_t *c = t->data;
    if (!c->multi) return;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    origin_http_drain(c);
}

/* curl's deadline changed. Never acts here, even at 0: this runs inside
 * curl (socket_action, add_handle), where calling it again is not
 * allowed; a 0 ms timer fires on the loop's next turn. */
static int origin_http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    origin_http_t *c = userp;
    if (c->closing) return 0;
    if (timeout_ms < 0) uv_timer_stop(&c->timer);
    else uv_timer_start(&c->timer, origin_http_timer_fired, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- the client ---- */

origin_http_t *origin_http_new(uv_loop_t *loop, unsigned max_host_connections)
{
    if (origin_http_global_init() != 0) return NULL;
    origin_http_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi || uv_timer_init(loop, &c->timer) != 0) {
        if (c->multi) curl_multi_cleanup(c->multi);
        free(c);
        return NULL;
    }
    c->timer.data = c;
    closer_add(&c->closer, 1);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, origin_http_socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, origin_http_timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host_connections);
    return c;
}

static bool origin_http_setup(origin_http_req_t *r, const char *url, long timeout_ms)
{
    CURL *e = r->easy;
    bool ok = curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)r) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string form; the bitmask one is deprecated there */
    ok = ok && curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
    ok = ok && curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) == CURLE_OK;
#endif
    ok = ok && curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, origin_http_header_cb) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)r) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, origin_http_write_cb) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)r) == CURLE_OK;
    if (r->headers) ok = ok && curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK;
    return ok;
}

int origin_http_get(origin_http_t *c, const char *url, const char *const *headers, long timeout_ms,
                    size_t max_body, origin_http_cb cb, void *ctx)
{
    if (!url || !cb || timeout_ms <= 0 || c->closing) return -1;
    origin_http_req_t *r = calloc(1, sizeof *r);
    if (!r) return -1;
    if (uv_timer_init(c->loop, &r->deadline) != 0) {
        free(r);
        return -1;
    }
    r->deadline.data = r;
    closer_add(&c->closer, 1);
    r->c = c;
    r->cb = cb;
    r->ctx = ctx;
    r->max_body = max_body;
    origin_http_reset_headers(r);
    for (size_t i = 0; headers && headers[i]; i++) {
        struct curl_slist *l;
        if (strpbrk(headers[i], "\r\n") || !(l = curl_slist_append(r->headers, headers[i]))) {
            origin_http_req_free(r);
            return -1;
        }
        r->headers = l;
    }
    r->easy = curl_easy_init();
    if (!r->easy || !origin_http_setup(r, url, timeout_ms)) {
        origin_http_req_free(r);
        return -1;
    }
    /* Starts nothing yet: curl asks for a 0 ms timer, and the transfer
     * begins on the loop's next turn, so no callback runs in here. */
    if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
        origin_http_req_free(r);
        return -1;
    }
    uv_timer_start(&r->deadline, origin_http_deadline_cb, (uint64_t)timeout_ms, 0);
    r->next = c->reqs;
    if (r->next) r->next->prev = r;
    c->reqs = r;
    c->nreqs++;
    return 0;
}

size_t origin_http_in_flight(const origin_http_t *c)
{
    return c->nreqs;
}

void origin_http_close(origin_http_t *c, void (*done)(void *arg), void *arg)
{
    if (c->closing) return;
    c->closing = true;
    /* Callbacks may ask again: closing, they get -1. */
    while (c->reqs) origin_http_finish(c, c->reqs, CURLE_OK, true);
    /* Closes the connections it kept, telling the socket callback about
     * those it watched; those it does not tell about are closed below. */
    CURLM *multi = c->multi;
    c->multi = NULL;
    curl_multi_cleanup(multi);
    while (c->socks) origin_http_sock_close(c, c->socks);
    uv_close((uv_handle_t *)&c->timer, origin_http_handle_closed);
    closer_finish(&c->closer, done, arg);
}

void origin_http_free(origin_http_t *c)
{
    free(c);
}
