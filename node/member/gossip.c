#include "node/member/gossip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autoconfig.h"
#include "node/core/backoff.h"
#include "node/core/closer.h"
#include "node/core/log.h"
#include "node/core/sysinfo.h"

#define GOSSIP_XCHG_TIMEOUT_MS 5000
/* An accepted connection must say what it is (its first byte, and for a
 * push-pull its authenticated header) within this: nodes send both at once,
 * so only a connection held open to take a slot waits longer. */
#define GOSSIP_FIRST_TIMEOUT_MS 1000
#define GOSSIP_MAX_XCHG 32
/* Accepted connections from one address, sorting or exchanging: one source
 * cannot hold every slot. A node opens one peer connection per worker at
 * most at once, and sorting takes a moment, so members stay far below. */
#define GOSSIP_MAX_PER_ADDR 32
/* A push-pull opens with a small sealed header, [u32 length][seal("DCPP",
 * version 1, join flag, the state frame's length u32)], checked before a
 * byte of the state is buffered: a stranger cannot make a node buffer up
 * to GOSSIP_MAX_STATE on a claim it never proves. */
#define GOSSIP_PP_MAGIC "DCPP"
#define GOSSIP_PP_VERSION 1
#define GOSSIP_PP_HEADER_LEN 12
#define GOSSIP_PP_HEADER_MAX (GOSSIP_PP_HEADER_LEN + SEAL_CRYPT_OVERHEAD)
/* Accepted connections whose first byte has not come yet (with a divert:
 * most are the peer channel's, opened in bursts when the ring changes). */
#define GOSSIP_MAX_SORTING 256
#define GOSSIP_MAX_STATE (32u << 20)  /* a push-pull frame; 65536 members fit */
#define GOSSIP_JOIN_BACKOFF_MIN_MS 1000
#define GOSSIP_JOIN_BACKOFF_MAX_MS 30000
#define GOSSIP_LEAVE_SPREAD_MS 1000
#define GOSSIP_SNAPSHOT_MS 1000
#define GOSSIP_MAX_SUBSCRIBERS 8

typedef struct gossip_xchg gossip_xchg_t;

struct gossip {
    uv_loop_t *loop;
    gossip_config_t cfg;
    char *name, *bind_host, *advertise_host, *seeds, *zone, *http_host;
    swim_t *core;
    uv_udp_t udp;
    uv_tcp_t listener;
    uv_timer_t tick, join_timer, aux;
    int port;
    swim_addr_t self_addr;
    int64_t wall_offset_ms;           /* wall clock minus loop clock */
    uint8_t rbuf[65536];
    uint8_t plain[65536];
    gossip_xchg_t *xchgs;
    unsigned nxchg;                   /* every one, sorting ones included */
    unsigned nsorting;
    /* Joining. */
    bool joined;
    unsigned join_pending;            /* resolutions and exchanges in flight */
    bool seed_self_only, seed_other;  /* what the seed names resolved to, this attempt */
    backoff_t join_backoff;
    /* Stop / leave. */
    bool stopping;
    closer_t closer;                  /* our handles and every exchange */
    void (*leave_done)(void *);
    void *leave_arg;
    /* Subscribers. */
    gossip_event_fn subs[GOSSIP_MAX_SUBSCRIBERS];
    void *sub_ctx[GOSSIP_MAX_SUBSCRIBERS];
    unsigned nsubs;
    gossip_heard_fn heard;
    void *heard_ctx;
    /* Snapshot for other threads. */
    pthread_mutex_t snap_lock;
    char *snap_json;
    size_t snap_len;
    gossip_metrics_t snap_metrics, live;
    bool dirty;
    int64_t snap_at;
};

struct gossip_xchg {
    gossip_t *g;
    gossip_xchg_t *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    bool client, join, done, ok;
    bool sorting;                     /* accepted; its first byte (push-pull or divert?) not read yet */
    bool have_header;                 /* the push-pull header was read and opened */
    size_t state_len;                 /* the state frame's length, from the header */
    size_t hdr_len;                   /* bytes of the header frame (prefix included) */
    swim_addr_t from;                 /* accepted: the remote address (per-address limit) */
    closer_t closer;                  /* its socket and timer */
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t head[4 + GOSSIP_PP_HEADER_MAX];  /* our header frame, while it is written */
    uint8_t *out;                     /* our state frame, while it is written */
};

static int64_t gossip_now(gossip_t *g)
{
    return (int64_t)uv_now(g->loop);
}

/* ---------- addresses ---------- */

static bool gossip_addr_from_sockaddr(const struct sockaddr *sa, swim_addr_t *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        out->family = 4;
        memcpy(out->ip, &a->sin_addr, 4);
        out->port = ntohs(a->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        out->family = 6;
        memcpy(out->ip, &a->sin6_addr, 16);
        out->port = ntohs(a->sin6_port);
        return true;
    }
    return false;
}

socklen_t gossip_sockaddr(const swim_addr_t *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == 6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a->ip, 16);
        s6->sin6_port = htons(a->port);
        return sizeof *s6;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, a->ip, 4);
    s4->sin_port = htons(a->port);
    return sizeof *s4;
}

void gossip_addr_text(const swim_addr_t *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "";
    if (a->family == 0) {
        buf[0] = '\0';
        return;
    }
    inet_ntop(a->family == 6 ? AF_INET6 : AF_INET, a->ip, ip, sizeof ip);
    snprintf(buf, cap, a->family == 6 ? "[%s]:%u" : "%s:%u", ip, a->port);
}

