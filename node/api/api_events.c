#include "node/api/api_events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_stream.h"
#include "http/http_url.h"
#include "node/api/api_http.h"
#include "node/api/events.h"
#include "node/member/topo.h"
#include "node/core/sbuf.h"

#define API_EVENTS_KEEPALIVE_MS 15000
#define API_EVENTS_BATCH 256
#define API_EVENTS_TYPES_MAX 8

struct api_events_client {
    api_events_client_t *prev, *next;
    api_events_worker_t *ew;
    http_stream_t *stream;
    uint64_t last;                    /* the sequence last sent */
    unsigned ntypes;                  /* 0: every type */
    char types[API_EVENTS_TYPES_MAX][EVENTS_TYPE_MAX];
};

void api_events_publish(api_feed_t *a, const char *type, const char *json, size_t len, bool relay)
{
    if (a->events) events_publish(a->events, type, json, len, relay);
}

void api_events_received(void *ctx, const peer_msg_t *m)
{
    api_feed_t *a = ctx;
    char type[EVENTS_TYPE_MAX];
    if (!a->events || m->message.len >= sizeof type || m->blob.len == 0 || m->blob.p[0] != '{') return;
    memcpy(type, m->message.p, m->message.len);
    type[m->message.len] = '\0';
    atomic_fetch_add_explicit(&events_stats(a->events)->received, 1, memory_order_relaxed);
    if (strcmp(type, "hot") == 0) {
        if (a->on_hot) a->on_hot(a->on_hot_ctx, (const char *)m->blob.p, m->blob.len);
        return;
    }
    events_publish(a->events, type, (const char *)m->blob.p, m->blob.len, false);
}

static void api_events_unlink(api_events_client_t *c)
{
    api_events_worker_t *ew = c->ew;
    if (c->prev) c->prev->next = c->next;
    else ew->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub(&ew->feed->streams, 1);
    free(c);
}

static void api_events_closed(void *ctx)
{
    api_events_unlink(ctx);
}

static bool api_events_wanted(const api_events_client_t *c, const char *type)
{
    if (!c->ntypes) return true;
    for (unsigned i = 0; i < c->ntypes; i++)
        if (strcmp(c->types[i], type) == 0) return true;
    return false;
}

typedef struct api_events_out {
    api_events_client_t *c;
    sbuf_t b;
} api_events_out_t;

static void api_events_format(uint64_t seq, const char *type, const char *data, size_t len, bool relay, void *ctx)
{
    (void)relay;
    api_events_out_t *o = ctx;
    if (!api_events_wanted(o->c, type)) return;
    api_feed_t *a = o->c->ew->feed;
    sbuf_printf(&o->b, "id: %" PRId64 "-%" PRIu64 "\nevent: %s\ndata: ", events_run(a->events), seq, type);
    sbuf_append(&o->b, data, len);
    sbuf_puts(&o->b, "\n\n");
}

/* Sends what the client has not seen yet; false when its stream closed
 * under the write (c is gone then, once `closed` runs). */
static bool api_events_catch_up(api_events_client_t *c)
{
    api_feed_t *a = c->ew->feed;
    for (;;) {
        api_events_out_t o = {.c = c};
        sbuf_init(&o.b);
        bool gap;
        uint64_t before = c->last;
        c->last = events_read(a->events, c->last, API_EVENTS_BATCH, api_events_format, &o, &gap);
        if (gap) {
            /* Some were pushed out before this client got them. */
            static const char reset[] = "event: reset\ndata: {\"reason\":\"missed\"}\n\n";
            if (!http_stream_write(c->stream, reset, sizeof reset - 1)) {
                sbuf_free(&o.b);
                return false;
            }
        }
        bool ok = o.b.failed ? false : o.b.len == 0 || http_stream_write(c->stream, o.b.data, o.b.len);
        sbuf_free(&o.b);
        if (!ok) return false;
        if (c->last - before < API_EVENTS_BATCH) return true;
    }
}

static void api_events_wake_cb(uv_async_t *h)
{
    api_events_worker_t *ew = h->data;
    api_events_client_t *next;
    for (api_events_client_t *c = ew->clients; c; c = next) {
        next = c->next;
        api_events_catch_up(c);
    }
}

static void api_events_keepalive_cb(uv_timer_t *t)
{
    api_events_worker_t *ew = t->data;
    api_events_client_t *next;
    for (api_events_client_t *c = ew->clients; c; c = next) {
        next = c->next;
        http_stream_write(c->stream, ": keepalive\n\n", 13);
    }
}

