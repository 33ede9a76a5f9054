/* swim: the state machine's rules, driven by hand with virtual time and
 * captured datagrams: timeout arithmetic, incarnation ordering, refutation,
 * dissemination counts, probing and failure, leave, restarts. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/swim.h"

#define MAX_SENT 4096

typedef struct sent {
    swim_addr_t to;
    swim_msg_t msgs[32];
    size_t n;
} sent_t;

typedef struct harness {
    swim_t *core;
    sent_t sent[MAX_SENT];
    size_t nsent;
    swim_event_type_t events[256];
    char event_names[256][SWIM_NAME_MAX];
    size_t nevents;
    swim_addr_t push_pull_to;
    size_t npush_pulls;
    char heard[16][SWIM_NAME_MAX];
    size_t nheard;
} harness_t;

static harness_t H;

static void collect(const swim_msg_t *m, void *ctx)
{
    sent_t *s = ctx;
    if (s->n < 32) s->msgs[s->n++] = *m;
}

static void on_send(void *ctx, const swim_addr_t *to, const uint8_t *buf, size_t len)
{
    assert_true(len <= SWIM_PACKET_MAX);
    if (H.nsent == MAX_SENT) return;
    sent_t *s = &H.sent[H.nsent++];
    memset(s, 0, sizeof *s);
    s->to = *to;
    swim_msg_t scratch[64];
    assert_int_equal(swim_packet_decode(buf, len, scratch, 64, collect, s), SWIM_PROTO_OK);
}

static void on_event(void *ctx, const swim_event_t *ev)
{
    if (H.nevents == 256) return;
    H.events[H.nevents] = ev->type;
    snprintf(H.event_names[H.nevents], SWIM_NAME_MAX, "%s", ev->member->info->name);
    H.nevents++;
}

static void on_push_pull(void *ctx, const swim_addr_t *to)
{
    (void)ctx;
    H.push_pull_to = *to;
    H.npush_pulls++;
}

static void on_heard(void *ctx, const swim_member_info_t *info)
{
    (void)ctx;
    if (H.nheard < 16) snprintf(H.heard[H.nheard++], SWIM_NAME_MAX, "%s", info->name);
}

static swim_member_info_t member(int i)
{
    swim_member_info_t m;
    memset(&m, 0, sizeof m);
    m.id.b[0] = (uint8_t)i;
    m.id.b[15] = 0xAB;
    snprintf(m.name, sizeof m.name, "m%d", i);
    m.gossip.family = 4;
    m.gossip.ip[0] = 127;
    m.gossip.ip[3] = (uint8_t)i;
    m.gossip.port = 7946;
    return m;
}

static void start(bool lifeguard)
{
    memset(&H, 0, sizeof H);
    swim_config_t c;
    swim_config_default(&c);
    c.self = member(0);
    c.incarnation = 1;
    c.lifeguard = lifeguard;
    c.push_pull_interval_ms = 0;
    c.seed = 42;
    swim_callbacks_t cb = {.send = on_send, .event = on_event, .push_pull = on_push_pull, .heard = on_heard,
                           .ctx = NULL};
    H.core = swim_new(&c, &cb, 0);
    assert_non_null(H.core);
}

static void stop(void)
{
    swim_free(H.core);
    H.core = NULL;
}

static void deliver(const swim_msg_t *msgs, size_t n, int from, int64_t now)
{
    uint8_t buf[SWIM_PACKET_MAX];
    swim_packet_writer_t w;
    swim_packet_begin(&w, buf, sizeof buf);
    for (size_t i = 0; i < n; i++) assert_int_equal(swim_packet_add(&w, &msgs[i]), SWIM_PROTO_OK);
    size_t len = swim_packet_finish(&w);
    swim_addr_t a = member(from).gossip;
    swim_recv(H.core, &a, buf, len, now);
}

static void alive(int i, uint64_t inc, int64_t now)
{
    swim_msg_t m = {.type = SWIM_MSG_ALIVE, .incarnation = inc, .member = member(i)};
    deliver(&m, 1, i, now);
}

static void suspect(int i, uint64_t inc, int from, int64_t now)
{
    swim_msg_t m = {.type = SWIM_MSG_SUSPECT, .incarnation = inc, .id = member(i).id, .from = member(from).id};
    deliver(&m, 1, from, now);
}

static void dead(int i, uint64_t inc, int from, int64_t now)
{
    swim_msg_t m = {.type = SWIM_MSG_DEAD, .incarnation = inc, .id = member(i).id, .from = member(from).id};
    deliver(&m, 1, from, now);
}

static swim_state_t state_of(int i)
{
    swim_member_view_t v;
    char name[16];
    snprintf(name, sizeof name, "m%d", i);
    assert_true(swim_member_find(H.core, name, &v));
    return v.state;
}

/* How many sent datagrams carry a message matching type (and member i). */
static size_t count_sent(swim_msg_type_t type, int i, uint64_t inc)
{
    size_t c = 0;
    swim_id_t id = member(i).id;
    for (size_t k = 0; k < H.nsent; k++)
        for (size_t j = 0; j < H.sent[k].n; j++) {
            const swim_msg_t *m = &H.sent[k].msgs[j];
            if (m->type != type) continue;
            const swim_id_t *about = type == SWIM_MSG_ALIVE ? &m->member.id : &m->id;
            if (type == SWIM_MSG_PING) about = &m->target;
            if (swim_id_equal(about, &id) && (!inc || m->incarnation == inc)) c++;
        }
    return c;
}

