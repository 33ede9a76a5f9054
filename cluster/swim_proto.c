#include "cluster/swim_proto.h"

#include <stdlib.h>
#include <string.h>

#include <msgpack/pack.h>

#include "cluster/mpk.h"

/* ---- encoding ---------------------------------------------------------- */

typedef mpk_sink_t sink_t;
#define sink_write mpk_sink_write
#define sink_reserve mpk_sink_reserve

static bool str_fits(const char *s, size_t field)
{
    return memchr(s, '\0', field) != NULL;
}

static size_t addr_ip_len(const swim_addr_t *a)
{
    return a->family == 4 ? 4 : a->family == 6 ? 16 : 0;
}

static bool addr_ok(const swim_addr_t *a)
{
    return a->family == 0 || a->family == 4 || a->family == 6;
}

static bool member_ok(const swim_member_info_t *m)
{
    return str_fits(m->name, sizeof m->name) && str_fits(m->zone, sizeof m->zone) &&
           str_fits(m->version, sizeof m->version) && addr_ok(&m->gossip) && addr_ok(&m->peer) &&
           addr_ok(&m->http);
}

/* Only what the decoder accepts may be encoded, so a peer never receives a
 * datagram that it must reject as a whole. */
static bool msg_ok(const swim_msg_t *m)
{
    switch (m->type) {
    case SWIM_MSG_PING:
    case SWIM_MSG_ACK:
    case SWIM_MSG_NACK:
    case SWIM_MSG_SUSPECT:
    case SWIM_MSG_DEAD:
        return true;
    case SWIM_MSG_PING_REQ:
        return addr_ok(&m->target_addr);
    case SWIM_MSG_ALIVE:
        return member_ok(&m->member);
    }
    return false;
}

static int pack_bool(msgpack_packer *pk, bool b)
{
    return b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static int pack_id(msgpack_packer *pk, const swim_id_t *id)
{
    return msgpack_pack_bin(pk, SWIM_ID_LEN) || msgpack_pack_bin_body(pk, id->b, SWIM_ID_LEN);
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pack_addr(msgpack_packer *pk, const swim_addr_t *a)
{
    size_t n = addr_ip_len(a);
    /* An unset address carries port 0 whatever the struct holds: the decoder
     * insists on it, which keeps the encoding canonical. */
    return msgpack_pack_array(pk, 2) || msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, a->ip, n) ||
           msgpack_pack_uint16(pk, n ? a->port : 0);
}

static int pack_member(msgpack_packer *pk, const swim_member_info_t *m)
{
    return msgpack_pack_array(pk, 7) || pack_id(pk, &m->id) || pack_str(pk, m->name) || pack_addr(pk, &m->gossip) ||
           pack_addr(pk, &m->peer) || pack_addr(pk, &m->http) || pack_str(pk, m->zone) ||
           pack_str(pk, m->version);
}

static int pack_msg(msgpack_packer *pk, const swim_msg_t *m)
{
    unsigned t = (unsigned)m->type;
    switch (m->type) {
    case SWIM_MSG_PING:
        return msgpack_pack_array(pk, 4) || msgpack_pack_unsigned_int(pk, t) || msgpack_pack_uint32(pk, m->seq) ||
               pack_id(pk, &m->target) || pack_id(pk, &m->source);
    case SWIM_MSG_PING_REQ:
        return msgpack_pack_array(pk, 6) || msgpack_pack_unsigned_int(pk, t) || msgpack_pack_uint32(pk, m->seq) ||
               pack_id(pk, &m->target) || pack_addr(pk, &m->target_addr) || pack_id(pk, &m->source) ||
               pack_bool(pk, m->nack);
    case SWIM_MSG_ACK:
    case SWIM_MSG_NACK:
        return msgpack_pack_array(pk, 3) || msgpack_pack_unsigned_int(pk, t) || msgpack_pack_uint32(pk, m->seq) ||
               pack_id(pk, &m->source);
    case SWIM_MSG_ALIVE:
        return msgpack_pack_array(pk, 3) || msgpack_pack_unsigned_int(pk, t) ||
               msgpack_pack_uint64(pk, m->incarnation) || pack_member(pk, &m->member);
    case SWIM_MSG_SUSPECT:
    case SWIM_MSG_DEAD:
        return msgpack_pack_array(pk, 4) || msgpack_pack_unsigned_int(pk, t) ||
               msgpack_pack_uint64(pk, m->incarnation) || pack_id(pk, &m->id) || pack_id(pk, &m->from);
    }
    return -1;
}

size_t swim_msg_size(const swim_msg_t *m)
{
    if (!msg_ok(m)) return 0;
    sink_t s = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, sink_write);
    return pack_msg(&pk, m) ? 0 : s.len;
}

