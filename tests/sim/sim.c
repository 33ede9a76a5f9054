#include "tests/sim/sim.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIM_EV_TICK, SIM_EV_PACKET, SIM_EV_PUSH_PULL };

typedef struct sim_event {
    int64_t t;
    uint64_t order;       /* FIFO among equal times: determinism */
    uint8_t type;
    uint32_t to, from, gen;
    uint8_t *data;
    uint16_t len;
} sim_event_t;

/* Member info handed to cores: canonical copies are owned by the simulator
 * and shared; other copies belong to the core that asked for them. */
typedef struct sim_info {
    bool canonical;
    swim_member_info_t info;
} sim_info_t;

typedef struct sim_node {
    sim_t *sim;
    uint32_t index;
    swim_t *core;
    bool up;
    int64_t paused_until;
    uint8_t side;
    uint32_t run;
    uint32_t tick_gen;
    int64_t tick_at;
    sim_info_t *info;     /* canonical info of the current run */
} sim_node_t;

struct sim {
    sim_config_t cfg;
    int64_t now;
    uint64_t rng;
    uint64_t order;
    sim_node_t *nodes;
    sim_event_t *heap;
    size_t nheap, heap_cap;
    bool partitioned, one_way;
    sim_info_t **old_infos;   /* canonical infos of earlier runs */
    size_t nold, old_cap;
    uint64_t false_deaths;
    uint64_t delivered;
};

