/* peer_hs: the peer channel's handshake and session cipher, pure (libsodium
 * only: no I/O, no clock, no allocation).
 *
 * Why: seal (seal.h) authenticates each frame on its own, so a frame recorded
 * off the wire opens anywhere, any number of times: replayed later on the
 * same connection, reordered, or sent on another connection to the same or
 * another node. Here both ends first prove they hold the cluster key and
 * agree keys that belong to this connection alone; frames are then numbered
 * implicitly by a stream cipher, so a frame is accepted once, in its place,
 * on its connection, in its direction, and nowhere else. A peer without a
 * key of the keyring can neither complete a handshake nor read or forge a
 * frame. The keys come from ephemeral X25519 (wiped once used), so a cluster
 * key that leaks later does not open recorded sessions (forward secrecy).
 *
 * A node name may be bound into the handshake: the client names the member
 * it means to reach, the server its own name; if they differ the handshake
 * fails. Without it, a cluster key only proves membership, so an attacker on
 * the network could steer a connection meant for one node to another (which
 * would then answer, say, "handed off" for the wrong node). NULL and "" mean
 * no binding; both ends must agree on using one.
 *
 * Wire format, version 1 (|| is concatenation, lengths in bytes, X[a..b) the
 * bytes a to b-1 of X):
 *
 *   HELLO   (client -> server, PEER_HS_HELLO_LEN = 81)
 *     [0x10][client ephemeral X25519 pk 32][nonce 16][mac 32]
 *   REPLY   (server -> client, PEER_HS_REPLY_LEN = 89)
 *     [0x11][server ephemeral X25519 pk 32][s2c secretstream header 24][mac 32]
 *   CONFIRM (client -> server, PEER_HS_CONFIRM_LEN = 57)
 *     [0x12][c2s secretstream header 24][mac 32]
 *   then frames, each way: crypto_secretstream_xchacha20poly1305_push(message,
 *     no associated data, TAG_MESSAGE): message length + PEER_HS_ABYTES (17).
 *
 *   H(key, m)  = BLAKE2b-256 (crypto_generichash), keyed when a key is given
 *   L(text)    = the ASCII text followed by one 0x00 byte (no label is then a
 *                prefix of another)
 *   K          = the cluster key: the client's primary (keys[0]); on the
 *                server the first key of its keyring whose MAC verifies
 *   name       = the bound node name, without NUL (empty when none)
 *   ctx        = H(-, L("dcache peer_hs v1 name") || name)
 *   hello.mac  = H(K, L("dcache peer_hs v1 hello") || ctx || HELLO[0..49))
 *   reply.mac  = H(K, L("dcache peer_hs v1 reply") || ctx || HELLO || REPLY[0..57))
 *   confirm.mac= H(K, L("dcache peer_hs v1 confirm") || ctx || HELLO || REPLY
 *                     || CONFIRM[0..25))
 *   kx_s2c || kx_c2s = crypto_kx: BLAKE2b-512(X25519(sk, peer pk) || client pk
 *                      || server pk); the client's rx and the server's tx are
 *                      kx_s2c
 *   th         = H(-, L("dcache peer_hs v1 transcript") || ctx || HELLO
 *                     || server pk)
 *   k_c2s      = H(K, L("dcache peer_hs v1 c2s") || kx_c2s || th)
 *   k_s2c      = H(K, L("dcache peer_hs v1 s2c") || kx_s2c || th)
 *
 * The s2c stream is pushed by the server with k_s2c from the header in the
 * REPLY, the c2s stream by the client with k_c2s from the header in the
 * CONFIRM. A frame with any tag but TAG_MESSAGE is refused. Frames carry no
 * length: the transport's framing delimits them (a wrong length fails to
 * decrypt). The type byte names the message and the version: a later
 * version takes new type bytes (seal's payloads start with 0x01 or 0x02).
 *
 * Why each step: the HELLO's nonce and ephemeral key make every REPLY
 * MAC unique to one HELLO, so the client knows a key holder answered it now.
 * A HELLO alone proves nothing (it can be replayed): the server knows a live
 * key holder is at the other end only once the CONFIRM verifies, since that
 * MAC covers the REPLY it has just made up; count a peer, or the key it used,
 * only after peer_hs_server_finish. Mixing K and the transcript into the
 * direction keys means the session also needs the cluster key, not only the
 * ephemeral secrets.
 *
 * Key rotation: the client MACs with its primary; the server tries every key
 * of its ring and MACs the REPLY with the one that matched, which the client
 * checks with the key it sent. So a handshake succeeds when the client's
 * primary is in the server's ring, whatever the server's primary is; rotate
 * by adding the new key everywhere, then making it primary, then removing
 * the old one (peer_hs_key_index tells which key a client still uses).
 *
 * Failure: any failing call ends the handshake (hs is wiped; later calls
 * return PEER_HS_BAD_STATE) and a session that fails to decrypt is dead
 * (every later call returns PEER_HS_BAD_STATE): the caller closes the
 * connection, and a caller that forgets to cannot go on with a stream
 * whose place is lost. An encrypt or decrypt that fails with
 * PEER_HS_NO_ROOM changes nothing and may be retried with a larger buffer.
 *
 * Ownership: the caller owns every struct; nothing is allocated. A
 * zero-filled peer_hs_t or session is valid and unusable (BAD_STATE). Never
 * copy a live session: two copies would encrypt with the same key and nonce.
 * Wipe both with peer_hs_wipe / peer_hs_session_wipe when the connection
 * ends (sessions and handshakes that end themselves are wiped already).
 *
 * Threads: a peer_hs_t and a session belong to one connection; no shared
 * state, so different connections may run on any threads at once. The
 * keyring is only read. libsodium must be initialised (seal_keyring_init
 * does it; the two entry points call sodium_init too).
 */