/* Length of the smallest msgpack array header for n elements. */
static size_t arr_hdr_len(size_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

static void arr_hdr_put(uint8_t *p, size_t n)
{
    if (n < 16) {
        p[0] = (uint8_t)(0x90 | n);
    } else if (n < 65536) {
        p[0] = 0xdc;
        p[1] = (uint8_t)(n >> 8);
        p[2] = (uint8_t)n;
    } else {
        p[0] = 0xdd;
        p[1] = (uint8_t)(n >> 24);
        p[2] = (uint8_t)(n >> 16);
        p[3] = (uint8_t)(n >> 8);
        p[4] = (uint8_t)n;
    }
}

/* The writer keeps room for exactly the header the current count needs and
 * slides the body when the header grows (at 16 and 65536 messages), so len is
 * always the final datagram size and the cap is used to the last byte. */
static size_t packet_hdr_len(unsigned count)
{
    return count ? arr_hdr_len(count) : 0;
}

void swim_packet_begin(swim_packet_writer_t *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->len = 0;
    w->count = 0;
}

swim_proto_status_t swim_packet_add(swim_packet_writer_t *w, const swim_msg_t *m)
{
    size_t size = swim_msg_size(m);
    if (size == 0) return SWIM_PROTO_MALFORMED;
    if (w->count >= UINT32_MAX) return SWIM_PROTO_TOO_BIG;
    size_t old_h = packet_hdr_len(w->count), new_h = packet_hdr_len(w->count + 1);
    size_t body = w->len - old_h;
    if (new_h > w->cap || body > w->cap - new_h || size > w->cap - new_h - body) return SWIM_PROTO_TOO_BIG;
    if (new_h != old_h) memmove(w->buf + new_h, w->buf + old_h, body);
    sink_t s = {.buf = w->buf + new_h + body, .cap = size};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, sink_write);
    if (pack_msg(&pk, m) || s.len != size) {
        /* Unreachable while swim_msg_size and pack_msg agree; undo anyway. */
        if (new_h != old_h) memmove(w->buf + old_h, w->buf + new_h, body);
        return SWIM_PROTO_TOO_BIG;
    }
    w->len = new_h + body + size;
    w->count++;
    return SWIM_PROTO_OK;
}

size_t swim_packet_finish(swim_packet_writer_t *w)
{
    if (w->count == 0) return 0;
    arr_hdr_put(w->buf, w->count);
    return w->len;
}

/* Push-pull state: [8, join, [records...]]. The records' array header sits
 * at count_pos and grows the same way as the packet writer's. */
void swim_state_begin(swim_state_writer_t *w, bool join)
{
    memset(w, 0, sizeof *w);
    w->cap = 1024;
    w->buf = malloc(w->cap);
    if (!w->buf) {
        w->cap = 0;
        w->failed = true;
        return;
    }
    w->buf[0] = 0x93;
    w->buf[1] = 0x08;
    w->buf[2] = join ? 0xc3 : 0xc2;
    w->count_pos = 3;
    w->buf[3] = 0x90;
    w->len = 4;
}

void swim_state_add(swim_state_writer_t *w, const swim_state_record_t *r)
{
    if (w->failed) return;
    if (w->count >= UINT32_MAX || (unsigned)r->state > SWIM_STATE_LEFT || !member_ok(&r->member)) {
        w->failed = true;
        return;
    }
    size_t old_h = arr_hdr_len(w->count), new_h = arr_hdr_len((size_t)w->count + 1);
    sink_t s = {.buf = w->buf, .cap = w->cap, .len = w->len, .grow = true};
    if (!sink_reserve(&s, new_h - old_h)) {
        w->failed = true;
        return;
    }
    size_t body_pos = w->count_pos + old_h;
    if (new_h != old_h) memmove(s.buf + body_pos + (new_h - old_h), s.buf + body_pos, s.len - body_pos);
    s.len += new_h - old_h;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, sink_write);
    int rc = msgpack_pack_array(&pk, 3) || msgpack_pack_unsigned_int(&pk, (unsigned)r->state) ||
             msgpack_pack_uint64(&pk, r->incarnation) || pack_member(&pk, &r->member);
    w->buf = s.buf;
    w->cap = s.cap;
    w->len = s.len;
    if (rc) {
        w->failed = true;
        return;
    }
    w->count++;
}