static bool gossip_parse_ip(const char *host, int port, swim_addr_t *out)
{
    memset(out, 0, sizeof *out);
    out->port = (uint16_t)port;
    if (inet_pton(AF_INET, host, out->ip) == 1) {
        out->family = 4;
        return true;
    }
    if (inet_pton(AF_INET6, host, out->ip) == 1) {
        out->family = 6;
        return true;
    }
    return false;
}

/* ---------- snapshot for the HTTP workers ---------- */

typedef struct gossip_json_ctx {
    gossip_t *g;
    sbuf_t *b;
    bool first;
    uint64_t counts[4];
} gossip_json_ctx_t;

static void gossip_json_member(const swim_member_view_t *m, void *ctx)
{
    gossip_json_ctx_t *c = ctx;
    char id[33], gaddr[64], haddr[64];
    sodium_bin2hex(id, sizeof id, m->info->id.b, SWIM_ID_LEN);
    gossip_addr_text(&m->info->gossip, gaddr, sizeof gaddr);
    gossip_addr_text(&m->info->http, haddr, sizeof haddr);
    c->counts[m->state]++;
    sbuf_puts(c->b, c->first ? "{\"name\":" : ",{\"name\":");
    c->first = false;
    sbuf_json_string(c->b, m->info->name, strlen(m->info->name));
    sbuf_printf(c->b, ",\"id\":\"%s\",\"state\":\"%s\",\"incarnation\":%llu,\"gossip\":\"%s\",\"http\":\"%s\",\"zone\":",
                id, swim_state_name(m->state), (unsigned long long)m->incarnation, gaddr, haddr);
    sbuf_json_string(c->b, m->info->zone, strlen(m->info->zone));
    sbuf_puts(c->b, ",\"version\":");
    sbuf_json_string(c->b, m->info->version, strlen(m->info->version));
    sbuf_printf(c->b, ",\"last_change_ms\":%lld,\"self\":%s}", (long long)(m->state_change_ms + c->g->wall_offset_ms),
                m->is_self ? "true" : "false");
}

static void gossip_snapshot(gossip_t *g)
{
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"self\":");
    sbuf_json_string(&b, g->name, strlen(g->name));
    sbuf_printf(&b, ",\"joined\":%s,\"members\":[", g->joined ? "true" : "false");
    gossip_json_ctx_t c = {g, &b, true, {0}};
    swim_members_foreach(g->core, gossip_json_member, &c);
    sbuf_puts(&b, "]}");
    size_t len;
    char *json = b.failed ? NULL : sbuf_steal(&b, &len);
    sbuf_free(&b);
    swim_get_stats(g->core, &g->live.swim);
    memcpy(g->live.members, c.counts, sizeof c.counts);
    g->live.joined = g->joined;
    pthread_mutex_lock(&g->snap_lock);
    if (json) {
        free(g->snap_json);
        g->snap_json = json;
        g->snap_len = len;
    }
    g->snap_metrics = g->live;
    pthread_mutex_unlock(&g->snap_lock);
    g->dirty = false;
    g->snap_at = gossip_now(g);
}

void gossip_members_json(gossip_t *g, sbuf_t *out)
{
    pthread_mutex_lock(&g->snap_lock);
    if (g->snap_json) sbuf_append(out, g->snap_json, g->snap_len);
    else sbuf_puts(out, "{\"members\":[]}");
    pthread_mutex_unlock(&g->snap_lock);
}

