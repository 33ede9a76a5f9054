#include "cluster/peer_proto.h"

#include <string.h>

#include <msgpack/pack.h>

#include "cluster/mpk.h"

typedef peer_proto_status_t st_t;

/* ---- encoding ---------------------------------------------------------- */

typedef mpk_sink_t sink_t;
#define sink_write mpk_sink_write

static bool key_ok(peer_bytes_t k)
{
    return k.len >= 1 && k.len <= LIMITS_KEY_MAX && k.p != NULL;
}

static bool bytes_ok(peer_bytes_t b)
{
    return b.len == 0 || b.p != NULL;
}

static bool text_ok(peer_bytes_t s, size_t max)
{
    return bytes_ok(s) && s.len <= max && (s.len == 0 || memchr(s.p, '\0', s.len) == NULL);
}

static bool offer_ok(const peer_offer_t *o)
{
    return o->key.len <= LIMITS_KEY_MAX && bytes_ok(o->key) && (o->tomb || o->key.len >= 1);
}

static bool entry_ok(const peer_entry_t *e)
{
    return key_ok(e->key) && bytes_ok(e->value) && text_ok(e->content_type, LIMITS_CTYPE_MAX);
}

/* Only what the decoder accepts may be encoded: a peer must never receive a
 * frame it has to close the connection over. */
static bool msg_ok(const peer_msg_t *m)
{
    switch (m->type) {
    case PEER_MSG_PING:
    case PEER_MSG_PONG:
    case PEER_MSG_PUT_RESP:
    case PEER_MSG_DELETE_RESP:
    case PEER_MSG_INVALIDATE_RESP:
    case PEER_MSG_HANDOFF_RESP:
    case PEER_MSG_SYNC_RESP:
        return true;
    case PEER_MSG_REPAIR_DIGEST:
        return m->name.len >= 1 && text_ok(m->name, PEER_NAME_MAX) && bytes_ok(m->blob) && m->blob.len <= PEER_BLOB_MAX;
    case PEER_MSG_REPAIR_DIGEST_RESP:
        return bytes_ok(m->blob) && m->blob.len <= PEER_BLOB_MAX;
    case PEER_MSG_REPAIR_OFFER:
        if (m->count > PEER_OFFER_MAX || (m->count && !m->offers)) return false;
        for (uint32_t i = 0; i < m->count; i++)
            if (!offer_ok(&m->offers[i])) return false;
        return true;
    case PEER_MSG_REPAIR_OFFER_RESP:
        return m->count <= PEER_OFFER_MAX && (m->count == 0 || m->answers);
    case PEER_MSG_SYNC:
        return m->name.len >= 1 && text_ok(m->name, PEER_NAME_MAX);
    case PEER_MSG_EVENT:
        return m->name.len >= 1 && text_ok(m->name, PEER_NAME_MAX) && m->message.len >= 1 &&
               text_ok(m->message, PEER_MESSAGE_MAX) && bytes_ok(m->blob) && m->blob.len <= PEER_BLOB_MAX;
    case PEER_MSG_GET:
    case PEER_MSG_DELETE:
        return key_ok(m->key);
    case PEER_MSG_GET_RESP:
        return bytes_ok(m->value) && text_ok(m->content_type, LIMITS_CTYPE_MAX);
    case PEER_MSG_PUT:
        return key_ok(m->key) && bytes_ok(m->value) && text_ok(m->content_type, LIMITS_CTYPE_MAX);
    case PEER_MSG_INVALIDATE:
        if (m->count > PEER_INVALIDATE_MAX || (m->count && !m->keys)) return false;
        for (uint32_t i = 0; i < m->count; i++)
            if (!key_ok(m->keys[i])) return false;
        return true;
    case PEER_MSG_INVALIDATE_PATTERN:
    case PEER_MSG_KEYS:
        return m->pattern.len >= 1 && m->pattern.len <= PEER_PATTERN_MAX && m->pattern.p;
    case PEER_MSG_KEYS_RESP:
        if (m->count && !m->keyinfos) return false;
        for (uint32_t i = 0; i < m->count; i++)
            if (!key_ok(m->keyinfos[i].key)) return false;
        return true;
    case PEER_MSG_HANDOFF:
        if (m->count && !m->entries) return false;
        for (uint32_t i = 0; i < m->count; i++)
            if (!entry_ok(&m->entries[i])) return false;
        return true;
    case PEER_MSG_ERROR:
        return text_ok(m->message, PEER_MESSAGE_MAX);
    }
    return false;
}

