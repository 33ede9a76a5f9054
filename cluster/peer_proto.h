/* peer_proto: the peer-channel frame codec (msgpack over TCP), pure: no I/O,
 * no clock. The transport (node/peer*) owns sockets, buffers, timeouts.
 *
 *   stream = [preamble] frame*                      a client's stream starts
 *                                                    with PEER_STREAM_PREAMBLE;
 *                                                    answers have none
 *   frame  = [length u32 big-endian][payload]       length = payload bytes,
 *                                                    SEAL_PLAIN_OVERHEAD+1 ..
 *                                                    max_frame
 *   payload = seal_seal(keyring, body)               cluster/seal.h: CRC32C
 *                                                    with no key, XChaCha20-
 *                                                    Poly1305 with a key
 *
 *   body = array [type, request_id u64, flags u32, fields...]
 *
 *     PING                [1,  id, flags]
 *     PONG                [2,  id, flags]
 *     GET                 [3,  id, flags, key]
 *     GET_RESP            [4,  id, flags, status u32, value bin, content_type str,
 *                              version u64, origin bin16, ttl_ms u64]
 *     PUT                 [5,  id, flags, key, value bin, content_type str,
 *                              ttl_ms u64, version u64, origin bin16, (rid bin16)]
 *     PUT_RESP            [6,  id, flags, status u32, version u64]
 *     DELETE              [7,  id, flags, key, version u64, (rid bin16)]
 *     DELETE_RESP         [8,  id, flags, status u32, existed bool]
 *     INVALIDATE          [9,  id, flags, array(n <= 10000) of key, (version u64)]
 *     INVALIDATE_PATTERN  [10, id, flags, pattern, dry_run bool, (version u64)]
 *     INVALIDATE_RESP     [11, id, flags, matched u64, invalidated u64]
 *     KEYS                [12, id, flags, pattern, cursor u64, limit u32]
 *     KEYS_RESP           [13, id, flags, array(n) of [key, size u64, ttl_ms i64],
 *                              next_cursor u64]
 *     HANDOFF             [14, id, flags, array(n) of [key, value bin,
 *                              content_type str, version u64, expires_at_ms u64]]
 *     HANDOFF_RESP        [15, id, flags, accepted u32]
 *     ERROR               [16, id, flags, code u32, message str]
 *     SYNC                [17, id, flags, name str, run bin16]
 *     SYNC_RESP           [18, id, flags, done bool, clock u64]
 *     REPAIR_DIGEST       [19, id, flags, name str, run bin16, ring u64, cut u64,
 *                              digests bin <= PEER_BLOB_MAX]
 *     REPAIR_DIGEST_RESP  [20, id, flags, status u32, differ bin <= PEER_BLOB_MAX]
 *     REPAIR_OFFER        [21, id, flags, array(n <= PEER_OFFER_MAX) of
 *                              [hash u64, version u64, tomb bool, key bin 0..1024]]
 *     REPAIR_OFFER_RESP   [22, id, flags, array(n) of [index u32, version u64]]
 *     EVENT               [23, id, flags, name str, message str, blob bin <= PEER_BLOB_MAX]
 *                              (answered with PONG)
 *
 *   SYNC: "have you handed me (this run of me) what I own?"; the answer
 *   carries the answering node's clock, which is also all an invalidation's
 *   coordinator asks it for (node/route/route_scatter.c).
 *   REPAIR_*: anti-entropy between the owners of the same keys
 *   (node/route/repair.h): `ring` is the ring's fingerprint (topo.h), `cut`
 *   the round's cut time; an offer item is a live entry (its key) or a
 *   tombstone (tomb true; its key when known, else an empty key: a
 *   tombstone is known by its hash); an answer names an offered item by
 *   index: version 0 = "send it", else "deleted here at this version".
 *   EVENT: an entry of the sending node's event feed (node/api/events.h)
 *   for the receiver's: name is the sender, message the event's type, blob
 *   its JSON object.
 *
 *   key = bin 1..1024 bytes; pattern = bin 1..1024 bytes (a glob, glob.h);
 *   content_type = str <= 255 bytes, message = str <= 1024 bytes, neither
 *   with an embedded NUL; a value is bounded only by the frame.
 *
 * The preamble lets the peer channel share the cluster port's TCP listener
 * with gossip's push-pull: a push-pull stream starts with the top byte of a
 * length of at most 32 MiB (0x00..0x02), so 0xDC can only be a peer client.
 * A port of the peer channel's own (--peer-port) accepts streams with or
 * without it (a frame's length starts with 0x00 there too).
 *
 * A response carries its request's id; requests are pipelined and answers
 * may come in any order. Flags are a bit set (PEER_F_*); unknown bits are
 * kept in msg.flags and re-encoded unchanged, so new flags can be added.
 * Status and error codes are any u32 (peer_status_t lists the known ones;
 * treat an unknown one as a failure).
 *
 * (field) in parentheses: appended later, so optional: a body without it
 * (from an older peer) decodes with the field 0. The invalidations' version
 * is the one the node that received the request stamped for all of it; 0
 * means unversioned (the old behaviour), and a 0 is encoded by leaving the
 * field out.
 *
 * Forward compatibility, as in swim_proto: fields appended after the ones
 * listed (to a body or to an array element) are skipped; a type > 22 in an
 * otherwise well-formed body decodes as PEER_PROTO_UNKNOWN_TYPE with type,
 * id and flags set, so the transport may answer it with an ERROR. Fewer
 * fields, type 0, a wrong msgpack type, an out-of-range integer or bytes after
 * the body are malformed. Integers may use any msgpack width (the encoder
 * writes the smallest), so re-encoding is not byte-identical, only
 * equivalent. Decoding never allocates and checks every length against the
 * bytes present before using it.
 *
 * Zero copy and lifetimes: a decoded peer_msg_t points into the body buffer
 * it was decoded from (key, value, content_type, pattern, message, the array
 * items): those pointers are valid while that buffer is, unchanged. The whole
 * body is validated, array elements included, before anything is returned,
 * so the iterators below cannot fail on a decoded message.
 *
 * Threads: no state; every function may run from any thread at once.
 */
