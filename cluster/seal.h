/* seal: authenticated framing for gossip datagrams and peer frames, pure
 * (libsodium only, no I/O).
 *
 *   without a key:  [0x01][crc32c(payload) u32 big-endian][payload]
 *   with a key:     [0x02][nonce 24][XChaCha20-Poly1305(payload) + tag 16]
 *                   the first byte is authenticated as associated data.
 *
 * The checksum catches corruption only; with a key every byte is
 * authenticated and the payload is secret. A keyring holds one primary key
 * (used to seal) and older keys still accepted when opening, so a cluster can
 * rotate keys node by node. Nonces are random (192 bits: no counter to keep).
 *
 * Threads: a keyring is immutable after setup; seal/open may run from any
 * thread at once. seal_keyring_init calls sodium_init (idempotent), so a
 * driver that sets up a keyring, even an empty one, needs nothing else.
 */
#ifndef DCACHE_SEAL_H
#define DCACHE_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEAL_KEY_LEN 32
#define SEAL_MAX_KEYS 8
#define SEAL_PLAIN_OVERHEAD 5
#define SEAL_CRYPT_OVERHEAD 41   /* 1 + 24 nonce + 16 tag */

typedef struct seal_keyring {
    unsigned nkeys;              /* 0 = no encryption, checksum only */
    uint8_t keys[SEAL_MAX_KEYS][SEAL_KEY_LEN]; /* keys[0] is the primary */
} seal_keyring_t;

typedef enum {
    SEAL_OK = 0,
    SEAL_TOO_SHORT = -1,
    SEAL_BAD_VERSION = -2,       /* unknown first byte */
    SEAL_BAD_CHECKSUM = -3,
    SEAL_AUTH_FAILED = -4,       /* no key in the ring opens it (wrong key or forged) */
    SEAL_NOT_ENCRYPTED = -5,     /* a keyring is set but the datagram is plain */
    SEAL_NO_ROOM = -6,
} seal_status_t;

void seal_keyring_init(seal_keyring_t *r);
/* Adds a key (the first added is primary). Returns false when full. */
bool seal_keyring_add(seal_keyring_t *r, const uint8_t key[SEAL_KEY_LEN]);
/* Parses base64 (standard alphabet with padding, 32 bytes decoded, leading
 * and trailing whitespace ignored) into a key; key is written only on
 * success. */
bool seal_key_from_base64(const char *b64, uint8_t key[SEAL_KEY_LEN]);
/* Parses keyring text: one base64 key per line, the first is primary, blank
 * lines and lines starting with '#' are ignored. (Reading the file is the
 * driver's business: cluster/ does no I/O.) Returns false with a message in
 * err (errcap bytes, naming the line) and r unchanged; at least one key is
 * required. */
bool seal_keyring_parse(seal_keyring_t *r, const char *text, size_t len, char *err, size_t errcap);

/* Overhead seal adds for this keyring. */
size_t seal_overhead(const seal_keyring_t *r);

/* Writes the sealed form of payload into out (cap bytes; payload and out
 * must not overlap); *out_len gets its length, len + seal_overhead(r). */
seal_status_t seal_seal(const seal_keyring_t *r, const uint8_t *payload, size_t len, uint8_t *out, size_t cap,
                        size_t *out_len);
/* Opens a sealed datagram into out (cap bytes, at least the payload length:
 * len minus the overhead; in and out must not overlap). With a keyring,
 * plain datagrams are refused (an attacker must not downgrade); without
 * one, encrypted datagrams fail with SEAL_AUTH_FAILED. Key order: the
 * primary first, then the older ones. */
seal_status_t seal_open(const seal_keyring_t *r, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *out_len);

/* Short snake_case names, fit for logs and metric labels ("auth_failed"). */
const char *seal_status_name(seal_status_t s);
uint32_t seal_crc32c(const uint8_t *data, size_t len);

#endif
