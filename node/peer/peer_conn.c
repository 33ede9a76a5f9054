#include "node/peer/peer_conn.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/peer_hs.h"

#define PEER_CONN_READ_CHUNK (64 * 1024)
#define PEER_CONN_MAX_QUEUED_DEFAULT ((size_t)64 << 20)

typedef enum {
    PEER_CONN_HS_NONE = 0,     /* no key: CRC-sealed frames, no handshake */
    PEER_CONN_HS_WAIT_HELLO,   /* server */
    PEER_CONN_HS_WAIT_CONFIRM, /* server */
    PEER_CONN_HS_WAIT_REPLY,   /* client */
    PEER_CONN_HS_DONE,
} peer_conn_hs_t;

struct peer_conn {
    uv_tcp_t tcp;
    uv_write_t write;
    peer_conn_config_t cfg;
    peer_conn_ops_t ops;
    void *ctx;
    bool closing, dispatching, started;
    bool preamble_optional;   /* skip a leading PEER_STREAM_PREAMBLE (server side) */
    bool preamble_pending;    /* write PEER_STREAM_PREAMBLE first (client side) */
    int close_err;
    /* Input: bytes received, not yet consumed (at most one frame plus the
     * start of the next). */
    uint8_t *in;
    size_t in_len, in_cap;
    /* One opened body at a time. */
    uint8_t *body;
    size_t body_cap;
    /* Output: frames queued (out) and frames being written (wbuf). */
    uint8_t *out, *wbuf;
    size_t out_len, out_cap, wbuf_len, wbuf_cap;
    bool writing;
    uint8_t *scratch;
    size_t scratch_cap;
    /* With a key, nothing but a handshake passes until both ends hold the
     * session; frames then travel in its streams (cluster/peer_hs.h). */
    bool keyed;
    bool client;              /* this end opens the handshake */
    peer_conn_hs_t hs_state;
    peer_hs_t *hs;            /* during the handshake only */
    peer_hs_session_t session;
    uint8_t hs_out[PEER_HS_REPLY_LEN];  /* the handshake message to write next */
    size_t hs_out_len;
    /* Messages queued before the session: [length u32][body] each. */
    uint8_t *early;
    size_t early_len, early_cap;
    uint64_t created_ms;      /* uv_now at creation, for the handshake deadline */
};