#ifndef DCACHE_PEER_PROTO_H
#define DCACHE_PEER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/limits.h"
#include "cluster/seal.h"

#define PEER_ID_LEN 16
#define PEER_PATTERN_MAX 1024
#define PEER_MESSAGE_MAX 1024
#define PEER_NAME_MAX 63         /* a member's name (SWIM_NAME_MAX without its NUL) */
#define PEER_INVALIDATE_MAX 10000
#define PEER_LEN_PREFIX 4
/* First byte of every client stream (see above). */
#define PEER_STREAM_PREAMBLE 0xDCu
/* Values may be up to 8 MiB; the rest is room for keys, headers, sealing. */
/* The largest value, its key and content type, and the message around them. */
#define PEER_FRAME_MAX_DEFAULT ((size_t)LIMITS_VALUE_MAX + 64 * 1024)
#define PEER_FRAME_MIN (SEAL_PLAIN_OVERHEAD + 1)

typedef enum {
    PEER_MSG_PING = 1,
    PEER_MSG_PONG = 2,
    PEER_MSG_GET = 3,
    PEER_MSG_GET_RESP = 4,
    PEER_MSG_PUT = 5,
    PEER_MSG_PUT_RESP = 6,
    PEER_MSG_DELETE = 7,
    PEER_MSG_DELETE_RESP = 8,
    PEER_MSG_INVALIDATE = 9,
    PEER_MSG_INVALIDATE_PATTERN = 10,
    PEER_MSG_INVALIDATE_RESP = 11,
    PEER_MSG_KEYS = 12,
    PEER_MSG_KEYS_RESP = 13,
    PEER_MSG_HANDOFF = 14,
    PEER_MSG_HANDOFF_RESP = 15,
    PEER_MSG_ERROR = 16,
    PEER_MSG_SYNC = 17,
    PEER_MSG_SYNC_RESP = 18,
    PEER_MSG_REPAIR_DIGEST = 19,
    PEER_MSG_REPAIR_DIGEST_RESP = 20,
    PEER_MSG_REPAIR_OFFER = 21,
    PEER_MSG_REPAIR_OFFER_RESP = 22,
    PEER_MSG_EVENT = 23,
} peer_msg_type_t;
#define PEER_MSG_MAX PEER_MSG_EVENT
/* REPAIR_DIGEST's digests and REPAIR_DIGEST_RESP's bitmap (their exact
 * sizes are cluster/digest.h's business). */
