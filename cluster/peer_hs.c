#include "cluster/peer_hs.h"

#include <stdbool.h>
#include <string.h>

/* Offsets in the three messages (peer_hs.h has the layout). */
#define PK_LEN crypto_kx_PUBLICKEYBYTES
#define HDR_LEN crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define MAC_LEN 32
#define NONCE_LEN 16
#define HELLO_MAC (1 + PK_LEN + NONCE_LEN)
#define REPLY_HDR (1 + PK_LEN)
#define REPLY_MAC (1 + PK_LEN + HDR_LEN)
#define CONFIRM_MAC (1 + HDR_LEN)

#define TAG_MESSAGE crypto_secretstream_xchacha20poly1305_TAG_MESSAGE

_Static_assert(PEER_HS_ABYTES == crypto_secretstream_xchacha20poly1305_ABYTES, "frame overhead");
_Static_assert(PEER_HS_HELLO_LEN == HELLO_MAC + MAC_LEN, "hello length");
_Static_assert(PEER_HS_REPLY_LEN == REPLY_MAC + MAC_LEN, "reply length");
_Static_assert(PEER_HS_CONFIRM_LEN == CONFIRM_MAC + MAC_LEN, "confirm length");
_Static_assert(PK_LEN == 32 && crypto_kx_SECRETKEYBYTES == 32 && crypto_kx_SESSIONKEYBYTES == 32, "kx sizes");
_Static_assert(crypto_secretstream_xchacha20poly1305_KEYBYTES == 32, "stream key size");
_Static_assert(SEAL_KEY_LEN >= crypto_generichash_KEYBYTES_MIN && SEAL_KEY_LEN <= crypto_generichash_KEYBYTES_MAX,
               "cluster key as a BLAKE2b key");

enum {
    STEP_NONE = 0,       /* zero-filled, ended or failed */
    STEP_CLIENT_HELLO,   /* the client sent its HELLO, waits for the REPLY */
    STEP_SERVER_REPLY,   /* the server sent its REPLY, waits for the CONFIRM */
    STEP_DONE,           /* finished: only key_index is left */
};

/* The version is in every label, so a later version's MACs and keys can
 * never be taken for this one's. */
#define LABEL_NAME "dcache peer_hs v1 name"
#define LABEL_HELLO "dcache peer_hs v1 hello"
#define LABEL_REPLY "dcache peer_hs v1 reply"
#define LABEL_CONFIRM "dcache peer_hs v1 confirm"
#define LABEL_TRANSCRIPT "dcache peer_hs v1 transcript"
#define LABEL_C2S "dcache peer_hs v1 c2s"
#define LABEL_S2C "dcache peer_hs v1 s2c"

typedef struct {
    const uint8_t *p;
    size_t n;
} part_t;

/* out = BLAKE2b-256(key, label with its NUL || parts...). The NUL keeps the
 * labels prefix-free, and every part after it has a fixed length but the
 * name, which comes last. */
static void hash_parts(uint8_t out[32], const uint8_t *key, const char *label, const part_t *parts, size_t nparts)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, key ? SEAL_KEY_LEN : 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].n) crypto_generichash_update(&st, parts[i].p, parts[i].n);
    crypto_generichash_final(&st, out, 32);
    sodium_memzero(&st, sizeof st);
}

#define NPARTS(a) (sizeof(a) / sizeof((a)[0]))

static bool name_ctx(const char *name, uint8_t ctx[32])
{
    size_t n = name ? strnlen(name, PEER_HS_NAME_MAX + 1) : 0;
    if (n > PEER_HS_NAME_MAX) return false;
    part_t parts[] = {{(const uint8_t *)name, n}};
    hash_parts(ctx, NULL, LABEL_NAME, parts, NPARTS(parts));
    return true;
}

static void hello_mac(const uint8_t key[SEAL_KEY_LEN], const uint8_t ctx[32], const uint8_t *hello, uint8_t mac[32])
{
    part_t parts[] = {{ctx, 32}, {hello, HELLO_MAC}};
    hash_parts(mac, key, LABEL_HELLO, parts, NPARTS(parts));
}

static void reply_mac(const peer_hs_t *hs, const uint8_t *reply, uint8_t mac[32])
{
    part_t parts[] = {{hs->ctx, 32}, {hs->hello, PEER_HS_HELLO_LEN}, {reply, REPLY_MAC}};
    hash_parts(mac, hs->key, LABEL_REPLY, parts, NPARTS(parts));
}

