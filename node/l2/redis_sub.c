#include "node/l2/redis_sub.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/backoff.h"
#include "node/core/log.h"

typedef struct redis_sub_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    redis_sub_t *s;
    redisReader *reader;
    bool auth_pending;
    bool counted;                  /* dropped while closing: its close is awaited */
} redis_sub_conn_t;

struct redis_sub {
    uv_loop_t *loop;
    redis_sub_config_t cfg;
    char *host, *username, *password, *channel;
    uv_timer_t timer;              /* the connect deadline, then the retry */
    uv_getaddrinfo_t gai;
    bool resolving;
    redis_sub_conn_t *c;
    backoff_t backoff;
    bool up, ever_up, closing;
    unsigned pending;              /* handles and requests still to finish while closing */
    void (*done)(void *arg);
    void *done_arg;
};

static void redis_sub_start(redis_sub_t *s);

static void redis_sub_pending_done(redis_sub_t *s)
{
    if (--s->pending == 0 && s->done) s->done(s->done_arg);
}

static void redis_sub_conn_closed(uv_handle_t *h)
{
    redis_sub_conn_t *c = h->data;
    redis_sub_t *s = c->s;
    bool counted = c->counted;
    redisReaderFree(c->reader);
    free(c);
    if (counted) redis_sub_pending_done(s);
}

static void redis_sub_drop(redis_sub_t *s)
{
    redis_sub_conn_t *c = s->c;
    if (!c) return;
    s->c = NULL;
    c->counted = s->closing;
    if (c->counted) s->pending++;
    uv_close((uv_handle_t *)&c->tcp, redis_sub_conn_closed);
}

static void redis_sub_retry_cb(uv_timer_t *t)
{
    redis_sub_start(t->data);
}

/* This attempt or connection is over: try again after the backoff. */
static void redis_sub_fail(redis_sub_t *s, const char *why)
{
    if (s->closing) return;
    if (s->up || !s->ever_up)
        log_warn("redis subscription lost; retrying", "\"channel\":\"%s\",\"why\":\"%s\"", s->channel, why);
    s->up = false;
    redis_sub_drop(s);
    uv_timer_start(&s->timer, redis_sub_retry_cb, backoff_next(&s->backoff), 0);
}

static void redis_sub_timeout_cb(uv_timer_t *t)
{
    redis_sub_fail(t->data, "connect timeout");
}

static void redis_sub_write_cb(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows as a failed read */
    free(w->data);
    free(w);
}

static bool redis_sub_send(redis_sub_conn_t *c, int argc, const char **argv)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0) return false;
    uv_write_t *w = malloc(sizeof *w);
    if (!w) {
        free(cmd);
        return false;
    }
    w->data = cmd;
    uv_buf_t b = uv_buf_init(cmd, (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, redis_sub_write_cb) != 0) {
        free(cmd);
        free(w);
        return false;
    }
    return true;
}

static bool redis_sub_is(const redisReply *r, size_t i, const char *word)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements > i && r->element[i]->type == REDIS_REPLY_STRING &&
           r->element[i]->len == strlen(word) && memcmp(r->element[i]->str, word, r->element[i]->len) == 0;
}

/* One reply; false when the connection must go. */
static bool redis_sub_reply(redis_sub_t *s, redis_sub_conn_t *c, redisReply *r)
{
    if (c->auth_pending) {
        c->auth_pending = false;
        if (r->type == REDIS_REPLY_STATUS) return true;
        log_error("redis refused AUTH for the invalidation subscription", "\"error\":\"%.*s\"",
                  r->type == REDIS_REPLY_ERROR ? (int)r->len : 0, r->type == REDIS_REPLY_ERROR ? r->str : "");
        return false;
    }
    if (redis_sub_is(r, 0, "subscribe") && r->elements == 3) {
        uv_timer_stop(&s->timer);
        backoff_reset(&s->backoff);
        s->up = true;
        bool again = s->ever_up;
        s->ever_up = true;
        if (again) log_info("redis subscription back", "\"channel\":\"%s\"", s->channel);
        if (s->cfg.subscribed) s->cfg.subscribed(s->cfg.ctx, again);
        return true;
    }
    if (redis_sub_is(r, 0, "message") && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
        s->cfg.message(s->cfg.ctx, s->channel, r->element[2]->str, r->element[2]->len);
        return true;
    }
    return r->type != REDIS_REPLY_ERROR;
}