static void run(int64_t from, int64_t to)
{
    for (int64_t t = from; t <= to; t += 10) swim_tick(H.core, t);
}

static void test_timeout_arithmetic(void **state)
{
    swim_config_t c;
    swim_config_default(&c);
    int64_t lo, hi;
    swim_suspicion_bounds(&c, 1, &lo, &hi);
    assert_int_equal(lo, 4000);
    assert_int_equal(hi, 24000);
    swim_suspicion_bounds(&c, 100, &lo, &hi);
    assert_int_equal(lo, 8000);
    swim_suspicion_bounds(&c, 1000, &lo, &hi);
    assert_int_equal(lo, 12000);
    assert_int_equal(hi, 72000);
    assert_int_equal(swim_suspicion_timeout(lo, hi, 0, 2), hi);
    assert_int_equal(swim_suspicion_timeout(lo, hi, 2, 2), lo);
    int64_t one = swim_suspicion_timeout(lo, hi, 1, 2);
    assert_int_equal(one, (int64_t)floor(72000.0 - (log(2.0) / log(3.0)) * 60000.0));
    assert_int_equal(swim_suspicion_timeout(lo, hi, 0, 0), lo);
    c.lifeguard = false;
    swim_suspicion_bounds(&c, 1000, &lo, &hi);
    assert_int_equal(lo, hi);
    swim_config_default(&c);
    assert_int_equal(swim_retransmit_limit(&c, 1), 6);
    assert_int_equal(swim_retransmit_limit(&c, 9), 6);
    assert_int_equal(swim_retransmit_limit(&c, 10), 12);
    assert_int_equal(swim_retransmit_limit(&c, 100), 18);
}

static void test_incarnation_ordering(void **state)
{
    start(true);
    alive(1, 5, 0);
    assert_int_equal(state_of(1), SWIM_STATE_ALIVE);
    assert_int_equal(H.events[H.nevents - 1], SWIM_EV_JOIN);
    suspect(1, 4, 2, 10); /* older: ignored */
    assert_int_equal(state_of(1), SWIM_STATE_ALIVE);
    suspect(1, 5, 2, 20);
    assert_int_equal(state_of(1), SWIM_STATE_SUSPECT);
    alive(1, 5, 30); /* a refutation needs a higher incarnation */
    assert_int_equal(state_of(1), SWIM_STATE_SUSPECT);
    alive(1, 6, 40);
    assert_int_equal(state_of(1), SWIM_STATE_ALIVE);
    assert_int_equal(H.events[H.nevents - 1], SWIM_EV_ALIVE);
    dead(1, 5, 2, 50); /* stale */
    assert_int_equal(state_of(1), SWIM_STATE_ALIVE);
    dead(1, 6, 2, 60);
    assert_int_equal(state_of(1), SWIM_STATE_DEAD);
    assert_int_equal(H.events[H.nevents - 1], SWIM_EV_DEAD);
    alive(1, 6, 70); /* the dead stay dead at the same incarnation */
    assert_int_equal(state_of(1), SWIM_STATE_DEAD);
    alive(1, 7, 80);
    assert_int_equal(state_of(1), SWIM_STATE_ALIVE);
    stop();
}