static int pack_bool(msgpack_packer *pk, bool b)
{
    return b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static int pack_bin(msgpack_packer *pk, peer_bytes_t b)
{
    return msgpack_pack_bin(pk, b.len) || msgpack_pack_bin_body(pk, b.p, b.len);
}

static int pack_str(msgpack_packer *pk, peer_bytes_t s)
{
    return msgpack_pack_str(pk, s.len) || msgpack_pack_str_body(pk, s.p, s.len);
}

static int pack_origin(msgpack_packer *pk, const uint8_t *id)
{
    return msgpack_pack_bin(pk, PEER_ID_LEN) || msgpack_pack_bin_body(pk, id, PEER_ID_LEN);
}

/* Fields after [type, id, flags], per type (index: type). */
static const uint8_t msg_fields[] = {
    [PEER_MSG_PING] = 0,          [PEER_MSG_PONG] = 0,          [PEER_MSG_GET] = 1,
    [PEER_MSG_GET_RESP] = 6,      [PEER_MSG_PUT] = 6,           [PEER_MSG_PUT_RESP] = 2,
    [PEER_MSG_DELETE] = 2,        [PEER_MSG_DELETE_RESP] = 2,   [PEER_MSG_INVALIDATE] = 1,
    [PEER_MSG_INVALIDATE_PATTERN] = 2, [PEER_MSG_INVALIDATE_RESP] = 2, [PEER_MSG_KEYS] = 3,
    [PEER_MSG_KEYS_RESP] = 2,     [PEER_MSG_HANDOFF] = 1,       [PEER_MSG_HANDOFF_RESP] = 1,
    [PEER_MSG_ERROR] = 2,         [PEER_MSG_SYNC] = 2,          [PEER_MSG_SYNC_RESP] = 2,
    [PEER_MSG_REPAIR_DIGEST] = 5, [PEER_MSG_REPAIR_DIGEST_RESP] = 2, [PEER_MSG_REPAIR_OFFER] = 1,
    [PEER_MSG_REPAIR_OFFER_RESP] = 1, [PEER_MSG_EVENT] = 3,
};

/* Fields appended to a type's body after it was first defined: a decoder
 * takes the body with or without them (an older peer sends none), leaving
 * them zero. INVALIDATE and INVALIDATE_PATTERN: version; PUT and DELETE:
 * rid. */
static bool msg_has_version(const peer_msg_t *m)
{
    return (m->type == PEER_MSG_INVALIDATE || m->type == PEER_MSG_INVALIDATE_PATTERN) && m->version != 0;
}

static bool msg_has_rid(const peer_msg_t *m)
{
    if (m->type != PEER_MSG_PUT && m->type != PEER_MSG_DELETE) return false;
    for (int i = 0; i < PEER_ID_LEN; i++)
        if (m->rid[i]) return true;
    return false;
}

static int pack_msg(msgpack_packer *pk, const peer_msg_t *m)
{
    /* Version 0 (unversioned) is sent as the old body: it decodes the same,
     * and no encoding is longer than the body it was decoded from. */
    unsigned appended = msg_has_version(m) || msg_has_rid(m) ? 1u : 0u;
    if (msgpack_pack_array(pk, 3u + msg_fields[m->type] + appended) ||
        msgpack_pack_unsigned_int(pk, (unsigned)m->type) ||
        msgpack_pack_uint64(pk, m->id) || msgpack_pack_uint32(pk, m->flags))
        return -1;
    switch (m->type) {
    case PEER_MSG_PING:
    case PEER_MSG_PONG:
        return 0;
    case PEER_MSG_GET:
        return pack_bin(pk, m->key);
    case PEER_MSG_GET_RESP:
        return msgpack_pack_uint32(pk, m->status) || pack_bin(pk, m->value) || pack_str(pk, m->content_type) ||
               msgpack_pack_uint64(pk, m->version) || pack_origin(pk, m->origin) ||
               msgpack_pack_uint64(pk, m->ttl_ms);
    case PEER_MSG_PUT:
        return pack_bin(pk, m->key) || pack_bin(pk, m->value) || pack_str(pk, m->content_type) ||
               msgpack_pack_uint64(pk, m->ttl_ms) || msgpack_pack_uint64(pk, m->version) ||
               pack_origin(pk, m->origin) || (appended && pack_origin(pk, m->rid));
    case PEER_MSG_PUT_RESP:
        return msgpack_pack_uint32(pk, m->status) || msgpack_pack_uint64(pk, m->version);
    case PEER_MSG_DELETE:
        return pack_bin(pk, m->key) || msgpack_pack_uint64(pk, m->version) || (appended && pack_origin(pk, m->rid));
    case PEER_MSG_DELETE_RESP:
        return msgpack_pack_uint32(pk, m->status) || pack_bool(pk, m->existed);
    case PEER_MSG_INVALIDATE:
        if (msgpack_pack_array(pk, m->count)) return -1;
        for (uint32_t i = 0; i < m->count; i++)
            if (pack_bin(pk, m->keys[i])) return -1;
        return appended ? msgpack_pack_uint64(pk, m->version) : 0;
    case PEER_MSG_INVALIDATE_PATTERN:
        return pack_bin(pk, m->pattern) || pack_bool(pk, m->dry_run) ||
               (appended && msgpack_pack_uint64(pk, m->version));
    case PEER_MSG_INVALIDATE_RESP:
        return msgpack_pack_uint64(pk, m->matched) || msgpack_pack_uint64(pk, m->invalidated);
    case PEER_MSG_KEYS:
        return pack_bin(pk, m->pattern) || msgpack_pack_uint64(pk, m->cursor) || msgpack_pack_uint32(pk, m->limit);
    case PEER_MSG_KEYS_RESP:
        if (msgpack_pack_array(pk, m->count)) return -1;
        for (uint32_t i = 0; i < m->count; i++) {
            const peer_keyinfo_t *k = &m->keyinfos[i];
            if (msgpack_pack_array(pk, 3) || pack_bin(pk, k->key) || msgpack_pack_uint64(pk, k->size) ||
                msgpack_pack_int64(pk, k->ttl_ms))
                return -1;
        }
        return msgpack_pack_uint64(pk, m->cursor);
    case PEER_MSG_HANDOFF:
        if (msgpack_pack_array(pk, m->count)) return -1;
        for (uint32_t i = 0; i < m->count; i++) {
            const peer_entry_t *e = &m->entries[i];
            if (msgpack_pack_array(pk, 5) || pack_bin(pk, e->key) || pack_bin(pk, e->value) ||
                pack_str(pk, e->content_type) || msgpack_pack_uint64(pk, e->version) ||
                msgpack_pack_uint64(pk, e->expires_at_ms))
                return -1;
        }
        return 0;
    case PEER_MSG_HANDOFF_RESP:
        return msgpack_pack_uint32(pk, m->accepted);
    case PEER_MSG_ERROR:
        return msgpack_pack_uint32(pk, m->code) || pack_str(pk, m->message);
    case PEER_MSG_SYNC:
        return pack_str(pk, m->name) || pack_origin(pk, m->run);
    case PEER_MSG_SYNC_RESP:
        return pack_bool(pk, m->done) || msgpack_pack_uint64(pk, m->clock);
    case PEER_MSG_REPAIR_DIGEST:
        return pack_str(pk, m->name) || pack_origin(pk, m->run) || msgpack_pack_uint64(pk, m->ring) ||
               msgpack_pack_uint64(pk, m->cut) || pack_bin(pk, m->blob);
    case PEER_MSG_REPAIR_DIGEST_RESP:
        return msgpack_pack_uint32(pk, m->status) || pack_bin(pk, m->blob);
    case PEER_MSG_REPAIR_OFFER:
        if (msgpack_pack_array(pk, m->count)) return -1;
        for (uint32_t i = 0; i < m->count; i++) {
            const peer_offer_t *o = &m->offers[i];
            if (msgpack_pack_array(pk, 4) || msgpack_pack_uint64(pk, o->hash) ||
                msgpack_pack_uint64(pk, o->version) || pack_bool(pk, o->tomb) || pack_bin(pk, o->key))
                return -1;
        }
        return 0;
    case PEER_MSG_REPAIR_OFFER_RESP:
        if (msgpack_pack_array(pk, m->count)) return -1;
        for (uint32_t i = 0; i < m->count; i++)
            if (msgpack_pack_array(pk, 2) || msgpack_pack_uint32(pk, m->answers[i].index) ||
                msgpack_pack_uint64(pk, m->answers[i].version))
                return -1;
        return 0;
    case PEER_MSG_EVENT:
        return pack_str(pk, m->name) || pack_str(pk, m->message) || pack_bin(pk, m->blob);
    }
    return -1;
}

size_t peer_msg_size(const peer_msg_t *m)
{
    if (!msg_ok(m)) return 0;
    sink_t s = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, sink_write);
    return pack_msg(&pk, m) ? 0 : s.len;
}