/* Runs on the publishing thread: only signals the worker's loop. */
static void api_events_wake(void *ctx)
{
    uv_async_send(ctx);
}

int api_events_worker_init(api_events_worker_t *ew, api_feed_t *a, uv_loop_t *loop)
{
    memset(ew, 0, sizeof *ew);
    ew->feed = a;
    ew->slot = -1;
    int rc = uv_async_init(loop, &ew->wake, api_events_wake_cb);
    if (rc != 0) return rc;
    uv_timer_init(loop, &ew->keepalive);
    ew->wake.data = ew->keepalive.data = ew;
    ew->up = true;
    if (a->events) ew->slot = events_subscribe(a->events, api_events_wake, &ew->wake);
    uv_timer_start(&ew->keepalive, api_events_keepalive_cb, API_EVENTS_KEEPALIVE_MS, API_EVENTS_KEEPALIVE_MS);
    return 0;
}

void api_events_worker_close(api_events_worker_t *ew)
{
    if (!ew->up) return;
    ew->up = false;
    if (ew->feed->events) events_unsubscribe(ew->feed->events, ew->slot);
    while (ew->clients) {
        api_events_client_t *c = ew->clients;
        http_stream_end(c->stream);
        api_events_unlink(c);
    }
    uv_close((uv_handle_t *)&ew->wake, NULL);
    uv_close((uv_handle_t *)&ew->keepalive, NULL);
}

/* ?types=a,b */
static bool api_events_types(http_request_t *r, api_events_client_t *c)
{
    char buf[API_EVENTS_TYPES_MAX * EVENTS_TYPE_MAX];
    size_t qlen;
    const char *q = http_request_query(r, &qlen);
    long n = http_query_get(q, qlen, "types", buf, sizeof buf);
    if (n == -1 || n == 0) return true;
    if (n < 0) return false;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (c->ntypes == API_EVENTS_TYPES_MAX || strlen(t) >= EVENTS_TYPE_MAX) return false;
        snprintf(c->types[c->ntypes++], EVENTS_TYPE_MAX, "%s", t);
    }
    return true;
}

void api_events_stream(api_events_worker_t *ew, http_request_t *r)
{
    api_feed_t *a = ew->feed;
    if (!a->events || !ew->up) {
        http_respond_error(r, 404, "no_events", "this node has no event feed");
        return;
    }
    if (atomic_fetch_add(&a->streams, 1) >= API_EVENTS_CLIENTS) {
        atomic_fetch_sub(&a->streams, 1);
        api_http_refuse(r, 503, METRICS_ERR_OVERLOADED, "too many event streams on this node", 5);
        return;
    }
    api_events_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        atomic_fetch_sub(&a->streams, 1);
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    c->ew = ew;
    if (!api_events_types(r, c)) {
        atomic_fetch_sub(&a->streams, 1);
        free(c);
        http_respond_error(r, 400, "bad_types", "types is a comma-separated list of at most 8 event types");
        return;
    }
    /* Where to resume: Last-Event-ID, else ?last_event_id=, else now. */
    size_t idlen = 0;
    const char *id = http_request_header(r, "last-event-id", &idlen);
    char qid[48];
    if (!id) {
        size_t qlen;
        const char *q = http_request_query(r, &qlen);
        long n = http_query_get(q, qlen, "last_event_id", qid, sizeof qid);
        if (n > 0) {
            id = qid;
            idlen = (size_t)n;
        }
    }
    uint64_t now_seq = events_last(a->events);
    const char *reset = NULL;
    c->last = now_seq;
    if (id) {
        uint64_t seq;
        if (!events_parse_id(a->events, id, idlen, &seq)) reset = "another_run";
        else if (seq > now_seq) reset = "unknown_id";
        else c->last = seq;
    }
    static const char headers[] = "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
    http_response_t head = {.status = 200, .content_type = "text/event-stream", .headers = headers,
                            .headers_len = sizeof headers - 1};
    http_stream_config_t cfg = {.closed = api_events_closed, .ctx = c};
    c->stream = http_respond_stream(r, &head, &cfg);
    if (!c->stream) {
        atomic_fetch_sub(&a->streams, 1);
        free(c);
        return;
    }
    c->next = ew->clients;
    if (ew->clients) ew->clients->prev = c;
    ew->clients = c;
    /* A retry hint, then what it missed (or that it missed something). */
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "retry: 2000\n\n");
    if (reset) {
        sbuf_printf(&b, "event: reset\ndata: {\"reason\":\"%s\"}\n\n", reset);
    }
    bool ok = !b.failed && http_stream_write(c->stream, b.data, b.len);
    sbuf_free(&b);
    if (ok) api_events_catch_up(c);
}