static const metrics_desc_t gossip_metrics_rows[] = {
    METRICS_ROW(gossip_metrics_t, members[0], METRICS_GAUGE, METRICS_U64, "cluster_members", "state=\"alive\"", "Members known to this node, by state."),
    METRICS_ROW(gossip_metrics_t, members[1], METRICS_GAUGE, METRICS_U64, "cluster_members", "state=\"suspect\"", ""),
    METRICS_ROW(gossip_metrics_t, members[2], METRICS_GAUGE, METRICS_U64, "cluster_members", "state=\"dead\"", ""),
    METRICS_ROW(gossip_metrics_t, members[3], METRICS_GAUGE, METRICS_U64, "cluster_members", "state=\"left\"", ""),
    METRICS_ROW(gossip_metrics_t, swim.probes, METRICS_COUNTER, METRICS_U64, "swim_probes_total", NULL, "Direct probes sent."),
    METRICS_ROW(gossip_metrics_t, swim.probe_failures, METRICS_COUNTER, METRICS_U64, "swim_probe_failures_total", NULL, "Probes that got no ack in their period."),
    METRICS_ROW(gossip_metrics_t, swim.ping_reqs_sent, METRICS_COUNTER, METRICS_U64, "swim_ping_reqs_total", NULL, "Indirect probe requests sent."),
    METRICS_ROW(gossip_metrics_t, swim.pings_relayed, METRICS_COUNTER, METRICS_U64, "swim_pings_relayed_total", NULL, "Pings sent on behalf of other members."),
    METRICS_ROW(gossip_metrics_t, swim.acks_received, METRICS_COUNTER, METRICS_U64, "swim_acks_total", NULL, "Acks received for our probes."),
    METRICS_ROW(gossip_metrics_t, swim.nacks_received, METRICS_COUNTER, METRICS_U64, "swim_nacks_total", NULL, "Nacks received (Lifeguard)."),
    METRICS_ROW(gossip_metrics_t, swim.suspicions_raised, METRICS_COUNTER, METRICS_U64, "swim_suspicions_raised_total", NULL, "Members this node began to suspect."),
    METRICS_ROW(gossip_metrics_t, swim.refutations, METRICS_COUNTER, METRICS_U64, "swim_refutations_total", NULL, "Suspicions of this node it refuted."),
    METRICS_ROW(gossip_metrics_t, swim.deaths_declared, METRICS_COUNTER, METRICS_U64, "swim_deaths_declared_total", NULL, "Suspicions this node turned into deaths."),
    METRICS_ROW(gossip_metrics_t, swim.push_pulls, METRICS_COUNTER, METRICS_U64, "swim_push_pulls_total", NULL, "Full-state exchanges this node started."),
    METRICS_ROW(gossip_metrics_t, swim.broadcasts_dropped, METRICS_COUNTER, METRICS_U64, "swim_broadcasts_dropped_total", NULL, "Updates dropped from a full queue."),
    METRICS_ROW(gossip_metrics_t, swim.packets_in, METRICS_COUNTER, METRICS_U64, "swim_packets_total", "direction=\"in\"", "Gossip datagrams, by direction."),
    METRICS_ROW(gossip_metrics_t, swim.packets_out, METRICS_COUNTER, METRICS_U64, "swim_packets_total", "direction=\"out\"", ""),
    METRICS_ROW(gossip_metrics_t, swim.bytes_in, METRICS_COUNTER, METRICS_U64, "swim_bytes_total", "direction=\"in\"", "Gossip payload bytes, by direction."),
    METRICS_ROW(gossip_metrics_t, swim.bytes_out, METRICS_COUNTER, METRICS_U64, "swim_bytes_total", "direction=\"out\"", ""),
    METRICS_ROW(gossip_metrics_t, exchanges_ok, METRICS_COUNTER, METRICS_U64, "swim_exchanges_total", "result=\"ok\"", "Push-pull exchanges, by result."),
    METRICS_ROW(gossip_metrics_t, exchanges_failed, METRICS_COUNTER, METRICS_U64, "swim_exchanges_total", "result=\"failed\"", ""),
    METRICS_ROW(gossip_metrics_t, accepts_refused, METRICS_COUNTER, METRICS_U64, "swim_accepts_refused_total", NULL,
                "Cluster-port connections refused at accept: over 32 from one address, or every slot taken."),
    METRICS_ROW(gossip_metrics_t, drops_auth, METRICS_COUNTER, METRICS_U64, "swim_dropped_total", "reason=\"auth\"", "Gossip input dropped, by reason."),
    METRICS_ROW(gossip_metrics_t, drops_checksum, METRICS_COUNTER, METRICS_U64, "swim_dropped_total", "reason=\"checksum\"", ""),
    METRICS_ROW(gossip_metrics_t, drops_version, METRICS_COUNTER, METRICS_U64, "swim_dropped_total", "reason=\"version\"", ""),
    METRICS_ROW(gossip_metrics_t, drops_short, METRICS_COUNTER, METRICS_U64, "swim_dropped_total", "reason=\"short\"", ""),
    METRICS_ROW(gossip_metrics_t, swim.drops_malformed, METRICS_COUNTER, METRICS_U64, "swim_dropped_total", "reason=\"malformed\"", ""),
    METRICS_ROW(gossip_metrics_t, swim.drops_wrong_target, METRICS_COUNTER, METRICS_U64, "swim_dropped_total", "reason=\"wrong_target\"", ""),
    METRICS_ROW(gossip_metrics_t, swim.drops_state, METRICS_COUNTER, METRICS_U64, "swim_dropped_total", "reason=\"bad_state\"", ""),
    METRICS_ROW(gossip_metrics_t, send_errors, METRICS_COUNTER, METRICS_U64, "swim_dropped_total", "reason=\"send_error\"", ""),
    METRICS_ROW(gossip_metrics_t, swim.health_score, METRICS_GAUGE, METRICS_U32, "swim_health_score", NULL, "Lifeguard local health score (0 = healthy)."),
};
const metrics_table_t gossip_metrics_table = METRICS_TABLE(gossip_metrics_rows);

void gossip_get_metrics(gossip_t *g, gossip_metrics_t *out)
{
    pthread_mutex_lock(&g->snap_lock);
    *out = g->snap_metrics;
    pthread_mutex_unlock(&g->snap_lock);
}

/* ---------- ticking ---------- */

static void gossip_tick_cb(uv_timer_t *t);

static void gossip_rearm(gossip_t *g)
{
    if (g->stopping) return;
    int64_t now = gossip_now(g);
    if (g->dirty || now - g->snap_at >= GOSSIP_SNAPSHOT_MS) gossip_snapshot(g);
    int64_t d = swim_next_deadline(g->core) - now;
    if (d < 0) d = 0;
    if (d > GOSSIP_SNAPSHOT_MS) d = GOSSIP_SNAPSHOT_MS;
    uv_timer_start(&g->tick, gossip_tick_cb, (uint64_t)d, 0);
}

static void gossip_tick_cb(uv_timer_t *t)
{
    gossip_t *g = t->data;
    swim_tick(g->core, gossip_now(g));
    gossip_rearm(g);
}

/* ---------- datagrams ---------- */

static void gossip_send_cb(void *ctx, const swim_addr_t *to, const uint8_t *buf, size_t len)
{
    gossip_t *g = ctx;
    uint8_t sealed[SWIM_PACKET_MAX + 64];
    size_t slen;
    if (seal_seal(&g->cfg.keyring, buf, len, sealed, sizeof sealed, &slen) != SEAL_OK) {
        g->live.send_errors++;
        return;
    }
    struct sockaddr_storage ss;
    gossip_sockaddr(to, &ss);
    uv_buf_t b = uv_buf_init((char *)sealed, (unsigned)slen);
    /* Datagrams are best effort: a full socket buffer drops, as the
     * network would. */
    if (uv_udp_try_send(&g->udp, &b, 1, (const struct sockaddr *)&ss) < 0) g->live.send_errors++;
}