peer_proto_status_t peer_msg_encode(const peer_msg_t *m, uint8_t *buf, size_t cap, size_t *len)
{
    if (!msg_ok(m)) return PEER_PROTO_LIMIT;
    sink_t s = {.buf = buf, .cap = buf ? cap : 0};
    if (!buf) s.failed = true; /* nowhere to write: count as not fitting */
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, sink_write);
    if (pack_msg(&pk, m)) return PEER_PROTO_TOO_BIG;
    if (len) *len = s.len;
    return PEER_PROTO_OK;
}

/* ---- decoding ---------------------------------------------------------- */

/* The shared bounded reader (cluster/mpk.h); statuses convert by a cast. */
typedef mpk_reader_t cur_t;
#define cur_left mpk_left

static st_t rd_array(cur_t *c, size_t *n)
{
    return (st_t)mpk_array(c, n);
}

static st_t rd_int_raw(cur_t *c, bool *neg, uint64_t *v)
{
    return (st_t)mpk_int(c, neg, v);
}

static st_t rd_uint(cur_t *c, uint64_t max, uint64_t *v)
{
    return (st_t)mpk_uint(c, max, v);
}

static st_t rd_u32(cur_t *c, uint32_t *v)
{
    st_t rc;
    uint64_t x;
    if ((rc = rd_uint(c, UINT32_MAX, &x)) != PEER_PROTO_OK) return rc;
    *v = (uint32_t)x;
    return PEER_PROTO_OK;
}

