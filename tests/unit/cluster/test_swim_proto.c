/* swim_proto: every message type round-trips, compounds stay under their cap,
 * and hostile bytes (truncations, bombs, wrong types, over-long fields) are
 * rejected whole without crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "cluster/swim_proto.h"
#include "tests/unit/fixture/mpack.h"

/* ---- fixtures ---------------------------------------------------------- */

static swim_id_t make_id(unsigned seed)
{
    swim_id_t id;
    for (int i = 0; i < SWIM_ID_LEN; i++) id.b[i] = (uint8_t)(seed * 31 + (unsigned)i);
    return id;
}

static swim_addr_t make_addr(int family, unsigned seed)
{
    swim_addr_t a;
    memset(&a, 0, sizeof a);
    a.family = (uint8_t)family;
    if (family == 0) return a;
    for (int i = 0; i < (family == 4 ? 4 : 16); i++) a.ip[i] = (uint8_t)(seed + (unsigned)i);
    a.port = (uint16_t)(7000 + seed);
    return a;
}

static void make_member(swim_member_info_t *m, unsigned seed)
{
    memset(m, 0, sizeof *m);
    m->id = make_id(seed);
    snprintf(m->name, sizeof m->name, "node-%u", seed);
    m->gossip = make_addr(4, seed);
    m->peer = make_addr(6, seed + 1);
    m->http = make_addr(0, 0);
    snprintf(m->zone, sizeof m->zone, "zone-%u", seed % 3);
    snprintf(m->version, sizeof m->version, "0.%u.0", seed);
}

/* One message of type t; unused fields stay zero, as the decoder leaves them,
 * so a round trip compares equal with memcmp. */
static void make_msg(swim_msg_t *m, swim_msg_type_t t, unsigned seed)
{
    memset(m, 0, sizeof *m);
    m->type = t;
    switch (t) {
    case SWIM_MSG_PING:
        m->seq = seed * 1000003u;
        m->target = make_id(seed + 1);
        m->source = make_id(seed + 2);
        break;
    case SWIM_MSG_PING_REQ:
        m->seq = UINT32_MAX - seed;
        m->target = make_id(seed + 1);
        m->target_addr = make_addr(seed % 2 ? 6 : 4, seed);
        m->source = make_id(seed + 2);
        m->nack = seed % 2;
        break;
    case SWIM_MSG_ACK:
    case SWIM_MSG_NACK:
        m->seq = seed;
        m->source = make_id(seed + 3);
        break;
    case SWIM_MSG_ALIVE:
        m->incarnation = (uint64_t)seed << 33;
        make_member(&m->member, seed);
        break;
    case SWIM_MSG_SUSPECT:
    case SWIM_MSG_DEAD:
        m->incarnation = UINT64_MAX - seed;
        m->id = make_id(seed + 4);
        m->from = make_id(seed + 5);
        break;
    }
}

typedef struct collect {
    swim_msg_t msgs[128];
    size_t n;
} collect_t;

static void on_msg(const swim_msg_t *m, void *ctx)
{
    collect_t *c = ctx;
    assert_true(c->n < 128);
    c->msgs[c->n++] = *m;
}

static swim_msg_t scratch[128];

static swim_proto_status_t decode(const uint8_t *buf, size_t len, collect_t *c)
{
    c->n = 0;
    return swim_packet_decode(buf, len, scratch, 128, on_msg, c);
}

/* A compound holding one message of every type. */
static size_t encode_all_types(uint8_t *buf, size_t cap, swim_msg_t *msgs)
{
    swim_packet_writer_t w;
    swim_packet_begin(&w, buf, cap);
    for (int t = SWIM_MSG_PING; t <= SWIM_MSG_DEAD; t++) {
        make_msg(&msgs[t - 1], (swim_msg_type_t)t, (unsigned)t);
        assert_int_equal(swim_packet_add(&w, &msgs[t - 1]), SWIM_PROTO_OK);
    }
    return swim_packet_finish(&w);
}

/* Hand-built datagrams for the reject tests (tests/unit/fixture/mpack.h). */

static void raw_id(fixture_mpack_t *r)
{
    swim_id_t id = make_id(9);
    fixture_mpack_bin(r, id.b, SWIM_ID_LEN);
}

static void raw_addr(fixture_mpack_t *r, size_t iplen, uint64_t port)
{
    static const uint8_t ip[16] = {127, 0, 0, 1};
    msgpack_pack_array(&r->pk, 2);
    fixture_mpack_bin(r, ip, iplen);
    msgpack_pack_uint64(&r->pk, port);
}

