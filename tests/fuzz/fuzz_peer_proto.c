/* libFuzzer target for the peer-channel codec: arbitrary bytes as a body and
 * as a stream (scanned, opened, decoded) must never crash; a body that
 * decodes must re-encode to one that decodes to the same message, and the
 * iterators must yield exactly count elements.
 *
 * With FUZZ_SEED_DIR set, writes seed inputs there first (run.sh does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/peer_proto.h"
#include "tests/fuzz/fuzz_seed.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ITEMS 4096 /* the fuzzer's inputs are <= 4096 bytes: >= 1 byte an element */

static peer_bytes_t keys[MAX_ITEMS];
static peer_keyinfo_t keyinfos[MAX_ITEMS];
static peer_entry_t entries[MAX_ITEMS];
static peer_offer_t offers[MAX_ITEMS];
static peer_answer_t answers[MAX_ITEMS];
static uint8_t out[1 << 16], body[1 << 16];
static seal_keyring_t plain_ring;

static int bytes_eq(peer_bytes_t a, peer_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Collects a decoded message's array into the static arrays, wiring them in
 * for encoding; returns the number of elements the iterator gave. */
static uint32_t collect(peer_msg_t *m)
{
    peer_iter_t it;
    uint32_t n = 0;
    peer_iter_init(&it, m);
    switch (m->type) {
    case PEER_MSG_INVALIDATE:
        while (n < MAX_ITEMS && peer_iter_key(&it, &keys[n])) n++;
        m->keys = keys;
        break;
    case PEER_MSG_KEYS_RESP:
        while (n < MAX_ITEMS && peer_iter_keyinfo(&it, &keyinfos[n])) n++;
        m->keyinfos = keyinfos;
        break;
    case PEER_MSG_HANDOFF:
        while (n < MAX_ITEMS && peer_iter_entry(&it, &entries[n])) n++;
        m->entries = entries;
        break;
    case PEER_MSG_REPAIR_OFFER:
        while (n < MAX_ITEMS && peer_iter_offer(&it, &offers[n])) n++;
        m->offers = offers;
        break;
    case PEER_MSG_REPAIR_OFFER_RESP:
        while (n < MAX_ITEMS && peer_iter_answer(&it, &answers[n])) n++;
        m->answers = answers;
        break;
    default:
        break;
    }
    return n;
}

static void same(const peer_msg_t *a, const peer_msg_t *b)
{
    if (a->type != b->type || a->id != b->id || a->flags != b->flags || a->status != b->status ||
        !bytes_eq(a->key, b->key) || !bytes_eq(a->value, b->value) || !bytes_eq(a->content_type, b->content_type) ||
        a->version != b->version || memcmp(a->origin, b->origin, PEER_ID_LEN) != 0 || a->ttl_ms != b->ttl_ms ||
        a->existed != b->existed || !bytes_eq(a->pattern, b->pattern) || a->dry_run != b->dry_run ||
        a->matched != b->matched || a->invalidated != b->invalidated || a->cursor != b->cursor ||
        a->limit != b->limit || a->accepted != b->accepted || a->code != b->code || !bytes_eq(a->message, b->message) ||
        !bytes_eq(a->name, b->name) || memcmp(a->run, b->run, PEER_ID_LEN) != 0 || a->done != b->done ||
        a->clock != b->clock || a->ring != b->ring || a->cut != b->cut || !bytes_eq(a->blob, b->blob) ||
        a->count != b->count)
        __builtin_trap();
    /* b was decoded from the re-encoding of a: compare the arrays too. */
    peer_iter_t it;
    peer_iter_init(&it, b);
    for (uint32_t i = 0; i < b->count; i++) {
        peer_bytes_t k;
        peer_keyinfo_t ki;
        peer_entry_t e;
        peer_offer_t o;
        peer_answer_t an;
        switch (b->type) {
        case PEER_MSG_INVALIDATE:
            if (!peer_iter_key(&it, &k) || !bytes_eq(k, a->keys[i])) __builtin_trap();
            break;
        case PEER_MSG_KEYS_RESP:
            if (!peer_iter_keyinfo(&it, &ki) || !bytes_eq(ki.key, a->keyinfos[i].key) ||
                ki.size != a->keyinfos[i].size || ki.ttl_ms != a->keyinfos[i].ttl_ms)
                __builtin_trap();
            break;
        case PEER_MSG_HANDOFF:
            if (!peer_iter_entry(&it, &e) || !bytes_eq(e.key, a->entries[i].key) ||
                !bytes_eq(e.value, a->entries[i].value) || !bytes_eq(e.content_type, a->entries[i].content_type) ||
                e.version != a->entries[i].version || e.expires_at_ms != a->entries[i].expires_at_ms)
                __builtin_trap();
            break;
        case PEER_MSG_REPAIR_OFFER:
            if (!peer_iter_offer(&it, &o) || o.hash != a->offers[i].hash || o.version != a->offers[i].version ||
                o.tomb != a->offers[i].tomb || !bytes_eq(o.key, a->offers[i].key))
                __builtin_trap();
            break;
        case PEER_MSG_REPAIR_OFFER_RESP:
            if (!peer_iter_answer(&it, &an) || an.index != a->answers[i].index || an.version != a->answers[i].version)
                __builtin_trap();
            break;
        default:
            __builtin_trap(); /* count without an array */
        }
    }
}

static void check_body(const uint8_t *data, size_t size)
{
    peer_msg_t m, again;
    if (peer_msg_decode(data, size, &m) != PEER_PROTO_OK) return;
    if (collect(&m) != m.count) __builtin_trap();
    size_t len, sz = peer_msg_size(&m);
    if (sz == 0 || sz > size) __builtin_trap(); /* the smallest encoding is never longer */
    if (peer_msg_encode(&m, out, sizeof out, &len) != PEER_PROTO_OK || len != sz) __builtin_trap();
    if (peer_msg_decode(out, len, &again) != PEER_PROTO_OK) __builtin_trap();
    same(&m, &again);
}

/* The bytes as a stream: scan frames with a small max, open them in CRC mode
 * and decode; every step must stay inside the input. */
static void check_stream(const uint8_t *data, size_t size)
{
    size_t off = 0;
    for (;;) {
        peer_span_t sp;
        peer_scan_t s = peer_frame_scan(data + off, size - off, 2048, &sp);
        if (s != PEER_SCAN_READY) {
            if (s == PEER_SCAN_NEED_MORE && sp.end <= size - off) __builtin_trap();
            return;
        }
        if (sp.end > size - off || sp.len > 2048 || sp.len < PEER_FRAME_MIN) __builtin_trap();
        peer_msg_t m;
        seal_status_t ss;
        peer_proto_status_t rc = peer_frame_decode(&plain_ring, data + off + sp.off, sp.len, body, sizeof body, &m, &ss);
        if ((rc == PEER_PROTO_SEAL) != (ss != SEAL_OK)) __builtin_trap();
        off += sp.end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_body(data, size);
    check_stream(data, size);
    return 0;
}

/* ---- seeds ------------------------------------------------------------- */

static peer_bytes_t S(const char *s)
{
    return (peer_bytes_t){(const uint8_t *)s, strlen(s)};
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    seal_keyring_init(&plain_ring);
    const char *dir = getenv("FUZZ_SEED_DIR");
    if (!dir) return 0;
    static const peer_bytes_t ks[] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"bb", 2}};
    static const peer_keyinfo_t kis[] = {{{(const uint8_t *)"a", 1}, 3, -1}, {{(const uint8_t *)"b", 1}, 300, 5}};
    static const peer_entry_t es[] = {{{(const uint8_t *)"a", 1}, {(const uint8_t *)"v", 1}, {(const uint8_t *)"t", 1}, 9, 0}};
    static const peer_offer_t os[] = {{1, 2, false, {(const uint8_t *)"k", 1}}, {3, 4, true, {NULL, 0}}};
    static const peer_answer_t as[] = {{0, 0}, {1, 9}};
    static const uint8_t blob[16] = {1, 2, 3};
    static uint8_t buf[4096], frame[4096], stream[1 << 15];
    size_t slen = 0;
    for (int t = 1; t <= PEER_MSG_MAX; t++) {
        peer_msg_t m;
        memset(&m, 0, sizeof m);
        m.type = (peer_msg_type_t)t;
        m.id = (uint64_t)t * 1000;
        m.flags = (uint32_t)t & 3;
        m.status = 1;
        m.key = S("user:1");
        m.value = S("hello");
        m.content_type = S("text/plain");
        m.version = 77;
        m.ttl_ms = 1000;
        m.pattern = S("user:*");
        m.message = S("oops");
        m.name = S("n1");
        m.clock = 5;
        m.cursor = 4;
        m.limit = 100;
        m.dry_run = true;
        if (t == PEER_MSG_INVALIDATE) m.count = 2, m.keys = ks;
        if (t == PEER_MSG_KEYS_RESP) m.count = 2, m.keyinfos = kis;
        if (t == PEER_MSG_HANDOFF) m.count = 1, m.entries = es;
        if (t == PEER_MSG_REPAIR_OFFER) m.count = 2, m.offers = os;
        if (t == PEER_MSG_REPAIR_OFFER_RESP) m.count = 2, m.answers = as;
        m.ring = 11;
        m.cut = 12;
        m.blob = (peer_bytes_t){blob, sizeof blob};
        size_t len, flen;
        char name[64];
        if (peer_msg_encode(&m, buf, sizeof buf, &len) != PEER_PROTO_OK) continue;
        snprintf(name, sizeof name, "body-type%d", t);
        fuzz_write_seed(dir, name, buf, len);
        if (peer_frame_seal(&plain_ring, buf, len, 2048, frame, sizeof frame, &flen) == PEER_PROTO_OK &&
            slen + flen <= sizeof stream) {
            memcpy(stream + slen, frame, flen);
            slen += flen;
            snprintf(name, sizeof name, "frame-type%d", t);
            fuzz_write_seed(dir, name, frame, flen);
        }
    }
    fuzz_write_seed(dir, "stream-all", stream, slen);
    return 0;
}
