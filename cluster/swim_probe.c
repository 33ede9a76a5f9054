/* swim_probe: the time-driven half of the SWIM core: probing (direct and
 * indirect), relaying pings for others, suspicion timeouts, gossip rounds,
 * push-pull scheduling, and dispatch of received datagrams. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_internal.h"

#define SWIM_DECODE_SCRATCH 96
#define SWIM_PUSH_PULL_SCALE_THRESHOLD 32

static bool swim_probeable(uint8_t state)
{
    return state == SWIM_STATE_ALIVE || state == SWIM_STATE_SUSPECT;
}

static const swim_rec_t *swim_find(const swim_t *s, const swim_id_t *id)
{
    uint32_t i = swim_table_find_id(&s->table, id);
    return i == SWIM_NONE ? NULL : &s->table.recs[i];
}

static void swim_shuffle(swim_t *s)
{
    for (uint32_t i = s->table.n; i > 1; i--) swim_table_swap(&s->table, i - 1, (uint32_t)(swim_rand(s) % i));
}

/* Drops the record of a member dead or gone for longer than reap_ms. */
static bool swim_maybe_reap(swim_t *s, uint32_t i, int64_t now)
{
    swim_rec_t *r = &s->table.recs[i];
    if (swim_probeable(r->state) || swim_id_equal(&r->id, &s->self_id)) return false;
    if (now - r->state_change_ms < (int64_t)s->cfg.reap_ms) return false;
    swim_emit(s, SWIM_EV_REAPED, r);
    const swim_member_info_t *info = r->info;
    swim_table_remove(&s->table, i);
    if (s->cb.info_release) s->cb.info_release(s->cb.ctx, info);
    else free((void *)info);
    return true;
}

/* The next member to probe in the randomised round-robin order. */
static const swim_rec_t *swim_next_target(swim_t *s, int64_t now)
{
    for (uint32_t steps = 0; steps <= s->table.n + 1; steps++) {
        if (s->probe_index >= s->table.n) {
            s->probe_index = 0;
            swim_shuffle(s);
        }
        uint32_t i = s->probe_index;
        if (swim_maybe_reap(s, i, now)) continue; /* another record moved into i */
        s->probe_index++;
        const swim_rec_t *r = &s->table.recs[i];
        if (swim_probeable(r->state) && !swim_id_equal(&r->id, &s->self_id)) return r;
    }
    return NULL;
}

static void swim_probe_failed(swim_t *s, int64_t now)
{
    s->stats.probe_failures++;
    /* Lifeguard: a missing NACK means our own messages are not getting
     * through either, so suspect ourselves a little. */
    int delta = 1;
    if (s->nacks_expected) delta = (int)s->nacks_expected - (int)s->nacks_received;
    if (delta > 0) swim_health_add(s, delta);
    /* Suspect it, or, when it is suspected already, confirm that. */
    const swim_rec_t *r = swim_find(s, &s->probe_target);
    if (r && (r->state == SWIM_STATE_ALIVE || r->state == SWIM_STATE_SUSPECT))
        swim_on_suspect(s, r->incarnation, &r->id, &s->self_id, now);
}

static void swim_start_probe(swim_t *s, int64_t now)
{
    s->probing = false;
    s->next_probe_ms = now + swim_scaled(s, s->cfg.probe_interval_ms);
    const swim_rec_t *r = swim_next_target(s, now);
    if (!r) return;
    swim_msg_t msgs[2];
    size_t n = 0;
    memset(msgs, 0, sizeof msgs);
    /* Lifeguard's buddy system: tell a suspect it is suspected, so it can
     * refute without waiting for gossip to reach it. */
    if (r->state == SWIM_STATE_SUSPECT && s->cfg.lifeguard) {
        msgs[n].type = SWIM_MSG_SUSPECT;
        msgs[n].incarnation = r->incarnation;
        msgs[n].id = r->id;
        msgs[n].from = s->self_id;
        n++;
    }
    s->probe_seq = ++s->seq;
    msgs[n].type = SWIM_MSG_PING;
    msgs[n].seq = s->probe_seq;
    msgs[n].target = r->id;
    msgs[n].source = s->self_id;
    n++;
    s->probing = true;
    s->probe_acked = false;
    s->indirect_sent = false;
    s->probe_target = r->id;
    s->nacks_expected = s->nacks_received = 0;
    s->probe_timeout_at = now + swim_scaled(s, s->cfg.probe_timeout_ms);
    s->stats.probes++;
    swim_addr_t to = r->info->gossip;
    swim_send_msgs(s, &to, msgs, n);
}