#define PEER_BLOB_MAX ((size_t)1 << 20)
/* Items in one REPAIR_OFFER (answers: at most as many). */
#define PEER_OFFER_MAX 4096

/* Request flags. */
#define PEER_F_FORWARDED 0x1u /* already forwarded once: never forward again */
#define PEER_F_REPLICA 0x2u   /* a write from the primary to a replica */
#define PEER_F_CREATED 0x4u   /* PUT_RESP: the key was not there before */
#define PEER_F_LOCAL 0x8u     /* GET: answer from your own L1 only (asked while rebalancing) */
#define PEER_F_PRIMARY 0x10u  /* KEYS: only the keys you are the primary owner of */
#define PEER_F_JOURNALED 0x20u /* PUT_RESP, DELETE_RESP: in the coordinator's journal, not yet in Redis;
                                  GET_RESP UNAVAILABLE: a newer write of the key waits in the answering
                                  owner's journal (Redis holds an older value) */
#define PEER_F_L2 0x40u       /* GET_RESP: the value came from L2 */
#define PEER_F_ORIGIN 0x80u   /* GET_RESP OK: loaded from the key's origin just now; GET_RESP
                                 UNAVAILABLE: the key's origin failed (no other owner is asked: it
                                 would ask the same origin) */
#define PEER_F_STALE 0x100u   /* GET_RESP OK: a copy past its TTL, served because the origin failed */

typedef enum {
    PEER_STATUS_OK = 0,
    PEER_STATUS_NOT_FOUND = 1,
    PEER_STATUS_STALE = 2,        /* older than what we hold (or a tombstone) */
    PEER_STATUS_TOO_LARGE = 3,
    PEER_STATUS_UNAVAILABLE = 4,  /* overloaded, shutting down, L2 down */
    PEER_STATUS_BAD_REQUEST = 5,
    PEER_STATUS_NOT_OWNER = 6,    /* the receiver does not own the key */
    PEER_STATUS_TIMEOUT = 7,
    PEER_STATUS_INTERNAL = 8,
    PEER_STATUS_UNSUPPORTED = 9,  /* unknown message type (ERROR code) */
} peer_status_t;

/* A slice of a buffer (not NUL-terminated). */
typedef struct peer_bytes {
    const uint8_t *p;
    size_t len;
} peer_bytes_t;

/* KEYS_RESP element. */
typedef struct peer_keyinfo {
    peer_bytes_t key;
    uint64_t size;
    int64_t ttl_ms;       /* -1: no expiry */
} peer_keyinfo_t;

/* HANDOFF element. */
typedef struct peer_entry {
    peer_bytes_t key, value, content_type;
    uint64_t version;
    uint64_t expires_at_ms; /* 0: no expiry */
} peer_entry_t;

/* REPAIR_OFFER element. */
typedef struct peer_offer {
    uint64_t hash;        /* ring_key_hash of the key */
    uint64_t version;
    bool tomb;            /* a tombstone (key may then be empty) */
    peer_bytes_t key;     /* 0..1024 bytes; 1.. for a live entry */
} peer_offer_t;

/* REPAIR_OFFER_RESP element. */
typedef struct peer_answer {
    uint32_t index;       /* into the offer */
    uint64_t version;     /* 0: send the entry; else the answerer's newer tombstone */
} peer_answer_t;

/* One message; the fields used by each type are noted, the others are zero
 * after decoding and ignored by the encoder. */