static uint64_t sim_rand(sim_t *s)
{
    /* splitmix64 */
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double sim_uniform(sim_t *s)
{
    return (double)(sim_rand(s) >> 11) / 9007199254740992.0;
}

/* ---------- event heap ---------- */

static bool sim_before(const sim_event_t *a, const sim_event_t *b)
{
    return a->t < b->t || (a->t == b->t && a->order < b->order);
}

static void sim_push(sim_t *s, sim_event_t ev)
{
    if (s->nheap == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 1024;
        s->heap = realloc(s->heap, s->heap_cap * sizeof *s->heap);
        if (!s->heap) abort();
    }
    ev.order = s->order++;
    size_t i = s->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!sim_before(&ev, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = ev;
}

static sim_event_t sim_pop(sim_t *s)
{
    sim_event_t top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nheap) break;
        if (c + 1 < s->nheap && sim_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!sim_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->nheap) s->heap[i] = last;
    return top;
}

/* ---------- addressing ---------- */

static swim_addr_t sim_addr(uint32_t i)
{
    swim_addr_t a = {.family = 4, .port = 7946};
    a.ip[0] = 10;
    a.ip[1] = (uint8_t)(i >> 16);
    a.ip[2] = (uint8_t)(i >> 8);
    a.ip[3] = (uint8_t)i;
    return a;
}

static uint32_t sim_index_of(const swim_addr_t *a)
{
    return ((uint32_t)a->ip[1] << 16) | ((uint32_t)a->ip[2] << 8) | a->ip[3];
}

static uint32_t sim_index_of_id(const swim_id_t *id)
{
    uint32_t i;
    memcpy(&i, id->b, sizeof i);
    return i;
}

static bool sim_reachable(const sim_t *s, uint32_t from, uint32_t to)
{
    if (!s->partitioned) return true;
    uint8_t a = s->nodes[from].side, b = s->nodes[to].side;
    if (a == b) return true;
    return s->one_way && a > b;
}

/* A link's fixed latency: the same pair is always as far apart (both ways),
 * derived from the pair and the seed, so no table of N^2 links is needed. */
static int64_t sim_link_latency(const sim_t *s, uint32_t a, uint32_t b)
{
    if (!s->cfg.link_spread_ms) return s->cfg.latency_ms;
    uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
    uint64_t z = (lo << 32 | hi) ^ s->cfg.seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return s->cfg.latency_ms + (int64_t)(z % (s->cfg.link_spread_ms + 1));
}

/* ---------- core callbacks ---------- */

static void sim_schedule_tick(sim_node_t *n)
{
    if (!n->up || !n->core) return;
    int64_t d = swim_next_deadline(n->core);
    if (d < n->sim->now) d = n->sim->now;
    if (d < n->paused_until) d = n->paused_until;
    if (d == n->tick_at) return;
    n->tick_at = d;
    sim_push(n->sim, (sim_event_t){.t = d, .type = SIM_EV_TICK, .to = n->index, .gen = ++n->tick_gen});
}

static void sim_send_cb(void *ctx, const swim_addr_t *to, const uint8_t *buf, size_t len)
{
    sim_node_t *n = ctx;
    sim_t *s = n->sim;
    uint32_t j = sim_index_of(to);
    if (j >= s->cfg.n || !sim_reachable(s, n->index, j)) return;
    if (s->cfg.loss > 0 && sim_uniform(s) < s->cfg.loss) return;
    uint8_t *copy = malloc(len);
    if (!copy) abort();
    memcpy(copy, buf, len);
    int64_t lat = sim_link_latency(s, n->index, j) +
                  (s->cfg.jitter_ms ? (int64_t)(sim_rand(s) % (s->cfg.jitter_ms + 1)) : 0);
    sim_push(s, (sim_event_t){.t = s->now + lat, .type = SIM_EV_PACKET, .to = j, .from = n->index, .data = copy,
                              .len = (uint16_t)len});
}

static void sim_push_pull_cb(void *ctx, const swim_addr_t *to)
{
    sim_node_t *n = ctx;
    sim_t *s = n->sim;
    uint32_t j = sim_index_of(to);
    if (j >= s->cfg.n) return;
    sim_push(s, (sim_event_t){.t = s->now + 2 * sim_link_latency(s, n->index, j) + 1, .type = SIM_EV_PUSH_PULL,
                              .to = j, .from = n->index});
}

static void sim_event_cb(void *ctx, const swim_event_t *ev)
{
    sim_node_t *n = ctx;
    sim_t *s = n->sim;
    if (ev->type != SWIM_EV_DEAD) return;
    uint32_t j = sim_index_of_id(&ev->member->info->id);
    uint32_t run;
    memcpy(&run, ev->member->info->id.b + 4, sizeof run);
    if (j < s->cfg.n && s->nodes[j].up && s->nodes[j].run == run) s->false_deaths++;
}

static const swim_member_info_t *sim_info_acquire(void *ctx, const swim_member_info_t *info)
{
    sim_node_t *n = ctx;
    uint32_t j = sim_index_of_id(&info->id);
    if (j < n->sim->cfg.n && memcmp(&n->sim->nodes[j].info->info, info, sizeof *info) == 0)
        return &n->sim->nodes[j].info->info;
    sim_info_t *copy = malloc(sizeof *copy);
    if (!copy) return NULL;
    copy->canonical = false;
    copy->info = *info;
    return &copy->info;
}

static void sim_info_release(void *ctx, const swim_member_info_t *info)
{
    sim_info_t *w = (sim_info_t *)((const char *)info - offsetof(sim_info_t, info));
    if (!w->canonical) free(w);
}

/* ---------- members ---------- */

static void sim_start_member(sim_t *s, uint32_t i)
{
    sim_node_t *n = &s->nodes[i];
    if (n->info) {
        if (s->nold == s->old_cap) {
            s->old_cap = s->old_cap ? s->old_cap * 2 : 16;
            s->old_infos = realloc(s->old_infos, s->old_cap * sizeof *s->old_infos);
        }
        s->old_infos[s->nold++] = n->info;
    }
    n->info = calloc(1, sizeof *n->info);
    n->info->canonical = true;
    swim_member_info_t *info = &n->info->info;
    memcpy(info->id.b, &i, sizeof i);
    memcpy(info->id.b + 4, &n->run, sizeof n->run);
    snprintf(info->name, sizeof info->name, "node-%u", i);
    info->gossip = sim_addr(i);
    snprintf(info->version, sizeof info->version, "sim");
    swim_config_t c = s->cfg.swim;
    c.self = *info;
    c.incarnation = (uint64_t)s->now + 1;
    c.seed = sim_rand(s) | 1;
    swim_callbacks_t cb = {.send = sim_send_cb, .push_pull = sim_push_pull_cb, .event = sim_event_cb,
                           .info_acquire = sim_info_acquire, .info_release = sim_info_release, .ctx = n};
    n->core = swim_new(&c, &cb, s->now);
    if (!n->core) abort();
    n->up = true;
    n->paused_until = 0;
    n->tick_at = -1;
    sim_schedule_tick(n);
}

void sim_config_default(sim_config_t *c, size_t n, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->seed = seed;
    c->latency_ms = 1;
    c->link_spread_ms = 4;
    c->jitter_ms = 3;
    swim_config_default(&c->swim);
}

sim_t *sim_new(const sim_config_t *cfg)
{
    sim_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = *cfg;
    s->rng = cfg->seed;
    s->nodes = calloc(cfg->n, sizeof *s->nodes);
    for (uint32_t i = 0; i < cfg->n; i++) {
        s->nodes[i].sim = s;
        s->nodes[i].index = i;
        sim_start_member(s, i);
    }
    if (cfg->converged_start) {
        for (uint32_t i = 0; i < cfg->n; i++) {
            for (uint32_t j = 0; j < cfg->n; j++)
                if (i != j) swim_add_quiet(s->nodes[i].core, &s->nodes[j].info->info, 1, 0);
            sim_schedule_tick(&s->nodes[i]);
        }
        return s;
    }
    /* Everyone joins through member 0 within the first second. */
    for (uint32_t i = 1; i < cfg->n; i++)
        sim_push(s, (sim_event_t){.t = (int64_t)(sim_rand(s) % 1000), .type = SIM_EV_PUSH_PULL, .to = 0, .from = i});
    return s;
}

void sim_free(sim_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->cfg.n; i++) swim_free(s->nodes[i].core);
    for (size_t i = 0; i < s->cfg.n; i++) free(s->nodes[i].info);
    for (size_t i = 0; i < s->nold; i++) free(s->old_infos[i]);
    for (size_t i = 0; i < s->nheap; i++) free(s->heap[i].data);
    free(s->old_infos);
    free(s->heap);
    free(s->nodes);
    free(s);
}