static const metrics_desc_t peer_metrics_rows[] = {
    METRICS_ATOMIC_COUNTER(peer_stats_t, frames_in, "peer_frames_total", "direction=\"in\"", "Peer channel frames, by direction."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, frames_out, "peer_frames_total", "direction=\"out\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, bytes_in, "peer_bytes_total", "direction=\"in\"", "Peer channel bytes, by direction."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, bytes_out, "peer_bytes_total", "direction=\"out\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, drops[PEER_DROP_TOO_BIG], "peer_dropped_total", "reason=\"too_big\"", "Peer connections closed for what they sent, by reason; queue_full: output refused."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, drops[PEER_DROP_TOO_SMALL], "peer_dropped_total", "reason=\"too_small\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, drops[PEER_DROP_AUTH], "peer_dropped_total", "reason=\"auth\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, drops[PEER_DROP_CHECKSUM], "peer_dropped_total", "reason=\"checksum\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, drops[PEER_DROP_MALFORMED], "peer_dropped_total", "reason=\"malformed\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, drops[PEER_DROP_UNEXPECTED], "peer_dropped_total", "reason=\"unexpected\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, send_refused, "peer_dropped_total", "reason=\"queue_full\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, handshakes_ok, "peer_handshakes_total", "result=\"ok\"",
                           "Peer channel handshakes (with a cluster key), by result; failed ones are also "
                           "peer_dropped_total{reason=\"auth\"}."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, handshakes_failed, "peer_handshakes_total", "result=\"failed\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, handshakes_old_key, "peer_handshakes_old_key_total", NULL,
                           "Handshakes a client completed with an older key of this node's keyring (it has not "
                           "rotated yet)."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_GET], "peer_requests_total", "type=\"get\"", "Requests sent to peers, by type."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_PUT], "peer_requests_total", "type=\"put\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_DELETE], "peer_requests_total", "type=\"delete\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_INVALIDATE], "peer_requests_total", "type=\"invalidate\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_INVALIDATE_PATTERN], "peer_requests_total", "type=\"invalidate_pattern\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_KEYS], "peer_requests_total", "type=\"keys\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_HANDOFF], "peer_requests_total", "type=\"handoff\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_PING], "peer_requests_total", "type=\"ping\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, requests[PEER_MSG_SYNC], "peer_requests_total", "type=\"sync\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_GET], "peer_served_total", "type=\"get\"", "Requests served for peers, by type."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_PUT], "peer_served_total", "type=\"put\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_DELETE], "peer_served_total", "type=\"delete\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_INVALIDATE], "peer_served_total", "type=\"invalidate\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_INVALIDATE_PATTERN], "peer_served_total", "type=\"invalidate_pattern\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_KEYS], "peer_served_total", "type=\"keys\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_HANDOFF], "peer_served_total", "type=\"handoff\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_PING], "peer_served_total", "type=\"ping\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, served[PEER_MSG_SYNC], "peer_served_total", "type=\"sync\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, failures_timeout, "peer_failures_total", "reason=\"timeout\"", "Requests to peers that failed, by reason."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, failures_connect, "peer_failures_total", "reason=\"connect\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, failures_closed, "peer_failures_total", "reason=\"closed\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, failures_breaker, "peer_failures_total", "reason=\"breaker_open\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, failures_backoff, "peer_failures_total", "reason=\"backoff\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, failures_queue, "peer_failures_total", "reason=\"queue_full\"", ""),
    METRICS_ATOMIC_GAUGE(peer_stats_t, connections_in, "peer_connections", "direction=\"in\"", "Open peer connections, by direction."),
    METRICS_ATOMIC_GAUGE(peer_stats_t, connections_out, "peer_connections", "direction=\"out\"", ""),
    METRICS_ATOMIC_COUNTER(peer_stats_t, connects, "peer_connects_total", NULL, "Peer connections opened."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, connect_failures, "peer_connect_failures_total", NULL, "Peer connections that failed to open."),
    METRICS_ATOMIC_COUNTER(peer_stats_t, breaker_opens, "peer_breaker_opens_total", NULL, "Times a peer's circuit breaker opened."),
    METRICS_ATOMIC_GAUGE(peer_stats_t, breakers_open, "peer_breakers_open", NULL, "Peers whose breaker is open now (per worker loop)."),
    METRICS_ATOMIC_GAUGE(peer_stats_t, pending, "peer_pending", NULL, "Requests to peers awaiting an answer."),
};
const metrics_table_t peer_metrics_table = METRICS_TABLE(peer_metrics_rows);

const char *peer_drop_name(peer_drop_t d)
{
    switch (d) {
    case PEER_DROP_TOO_BIG: return "too_big";
    case PEER_DROP_TOO_SMALL: return "too_small";
    case PEER_DROP_AUTH: return "auth";
    case PEER_DROP_CHECKSUM: return "checksum";
    case PEER_DROP_MALFORMED: return "malformed";
    case PEER_DROP_UNEXPECTED: return "unexpected";
    default: return "unknown";
    }
}

static bool peer_conn_reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    uint8_t *p = realloc(*buf, n);
    if (!p) return false;
    *buf = p;
    *cap = n;
    return true;
}

peer_conn_t *peer_conn_new(uv_loop_t *loop, const peer_conn_config_t *cfg, const peer_conn_ops_t *ops, void *ctx)
{
    peer_conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cfg = *cfg;
    if (!c->cfg.max_frame) c->cfg.max_frame = PEER_FRAME_MAX_DEFAULT;
    if (!c->cfg.max_queued) c->cfg.max_queued = PEER_CONN_MAX_QUEUED_DEFAULT;
    c->ops = *ops;
    c->ctx = ctx;
    c->keyed = c->cfg.keyring && c->cfg.keyring->nkeys > 0;
    c->hs_state = c->keyed ? PEER_CONN_HS_WAIT_HELLO : PEER_CONN_HS_NONE;
    c->created_ms = uv_now(loop);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    return c;
}

uv_tcp_t *peer_conn_tcp(peer_conn_t *c)
{
    return &c->tcp;
}

void *peer_conn_ctx(const peer_conn_t *c)
{
    return c->ctx;
}

void peer_conn_set_ctx(peer_conn_t *c, void *ctx)
{
    c->ctx = ctx;
}

bool peer_conn_closing(const peer_conn_t *c)
{
    return c->closing;
}

static void peer_conn_drop(peer_conn_t *c, peer_drop_t why);