/* A member with its strings and gossip address under the caller's control. */
static void raw_member(fixture_mpack_t *r, const char *name, size_t nlen, const char *zone, size_t zlen,
                       size_t iplen, uint64_t port)
{
    msgpack_pack_array(&r->pk, 7);
    raw_id(r);
    fixture_mpack_str(r, name, nlen);
    raw_addr(r, iplen, port);
    raw_addr(r, 0, 0);
    raw_addr(r, 16, 80);
    fixture_mpack_str(r, zone, zlen);
    fixture_mpack_str(r, "v1", 2);
}

/* [1-compound [ALIVE, 1, member]]. */
static void raw_alive(fixture_mpack_t *r, const char *name, size_t nlen, const char *zone, size_t zlen,
                      size_t iplen, uint64_t port)
{
    fixture_mpack_init(r);
    msgpack_pack_array(&r->pk, 1);
    msgpack_pack_array(&r->pk, 3);
    msgpack_pack_uint8(&r->pk, SWIM_MSG_ALIVE);
    msgpack_pack_uint8(&r->pk, 1);
    raw_member(r, name, nlen, zone, zlen, iplen, port);
}

static swim_proto_status_t raw_decode(fixture_mpack_t *r, collect_t *c)
{
    swim_proto_status_t st = decode((const uint8_t *)r->sb.data, r->sb.size, c);
    fixture_mpack_free(r);
    return st;
}

/* ---- round trips ------------------------------------------------------- */

static void test_roundtrip_each_type(void **state)
{
    for (int t = SWIM_MSG_PING; t <= SWIM_MSG_DEAD; t++) {
        for (unsigned seed = 0; seed < 4; seed++) {
            swim_msg_t m;
            uint8_t buf[SWIM_PACKET_MAX];
            collect_t c;
            make_msg(&m, (swim_msg_type_t)t, seed);
            swim_packet_writer_t w;
            swim_packet_begin(&w, buf, sizeof buf);
            assert_int_equal(swim_packet_add(&w, &m), SWIM_PROTO_OK);
            size_t len = swim_packet_finish(&w);
            assert_int_equal(len, 1 + swim_msg_size(&m));
            assert_int_equal(buf[0], 0x91);
            assert_int_equal(decode(buf, len, &c), SWIM_PROTO_OK);
            assert_int_equal(c.n, 1);
            assert_memory_equal(&c.msgs[0], &m, sizeof m);
        }
    }
}

static void test_roundtrip_compound(void **state)
{
    static swim_msg_t msgs[40];
    uint8_t buf[8192];
    collect_t c;
    for (size_t n = 1; n <= 40; n++) {
        swim_packet_writer_t w;
        swim_packet_begin(&w, buf, sizeof buf);
        for (size_t i = 0; i < n; i++) {
            make_msg(&msgs[i], (swim_msg_type_t)(1 + i % 7), (unsigned)i);
            assert_int_equal(swim_packet_add(&w, &msgs[i]), SWIM_PROTO_OK);
        }
        size_t len = swim_packet_finish(&w);
        assert_int_equal(len, w.len);
        /* The smallest header: fixarray up to 15 messages, array16 after. */
        if (n < 16) assert_int_equal(buf[0], 0x90 | n);
        else assert_int_equal(buf[0], 0xdc);
        assert_int_equal(decode(buf, len, &c), SWIM_PROTO_OK);
        assert_int_equal(c.n, n);
        for (size_t i = 0; i < n; i++) assert_memory_equal(&c.msgs[i], &msgs[i], sizeof msgs[i]);
    }
}