static st_t rd_i64(cur_t *c, int64_t *v)
{
    st_t rc;
    bool neg;
    uint64_t x;
    if ((rc = rd_int_raw(c, &neg, &x)) != PEER_PROTO_OK) return rc;
    if (!neg && x > (uint64_t)INT64_MAX) return PEER_PROTO_MALFORMED;
    *v = (int64_t)x; /* two's complement: negative values were sign-extended */
    return PEER_PROTO_OK;
}

static st_t rd_bool(cur_t *c, bool *v)
{
    return (st_t)mpk_bool(c, v);
}

static st_t rd_bin(cur_t *c, peer_bytes_t *out)
{
    return (st_t)mpk_bin(c, &out->p, &out->len);
}

/* A bin of min..max bytes (keys, patterns). */
static st_t rd_bin_len(cur_t *c, size_t min, size_t max, peer_bytes_t *out)
{
    st_t rc;
    if ((rc = rd_bin(c, out)) != PEER_PROTO_OK) return rc;
    return out->len < min || out->len > max ? PEER_PROTO_LIMIT : PEER_PROTO_OK;
}

static st_t rd_key(cur_t *c, peer_bytes_t *out)
{
    return rd_bin_len(c, 1, LIMITS_KEY_MAX, out);
}

/* A str of at most max bytes without an embedded NUL (it ends up in headers
 * and logs as a C string). */
static st_t rd_text(cur_t *c, size_t max, peer_bytes_t *out)
{
    st_t rc;
    if ((rc = (st_t)mpk_str(c, &out->p, &out->len)) != PEER_PROTO_OK) return rc;
    if (out->len > max) return PEER_PROTO_LIMIT;
    if (out->len && memchr(out->p, '\0', out->len)) return PEER_PROTO_MALFORMED;
    return PEER_PROTO_OK;
}

static st_t rd_origin(cur_t *c, uint8_t *id)
{
    st_t rc;
    peer_bytes_t b;
    if ((rc = rd_bin(c, &b)) != PEER_PROTO_OK) return rc;
    if (b.len != PEER_ID_LEN) return PEER_PROTO_MALFORMED;
    memcpy(id, b.p, PEER_ID_LEN);
    return PEER_PROTO_OK;
}

static st_t skip_values(cur_t *c, size_t pending)
{
    return (st_t)mpk_skip(c, pending);
}

/* Array elements: [key, size, ttl_ms] and [key, value, content_type, version,
 * expires_at_ms], extra trailing fields skipped. Used both to validate and
 * by the iterators. */
static st_t rd_keyinfo(cur_t *c, peer_keyinfo_t *k)
{
    st_t rc;
    size_t n;
    if ((rc = rd_array(c, &n)) != PEER_PROTO_OK) return rc;
    if (n < 3) return PEER_PROTO_MALFORMED;
    if ((rc = rd_key(c, &k->key)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_uint(c, UINT64_MAX, &k->size)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_i64(c, &k->ttl_ms)) != PEER_PROTO_OK) return rc;
    return skip_values(c, n - 3);
}

static st_t rd_entry(cur_t *c, peer_entry_t *e)
{
    st_t rc;
    size_t n;
    if ((rc = rd_array(c, &n)) != PEER_PROTO_OK) return rc;
    if (n < 5) return PEER_PROTO_MALFORMED;
    if ((rc = rd_key(c, &e->key)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_bin(c, &e->value)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_text(c, LIMITS_CTYPE_MAX, &e->content_type)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_uint(c, UINT64_MAX, &e->version)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_uint(c, UINT64_MAX, &e->expires_at_ms)) != PEER_PROTO_OK) return rc;
    return skip_values(c, n - 5);
}

static st_t rd_offer(cur_t *c, peer_offer_t *o)
{
    st_t rc;
    size_t n;
    if ((rc = rd_array(c, &n)) != PEER_PROTO_OK) return rc;
    if (n < 4) return PEER_PROTO_MALFORMED;
    if ((rc = rd_uint(c, UINT64_MAX, &o->hash)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_uint(c, UINT64_MAX, &o->version)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_bool(c, &o->tomb)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_bin_len(c, o->tomb ? 0 : 1, LIMITS_KEY_MAX, &o->key)) != PEER_PROTO_OK) return rc;
    return skip_values(c, n - 4);
}