static void gossip_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    gossip_t *g = h->data;
    buf->base = (char *)g->rbuf;
    buf->len = sizeof g->rbuf;
}

static void gossip_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                           unsigned flags)
{
    gossip_t *g = u->data;
    if (nread <= 0 || !from || g->stopping) return;
    size_t plen;
    seal_status_t st = seal_open(&g->cfg.keyring, (const uint8_t *)buf->base, (size_t)nread, g->plain,
                                 sizeof g->plain, &plen);
    if (st != SEAL_OK) {
        switch (st) {
        case SEAL_AUTH_FAILED: g->live.drops_auth++; break;
        case SEAL_BAD_CHECKSUM: g->live.drops_checksum++; break;
        case SEAL_TOO_SHORT: g->live.drops_short++; break;
        default: g->live.drops_version++; break;
        }
        char ip[64];
        swim_addr_t a;
        gossip_addr_from_sockaddr(from, &a);
        gossip_addr_text(&a, ip, sizeof ip);
        log_debug("gossip datagram dropped", "\"from\":\"%s\",\"reason\":\"%s\"", ip, seal_status_name(st));
        return;
    }
    swim_addr_t a;
    if (!gossip_addr_from_sockaddr(from, &a)) return;
    swim_recv(g->core, &a, g->plain, plen, gossip_now(g));
    gossip_rearm(g);
}

/* ---------- push-pull over TCP ---------- */

static void gossip_join_result(gossip_t *g, bool ok);

/* Both of the exchange's handles are closed. */
static void gossip_xchg_closed(void *arg)
{
    gossip_xchg_t *x = arg;
    gossip_t *g = x->g;
    for (gossip_xchg_t **p = &g->xchgs; *p; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            break;
        }
    }
    g->nxchg--;
    if (x->sorting) g->nsorting--;
    free(x->in);
    free(x->out);
    bool join = x->join && x->client, ok = x->ok;
    free(x);
    if (join) gossip_join_result(g, ok);
    closer_closed(&g->closer);
}

static void gossip_xchg_handle_closed(uv_handle_t *h)
{
    gossip_xchg_t *x = h->data;
    closer_closed(&x->closer);
}

static void gossip_xchg_finish(gossip_xchg_t *x, bool ok)
{
    if (x->done) return;
    x->done = true;
    x->ok = ok;
    if (ok) x->g->live.exchanges_ok++;
    else x->g->live.exchanges_failed++;
    uv_timer_stop(&x->timer);
    uv_close((uv_handle_t *)&x->timer, gossip_xchg_handle_closed);
    uv_close((uv_handle_t *)&x->tcp, gossip_xchg_handle_closed);
    closer_finish(&x->closer, gossip_xchg_closed, x);
}

static void gossip_xchg_timeout(uv_timer_t *t)
{
    gossip_xchg_finish(t->data, false);
}

static void gossip_xchg_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    gossip_xchg_t *x = h->data;
    if (!x->have_header && !x->client) {
        /* Until the header is proven, read only as far as it may reach. */
        size_t limit = 1 + 4 + GOSSIP_PP_HEADER_MAX;
        if (!x->in && !(x->in = malloc(x->in_cap = limit))) x->in_cap = 0;
        buf->base = (char *)x->in + x->in_len;
        buf->len = x->in_len < x->in_cap ? x->in_cap - x->in_len : 0;
        if (!x->in) buf->base = NULL, buf->len = 0;
        return;
    }
    if (x->in_cap - x->in_len < 65536) {
        size_t ncap = x->in_cap ? x->in_cap * 2 : 65536;
        if (ncap < x->in_len + 65536) ncap = x->in_len + 65536;
        uint8_t *n = realloc(x->in, ncap);
        if (!n) {
            buf->base = NULL;
            buf->len = 0;
            return;
        }
        x->in = n;
        x->in_cap = ncap;
    }
    buf->base = (char *)x->in + x->in_len;
    buf->len = x->in_cap - x->in_len;
}

static void gossip_xchg_written(uv_write_t *w, int status)
{
    gossip_xchg_t *x = w->data;
    /* The client waits for the reply; the server is done once it sent. */
    if (status < 0 || !x->client) gossip_xchg_finish(x, status == 0);
}

/* Sends our state: the header frame, then [u32 length][sealed state], in
 * one write of two buffers. */
static bool gossip_xchg_send_state(gossip_xchg_t *x)
{
    gossip_t *g = x->g;
    size_t len;
    uint8_t *state = swim_state_export(g->core, x->join, &len);
    if (!state) return false;
    size_t cap = len + SEAL_CRYPT_OVERHEAD + 8;
    x->out = malloc(cap + 4);
    size_t slen, hlen;
    bool ok = x->out && seal_seal(&g->cfg.keyring, state, len, x->out + 4, cap, &slen) == SEAL_OK;
    free(state);
    if (!ok) return false;
    uint32_t be = htonl((uint32_t)slen);
    memcpy(x->out, &be, 4);
    uint8_t hdr[GOSSIP_PP_HEADER_LEN] = GOSSIP_PP_MAGIC;
    hdr[4] = GOSSIP_PP_VERSION;
    hdr[5] = x->join;
    memcpy(hdr + 8, &be, 4);
    if (seal_seal(&g->cfg.keyring, hdr, sizeof hdr, x->head + 4, GOSSIP_PP_HEADER_MAX, &hlen) != SEAL_OK) return false;
    be = htonl((uint32_t)hlen);
    memcpy(x->head, &be, 4);
    uv_buf_t b[2] = {uv_buf_init((char *)x->head, (unsigned)(hlen + 4)), uv_buf_init((char *)x->out, (unsigned)(slen + 4))};
    x->write.data = x;
    return uv_write(&x->write, (uv_stream_t *)&x->tcp, b, 2, gossip_xchg_written) == 0;
}