static void confirm_mac(const peer_hs_t *hs, const uint8_t *confirm, uint8_t mac[32])
{
    part_t parts[] = {{hs->ctx, 32}, {hs->hello, PEER_HS_HELLO_LEN}, {hs->reply, PEER_HS_REPLY_LEN},
                      {confirm, CONFIRM_MAC}};
    hash_parts(mac, hs->key, LABEL_CONFIRM, parts, NPARTS(parts));
}

/* The direction keys from crypto_kx's two halves, the cluster key and the
 * transcript (hs->hello, the server's pk). kx_c2s and kx_s2c are wiped. */
static void direction_keys(const peer_hs_t *hs, const uint8_t *server_pk, uint8_t kx_c2s[32], uint8_t kx_s2c[32],
                           uint8_t k_c2s[32], uint8_t k_s2c[32])
{
    uint8_t th[32];
    part_t tparts[] = {{hs->ctx, 32}, {hs->hello, PEER_HS_HELLO_LEN}, {server_pk, PK_LEN}};
    hash_parts(th, NULL, LABEL_TRANSCRIPT, tparts, NPARTS(tparts));
    part_t c2s[] = {{kx_c2s, 32}, {th, 32}};
    hash_parts(k_c2s, hs->key, LABEL_C2S, c2s, NPARTS(c2s));
    part_t s2c[] = {{kx_s2c, 32}, {th, 32}};
    hash_parts(k_s2c, hs->key, LABEL_S2C, s2c, NPARTS(s2c));
    sodium_memzero(kx_c2s, 32);
    sodium_memzero(kx_s2c, 32);
}

/* Ends a handshake: everything but key_index goes. */
static void end_hs(peer_hs_t *hs, uint8_t step)
{
    unsigned idx = hs->key_index;
    sodium_memzero(hs, sizeof *hs);
    hs->step = step;
    hs->key_index = step == STEP_DONE ? idx : 0;
}

static peer_hs_status_t fail(peer_hs_t *hs, peer_hs_session_t *out, peer_hs_status_t st)
{
    end_hs(hs, STEP_NONE);
    if (out) peer_hs_session_wipe(out);
    return st;
}

/* Length, then type, then exact length: a message of another kind is named
 * as such even when its length differs. */
static peer_hs_status_t check_shape(const uint8_t *in, size_t len, uint8_t type, size_t want)
{
    if (!in || len == 0) return PEER_HS_BAD_LENGTH;
    if (in[0] != type) return PEER_HS_BAD_TYPE;
    return len == want ? PEER_HS_OK : PEER_HS_BAD_LENGTH;
}

static unsigned ring_size(const seal_keyring_t *r)
{
    if (!r) return 0;
    return r->nkeys < SEAL_MAX_KEYS ? r->nkeys : SEAL_MAX_KEYS;
}

/* sodium_init is idempotent and thread-safe; calling it here spares a driver
 * whose keyring did not come from seal_keyring_init from a libsodium used
 * uninitialised. */
static void start(void)
{
    if (sodium_init() < 0) {
        /* Only without an entropy source: randombytes_buf then aborts,
         * louder than any status. */
    }
}

peer_hs_status_t peer_hs_client_hello(peer_hs_t *hs, const seal_keyring_t *r, const char *server_name,
                                      uint8_t hello[PEER_HS_HELLO_LEN])
{
    start();
    end_hs(hs, STEP_NONE);
    if (ring_size(r) == 0) return PEER_HS_NO_KEY;
    if (!name_ctx(server_name, hs->ctx)) return fail(hs, NULL, PEER_HS_BAD_LENGTH);
    memcpy(hs->key, r->keys[0], SEAL_KEY_LEN);
    crypto_kx_keypair(hs->pk, hs->sk);
    uint8_t *h = hs->hello;
    h[0] = PEER_HS_TYPE_HELLO;
    memcpy(h + 1, hs->pk, PK_LEN);
    randombytes_buf(h + 1 + PK_LEN, NONCE_LEN);
    hello_mac(hs->key, hs->ctx, h, h + HELLO_MAC);
    memcpy(hello, h, PEER_HS_HELLO_LEN);
    hs->step = STEP_CLIENT_HELLO;
    return PEER_HS_OK;
}

