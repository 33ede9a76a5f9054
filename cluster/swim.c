/* swim: the SWIM + Lifeguard state machine (contract in swim.h): the
 * membership rules (alive, suspect, dead, refutation), probing and indirect
 * probing, dissemination (piggybacked updates, gossip rounds, push-pull) and
 * receiving. It is one state machine over one member table: probing walks
 * the table's order, joins are placed at random in it, probe outcomes feed
 * the rules and the rules feed the health score probing runs on. The parts
 * that stand alone are their own modules: the member table (swim_table), the
 * update queue (swim_bcast), the relays for others' PING_REQs (swim_relay)
 * and the codec (swim_proto). */
#include "cluster/swim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_bcast.h"
#include "cluster/swim_relay.h"
#include "cluster/swim_table.h"

/* Received messages decoded per packet at most. */
#define SWIM_DECODE_SCRATCH 96
/* Beyond this many members the push-pull interval grows (as memberlist). */
#define SWIM_PUSH_PULL_SCALE_THRESHOLD 32
/* Members one indirect probe or gossip round contacts at most. */
#define SWIM_PICK_MAX 16

struct swim {
    swim_config_t cfg;
    swim_callbacks_t cb;
    swim_id_t self_id;
    uint64_t rng;
    swim_table_t table;
    swim_bcast_t bcast;
    size_t live;                 /* alive + suspect records, self included */
    uint32_t health;             /* Lifeguard local health score */
    uint32_t seq;

    /* The probe of this protocol period. */
    uint32_t probe_index;        /* position in the probe order */
    bool probing;
    bool probe_acked;
    bool indirect_sent;
    swim_id_t probe_target;
    uint32_t probe_seq;
    unsigned nacks_expected, nacks_received;
    int64_t probe_timeout_at;    /* send PING_REQs then */
    int64_t next_probe_ms;       /* end of this period, start of the next */
    int64_t next_gossip_ms;
    int64_t next_push_pull_ms;
    int64_t stale_probe_pp_ms;   /* earliest next push-pull answering a probe for a previous run of us */
    bool push_pull_placed;       /* the first exchange got its random place */
    int64_t susp_next_ms;        /* earliest suspicion deadline (or later) */

    swim_relays_t relays;        /* pings we send for others' PING_REQs */
    swim_stats_t stats;
};

void swim_config_default(swim_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->probe_interval_ms = 1000;
    c->probe_timeout_ms = 500;
    c->indirect_checks = 3;
    c->suspicion_mult = 4;
    c->suspicion_max_mult = 6;
    c->retransmit_mult = 6;
    c->gossip_interval_ms = 200;
    c->gossip_nodes = 3;
    c->gossip_to_dead_ms = 30000;
    c->push_pull_interval_ms = 30000;
    c->awareness_max = 8;
    c->reap_ms = 3600000;
    c->max_members = 65536;
    c->max_broadcasts = 4096;
    c->packet_max = SWIM_PACKET_MAX;
    c->lifeguard = true;
}

/* ---------- small helpers ---------- */