uint8_t *swim_state_finish(swim_state_writer_t *w, size_t *len)
{
    if (w->failed) {
        free(w->buf);
        w->buf = NULL;
        w->len = w->cap = 0;
        if (len) *len = 0;
        return NULL;
    }
    arr_hdr_put(w->buf + w->count_pos, w->count);
    if (len) *len = w->len;
    return w->buf;
}

/* ---- decoding ---------------------------------------------------------- */

typedef swim_proto_status_t st_t;

typedef mpk_reader_t cur_t;
#define cur_left mpk_left

/* The shared bounded reader (cluster/mpk.h); statuses convert by a cast. */
static st_t rd_array(cur_t *c, size_t *n)
{
    return (st_t)mpk_array(c, n);
}

static st_t rd_uint(cur_t *c, uint64_t max, uint64_t *v)
{
    return (st_t)mpk_uint(c, max, v);
}

static st_t rd_bool(cur_t *c, bool *v)
{
    return (st_t)mpk_bool(c, v);
}

static st_t skip_values(cur_t *c, size_t pending)
{
    return (st_t)mpk_skip(c, pending);
}

static st_t rd_bin(cur_t *c, const uint8_t **p, size_t *len)
{
    return (st_t)mpk_bin(c, p, len);
}

/* Copies a string into a fixed field with its NUL. An embedded NUL would make
 * the C string differ from what the peer meant, so it is refused. */
static st_t rd_str(cur_t *c, char *dst, size_t field)
{
    st_t rc;
    const uint8_t *p;
    size_t len;
    if ((rc = (st_t)mpk_str(c, &p, &len)) != SWIM_PROTO_OK) return rc;
    if (len >= field || memchr(p, '\0', len)) return SWIM_PROTO_MALFORMED;
    memcpy(dst, p, len);
    dst[len] = '\0';
    return SWIM_PROTO_OK;
}

static st_t rd_id(cur_t *c, swim_id_t *id)
{
    st_t rc;
    const uint8_t *p;
    size_t n;
    if ((rc = rd_bin(c, &p, &n)) != SWIM_PROTO_OK) return rc;
    if (n != SWIM_ID_LEN) return SWIM_PROTO_MALFORMED;
    memcpy(id->b, p, SWIM_ID_LEN);
    return SWIM_PROTO_OK;
}

static st_t rd_addr(cur_t *c, swim_addr_t *a)
{
    st_t rc;
    size_t n, iplen;
    const uint8_t *ip;
    uint64_t port;
    if ((rc = rd_array(c, &n)) != SWIM_PROTO_OK) return rc;
    if (n != 2) return SWIM_PROTO_MALFORMED;
    if ((rc = rd_bin(c, &ip, &iplen)) != SWIM_PROTO_OK) return rc;
    if ((rc = rd_uint(c, 65535, &port)) != SWIM_PROTO_OK) return rc;
    memset(a, 0, sizeof *a);
    if (iplen == 0) {
        if (port != 0) return SWIM_PROTO_MALFORMED;
        return SWIM_PROTO_OK;
    }
    if (iplen != 4 && iplen != 16) return SWIM_PROTO_MALFORMED;
    a->family = iplen == 4 ? 4 : 6;
    memcpy(a->ip, ip, iplen);
    a->port = (uint16_t)port;
    return SWIM_PROTO_OK;
}

/* Fields beyond those this version knows are skipped: a newer peer may
 * append some; fewer is malformed. */