peer_hs_status_t peer_hs_server_reply(peer_hs_t *hs, const seal_keyring_t *r, const char *self_name,
                                      const uint8_t *hello, size_t len, uint8_t reply[PEER_HS_REPLY_LEN])
{
    start();
    end_hs(hs, STEP_NONE);
    unsigned nkeys = ring_size(r);
    if (nkeys == 0) return PEER_HS_NO_KEY;
    peer_hs_status_t st = check_shape(hello, len, PEER_HS_TYPE_HELLO, PEER_HS_HELLO_LEN);
    if (st != PEER_HS_OK) return fail(hs, NULL, st);
    if (!name_ctx(self_name, hs->ctx)) return fail(hs, NULL, PEER_HS_BAD_LENGTH);

    /* Every key of the ring, primary first: during a rotation a client may
     * still send with the old key, or already with the new one. */
    uint8_t mac[MAC_LEN];
    unsigned i = 0;
    for (; i < nkeys; i++) {
        hello_mac(r->keys[i], hs->ctx, hello, mac);
        if (sodium_memcmp(mac, hello + HELLO_MAC, MAC_LEN) == 0) break;
    }
    sodium_memzero(mac, sizeof mac);
    if (i == nkeys) return fail(hs, NULL, PEER_HS_AUTH_FAILED);
    hs->key_index = i;
    memcpy(hs->key, r->keys[i], SEAL_KEY_LEN);
    memcpy(hs->hello, hello, PEER_HS_HELLO_LEN);

    uint8_t spk[PK_LEN], ssk[32], kx_c2s[32], kx_s2c[32], k_s2c[32];
    crypto_kx_keypair(spk, ssk);
    /* Fails only for a low-order client key, which a key holder alone could
     * have MACed: a broken or hostile peer. */
    int kx = crypto_kx_server_session_keys(kx_c2s, kx_s2c, spk, ssk, hello + 1);
    sodium_memzero(ssk, sizeof ssk);
    if (kx != 0) {
        sodium_memzero(kx_c2s, sizeof kx_c2s);
        sodium_memzero(kx_s2c, sizeof kx_s2c);
        return fail(hs, NULL, PEER_HS_AUTH_FAILED);
    }
    direction_keys(hs, spk, kx_c2s, kx_s2c, hs->rx_key, k_s2c);

    uint8_t *p = hs->reply;
    p[0] = PEER_HS_TYPE_REPLY;
    memcpy(p + 1, spk, PK_LEN);
    crypto_secretstream_xchacha20poly1305_init_push(&hs->session.tx, p + REPLY_HDR, k_s2c);
    sodium_memzero(k_s2c, sizeof k_s2c);
    reply_mac(hs, p, p + REPLY_MAC);
    memcpy(reply, p, PEER_HS_REPLY_LEN);
    hs->step = STEP_SERVER_REPLY;
    return PEER_HS_OK;
}

peer_hs_status_t peer_hs_client_confirm(peer_hs_t *hs, const uint8_t *reply, size_t len,
                                        uint8_t confirm[PEER_HS_CONFIRM_LEN], peer_hs_session_t *out)
{
    if (hs->step != STEP_CLIENT_HELLO) return fail(hs, out, PEER_HS_BAD_STATE);
    peer_hs_status_t st = check_shape(reply, len, PEER_HS_TYPE_REPLY, PEER_HS_REPLY_LEN);
    if (st != PEER_HS_OK) return fail(hs, out, st);
    /* Only the key the HELLO was MACed with: an honest server answers with
     * the key that matched it. */
    uint8_t mac[MAC_LEN];
    reply_mac(hs, reply, mac);
    int bad = sodium_memcmp(mac, reply + REPLY_MAC, MAC_LEN);
    sodium_memzero(mac, sizeof mac);
    if (bad) return fail(hs, out, PEER_HS_AUTH_FAILED);
    memcpy(hs->reply, reply, PEER_HS_REPLY_LEN);

    uint8_t kx_c2s[32], kx_s2c[32], k_c2s[32], k_s2c[32];
    int kx = crypto_kx_client_session_keys(kx_s2c, kx_c2s, hs->pk, hs->sk, reply + 1);
    sodium_memzero(hs->sk, sizeof hs->sk);
    if (kx != 0) {
        sodium_memzero(kx_c2s, sizeof kx_c2s);
        sodium_memzero(kx_s2c, sizeof kx_s2c);
        return fail(hs, out, PEER_HS_AUTH_FAILED);
    }
    direction_keys(hs, reply + 1, kx_c2s, kx_s2c, k_c2s, k_s2c);

    peer_hs_session_t s;
    memset(&s, 0, sizeof s);
    int rc = crypto_secretstream_xchacha20poly1305_init_pull(&s.rx, reply + REPLY_HDR, k_s2c);
    uint8_t c[PEER_HS_CONFIRM_LEN];
    c[0] = PEER_HS_TYPE_CONFIRM;
    crypto_secretstream_xchacha20poly1305_init_push(&s.tx, c + 1, k_c2s);
    sodium_memzero(k_c2s, sizeof k_c2s);
    sodium_memzero(k_s2c, sizeof k_s2c);
    if (rc != 0) {
        sodium_memzero(&s, sizeof s);
        return fail(hs, out, PEER_HS_AUTH_FAILED);
    }
    confirm_mac(hs, c, c + CONFIRM_MAC);
    memcpy(confirm, c, PEER_HS_CONFIRM_LEN);
    s.live = 1;
    *out = s;
    sodium_memzero(&s, sizeof s);
    end_hs(hs, STEP_DONE);
    return PEER_HS_OK;
}