static void test_writer_under_cap(void **state)
{
    static const size_t caps[] = {1, 40, 41, 42, 100, 333, 700, 1359, 1400, 4000};
    static uint8_t buf[4096], snap[4096];
    collect_t c;
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        size_t cap = caps[k];
        swim_packet_writer_t w;
        swim_packet_begin(&w, buf, cap);
        unsigned i = 0;
        for (;; i++) {
            swim_msg_t m;
            /* Mixed sizes, so the last fit is sometimes a small message
             * after a big one did not fit. */
            make_msg(&m, i % 3 == 0 ? SWIM_MSG_ALIVE : i % 3 == 1 ? SWIM_MSG_PING : SWIM_MSG_ACK, i);
            swim_packet_writer_t before = w;
            memcpy(snap, buf, w.len);
            swim_proto_status_t st = swim_packet_add(&w, &m);
            if (st == SWIM_PROTO_TOO_BIG) {
                assert_memory_equal(&before, &w, sizeof w);
                assert_memory_equal(snap, buf, w.len);
                /* Tight: it really would not have fit. */
                size_t hdr_after = w.count + 1 < 16 ? 1 : 3;
                size_t hdr_now = w.count == 0 ? 0 : w.count < 16 ? 1 : 3;
                assert_true(w.len - hdr_now + hdr_after + swim_msg_size(&m) > cap);
                if (i % 3 != 2) continue; /* a smaller one may still fit */
                break;
            }
            assert_int_equal(st, SWIM_PROTO_OK);
            assert_true(w.len <= cap);
        }
        size_t len = swim_packet_finish(&w);
        assert_true(len <= cap);
        if (w.count == 0) {
            assert_int_equal(len, 0);
            continue;
        }
        assert_int_equal(decode(buf, len, &c), SWIM_PROTO_OK);
        assert_int_equal(c.n, w.count);
    }
}

/* 65536 messages need an array32 header; the writer slides its body twice. */
static void test_writer_huge_compound(void **state)
{
    size_t n = 70000, cap = 3u << 20;
    uint8_t *buf = malloc(cap);
    swim_msg_t *sc = malloc(n * sizeof *sc);
    assert_non_null(buf);
    assert_non_null(sc);
    swim_packet_writer_t w;
    swim_packet_begin(&w, buf, cap);
    for (size_t i = 0; i < n; i++) {
        swim_msg_t m;
        make_msg(&m, SWIM_MSG_ACK, (unsigned)i);
        assert_int_equal(swim_packet_add(&w, &m), SWIM_PROTO_OK);
    }
    size_t len = swim_packet_finish(&w);
    assert_int_equal(buf[0], 0xdd);
    assert_int_equal(swim_packet_decode(buf, len, sc, n, NULL, NULL), SWIM_PROTO_OK);
    for (size_t i = 0; i < n; i += 997) {
        swim_msg_t m;
        make_msg(&m, SWIM_MSG_ACK, (unsigned)i);
        assert_memory_equal(&sc[i], &m, sizeof m);
    }
    assert_int_equal(swim_packet_decode(buf, len, sc, n - 1, NULL, NULL), SWIM_PROTO_MALFORMED);
    free(sc);
    free(buf);
}

static size_t uint_len(uint64_t v)
{
    return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : v <= UINT32_MAX ? 5 : 9;
}

static void test_msg_size_exact(void **state)
{
    static const uint64_t ints[] = {0,     1,          127,        128,        255,       256,
                                    65535, 65536,      UINT32_MAX, 1ull << 32, UINT64_MAX};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        for (int t = SWIM_MSG_PING; t <= SWIM_MSG_DEAD; t++) {
            swim_msg_t m;
            uint8_t buf[512];
            make_msg(&m, (swim_msg_type_t)t, 7);
            m.seq = (uint32_t)ints[i];
            m.incarnation = ints[i];
            if (t == SWIM_MSG_ALIVE) {
                /* Names across the fixstr / str8 boundary. */
                size_t nl = ints[i] % 64;
                memset(m.member.name, 'n', nl);
                m.member.name[nl] = '\0';
            }
            swim_packet_writer_t w;
            swim_packet_begin(&w, buf, sizeof buf);
            assert_int_equal(swim_packet_add(&w, &m), SWIM_PROTO_OK);
            assert_int_equal(swim_packet_finish(&w), 1 + swim_msg_size(&m));
            /* The smallest integer encodings: [type, seq, bin16]. */
            if (t == SWIM_MSG_ACK) assert_int_equal(swim_msg_size(&m), 1 + 1 + uint_len(m.seq) + 18);
            if (t == SWIM_MSG_DEAD) assert_int_equal(swim_msg_size(&m), 1 + 1 + uint_len(ints[i]) + 36);
        }
    }
}