/* ---- the relay: this node's events to the other members' feeds ---- */

#define API_EVENTS_RELAY_BATCH 256

struct api_events_relay {
    api_feed_t *feed;
    uv_async_t wake;
    int slot;
    peer_pool_t *pool;
    uint64_t last;                    /* the sequence last looked at */
    unsigned closing;                 /* handles still to close */
    void (*done)(void *arg);
    void *done_arg;
};

static void api_events_relay_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    api_feed_t *a = ctx;
    if (res != PEER_OK || resp->type != PEER_MSG_PONG)
        atomic_fetch_add_explicit(&events_stats(a->events)->relay_failed, 1, memory_order_relaxed);
}

typedef struct api_events_relay_batch {
    api_events_relay_t *r;
    topo_t *topo;
    const char *self;
} api_events_relay_batch_t;

static void api_events_relay_one(uint64_t seq, const char *type, const char *data, size_t len, bool relay, void *ctx)
{
    (void)seq;
    api_events_relay_batch_t *b = ctx;
    if (!relay || !b->topo) return;
    api_feed_t *a = b->r->feed;
    peer_msg_t m = {.type = PEER_MSG_EVENT, .flags = PEER_F_FORWARDED};
    m.name = (peer_bytes_t){(const uint8_t *)b->self, strlen(b->self)};
    m.message = (peer_bytes_t){(const uint8_t *)type, strlen(type)};
    m.blob = (peer_bytes_t){(const uint8_t *)data, len};
    for (size_t i = 0; i < b->topo->n; i++) {
        const topo_member_t *mb = &b->topo->members[i];
        if ((int32_t)i == b->topo->self || mb->peer.ss_family == 0) continue;
        if (peer_pool_request(b->r->pool, mb->name, (const struct sockaddr *)&mb->peer, &m, 0, api_events_relay_reply,
                              a) == PEER_OK)
            atomic_fetch_add_explicit(&events_stats(a->events)->relayed, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&events_stats(a->events)->relay_failed, 1, memory_order_relaxed);
    }
}

static void api_events_relay_wake_cb(uv_async_t *h)
{
    api_events_relay_t *r = h->data;
    api_feed_t *a = r->feed;
    const char *self = atomic_load(&a->route->self_name);
    api_events_relay_batch_t b = {.r = r, .topo = topo_slot_get(&a->route->topo), .self = self ? self : ""};
    if (!b.self[0]) {
        topo_unref(b.topo);
        b.topo = NULL; /* nobody to relay to before gossip runs */
    }
    for (;;) {
        bool gap;
        uint64_t before = r->last;
        r->last = events_read(a->events, r->last, API_EVENTS_RELAY_BATCH, api_events_relay_one, &b, &gap);
        if (r->last - before < API_EVENTS_RELAY_BATCH) break;
    }
    topo_unref(b.topo);
}

api_events_relay_t *api_events_relay_new(uv_loop_t *loop, api_feed_t *a, const peer_pool_config_t *pool_cfg)
{
    if (!a->events) return NULL;
    api_events_relay_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->feed = a;
    r->pool = peer_pool_new(loop, pool_cfg);
    if (!r->pool || uv_async_init(loop, &r->wake, api_events_relay_wake_cb) != 0) {
        if (r->pool) peer_pool_free(r->pool);
        free(r);
        return NULL;
    }
    r->wake.data = r;
    r->last = events_last(a->events);
    r->slot = events_subscribe(a->events, api_events_wake, &r->wake);
    return r;
}

static void api_events_relay_part_closed(void *arg)
{
    api_events_relay_t *r = arg;
    if (--r->closing == 0 && r->done) r->done(r->done_arg);
}

static void api_events_relay_async_closed(uv_handle_t *h)
{
    api_events_relay_part_closed(h->data);
}

void api_events_relay_close(api_events_relay_t *r, void (*done)(void *arg), void *arg)
{
    events_unsubscribe(r->feed->events, r->slot);
    r->done = done;
    r->done_arg = arg;
    r->closing = 2;
    uv_close((uv_handle_t *)&r->wake, api_events_relay_async_closed);
    peer_pool_close(r->pool, api_events_relay_part_closed, r);
}

void api_events_relay_free(api_events_relay_t *r)
{
    if (!r) return;
    peer_pool_free(r->pool);
    free(r);
}
