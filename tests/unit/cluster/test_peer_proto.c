/* peer_proto: every message type round-trips through sealed and plain frames,
 * the stream scanner finds frames however the bytes arrive, and hostile
 * bodies (truncations, bombs, wrong types, over-long fields) are rejected
 * with the right reason, without crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "cluster/peer_proto.h"
#include "tests/unit/fixture/mpack.h"

/* ---- fixtures ---------------------------------------------------------- */

static peer_bytes_t B(const char *s)
{
    return (peer_bytes_t){(const uint8_t *)s, strlen(s)};
}

static const peer_bytes_t inval_keys[] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"users:1", 7},
                                          {(const uint8_t *)"\0bin\xff", 5}};
static const peer_keyinfo_t keyinfos[] = {
    {{(const uint8_t *)"k1", 2}, 10, -1},
    {{(const uint8_t *)"k2", 2}, UINT64_MAX, INT64_MAX},
    {{(const uint8_t *)"k3", 2}, 0, INT64_MIN},
};
static const peer_entry_t entries[] = {
    {{(const uint8_t *)"h1", 2}, {(const uint8_t *)"v\0v", 3}, {(const uint8_t *)"text/plain", 10}, 42, 0},
    {{(const uint8_t *)"h2", 2}, {NULL, 0}, {NULL, 0}, UINT64_MAX, 1700000000000ull},
};