static st_t rd_answer(cur_t *c, peer_answer_t *a)
{
    st_t rc;
    size_t n;
    if ((rc = rd_array(c, &n)) != PEER_PROTO_OK) return rc;
    if (n < 2) return PEER_PROTO_MALFORMED;
    if ((rc = rd_u32(c, &a->index)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_uint(c, UINT64_MAX, &a->version)) != PEER_PROTO_OK) return rc;
    return skip_values(c, n - 2);
}

static st_t rd_elem(cur_t *c, peer_msg_type_t t)
{
    peer_bytes_t k;
    peer_keyinfo_t ki;
    peer_entry_t e;
    peer_offer_t o;
    peer_answer_t a;
    switch (t) {
    case PEER_MSG_INVALIDATE:
        return rd_key(c, &k);
    case PEER_MSG_KEYS_RESP:
        return rd_keyinfo(c, &ki);
    case PEER_MSG_HANDOFF:
        return rd_entry(c, &e);
    case PEER_MSG_REPAIR_OFFER:
        return rd_offer(c, &o);
    case PEER_MSG_REPAIR_OFFER_RESP:
        return rd_answer(c, &a);
    default:
        return PEER_PROTO_MALFORMED;
    }
}

/* An array of elements, all validated; m->items gets their bytes. */
static st_t rd_items(cur_t *c, peer_msg_t *m, size_t max)
{
    st_t rc;
    size_t n;
    if ((rc = rd_array(c, &n)) != PEER_PROTO_OK) return rc;
    if (n > max) return PEER_PROTO_LIMIT;
    size_t start = c->pos;
    for (size_t i = 0; i < n; i++)
        if ((rc = rd_elem(c, m->type)) != PEER_PROTO_OK) return rc;
    m->count = (uint32_t)n;
    m->items.p = c->p + start;
    m->items.len = c->pos - start;
    return PEER_PROTO_OK;
}

static st_t rd_fields(cur_t *c, peer_msg_t *m)
{
    st_t rc;
    switch (m->type) {
    case PEER_MSG_PING:
    case PEER_MSG_PONG:
        return PEER_PROTO_OK;
    case PEER_MSG_GET:
        return rd_key(c, &m->key);
    case PEER_MSG_GET_RESP:
        if ((rc = rd_u32(c, &m->status)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_bin(c, &m->value)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_text(c, LIMITS_CTYPE_MAX, &m->content_type)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_uint(c, UINT64_MAX, &m->version)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_origin(c, m->origin)) != PEER_PROTO_OK) return rc;
        return rd_uint(c, UINT64_MAX, &m->ttl_ms);
    case PEER_MSG_PUT:
        if ((rc = rd_key(c, &m->key)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_bin(c, &m->value)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_text(c, LIMITS_CTYPE_MAX, &m->content_type)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_uint(c, UINT64_MAX, &m->ttl_ms)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_uint(c, UINT64_MAX, &m->version)) != PEER_PROTO_OK) return rc;
        return rd_origin(c, m->origin);
    case PEER_MSG_PUT_RESP:
        if ((rc = rd_u32(c, &m->status)) != PEER_PROTO_OK) return rc;
        return rd_uint(c, UINT64_MAX, &m->version);
    case PEER_MSG_DELETE:
        if ((rc = rd_key(c, &m->key)) != PEER_PROTO_OK) return rc;
        return rd_uint(c, UINT64_MAX, &m->version);
    case PEER_MSG_DELETE_RESP:
        if ((rc = rd_u32(c, &m->status)) != PEER_PROTO_OK) return rc;
        return rd_bool(c, &m->existed);
    case PEER_MSG_INVALIDATE:
        return rd_items(c, m, PEER_INVALIDATE_MAX);
    case PEER_MSG_INVALIDATE_PATTERN:
        if ((rc = rd_bin_len(c, 1, PEER_PATTERN_MAX, &m->pattern)) != PEER_PROTO_OK) return rc;
        return rd_bool(c, &m->dry_run);
    case PEER_MSG_INVALIDATE_RESP:
        if ((rc = rd_uint(c, UINT64_MAX, &m->matched)) != PEER_PROTO_OK) return rc;
        return rd_uint(c, UINT64_MAX, &m->invalidated);
    case PEER_MSG_KEYS:
        if ((rc = rd_bin_len(c, 1, PEER_PATTERN_MAX, &m->pattern)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_uint(c, UINT64_MAX, &m->cursor)) != PEER_PROTO_OK) return rc;
        return rd_u32(c, &m->limit);
    case PEER_MSG_KEYS_RESP:
        if ((rc = rd_items(c, m, UINT32_MAX)) != PEER_PROTO_OK) return rc;
        return rd_uint(c, UINT64_MAX, &m->cursor);
    case PEER_MSG_HANDOFF:
        return rd_items(c, m, UINT32_MAX);
    case PEER_MSG_HANDOFF_RESP:
        return rd_u32(c, &m->accepted);
    case PEER_MSG_ERROR:
        if ((rc = rd_u32(c, &m->code)) != PEER_PROTO_OK) return rc;
        return rd_text(c, PEER_MESSAGE_MAX, &m->message);
    case PEER_MSG_SYNC:
        if ((rc = rd_text(c, PEER_NAME_MAX, &m->name)) != PEER_PROTO_OK) return rc;
        if (m->name.len == 0) return PEER_PROTO_LIMIT;
        return rd_origin(c, m->run);
    case PEER_MSG_SYNC_RESP:
        if ((rc = rd_bool(c, &m->done)) != PEER_PROTO_OK) return rc;
        return rd_uint(c, UINT64_MAX, &m->clock);
    case PEER_MSG_REPAIR_DIGEST:
        if ((rc = rd_text(c, PEER_NAME_MAX, &m->name)) != PEER_PROTO_OK) return rc;
        if (m->name.len == 0) return PEER_PROTO_LIMIT;
        if ((rc = rd_origin(c, m->run)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_uint(c, UINT64_MAX, &m->ring)) != PEER_PROTO_OK) return rc;
        if ((rc = rd_uint(c, UINT64_MAX, &m->cut)) != PEER_PROTO_OK) return rc;
        return rd_bin_len(c, 0, PEER_BLOB_MAX, &m->blob);
    case PEER_MSG_REPAIR_DIGEST_RESP:
        if ((rc = rd_u32(c, &m->status)) != PEER_PROTO_OK) return rc;
        return rd_bin_len(c, 0, PEER_BLOB_MAX, &m->blob);
    case PEER_MSG_REPAIR_OFFER:
    case PEER_MSG_REPAIR_OFFER_RESP:
        return rd_items(c, m, PEER_OFFER_MAX);
    case PEER_MSG_EVENT:
        if ((rc = rd_text(c, PEER_NAME_MAX, &m->name)) != PEER_PROTO_OK) return rc;
        if (m->name.len == 0) return PEER_PROTO_LIMIT;
        if ((rc = rd_text(c, PEER_MESSAGE_MAX, &m->message)) != PEER_PROTO_OK) return rc;
        if (m->message.len == 0) return PEER_PROTO_LIMIT;
        return rd_bin_len(c, 0, PEER_BLOB_MAX, &m->blob);
    }
    return PEER_PROTO_MALFORMED;
}