/* The connection is not push-pull: its socket goes to the divert callback
 * (as a duplicate: closing our handle then leaves the connection open). */
static void gossip_divert(gossip_xchg_t *x)
{
    gossip_t *g = x->g;
    uv_read_stop((uv_stream_t *)&x->tcp);
    uv_os_fd_t fd;
    int copy = uv_fileno((uv_handle_t *)&x->tcp, &fd) == 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (copy >= 0) g->cfg.divert(g->cfg.divert_ctx, copy, x->in + 1, x->in_len - 1);
    else log_warn("cannot hand a connection over", "\"error\":\"%s\"", strerror(errno));
    /* Not an exchange: close without counting one. */
    x->done = true;
    uv_timer_stop(&x->timer);
    uv_close((uv_handle_t *)&x->timer, gossip_xchg_handle_closed);
    uv_close((uv_handle_t *)&x->tcp, gossip_xchg_handle_closed);
    closer_finish(&x->closer, gossip_xchg_closed, x);
}

static void gossip_xchg_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    gossip_xchg_t *x = s->data;
    gossip_t *g = x->g;
    if (nread < 0) {
        gossip_xchg_finish(x, false);
        return;
    }
    x->in_len += (size_t)nread;
    if (x->sorting && x->in_len > 0) {
        x->sorting = false;
        g->nsorting--;
        if (x->in[0] == g->cfg.divert_byte) {
            gossip_divert(x);
            return;
        }
        if (g->nxchg - g->nsorting > GOSSIP_MAX_XCHG) {
            gossip_xchg_finish(x, false);
            return;
        }
    }
    if (!x->have_header) {
        if (x->in_len < 4) return;
        uint32_t be;
        memcpy(&be, x->in, 4);
        size_t hlen = ntohl(be);
        if (hlen > GOSSIP_PP_HEADER_MAX || hlen < SEAL_PLAIN_OVERHEAD) {
            g->live.drops_version++;
            gossip_xchg_finish(x, false);
            return;
        }
        if (x->in_len < 4 + hlen) return;
        uint8_t hdr[GOSSIP_PP_HEADER_MAX];
        size_t n = 0;
        seal_status_t hs = seal_open(&g->cfg.keyring, x->in + 4, hlen, hdr, sizeof hdr, &n);
        if (hs != SEAL_OK || n != GOSSIP_PP_HEADER_LEN || memcmp(hdr, GOSSIP_PP_MAGIC, 4) != 0 ||
            hdr[4] != GOSSIP_PP_VERSION) {
            if (hs == SEAL_AUTH_FAILED) g->live.drops_auth++;
            else g->live.drops_version++;
            log_warn("push-pull refused", "\"reason\":\"%s\"",
                     hs == SEAL_OK ? "bad_header" : seal_status_name(hs));
            gossip_xchg_finish(x, false);
            return;
        }
        memcpy(&be, hdr + 8, 4);
        x->state_len = ntohl(be);
        if (x->state_len > GOSSIP_MAX_STATE) {
            gossip_xchg_finish(x, false);
            return;
        }
        x->have_header = true;
        x->hdr_len = 4 + hlen;
        /* Proven a member: it gets the exchange's full time for its state. */
        uv_timer_start(&x->timer, gossip_xchg_timeout, GOSSIP_XCHG_TIMEOUT_MS, 0);
    }
    if (x->in_len < x->hdr_len + 4) return;
    uint32_t be;
    memcpy(&be, x->in + x->hdr_len, 4);
    size_t need = ntohl(be);
    if (need != x->state_len) {
        g->live.drops_version++;
        gossip_xchg_finish(x, false);
        return;
    }
    if (x->in_len < x->hdr_len + 4 + need) return;
    uv_read_stop(s);
    uint8_t *plain = malloc(need ? need : 1);
    size_t plen;
    seal_status_t st =
        plain ? seal_open(&g->cfg.keyring, x->in + x->hdr_len + 4, need, plain, need, &plen) : SEAL_NO_ROOM;
    bool ok = st == SEAL_OK && swim_state_import(g->core, plain, plen, gossip_now(g));
    free(plain);
    if (st != SEAL_OK) {
        if (st == SEAL_AUTH_FAILED) g->live.drops_auth++;
        else g->live.drops_version++;
        log_warn("push-pull refused", "\"reason\":\"%s\"", seal_status_name(st));
    }
    gossip_rearm(g);
    if (!ok || x->client) {
        gossip_xchg_finish(x, ok);
        return;
    }
    if (!gossip_xchg_send_state(x)) gossip_xchg_finish(x, false);
}