static uint64_t swim_rand(swim_t *s)
{
    /* xorshift64*: fast, and reproducible from the seed. */
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t swim_rand_below(swim_t *s, uint32_t n)
{
    return n ? (uint32_t)(swim_rand(s) % n) : 0;
}

/* Members that count for timeouts and retransmissions: alive and suspect,
 * self included. */
static size_t swim_live_count(const swim_t *s)
{
    return s->live;
}

static void swim_view(const swim_t *s, const swim_rec_t *r, swim_member_view_t *v)
{
    v->info = r->info;
    v->state = (swim_state_t)r->state;
    v->incarnation = r->incarnation;
    v->state_change_ms = r->state_change_ms;
    v->is_self = swim_id_equal(&r->id, &s->self_id);
}

static void swim_emit(swim_t *s, swim_event_type_t type, const swim_rec_t *r)
{
    if (!s->cb.event) return;
    swim_member_view_t v;
    swim_view(s, r, &v);
    swim_event_t ev = {type, &v};
    s->cb.event(s->cb.ctx, &ev);
}

static const swim_member_info_t *swim_info_acquire(swim_t *s, const swim_member_info_t *info)
{
    if (s->cb.info_acquire) return s->cb.info_acquire(s->cb.ctx, info);
    swim_member_info_t *copy = malloc(sizeof *copy);
    if (copy) *copy = *info;
    return copy;
}

static void swim_info_release(swim_t *s, const swim_member_info_t *info)
{
    if (!info) return;
    if (s->cb.info_release) s->cb.info_release(s->cb.ctx, info);
    else free((void *)info);
}

static bool swim_is_live(uint8_t state)
{
    return state == SWIM_STATE_ALIVE || state == SWIM_STATE_SUSPECT;
}

static void swim_set_state(swim_t *s, swim_rec_t *r, swim_state_t st, int64_t now)
{
    bool was = swim_is_live(r->state), is = swim_is_live((uint8_t)st);
    if (was && !is) s->live--;
    if (!was && is) s->live++;
    if (r->state != st) r->state_change_ms = now;
    r->state = (uint8_t)st;
    if (st != SWIM_STATE_SUSPECT && r->susp) {
        free(r->susp);
        r->susp = NULL;
    }
}

/* ---------- timeouts ---------- */

void swim_suspicion_bounds(const swim_config_t *cfg, size_t n, int64_t *min_ms, int64_t *max_ms)
{
    double scale = n > 1 ? log10((double)n) : 1.0;
    if (scale < 1.0) scale = 1.0;
    *min_ms = (int64_t)((double)cfg->suspicion_mult * scale * (double)cfg->probe_interval_ms);
    *max_ms = cfg->lifeguard ? *min_ms * (int64_t)cfg->suspicion_max_mult : *min_ms;
}

int64_t swim_suspicion_timeout(int64_t min_ms, int64_t max_ms, unsigned confirmations, unsigned expected)
{
    if (expected == 0 || max_ms <= min_ms) return min_ms;
    double frac = log((double)confirmations + 1.0) / log((double)expected + 1.0);
    double t = (double)max_ms - frac * (double)(max_ms - min_ms);
    return t < (double)min_ms ? min_ms : (int64_t)floor(t);
}

unsigned swim_retransmit_limit(const swim_config_t *cfg, size_t n)
{
    return cfg->retransmit_mult * (unsigned)ceil(log10((double)n + 1.0));
}

/* Lifeguard: probe interval and timeout stretch with the health score. */
static int64_t swim_scaled(const swim_t *s, uint32_t ms)
{
    return (int64_t)ms * (s->cfg.lifeguard ? (int64_t)s->health + 1 : 1);
}

static void swim_health_add(swim_t *s, int delta)
{
    if (!s->cfg.lifeguard) return;
    int h = (int)s->health + delta;
    int top = (int)s->cfg.awareness_max - 1;
    s->health = (uint32_t)(h < 0 ? 0 : h > top ? top : h);
}

/* ---------- sending ---------- */

/* Sends `msgs` to `to`, filling the rest of the datagram with queued
 * updates. */
static void swim_send_msgs(swim_t *s, const swim_addr_t *to, const swim_msg_t *msgs, size_t n)
{
    uint8_t buf[SWIM_PACKET_MAX];
    size_t cap = s->cfg.packet_max < sizeof buf ? s->cfg.packet_max : sizeof buf;
    swim_packet_writer_t w;
    swim_packet_begin(&w, buf, cap);
    for (size_t i = 0; i < n; i++) swim_packet_add(&w, &msgs[i]);
    swim_bcast_fill(&s->bcast, &w, swim_retransmit_limit(&s->cfg, swim_live_count(s)));
    size_t len = swim_packet_finish(&w);
    if (!len) return;
    s->stats.packets_out++;
    s->stats.bytes_out += len;
    s->cb.send(s->cb.ctx, to, buf, len);
}

static void swim_broadcast(swim_t *s, const swim_msg_t *m)
{
    swim_bcast_push(&s->bcast, m);
    s->stats.broadcasts_dropped = s->bcast.dropped;
}

static void swim_alive_msg(const swim_rec_t *r, swim_msg_t *m)
{
    memset(m, 0, sizeof *m);
    m->type = SWIM_MSG_ALIVE;
    m->incarnation = r->incarnation;
    m->member = *r->info;
}

/* ---------- lifecycle ---------- */

swim_t *swim_new(const swim_config_t *cfg, const swim_callbacks_t *cb, int64_t now)
{
    if (!cfg || !cb || !cb->send || !cfg->probe_interval_ms || !cfg->gossip_interval_ms || !cfg->self.name[0])
        return NULL;
    swim_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = *cfg;
    if (s->cfg.packet_max == 0 || s->cfg.packet_max > SWIM_PACKET_MAX) s->cfg.packet_max = SWIM_PACKET_MAX;
    if (s->cfg.awareness_max == 0) s->cfg.awareness_max = 1;
    s->cb = *cb;
    s->rng = cfg->seed ? cfg->seed : 0x9E3779B97F4A7C15ull;
    s->self_id = cfg->self.id;
    swim_bcast_init(&s->bcast, cfg->max_broadcasts);
    if (!swim_table_init(&s->table, s->rng)) {
        free(s);
        return NULL;
    }
    swim_rec_t self = {.id = cfg->self.id, .incarnation = cfg->incarnation, .state_change_ms = now,
                       .state = SWIM_STATE_ALIVE};
    self.info = swim_info_acquire(s, &cfg->self);
    if (!self.info || swim_table_add(&s->table, &self) == SWIM_NONE) {
        swim_info_release(s, self.info);
        swim_table_destroy(&s->table);
        free(s);
        return NULL;
    }
    s->live = 1;
    /* Announce ourselves: whoever we reach first spreads it. */
    swim_msg_t hello;
    swim_alive_msg(&s->table.recs[0], &hello);
    swim_broadcast(s, &hello);
    /* Spread the first probe and gossip over the interval so members that
     * start together do not fire together. */
    s->next_probe_ms = now + swim_rand_below(s, cfg->probe_interval_ms);
    s->next_gossip_ms = now + swim_rand_below(s, cfg->gossip_interval_ms);
    /* Placed at random within the first (scaled) interval on the first
     * tick: members started together must not all exchange state at once. */
    s->next_push_pull_ms = cfg->push_pull_interval_ms ? now : INT64_MAX;
    s->push_pull_placed = false;
    s->susp_next_ms = INT64_MAX;
    return s;
}

void swim_free(swim_t *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < s->table.n; i++) {
        free(s->table.recs[i].susp);
        swim_info_release(s, s->table.recs[i].info);
    }
    swim_table_destroy(&s->table);
    swim_bcast_destroy(&s->bcast);
    swim_relay_free(&s->relays);
    free(s);
}