typedef struct peer_msg {
    peer_msg_type_t type;
    uint64_t id;                 /* request id (a response echoes it) */
    uint32_t flags;              /* PEER_F_* */
    uint32_t status;             /* GET_RESP, PUT_RESP, DELETE_RESP, REPAIR_DIGEST_RESP (peer_status_t) */
    peer_bytes_t key;            /* GET, PUT, DELETE */
    peer_bytes_t value;          /* GET_RESP, PUT */
    peer_bytes_t content_type;   /* GET_RESP, PUT */
    uint64_t version;            /* GET_RESP, PUT, PUT_RESP, DELETE, INVALIDATE, INVALIDATE_PATTERN
                                  * (0 there: unversioned) */
    uint8_t origin[PEER_ID_LEN]; /* GET_RESP, PUT: the node that stamped the version */
    uint8_t rid[PEER_ID_LEN];    /* PUT, DELETE: the client request a forwarded write carries out,
                                  * the same on every owner it is tried on (appended; all zero:
                                  * none) */
    uint64_t ttl_ms;             /* GET_RESP, PUT (0: no expiry) */
    bool existed;                /* DELETE_RESP */
    peer_bytes_t pattern;        /* INVALIDATE_PATTERN, KEYS */
    bool dry_run;                /* INVALIDATE_PATTERN */
    uint64_t matched, invalidated; /* INVALIDATE_RESP */
    uint64_t cursor;             /* KEYS: where to start; KEYS_RESP: next (0 = done) */
    uint32_t limit;              /* KEYS */
    uint32_t accepted;           /* HANDOFF_RESP */
    uint32_t code;               /* ERROR (peer_status_t) */
    peer_bytes_t message;        /* ERROR; EVENT: its type */
    peer_bytes_t name;           /* SYNC, REPAIR_DIGEST: the asking member; EVENT: the sender */
    uint8_t run[PEER_ID_LEN];    /* SYNC, REPAIR_DIGEST: its run (SWIM id) */
    uint64_t ring;               /* REPAIR_DIGEST: the ring's fingerprint */
    uint64_t cut;                /* REPAIR_DIGEST: the round's cut time (ms) */
    peer_bytes_t blob;           /* REPAIR_DIGEST: digests; REPAIR_DIGEST_RESP: differing buckets;
                                  * EVENT: the event's JSON
                                  * (status REPAIR_DIGEST_RESP too) */
    bool done;                   /* SYNC_RESP */
    uint64_t clock;              /* SYNC_RESP: the answering node's clock */

    /* Arrays (INVALIDATE keys, KEYS_RESP keys, HANDOFF entries, REPAIR_OFFER
     * offers, REPAIR_OFFER_RESP answers): count elements. Encoding reads them
     * from the caller's array matching the type (keys, keyinfos, entries,
     * offers, answers); decoding leaves those NULL and sets items to
     * the validated element bytes, read with peer_iter_*. */
    uint32_t count;
    const peer_bytes_t *keys;         /* encode INVALIDATE */
    const peer_keyinfo_t *keyinfos;   /* encode KEYS_RESP */
    const peer_entry_t *entries;      /* encode HANDOFF */
    const peer_offer_t *offers;       /* encode REPAIR_OFFER */
    const peer_answer_t *answers;     /* encode REPAIR_OFFER_RESP */
    peer_bytes_t items;               /* decoded arrays */
} peer_msg_t;

typedef enum {
    PEER_PROTO_OK = 0,
    PEER_PROTO_TRUNCATED = -1,    /* the body ends inside a value */
    PEER_PROTO_MALFORMED = -2,    /* wrong msgpack type, missing fields, out of range, trailing bytes */
    PEER_PROTO_LIMIT = -3,        /* a field past its limit (key, content type, count, ...) */
    PEER_PROTO_UNKNOWN_TYPE = -4, /* well-formed, unknown type; type, id and flags are set */
    PEER_PROTO_TOO_BIG = -5,      /* encoding: does not fit the buffer or max_frame */
    PEER_PROTO_SEAL = -6,         /* the payload did not open: see the seal_status_t */
} peer_proto_status_t;

/* True for the types a client sends and a server answers (every other
 * known type is an answer). */
bool peer_msg_is_request(peer_msg_type_t t);

/* ---- bodies ---- */

/* Encoded body size; 0 when the message cannot be encoded (unknown type, a
 * field past its limit, an array pointer NULL with count > 0). Only what the
 * decoder accepts is encoded. */
size_t peer_msg_size(const peer_msg_t *m);
/* Encodes the body into buf (cap bytes). PEER_PROTO_LIMIT: cannot be encoded
 * (as peer_msg_size); PEER_PROTO_TOO_BIG: does not fit. */
peer_proto_status_t peer_msg_encode(const peer_msg_t *m, uint8_t *buf, size_t cap, size_t *len);
/* Decodes and validates a whole body; m is zeroed first and, on success,
 * points into buf (see lifetimes above). On failure m is unusable, except
 * with PEER_PROTO_UNKNOWN_TYPE (type, id, flags). */