#ifndef DCACHE_PEER_HS_H
#define DCACHE_PEER_HS_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "cluster/seal.h"

#define PEER_HS_HELLO_LEN 81
#define PEER_HS_REPLY_LEN 89
#define PEER_HS_CONFIRM_LEN 57
#define PEER_HS_ABYTES 17        /* crypto_secretstream_xchacha20poly1305_ABYTES */
#define PEER_HS_NAME_MAX 255     /* bound name bytes, without the NUL */

#define PEER_HS_TYPE_HELLO 0x10
#define PEER_HS_TYPE_REPLY 0x11
#define PEER_HS_TYPE_CONFIRM 0x12

typedef enum {
    PEER_HS_OK = 0,
    PEER_HS_BAD_LENGTH = -1,     /* not the fixed length; a frame shorter than ABYTES; a name too long */
    PEER_HS_BAD_TYPE = -2,       /* not the message expected here (or another version) */
    PEER_HS_AUTH_FAILED = -3,    /* no key verifies it (wrong key, forged, replayed, other name), or a
                                    key holder sent a degenerate X25519 key */
    PEER_HS_NO_KEY = -4,         /* the keyring is empty: a keyless node cannot handshake */
    PEER_HS_DECRYPT_FAILED = -5, /* forged, replayed, reordered, truncated or from another session */
    PEER_HS_NO_ROOM = -6,        /* the output buffer is too small; nothing changed */
    PEER_HS_BAD_STATE = -7,      /* out of order, or the handshake or session has ended or failed */
} peer_hs_status_t;

/* One connection's keys: tx pushes this side's direction, rx pulls the
 * other's (a client's tx is c2s). */
typedef struct peer_hs_session {
    crypto_secretstream_xchacha20poly1305_state tx, rx;
    uint8_t live;                /* 1 once established; 0 when zeroed, wiped or dead */
} peer_hs_session_t;

/* A handshake in progress, client or server side. Fields are private. */
typedef struct peer_hs {
    uint8_t step;                /* where the handshake is (peer_hs.c) */
    unsigned key_index;          /* server: the keyring index that verified the HELLO */
    uint8_t key[SEAL_KEY_LEN];   /* K, copied: the keyring may be reloaded meanwhile */
    uint8_t ctx[32];             /* the bound name's hash */
    uint8_t pk[32], sk[32];      /* client: its ephemeral keypair until the REPLY */
    uint8_t rx_key[32];          /* server: k_c2s until the CONFIRM */
    uint8_t hello[PEER_HS_HELLO_LEN];
    uint8_t reply[PEER_HS_REPLY_LEN];
    peer_hs_session_t session;   /* server: tx pushing since the REPLY */
} peer_hs_t;

/* Client, step 1: starts a handshake in hs (whatever it held) with the
 * keyring's primary, binding the name of the member to reach (NULL or ""
 * for none), and writes the HELLO to send. PEER_HS_NO_KEY for an empty ring,
 * PEER_HS_BAD_LENGTH for a name over PEER_HS_NAME_MAX. */
peer_hs_status_t peer_hs_client_hello(peer_hs_t *hs, const seal_keyring_t *r, const char *server_name,
                                      uint8_t hello[PEER_HS_HELLO_LEN]);
/* Server, step 2: starts a handshake in hs (whatever it held) from a
 * received HELLO of len bytes, binding this node's own name (NULL or "" for
 * none), and writes the REPLY to send. */
peer_hs_status_t peer_hs_server_reply(peer_hs_t *hs, const seal_keyring_t *r, const char *self_name,
                                      const uint8_t *hello, size_t len, uint8_t reply[PEER_HS_REPLY_LEN]);
/* Client, step 3: checks the REPLY, writes the CONFIRM to send and sets up
 * *out (wiped on failure). The session may send at once: the server reads
 * frames only after the CONFIRM, which comes first on the stream. */
peer_hs_status_t peer_hs_client_confirm(peer_hs_t *hs, const uint8_t *reply, size_t len,
                                        uint8_t confirm[PEER_HS_CONFIRM_LEN], peer_hs_session_t *out);
/* Server, step 4: checks the CONFIRM and sets up *out (wiped on failure). */
peer_hs_status_t peer_hs_server_finish(peer_hs_t *hs, const uint8_t *confirm, size_t len, peer_hs_session_t *out);

/* Encrypts len bytes into out (cap >= len + PEER_HS_ABYTES; in and out must
 * not overlap); *out_len = len + PEER_HS_ABYTES. */
peer_hs_status_t peer_hs_encrypt(peer_hs_session_t *s, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                                 size_t *out_len);
/* Decrypts the next frame from the other side into out (cap >= len -
 * PEER_HS_ABYTES; in and out must not overlap); *out_len gets its length.
 * Any failure but NO_ROOM kills the session. */
peer_hs_status_t peer_hs_decrypt(peer_hs_session_t *s, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                                 size_t *out_len);

/* The server's keyring index that verified the client (0 = its primary; a
 * client's is always 0): for a metric of peers still on an old key. Valid
 * after a successful peer_hs_server_finish, until the next start. */
unsigned peer_hs_key_index(const peer_hs_t *hs);

void peer_hs_wipe(peer_hs_t *hs);
void peer_hs_session_wipe(peer_hs_session_t *s);

/* Short snake_case names, fit for logs and metric labels ("auth_failed"). */
const char *peer_hs_status_name(peer_hs_status_t s);

#endif