static gossip_xchg_t *gossip_xchg_new(gossip_t *g, bool client, bool join)
{
    /* With a divert an accepted connection is sorted by its first byte
     * first, and counts as an exchange only once it is one. */
    bool sorting = !client && g->cfg.divert;
    if (g->stopping) return NULL;
    if (sorting ? g->nsorting >= GOSSIP_MAX_SORTING : g->nxchg - g->nsorting >= GOSSIP_MAX_XCHG) return NULL;
    gossip_xchg_t *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->g = g;
    x->client = client;
    x->join = join;
    x->sorting = sorting;
    if (sorting) g->nsorting++;
    uv_tcp_init(g->loop, &x->tcp);
    uv_timer_init(g->loop, &x->timer);
    x->tcp.data = x->timer.data = x;
    closer_add(&x->closer, 2);
    x->next = g->xchgs;
    g->xchgs = x;
    g->nxchg++;
    closer_add(&g->closer, 1);
    uv_timer_start(&x->timer, gossip_xchg_timeout, client ? GOSSIP_XCHG_TIMEOUT_MS : GOSSIP_FIRST_TIMEOUT_MS, 0);
    return x;
}

static void gossip_xchg_connected(uv_connect_t *c, int status)
{
    gossip_xchg_t *x = c->data;
    if (status < 0 || !gossip_xchg_send_state(x)) {
        gossip_xchg_finish(x, false);
        return;
    }
    uv_read_start((uv_stream_t *)&x->tcp, gossip_xchg_alloc, gossip_xchg_read);
}

static bool gossip_exchange(gossip_t *g, const swim_addr_t *to, bool join)
{
    gossip_xchg_t *x = gossip_xchg_new(g, true, join);
    if (!x) return false;
    struct sockaddr_storage ss;
    gossip_sockaddr(to, &ss);
    x->connect.data = x;
    if (uv_tcp_connect(&x->connect, &x->tcp, (const struct sockaddr *)&ss, gossip_xchg_connected) != 0) {
        gossip_xchg_finish(x, false);
        return true; /* the failure is reported through the close */
    }
    return true;
}

static void gossip_push_pull_cb(void *ctx, const swim_addr_t *to)
{
    gossip_exchange(ctx, to, false);
}

static void gossip_on_accept(uv_stream_t *l, int status)
{
    gossip_t *g = l->data;
    if (status < 0) return;
    gossip_xchg_t *x = gossip_xchg_new(g, false, false);
    if (!x) {
        g->live.accepts_refused++;
        uv_tcp_t *tmp = malloc(sizeof *tmp);
        if (!tmp) return;
        uv_tcp_init(g->loop, tmp);
        uv_accept(l, (uv_stream_t *)tmp);
        uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        return;
    }
    if (uv_accept(l, (uv_stream_t *)&x->tcp) != 0) {
        gossip_xchg_finish(x, false);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (uv_tcp_getpeername(&x->tcp, (struct sockaddr *)&ss, &sslen) == 0)
        gossip_addr_from_sockaddr((const struct sockaddr *)&ss, &x->from);
    unsigned same = 0;
    for (gossip_xchg_t *o = g->xchgs; o; o = o->next)
        if (o != x && !o->client && !o->done && o->from.family && memcmp(o->from.ip, x->from.ip, 16) == 0) same++;
    if (same >= GOSSIP_MAX_PER_ADDR) {
        g->live.accepts_refused++;
        gossip_xchg_finish(x, false);
        return;
    }
    if (uv_read_start((uv_stream_t *)&x->tcp, gossip_xchg_alloc, gossip_xchg_read) != 0) gossip_xchg_finish(x, false);
}

/* ---------- joining ---------- */

static void gossip_join_attempt(gossip_t *g);

static void gossip_join_timer_cb(uv_timer_t *t)
{
    gossip_join_attempt(t->data);
}

static void gossip_join_result(gossip_t *g, bool ok)
{
    if (g->join_pending) g->join_pending--;
    /* Others found us first (we are the seed they named, or one of them
     * joined through us): that is a cluster joined as well. */
    if (!ok && !g->joined && swim_member_count(g->core, 1 << SWIM_STATE_ALIVE) > 1) ok = true;
    if (ok && !g->joined) {
        g->joined = true;
        g->dirty = true;
        log_info("joined cluster", "\"members\":%zu", swim_member_count(g->core, 1 << SWIM_STATE_ALIVE));
    }
    if (g->joined || g->join_pending || g->stopping) return;
    uint64_t retry_ms = backoff_next(&g->join_backoff);
    log_warn("no seed answered; retrying", "\"retry_ms\":%llu", (unsigned long long)retry_ms);
    uv_timer_start(&g->join_timer, gossip_join_timer_cb, retry_ms, 0);
}

typedef struct gossip_resolve {
    uv_getaddrinfo_t req;
    gossip_t *g;
} gossip_resolve_t;

static void gossip_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gossip_resolve_t *r = (gossip_resolve_t *)req;
    gossip_t *g = r->g;
    unsigned started = 0, self = 0;
    for (struct addrinfo *ai = status == 0 ? res : NULL; ai; ai = ai->ai_next) {
        swim_addr_t a;
        if (!gossip_addr_from_sockaddr(ai->ai_addr, &a)) continue;
        if (swim_addr_equal(&a, &g->self_addr)) { /* ourselves, listed among the seeds */
            self++;
            continue;
        }
        if (gossip_exchange(g, &a, true)) {
            g->join_pending++;
            started++;
        }
    }
    if (res) uv_freeaddrinfo(res);
    free(r);
    if (self && !started && !g->seed_other) g->seed_self_only = true;
    if (started) g->seed_other = true;
    /* This resolution is done. Every seed named only ourselves: we are the
     * first node, as with no seeds at all. */
    gossip_join_result(g, g->join_pending == 1 && g->seed_self_only && !g->seed_other);
}