/* Picks up to k distinct alive members other than self and `except`. */
static size_t swim_pick_members(swim_t *s, size_t k, const swim_id_t *except, bool include_recent_dead, int64_t now,
                                uint32_t *out)
{
    size_t got = 0;
    uint32_t n = s->table.n;
    for (uint32_t tries = 0; got < k && tries < 3 * k + 8 && n > 1; tries++) {
        uint32_t i = (uint32_t)(swim_rand(s) % n);
        const swim_rec_t *r = &s->table.recs[i];
        if (swim_id_equal(&r->id, &s->self_id) || (except && swim_id_equal(&r->id, except))) continue;
        bool ok = r->state == SWIM_STATE_ALIVE ||
                  (include_recent_dead && (r->state == SWIM_STATE_SUSPECT ||
                                           (r->state == SWIM_STATE_DEAD &&
                                            now - r->state_change_ms < (int64_t)s->cfg.gossip_to_dead_ms)));
        if (!ok) continue;
        bool dup = false;
        for (size_t j = 0; j < got; j++) dup |= out[j] == i;
        if (!dup) out[got++] = i;
    }
    return got;
}

static bool swim_pick_dead(swim_t *s, uint32_t *out)
{
    for (int tries = 0; tries < 8 && s->table.n > 1; tries++) {
        uint32_t i = (uint32_t)(swim_rand(s) % s->table.n);
        if (s->table.recs[i].state == SWIM_STATE_DEAD) {
            *out = i;
            return true;
        }
    }
    return false;
}

static void swim_send_indirect(swim_t *s, int64_t now)
{
    s->indirect_sent = true;
    const swim_rec_t *target = swim_find(s, &s->probe_target);
    if (!target) return;
    uint32_t picks[16];
    size_t k = s->cfg.indirect_checks < 16 ? s->cfg.indirect_checks : 16;
    size_t n = swim_pick_members(s, k, &s->probe_target, false, now, picks);
    swim_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = SWIM_MSG_PING_REQ;
    m.seq = s->probe_seq;
    m.target = target->id;
    m.target_addr = target->info->gossip;
    m.source = s->self_id;
    m.nack = s->cfg.lifeguard;
    /* Copy the addresses first: sending may not move records, but keep the
     * loop independent of the table. */
    swim_addr_t to[16];
    for (size_t i = 0; i < n; i++) to[i] = s->table.recs[picks[i]].info->gossip;
    for (size_t i = 0; i < n; i++) swim_send_msgs(s, &to[i], &m, 1);
    s->stats.ping_reqs_sent += n;
    s->nacks_expected = s->cfg.lifeguard ? (unsigned)n : 0;
}

void swim_gossip(swim_t *s, int64_t now)
{
    if (s->bcast.n == 0) return;
    uint32_t picks[16];
    size_t k = s->cfg.gossip_nodes < 16 ? s->cfg.gossip_nodes : 16;
    size_t n = swim_pick_members(s, k, NULL, true, now, picks);
    swim_addr_t to[16];
    for (size_t i = 0; i < n; i++) to[i] = s->table.recs[picks[i]].info->gossip;
    for (size_t i = 0; i < n && s->bcast.n; i++) swim_send_msgs(s, &to[i], NULL, 0);
}