bool peer_conn_handshake_overdue(peer_conn_t *c, uint64_t now_ms, uint64_t limit_ms)
{
    if (c->closing || c->hs_state == PEER_CONN_HS_NONE || c->hs_state == PEER_CONN_HS_DONE) return false;
    if (now_ms - c->created_ms <= limit_ms) return false;
    atomic_fetch_add(&c->cfg.stats->handshakes_failed, 1);
    peer_conn_drop(c, PEER_DROP_AUTH);
    return true;
}

static void peer_conn_closed_cb(uv_handle_t *h)
{
    peer_conn_t *c = h->data;
    if (c->ops.on_close) c->ops.on_close(c, c->close_err, c->ctx);
    free(c->in);
    free(c->body);
    free(c->out);
    free(c->wbuf);
    free(c->scratch);
    free(c->early);
    if (c->hs) {
        peer_hs_wipe(c->hs);
        free(c->hs);
    }
    peer_hs_session_wipe(&c->session);
    free(c);
}

void peer_conn_close(peer_conn_t *c, int err)
{
    if (c->closing) return;
    c->closing = true;
    c->close_err = err;
    uv_close((uv_handle_t *)&c->tcp, peer_conn_closed_cb);
}

void peer_conn_abort(peer_conn_t *c, int err)
{
    if (c->closing) return;
    c->closing = true;
    c->close_err = err;
    /* Refused once a shutdown is under way: close the ordinary way then. */
    if (uv_tcp_close_reset(&c->tcp, peer_conn_closed_cb) != 0) uv_close((uv_handle_t *)&c->tcp, peer_conn_closed_cb);
}

static void peer_conn_drop(peer_conn_t *c, peer_drop_t why)
{
    atomic_fetch_add(&c->cfg.stats->drops[why], 1);
    peer_conn_close(c, UV_EPROTO);
}

static void peer_conn_flush(peer_conn_t *c);

/* ---- reading ---- */

static void peer_conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    peer_conn_t *c = h->data;
    size_t want = c->in_len + PEER_CONN_READ_CHUNK;
    size_t limit = PEER_LEN_PREFIX + c->cfg.max_frame + PEER_CONN_READ_CHUNK;
    if (want > limit) want = limit;
    if (!peer_conn_reserve(&c->in, &c->in_cap, want) || c->in_cap == c->in_len) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = (char *)c->in + c->in_len;
    buf->len = c->in_cap - c->in_len;
}

static bool peer_conn_seal_early(peer_conn_t *c);

static void peer_conn_hs_failed(peer_conn_t *c)
{
    atomic_fetch_add(&c->cfg.stats->handshakes_failed, 1);
    peer_conn_drop(c, PEER_DROP_AUTH);
}

/* Takes the handshake's next message off the input at *pos: false when the
 * connection closed or more bytes are needed (*wait). */
static bool peer_conn_handshake(peer_conn_t *c, size_t *pos, bool *wait)
{
    const uint8_t *in = c->in + *pos;
    size_t avail = c->in_len - *pos;
    *wait = false;
    size_t need = c->hs_state == PEER_CONN_HS_WAIT_HELLO    ? PEER_HS_HELLO_LEN
                  : c->hs_state == PEER_CONN_HS_WAIT_REPLY  ? PEER_HS_REPLY_LEN
                                                            : PEER_HS_CONFIRM_LEN;
    uint8_t type = c->hs_state == PEER_CONN_HS_WAIT_HELLO   ? PEER_HS_TYPE_HELLO
                   : c->hs_state == PEER_CONN_HS_WAIT_REPLY ? PEER_HS_TYPE_REPLY
                                                            : PEER_HS_TYPE_CONFIRM;
    /* Anything else at the start (a frame from a peer without the
     * handshake, garbage) is refused at its first byte, not after waiting
     * for a whole message that will never come. */
    if (avail >= 1 && in[0] != type) {
        peer_conn_hs_failed(c);
        return false;
    }
    if (avail < need) {
        *wait = true;
        return true;
    }
    if (!c->hs && !(c->hs = calloc(1, sizeof *c->hs))) {
        peer_conn_close(c, UV_ENOMEM);
        return false;
    }
    peer_hs_status_t st;
    switch (c->hs_state) {
    case PEER_CONN_HS_WAIT_HELLO:
        st = peer_hs_server_reply(c->hs, c->cfg.keyring, NULL, in, need, c->hs_out);
        c->hs_out_len = PEER_HS_REPLY_LEN;
        c->hs_state = PEER_CONN_HS_WAIT_CONFIRM;
        break;
    case PEER_CONN_HS_WAIT_CONFIRM:
        st = peer_hs_server_finish(c->hs, in, need, &c->session);
        if (st == PEER_HS_OK && peer_hs_key_index(c->hs) > 0)
            atomic_fetch_add(&c->cfg.stats->handshakes_old_key, 1);
        c->hs_state = PEER_CONN_HS_DONE;
        break;
    default:
        st = peer_hs_client_confirm(c->hs, in, need, c->hs_out, &c->session);
        c->hs_out_len = PEER_HS_CONFIRM_LEN;
        c->hs_state = PEER_CONN_HS_DONE;
        break;
    }
    atomic_fetch_add(&c->cfg.stats->bytes_in, need);
    *pos += need;
    if (st != PEER_HS_OK) {
        peer_conn_hs_failed(c);
        return false;
    }
    if (c->hs_state == PEER_CONN_HS_DONE) {
        atomic_fetch_add(&c->cfg.stats->handshakes_ok, 1);
        peer_hs_wipe(c->hs);
        free(c->hs);
        c->hs = NULL;
        if (!peer_conn_seal_early(c)) return false;
    }
    return true;
}

