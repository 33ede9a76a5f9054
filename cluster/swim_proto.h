/* swim_proto: the SWIM wire codec (msgpack), pure: no I/O, no clock.
 *
 *   datagram payload (what the core sends and receives; the driver wraps it
 *   with cluster/seal.h before it leaves the host):
 *
 *     array(n) of messages, n >= 1 (a "compound"), encoded size <= cap
 *
 *   message = array [type, fields...]:
 *     PING      [1, seq u32, target id bin16, source id bin16]
 *     PING_REQ  [2, seq u32, target id bin16, target addr, source id bin16, nack bool]
 *     ACK       [3, seq u32, source id bin16]
 *     NACK      [4, seq u32, source id bin16]
 *     ALIVE     [5, incarnation u64, member]
 *     SUSPECT   [6, incarnation u64, id bin16, from id bin16]
 *     DEAD      [7, incarnation u64, id bin16, from id bin16]   (from == id: graceful leave)
 *
 *   member = array [id bin16, name str<=63, gossip addr, peer addr, http addr,
 *                   zone str<=31, version str<=31]
 *   addr   = array [ip bin4|bin16, port u16]   (an unset address is [bin0, 0])
 *
 *   push-pull state (sent over a stream, sealed the same way):
 *     array [8, join bool, array(n) of [state u8, incarnation u64, member]]
 *
 * Unknown message types inside a compound (type > 7, in a well-formed
 * array) are skipped, and so are fields appended after the ones listed here
 * to a message, a member, a state record or the state (forward
 * compatibility); an addr is exactly two elements. Fewer fields, type 0, a
 * wrong msgpack type, an out-of-range value (seq > u32, port > 65535, state
 * > 3, strings past their field, ip not 0/4/16 bytes), an embedded
 * NUL in a string, an unset address with a non-zero port or bytes after the
 * top-level array are malformed and reject the whole datagram. Integers may
 * use any msgpack width; the encoder always writes the smallest. Decoding
 * never allocates and never trusts a length it has not checked against the
 * bytes present (no msgpack bombs).
 *
 * Ownership: callers own every buffer; decoded strings are copied into the
 * fixed-size fields below.
 */
#ifndef DCACHE_SWIM_PROTO_H
#define DCACHE_SWIM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/limits.h"

#define SWIM_ID_LEN 16
#define SWIM_NAME_MAX 64     /* bytes including the NUL */
#define SWIM_VERSION_MAX 32
#define SWIM_PACKET_MAX 1400 /* datagram bytes on the wire, sealing included */

typedef struct swim_id {
    uint8_t b[SWIM_ID_LEN];
} swim_id_t;

typedef struct swim_addr {
    uint8_t family;  /* 0 = unset, 4 or 6 */
    uint8_t ip[16];  /* 4 or 16 bytes used, network order */
    uint16_t port;
} swim_addr_t;

typedef struct swim_member_info {
    swim_id_t id;
    char name[SWIM_NAME_MAX];
    swim_addr_t gossip;   /* UDP + TCP (push-pull) */
    swim_addr_t peer;     /* the peer channel (data path) */
    swim_addr_t http;     /* the HTTP API */
    char zone[LIMITS_ZONE_MAX];
    char version[SWIM_VERSION_MAX];
} swim_member_info_t;

typedef enum {
    SWIM_MSG_PING = 1,
    SWIM_MSG_PING_REQ = 2,
    SWIM_MSG_ACK = 3,
    SWIM_MSG_NACK = 4,
    SWIM_MSG_ALIVE = 5,
    SWIM_MSG_SUSPECT = 6,
    SWIM_MSG_DEAD = 7,
} swim_msg_type_t;

typedef enum {
    SWIM_STATE_ALIVE = 0,
    SWIM_STATE_SUSPECT = 1,
    SWIM_STATE_DEAD = 2,
    SWIM_STATE_LEFT = 3,
} swim_state_t;