static void test_refutation(void **state)
{
    start(true);
    alive(1, 1, 0);
    suspect(0, 1, 1, 100);
    assert_int_equal(swim_self_incarnation(H.core), 2);
    swim_stats_t st;
    swim_get_stats(H.core, &st);
    assert_int_equal(st.refutations, 1);
    assert_int_equal(st.health_score, 1); /* Lifeguard: refuting is a sign of trouble here */
    run(100, 1500);
    assert_true(count_sent(SWIM_MSG_ALIVE, 0, 2) >= 1);
    /* A suspicion is no news for the data path; a death is: the cluster
     * went on without this node. */
    for (size_t i = 0; i < H.nevents; i++) assert_int_not_equal(H.events[i], SWIM_EV_DECLARED_DEAD);
    dead(0, 2, 1, 1600); /* declared dead: refute again */
    assert_int_equal(swim_self_incarnation(H.core), 3);
    assert_int_equal(H.events[H.nevents - 1], SWIM_EV_DECLARED_DEAD);
    assert_string_equal(H.event_names[H.nevents - 1], "m0");
    size_t seen = H.nevents;
    suspect(0, 1, 1, 1700); /* about an old incarnation: nothing to do */
    dead(0, 1, 1, 1700);
    assert_int_equal(swim_self_incarnation(H.core), 3);
    assert_int_equal(H.nevents, seen);
    stop();
}

static void test_dissemination_count(void **state)
{
    start(true);
    for (int i = 1; i <= 9; i++) alive(i, 1, 0);
    /* 11 live members: each update goes out retransmit_mult * ceil(log10(12)) = 12 times. */
    H.nsent = 0;
    alive(42, 1, 0);
    run(0, 20000);
    assert_int_equal(count_sent(SWIM_MSG_ALIVE, 42, 1), 12);
    stop();
}

static void test_probe_failure_suspect_then_dead(void **state)
{
    start(true);
    alive(1, 1, 0);
    alive(2, 1, 0);
    alive(3, 1, 0);
    /* Nobody ever answers: every probe fails. */
    run(0, 3000);
    swim_stats_t st;
    swim_get_stats(H.core, &st);
    assert_true(st.probes >= 2);
    assert_true(st.ping_reqs_sent >= 2);
    assert_true(count_sent(SWIM_MSG_PING_REQ, 0, 0) >= 1 || st.ping_reqs_sent >= 1);
    size_t suspects = swim_member_count(H.core, 1 << SWIM_STATE_SUSPECT);
    assert_true(suspects >= 1);
    /* Missing NACKs raise the health score, which stretches the period. */
    assert_true(st.health_score >= 1);
    run(3000, 200000);
    assert_int_equal(swim_member_count(H.core, 1 << SWIM_STATE_DEAD), 3);
    swim_get_stats(H.core, &st);
    assert_int_equal(st.deaths_declared, 3);
    stop();
}

static void test_ack_keeps_member_alive_and_buddy_system(void **state)
{
    start(true);
    alive(1, 1, 0);
    for (int64_t t = 0; t < 10000; t += 10) {
        size_t before = H.nsent;
        swim_tick(H.core, t);
        for (size_t k = before; k < H.nsent; k++)
            for (size_t j = 0; j < H.sent[k].n; j++)
                if (H.sent[k].msgs[j].type == SWIM_MSG_PING) {
                    swim_msg_t ack = {.type = SWIM_MSG_ACK, .seq = H.sent[k].msgs[j].seq, .source = member(1).id};
                    deliver(&ack, 1, 1, t + 5);
                }
    }
    assert_int_equal(state_of(1), SWIM_STATE_ALIVE);
    swim_stats_t st;
    swim_get_stats(H.core, &st);
    assert_true(st.acks_received >= 5);
    assert_int_equal(st.probe_failures, 0);
    /* Once suspected (by someone else), our ping carries the suspicion. */
    suspect(1, 1, 2, 10000);
    H.nsent = 0;
    run(10000, 12000);
    bool buddy = false;
    for (size_t k = 0; k < H.nsent; k++) {
        bool has_ping = false, has_suspect = false;
        for (size_t j = 0; j < H.sent[k].n; j++) {
            has_ping |= H.sent[k].msgs[j].type == SWIM_MSG_PING;
            has_suspect |= H.sent[k].msgs[j].type == SWIM_MSG_SUSPECT;
        }
        buddy |= has_ping && has_suspect;
    }
    assert_true(buddy);
    stop();
}