peer_proto_status_t peer_msg_decode(const uint8_t *buf, size_t len, peer_msg_t *m)
{
    st_t rc;
    cur_t c = {.p = buf, .len = buf ? len : 0};
    size_t n;
    uint64_t t;
    memset(m, 0, sizeof *m);
    if ((rc = rd_array(&c, &n)) != PEER_PROTO_OK) return rc;
    if (n < 3) return PEER_PROTO_MALFORMED;
    if ((rc = rd_uint(&c, UINT64_MAX, &t)) != PEER_PROTO_OK) return rc;
    if (t == 0) return PEER_PROTO_MALFORMED;
    if ((rc = rd_uint(&c, UINT64_MAX, &m->id)) != PEER_PROTO_OK) return rc;
    if ((rc = rd_u32(&c, &m->flags)) != PEER_PROTO_OK) return rc;
    if (t > PEER_MSG_MAX) {
        /* Still well-formed to the end, or it is garbage, not a newer peer. */
        if ((rc = skip_values(&c, n - 3)) != PEER_PROTO_OK) return rc;
        if (c.pos != c.len) return PEER_PROTO_MALFORMED;
        m->type = (peer_msg_type_t)(t > INT32_MAX ? INT32_MAX : t);
        return PEER_PROTO_UNKNOWN_TYPE;
    }
    m->type = (peer_msg_type_t)t;
    if (n < 3u + msg_fields[t]) return PEER_PROTO_MALFORMED;
    if ((rc = rd_fields(&c, m)) != PEER_PROTO_OK) return rc;
    size_t read = 3u + msg_fields[t];
    if ((t == PEER_MSG_INVALIDATE || t == PEER_MSG_INVALIDATE_PATTERN) && n > read) {
        if ((rc = rd_uint(&c, UINT64_MAX, &m->version)) != PEER_PROTO_OK) return rc;
        read++;
    }
    if ((t == PEER_MSG_PUT || t == PEER_MSG_DELETE) && n > read) {
        if ((rc = rd_origin(&c, m->rid)) != PEER_PROTO_OK) return rc;
        read++;
    }
    if ((rc = skip_values(&c, n - read)) != PEER_PROTO_OK) return rc;
    if (c.pos != c.len) return PEER_PROTO_MALFORMED;
    return PEER_PROTO_OK;
}