static const peer_offer_t offers[] = {
    {0x0123456789abcdefull, 42, false, {(const uint8_t *)"live", 4}},
    {UINT64_MAX, UINT64_MAX, true, {NULL, 0}},           /* a tombstone known by its hash */
    {7, 1, true, {(const uint8_t *)"gone", 4}},
};
static const peer_answer_t answers[] = {{0, 0}, {2, UINT64_MAX}, {UINT32_MAX, 5}};
static const uint8_t digest_bytes[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void make_msg(peer_msg_t *m, peer_msg_type_t t, uint64_t id)
{
    memset(m, 0, sizeof *m);
    m->type = t;
    m->id = id;
    m->flags = (uint32_t)(id % 4);
    switch (t) {
    case PEER_MSG_PING:
    case PEER_MSG_PONG:
        break;
    case PEER_MSG_GET:
        m->key = B("user:42");
        break;
    case PEER_MSG_GET_RESP:
        m->status = PEER_STATUS_OK;
        m->value = B("{\"name\":\"x\"}");
        m->content_type = B("application/json");
        m->version = 0x0123456789abcdefull;
        memset(m->origin, 7, PEER_ID_LEN);
        m->ttl_ms = 60000;
        break;
    case PEER_MSG_PUT:
        m->key = B("k");
        m->value = B("value bytes");
        m->content_type = B("");
        m->ttl_ms = 0;
        m->version = UINT64_MAX;
        for (int i = 0; i < PEER_ID_LEN; i++) m->origin[i] = (uint8_t)i;
        break;
    case PEER_MSG_PUT_RESP:
        m->status = PEER_STATUS_STALE;
        m->version = 12345;
        break;
    case PEER_MSG_DELETE:
        m->key = B("gone");
        m->version = 99;
        break;
    case PEER_MSG_DELETE_RESP:
        m->status = PEER_STATUS_NOT_FOUND;
        m->existed = true;
        break;
    case PEER_MSG_INVALIDATE:
        m->count = 3;
        m->keys = inval_keys;
        m->version = UINT64_MAX - 1;
        break;
    case PEER_MSG_INVALIDATE_PATTERN:
        m->pattern = B("users:*");
        m->dry_run = true;
        m->version = 0x0123456789abcdefull;
        break;
    case PEER_MSG_INVALIDATE_RESP:
        m->matched = 1000;
        m->invalidated = 999;
        break;
    case PEER_MSG_KEYS:
        m->pattern = B("*");
        m->cursor = 77;
        m->limit = UINT32_MAX;
        break;
    case PEER_MSG_KEYS_RESP:
        m->count = 3;
        m->keyinfos = keyinfos;
        m->cursor = 5;
        break;
    case PEER_MSG_HANDOFF:
        m->count = 2;
        m->entries = entries;
        break;
    case PEER_MSG_HANDOFF_RESP:
        m->accepted = 2;
        break;
    case PEER_MSG_ERROR:
        m->code = PEER_STATUS_UNSUPPORTED;
        m->message = B("no such type");
        break;
    case PEER_MSG_SYNC:
        m->name = B("node-7");
        memset(m->run, 0xab, PEER_ID_LEN);
        break;
    case PEER_MSG_SYNC_RESP:
        m->done = true;
        m->clock = 0x0123456789abcdefull;
        break;
    case PEER_MSG_REPAIR_DIGEST:
        m->name = B("node-3");
        memset(m->run, 0xcd, PEER_ID_LEN);
        m->ring = 0xfedcba9876543210ull;
        m->cut = 1700000000000ull;
        m->blob = (peer_bytes_t){digest_bytes, sizeof digest_bytes};
        break;
    case PEER_MSG_REPAIR_DIGEST_RESP:
        m->status = PEER_STATUS_UNAVAILABLE;
        m->blob = (peer_bytes_t){digest_bytes, 2};
        break;
    case PEER_MSG_REPAIR_OFFER:
        m->count = 3;
        m->offers = offers;
        break;
    case PEER_MSG_REPAIR_OFFER_RESP:
        m->count = 3;
        m->answers = answers;
        break;
    case PEER_MSG_EVENT:
        m->name = B("node-5");
        m->message = B("invalidate_pattern");
        m->blob = B("{\"pattern\":\"users:*\"}");
        break;
    }
}

static void assert_bytes(peer_bytes_t a, peer_bytes_t b)
{
    assert_int_equal(a.len, b.len);
    if (a.len) assert_memory_equal(a.p, b.p, a.len);
}

/* A decoded message d against the one it was encoded from, e. */
static void assert_msg(const peer_msg_t *d, const peer_msg_t *e)
{
    assert_int_equal(d->type, e->type);
    assert_true(d->id == e->id);
    assert_int_equal(d->flags, e->flags);
    assert_int_equal(d->status, e->status);
    assert_bytes(d->key, e->key);
    assert_bytes(d->value, e->value);
    assert_bytes(d->content_type, e->content_type);
    assert_true(d->version == e->version);
    assert_memory_equal(d->origin, e->origin, PEER_ID_LEN);
    assert_true(d->ttl_ms == e->ttl_ms);
    assert_int_equal(d->existed, e->existed);
    assert_bytes(d->pattern, e->pattern);
    assert_int_equal(d->dry_run, e->dry_run);
    assert_true(d->matched == e->matched && d->invalidated == e->invalidated);
    assert_true(d->cursor == e->cursor);
    assert_int_equal(d->limit, e->limit);
    assert_int_equal(d->accepted, e->accepted);
    assert_int_equal(d->code, e->code);
    assert_bytes(d->message, e->message);
    assert_bytes(d->name, e->name);
    assert_memory_equal(d->run, e->run, PEER_ID_LEN);
    assert_int_equal(d->done, e->done);
    assert_true(d->clock == e->clock);
    assert_true(d->ring == e->ring && d->cut == e->cut);
    assert_bytes(d->blob, e->blob);
    assert_int_equal(d->count, e->count);
    assert_null(d->offers);
    assert_null(d->answers);
    assert_null(d->keys);
    assert_null(d->keyinfos);
    assert_null(d->entries);
    peer_iter_t it;
    peer_iter_init(&it, d);
    uint32_t n = 0;
    peer_bytes_t k;
    peer_keyinfo_t ki;
    peer_entry_t en;
    peer_offer_t of;
    peer_answer_t an;
    switch (d->type) {
    case PEER_MSG_INVALIDATE:
        while (peer_iter_key(&it, &k)) assert_bytes(k, e->keys[n++]);
        break;
    case PEER_MSG_KEYS_RESP:
        while (peer_iter_keyinfo(&it, &ki)) {
            assert_bytes(ki.key, e->keyinfos[n].key);
            assert_true(ki.size == e->keyinfos[n].size);
            assert_true(ki.ttl_ms == e->keyinfos[n].ttl_ms);
            n++;
        }
        break;
    case PEER_MSG_HANDOFF:
        while (peer_iter_entry(&it, &en)) {
            assert_bytes(en.key, e->entries[n].key);
            assert_bytes(en.value, e->entries[n].value);
            assert_bytes(en.content_type, e->entries[n].content_type);
            assert_true(en.version == e->entries[n].version);
            assert_true(en.expires_at_ms == e->entries[n].expires_at_ms);
            n++;
        }
        break;
    case PEER_MSG_REPAIR_OFFER:
        while (peer_iter_offer(&it, &of)) {
            assert_true(of.hash == e->offers[n].hash && of.version == e->offers[n].version);
            assert_int_equal(of.tomb, e->offers[n].tomb);
            assert_bytes(of.key, e->offers[n].key);
            n++;
        }
        break;
    case PEER_MSG_REPAIR_OFFER_RESP:
        while (peer_iter_answer(&it, &an)) {
            assert_int_equal(an.index, e->answers[n].index);
            assert_true(an.version == e->answers[n].version);
            n++;
        }
        break;
    default:
        assert_false(peer_iter_key(&it, &k));
        assert_false(peer_iter_entry(&it, &en));
        assert_false(peer_iter_offer(&it, &of));
        break;
    }
    assert_int_equal(n, e->count);
}

static size_t encode_body(const peer_msg_t *m, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    assert_int_equal(peer_msg_encode(m, buf, cap, &len), PEER_PROTO_OK);
    assert_int_equal(len, peer_msg_size(m));
    return len;
}

/* Hand-built bodies for the reject tests (tests/unit/fixture/mpack.h):
 * [type, id, flags] with nfields more fields to follow. */
static void raw_head(fixture_mpack_t *r, unsigned type, size_t nfields)
{
    fixture_mpack_init(r);
    msgpack_pack_array(&r->pk, 3 + nfields);
    msgpack_pack_unsigned_int(&r->pk, type);
    msgpack_pack_uint64(&r->pk, 1);
    msgpack_pack_uint32(&r->pk, 0);
}

static peer_proto_status_t raw_decode(fixture_mpack_t *r, peer_msg_t *m)
{
    peer_proto_status_t rc = peer_msg_decode((const uint8_t *)r->sb.data, r->sb.size, m);
    fixture_mpack_free(r);
    return rc;
}

static seal_keyring_t plain_ring, key_ring, other_ring;

static int setup(void **state)
{
    (void)state;
    seal_keyring_init(&plain_ring);
    seal_keyring_init(&key_ring);
    seal_keyring_init(&other_ring);
    uint8_t k[SEAL_KEY_LEN];
    memset(k, 0x11, sizeof k);
    seal_keyring_add(&key_ring, k);
    memset(k, 0x22, sizeof k);
    seal_keyring_add(&other_ring, k);
    return 0;
}

/* ---- round trips ------------------------------------------------------- */

static void roundtrip_ring(const seal_keyring_t *r)
{
    static uint8_t scratch[65536], frame[65536], body[65536];
    for (int t = 1; t <= PEER_MSG_MAX; t++) {
        peer_msg_t m, d;
        make_msg(&m, (peer_msg_type_t)t, (uint64_t)t * 0x100000001ull);
        size_t flen;
        assert_int_equal(peer_frame_encode(r, &m, PEER_FRAME_MAX_DEFAULT, scratch, sizeof scratch, frame,
                                           sizeof frame, &flen),
                         PEER_PROTO_OK);
        assert_int_equal(flen, PEER_LEN_PREFIX + peer_msg_size(&m) + seal_overhead(r));
        peer_span_t sp;
        assert_int_equal(peer_frame_scan(frame, flen, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_READY);
        assert_int_equal(sp.off, PEER_LEN_PREFIX);
        assert_int_equal(sp.end, flen);
        seal_status_t ss = SEAL_NO_ROOM;
        assert_int_equal(peer_frame_decode(r, frame + sp.off, sp.len, body, sizeof body, &d, &ss), PEER_PROTO_OK);
        assert_int_equal(ss, SEAL_OK);
        assert_msg(&d, &m);
        /* Zero copy: slices point into the opened body. */
        if (d.key.len) assert_true(d.key.p >= body && d.key.p < body + sizeof body);
        assert_string_not_equal(peer_msg_type_name(d.type), "unknown");
    }
}

static void test_roundtrip_plain(void **state)
{
    (void)state;
    roundtrip_ring(&plain_ring);
}

static void test_roundtrip_sealed(void **state)
{
    (void)state;
    roundtrip_ring(&key_ring);
}

static void test_roundtrip_extremes(void **state)
{
    (void)state;
    static uint8_t buf[1 << 16];
    peer_msg_t m, d;
    /* Empty arrays, zero everything, unknown flag bits kept. */
    for (int t = 1; t <= PEER_MSG_MAX; t++) {
        make_msg(&m, (peer_msg_type_t)t, UINT64_MAX);
        m.flags = 0xfffffff0u | PEER_F_FORWARDED | PEER_F_REPLICA;
        if (m.keys || m.keyinfos || m.entries) {
            m.count = 0;
            m.keys = NULL;
            m.keyinfos = NULL;
            m.entries = NULL;
        }
        size_t len = encode_body(&m, buf, sizeof buf);
        assert_int_equal(peer_msg_decode(buf, len, &d), PEER_PROTO_OK);
        assert_msg(&d, &m);
    }
    /* Limits exactly. */
    static uint8_t big[LIMITS_KEY_MAX + 1];
    memset(big, 'k', sizeof big);
    static char ct[LIMITS_CTYPE_MAX + 1];
    memset(ct, 'c', sizeof ct);
    make_msg(&m, PEER_MSG_PUT, 1);
    m.key = (peer_bytes_t){big, LIMITS_KEY_MAX};
    m.content_type = (peer_bytes_t){(const uint8_t *)ct, LIMITS_CTYPE_MAX};
    size_t len = encode_body(&m, buf, sizeof buf);
    assert_int_equal(peer_msg_decode(buf, len, &d), PEER_PROTO_OK);
    assert_msg(&d, &m);
}

/* An 8 MiB value fits the default max frame, sealed. */
static void test_big_value(void **state)
{
    (void)state;
    size_t vlen = 8u << 20, cap = PEER_FRAME_MAX_DEFAULT + PEER_LEN_PREFIX;
    uint8_t *value = malloc(vlen), *scratch = malloc(cap), *frame = malloc(cap), *body = malloc(cap);
    assert_non_null(value);
    assert_non_null(scratch);
    assert_non_null(frame);
    assert_non_null(body);
    for (size_t i = 0; i < vlen; i++) value[i] = (uint8_t)(i * 7);
    peer_msg_t m, d;
    make_msg(&m, PEER_MSG_PUT, 3);
    m.value = (peer_bytes_t){value, vlen};
    size_t flen;
    assert_int_equal(peer_frame_encode(&key_ring, &m, PEER_FRAME_MAX_DEFAULT, scratch, cap, frame, cap, &flen),
                     PEER_PROTO_OK);
    peer_span_t sp;
    assert_int_equal(peer_frame_scan(frame, flen, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_READY);
    assert_int_equal(peer_frame_decode(&key_ring, frame + sp.off, sp.len, body, cap, &d, NULL), PEER_PROTO_OK);
    assert_msg(&d, &m);
    /* Over a smaller max: the sender refuses rather than get disconnected. */
    assert_int_equal(peer_frame_encode(&key_ring, &m, vlen, scratch, cap, frame, cap, &flen), PEER_PROTO_TOO_BIG);
    /* A buffer too small for the body or the frame. */
    assert_int_equal(peer_frame_encode(&key_ring, &m, PEER_FRAME_MAX_DEFAULT, scratch, vlen, frame, cap, &flen),
                     PEER_PROTO_TOO_BIG);
    assert_int_equal(peer_frame_encode(&key_ring, &m, PEER_FRAME_MAX_DEFAULT, scratch, cap, frame, vlen, &flen),
                     PEER_PROTO_TOO_BIG);
    free(value);
    free(scratch);
    free(frame);
    free(body);
}

/* ---- hostile bodies ---------------------------------------------------- */

static void test_truncation(void **state)
{
    (void)state;
    static uint8_t buf[65536];
    for (int t = 1; t <= PEER_MSG_MAX; t++) {
        peer_msg_t m, d;
        make_msg(&m, (peer_msg_type_t)t, 1000 + (uint64_t)t);
        size_t len = encode_body(&m, buf, sizeof buf);
        for (size_t cut = 0; cut < len; cut++) {
            /* A copy of exactly cut bytes, so ASan sees any overread. */
            uint8_t *p = malloc(cut ? cut : 1);
            assert_non_null(p);
            memcpy(p, buf, cut);
            peer_proto_status_t rc = peer_msg_decode(p, cut, &d);
            assert_true(rc == PEER_PROTO_TRUNCATED || rc == PEER_PROTO_MALFORMED || rc == PEER_PROTO_LIMIT);
            free(p);
        }
        /* And the encoder refuses every buffer too short. */
        for (size_t cap = 0; cap < len; cap++) assert_int_equal(peer_msg_encode(&m, buf, cap, NULL), PEER_PROTO_TOO_BIG);
        /* One byte more is trailing garbage. */
        encode_body(&m, buf, sizeof buf);
        buf[len] = 0xc0;
        assert_int_equal(peer_msg_decode(buf, len + 1, &d), PEER_PROTO_MALFORMED);
    }
    peer_msg_t d;
    assert_int_equal(peer_msg_decode(NULL, 0, &d), PEER_PROTO_TRUNCATED);
}

static void test_bombs(void **state)
{
    (void)state;
    peer_msg_t m;
    fixture_mpack_t r;
    /* Body claiming 4 billion fields. */
    static const uint8_t arr_bomb[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x00};
    assert_int_equal(peer_msg_decode(arr_bomb, sizeof arr_bomb, &m), PEER_PROTO_TRUNCATED);
    /* A key claiming 4 GiB. */
    raw_head(&r, PEER_MSG_GET, 1);
    fixture_mpack_raw(&r, "\xc6\xff\xff\xff\xff" "abc", 8);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_TRUNCATED);
    /* A value claiming 4 GiB. */
    raw_head(&r, PEER_MSG_PUT, 6);
    fixture_mpack_bin(&r, "k", 1);
    fixture_mpack_raw(&r, "\xc6\xff\xff\xff\xf0", 5);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_TRUNCATED);
    /* A content type claiming 4 GiB. */
    raw_head(&r, PEER_MSG_PUT, 6);
    fixture_mpack_bin(&r, "k", 1);
    fixture_mpack_bin(&r, "v", 1);
    fixture_mpack_raw(&r, "\xdb\xff\xff\xff\xff", 5);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_TRUNCATED);
    /* INVALIDATE, KEYS_RESP and HANDOFF claiming 4 billion elements. */
    static const unsigned arr_types[] = {PEER_MSG_INVALIDATE, PEER_MSG_KEYS_RESP, PEER_MSG_HANDOFF};
    for (size_t i = 0; i < 3; i++) {
        raw_head(&r, arr_types[i], arr_types[i] == PEER_MSG_KEYS_RESP ? 2 : 1);
        fixture_mpack_raw(&r, "\xdd\xff\xff\xff\xff\xc4\x01k", 8);
        assert_int_equal(raw_decode(&r, &m), PEER_PROTO_TRUNCATED);
    }
    /* Deeply nested arrays and maps in a skipped trailing field: iterative
     * skipping, no stack overflow; then a lying map count. */
    raw_head(&r, PEER_MSG_PING, 1);
    for (int i = 0; i < 100000; i++) fixture_mpack_raw(&r, "\x91", 1);
    fixture_mpack_raw(&r, "\xc0", 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_OK);
    raw_head(&r, PEER_MSG_PING, 1);
    fixture_mpack_raw(&r, "\xdf\x7f\xff\xff\xff\x01\x02", 7);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_TRUNCATED);
    /* An ext claiming 4 GiB in a skipped field. */
    raw_head(&r, PEER_MSG_PING, 1);
    fixture_mpack_raw(&r, "\xc9\xff\xff\xff\xff\x01", 6);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_TRUNCATED);
}