typedef struct swim_msg {
    swim_msg_type_t type;
    uint32_t seq;                 /* PING, PING_REQ, ACK, NACK */
    swim_id_t target;             /* PING, PING_REQ */
    swim_addr_t target_addr;      /* PING_REQ */
    swim_id_t source;             /* PING, PING_REQ, ACK, NACK */
    bool nack;                    /* PING_REQ: send NACK if the target does not answer */
    uint64_t incarnation;         /* ALIVE, SUSPECT, DEAD */
    swim_id_t id;                 /* SUSPECT, DEAD: the member concerned */
    swim_id_t from;               /* SUSPECT, DEAD: who says so */
    swim_member_info_t member;    /* ALIVE */
} swim_msg_t;

typedef enum {
    SWIM_PROTO_OK = 0,
    SWIM_PROTO_TRUNCATED = -1,    /* ran out of bytes */
    SWIM_PROTO_MALFORMED = -2,    /* wrong type, bad length, out of range */
    SWIM_PROTO_TOO_BIG = -3,      /* encoding: does not fit the buffer */
} swim_proto_status_t;

/* Encoded size of one message (for packing compounds under a budget); 0 when
 * the message cannot be encoded (unknown type, a string field without its
 * NUL, an address family other than 0, 4 or 6). */
size_t swim_msg_size(const swim_msg_t *m);

/* A compound encoder over a caller's buffer: begin, add messages while they
 * fit, finish. The array header is written at finish, so the message count
 * need not be known up front; len is at all times the size finish would
 * return, so a message fits when len + (header growth: 2 bytes when count
 * goes 15 -> 16) + swim_msg_size(m) <= cap. */
typedef struct swim_packet_writer {
    uint8_t *buf;
    size_t cap, len;
    unsigned count;
} swim_packet_writer_t;

void swim_packet_begin(swim_packet_writer_t *w, uint8_t *buf, size_t cap);
/* Appends a message; SWIM_PROTO_TOO_BIG (does not fit) and
 * SWIM_PROTO_MALFORMED (cannot be encoded, see swim_msg_size) leave the
 * writer unchanged. */
swim_proto_status_t swim_packet_add(swim_packet_writer_t *w, const swim_msg_t *m);
/* Returns the datagram length (0 when no message was added). */
size_t swim_packet_finish(swim_packet_writer_t *w);

/* Decodes a datagram, calling `fn` for each message in order, but only once
 * the whole datagram decoded cleanly (messages are first decoded into `scratch`
 * of `scratch_cap` entries; more messages than that is malformed). */
typedef void (*swim_msg_fn)(const swim_msg_t *m, void *ctx);
swim_proto_status_t swim_packet_decode(const uint8_t *buf, size_t len, swim_msg_t *scratch, size_t scratch_cap,
                                       swim_msg_fn fn, void *ctx);

/* Push-pull state. The encoder writes into a malloc'd buffer the caller
 * frees; the decoder visits each member record. */
typedef struct swim_state_record {
    swim_state_t state;
    uint64_t incarnation;
    swim_member_info_t member;
} swim_state_record_t;

typedef struct swim_state_writer {
    uint8_t *buf;   /* malloc'd, owned by the caller after finish */
    size_t len, cap;
    size_t count_pos;
    unsigned count;
    bool failed;
} swim_state_writer_t;

void swim_state_begin(swim_state_writer_t *w, bool join);
void swim_state_add(swim_state_writer_t *w, const swim_state_record_t *r);
/* Returns the buffer (caller frees) and its length, or NULL (and frees the
 * buffer) on allocation failure or when a record could not be encoded (state
 * out of range, or a member as in swim_msg_size). */
uint8_t *swim_state_finish(swim_state_writer_t *w, size_t *len);

typedef void (*swim_state_fn)(const swim_state_record_t *r, void *ctx);
/* Validates the whole buffer first, then visits the records. `max_records`
 * bounds what a peer may make us process. */
swim_proto_status_t swim_state_decode(const uint8_t *buf, size_t len, size_t max_records, bool *join,
                                      swim_state_fn fn, void *ctx);

bool swim_id_equal(const swim_id_t *a, const swim_id_t *b);
bool swim_addr_equal(const swim_addr_t *a, const swim_addr_t *b);
const char *swim_state_name(swim_state_t s);

#endif