static void swim_check_suspicions(swim_t *s, int64_t now)
{
    if (now < s->susp_next_ms) return;
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; i < s->table.n; i++) {
        swim_rec_t *r = &s->table.recs[i];
        if (r->state != SWIM_STATE_SUSPECT || !r->susp) continue;
        if (r->susp->deadline_ms <= now) {
            s->stats.deaths_declared++;
            swim_on_dead(s, r->incarnation, &r->id, &s->self_id, now);
        } else if (r->susp->deadline_ms < next) {
            next = r->susp->deadline_ms;
        }
    }
    s->susp_next_ms = next;
}

static void swim_check_relays(swim_t *s, int64_t now)
{
    for (unsigned i = 0; i < s->nrelays;) {
        swim_relay_t *rl = &s->relays[i];
        if (rl->deadline_ms > now) {
            i++;
            continue;
        }
        if (rl->nack) {
            swim_msg_t m = {.type = SWIM_MSG_NACK, .seq = rl->their_seq, .source = s->self_id};
            swim_addr_t to = rl->requester;
            swim_send_msgs(s, &to, &m, 1);
        }
        s->relays[i] = s->relays[--s->nrelays];
    }
}

static int64_t swim_push_pull_interval(const swim_t *s)
{
    size_t n = swim_live_count(s);
    double mult = 1.0;
    if (n > SWIM_PUSH_PULL_SCALE_THRESHOLD)
        mult = ceil(log2((double)n) - log2((double)SWIM_PUSH_PULL_SCALE_THRESHOLD)) + 1.0;
    return (int64_t)((double)s->cfg.push_pull_interval_ms * mult);
}

void swim_tick(swim_t *s, int64_t now)
{
    const swim_rec_t *me = swim_find(s, &s->self_id);
    bool left = me->state == SWIM_STATE_LEFT;
    if (!left) {
        swim_check_suspicions(s, now);
        if (now >= s->next_probe_ms) {
            if (s->probing && !s->probe_acked) swim_probe_failed(s, now);
            swim_start_probe(s, now);
        }
        if (s->probing && !s->probe_acked && !s->indirect_sent && now >= s->probe_timeout_at)
            swim_send_indirect(s, now);
        if (s->nrelays) swim_check_relays(s, now);
        if (!s->push_pull_placed && s->next_push_pull_ms != INT64_MAX) {
            s->push_pull_placed = true;
            s->next_push_pull_ms = now + 1 + (int64_t)(swim_rand(s) % (uint64_t)swim_push_pull_interval(s));
        }
        if (now >= s->next_push_pull_ms) {
            s->next_push_pull_ms = now + swim_push_pull_interval(s);
            uint32_t pick;
            if (s->cb.push_pull && swim_pick_members(s, 1, NULL, false, now, &pick) == 1) {
                swim_addr_t to = s->table.recs[pick].info->gossip;
                s->stats.push_pulls++;
                s->cb.push_pull(s->cb.ctx, &to);
            }
            /* Also try one member we think dead (not left): after a
             * partition heals, this is how the two sides find each other
             * again, as Serf's reconnect does. */
            if (s->cb.push_pull && swim_pick_dead(s, &pick)) {
                swim_addr_t to = s->table.recs[pick].info->gossip;
                s->stats.push_pulls++;
                s->cb.push_pull(s->cb.ctx, &to);
            }
        }
    }
    if (now >= s->next_gossip_ms) {
        s->next_gossip_ms = now + s->cfg.gossip_interval_ms;
        swim_gossip(s, now);
    }
}

int64_t swim_next_deadline(const swim_t *s)
{
    int64_t t = s->next_gossip_ms;
    const swim_rec_t *me = swim_find(s, &s->self_id);
    if (me->state == SWIM_STATE_LEFT) return t;
    if (s->next_probe_ms < t) t = s->next_probe_ms;
    if (s->probing && !s->probe_acked && !s->indirect_sent && s->probe_timeout_at < t) t = s->probe_timeout_at;
    if (s->next_push_pull_ms < t) t = s->next_push_pull_ms;
    if (s->susp_next_ms < t) t = s->susp_next_ms;
    for (unsigned i = 0; i < s->nrelays; i++)
        if (s->relays[i].deadline_ms < t) t = s->relays[i].deadline_ms;
    return t;
}