peer_hs_status_t peer_hs_server_finish(peer_hs_t *hs, const uint8_t *confirm, size_t len, peer_hs_session_t *out)
{
    if (hs->step != STEP_SERVER_REPLY) return fail(hs, out, PEER_HS_BAD_STATE);
    peer_hs_status_t st = check_shape(confirm, len, PEER_HS_TYPE_CONFIRM, PEER_HS_CONFIRM_LEN);
    if (st != PEER_HS_OK) return fail(hs, out, st);
    uint8_t mac[MAC_LEN];
    confirm_mac(hs, confirm, mac);
    int bad = sodium_memcmp(mac, confirm + CONFIRM_MAC, MAC_LEN);
    sodium_memzero(mac, sizeof mac);
    if (bad) return fail(hs, out, PEER_HS_AUTH_FAILED);
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->session.rx, confirm + 1, hs->rx_key) != 0)
        return fail(hs, out, PEER_HS_AUTH_FAILED);
    hs->session.live = 1;
    *out = hs->session;
    end_hs(hs, STEP_DONE);
    return PEER_HS_OK;
}

peer_hs_status_t peer_hs_encrypt(peer_hs_session_t *s, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                                 size_t *out_len)
{
    if (!s->live) return PEER_HS_BAD_STATE;
    if (len > crypto_secretstream_xchacha20poly1305_messagebytes_max()) return PEER_HS_BAD_LENGTH;
    if (len > cap || cap - len < PEER_HS_ABYTES) return PEER_HS_NO_ROOM;
    unsigned long long clen = 0;
    if (crypto_secretstream_xchacha20poly1305_push(&s->tx, out, &clen, in, len, NULL, 0, TAG_MESSAGE) != 0)
        return PEER_HS_BAD_LENGTH;
    *out_len = (size_t)clen;
    return PEER_HS_OK;
}

peer_hs_status_t peer_hs_decrypt(peer_hs_session_t *s, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                                 size_t *out_len)
{
    if (!s->live) return PEER_HS_BAD_STATE;
    if (len < PEER_HS_ABYTES) {
        peer_hs_session_wipe(s);
        return PEER_HS_BAD_LENGTH;
    }
    if (cap < len - PEER_HS_ABYTES) return PEER_HS_NO_ROOM;
    unsigned long long mlen = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&s->rx, out, &mlen, &tag, in, len, NULL, 0) != 0) {
        peer_hs_session_wipe(s);
        return PEER_HS_DECRYPT_FAILED;
    }
    if (tag != TAG_MESSAGE) {
        /* Authentic, yet never sent by this code (a FINAL or REKEY would
         * change the stream's meaning): refused, and not shown. */
        sodium_memzero(out, (size_t)mlen);
        peer_hs_session_wipe(s);
        return PEER_HS_DECRYPT_FAILED;
    }
    *out_len = (size_t)mlen;
    return PEER_HS_OK;
}

unsigned peer_hs_key_index(const peer_hs_t *hs)
{
    return hs->key_index;
}

void peer_hs_wipe(peer_hs_t *hs)
{
    sodium_memzero(hs, sizeof *hs);
}

void peer_hs_session_wipe(peer_hs_session_t *s)
{
    sodium_memzero(s, sizeof *s);
}

const char *peer_hs_status_name(peer_hs_status_t s)
{
    switch (s) {
    case PEER_HS_OK:
        return "ok";
    case PEER_HS_BAD_LENGTH:
        return "bad_length";
    case PEER_HS_BAD_TYPE:
        return "bad_type";
    case PEER_HS_AUTH_FAILED:
        return "auth_failed";
    case PEER_HS_NO_KEY:
        return "no_key";
    case PEER_HS_DECRYPT_FAILED:
        return "decrypt_failed";
    case PEER_HS_NO_ROOM:
        return "no_room";
    case PEER_HS_BAD_STATE:
        return "bad_state";
    }
    return "unknown";
}