/* ---- iterators --------------------------------------------------------- */

void peer_iter_init(peer_iter_t *it, const peer_msg_t *m)
{
    it->p = m->items.p;
    it->len = m->items.p ? m->items.len : 0;
    it->pos = 0;
    it->left = m->items.p ? m->count : 0;
    it->type = m->type;
}

/* The elements were validated by peer_msg_decode; the checks here only keep
 * a misused iterator (wrong type, hand-filled message) from reading out of
 * bounds. */
static bool iter_step(peer_iter_t *it, peer_msg_type_t want, void *out)
{
    if (it->type != want || it->left == 0) return false;
    cur_t c = {.p = it->p, .len = it->len, .pos = it->pos};
    st_t rc;
    switch (want) {
    case PEER_MSG_INVALIDATE:
        rc = rd_key(&c, out);
        break;
    case PEER_MSG_KEYS_RESP:
        rc = rd_keyinfo(&c, out);
        break;
    case PEER_MSG_REPAIR_OFFER:
        rc = rd_offer(&c, out);
        break;
    case PEER_MSG_REPAIR_OFFER_RESP:
        rc = rd_answer(&c, out);
        break;
    default:
        rc = rd_entry(&c, out);
        break;
    }
    if (rc != PEER_PROTO_OK) {
        it->left = 0;
        return false;
    }
    it->pos = c.pos;
    it->left--;
    return true;
}

bool peer_iter_key(peer_iter_t *it, peer_bytes_t *key)
{
    return iter_step(it, PEER_MSG_INVALIDATE, key);
}

bool peer_iter_keyinfo(peer_iter_t *it, peer_keyinfo_t *ki)
{
    return iter_step(it, PEER_MSG_KEYS_RESP, ki);
}

bool peer_iter_entry(peer_iter_t *it, peer_entry_t *e)
{
    return iter_step(it, PEER_MSG_HANDOFF, e);
}

bool peer_iter_offer(peer_iter_t *it, peer_offer_t *o)
{
    return iter_step(it, PEER_MSG_REPAIR_OFFER, o);
}

bool peer_iter_answer(peer_iter_t *it, peer_answer_t *a)
{
    return iter_step(it, PEER_MSG_REPAIR_OFFER_RESP, a);
}

/* ---- frames ------------------------------------------------------------ */

void peer_frame_put_len(uint8_t *out, size_t len)
{
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
}

size_t peer_frame_len(const uint8_t *in)
{
    return (size_t)in[0] << 24 | (size_t)in[1] << 16 | (size_t)in[2] << 8 | in[3];
}

peer_scan_t peer_frame_scan(const uint8_t *buf, size_t len, size_t max_frame, peer_span_t *span)
{
    span->off = PEER_LEN_PREFIX;
    span->len = 0;
    if (!buf || len < PEER_LEN_PREFIX) {
        span->end = PEER_LEN_PREFIX;
        return PEER_SCAN_NEED_MORE;
    }
    size_t n = peer_frame_len(buf);
    span->len = n;
    span->end = PEER_LEN_PREFIX + n;
    if (n > max_frame) return PEER_SCAN_TOO_BIG;
    if (n < PEER_FRAME_MIN) return PEER_SCAN_TOO_SMALL;
    return len >= span->end ? PEER_SCAN_READY : PEER_SCAN_NEED_MORE;
}

peer_proto_status_t peer_frame_seal(const seal_keyring_t *r, const uint8_t *body, size_t body_len, size_t max_frame,
                                    uint8_t *out, size_t cap, size_t *out_len)
{
    size_t over = seal_overhead(r);
    if (body_len == 0) return PEER_PROTO_MALFORMED; /* no body is a valid message */
    if (body_len > UINT32_MAX - over || body_len + over > max_frame) return PEER_PROTO_TOO_BIG;
    if (!out || cap < PEER_LEN_PREFIX) return PEER_PROTO_TOO_BIG;
    size_t n;
    if (seal_seal(r, body, body_len, out + PEER_LEN_PREFIX, cap - PEER_LEN_PREFIX, &n) != SEAL_OK)
        return PEER_PROTO_TOO_BIG;
    peer_frame_put_len(out, n);
    if (out_len) *out_len = PEER_LEN_PREFIX + n;
    return PEER_PROTO_OK;
}

peer_proto_status_t peer_frame_encode(const seal_keyring_t *r, const peer_msg_t *m, size_t max_frame,
                                      uint8_t *scratch, size_t scratch_cap, uint8_t *out, size_t cap,
                                      size_t *out_len)
{
    st_t rc;
    size_t body_len;
    if ((rc = peer_msg_encode(m, scratch, scratch_cap, &body_len)) != PEER_PROTO_OK) return rc;
    return peer_frame_seal(r, scratch, body_len, max_frame, out, cap, out_len);
}