static void gossip_join_attempt(gossip_t *g)
{
    if (g->joined || g->stopping) return;
    g->seed_self_only = g->seed_other = false;
    char *list = strdup(g->seeds);
    if (!list) return;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *colon = strrchr(tok, ':');
        const char *port = colon ? colon + 1 : "7946";
        if (colon) *colon = '\0';
        char *host = tok;
        if (host[0] == '[') { /* [v6]:port */
            host++;
            char *end = strchr(host, ']');
            if (end) *end = '\0';
        }
        gossip_resolve_t *r = calloc(1, sizeof *r);
        if (!r) break;
        r->g = g;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        if (uv_getaddrinfo(g->loop, &r->req, gossip_resolved, host, port, &hints) == 0) g->join_pending++;
        else free(r);
    }
    free(list);
    if (g->join_pending == 0) gossip_join_result(g, false);
}

/* ---------- events ---------- */

static void gossip_event_cb(void *ctx, const swim_event_t *ev)
{
    gossip_t *g = ctx;
    static const char *const names[] = {"member joined", "member updated", "member suspected", "member alive",
                                        "member dead",   "member left",    "member reaped",
                                        "declared dead by others; refuted"};
    char gaddr[64], esc[160];
    gossip_addr_text(&ev->member->info->gossip, gaddr, sizeof gaddr);
    log_emit(ev->type == SWIM_EV_DEAD || ev->type == SWIM_EV_SUSPECT || ev->type == SWIM_EV_DECLARED_DEAD ? LOG_WARN
                                                                                                : LOG_INFO,
             names[ev->type],
             "\"member\":\"%s\",\"addr\":\"%s\",\"incarnation\":%llu",
             log_escape(ev->member->info->name, esc, sizeof esc), gaddr,
             (unsigned long long)ev->member->incarnation);
    g->dirty = true;
    for (unsigned i = 0; i < g->nsubs; i++) g->subs[i](ev, g->sub_ctx[i]);
}

void gossip_foreach(gossip_t *g, swim_member_fn fn, void *ctx)
{
    swim_members_foreach(g->core, fn, ctx);
}

static void gossip_heard_cb(void *ctx, const swim_member_info_t *info)
{
    gossip_t *g = ctx;
    if (g->heard) g->heard(info->name, g->heard_ctx);
}

void gossip_on_heard(gossip_t *g, gossip_heard_fn fn, void *ctx)
{
    g->heard = fn;
    g->heard_ctx = ctx;
}

void gossip_subscribe(gossip_t *g, gossip_event_fn fn, void *ctx)
{
    if (g->nsubs < GOSSIP_MAX_SUBSCRIBERS) {
        g->subs[g->nsubs] = fn;
        g->sub_ctx[g->nsubs++] = ctx;
    }
}

/* ---------- lifecycle ---------- */

static int gossip_bind(gossip_t *g)
{
    swim_addr_t bind;
    if (!gossip_parse_ip(g->bind_host, g->cfg.port, &bind)) {
        log_error("cluster bind address must be an IP address", "\"host\":\"%s\"", g->bind_host);
        return UV_EINVAL;
    }
    struct sockaddr_storage ss;
    gossip_sockaddr(&bind, &ss);
    int rc;
    uv_udp_init(g->loop, &g->udp);
    uv_tcp_init(g->loop, &g->listener);
    g->udp.data = g->listener.data = g;
    closer_add(&g->closer, 2);
    /* TCP first: with port 0 it picks the port UDP then shares. */
    if ((rc = uv_tcp_bind(&g->listener, (const struct sockaddr *)&ss, 0)) != 0) return rc;
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_tcp_getsockname(&g->listener, (struct sockaddr *)&got, &len);
    swim_addr_t a;
    gossip_addr_from_sockaddr((struct sockaddr *)&got, &a);
    g->port = a.port;
    bind.port = a.port;
    gossip_sockaddr(&bind, &ss);
    if ((rc = uv_udp_bind(&g->udp, (const struct sockaddr *)&ss, 0)) != 0) return rc;
    /* The peer channel's connections come here too when they share the port. */
    if ((rc = uv_listen((uv_stream_t *)&g->listener, g->cfg.divert ? 1024 : 128, gossip_on_accept)) != 0)
        return rc;
    return uv_udp_recv_start(&g->udp, gossip_alloc_cb, gossip_recv_cb);
}

static void gossip_handle_closed(uv_handle_t *h)
{
    gossip_t *g = h->data;
    closer_closed(&g->closer);
}