/* ---------- running ---------- */

static bool sim_node_ready(sim_t *s, sim_node_t *n)
{
    return n->up && n->paused_until <= s->now;
}

static void sim_exchange(sim_t *s, uint32_t a, uint32_t b)
{
    sim_node_t *na = &s->nodes[a], *nb = &s->nodes[b];
    if (!sim_node_ready(s, na) || !sim_node_ready(s, nb)) return;
    if (!sim_reachable(s, a, b) || !sim_reachable(s, b, a)) return;
    size_t la, lb;
    uint8_t *sa = swim_state_export(na->core, false, &la);
    uint8_t *sb = swim_state_export(nb->core, false, &lb);
    if (sa) swim_state_import(nb->core, sa, la, s->now);
    if (sb) swim_state_import(na->core, sb, lb, s->now);
    free(sa);
    free(sb);
    sim_schedule_tick(na);
    sim_schedule_tick(nb);
}

static void sim_step(sim_t *s)
{
    sim_event_t ev = sim_pop(s);
    s->now = ev.t;
    sim_node_t *n = &s->nodes[ev.to];
    switch (ev.type) {
    case SIM_EV_TICK:
        if (ev.gen != n->tick_gen || !n->up) break;
        n->tick_at = -1;
        if (n->paused_until > s->now) {
            sim_schedule_tick(n);
            break;
        }
        swim_tick(n->core, s->now);
        sim_schedule_tick(n);
        break;
    case SIM_EV_PACKET:
        if (!n->up) break;
        if (n->paused_until > s->now) {
            /* A stopped process: the datagram waits in its socket buffer. */
            ev.t = n->paused_until;
            sim_push(s, ev);
            return;
        }
        s->delivered++;
        {
            swim_addr_t from = sim_addr(ev.from); /* replies go back to the sender */
            swim_recv(n->core, &from, ev.data, ev.len, s->now);
        }
        sim_schedule_tick(n);
        break;
    case SIM_EV_PUSH_PULL:
        sim_exchange(s, ev.from, ev.to);
        break;
    }
    free(ev.data);
}