static st_t rd_member(cur_t *c, swim_member_info_t *m)
{
    st_t rc;
    size_t n;
    if ((rc = rd_array(c, &n)) != SWIM_PROTO_OK) return rc;
    if (n < 7) return SWIM_PROTO_MALFORMED;
    if ((rc = rd_id(c, &m->id)) != SWIM_PROTO_OK) return rc;
    if ((rc = rd_str(c, m->name, sizeof m->name)) != SWIM_PROTO_OK) return rc;
    if ((rc = rd_addr(c, &m->gossip)) != SWIM_PROTO_OK) return rc;
    if ((rc = rd_addr(c, &m->peer)) != SWIM_PROTO_OK) return rc;
    if ((rc = rd_addr(c, &m->http)) != SWIM_PROTO_OK) return rc;
    if ((rc = rd_str(c, m->zone, sizeof m->zone)) != SWIM_PROTO_OK) return rc;
    if ((rc = rd_str(c, m->version, sizeof m->version)) != SWIM_PROTO_OK) return rc;
    return skip_values(c, n - 7);
}

static const uint8_t msg_fields[] = {
    [SWIM_MSG_PING] = 4,  [SWIM_MSG_PING_REQ] = 6, [SWIM_MSG_ACK] = 3,  [SWIM_MSG_NACK] = 3,
    [SWIM_MSG_ALIVE] = 3, [SWIM_MSG_SUSPECT] = 4,  [SWIM_MSG_DEAD] = 4,
};

/* Decodes one message into m (zeroed first, so unused fields are zero and
 * two decodings of the same bytes compare equal). *known is false for a
 * well-formed message of a type this version does not know. */
static st_t rd_msg(cur_t *c, swim_msg_t *m, bool *known)
{
    st_t rc;
    size_t n;
    uint64_t t, v;
    if ((rc = rd_array(c, &n)) != SWIM_PROTO_OK) return rc;
    if (n < 1) return SWIM_PROTO_MALFORMED;
    if ((rc = rd_uint(c, UINT64_MAX, &t)) != SWIM_PROTO_OK) return rc;
    if (t == 0) return SWIM_PROTO_MALFORMED;
    if (t > SWIM_MSG_DEAD) {
        *known = false;
        return skip_values(c, n - 1);
    }
    *known = true;
    if (n < msg_fields[t]) return SWIM_PROTO_MALFORMED;
    memset(m, 0, sizeof *m);
    m->type = (swim_msg_type_t)t;
    switch (m->type) {
    case SWIM_MSG_PING:
    case SWIM_MSG_PING_REQ:
        if ((rc = rd_uint(c, UINT32_MAX, &v)) != SWIM_PROTO_OK) return rc;
        m->seq = (uint32_t)v;
        if ((rc = rd_id(c, &m->target)) != SWIM_PROTO_OK) return rc;
        if (m->type == SWIM_MSG_PING_REQ && (rc = rd_addr(c, &m->target_addr)) != SWIM_PROTO_OK) return rc;
        if ((rc = rd_id(c, &m->source)) != SWIM_PROTO_OK) return rc;
        if (m->type == SWIM_MSG_PING_REQ && (rc = rd_bool(c, &m->nack)) != SWIM_PROTO_OK) return rc;
        break;
    case SWIM_MSG_ACK:
    case SWIM_MSG_NACK:
        if ((rc = rd_uint(c, UINT32_MAX, &v)) != SWIM_PROTO_OK) return rc;
        m->seq = (uint32_t)v;
        if ((rc = rd_id(c, &m->source)) != SWIM_PROTO_OK) return rc;
        break;
    case SWIM_MSG_ALIVE:
        if ((rc = rd_uint(c, UINT64_MAX, &m->incarnation)) != SWIM_PROTO_OK) return rc;
        if ((rc = rd_member(c, &m->member)) != SWIM_PROTO_OK) return rc;
        break;
    case SWIM_MSG_SUSPECT:
    case SWIM_MSG_DEAD:
        if ((rc = rd_uint(c, UINT64_MAX, &m->incarnation)) != SWIM_PROTO_OK) return rc;
        if ((rc = rd_id(c, &m->id)) != SWIM_PROTO_OK) return rc;
        if ((rc = rd_id(c, &m->from)) != SWIM_PROTO_OK) return rc;
        break;
    }
    return skip_values(c, n - msg_fields[t]);
}

