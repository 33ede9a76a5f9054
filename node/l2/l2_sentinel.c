/* Redis Sentinel discovery (contract in l2_sentinel.h), on the main loop. */
#include "node/l2/l2_sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/closer.h"
#include "node/core/log.h"

/* ---------- Sentinel ---------- */

#define L2_SENTINEL_TICK_MS 1000
#define L2_SENTINELS_MAX 16

struct l2_sentinel {
    l2_shared_t *s;
    char name[256];
    redis_uv_t *clients[L2_SENTINELS_MAX];
    char where[L2_SENTINELS_MAX][280];
    size_t n, cur;
    uv_timer_t timer;
    bool inflight, closing, warned;
    closer_t closer;       /* the timer and every client */
};

static void l2_sentinel_ask(l2_sentinel_t *t);

static void l2_sentinel_reply(void *ctx, redis_uv_result_t res, const redisReply *reply, const char *err)
{
    l2_sentinel_t *t = ctx;
    t->inflight = false;
    if (t->closing) return;
    if (res == REDIS_UV_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING) {
        int port = atoi(reply->element[1]->str);
        char host[256];
        snprintf(host, sizeof host, "%.*s", (int)reply->element[0]->len, reply->element[0]->str);
        t->warned = false;
        if (port > 0 && port < 65536 && l2_shared_set_master(t->s, host, port)) {
            char esc[300];
            log_info("redis master", "\"addr\":\"%s:%d\",\"sentinel\":\"%s\",\"master\":\"%s\"",
                     log_escape(host, esc, sizeof esc), port, t->where[t->cur], t->name);
        }
        return;
    }
    if (!t->warned) {
        char esc[300];
        log_warn("sentinel did not name the master; asking the next",
                 "\"sentinel\":\"%s\",\"master\":\"%s\",\"error\":\"%s\"", t->where[t->cur], t->name,
                 log_escape(err ? err : (reply && reply->type == REDIS_REPLY_NIL ? "unknown master name" : "bad reply"),
                            esc, sizeof esc));
        t->warned = true;
    }
    t->cur = (t->cur + 1) % t->n;
}

static void l2_sentinel_ask(l2_sentinel_t *t)
{
    if (t->inflight || t->closing) return;
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", t->name};
    if (redis_uv_command(t->clients[t->cur], 3, argv, NULL, l2_sentinel_reply, t) == 0) t->inflight = true;
}

static void l2_sentinel_tick(uv_timer_t *timer)
{
    l2_sentinel_ask(timer->data);
}

l2_sentinel_t *l2_sentinel_new(uv_loop_t *loop, l2_shared_t *s, const char *list, const char *name)
{
    l2_sentinel_t *t = calloc(1, sizeof *t);
    char *copy = strdup(list);
    if (!t || !copy) {
        free(t);
        free(copy);
        return NULL;
    }
    t->s = s;
    snprintf(t->name, sizeof t->name, "%s", name);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && t->n < L2_SENTINELS_MAX; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *colon = strrchr(tok, ':');
        int port = colon ? atoi(colon + 1) : 26379;
        if (colon) *colon = '\0';
        if (!*tok || port <= 0 || port > 65535) continue;
        redis_uv_config_t rc = {.host = tok, .port = port, .connect_timeout_ms = 500, .command_timeout_ms = 500};
        redis_uv_t *c = redis_uv_new(loop, &rc);
        if (!c) continue;
        snprintf(t->where[t->n], sizeof t->where[t->n], "%s:%d", tok, port);
        t->clients[t->n++] = c;
    }
    free(copy);
    if (t->n == 0) {
        free(t);
        return NULL;
    }
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, l2_sentinel_tick, 0, L2_SENTINEL_TICK_MS);
    closer_add(&t->closer, 1 + (unsigned)t->n);
    return t;
}

static void l2_sentinel_timer_closed(uv_handle_t *h)
{
    l2_sentinel_t *t = h->data;
    closer_closed(&t->closer);
}

void l2_sentinel_close(l2_sentinel_t *t, void (*done)(void *arg), void *arg)
{
    t->closing = true;
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, l2_sentinel_timer_closed);
    for (size_t i = 0; i < t->n; i++) redis_uv_close(t->clients[i], closer_closed_cb, &t->closer);
    closer_finish(&t->closer, done, arg);
}

void l2_sentinel_free(l2_sentinel_t *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) redis_uv_free(t->clients[i]);
    free(t);
}