/* Contact evidence: a member that pings this node or answers its probe
 * is heard; news about a member (gossip from a third) is not, and neither
 * is a member this node does not know. */
static void test_heard(void **state)
{
    start(true);
    alive(1, 1, 0);
    alive(2, 1, 0);
    assert_int_equal(H.nheard, 0);
    swim_msg_t ping = {.type = SWIM_MSG_PING, .seq = 5, .target = member(0).id, .source = member(2).id};
    deliver(&ping, 1, 2, 10);
    assert_int_equal(H.nheard, 1);
    assert_string_equal(H.heard[0], "m2");
    ping.source = member(7).id; /* unknown */
    deliver(&ping, 1, 7, 20);
    assert_int_equal(H.nheard, 1);
    suspect(1, 1, 2, 30);
    assert_int_equal(H.nheard, 1);
    for (int64_t t = 40; t < 5000 && H.nheard < 2; t += 10) {
        size_t before = H.nsent;
        swim_tick(H.core, t);
        for (size_t k = before; k < H.nsent; k++)
            for (size_t j = 0; j < H.sent[k].n; j++)
                if (H.sent[k].msgs[j].type == SWIM_MSG_PING && H.sent[k].msgs[j].target.b[0] == 1) {
                    swim_msg_t ack = {.type = SWIM_MSG_ACK, .seq = H.sent[k].msgs[j].seq, .source = member(1).id};
                    deliver(&ack, 1, 1, t + 5);
                }
    }
    assert_int_equal(H.nheard, 2);
    assert_string_equal(H.heard[1], "m1");
    stop();
}

static void test_ping_answers_and_wrong_target(void **state)
{
    start(true);
    swim_msg_t ping = {.type = SWIM_MSG_PING, .seq = 77, .target = member(0).id, .source = member(5).id};
    deliver(&ping, 1, 5, 0);
    assert_int_equal(H.nsent, 1);
    assert_int_equal(H.sent[0].msgs[0].type, SWIM_MSG_ACK);
    assert_int_equal(H.sent[0].msgs[0].seq, 77);
    ping.target = member(9).id; /* a previous run at our address */
    deliver(&ping, 1, 5, 0);
    swim_stats_t st;
    swim_get_stats(H.core, &st);
    assert_int_equal(st.drops_wrong_target, 1);
    /* Not acked, but answered with a state exchange with the prober, at
     * most once per probe interval. */
    assert_int_equal(H.nsent, 1);
    assert_int_equal(H.npush_pulls, 1);
    swim_addr_t prober = member(5).gossip;
    assert_memory_equal(&H.push_pull_to, &prober, sizeof prober);
    deliver(&ping, 1, 5, 10);
    assert_int_equal(H.npush_pulls, 1);
    swim_config_t dc;
    swim_config_default(&dc);
    deliver(&ping, 1, 5, (int64_t)dc.probe_interval_ms);
    assert_int_equal(H.npush_pulls, 2);
    uint8_t junk[] = {0x93, 0x01};
    swim_addr_t a = member(5).gossip;
    swim_recv(H.core, &a, junk, sizeof junk, 0);
    swim_get_stats(H.core, &st);
    assert_int_equal(st.drops_malformed, 1);
    stop();
}