/* Opens a frame's payload into c->body and decodes it. */
static peer_proto_status_t peer_conn_decode(peer_conn_t *c, const uint8_t *payload, size_t len, peer_msg_t *m,
                                            peer_drop_t *why)
{
    *why = PEER_DROP_AUTH;
    if (!c->keyed) {
        seal_status_t ss;
        peer_proto_status_t ps = peer_frame_decode(c->cfg.keyring, payload, len, c->body, c->body_cap, m, &ss);
        if (ps == PEER_PROTO_SEAL && ss == SEAL_BAD_CHECKSUM) *why = PEER_DROP_CHECKSUM;
        return ps;
    }
    size_t n = 0;
    if (peer_hs_decrypt(&c->session, payload, len, c->body, c->body_cap, &n) != PEER_HS_OK) return PEER_PROTO_SEAL;
    return peer_msg_decode(c->body, n, m);
}

/* Handles every whole frame in the input; false once the connection closed. */
static bool peer_conn_process(peer_conn_t *c)
{
    size_t pos = 0;
    if (c->preamble_optional && c->in_len > 0) {
        c->preamble_optional = false;
        if (c->in[0] == PEER_STREAM_PREAMBLE) {
            pos = 1;
            atomic_fetch_add(&c->cfg.stats->bytes_in, 1);
        }
    }
    while (!c->closing && c->hs_state != PEER_CONN_HS_NONE && c->hs_state != PEER_CONN_HS_DONE) {
        bool wait;
        if (!peer_conn_handshake(c, &pos, &wait)) return false;
        if (wait) break;
    }
    while (!c->closing && (c->hs_state == PEER_CONN_HS_NONE || c->hs_state == PEER_CONN_HS_DONE)) {
        peer_span_t span;
        peer_scan_t sc = peer_frame_scan(c->in + pos, c->in_len - pos, c->cfg.max_frame, &span);
        if (sc == PEER_SCAN_NEED_MORE) break;
        if (sc == PEER_SCAN_TOO_BIG || sc == PEER_SCAN_TOO_SMALL) {
            peer_conn_drop(c, sc == PEER_SCAN_TOO_BIG ? PEER_DROP_TOO_BIG : PEER_DROP_TOO_SMALL);
            return false;
        }
        if (!peer_conn_reserve(&c->body, &c->body_cap, span.len)) {
            peer_conn_close(c, UV_ENOMEM);
            return false;
        }
        peer_msg_t m;
        peer_drop_t why;
        peer_proto_status_t ps = peer_conn_decode(c, c->in + pos + span.off, span.len, &m, &why);
        atomic_fetch_add(&c->cfg.stats->frames_in, 1);
        atomic_fetch_add(&c->cfg.stats->bytes_in, span.end);
        pos += span.end;
        if (ps == PEER_PROTO_SEAL) {
            peer_conn_drop(c, why);
            return false;
        }
        if (ps != PEER_PROTO_OK && ps != PEER_PROTO_UNKNOWN_TYPE) {
            peer_conn_drop(c, PEER_DROP_MALFORMED);
            return false;
        }
        if (ps == PEER_PROTO_UNKNOWN_TYPE) {
            /* A newer peer: answer so its request fails fast instead of timing out. */
            peer_msg_t err = {.type = PEER_MSG_ERROR, .id = m.id, .code = PEER_STATUS_UNSUPPORTED};
            err.message.p = (const uint8_t *)"unknown message type";
            err.message.len = strlen("unknown message type");
            peer_conn_send(c, &err);
            continue;
        }
        c->dispatching = true;
        c->ops.on_msg(c, &m, c->ctx);
        c->dispatching = false;
    }
    if (c->closing) return false;
    peer_conn_flush(c);
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return true;
}

