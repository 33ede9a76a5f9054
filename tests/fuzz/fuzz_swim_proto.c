/* libFuzzer target for the SWIM codec: arbitrary bytes through the packet and
 * state decoders must never crash, and whatever decodes must re-encode to
 * bytes that decode to the same messages (the encoder and decoder agree).
 *
 * With FUZZ_SEED_DIR set, writes seed inputs there first (run.sh does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_proto.h"
#include "tests/fuzz/fuzz_seed.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 256
#define MAX_RECORDS 1024

static swim_msg_t scratch[MAX_MSGS], again[MAX_MSGS];
static swim_state_record_t records[MAX_RECORDS];
static size_t nmsgs, nrecords;
static uint8_t out[1 << 20];

static void on_msg(const swim_msg_t *m, void *ctx)
{
    swim_msg_t *dst = ctx;
    dst[nmsgs++] = *m;
}

static void on_record(const swim_state_record_t *r, void *ctx)
{
    swim_state_record_t *dst = ctx;
    if (dst) dst[nrecords] = *r;
    else if (memcmp(&records[nrecords], r, sizeof *r) != 0) __builtin_trap();
    nrecords++;
}

static void check_packet(const uint8_t *data, size_t size)
{
    static swim_msg_t first[MAX_MSGS];
    nmsgs = 0;
    if (swim_packet_decode(data, size, scratch, MAX_MSGS, on_msg, first) != SWIM_PROTO_OK) {
        if (nmsgs != 0) __builtin_trap(); /* fn ran on a rejected datagram */
        return;
    }
    size_t n = nmsgs;
    swim_packet_writer_t w;
    swim_packet_begin(&w, out, sizeof out);
    for (size_t i = 0; i < n; i++) {
        size_t before = w.len, sz = swim_msg_size(&first[i]);
        if (sz == 0 || swim_packet_add(&w, &first[i]) != SWIM_PROTO_OK) __builtin_trap();
        if (w.len - before < sz || w.len - before > sz + 4) __builtin_trap();
    }
    size_t len = swim_packet_finish(&w);
    if (n == 0) {
        if (len != 0) __builtin_trap();
        return;
    }
    nmsgs = 0;
    if (swim_packet_decode(out, len, scratch, MAX_MSGS, on_msg, again) != SWIM_PROTO_OK) __builtin_trap();
    if (nmsgs != n || memcmp(first, again, n * sizeof first[0]) != 0) __builtin_trap();
}

static void check_state(const uint8_t *data, size_t size)
{
    bool join;
    nrecords = 0;
    if (swim_state_decode(data, size, MAX_RECORDS, &join, on_record, records) != SWIM_PROTO_OK) {
        if (nrecords != 0) __builtin_trap();
        return;
    }
    size_t n = nrecords;
    swim_state_writer_t w;
    swim_state_begin(&w, join);
    for (size_t i = 0; i < n; i++) swim_state_add(&w, &records[i]);
    size_t len;
    uint8_t *buf = swim_state_finish(&w, &len);
    if (!buf) __builtin_trap();
    bool join2 = !join;
    nrecords = 0;
    /* The second decode compares each record against the first in on_record. */
    if (swim_state_decode(buf, len, n, &join2, on_record, NULL) != SWIM_PROTO_OK) __builtin_trap();
    if (nrecords != n || join2 != join) __builtin_trap();
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_packet(data, size);
    check_state(data, size);
    return 0;
}

/* ---- seeds ------------------------------------------------------------- */

static void seed_member(swim_member_info_t *m, unsigned i)
{
    memset(m, 0, sizeof *m);
    memset(m->id.b, (int)(i + 1), SWIM_ID_LEN);
    snprintf(m->name, sizeof m->name, "node-%u", i);
    m->gossip.family = 4;
    m->gossip.ip[0] = 127;
    m->gossip.ip[3] = (uint8_t)i;
    m->gossip.port = 7946;
    m->peer.family = 6;
    m->peer.ip[15] = 1;
    m->peer.port = 7947;
    snprintf(m->zone, sizeof m->zone, "z%u", i % 2);
    snprintf(m->version, sizeof m->version, "0.1.%u", i);
}

static void seed_msg(swim_msg_t *m, int t, unsigned i)
{
    memset(m, 0, sizeof *m);
    m->type = (swim_msg_type_t)t;
    m->seq = 1000 + i;
    memset(m->target.b, 2, SWIM_ID_LEN);
    memset(m->source.b, 3, SWIM_ID_LEN);
    m->target_addr.family = 4;
    m->target_addr.port = 7946;
    m->nack = i % 2;
    m->incarnation = i * 300;
    memset(m->id.b, 4, SWIM_ID_LEN);
    memset(m->from.b, 5, SWIM_ID_LEN);
    seed_member(&m->member, i);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("FUZZ_SEED_DIR");
    if (!dir) return 0;
    char name[64];
    uint8_t buf[SWIM_PACKET_MAX];
    swim_packet_writer_t w;
    swim_msg_t m;
    for (int t = SWIM_MSG_PING; t <= SWIM_MSG_DEAD; t++) {
        swim_packet_begin(&w, buf, sizeof buf);
        seed_msg(&m, t, (unsigned)t);
        swim_packet_add(&w, &m);
        snprintf(name, sizeof name, "packet-type%d", t);
        fuzz_write_seed(dir, name, buf, swim_packet_finish(&w));
    }
    swim_packet_begin(&w, buf, sizeof buf);
    for (unsigned i = 0;; i++) {
        seed_msg(&m, 1 + (int)(i % 7), i);
        if (swim_packet_add(&w, &m) != SWIM_PROTO_OK) break;
    }
    fuzz_write_seed(dir, "packet-full", buf, swim_packet_finish(&w));

    swim_state_writer_t sw;
    swim_state_begin(&sw, true);
    for (unsigned i = 0; i < 20; i++) {
        swim_state_record_t r;
        memset(&r, 0, sizeof r);
        r.state = (swim_state_t)(i % 4);
        r.incarnation = i;
        seed_member(&r.member, i);
        swim_state_add(&sw, &r);
    }
    size_t len;
    uint8_t *state = swim_state_finish(&sw, &len);
    if (state) fuzz_write_seed(dir, "state-20", state, len);
    free(state);
    return 0;
}