swim_proto_status_t swim_packet_decode(const uint8_t *buf, size_t len, swim_msg_t *scratch, size_t scratch_cap,
                                       swim_msg_fn fn, void *ctx)
{
    st_t rc;
    cur_t c = {.p = buf, .len = buf ? len : 0};
    size_t n, count = 0;
    if ((rc = rd_array(&c, &n)) != SWIM_PROTO_OK) return rc;
    if (n == 0) return SWIM_PROTO_MALFORMED;
    for (size_t i = 0; i < n; i++) {
        swim_msg_t tmp;
        bool known;
        /* Decode straight into scratch while there is room; past it, a
         * known message means the datagram holds more than we accept. */
        swim_msg_t *m = count < scratch_cap ? &scratch[count] : &tmp;
        if ((rc = rd_msg(&c, m, &known)) != SWIM_PROTO_OK) return rc;
        if (!known) continue;
        if (m == &tmp) return SWIM_PROTO_MALFORMED;
        count++;
    }
    if (c.pos != c.len) return SWIM_PROTO_MALFORMED;
    if (fn)
        for (size_t i = 0; i < count; i++) fn(&scratch[i], ctx);
    return SWIM_PROTO_OK;
}

/* One pass over a state buffer; with fn NULL it only validates. */
static st_t state_walk(cur_t *c, size_t max_records, bool *join, swim_state_fn fn, void *ctx)
{
    st_t rc;
    size_t n, nrec;
    uint64_t v;
    if ((rc = rd_array(c, &n)) != SWIM_PROTO_OK) return rc;
    if (n < 3) return SWIM_PROTO_MALFORMED;
    if ((rc = rd_uint(c, UINT64_MAX, &v)) != SWIM_PROTO_OK) return rc;
    if (v != 8) return SWIM_PROTO_MALFORMED;
    if ((rc = rd_bool(c, join)) != SWIM_PROTO_OK) return rc;
    if ((rc = rd_array(c, &nrec)) != SWIM_PROTO_OK) return rc;
    if (nrec > max_records) return SWIM_PROTO_MALFORMED;
    for (size_t i = 0; i < nrec; i++) {
        swim_state_record_t r;
        size_t k;
        memset(&r, 0, sizeof r);
        if ((rc = rd_array(c, &k)) != SWIM_PROTO_OK) return rc;
        if (k < 3) return SWIM_PROTO_MALFORMED;
        if ((rc = rd_uint(c, SWIM_STATE_LEFT, &v)) != SWIM_PROTO_OK) return rc;
        r.state = (swim_state_t)v;
        if ((rc = rd_uint(c, UINT64_MAX, &r.incarnation)) != SWIM_PROTO_OK) return rc;
        if ((rc = rd_member(c, &r.member)) != SWIM_PROTO_OK) return rc;
        if ((rc = skip_values(c, k - 3)) != SWIM_PROTO_OK) return rc;
        if (fn) fn(&r, ctx);
    }
    if ((rc = skip_values(c, n - 3)) != SWIM_PROTO_OK) return rc;
    return c->pos == c->len ? SWIM_PROTO_OK : SWIM_PROTO_MALFORMED;
}

swim_proto_status_t swim_state_decode(const uint8_t *buf, size_t len, size_t max_records, bool *join,
                                      swim_state_fn fn, void *ctx)
{
    st_t rc;
    /* Two passes instead of a copy: the first proves the whole buffer valid
     * without allocating, so the caller never sees half a state. */
    cur_t c = {.p = buf, .len = buf ? len : 0};
    bool j;
    if ((rc = state_walk(&c, max_records, &j, NULL, NULL)) != SWIM_PROTO_OK) return rc;
    if (fn) {
        c.pos = 0;
        if ((rc = state_walk(&c, max_records, &j, fn, ctx)) != SWIM_PROTO_OK) return rc;
    }
    if (join) *join = j;
    return SWIM_PROTO_OK;
}

/* ---- helpers ----------------------------------------------------------- */

bool swim_id_equal(const swim_id_t *a, const swim_id_t *b)
{
    return memcmp(a->b, b->b, SWIM_ID_LEN) == 0;
}

bool swim_addr_equal(const swim_addr_t *a, const swim_addr_t *b)
{
    if (a->family != b->family) return false;
    if (a->family == 0) return true; /* unset: port and ip bytes mean nothing */
    return a->port == b->port && memcmp(a->ip, b->ip, addr_ip_len(a)) == 0;
}

const char *swim_state_name(swim_state_t s)
{
    switch (s) {
    case SWIM_STATE_ALIVE:
        return "alive";
    case SWIM_STATE_SUSPECT:
        return "suspect";
    case SWIM_STATE_DEAD:
        return "dead";
    case SWIM_STATE_LEFT:
        return "left";
    }
    return "unknown";
}