static void peer_conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    peer_conn_t *c = s->data;
    if (nread < 0) {
        peer_conn_close(c, (int)nread);
        return;
    }
    if (nread == 0) {
        if (!buf->base) peer_conn_close(c, UV_ENOMEM);
        return;
    }
    c->in_len += (size_t)nread;
    peer_conn_process(c);
}

int peer_conn_start(peer_conn_t *c)
{
    if (c->keyed && c->client && c->hs_state == PEER_CONN_HS_WAIT_HELLO) {
        if (!(c->hs = calloc(1, sizeof *c->hs))) return UV_ENOMEM;
        if (peer_hs_client_hello(c->hs, c->cfg.keyring, NULL, c->hs_out) != PEER_HS_OK) return UV_EINVAL;
        c->hs_out_len = PEER_HS_HELLO_LEN;
        c->hs_state = PEER_CONN_HS_WAIT_REPLY;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, peer_conn_alloc_cb, peer_conn_read_cb);
    if (rc != 0) return rc;
    c->started = true;
    peer_conn_flush(c);
    return 0;
}

void peer_conn_accept_preamble(peer_conn_t *c)
{
    c->preamble_optional = true;
}

int peer_conn_start_with(peer_conn_t *c, const uint8_t *data, size_t len)
{
    if (len) {
        if (!peer_conn_reserve(&c->in, &c->in_cap, len)) return UV_ENOMEM;
        memcpy(c->in, data, len);
        c->in_len = len;
    }
    int rc = peer_conn_start(c);
    if (rc == 0 && c->in_len) peer_conn_process(c);
    return rc;
}

/* ---- writing ---- */

static const uint8_t peer_conn_preamble_byte = PEER_STREAM_PREAMBLE;

void peer_conn_send_preamble(peer_conn_t *c)
{
    c->preamble_pending = true;
    c->client = true;
}

static void peer_conn_write_cb(uv_write_t *w, int status)
{
    peer_conn_t *c = w->data;
    c->writing = false;
    c->wbuf_len = 0;
    if (status < 0) {
        peer_conn_close(c, status);
        return;
    }
    if (c->out_len || c->hs_out_len) peer_conn_flush(c);
}

static void peer_conn_flush(peer_conn_t *c)
{
    if (c->writing || c->closing || !c->started || (c->out_len == 0 && !c->preamble_pending && !c->hs_out_len))
        return;
    /* Swap: the queued frames go out, the (empty) write buffer takes new ones. */
    uint8_t *b = c->wbuf;
    size_t cap = c->wbuf_cap;
    c->wbuf = c->out;
    c->wbuf_cap = c->out_cap;
    c->wbuf_len = c->out_len;
    c->out = b;
    c->out_cap = cap;
    c->out_len = 0;
    uv_buf_t bufs[3];
    unsigned nbufs = 0;
    if (c->preamble_pending) {
        /* Sent once, even with no frame queued yet: the listener waits for it. */
        c->preamble_pending = false;
        bufs[nbufs++] = uv_buf_init((char *)&peer_conn_preamble_byte, 1);
        atomic_fetch_add(&c->cfg.stats->bytes_out, 1);
    }
    if (c->hs_out_len) {
        /* The handshake message goes before any frame; hs_out is not
         * touched again before this write completes (the next message
         * needs the other side's answer, which follows this one). */
        bufs[nbufs++] = uv_buf_init((char *)c->hs_out, (unsigned)c->hs_out_len);
        atomic_fetch_add(&c->cfg.stats->bytes_out, c->hs_out_len);
        c->hs_out_len = 0;
    }
    if (c->wbuf_len) bufs[nbufs++] = uv_buf_init((char *)c->wbuf, (unsigned)c->wbuf_len);
    c->write.data = c;
    c->writing = true;
    atomic_fetch_add(&c->cfg.stats->bytes_out, c->wbuf_len);
    int rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs, nbufs, peer_conn_write_cb);
    if (rc != 0) {
        c->writing = false;
        peer_conn_close(c, rc);
    }
}