const swim_member_info_t *swim_self(const swim_t *s)
{
    return s->table.recs[swim_table_find_id(&s->table, &s->self_id)].info;
}

uint64_t swim_self_incarnation(const swim_t *s)
{
    return s->table.recs[swim_table_find_id(&s->table, &s->self_id)].incarnation;
}

void swim_get_stats(const swim_t *s, swim_stats_t *out)
{
    *out = s->stats;
    out->health_score = s->health;
}

size_t swim_member_count(const swim_t *s, int mask)
{
    size_t n = 0;
    for (uint32_t i = 0; i < s->table.n; i++)
        if (mask & (1 << s->table.recs[i].state)) n++;
    return n;
}

void swim_members_foreach(const swim_t *s, swim_member_fn fn, void *ctx)
{
    for (uint32_t i = 0; i < s->table.n; i++) {
        swim_member_view_t v;
        swim_view(s, &s->table.recs[i], &v);
        fn(&v, ctx);
    }
}

bool swim_member_find(const swim_t *s, const char *name, swim_member_view_t *out)
{
    uint32_t i = swim_table_find_name(&s->table, name);
    if (i == SWIM_NONE) return false;
    swim_view(s, &s->table.recs[i], out);
    return true;
}

/* ---------- state changes (the rules of SWIM) ---------- */