static void test_wrong_types(void **state)
{
    (void)state;
    peer_msg_t m;
    fixture_mpack_t r;
    /* Not an array; too few header fields; type 0. */
    fixture_mpack_init(&r);
    msgpack_pack_map(&r.pk, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    fixture_mpack_init(&r);
    msgpack_pack_array(&r.pk, 2);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, 0, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    /* Type as a string; negative id; flags over u32. */
    fixture_mpack_init(&r);
    msgpack_pack_array(&r.pk, 3);
    fixture_mpack_str(&r, "1", 1);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    fixture_mpack_init(&r);
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_int8(&r.pk, -1);
    msgpack_pack_uint8(&r.pk, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    fixture_mpack_init(&r);
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint64(&r.pk, 1ull << 32);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    /* A key as str; fields missing. */
    raw_head(&r, PEER_MSG_GET, 1);
    fixture_mpack_str(&r, "k", 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, PEER_MSG_DELETE, 1);
    fixture_mpack_bin(&r, "k", 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    /* Content type as bin, with an embedded NUL. */
    raw_head(&r, PEER_MSG_PUT, 6);
    fixture_mpack_bin(&r, "k", 1);
    fixture_mpack_bin(&r, "v", 1);
    fixture_mpack_bin(&r, "t", 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, PEER_MSG_PUT, 6);
    fixture_mpack_bin(&r, "k", 1);
    fixture_mpack_bin(&r, "v", 1);
    fixture_mpack_str(&r, "a\0b", 3);
    msgpack_pack_uint8(&r.pk, 0);
    msgpack_pack_uint8(&r.pk, 0);
    fixture_mpack_bin(&r, "0123456789abcdef", 16);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    /* Origin of 15 bytes. */
    raw_head(&r, PEER_MSG_PUT, 6);
    fixture_mpack_bin(&r, "k", 1);
    fixture_mpack_bin(&r, "v", 1);
    fixture_mpack_str(&r, "t", 1);
    msgpack_pack_uint8(&r.pk, 0);
    msgpack_pack_uint8(&r.pk, 0);
    fixture_mpack_bin(&r, "0123456789abcde", 15);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    /* existed as an integer; status over u32; a negative ttl in KEYS_RESP
     * is fine but a size is not; a float version. */
    raw_head(&r, PEER_MSG_DELETE_RESP, 2);
    msgpack_pack_uint8(&r.pk, 0);
    msgpack_pack_uint8(&r.pk, 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, PEER_MSG_PUT_RESP, 2);
    msgpack_pack_uint64(&r.pk, 1ull << 32);
    msgpack_pack_uint8(&r.pk, 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, PEER_MSG_KEYS_RESP, 2);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_array(&r.pk, 3);
    fixture_mpack_bin(&r, "k", 1);
    msgpack_pack_int8(&r.pk, -1);
    msgpack_pack_int8(&r.pk, -1);
    msgpack_pack_uint8(&r.pk, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, PEER_MSG_KEYS_RESP, 2);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_array(&r.pk, 3);
    fixture_mpack_bin(&r, "k", 1);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_int64(&r.pk, INT64_MIN);
    msgpack_pack_uint8(&r.pk, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_OK);
    raw_head(&r, PEER_MSG_KEYS_RESP, 2);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_array(&r.pk, 3);
    fixture_mpack_bin(&r, "k", 1);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint64(&r.pk, (uint64_t)INT64_MAX + 1); /* ttl over i64 */
    msgpack_pack_uint8(&r.pk, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, PEER_MSG_DELETE, 2);
    fixture_mpack_bin(&r, "k", 1);
    msgpack_pack_double(&r.pk, 1.0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    /* A handoff element with a field missing, or not an array. */
    raw_head(&r, PEER_MSG_HANDOFF, 1);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_array(&r.pk, 4);
    fixture_mpack_bin(&r, "k", 1);
    fixture_mpack_bin(&r, "v", 1);
    fixture_mpack_str(&r, "t", 1);
    msgpack_pack_uint8(&r.pk, 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, PEER_MSG_INVALIDATE, 1);
    msgpack_pack_array(&r.pk, 2);
    fixture_mpack_bin(&r, "k", 1);
    msgpack_pack_uint8(&r.pk, 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
}

static void test_forward_compat(void **state)
{
    (void)state;
    peer_msg_t m;
    fixture_mpack_t r;
    /* Wider integer encodings than needed are fine. */
    fixture_mpack_init(&r);
    fixture_mpack_raw(&r,
                      "\x94\xcf\x00\x00\x00\x00\x00\x00\x00\x03\xd3\x00\x00\x00\x00\x00\x00\x00\x09\xce\x00\x00\x00\x01"
                      "\xc6\x00\x00\x00\x01k",
                      30);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_OK);
    assert_int_equal(m.type, PEER_MSG_GET);
    assert_true(m.id == 9 && m.flags == PEER_F_FORWARDED && m.key.len == 1);
    /* Extra fields at the end of a body and of an element are skipped. */
    raw_head(&r, PEER_MSG_HANDOFF, 3);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_array(&r.pk, 6);
    fixture_mpack_bin(&r, "key", 3);
    fixture_mpack_bin(&r, "val", 3);
    fixture_mpack_str(&r, "t/p", 3);
    msgpack_pack_uint8(&r.pk, 5);
    msgpack_pack_uint8(&r.pk, 6);
    msgpack_pack_map(&r.pk, 1);
    fixture_mpack_str(&r, "x", 1);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_float(&r.pk, 1.5f);
    fixture_mpack_str(&r, "future", 6);
    assert_int_equal(peer_msg_decode((const uint8_t *)r.sb.data, r.sb.size, &m), PEER_PROTO_OK);
    assert_int_equal(m.count, 1);
    peer_iter_t it;
    peer_entry_t e;
    peer_iter_init(&it, &m);
    assert_true(peer_iter_entry(&it, &e));
    assert_bytes(e.key, B("key"));
    assert_bytes(e.content_type, B("t/p"));
    assert_true(e.version == 5 && e.expires_at_ms == 6);
    assert_false(peer_iter_entry(&it, &e));
    /* The wrong iterator gives nothing. */
    peer_keyinfo_t ki;
    peer_iter_init(&it, &m);
    assert_false(peer_iter_keyinfo(&it, &ki));
    fixture_mpack_free(&r);
    /* An unknown type: reported with its id, so the transport can answer. */
    fixture_mpack_init(&r);
    msgpack_pack_array(&r.pk, 4);
    msgpack_pack_uint8(&r.pk, 200);
    msgpack_pack_uint64(&r.pk, 77);
    msgpack_pack_uint32(&r.pk, 1);
    fixture_mpack_bin(&r, "whatever", 8);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_UNKNOWN_TYPE);
    assert_int_equal(m.type, 200);
    assert_true(m.id == 77 && m.flags == 1);
    /* ... unless what follows is garbage. */
    fixture_mpack_init(&r);
    msgpack_pack_array(&r.pk, 4);
    msgpack_pack_uint8(&r.pk, 200);
    msgpack_pack_uint64(&r.pk, 77);
    msgpack_pack_uint32(&r.pk, 1);
    fixture_mpack_raw(&r, "\xc1", 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
}

/* The invalidations' version was appended: a body without it (an older
 * peer's) decodes as unversioned (0), one with it and more fields after it
 * decodes with it, and version 0 encodes as the old body. */
/* PUT and DELETE gained an appended request id: without it the body is the
 * old one, byte for byte; with it, it round-trips; a malformed one is
 * refused. */
static void test_write_rid(void **state)
{
    (void)state;
    static uint8_t buf[4096], plain[4096];
    peer_msg_t m, d;
    for (int t = 0; t < 2; t++) {
        make_msg(&m, t ? PEER_MSG_DELETE : PEER_MSG_PUT, 9);
        memset(m.rid, 0, sizeof m.rid);
        size_t n0 = encode_body(&m, plain, sizeof plain);
        assert_int_equal(peer_msg_decode(plain, n0, &d), PEER_PROTO_OK);
        for (int i = 0; i < PEER_ID_LEN; i++) assert_int_equal(d.rid[i], 0);
        memset(m.rid, 0x7e, sizeof m.rid);
        size_t n1 = encode_body(&m, buf, sizeof buf);
        assert_int_equal(n1, n0 + 2 + PEER_ID_LEN);
        assert_int_equal(peer_msg_decode(buf, n1, &d), PEER_PROTO_OK);
        assert_memory_equal(d.rid, m.rid, PEER_ID_LEN);
        assert_true(d.version == m.version);
    }
    fixture_mpack_t r;
    raw_head(&r, PEER_MSG_DELETE, 3);
    fixture_mpack_bin(&r, "k", 1);
    msgpack_pack_uint64(&r.pk, 5);
    fixture_mpack_bin(&r, "short", 5);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
}

static void test_invalidate_version(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    peer_msg_t m, d;
    fixture_mpack_t r;
    /* Without the version. */
    raw_head(&r, PEER_MSG_INVALIDATE, 1);
    msgpack_pack_array(&r.pk, 1);
    fixture_mpack_bin(&r, "k", 1);
    size_t old_len = r.sb.size;
    memcpy(buf + 2048, r.sb.data, old_len);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_OK);
    assert_int_equal(m.type, PEER_MSG_INVALIDATE);
    assert_int_equal(m.count, 1);
    assert_true(m.version == 0);
    /* ... which is how version 0 is encoded. */
    peer_bytes_t k = B("k");
    memset(&m, 0, sizeof m);
    m.type = PEER_MSG_INVALIDATE;
    m.id = 1;
    m.count = 1;
    m.keys = &k;
    size_t len = encode_body(&m, buf, 2048);
    assert_int_equal(len, old_len);
    assert_memory_equal(buf, buf + 2048, len);
    raw_head(&r, PEER_MSG_INVALIDATE_PATTERN, 2);
    fixture_mpack_bin(&r, "users:*", 7);
    msgpack_pack_false(&r.pk);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_OK);
    assert_int_equal(m.type, PEER_MSG_INVALIDATE_PATTERN);
    assert_int_equal(m.pattern.len, 7); /* raw_decode freed the bytes it points into */
    assert_true(m.version == 0);
    /* With it, and a field from a newer peer after it. */
    raw_head(&r, PEER_MSG_INVALIDATE, 3);
    msgpack_pack_array(&r.pk, 2);
    fixture_mpack_bin(&r, "a", 1);
    fixture_mpack_bin(&r, "b", 1);
    msgpack_pack_uint64(&r.pk, 42);
    fixture_mpack_str(&r, "future", 6);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_OK);
    assert_int_equal(m.count, 2);
    assert_true(m.version == 42);
    raw_head(&r, PEER_MSG_INVALIDATE_PATTERN, 4);
    fixture_mpack_bin(&r, "p*", 2);
    msgpack_pack_true(&r.pk);
    msgpack_pack_uint64(&r.pk, UINT64_MAX);
    msgpack_pack_nil(&r.pk);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_OK);
    assert_true(m.dry_run);
    assert_true(m.version == UINT64_MAX);
    /* A version that is not an unsigned integer is malformed. */
    raw_head(&r, PEER_MSG_INVALIDATE_PATTERN, 3);
    fixture_mpack_bin(&r, "p*", 2);
    msgpack_pack_true(&r.pk);
    fixture_mpack_str(&r, "7", 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    raw_head(&r, PEER_MSG_INVALIDATE, 2);
    msgpack_pack_array(&r.pk, 1);
    fixture_mpack_bin(&r, "a", 1);
    msgpack_pack_int8(&r.pk, -1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    /* Round trips with a version (the other types ignore theirs). */
    make_msg(&m, PEER_MSG_INVALIDATE_PATTERN, 5);
    m.version = 1;
    len = encode_body(&m, buf, sizeof buf);
    assert_int_equal(peer_msg_decode(buf, len, &d), PEER_PROTO_OK);
    assert_true(d.version == 1);
}

static void test_limits(void **state)
{
    (void)state;
    static uint8_t buf[1 << 20];
    static uint8_t big[PEER_MESSAGE_MAX + 2];
    memset(big, 'x', sizeof big);
    peer_msg_t m, d;
    fixture_mpack_t r;
    /* Keys: empty and 1025 bytes refused by both sides. */
    make_msg(&m, PEER_MSG_GET, 1);
    m.key = (peer_bytes_t){big, 0};
    assert_int_equal(peer_msg_size(&m), 0);
    assert_int_equal(peer_msg_encode(&m, buf, sizeof buf, NULL), PEER_PROTO_LIMIT);
    m.key.len = LIMITS_KEY_MAX + 1;
    assert_int_equal(peer_msg_encode(&m, buf, sizeof buf, NULL), PEER_PROTO_LIMIT);
    raw_head(&r, PEER_MSG_GET, 1);
    fixture_mpack_bin(&r, big, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    raw_head(&r, PEER_MSG_GET, 1);
    fixture_mpack_bin(&r, big, LIMITS_KEY_MAX + 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    /* Content type 256, message 1025, pattern 1025 / empty. */
    make_msg(&m, PEER_MSG_GET_RESP, 1);
    m.content_type = (peer_bytes_t){big, LIMITS_CTYPE_MAX + 1};
    assert_int_equal(peer_msg_size(&m), 0);
    raw_head(&r, PEER_MSG_GET_RESP, 6);
    msgpack_pack_uint8(&r.pk, 0);
    fixture_mpack_bin(&r, "v", 1);
    fixture_mpack_str(&r, (const char *)big, LIMITS_CTYPE_MAX + 1);
    msgpack_pack_uint8(&r.pk, 0);
    fixture_mpack_bin(&r, "0123456789abcdef", 16);
    msgpack_pack_uint8(&r.pk, 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    /* A SYNC's name: 1..63 bytes. */
    make_msg(&m, PEER_MSG_SYNC, 1);
    m.name = (peer_bytes_t){big, 0};
    assert_int_equal(peer_msg_size(&m), 0);
    m.name.len = PEER_NAME_MAX + 1;
    assert_int_equal(peer_msg_size(&m), 0);
    raw_head(&r, PEER_MSG_SYNC, 2);
    fixture_mpack_str(&r, (const char *)big, 0);
    fixture_mpack_bin(&r, "0123456789abcdef", 16);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    raw_head(&r, PEER_MSG_SYNC, 2);
    fixture_mpack_str(&r, (const char *)big, PEER_NAME_MAX + 1);
    fixture_mpack_bin(&r, "0123456789abcdef", 16);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    raw_head(&r, PEER_MSG_SYNC, 2);
    fixture_mpack_str(&r, (const char *)big, PEER_NAME_MAX);
    fixture_mpack_bin(&r, "0123456789abcde", 15);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_MALFORMED);
    make_msg(&m, PEER_MSG_ERROR, 1);
    m.message = (peer_bytes_t){big, PEER_MESSAGE_MAX + 1};
    assert_int_equal(peer_msg_size(&m), 0);
    raw_head(&r, PEER_MSG_ERROR, 2);
    msgpack_pack_uint8(&r.pk, 0);
    fixture_mpack_str(&r, (const char *)big, PEER_MESSAGE_MAX + 1);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    make_msg(&m, PEER_MSG_KEYS, 1);
    m.pattern = (peer_bytes_t){big, 0};
    assert_int_equal(peer_msg_size(&m), 0);
    raw_head(&r, PEER_MSG_INVALIDATE_PATTERN, 2);
    fixture_mpack_bin(&r, big, PEER_PATTERN_MAX + 1);
    msgpack_pack_true(&r.pk);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    /* Encoding with NULL array pointers or bytes is refused. */
    make_msg(&m, PEER_MSG_HANDOFF, 1);
    m.entries = NULL;
    assert_int_equal(peer_msg_size(&m), 0);
    make_msg(&m, PEER_MSG_PUT, 1);
    m.value = (peer_bytes_t){NULL, 3};
    assert_int_equal(peer_msg_size(&m), 0);
    m.type = (peer_msg_type_t)99;
    assert_int_equal(peer_msg_size(&m), 0);
    /* INVALIDATE: 10000 keys pass, 10001 do not, either way. */
    static peer_bytes_t keys[PEER_INVALIDATE_MAX + 1];
    static char names[PEER_INVALIDATE_MAX + 1][8];
    for (int i = 0; i <= PEER_INVALIDATE_MAX; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        keys[i] = B(names[i]);
    }
    make_msg(&m, PEER_MSG_INVALIDATE, 1);
    m.keys = keys;
    m.count = PEER_INVALIDATE_MAX;
    size_t len = encode_body(&m, buf, sizeof buf);
    assert_int_equal(peer_msg_decode(buf, len, &d), PEER_PROTO_OK);
    assert_msg(&d, &m);
    m.count = PEER_INVALIDATE_MAX + 1;
    assert_int_equal(peer_msg_size(&m), 0);
    raw_head(&r, PEER_MSG_INVALIDATE, 1);
    msgpack_pack_array(&r.pk, PEER_INVALIDATE_MAX + 1);
    for (int i = 0; i <= PEER_INVALIDATE_MAX; i++) fixture_mpack_bin(&r, names[i], strlen(names[i]));
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    /* A bad key deep in an array spoils the whole message. */
    raw_head(&r, PEER_MSG_INVALIDATE, 1);
    msgpack_pack_array(&r.pk, 3);
    fixture_mpack_bin(&r, "a", 1);
    fixture_mpack_bin(&r, "b", 1);
    fixture_mpack_bin(&r, "", 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    assert_int_equal(m.count, 0);
}

/* ---- stream framing ---------------------------------------------------- */

/* Every type's frame, back to back. */
static size_t build_stream(const seal_keyring_t *r, uint8_t *out, size_t cap, size_t *ends)
{
    static uint8_t scratch[65536];
    size_t len = 0;
    for (int t = 1; t <= PEER_MSG_MAX; t++) {
        peer_msg_t m;
        make_msg(&m, (peer_msg_type_t)t, (uint64_t)t);
        size_t n;
        assert_int_equal(peer_frame_encode(r, &m, PEER_FRAME_MAX_DEFAULT, scratch, sizeof scratch, out + len,
                                           cap - len, &n),
                         PEER_PROTO_OK);
        len += n;
        ends[t - 1] = len;
    }
    return len;
}

/* Feeds the stream in two chunks split at every byte (and one byte at a
 * time) to a minimal transport loop: scan, consume, decode. */
static void feed(const seal_keyring_t *r, const uint8_t *stream, size_t total, size_t split, size_t step)
{
    static uint8_t rx[65536], body[65536];
    size_t have = 0, in = 0;
    int next_type = 1;
    while (in < total || have > 0) {
        size_t chunk = step ? step : (in < split ? split - in : total - in);
        if (chunk > total - in) chunk = total - in;
        memcpy(rx + have, stream + in, chunk);
        have += chunk;
        in += chunk;
        for (;;) {
            peer_span_t sp;
            peer_scan_t s = peer_frame_scan(rx, have, PEER_FRAME_MAX_DEFAULT, &sp);
            if (s == PEER_SCAN_NEED_MORE) {
                assert_true(sp.end > have);
                break;
            }
            assert_int_equal(s, PEER_SCAN_READY);
            peer_msg_t d, e;
            assert_int_equal(peer_frame_decode(r, rx + sp.off, sp.len, body, sizeof body, &d, NULL), PEER_PROTO_OK);
            make_msg(&e, (peer_msg_type_t)next_type, (uint64_t)next_type);
            assert_msg(&d, &e);
            next_type++;
            memmove(rx, rx + sp.end, have - sp.end);
            have -= sp.end;
        }
        if (in == total) break;
    }
    assert_int_equal(have, 0);
    assert_int_equal(next_type, PEER_MSG_MAX + 1);
}

/* Repair messages: a live offer needs a key, a tombstone may go without;
 * offers and answers are bounded; blobs too. */
static void test_repair_limits(void **state)
{
    (void)state;
    static uint8_t buf[1 << 20];
    static uint8_t big[PEER_BLOB_MAX + 1];
    peer_msg_t m;
    fixture_mpack_t r;
    peer_offer_t keyless = {1, 2, false, {NULL, 0}};
    make_msg(&m, PEER_MSG_REPAIR_OFFER, 1);
    m.offers = &keyless;
    m.count = 1;
    assert_int_equal(peer_msg_size(&m), 0);
    raw_head(&r, PEER_MSG_REPAIR_OFFER, 1);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_array(&r.pk, 4);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 2);
    msgpack_pack_false(&r.pk);
    fixture_mpack_bin(&r, "", 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    /* The same as a tombstone decodes. */
    raw_head(&r, PEER_MSG_REPAIR_OFFER, 1);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_array(&r.pk, 4);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 2);
    msgpack_pack_true(&r.pk);
    fixture_mpack_bin(&r, "", 0);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_OK);
    assert_int_equal(m.count, 1);
    /* More than PEER_OFFER_MAX answers. */
    raw_head(&r, PEER_MSG_REPAIR_OFFER_RESP, 1);
    msgpack_pack_array(&r.pk, PEER_OFFER_MAX + 1);
    for (unsigned i = 0; i <= PEER_OFFER_MAX; i++) {
        msgpack_pack_array(&r.pk, 2);
        msgpack_pack_uint32(&r.pk, i);
        msgpack_pack_uint8(&r.pk, 0);
    }
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
    make_msg(&m, PEER_MSG_REPAIR_OFFER_RESP, 1);
    m.count = PEER_OFFER_MAX + 1;
    assert_int_equal(peer_msg_encode(&m, buf, sizeof buf, NULL), PEER_PROTO_LIMIT);
    /* A digest over PEER_BLOB_MAX bytes, both ways. */
    make_msg(&m, PEER_MSG_REPAIR_DIGEST, 1);
    m.blob = (peer_bytes_t){big, sizeof big};
    assert_int_equal(peer_msg_size(&m), 0);
    raw_head(&r, PEER_MSG_REPAIR_DIGEST_RESP, 2);
    msgpack_pack_uint8(&r.pk, 0);
    fixture_mpack_bin(&r, big, sizeof big);
    assert_int_equal(raw_decode(&r, &m), PEER_PROTO_LIMIT);
}

static void test_stream(void **state)
{
    (void)state;
    static uint8_t stream[65536];
    size_t ends[PEER_MSG_MAX];
    const seal_keyring_t *rings[] = {&plain_ring, &key_ring};
    for (int k = 0; k < 2; k++) {
        size_t total = build_stream(rings[k], stream, sizeof stream, ends);
        feed(rings[k], stream, total, total, 0);      /* all frames in one buffer */
        feed(rings[k], stream, total, 0, 1);          /* byte by byte */
        for (size_t split = 1; split < total; split++) feed(rings[k], stream, total, split, 0);
        /* Every prefix of the stream scans as the right number of frames. */
        for (size_t cut = 0; cut <= total; cut++) {
            size_t off = 0, frames = 0;
            peer_span_t sp;
            while (peer_frame_scan(stream + off, cut - off, PEER_FRAME_MAX_DEFAULT, &sp) == PEER_SCAN_READY) {
                off += sp.end;
                frames++;
            }
            size_t want = 0;
            while (want < PEER_MSG_MAX && ends[want] <= cut) want++;
            assert_int_equal(frames, want);
        }
    }
}

static void test_scan_limits(void **state)
{
    (void)state;
    peer_span_t sp;
    /* Oversized: known from the four length bytes alone. */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(peer_frame_scan(huge, 4, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_TOO_BIG);
    assert_int_equal(peer_frame_scan(huge, 3, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_NEED_MORE);
    assert_int_equal(sp.end, PEER_LEN_PREFIX);
    uint8_t b[4] = {0, 0x81, 0x00, 0x01}; /* 8 MiB + 64 KiB + 1 */
    assert_int_equal(peer_frame_scan(b, 4, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_TOO_BIG);
    b[3] = 0x00; /* exactly the max: wait for it */
    assert_int_equal(peer_frame_scan(b, 4, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_NEED_MORE);
    assert_int_equal(sp.end, PEER_LEN_PREFIX + PEER_FRAME_MAX_DEFAULT);
    assert_int_equal(peer_frame_scan(b, 4, 100, &sp), PEER_SCAN_TOO_BIG);
    /* Too small to hold even a plain seal. */
    static const uint8_t zero[] = {0, 0, 0, 0}, five[] = {0, 0, 0, 5};
    assert_int_equal(peer_frame_scan(zero, 4, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_TOO_SMALL);
    assert_int_equal(peer_frame_scan(five, 4, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_TOO_SMALL);
    assert_int_equal(peer_frame_scan(NULL, 0, PEER_FRAME_MAX_DEFAULT, &sp), PEER_SCAN_NEED_MORE);
    assert_string_equal(peer_scan_name(PEER_SCAN_TOO_BIG), "frame_too_big");
}

/* ---- sealing ----------------------------------------------------------- */

static void test_tamper(void **state)
{
    (void)state;
    static uint8_t scratch[4096], frame[4096], body[4096];
    const seal_keyring_t *rings[] = {&plain_ring, &key_ring};
    for (int k = 0; k < 2; k++) {
        const seal_keyring_t *r = rings[k];
        peer_msg_t m, d;
        make_msg(&m, PEER_MSG_PUT, 5);
        size_t flen;
        assert_int_equal(peer_frame_encode(r, &m, PEER_FRAME_MAX_DEFAULT, scratch, sizeof scratch, frame,
                                           sizeof frame, &flen),
                         PEER_PROTO_OK);
        const uint8_t *payload = frame + PEER_LEN_PREFIX;
        size_t plen = flen - PEER_LEN_PREFIX;
        uint8_t *t = malloc(plen);
        assert_non_null(t);
        for (size_t i = 0; i < plen; i++) {
            for (int bit = 0; bit < 8; bit += 3) {
                memcpy(t, payload, plen);
                t[i] ^= (uint8_t)(1u << bit);
                seal_status_t ss = SEAL_OK;
                peer_proto_status_t rc = peer_frame_decode(r, t, plen, body, sizeof body, &d, &ss);
                assert_int_equal(rc, PEER_PROTO_SEAL);
                assert_int_not_equal(ss, SEAL_OK);
                if (i == 0) continue; /* the version byte: bad_version or a mode mismatch */
                assert_int_equal(ss, k ? SEAL_AUTH_FAILED : SEAL_BAD_CHECKSUM);
            }
        }
        free(t);
        /* Truncated payloads. */
        for (size_t cut = 0; cut < plen; cut++)
            assert_int_equal(peer_frame_decode(r, payload, cut, body, sizeof body, &d, NULL), PEER_PROTO_SEAL);
        /* Across modes and keys. */
        seal_status_t ss;
        if (k) {
            assert_int_equal(peer_frame_decode(&other_ring, payload, plen, body, sizeof body, &d, &ss),
                             PEER_PROTO_SEAL);
            assert_int_equal(ss, SEAL_AUTH_FAILED);
            assert_int_equal(peer_frame_decode(&plain_ring, payload, plen, body, sizeof body, &d, &ss),
                             PEER_PROTO_SEAL);
            assert_int_equal(ss, SEAL_AUTH_FAILED);
        } else {
            assert_int_equal(peer_frame_decode(&key_ring, payload, plen, body, sizeof body, &d, &ss),
                             PEER_PROTO_SEAL);
            assert_int_equal(ss, SEAL_NOT_ENCRYPTED);
        }
    }
    /* A sealed payload whose body is garbage: opens, then fails to decode. */
    static const uint8_t junk[] = {0xc1};
    size_t flen;
    assert_int_equal(peer_frame_seal(&key_ring, junk, 0, PEER_FRAME_MAX_DEFAULT, frame, sizeof frame, &flen),
                     PEER_PROTO_MALFORMED);
    assert_int_equal(peer_frame_seal(&key_ring, junk, 1, PEER_FRAME_MAX_DEFAULT, frame, sizeof frame, &flen),
                     PEER_PROTO_OK);
    peer_msg_t d;
    seal_status_t ss;
    assert_int_equal(peer_frame_decode(&key_ring, frame + 4, flen - 4, body, sizeof body, &d, &ss),
                     PEER_PROTO_MALFORMED);
    assert_int_equal(ss, SEAL_OK);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(peer_proto_status_name(PEER_PROTO_LIMIT), "limit");
    assert_string_equal(peer_proto_status_name(PEER_PROTO_SEAL), "seal");
    assert_string_equal(peer_msg_type_name(PEER_MSG_INVALIDATE_PATTERN), "invalidate_pattern");
    assert_string_equal(peer_msg_type_name((peer_msg_type_t)0), "unknown");
    assert_string_equal(peer_msg_type_name(PEER_MSG_SYNC), "sync");
    assert_string_equal(peer_msg_type_name((peer_msg_type_t)(PEER_MSG_MAX + 1)), "unknown");
    assert_string_equal(peer_status_name(PEER_STATUS_STALE), "stale");
    assert_string_equal(peer_status_name(1000), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_plain),
        cmocka_unit_test(test_write_rid),
        cmocka_unit_test(test_roundtrip_sealed),
        cmocka_unit_test(test_roundtrip_extremes),
        cmocka_unit_test(test_big_value),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bombs),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_forward_compat),
        cmocka_unit_test(test_invalidate_version),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_repair_limits),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_scan_limits),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