peer_proto_status_t peer_msg_decode(const uint8_t *buf, size_t len, peer_msg_t *m);

/* Iterators over a decoded message's array, in order. Each returns false at
 * the end or when the iterator does not match the message type. */
typedef struct peer_iter {
    const uint8_t *p;
    size_t len, pos;
    uint32_t left;
    peer_msg_type_t type;
} peer_iter_t;

void peer_iter_init(peer_iter_t *it, const peer_msg_t *m);
bool peer_iter_key(peer_iter_t *it, peer_bytes_t *key);          /* INVALIDATE */
bool peer_iter_keyinfo(peer_iter_t *it, peer_keyinfo_t *ki);     /* KEYS_RESP */
bool peer_iter_entry(peer_iter_t *it, peer_entry_t *e);          /* HANDOFF */
bool peer_iter_offer(peer_iter_t *it, peer_offer_t *o);          /* REPAIR_OFFER */
bool peer_iter_answer(peer_iter_t *it, peer_answer_t *a);        /* REPAIR_OFFER_RESP */

/* ---- frames on the stream ---- */

typedef enum {
    PEER_SCAN_READY = 0,      /* a whole frame is buffered */
    PEER_SCAN_NEED_MORE = 1,  /* keep reading: span.end bytes are needed */
    PEER_SCAN_TOO_BIG = -1,   /* the length is over max_frame: close */
    PEER_SCAN_TOO_SMALL = -2, /* the length is under PEER_FRAME_MIN: close */
} peer_scan_t;

typedef struct peer_span {
    size_t off;  /* payload offset in the buffer (PEER_LEN_PREFIX) */
    size_t len;  /* payload length */
    size_t end;  /* READY: bytes to consume; NEED_MORE: bytes needed in all */
} peer_span_t;

/* A frame's length prefix (PEER_LEN_PREFIX bytes, big-endian), written and
 * read; the transport frames other payloads (the handshake's sessions) the
 * same way. */
void peer_frame_put_len(uint8_t *out, size_t len);
size_t peer_frame_len(const uint8_t *in);

/* Looks at the start of buf (the bytes received so far). The length is
 * checked as soon as its four bytes are in, so a peer cannot make the
 * transport buffer more than PEER_LEN_PREFIX + max_frame. */
peer_scan_t peer_frame_scan(const uint8_t *buf, size_t len, size_t max_frame, peer_span_t *span);

/* Wraps an encoded body into a frame: prefix + seal_seal(r, body). out must
 * not overlap body; cap >= PEER_LEN_PREFIX + body_len + seal_overhead(r).
 * PEER_PROTO_TOO_BIG when it does not fit cap or the payload would exceed
 * max_frame (the receiver would close the connection); PEER_PROTO_MALFORMED
 * for an empty body. */
peer_proto_status_t peer_frame_seal(const seal_keyring_t *r, const uint8_t *body, size_t body_len, size_t max_frame,
                                    uint8_t *out, size_t cap, size_t *out_len);
/* Encodes m into a frame, using scratch (scratch_cap bytes) for the body. */
peer_proto_status_t peer_frame_encode(const seal_keyring_t *r, const peer_msg_t *m, size_t max_frame,
                                      uint8_t *scratch, size_t scratch_cap, uint8_t *out, size_t cap,
                                      size_t *out_len);
/* Opens a payload (span.len bytes at span.off) into body (cap >= payload
 * length) and decodes it into m, which then points into body. A payload
 * that does not open gives PEER_PROTO_SEAL with the reason in *seal (may be
 * NULL; set to SEAL_OK otherwise). */
peer_proto_status_t peer_frame_decode(const seal_keyring_t *r, const uint8_t *payload, size_t len, uint8_t *body,
                                      size_t cap, peer_msg_t *m, seal_status_t *seal);

/* Short snake_case names for logs and metric labels. */
const char *peer_proto_status_name(peer_proto_status_t s);
const char *peer_scan_name(peer_scan_t s);
const char *peer_msg_type_name(peer_msg_type_t t);
const char *peer_status_name(uint32_t status);

#endif