peer_proto_status_t peer_frame_decode(const seal_keyring_t *r, const uint8_t *payload, size_t len, uint8_t *body,
                                      size_t cap, peer_msg_t *m, seal_status_t *seal)
{
    size_t body_len;
    seal_status_t s = seal_open(r, payload, len, body, cap, &body_len);
    if (seal) *seal = s;
    if (s != SEAL_OK) {
        memset(m, 0, sizeof *m);
        return PEER_PROTO_SEAL;
    }
    return peer_msg_decode(body, body_len, m);
}

/* ---- names ------------------------------------------------------------- */

const char *peer_proto_status_name(peer_proto_status_t s)
{
    switch (s) {
    case PEER_PROTO_OK:
        return "ok";
    case PEER_PROTO_TRUNCATED:
        return "truncated";
    case PEER_PROTO_MALFORMED:
        return "malformed";
    case PEER_PROTO_LIMIT:
        return "limit";
    case PEER_PROTO_UNKNOWN_TYPE:
        return "unknown_type";
    case PEER_PROTO_TOO_BIG:
        return "too_big";
    case PEER_PROTO_SEAL:
        return "seal";
    }
    return "unknown";
}

const char *peer_scan_name(peer_scan_t s)
{
    switch (s) {
    case PEER_SCAN_READY:
        return "ready";
    case PEER_SCAN_NEED_MORE:
        return "need_more";
    case PEER_SCAN_TOO_BIG:
        return "frame_too_big";
    case PEER_SCAN_TOO_SMALL:
        return "frame_too_small";
    }
    return "unknown";
}

bool peer_msg_is_request(peer_msg_type_t t)
{
    switch (t) {
    case PEER_MSG_PING: case PEER_MSG_GET: case PEER_MSG_PUT: case PEER_MSG_DELETE: case PEER_MSG_INVALIDATE:
    case PEER_MSG_INVALIDATE_PATTERN: case PEER_MSG_KEYS: case PEER_MSG_HANDOFF: case PEER_MSG_SYNC:
    case PEER_MSG_REPAIR_DIGEST: case PEER_MSG_REPAIR_OFFER: case PEER_MSG_EVENT:
        return true;
    default:
        return false;
    }
}

const char *peer_msg_type_name(peer_msg_type_t t)
{
    static const char *const names[] = {
        [PEER_MSG_PING] = "ping",
        [PEER_MSG_PONG] = "pong",
        [PEER_MSG_GET] = "get",
        [PEER_MSG_GET_RESP] = "get_resp",
        [PEER_MSG_PUT] = "put",
        [PEER_MSG_PUT_RESP] = "put_resp",
        [PEER_MSG_DELETE] = "delete",
        [PEER_MSG_DELETE_RESP] = "delete_resp",
        [PEER_MSG_INVALIDATE] = "invalidate",
        [PEER_MSG_INVALIDATE_PATTERN] = "invalidate_pattern",
        [PEER_MSG_INVALIDATE_RESP] = "invalidate_resp",
        [PEER_MSG_KEYS] = "keys",
        [PEER_MSG_KEYS_RESP] = "keys_resp",
        [PEER_MSG_HANDOFF] = "handoff",
        [PEER_MSG_HANDOFF_RESP] = "handoff_resp",
        [PEER_MSG_ERROR] = "error",
        [PEER_MSG_SYNC] = "sync",
        [PEER_MSG_SYNC_RESP] = "sync_resp",
        [PEER_MSG_REPAIR_DIGEST] = "repair_digest",
        [PEER_MSG_REPAIR_DIGEST_RESP] = "repair_digest_resp",
        [PEER_MSG_REPAIR_OFFER] = "repair_offer",
        [PEER_MSG_REPAIR_OFFER_RESP] = "repair_offer_resp",
        [PEER_MSG_EVENT] = "event",
    };
    if ((unsigned)t >= 1 && (unsigned)t <= PEER_MSG_MAX) return names[t];
    return "unknown";
}

const char *peer_status_name(uint32_t status)
{
    static const char *const names[] = {
        [PEER_STATUS_OK] = "ok",
        [PEER_STATUS_NOT_FOUND] = "not_found",
        [PEER_STATUS_STALE] = "stale",
        [PEER_STATUS_TOO_LARGE] = "too_large",
        [PEER_STATUS_UNAVAILABLE] = "unavailable",
        [PEER_STATUS_BAD_REQUEST] = "bad_request",
        [PEER_STATUS_NOT_OWNER] = "not_owner",
        [PEER_STATUS_TIMEOUT] = "timeout",
        [PEER_STATUS_INTERNAL] = "internal",
        [PEER_STATUS_UNSUPPORTED] = "unsupported",
    };
    if (status < sizeof names / sizeof names[0]) return names[status];
    return "unknown";
}