int gossip_start(gossip_t **out, uv_loop_t *loop, const gossip_config_t *cfg)
{
    gossip_t *g = calloc(1, sizeof *g);
    if (!g) return UV_ENOMEM;
    g->loop = loop;
    g->cfg = *cfg;
    g->name = strdup(cfg->name ? cfg->name : "");
    g->bind_host = strdup(cfg->bind_host);
    g->advertise_host = strdup(cfg->advertise_host && *cfg->advertise_host ? cfg->advertise_host : cfg->bind_host);
    g->seeds = strdup(cfg->seeds ? cfg->seeds : "");
    g->zone = strdup(cfg->zone ? cfg->zone : "");
    g->http_host = strdup(cfg->http_host ? cfg->http_host : "");
    pthread_mutex_init(&g->snap_lock, NULL);
    backoff_init(&g->join_backoff, GOSSIP_JOIN_BACKOFF_MIN_MS, GOSSIP_JOIN_BACKOFF_MAX_MS);
    uv_timer_init(loop, &g->tick);
    uv_timer_init(loop, &g->join_timer);
    uv_timer_init(loop, &g->aux);
    g->tick.data = g->join_timer.data = g->aux.data = g;
    closer_add(&g->closer, 3);
    *out = g;
    int rc = gossip_bind(g);
    if (rc != 0) {
        log_error("cannot bind the cluster port", "\"addr\":\"%s:%d\",\"error\":\"%s\"", g->bind_host, cfg->port,
                  uv_strerror(rc));
        return rc;
    }
    if (!gossip_parse_ip(g->advertise_host, g->port, &g->self_addr) || g->self_addr.family == 0 ||
        (g->self_addr.family == 4 && memcmp(g->self_addr.ip, "\0\0\0\0", 4) == 0)) {
        log_error("--advertise must be an IP address others can reach (not 0.0.0.0)", "\"advertise\":\"%s\"",
                  g->advertise_host);
        return UV_EINVAL;
    }
    g->wall_offset_ms = sysinfo_now_ms() - gossip_now(g);
    if (!g->name || !g->name[0]) {
        /* Default name: host name and cluster port, unique per machine. */
        char host[256] = "node";
        gethostname(host, sizeof host - 1);
        char name[SWIM_NAME_MAX];
        snprintf(name, sizeof name, "%.50s:%d", host, g->port);
        free(g->name);
        g->name = strdup(name);
    }

    swim_config_t sc = cfg->swim;
    memset(&sc.self, 0, sizeof sc.self);
    randombytes_buf(sc.self.id.b, SWIM_ID_LEN);
    snprintf(sc.self.name, sizeof sc.self.name, "%s", g->name);
    sc.self.gossip = g->self_addr;
    gossip_parse_ip(g->advertise_host, cfg->http_port, &sc.self.http);
    if (cfg->peer_port == GOSSIP_PEER_SHARED) sc.self.peer = g->self_addr;
    else if (cfg->peer_port > 0) gossip_parse_ip(g->advertise_host, cfg->peer_port, &sc.self.peer);
    snprintf(sc.self.zone, sizeof sc.self.zone, "%s", g->zone);
    snprintf(sc.self.version, sizeof sc.self.version, "%s", PACKAGE_VERSION);
    /* Start time as incarnation: a restart with the same name outranks
     * everything the previous run said. */
    sc.incarnation = (uint64_t)sysinfo_now_ms();
    randombytes_buf(&sc.seed, sizeof sc.seed);
    sc.packet_max = SWIM_PACKET_MAX - seal_overhead(&cfg->keyring);
    swim_callbacks_t cb = {.send = gossip_send_cb, .push_pull = gossip_push_pull_cb, .event = gossip_event_cb,
                           .heard = gossip_heard_cb, .ctx = g};
    g->core = swim_new(&sc, &cb, gossip_now(g));
    if (!g->core) return UV_ENOMEM;
    char addr[64];
    gossip_addr_text(&g->self_addr, addr, sizeof addr);
    log_info("gossip listening", "\"name\":\"%s\",\"addr\":\"%s\",\"port\":%d,\"encrypted\":%s", g->name, addr,
             g->port, cfg->keyring.nkeys ? "true" : "false");
    if (g->seeds[0]) gossip_join_attempt(g);
    else g->joined = true;
    gossip_snapshot(g);
    gossip_rearm(g);
    return 0;
}

int gossip_port(const gossip_t *g)
{
    return g->port;
}

const uint8_t *gossip_run(const gossip_t *g)
{
    return swim_self(g->core)->id.b;
}

const char *gossip_name(const gossip_t *g)
{
    return g->name;
}

static void gossip_leave_spread_cb(uv_timer_t *t)
{
    gossip_t *g = t->data;
    if (g->leave_done) g->leave_done(g->leave_arg);
}

void gossip_leave(gossip_t *g, void (*done)(void *arg), void *arg)
{
    /* This node counts itself: alone, nobody has to hear of the leave,
     * and the process need not linger for it. */
    bool alone = swim_member_count(g->core, (1 << SWIM_STATE_ALIVE) | (1 << SWIM_STATE_SUSPECT)) <= 1;
    swim_leave(g->core, gossip_now(g));
    gossip_rearm(g);
    g->leave_done = done;
    g->leave_arg = arg;
    uv_timer_start(&g->aux, gossip_leave_spread_cb, alone ? 0 : GOSSIP_LEAVE_SPREAD_MS, 0);
}

void gossip_stop(gossip_t *g, void (*done)(void *arg), void *arg)
{
    g->stopping = true;
    uv_handle_t *hs[] = {(uv_handle_t *)&g->tick, (uv_handle_t *)&g->join_timer, (uv_handle_t *)&g->aux,
                         (uv_handle_t *)&g->udp, (uv_handle_t *)&g->listener};
    unsigned n = g->udp.loop ? 5 : 3;
    for (unsigned i = 0; i < n; i++)
        if (!uv_is_closing(hs[i])) uv_close(hs[i], gossip_handle_closed);
    for (gossip_xchg_t *x = g->xchgs; x; x = x->next) gossip_xchg_finish(x, false);
    closer_finish(&g->closer, done, arg);
}

void gossip_free(gossip_t *g)
{
    if (!g) return;
    swim_free(g->core);
    free(g->snap_json);
    pthread_mutex_destroy(&g->snap_lock);
    free(g->name);
    free(g->bind_host);
    free(g->advertise_host);
    free(g->seeds);
    free(g->zone);
    free(g->http_host);
    free(g);
}