/* Raises our incarnation past `seen` and tells everyone we are alive. */
static void swim_refute(swim_t *s, uint64_t seen)
{
    uint32_t i = swim_table_find_id(&s->table, &s->self_id);
    swim_rec_t *me = &s->table.recs[i];
    if (me->state == SWIM_STATE_LEFT) return;
    if (seen >= me->incarnation) me->incarnation = seen + 1;
    s->stats.refutations++;
    swim_health_add(s, 1);
    swim_msg_t m;
    swim_alive_msg(me, &m);
    swim_broadcast(s, &m);
}

static void swim_on_alive(swim_t *s, uint64_t inc, const swim_member_info_t *info, int64_t now)
{
    if (swim_id_equal(&info->id, &s->self_id)) {
        uint32_t i = swim_table_find_id(&s->table, &s->self_id);
        /* Someone claims a newer incarnation of us: refute it. */
        if (inc > s->table.recs[i].incarnation) swim_refute(s, inc);
        return;
    }
    uint32_t i = swim_table_find_id(&s->table, &info->id);
    if (i == SWIM_NONE) i = swim_table_find_name(&s->table, info->name);
    if (i != SWIM_NONE && swim_id_equal(&s->table.recs[i].id, &s->self_id)) {
        /* An earlier run of this node (its name, another id) is still
         * gossiped alive, maybe with a higher incarnation (incarnations
         * start from the wall clock, which may have run ahead then). This
         * run is the one alive: it must never take the other's place in
         * its own table; it claims the name with a newer incarnation. */
        if (inc >= s->table.recs[i].incarnation) swim_refute(s, inc);
        return;
    }
    if (i == SWIM_NONE) {
        if (s->table.n >= s->cfg.max_members) return;
        swim_rec_t r = {.id = info->id, .incarnation = inc, .state_change_ms = now, .state = SWIM_STATE_DEAD};
        r.info = swim_info_acquire(s, info);
        if (!r.info) return;
        uint32_t at = swim_table_add(&s->table, &r);
        if (at == SWIM_NONE) {
            swim_info_release(s, r.info);
            return;
        }
        /* A random place in the probe order, so a joiner is probed soon by
         * some members and later by others. */
        swim_table_swap(&s->table, at, swim_rand_below(s, s->table.n));
        at = swim_table_find_id(&s->table, &info->id);
        swim_rec_t *nr = &s->table.recs[at];
        swim_set_state(s, nr, SWIM_STATE_ALIVE, now);
        nr->state_change_ms = now;
        swim_msg_t m;
        swim_alive_msg(nr, &m);
        swim_broadcast(s, &m);
        swim_emit(s, SWIM_EV_JOIN, nr);
        return;
    }
    swim_rec_t *r = &s->table.recs[i];
    if (inc <= r->incarnation) return; /* stale, or a refutation needs a higher incarnation */
    bool new_run = !swim_id_equal(&r->id, &info->id);
    bool changed = new_run || memcmp(r->info, info, sizeof *info) != 0;
    uint8_t was = r->state;
    if (new_run) swim_table_set_id(&s->table, i, &info->id);
    if (changed) {
        const swim_member_info_t *ni = swim_info_acquire(s, info);
        if (!ni) return;
        swim_info_release(s, r->info);
        r->info = ni;
    }
    r->incarnation = inc;
    swim_set_state(s, r, SWIM_STATE_ALIVE, now);
    swim_msg_t m;
    swim_alive_msg(r, &m);
    swim_broadcast(s, &m);
    if (changed) swim_emit(s, SWIM_EV_UPDATE, r);
    if (was != SWIM_STATE_ALIVE) swim_emit(s, SWIM_EV_ALIVE, r);
}