static void test_leave(void **state)
{
    start(true);
    alive(1, 1, 0);
    alive(2, 1, 0);
    dead(2, 1, 2, 10); /* DEAD from itself: a graceful leave */
    assert_int_equal(state_of(2), SWIM_STATE_LEFT);
    assert_int_equal(H.events[H.nevents - 1], SWIM_EV_LEFT);
    H.nsent = 0;
    swim_leave(H.core, 100);
    assert_true(count_sent(SWIM_MSG_DEAD, 0, 0) >= 1);
    size_t probes_before;
    swim_stats_t st;
    swim_get_stats(H.core, &st);
    probes_before = st.probes;
    run(100, 10000);
    swim_get_stats(H.core, &st);
    assert_int_equal(st.probes, probes_before); /* a leaving member stops probing */
    suspect(0, 5, 1, 10000);                     /* and does not refute */
    swim_get_stats(H.core, &st);
    assert_int_equal(st.refutations, 0);
    stop();
}

static void test_restart_replaces_record(void **state)
{
    start(true);
    alive(1, 100, 0);
    dead(1, 100, 2, 10);
    swim_msg_t m = {.type = SWIM_MSG_ALIVE, .incarnation = 5000, .member = member(1)};
    m.member.id.b[1] = 0x77; /* same name, new run */
    deliver(&m, 1, 1, 20);
    assert_int_equal(state_of(1), SWIM_STATE_ALIVE);
    assert_int_equal(swim_member_count(H.core, -1), 2); /* self + m1, no duplicate */
    bool updated = false;
    for (size_t i = 0; i < H.nevents; i++) updated |= H.events[i] == SWIM_EV_UPDATE;
    assert_true(updated);
    /* The old run's messages no longer apply. */
    suspect(1, 100, 2, 30);
    assert_int_equal(state_of(1), SWIM_STATE_ALIVE);
    stop();
}

/* An earlier run of this very node, still gossiped alive with a higher
 * incarnation (its clock ran ahead), never replaces this run's own record:
 * this run claims its name with a newer incarnation. */
static void test_earlier_run_of_self(void **state)
{
    start(true);
    alive(1, 1, 0);
    swim_msg_t m = {.type = SWIM_MSG_ALIVE, .incarnation = 90000, .member = member(0)};
    m.member.id.b[1] = 0x55; /* this node's name, another run */
    deliver(&m, 1, 1, 10);
    assert_non_null(swim_self(H.core));
    assert_int_equal(swim_self(H.core)->id.b[1], 0);
    assert_int_equal(swim_self_incarnation(H.core), 90001);
    assert_int_equal(swim_member_count(H.core, -1), 2);
    run(10, 2000); /* probing and gossip go on (the crash was in the next deadline) */
    assert_true(count_sent(SWIM_MSG_ALIVE, 0, 90001) >= 1);
    stop();
}

static void test_state_export_import(void **state)
{
    start(true);
    for (int i = 1; i <= 20; i++) alive(i, (uint64_t)i, 0);
    suspect(7, 7, 3, 0);
    dead(8, 8, 3, 0);
    size_t len;
    uint8_t *buf = swim_state_export(H.core, false, &len);
    assert_non_null(buf);
    swim_t *first = H.core;
    start(true);
    assert_true(swim_state_import(H.core, buf, len, 100));
    /* Self (m0, the same name as the exporter's self) and 18 alive. */
    assert_int_equal(swim_member_count(H.core, 1 << SWIM_STATE_ALIVE), 19);
    assert_int_equal(state_of(7), SWIM_STATE_SUSPECT);
    swim_member_view_t v;
    assert_false(swim_member_find(H.core, "m8", &v)); /* a dead stranger is not worth learning */
    assert_false(swim_state_import(H.core, buf, len / 2, 100));
    free(buf);
    stop();
    swim_free(first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_arithmetic),
        cmocka_unit_test(test_incarnation_ordering),
        cmocka_unit_test(test_refutation),
        cmocka_unit_test(test_dissemination_count),
        cmocka_unit_test(test_probe_failure_suspect_then_dead),
        cmocka_unit_test(test_ack_keeps_member_alive_and_buddy_system),
        cmocka_unit_test(test_ping_answers_and_wrong_target),
        cmocka_unit_test(test_heard),
        cmocka_unit_test(test_leave),
        cmocka_unit_test(test_restart_replaces_record),
        cmocka_unit_test(test_earlier_run_of_self),
        cmocka_unit_test(test_state_export_import),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