int64_t sim_now(const sim_t *s)
{
    return s->now;
}

void sim_run_until(sim_t *s, int64_t t)
{
    while (s->nheap && s->heap[0].t <= t) sim_step(s);
    s->now = t;
}

int64_t sim_run_until_true(sim_t *s, int64_t deadline, bool (*pred)(sim_t *, void *), void *ctx)
{
    for (int64_t t = s->now; t <= deadline; t += 50) {
        sim_run_until(s, t);
        if (pred(s, ctx)) return t;
    }
    return -1;
}

/* ---------- faults ---------- */

void sim_crash(sim_t *s, size_t i)
{
    sim_node_t *n = &s->nodes[i];
    swim_free(n->core);
    n->core = NULL;
    n->up = false;
}

void sim_restart(sim_t *s, size_t i, size_t via)
{
    sim_node_t *n = &s->nodes[i];
    if (n->up) sim_crash(s, i);
    n->run++;
    sim_start_member(s, (uint32_t)i);
    sim_push(s, (sim_event_t){.t = s->now, .type = SIM_EV_PUSH_PULL, .to = (uint32_t)via, .from = (uint32_t)i});
}

void sim_pause(sim_t *s, size_t i, int64_t until)
{
    s->nodes[i].paused_until = until;
}

void sim_partition(sim_t *s, const uint8_t *side, bool one_way)
{
    for (size_t i = 0; i < s->cfg.n; i++) s->nodes[i].side = side[i];
    s->partitioned = true;
    s->one_way = one_way;
}

void sim_heal(sim_t *s)
{
    s->partitioned = false;
}

void sim_set_loss(sim_t *s, double loss)
{
    s->cfg.loss = loss;
}

void sim_leave(sim_t *s, size_t i)
{
    sim_node_t *n = &s->nodes[i];
    if (!n->up) return;
    swim_leave(n->core, s->now);
    sim_schedule_tick(n);
}

bool sim_is_up(const sim_t *s, size_t i)
{
    return s->nodes[i].up;
}

swim_t *sim_core(sim_t *s, size_t i)
{
    return s->nodes[i].core;
}

size_t sim_count_seeing(sim_t *s, size_t about, swim_state_t state)
{
    size_t c = 0;
    const char *name = s->nodes[about].info->info.name;
    for (size_t i = 0; i < s->cfg.n; i++) {
        if (i == about || !s->nodes[i].up) continue;
        swim_member_view_t v;
        if (swim_member_find(s->nodes[i].core, name, &v) && v.state == state) c++;
    }
    return c;
}

bool sim_converged(sim_t *s)
{
    size_t up = 0;
    for (size_t i = 0; i < s->cfg.n; i++) up += s->nodes[i].up;
    for (size_t i = 0; i < s->cfg.n; i++) {
        if (!s->nodes[i].up) continue;
        if (swim_member_count(s->nodes[i].core, 1 << SWIM_STATE_ALIVE) != up) return false;
        if (swim_member_count(s->nodes[i].core, 1 << SWIM_STATE_SUSPECT) != 0) return false;
    }
    return true;
}

void sim_totals(sim_t *s, swim_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < s->cfg.n; i++) {
        if (!s->nodes[i].core) continue;
        swim_stats_t t;
        swim_get_stats(s->nodes[i].core, &t);
        uint64_t *o = (uint64_t *)out;
        const uint64_t *a = (const uint64_t *)&t;
        for (size_t k = 0; k < offsetof(swim_stats_t, health_score) / sizeof(uint64_t); k++) o[k] += a[k];
        if (t.health_score > out->health_score) out->health_score = t.health_score;
    }
}

uint64_t sim_false_deaths(const sim_t *s)
{
    return s->false_deaths;
}

uint64_t sim_packets_delivered(const sim_t *s)
{
    return s->delivered;
}
