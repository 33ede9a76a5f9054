/* swim: the SWIM + Lifeguard state machine (contract in swim.h). Probing,
 * failure detection and dissemination live here; the member table and the
 * update queue are swim_table.c and swim_bcast.c. */
#include "cluster/swim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_bcast.h"
#include "cluster/swim_internal.h"
#include "cluster/swim_table.h"

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

uint64_t swim_rand(swim_t *s)
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
size_t swim_live_count(const swim_t *s)
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

void swim_emit(swim_t *s, swim_event_type_t type, const swim_rec_t *r)
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

void swim_set_state(swim_t *s, swim_rec_t *r, swim_state_t st, int64_t now)
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
int64_t swim_scaled(const swim_t *s, uint32_t ms)
{
    return (int64_t)ms * (s->cfg.lifeguard ? (int64_t)s->health + 1 : 1);
}

void swim_health_add(swim_t *s, int delta)
{
    if (!s->cfg.lifeguard) return;
    int h = (int)s->health + delta;
    int top = (int)s->cfg.awareness_max - 1;
    s->health = (uint32_t)(h < 0 ? 0 : h > top ? top : h);
}

/* ---------- sending ---------- */

/* Sends `msgs` to `to`, filling the rest of the datagram with queued
 * updates. */
void swim_send_msgs(swim_t *s, const swim_addr_t *to, const swim_msg_t *msgs, size_t n)
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

void swim_broadcast(swim_t *s, const swim_msg_t *m)
{
    swim_bcast_push(&s->bcast, m);
    s->stats.broadcasts_dropped = s->bcast.dropped;
}

void swim_alive_msg(const swim_rec_t *r, swim_msg_t *m)
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
    free(s->relays);
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

void swim_on_alive(swim_t *s, uint64_t inc, const swim_member_info_t *info, int64_t now)
{
    if (swim_id_equal(&info->id, &s->self_id)) {
        uint32_t i = swim_table_find_id(&s->table, &s->self_id);
        /* Someone claims a newer incarnation of us: refute it. */
        if (inc > s->table.recs[i].incarnation) swim_refute(s, inc);
        return;
    }
    uint32_t i = swim_table_find_id(&s->table, &info->id);
    if (i == SWIM_NONE) i = swim_table_find_name(&s->table, info->name);
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

void swim_on_suspect(swim_t *s, uint64_t inc, const swim_id_t *id, const swim_id_t *from, int64_t now)
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

void swim_on_dead(swim_t *s, uint64_t inc, const swim_id_t *id, const swim_id_t *from, int64_t now)
{
    bool leave = swim_id_equal(id, from);
    if (swim_id_equal(id, &s->self_id)) {
        uint32_t me = swim_table_find_id(&s->table, &s->self_id);
        if (!leave && s->table.recs[me].state != SWIM_STATE_LEFT && inc >= s->table.recs[me].incarnation)
            swim_refute(s, inc);
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