/* ---------- receiving ---------- */

static void swim_on_ping_req(swim_t *s, const swim_addr_t *from, const swim_msg_t *m, int64_t now)
{
    if (!s->relays) {
        s->relays = calloc(SWIM_MAX_RELAYS, sizeof *s->relays);
        if (!s->relays) return;
    }
    if (s->nrelays == SWIM_MAX_RELAYS) s->relays[0] = s->relays[--s->nrelays]; /* oldest-ish goes */
    swim_relay_t *rl = &s->relays[s->nrelays++];
    rl->our_seq = ++s->seq;
    rl->their_seq = m->seq;
    rl->requester = *from;
    rl->target = m->target;
    rl->nack = m->nack;
    rl->deadline_ms = now + swim_scaled(s, s->cfg.probe_timeout_ms);
    swim_msg_t ping = {.type = SWIM_MSG_PING, .seq = rl->our_seq, .target = m->target, .source = s->self_id};
    s->stats.pings_relayed++;
    swim_addr_t to = m->target_addr;
    swim_send_msgs(s, &to, &ping, 1);
}

static void swim_on_ack(swim_t *s, const swim_msg_t *m)
{
    if (s->probing && !s->probe_acked && m->seq == s->probe_seq && swim_id_equal(&m->source, &s->probe_target)) {
        s->probe_acked = true;
        s->stats.acks_received++;
        swim_health_add(s, -1);
        return;
    }
    for (unsigned i = 0; i < s->nrelays; i++) {
        swim_relay_t *rl = &s->relays[i];
        if (rl->our_seq != m->seq || !swim_id_equal(&rl->target, &m->source)) continue;
        swim_msg_t fwd = {.type = SWIM_MSG_ACK, .seq = rl->their_seq, .source = m->source};
        swim_addr_t to = rl->requester;
        s->relays[i] = s->relays[--s->nrelays];
        swim_send_msgs(s, &to, &fwd, 1);
        return;
    }
}

typedef struct swim_recv_ctx {
    swim_t *s;
    const swim_addr_t *from;
    int64_t now;
} swim_recv_ctx_t;

static void swim_dispatch(const swim_msg_t *m, void *ctx)
{
    swim_recv_ctx_t *c = ctx;
    swim_t *s = c->s;
    switch (m->type) {
    case SWIM_MSG_PING:
        if (!swim_id_equal(&m->target, &s->self_id)) {
            s->stats.drops_wrong_target++;
            break;
        }
        {
            swim_msg_t ack = {.type = SWIM_MSG_ACK, .seq = m->seq, .source = s->self_id};
            swim_send_msgs(s, c->from, &ack, 1);
        }
        break;
    case SWIM_MSG_PING_REQ: swim_on_ping_req(s, c->from, m, c->now); break;
    case SWIM_MSG_ACK: swim_on_ack(s, m); break;
    case SWIM_MSG_NACK:
        if (s->probing && m->seq == s->probe_seq) {
            s->nacks_received++;
            s->stats.nacks_received++;
        }
        break;
    case SWIM_MSG_ALIVE: swim_on_alive(s, m->incarnation, &m->member, c->now); break;
    case SWIM_MSG_SUSPECT: swim_on_suspect(s, m->incarnation, &m->id, &m->from, c->now); break;
    case SWIM_MSG_DEAD: swim_on_dead(s, m->incarnation, &m->id, &m->from, c->now); break;
    }
}

void swim_recv(swim_t *s, const swim_addr_t *from, const uint8_t *buf, size_t len, int64_t now)
{
    s->stats.packets_in++;
    s->stats.bytes_in += len;
    swim_msg_t scratch[SWIM_DECODE_SCRATCH];
    swim_recv_ctx_t c = {s, from, now};
    if (swim_packet_decode(buf, len, scratch, SWIM_DECODE_SCRATCH, swim_dispatch, &c) != SWIM_PROTO_OK)
        s->stats.drops_malformed++;
}