static void swim_on_suspect(swim_t *s, uint64_t inc, const swim_id_t *id, const swim_id_t *from, int64_t now)
{
    if (swim_id_equal(id, &s->self_id)) {
        uint32_t me = swim_table_find_id(&s->table, &s->self_id);
        if (inc >= s->table.recs[me].incarnation) swim_refute(s, inc);
        return;
    }
    uint32_t i = swim_table_find_id(&s->table, id);
    if (i == SWIM_NONE) return;
    swim_rec_t *r = &s->table.recs[i];
    if (inc < r->incarnation || !swim_is_live(r->state)) return;
    swim_msg_t m = {.type = SWIM_MSG_SUSPECT, .incarnation = inc, .id = *id, .from = *from};
    if (r->state == SWIM_STATE_SUSPECT) {
        /* Lifeguard: an independent confirmation shortens the timeout;
         * pass it on so others count it too. */
        swim_suspicion_t *sp = r->susp;
        if (!sp || !s->cfg.lifeguard) return;
        /* Our own failed probe counts too, once, like anyone else's (as in
         * memberlist); whoever raised the suspicion does not count twice. */
        if (swim_id_equal(from, &sp->origin)) return;
        for (unsigned k = 0; k < sp->confirmations && k < SWIM_MAX_CONFIRM; k++)
            if (swim_id_equal(&sp->confirmers[k], from)) return;
        if (sp->confirmations >= sp->expected) return;
        if (sp->confirmations < SWIM_MAX_CONFIRM) sp->confirmers[sp->confirmations] = *from;
        sp->confirmations++;
        sp->deadline_ms = sp->start_ms + swim_suspicion_timeout(sp->min_ms, sp->max_ms, sp->confirmations, sp->expected);
        if (sp->deadline_ms < s->susp_next_ms) s->susp_next_ms = sp->deadline_ms;
        swim_broadcast(s, &m);
        return;
    }
    swim_suspicion_t *sp = calloc(1, sizeof *sp);
    if (!sp) return;
    r->incarnation = inc;
    swim_set_state(s, r, SWIM_STATE_SUSPECT, now);
    r->susp = sp;
    sp->start_ms = now;
    size_t n = swim_live_count(s);
    swim_suspicion_bounds(&s->cfg, n, &sp->min_ms, &sp->max_ms);
    /* memberlist: expect suspicion_mult - 2 confirmations, none in tiny
     * clusters where that many others may not exist. */
    unsigned k = s->cfg.suspicion_mult > 2 ? s->cfg.suspicion_mult - 2 : 0;
    if (n < (size_t)k + 2) k = 0;
    sp->expected = s->cfg.lifeguard ? k : 0;
    sp->origin = *from;
    sp->deadline_ms = now + swim_suspicion_timeout(sp->min_ms, sp->max_ms, sp->confirmations, sp->expected);
    if (sp->deadline_ms < s->susp_next_ms) s->susp_next_ms = sp->deadline_ms;
    if (swim_id_equal(from, &s->self_id)) s->stats.suspicions_raised++;
    swim_broadcast(s, &m);
    swim_emit(s, SWIM_EV_SUSPECT, r);
}

static void swim_on_dead(swim_t *s, uint64_t inc, const swim_id_t *id, const swim_id_t *from, int64_t now)
{
    bool leave = swim_id_equal(id, from);
    if (swim_id_equal(id, &s->self_id)) {
        uint32_t me = swim_table_find_id(&s->table, &s->self_id);
        if (!leave && s->table.recs[me].state != SWIM_STATE_LEFT && inc >= s->table.recs[me].incarnation) {
            swim_refute(s, inc);
            swim_emit(s, SWIM_EV_DECLARED_DEAD, &s->table.recs[me]);
        }
        return;
    }
    uint32_t i = swim_table_find_id(&s->table, id);
    if (i == SWIM_NONE) return;
    swim_rec_t *r = &s->table.recs[i];
    if (inc < r->incarnation || !swim_is_live(r->state)) return;
    r->incarnation = inc;
    swim_set_state(s, r, leave ? SWIM_STATE_LEFT : SWIM_STATE_DEAD, now);
    swim_msg_t m = {.type = SWIM_MSG_DEAD, .incarnation = inc, .id = *id, .from = *from};
    swim_broadcast(s, &m);
    swim_emit(s, leave ? SWIM_EV_LEFT : SWIM_EV_DEAD, r);
}