static void redis_sub_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void redis_sub_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    redis_sub_conn_t *c = st->data;
    redis_sub_t *s = c->s;
    if (n < 0) {
        free(buf->base);
        if (s->c == c) redis_sub_fail(s, n == UV_EOF ? "closed by redis" : uv_strerror((int)n));
        return;
    }
    bool ok = n == 0 || redisReaderFeed(c->reader, buf->base, (size_t)n) == REDIS_OK;
    free(buf->base);
    while (ok && s->c == c) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            ok = false;
            break;
        }
        if (!reply) break;
        ok = redis_sub_reply(s, c, reply);
        freeReplyObject(reply);
    }
    /* A reply still being read past the bound: a message too large. */
    if (ok && c->reader->len - c->reader->pos > REDIS_SUB_MESSAGE_MAX) ok = false;
    if (!ok && s->c == c) redis_sub_fail(s, "protocol error or message too large");
}

static void redis_sub_connect_cb(uv_connect_t *req, int status)
{
    redis_sub_conn_t *c = req->data;
    redis_sub_t *s = c->s;
    if (s->c != c) return; /* dropped meanwhile */
    if (status < 0) {
        redis_sub_fail(s, uv_strerror(status));
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, redis_sub_alloc_cb, redis_sub_read_cb) != 0) {
        redis_sub_fail(s, "cannot read");
        return;
    }
    bool ok = true;
    if (s->password && s->password[0]) {
        const char *auth[3] = {"AUTH", s->username ? s->username : s->password, s->password};
        c->auth_pending = true;
        ok = redis_sub_send(c, s->username ? 3 : 2, auth);
    }
    const char *sub[2] = {"SUBSCRIBE", s->channel};
    if (!ok || !redis_sub_send(c, 2, sub)) redis_sub_fail(s, "cannot write");
}

static void redis_sub_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    redis_sub_t *s = req->data;
    s->resolving = false;
    if (s->closing) {
        if (ai) uv_freeaddrinfo(ai);
        redis_sub_pending_done(s);
        return;
    }
    if (status < 0 || !ai) {
        if (ai) uv_freeaddrinfo(ai);
        redis_sub_fail(s, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    redis_sub_conn_t *c = calloc(1, sizeof *c);
    if (c) c->reader = redisReaderCreate();
    if (!c || !c->reader) {
        if (c) free(c);
        uv_freeaddrinfo(ai);
        redis_sub_fail(s, "out of memory");
        return;
    }
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    s->c = c;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, ai->ai_addr, redis_sub_connect_cb);
    uv_freeaddrinfo(ai);
    if (rc != 0) redis_sub_fail(s, uv_strerror(rc));
}

static void redis_sub_start(redis_sub_t *s)
{
    /* An attempt still under way (a late resolution) goes on. */
    if (s->closing || s->resolving || s->c) return;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    s->gai.data = s;
    if (uv_getaddrinfo(s->loop, &s->gai, redis_sub_resolved, s->host, port, &hints) != 0) {
        redis_sub_fail(s, "cannot resolve");
        return;
    }
    s->resolving = true;
    uv_timer_start(&s->timer, redis_sub_timeout_cb, s->cfg.connect_timeout_ms, 0);
}

redis_sub_t *redis_sub_new(uv_loop_t *loop, const redis_sub_config_t *cfg)
{
    redis_sub_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->cfg = *cfg;
    if (!s->cfg.connect_timeout_ms) s->cfg.connect_timeout_ms = 2000;
    if (!s->cfg.backoff_min_ms) s->cfg.backoff_min_ms = 200;
    if (!s->cfg.backoff_max_ms) s->cfg.backoff_max_ms = 5000;
    s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    s->channel = strdup(cfg->channel);
    s->username = cfg->username && cfg->username[0] ? strdup(cfg->username) : NULL;
    s->password = cfg->password && cfg->password[0] ? strdup(cfg->password) : NULL;
    if (!s->host || !s->channel || (cfg->username && cfg->username[0] && !s->username) ||
        (cfg->password && cfg->password[0] && !s->password)) {
        redis_sub_free(s);
        return NULL;
    }
    backoff_init(&s->backoff, s->cfg.backoff_min_ms, s->cfg.backoff_max_ms);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    redis_sub_start(s);
    return s;
}

bool redis_sub_up(const redis_sub_t *s)
{
    return s->up;
}

static void redis_sub_timer_closed(uv_handle_t *h)
{
    redis_sub_pending_done(h->data);
}

void redis_sub_close(redis_sub_t *s, void (*done)(void *arg), void *arg)
{
    if (s->closing) return;
    s->closing = true;
    s->up = false;
    s->done = done;
    s->done_arg = arg;
    s->pending = 1; /* the timer */
    if (s->resolving) {
        s->pending++;
        uv_cancel((uv_req_t *)&s->gai);
    }
    redis_sub_drop(s);
    uv_close((uv_handle_t *)&s->timer, redis_sub_timer_closed);
}

void redis_sub_free(redis_sub_t *s)
{
    if (!s) return;
    free(s->host);
    free(s->channel);
    free(s->username);
    free(s->password);
    free(s);
}