static void test_empty_and_unencodable(void **state)
{
    uint8_t buf[512];
    swim_packet_writer_t w;
    swim_msg_t m;
    swim_packet_begin(&w, buf, 16);
    assert_int_equal(swim_packet_finish(&w), 0);
    make_msg(&m, SWIM_MSG_PING, 1);
    assert_int_equal(swim_packet_add(&w, &m), SWIM_PROTO_TOO_BIG); /* 16 bytes cannot hold a ping */
    assert_int_equal(w.len, 0);
    assert_int_equal(w.count, 0);

    swim_packet_begin(&w, buf, sizeof buf);

    make_msg(&m, SWIM_MSG_PING, 1);
    m.type = (swim_msg_type_t)0;
    assert_int_equal(swim_msg_size(&m), 0);
    assert_int_equal(swim_packet_add(&w, &m), SWIM_PROTO_MALFORMED);
    m.type = (swim_msg_type_t)8;
    assert_int_equal(swim_packet_add(&w, &m), SWIM_PROTO_MALFORMED);

    make_msg(&m, SWIM_MSG_ALIVE, 1);
    memset(m.member.name, 'x', sizeof m.member.name); /* no NUL */
    assert_int_equal(swim_packet_add(&w, &m), SWIM_PROTO_MALFORMED);

    make_msg(&m, SWIM_MSG_PING_REQ, 1);
    m.target_addr.family = 5;
    assert_int_equal(swim_packet_add(&w, &m), SWIM_PROTO_MALFORMED);
    assert_int_equal(w.len, 0);
}

/* ---- rejects ----------------------------------------------------------- */

static void test_truncation_and_trailing(void **state)
{
    uint8_t buf[SWIM_PACKET_MAX + 1];
    swim_msg_t msgs[7];
    collect_t c;
    size_t len = encode_all_types(buf, SWIM_PACKET_MAX, msgs);
    assert_int_equal(decode(buf, len, &c), SWIM_PROTO_OK);
    assert_int_equal(c.n, 7);
    buf[len] = 0xc0; /* one byte after the compound */
    assert_int_equal(decode(buf, len + 1, &c), SWIM_PROTO_MALFORMED);
    assert_int_equal(c.n, 0);
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly cut bytes, so ASan sees any read past the end. */
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        assert_int_not_equal(decode(p, cut, &c), SWIM_PROTO_OK);
        assert_int_equal(c.n, 0);
        free(p);
    }
    assert_int_equal(decode(NULL, 0, &c), SWIM_PROTO_TRUNCATED);
}