/* ---------- probing and gossip ---------- */

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
    uint32_t picks[SWIM_PICK_MAX];
    size_t k = s->cfg.indirect_checks < SWIM_PICK_MAX ? s->cfg.indirect_checks : SWIM_PICK_MAX;
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
    swim_addr_t to[SWIM_PICK_MAX];
    for (size_t i = 0; i < n; i++) to[i] = s->table.recs[picks[i]].info->gossip;
    for (size_t i = 0; i < n; i++) swim_send_msgs(s, &to[i], &m, 1);
    s->stats.ping_reqs_sent += n;
    s->nacks_expected = s->cfg.lifeguard ? (unsigned)n : 0;
}

static void swim_gossip(swim_t *s, int64_t now)
{
    if (s->bcast.n == 0) return;
    uint32_t picks[SWIM_PICK_MAX];
    size_t k = s->cfg.gossip_nodes < SWIM_PICK_MAX ? s->cfg.gossip_nodes : SWIM_PICK_MAX;
    size_t n = swim_pick_members(s, k, NULL, true, now, picks);
    swim_addr_t to[SWIM_PICK_MAX];
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

/* A relay timed out: with Lifeguard, tell its requester we got no ACK
 * either. */
static void swim_relay_expired(const swim_relay_t *rl, void *ctx)
{
    swim_t *s = ctx;
    if (!rl->nack) return;
    swim_msg_t m = {.type = SWIM_MSG_NACK, .seq = rl->their_seq, .source = s->self_id};
    swim_addr_t to = rl->requester;
    swim_send_msgs(s, &to, &m, 1);
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
        swim_relay_expire(&s->relays, now, swim_relay_expired, s);
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
    int64_t relay_at = swim_relay_next_deadline(&s->relays);
    if (relay_at < t) t = relay_at;
    return t;
}

/* ---------- receiving ---------- */

static void swim_on_ping_req(swim_t *s, const swim_addr_t *from, const swim_msg_t *m, int64_t now)
{
    swim_relay_t *rl = swim_relay_add(&s->relays);
    if (!rl) return;
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

static void swim_heard(swim_t *s, const swim_id_t *id)
{
    if (!s->cb.heard || swim_id_equal(id, &s->self_id)) return;
    const swim_rec_t *r = swim_find(s, id);
    if (r) s->cb.heard(s->cb.ctx, r->info);
}

static void swim_on_ack(swim_t *s, const swim_msg_t *m)
{
    swim_heard(s, &m->source);
    if (s->probing && !s->probe_acked && m->seq == s->probe_seq && swim_id_equal(&m->source, &s->probe_target)) {
        s->probe_acked = true;
        s->stats.acks_received++;
        swim_health_add(s, -1);
        return;
    }
    swim_relay_t rl;
    if (swim_relay_take(&s->relays, m->seq, &m->source, &rl)) {
        swim_msg_t fwd = {.type = SWIM_MSG_ACK, .seq = rl.their_seq, .source = m->source};
        swim_send_msgs(s, &rl.requester, &fwd, 1);
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
            /* Most likely the sender still probes a previous run of this
             * node (restarted before anyone saw it die): a full state
             * exchange tells it about this run and tells us about the
             * cluster, rather than both waiting for the periodic push-pull
             * (a node whose only seed is itself knows no one else). At most
             * one per probe interval. */
            if (s->cb.push_pull && c->now >= s->stale_probe_pp_ms) {
                s->stale_probe_pp_ms = c->now + (int64_t)s->cfg.probe_interval_ms;
                s->cb.push_pull(s->cb.ctx, c->from);
            }
            break;
        }
        swim_heard(s, &m->source);
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
/* ---------- push-pull ---------- */

uint8_t *swim_state_export(swim_t *s, bool join, size_t *len)
{
    swim_state_writer_t w;
    swim_state_begin(&w, join);
    for (uint32_t i = 0; i < s->table.n; i++) {
        const swim_rec_t *r = &s->table.recs[i];
        swim_state_record_t rec = {.state = (swim_state_t)r->state, .incarnation = r->incarnation, .member = *r->info};
        swim_state_add(&w, &rec);
    }
    return swim_state_finish(&w, len);
}

typedef struct swim_import_ctx {
    swim_t *s;
    int64_t now;
} swim_import_ctx_t;

static void swim_import_record(const swim_state_record_t *r, void *ctx)
{
    swim_import_ctx_t *c = ctx;
    swim_t *s = c->s;
    switch (r->state) {
    case SWIM_STATE_ALIVE:
        swim_on_alive(s, r->incarnation, &r->member, c->now);
        break;
    case SWIM_STATE_SUSPECT:
    case SWIM_STATE_DEAD:
        /* As memberlist does: what a peer believes dead we only suspect, so
         * the member gets its chance to refute. A member we never saw is
         * learned as alive first, then suspected. */
        if (swim_table_find_id(&s->table, &r->member.id) == SWIM_NONE) {
            if (r->state == SWIM_STATE_DEAD) break;
            swim_on_alive(s, r->incarnation, &r->member, c->now);
        }
        if (r->state == SWIM_STATE_DEAD && swim_id_equal(&r->member.id, &s->self_id)) {
            /* A peer's state says we died: refute, and say so (the data
             * path treats it as having been away). */
            uint32_t me = swim_table_find_id(&s->table, &s->self_id);
            if (r->incarnation >= s->table.recs[me].incarnation) {
                swim_refute(s, r->incarnation);
                swim_emit(s, SWIM_EV_DECLARED_DEAD, &s->table.recs[me]);
            }
            break;
        }
        swim_on_suspect(s, r->incarnation, &r->member.id, &s->self_id, c->now);
        break;
    case SWIM_STATE_LEFT:
        swim_on_dead(s, r->incarnation, &r->member.id, &r->member.id, c->now);
        break;
    }
}

bool swim_state_import(swim_t *s, const uint8_t *buf, size_t len, int64_t now)
{
    swim_import_ctx_t c = {s, now};
    bool join;
    if (swim_state_decode(buf, len, s->cfg.max_members, &join, swim_import_record, &c) != SWIM_PROTO_OK) {
        s->stats.drops_state++;
        return false;
    }
    return true;
}

bool swim_add_quiet(swim_t *s, const swim_member_info_t *info, uint64_t inc, int64_t now)
{
    if (s->table.n >= s->cfg.max_members || swim_table_find_id(&s->table, &info->id) != SWIM_NONE ||
        swim_table_find_name(&s->table, info->name) != SWIM_NONE)
        return false;
    swim_rec_t r = {.id = info->id, .incarnation = inc, .state_change_ms = now, .state = SWIM_STATE_ALIVE};
    r.info = swim_info_acquire(s, info);
    if (!r.info) return false;
    uint32_t at = swim_table_add(&s->table, &r);
    if (at == SWIM_NONE) {
        swim_info_release(s, r.info);
        return false;
    }
    swim_table_swap(&s->table, at, (uint32_t)(swim_rand(s) % s->table.n));
    s->live++;
    return true;
}

void swim_leave(swim_t *s, int64_t now)
{
    uint32_t i = swim_table_find_id(&s->table, &s->self_id);
    swim_rec_t *me = &s->table.recs[i];
    if (me->state == SWIM_STATE_LEFT) return;
    me->incarnation++;
    swim_set_state(s, me, SWIM_STATE_LEFT, now);
    swim_msg_t m = {.type = SWIM_MSG_DEAD, .incarnation = me->incarnation, .id = s->self_id, .from = s->self_id};
    swim_broadcast(s, &m);
    /* Tell a few members right away; gossip carries it the rest of the way. */
    swim_gossip(s, now);
}