/* Appends one encrypted frame of `body` to the output. */
static int peer_conn_put_frame(peer_conn_t *c, const uint8_t *body, size_t len)
{
    size_t payload = len + PEER_HS_ABYTES;
    if (payload > c->cfg.max_frame) return UV_EINVAL;
    if (!peer_conn_reserve(&c->out, &c->out_cap, c->out_len + PEER_LEN_PREFIX + payload)) return UV_ENOMEM;
    uint8_t *p = c->out + c->out_len;
    peer_frame_put_len(p, payload);
    size_t n = 0;
    if (peer_hs_encrypt(&c->session, body, len, p + PEER_LEN_PREFIX, payload, &n) != PEER_HS_OK) return UV_EINVAL;
    c->out_len += PEER_LEN_PREFIX + n;
    atomic_fetch_add(&c->cfg.stats->frames_out, 1);
    return 0;
}

/* The session is there: what was queued before it goes out, in order. */
static bool peer_conn_seal_early(peer_conn_t *c)
{
    size_t pos = 0;
    while (pos + 4 <= c->early_len) {
        size_t len = peer_frame_len(c->early + pos);
        int rc = peer_conn_put_frame(c, c->early + pos + 4, len);
        if (rc != 0) {
            peer_conn_close(c, rc);
            return false;
        }
        pos += 4 + len;
    }
    free(c->early);
    c->early = NULL;
    c->early_len = c->early_cap = 0;
    return true;
}

static int peer_conn_send_keyed(peer_conn_t *c, const peer_msg_t *m, size_t body)
{
    if (c->out_len + c->wbuf_len + c->early_len + PEER_LEN_PREFIX + body + PEER_HS_ABYTES > c->cfg.max_queued) {
        atomic_fetch_add(&c->cfg.stats->send_refused, 1);
        return UV_ENOBUFS;
    }
    if (body + PEER_HS_ABYTES > c->cfg.max_frame) return UV_EINVAL;
    if (!peer_conn_reserve(&c->scratch, &c->scratch_cap, body)) return UV_ENOMEM;
    size_t n;
    if (peer_msg_encode(m, c->scratch, c->scratch_cap, &n) != PEER_PROTO_OK || n == 0) return UV_EINVAL;
    if (c->hs_state != PEER_CONN_HS_DONE) {
        if (!peer_conn_reserve(&c->early, &c->early_cap, c->early_len + 4 + n)) return UV_ENOMEM;
        uint8_t *p = c->early + c->early_len;
        peer_frame_put_len(p, n);
        memcpy(p + 4, c->scratch, n);
        c->early_len += 4 + n;
        return 0;
    }
    int rc = peer_conn_put_frame(c, c->scratch, n);
    if (rc == 0 && !c->dispatching) peer_conn_flush(c);
    return rc;
}

int peer_conn_send(peer_conn_t *c, const peer_msg_t *m)
{
    if (c->closing) return UV_ENOTCONN;
    size_t body = peer_msg_size(m);
    if (body == 0) return UV_EINVAL;
    if (c->keyed) return peer_conn_send_keyed(c, m, body);
    size_t frame = PEER_LEN_PREFIX + body + seal_overhead(c->cfg.keyring);
    if (c->out_len + c->wbuf_len + frame > c->cfg.max_queued) {
        atomic_fetch_add(&c->cfg.stats->send_refused, 1);
        return UV_ENOBUFS;
    }
    if (!peer_conn_reserve(&c->scratch, &c->scratch_cap, body) ||
        !peer_conn_reserve(&c->out, &c->out_cap, c->out_len + frame))
        return UV_ENOMEM;
    size_t n;
    if (peer_frame_encode(c->cfg.keyring, m, c->cfg.max_frame, c->scratch, c->scratch_cap, c->out + c->out_len,
                          c->out_cap - c->out_len, &n) != PEER_PROTO_OK)
        return UV_EINVAL;
    c->out_len += n;
    atomic_fetch_add(&c->cfg.stats->frames_out, 1);
    /* Inside a read callback more answers may follow: they join one write. */
    if (!c->dispatching) peer_conn_flush(c);
    return 0;
}