static void test_bombs(void **state)
{
    collect_t c;
    /* Containers and strings that promise 4 GiB and deliver nothing. */
    static const uint8_t top_array32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t msg_array32[] = {0x91, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t alive_str32[] = {0x91, 0x93, 0x05, 0x01, 0x97, 0xc4, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0,    0,    0,    0,    0,    0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t ack_bin32[] = {0x91, 0x93, 0x03, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    static const uint8_t unknown_map32[] = {0x91, 0x92, 0x09, 0xdf, 0xff, 0xff, 0xff, 0xff, 0x00};
    static const uint8_t unknown_ext32[] = {0x91, 0x92, 0x09, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t unknown_str32[] = {0x91, 0x92, 0x09, 0xdb, 0x7f, 0xff, 0xff, 0xff};
    static const uint8_t reserved_c1[] = {0x91, 0x92, 0x09, 0xc1};
#define REFUSED(b)                                                                                                     \
    do {                                                                                                               \
        assert_int_not_equal(decode(b, sizeof b, &c), SWIM_PROTO_OK);                                                  \
        assert_int_equal(c.n, 0);                                                                                      \
    } while (0)
    REFUSED(top_array32);
    REFUSED(msg_array32);
    REFUSED(alive_str32);
    REFUSED(ack_bin32);
    REFUSED(unknown_map32);
    REFUSED(unknown_ext32);
    REFUSED(unknown_str32);
    REFUSED(reserved_c1);
#undef REFUSED

    /* Deep nesting inside an unknown message: skipped without recursion. */
    size_t depth = 200000;
    uint8_t *deep = malloc(depth + 4);
    deep[0] = 0x91;
    deep[1] = 0x92;
    deep[2] = 0x09;
    memset(deep + 3, 0x91, depth);
    deep[3 + depth] = 0xc0;
    assert_int_equal(decode(deep, depth + 4, &c), SWIM_PROTO_OK);
    assert_int_equal(c.n, 0);
    assert_int_not_equal(decode(deep, depth + 3, &c), SWIM_PROTO_OK);
    free(deep);
}

static void test_wrong_types(void **state)
{
    collect_t c;
    fixture_mpack_t r;
    swim_id_t id = make_id(1);

    /* Not an array at all, an empty compound, a message that is not an
     * array, an empty message. */
    static const uint8_t not_array[] = {0x01};
    static const uint8_t empty[] = {0x90};
    static const uint8_t int_msg[] = {0x91, 0x05};
    static const uint8_t empty_msg[] = {0x91, 0x90};
    static const uint8_t type0[] = {0x91, 0x91, 0x00};
    static const uint8_t neg_type[] = {0x91, 0x91, 0xff};
    static const uint8_t str_type[] = {0x91, 0x91, 0xa1, '1'};
    assert_int_equal(decode(not_array, 1, &c), SWIM_PROTO_MALFORMED);
    assert_int_equal(decode(empty, 1, &c), SWIM_PROTO_MALFORMED);
    assert_int_equal(decode(int_msg, 2, &c), SWIM_PROTO_MALFORMED);
    assert_int_equal(decode(empty_msg, 2, &c), SWIM_PROTO_MALFORMED);
    assert_int_equal(decode(type0, 3, &c), SWIM_PROTO_MALFORMED);
    assert_int_equal(decode(neg_type, 3, &c), SWIM_PROTO_MALFORMED);
    assert_int_equal(decode(str_type, 4, &c), SWIM_PROTO_MALFORMED);

    /* ACK variants: [3, seq, id]. */
    struct {
        int seq_kind; /* 0 ok uint, 1 str, 2 2^32, 3 negative, 4 int8 5, 5 uint64 5, 6 float */
        int id_kind;  /* 0 ok, 1 str, 2 bin15, 3 bin17 */
        int fields;   /* 3 normal, 2 too few, 5 extra trailing fields */
        swim_proto_status_t want;
    } acks[] = {
        {0, 0, 3, SWIM_PROTO_OK},        {1, 0, 3, SWIM_PROTO_MALFORMED}, {2, 0, 3, SWIM_PROTO_MALFORMED},
        {3, 0, 3, SWIM_PROTO_MALFORMED}, {4, 0, 3, SWIM_PROTO_OK},        {5, 0, 3, SWIM_PROTO_OK},
        {6, 0, 3, SWIM_PROTO_MALFORMED}, {0, 1, 3, SWIM_PROTO_MALFORMED}, {0, 2, 3, SWIM_PROTO_MALFORMED},
        {0, 3, 3, SWIM_PROTO_MALFORMED}, {0, 0, 2, SWIM_PROTO_MALFORMED}, {0, 0, 5, SWIM_PROTO_OK},
    };
    for (size_t i = 0; i < sizeof acks / sizeof acks[0]; i++) {
        fixture_mpack_init(&r);
        msgpack_pack_array(&r.pk, 1);
        msgpack_pack_array(&r.pk, (size_t)acks[i].fields);
        msgpack_pack_uint8(&r.pk, SWIM_MSG_ACK);
        switch (acks[i].seq_kind) {
        case 0: msgpack_pack_uint32(&r.pk, 5); break;
        case 1: fixture_mpack_str(&r, "5", 1); break;
        case 2: msgpack_pack_uint64(&r.pk, 1ull << 32); break;
        case 3: msgpack_pack_int8(&r.pk, -5); break;
        case 4: fixture_mpack_raw(&r, "\xd0\x05", 2); break;
        case 5: fixture_mpack_raw(&r, "\xcf\0\0\0\0\0\0\0\x05", 9); break;
        case 6: msgpack_pack_float(&r.pk, 5.0f); break;
        }
        if (acks[i].fields >= 3) {
            switch (acks[i].id_kind) {
            case 0: fixture_mpack_bin(&r, id.b, 16); break;
            case 1: fixture_mpack_str(&r, (const char *)id.b, 16); break;
            case 2: fixture_mpack_bin(&r, id.b, 15); break;
            case 3: fixture_mpack_bin(&r, "0123456789abcdefg", 17); break;
            }
        }
        if (acks[i].fields == 5) {
            msgpack_pack_map(&r.pk, 1);
            fixture_mpack_str(&r, "k", 1);
            msgpack_pack_nil(&r.pk);
            msgpack_pack_double(&r.pk, 1.5);
        }
        assert_int_equal(raw_decode(&r, &c), acks[i].want);
        if (acks[i].want == SWIM_PROTO_OK) {
            assert_int_equal(c.n, 1);
            assert_int_equal(c.msgs[0].seq, 5);
            assert_true(swim_id_equal(&c.msgs[0].source, &id));
        }
    }

    /* PING_REQ with nack as an integer, and with a 3-element address. */
    for (int variant = 0; variant < 3; variant++) {
        fixture_mpack_init(&r);
        msgpack_pack_array(&r.pk, 1);
        msgpack_pack_array(&r.pk, 6);
        msgpack_pack_uint8(&r.pk, SWIM_MSG_PING_REQ);
        msgpack_pack_uint8(&r.pk, 1);
        raw_id(&r);
        if (variant == 2) {
            msgpack_pack_array(&r.pk, 3);
            fixture_mpack_bin(&r, "\1\2\3\4", 4);
            msgpack_pack_uint16(&r.pk, 1);
            msgpack_pack_uint16(&r.pk, 1);
        } else {
            raw_addr(&r, 4, 1);
        }
        raw_id(&r);
        if (variant == 1) msgpack_pack_uint8(&r.pk, 1);
        else msgpack_pack_true(&r.pk);
        assert_int_equal(raw_decode(&r, &c), variant == 0 ? SWIM_PROTO_OK : SWIM_PROTO_MALFORMED);
    }
}

static void test_field_limits(void **state)
{
    collect_t c;
    fixture_mpack_t r;
    char s[80];
    memset(s, 'a', sizeof s);

    raw_alive(&r, s, 63, "z", 1, 4, 1);
    assert_int_equal(raw_decode(&r, &c), SWIM_PROTO_OK);
    assert_int_equal(strlen(c.msgs[0].member.name), 63);
    raw_alive(&r, s, 64, "z", 1, 4, 1);
    assert_int_equal(raw_decode(&r, &c), SWIM_PROTO_MALFORMED);
    raw_alive(&r, s, 0, s, 31, 4, 1);
    assert_int_equal(raw_decode(&r, &c), SWIM_PROTO_OK);
    raw_alive(&r, "n", 1, s, 32, 4, 1);
    assert_int_equal(raw_decode(&r, &c), SWIM_PROTO_MALFORMED);

    /* Embedded NUL. */
    raw_alive(&r, "a\0b", 3, "z", 1, 4, 1);
    assert_int_equal(raw_decode(&r, &c), SWIM_PROTO_MALFORMED);
    raw_alive(&r, "a", 1, "z\0", 2, 4, 1);
    assert_int_equal(raw_decode(&r, &c), SWIM_PROTO_MALFORMED);

    /* Addresses: bin 0/4/16 only, port <= 65535, unset means port 0. */
    const struct {
        size_t iplen;
        uint64_t port;
        swim_proto_status_t want;
    } addrs[] = {
        {4, 65535, SWIM_PROTO_OK},         {16, 0, SWIM_PROTO_OK},           {0, 0, SWIM_PROTO_OK},
        {5, 1, SWIM_PROTO_MALFORMED},      {3, 1, SWIM_PROTO_MALFORMED},     {15, 1, SWIM_PROTO_MALFORMED},
        {4, 65536, SWIM_PROTO_MALFORMED},  {0, 1, SWIM_PROTO_MALFORMED},
    };
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        raw_alive(&r, "a", 1, "z", 1, addrs[i].iplen, addrs[i].port);
        assert_int_equal(raw_decode(&r, &c), addrs[i].want);
        if (addrs[i].want == SWIM_PROTO_OK) {
            const swim_addr_t *a = &c.msgs[0].member.gossip;
            assert_int_equal(a->family, addrs[i].iplen == 0 ? 0 : addrs[i].iplen == 4 ? 4 : 6);
            assert_int_equal(a->port, addrs[i].port);
        }
    }
}

static void test_unknown_types_skipped(void **state)
{
    collect_t c;
    fixture_mpack_t r;
    swim_msg_t ping, ack;
    make_msg(&ping, SWIM_MSG_PING, 1);
    make_msg(&ack, SWIM_MSG_ACK, 2);
    uint8_t one[256];
    size_t n;

    fixture_mpack_init(&r);
    msgpack_pack_array(&r.pk, 5);
    swim_packet_writer_t w;
    swim_packet_begin(&w, one, sizeof one);
    swim_packet_add(&w, &ping);
    n = swim_packet_finish(&w);
    fixture_mpack_raw(&r, one + 1, n - 1); /* the message without its compound header */
    msgpack_pack_array(&r.pk, 3); /* a future message type with a map and an ext */
    msgpack_pack_uint8(&r.pk, 9);
    msgpack_pack_map(&r.pk, 2);
    fixture_mpack_str(&r, "a", 1);
    msgpack_pack_array(&r.pk, 2);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_false(&r.pk);
    msgpack_pack_int64(&r.pk, -1);
    msgpack_pack_double(&r.pk, 2.5);
    msgpack_pack_ext(&r.pk, 3, 7);
    msgpack_pack_ext_body(&r.pk, "xyz", 3);
    msgpack_pack_array(&r.pk, 1); /* a future type with no fields */
    msgpack_pack_uint64(&r.pk, UINT64_MAX);
    msgpack_pack_array(&r.pk, 2); /* type 8 is push-pull state: not a datagram message */
    msgpack_pack_uint8(&r.pk, 8);
    fixture_mpack_bin(&r, "\0\0\0", 3);
    swim_packet_begin(&w, one, sizeof one);
    swim_packet_add(&w, &ack);
    n = swim_packet_finish(&w);
    fixture_mpack_raw(&r, one + 1, n - 1);
    assert_int_equal(raw_decode(&r, &c), SWIM_PROTO_OK);
    assert_int_equal(c.n, 2);
    assert_memory_equal(&c.msgs[0], &ping, sizeof ping);
    assert_memory_equal(&c.msgs[1], &ack, sizeof ack);

    /* Skipped messages do not use scratch; known ones past it are refused. */
    uint8_t buf[SWIM_PACKET_MAX];
    swim_msg_t msgs[7], sc[7];
    size_t len = encode_all_types(buf, sizeof buf, msgs);
    assert_int_equal(swim_packet_decode(buf, len, sc, 7, NULL, NULL), SWIM_PROTO_OK);
    assert_int_equal(swim_packet_decode(buf, len, sc, 6, NULL, NULL), SWIM_PROTO_MALFORMED);
    assert_int_equal(swim_packet_decode(buf, len, sc, 0, NULL, NULL), SWIM_PROTO_MALFORMED);
}

/* ---- push-pull state --------------------------------------------------- */

typedef struct records {
    swim_state_record_t *r;
    size_t n, cap;
} records_t;

static void on_record(const swim_state_record_t *r, void *ctx)
{
    records_t *rs = ctx;
    assert_true(rs->n < rs->cap);
    rs->r[rs->n++] = *r;
}

static void make_record(swim_state_record_t *r, size_t i)
{
    memset(r, 0, sizeof *r);
    r->state = (swim_state_t)(i % 4);
    r->incarnation = (uint64_t)i * 0x10001;
    make_member(&r->member, (unsigned)i);
}

static uint8_t *encode_state(size_t n, bool join, size_t *len)
{
    swim_state_writer_t w;
    swim_state_begin(&w, join);
    for (size_t i = 0; i < n; i++) {
        swim_state_record_t r;
        make_record(&r, i);
        swim_state_add(&w, &r);
    }
    uint8_t *buf = swim_state_finish(&w, len);
    assert_non_null(buf);
    return buf;
}

static void check_state_roundtrip(size_t n, bool join)
{
    size_t len;
    uint8_t *buf = encode_state(n, join, &len);
    records_t rs = {.r = calloc(n + 1, sizeof(swim_state_record_t)), .cap = n + 1};
    bool j = !join;
    assert_int_equal(swim_state_decode(buf, len, n, &j, on_record, &rs), SWIM_PROTO_OK);
    assert_int_equal(j, join);
    assert_int_equal(rs.n, n);
    for (size_t i = 0; i < n; i++) {
        swim_state_record_t want;
        make_record(&want, i);
        assert_memory_equal(&rs.r[i], &want, sizeof want);
    }
    if (n > 0) {
        rs.n = 0;
        assert_int_equal(swim_state_decode(buf, len, n - 1, &j, on_record, &rs), SWIM_PROTO_MALFORMED);
        assert_int_equal(rs.n, 0);
    }
    free(rs.r);
    free(buf);
}

static void test_state_roundtrip(void **state)
{
    check_state_roundtrip(0, false);
    check_state_roundtrip(1, true);
    check_state_roundtrip(15, false);
    check_state_roundtrip(16, true);
    check_state_roundtrip(1000, true);
    check_state_roundtrip(70000, false); /* array32 records header */
}

static void test_state_rejects(void **state)
{
    size_t len;
    uint8_t *buf = encode_state(3, true, &len);
    records_t rs = {.r = calloc(4, sizeof(swim_state_record_t)), .cap = 4};
    bool j;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        rs.n = 0;
        assert_int_not_equal(swim_state_decode(p, cut, 10, &j, on_record, &rs), SWIM_PROTO_OK);
        assert_int_equal(rs.n, 0);
        free(p);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0x00;
    assert_int_equal(swim_state_decode(longer, len + 1, 10, &j, on_record, &rs), SWIM_PROTO_MALFORMED);
    free(longer);

    /* Wrong tag; a bad state value in the last record means no visit at all. */
    buf[1] = 0x07;
    assert_int_equal(swim_state_decode(buf, len, 10, &j, on_record, &rs), SWIM_PROTO_MALFORMED);
    free(buf);

    fixture_mpack_t r;
    fixture_mpack_init(&r);
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_uint8(&r.pk, 8);
    msgpack_pack_true(&r.pk);
    msgpack_pack_array(&r.pk, 2);
    size_t state_pos = 0;
    for (int i = 0; i < 2; i++) {
        msgpack_pack_array(&r.pk, 3);
        state_pos = r.sb.size;
        msgpack_pack_uint8(&r.pk, i == 0 ? 0 : 4);
        msgpack_pack_uint8(&r.pk, 1);
        raw_member(&r, "n", 1, "z", 1, 4, 1);
    }
    rs.n = 0;
    assert_int_equal(swim_state_decode((uint8_t *)r.sb.data, r.sb.size, 10, &j, on_record, &rs),
                     SWIM_PROTO_MALFORMED);
    assert_int_equal(rs.n, 0);
    r.sb.data[state_pos] = 0x03; /* the bad state becomes "left" */
    assert_int_equal(swim_state_decode((uint8_t *)r.sb.data, r.sb.size, 10, &j, on_record, &rs), SWIM_PROTO_OK);
    assert_int_equal(rs.n, 2);
    assert_int_equal(rs.r[1].state, SWIM_STATE_LEFT);
    fixture_mpack_free(&r);

    /* A records header claiming 2^32-1 records with none present. */
    static const uint8_t bomb[] = {0x93, 0x08, 0xc2, 0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_not_equal(swim_state_decode(bomb, sizeof bomb, SIZE_MAX, &j, on_record, &rs), SWIM_PROTO_OK);
    free(rs.r);
}

static void test_state_writer_refuses_bad_record(void **state)
{
    swim_state_writer_t w;
    swim_state_record_t r;
    size_t len = 99;
    swim_state_begin(&w, false);
    make_record(&r, 1);
    swim_state_add(&w, &r);
    r.state = (swim_state_t)7;
    swim_state_add(&w, &r);
    assert_null(swim_state_finish(&w, &len));
    assert_int_equal(len, 0);
}

/* ---- helpers ----------------------------------------------------------- */

static void test_equality_and_names(void **state)
{
    swim_id_t a = make_id(1), b = make_id(1), d = make_id(2);
    assert_true(swim_id_equal(&a, &b));
    assert_false(swim_id_equal(&a, &d));

    swim_addr_t x = make_addr(4, 1), y = make_addr(4, 1);
    assert_true(swim_addr_equal(&x, &y));
    y.ip[10] = 99; /* beyond the 4 bytes an IPv4 address uses */
    assert_true(swim_addr_equal(&x, &y));
    y.port++;
    assert_false(swim_addr_equal(&x, &y));
    swim_addr_t u = make_addr(0, 0), v = make_addr(0, 0);
    v.port = 5;
    assert_true(swim_addr_equal(&u, &v));
    assert_false(swim_addr_equal(&u, &x));
    swim_addr_t s6 = make_addr(6, 1), t6 = make_addr(6, 1);
    t6.ip[15] ^= 1;
    assert_false(swim_addr_equal(&s6, &t6));

    assert_string_equal(swim_state_name(SWIM_STATE_ALIVE), "alive");
    assert_string_equal(swim_state_name(SWIM_STATE_SUSPECT), "suspect");
    assert_string_equal(swim_state_name(SWIM_STATE_DEAD), "dead");
    assert_string_equal(swim_state_name(SWIM_STATE_LEFT), "left");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_each_type),
        cmocka_unit_test(test_roundtrip_compound),
        cmocka_unit_test(test_writer_under_cap),
        cmocka_unit_test(test_writer_huge_compound),
        cmocka_unit_test(test_msg_size_exact),
        cmocka_unit_test(test_empty_and_unencodable),
        cmocka_unit_test(test_truncation_and_trailing),
        cmocka_unit_test(test_bombs),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_unknown_types_skipped),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_state_rejects),
        cmocka_unit_test(test_state_writer_refuses_bad_record),
        cmocka_unit_test(test_equality_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
