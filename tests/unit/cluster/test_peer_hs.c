/* peer_hs: a handshake gives each connection its own keys, both ends proving
 * the cluster key (any key of the ring, for rotation); a frame is accepted
 * once, in order, in its direction, on its session only; anything tampered,
 * truncated, replayed or keyed otherwise is refused. The wire format is
 * checked against a client written from the header's description alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "cluster/peer_hs.h"

static void make_key(uint8_t key[SEAL_KEY_LEN], uint8_t seed)
{
    for (int i = 0; i < SEAL_KEY_LEN; i++) key[i] = (uint8_t)(seed * 17 + i);
}

static void ring_of(seal_keyring_t *r, const uint8_t *seeds, unsigned n)
{
    seal_keyring_init(r);
    for (unsigned i = 0; i < n; i++) {
        uint8_t key[SEAL_KEY_LEN];
        make_key(key, seeds[i]);
        assert_true(seal_keyring_add(r, key));
    }
}

#define RING(r, ...)                                                                                                   \
    ring_of((r), (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static int all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* A whole handshake; returns the first failure, with *step the step that
 * failed (1 hello, 2 reply, 3 confirm, 4 finish). */
static peer_hs_status_t handshake(const seal_keyring_t *cr, const char *cname, const seal_keyring_t *sr,
                                  const char *sname, peer_hs_session_t *c, peer_hs_session_t *s, unsigned *key_index,
                                  int *step)
{
    peer_hs_t ch, sh;
    memset(&ch, 0, sizeof ch);
    memset(&sh, 0, sizeof sh);
    uint8_t hello[PEER_HS_HELLO_LEN], reply[PEER_HS_REPLY_LEN], confirm[PEER_HS_CONFIRM_LEN];
    peer_hs_status_t st;
    *step = 1;
    if ((st = peer_hs_client_hello(&ch, cr, cname, hello)) != PEER_HS_OK) return st;
    *step = 2;
    if ((st = peer_hs_server_reply(&sh, sr, sname, hello, sizeof hello, reply)) != PEER_HS_OK) return st;
    *step = 3;
    if ((st = peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, c)) != PEER_HS_OK) return st;
    *step = 4;
    if ((st = peer_hs_server_finish(&sh, confirm, sizeof confirm, s)) != PEER_HS_OK) return st;
    if (key_index) *key_index = peer_hs_key_index(&sh);
    *step = 0;
    return PEER_HS_OK;
}

static void handshake_ok(const seal_keyring_t *cr, const seal_keyring_t *sr, peer_hs_session_t *c,
                         peer_hs_session_t *s, unsigned *key_index)
{
    int step = -1;
    assert_int_equal(handshake(cr, NULL, sr, NULL, c, s, key_index, &step), PEER_HS_OK);
    assert_int_equal(step, 0);
}

/* Encrypts msg on a into frame (returns its length). */
static size_t seal_frame(peer_hs_session_t *a, const void *msg, size_t len, uint8_t *frame, size_t cap)
{
    size_t n = 0;
    assert_int_equal(peer_hs_encrypt(a, msg, len, frame, cap, &n), PEER_HS_OK);
    assert_int_equal(n, len + PEER_HS_ABYTES);
    return n;
}

static void open_ok(peer_hs_session_t *b, const uint8_t *frame, size_t n, const void *msg, size_t len)
{
    uint8_t *out = malloc(len ? len : 1);
    size_t m = 0;
    assert_int_equal(peer_hs_decrypt(b, frame, n, out, len, &m), PEER_HS_OK);
    assert_int_equal(m, len);
    if (len) assert_memory_equal(out, msg, len);
    free(out);
}

static void open_fails(peer_hs_session_t *b, const uint8_t *frame, size_t n, peer_hs_status_t want)
{
    uint8_t out[256];
    size_t m = 0;
    assert_int_equal(peer_hs_decrypt(b, frame, n, out, sizeof out, &m), want);
    assert_false(b->live);
}

static void send_ok(peer_hs_session_t *a, peer_hs_session_t *b, const void *msg, size_t len)
{
    size_t cap = len + PEER_HS_ABYTES;
    uint8_t *frame = malloc(cap);
    size_t n = seal_frame(a, msg, len, frame, cap);
    open_ok(b, frame, n, msg, len);
    free(frame);
}

static void test_roundtrip(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_session_t c, s;
    unsigned idx = 99;
    handshake_ok(&r, &r, &c, &s, &idx);
    assert_int_equal(idx, 0);
    assert_true(c.live);
    assert_true(s.live);

    /* Pipelined both ways, interleaved, sizes from empty to larger than any
     * internal block. */
    size_t big_len = 200000;
    uint8_t *big = malloc(big_len);
    randombytes_buf(big, big_len);
    send_ok(&c, &s, "", 0);
    send_ok(&s, &c, "", 0);
    for (int i = 0; i < 300; i++) {
        size_t len = (size_t)(i * 677) % 5000;
        send_ok(&c, &s, big + i, len);
        if (i % 3 == 0) send_ok(&s, &c, big + 2 * i, len / 2);
    }
    send_ok(&c, &s, big, big_len);
    send_ok(&s, &c, big, big_len);

    /* The same message twice gives two unrelated frames. */
    uint8_t f1[64], f2[64];
    size_t n1 = seal_frame(&c, "same", 4, f1, sizeof f1), n2 = seal_frame(&c, "same", 4, f2, sizeof f2);
    assert_int_equal(n1, n2);
    assert_memory_not_equal(f1, f2, n1);
    open_ok(&s, f1, n1, "same", 4);
    open_ok(&s, f2, n2, "same", 4);
    free(big);
    peer_hs_session_wipe(&c);
    peer_hs_session_wipe(&s);
}

/* ---- The wire format, from the header's description alone -------------- */

static void label_hash(uint8_t out[32], const uint8_t *key, const char *label, const uint8_t *a, size_t alen,
                       const uint8_t *b, size_t blen, const uint8_t *c, size_t clen, const uint8_t *d, size_t dlen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, key ? 32 : 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
    if (alen) crypto_generichash_update(&st, a, alen);
    if (blen) crypto_generichash_update(&st, b, blen);
    if (clen) crypto_generichash_update(&st, c, clen);
    if (dlen) crypto_generichash_update(&st, d, dlen);
    crypto_generichash_final(&st, out, 32);
}

static void ctx_of(const char *name, uint8_t ctx[32])
{
    label_hash(ctx, NULL, "dcache peer_hs v1 name", (const uint8_t *)name, name ? strlen(name) : 0, NULL, 0, NULL, 0,
               NULL, 0);
}

static void test_wire_format(void **state)
{
    uint8_t K[32];
    make_key(K, 7);
    seal_keyring_t sr;
    RING(&sr, 3, 7); /* K is the server's second key */
    const char *name = "node-b";
    uint8_t ctx[32];
    ctx_of(name, ctx);

    /* HELLO by hand. */
    uint8_t cpk[32], csk[32], hello[81];
    randombytes_buf(csk, sizeof csk);
    crypto_scalarmult_base(cpk, csk);
    hello[0] = 0x10;
    memcpy(hello + 1, cpk, 32);
    randombytes_buf(hello + 33, 16);
    label_hash(hello + 49, K, "dcache peer_hs v1 hello", ctx, 32, hello, 49, NULL, 0, NULL, 0);
    assert_int_equal(PEER_HS_HELLO_LEN, sizeof hello);

    peer_hs_t sh;
    memset(&sh, 0, sizeof sh);
    uint8_t reply[PEER_HS_REPLY_LEN];
    assert_int_equal(peer_hs_server_reply(&sh, &sr, name, hello, sizeof hello, reply), PEER_HS_OK);
    assert_int_equal(PEER_HS_REPLY_LEN, 89);

    /* REPLY checked by hand. */
    assert_int_equal(reply[0], 0x11);
    uint8_t mac[32];
    label_hash(mac, K, "dcache peer_hs v1 reply", ctx, 32, hello, 81, reply, 57, NULL, 0);
    assert_memory_equal(mac, reply + 57, 32);

    /* crypto_kx spelled out: BLAKE2b-512(q || client pk || server pk) =
     * kx_s2c || kx_c2s. */
    const uint8_t *spk = reply + 1;
    uint8_t q[32], kx[64];
    assert_int_equal(crypto_scalarmult(q, csk, spk), 0);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 64);
    crypto_generichash_update(&st, q, 32);
    crypto_generichash_update(&st, cpk, 32);
    crypto_generichash_update(&st, spk, 32);
    crypto_generichash_final(&st, kx, 64);
    uint8_t th[32], k_c2s[32], k_s2c[32];
    label_hash(th, NULL, "dcache peer_hs v1 transcript", ctx, 32, hello, 81, spk, 32, NULL, 0);
    label_hash(k_c2s, K, "dcache peer_hs v1 c2s", kx + 32, 32, th, 32, NULL, 0, NULL, 0);
    label_hash(k_s2c, K, "dcache peer_hs v1 s2c", kx, 32, th, 32, NULL, 0, NULL, 0);

    crypto_secretstream_xchacha20poly1305_state rx, tx;
    assert_int_equal(crypto_secretstream_xchacha20poly1305_init_pull(&rx, reply + 33, k_s2c), 0);
    uint8_t confirm[57];
    confirm[0] = 0x12;
    crypto_secretstream_xchacha20poly1305_init_push(&tx, confirm + 1, k_c2s);
    label_hash(confirm + 25, K, "dcache peer_hs v1 confirm", ctx, 32, hello, 81, reply, 89, confirm, 25);
    assert_int_equal(PEER_HS_CONFIRM_LEN, sizeof confirm);

    peer_hs_session_t s;
    assert_int_equal(peer_hs_server_finish(&sh, confirm, sizeof confirm, &s), PEER_HS_OK);
    assert_int_equal(peer_hs_key_index(&sh), 1);

    /* Frames both ways: plain secretstream, TAG_MESSAGE, no associated data. */
    uint8_t frame[64], out[64];
    unsigned long long n = 0, m = 0;
    unsigned char tag = 0xff;
    crypto_secretstream_xchacha20poly1305_push(&tx, frame, &n, (const uint8_t *)"ping", 4, NULL, 0,
                                               crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    open_ok(&s, frame, (size_t)n, "ping", 4);
    size_t fn = seal_frame(&s, "pong", 4, frame, sizeof frame);
    assert_int_equal(crypto_secretstream_xchacha20poly1305_pull(&rx, out, &m, &tag, frame, fn, NULL, 0), 0);
    assert_int_equal(tag, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    assert_int_equal(m, 4);
    assert_memory_equal(out, "pong", 4);

    /* Authentic frames with another tag are refused. */
    crypto_secretstream_xchacha20poly1305_push(&tx, frame, &n, (const uint8_t *)"bye", 3, NULL, 0,
                                               crypto_secretstream_xchacha20poly1305_TAG_FINAL);
    open_fails(&s, frame, (size_t)n, PEER_HS_DECRYPT_FAILED);

    /* And the real client's HELLO verifies by hand. */
    seal_keyring_t cr;
    RING(&cr, 7, 3);
    peer_hs_t ch;
    assert_int_equal(peer_hs_client_hello(&ch, &cr, name, hello), PEER_HS_OK);
    assert_int_equal(hello[0], 0x10);
    label_hash(mac, K, "dcache peer_hs v1 hello", ctx, 32, hello, 49, NULL, 0, NULL, 0);
    assert_memory_equal(mac, hello + 49, 32);
    peer_hs_wipe(&ch);
}

/* A REPLY as a server holding `key` would make it for this HELLO. */
static void forge_reply(const uint8_t key[32], const char *name, const uint8_t hello[PEER_HS_HELLO_LEN],
                        uint8_t reply[PEER_HS_REPLY_LEN])
{
    uint8_t ctx[32], sk[32];
    ctx_of(name, ctx);
    reply[0] = 0x11;
    crypto_kx_keypair(reply + 1, sk);
    randombytes_buf(reply + 33, 24);
    label_hash(reply + 57, key, "dcache peer_hs v1 reply", ctx, 32, hello, 81, reply, 57, NULL, 0);
}

static void test_wrong_key(void **state)
{
    seal_keyring_t a, b;
    RING(&a, 1);
    RING(&b, 2);
    peer_hs_session_t c, s;
    int step = 0;

    /* A server without the client's key refuses the HELLO. */
    assert_int_equal(handshake(&a, NULL, &b, NULL, &c, &s, NULL, &step), PEER_HS_AUTH_FAILED);
    assert_int_equal(step, 2);

    /* A client refuses a REPLY from a server with another key. */
    uint8_t k1[32], k2[32];
    make_key(k1, 1);
    make_key(k2, 2);
    peer_hs_t ch, ch2;
    uint8_t hello[PEER_HS_HELLO_LEN], reply[PEER_HS_REPLY_LEN], confirm[PEER_HS_CONFIRM_LEN];
    assert_int_equal(peer_hs_client_hello(&ch, &a, NULL, hello), PEER_HS_OK);
    ch2 = ch;
    forge_reply(k2, NULL, hello, reply);
    assert_int_equal(peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, &c), PEER_HS_AUTH_FAILED);
    assert_false(c.live);
    /* The same REPLY made with the right key passes (the forgery above
     * failed for its key alone). */
    forge_reply(k1, NULL, hello, reply);
    assert_int_equal(peer_hs_client_confirm(&ch2, reply, sizeof reply, confirm, &c), PEER_HS_OK);
    peer_hs_session_wipe(&c);

    /* A client that has the server's key only as an old one still MACs
     * with its primary: refused. */
    seal_keyring_t ab;
    RING(&ab, 1, 2);
    assert_int_equal(handshake(&ab, NULL, &b, NULL, &c, &s, NULL, &step), PEER_HS_AUTH_FAILED);
    assert_int_equal(step, 2);

    /* Without a key there is no handshake at all. */
    seal_keyring_t none;
    seal_keyring_init(&none);
    uint8_t junk[PEER_HS_HELLO_LEN];
    memset(junk, 0xaa, sizeof junk);
    assert_int_equal(peer_hs_client_hello(&ch, &none, NULL, hello), PEER_HS_NO_KEY);
    assert_int_equal(peer_hs_client_hello(&ch, NULL, NULL, hello), PEER_HS_NO_KEY);
    peer_hs_t sh;
    assert_int_equal(peer_hs_server_reply(&sh, &none, NULL, junk, sizeof junk, reply), PEER_HS_NO_KEY);
    assert_int_equal(peer_hs_server_reply(&sh, NULL, NULL, junk, sizeof junk, reply), PEER_HS_NO_KEY);
    assert_int_equal(handshake(&none, NULL, &a, NULL, &c, &s, NULL, &step), PEER_HS_NO_KEY);
    assert_int_equal(step, 1);
}

static void test_degenerate_keys(void **state)
{
    /* A key holder sending a low-order X25519 key (all zeros: the shared
     * secret would be zero, known to anyone) is refused by either side. */
    uint8_t K[32], ctx[32], hello[PEER_HS_HELLO_LEN], reply[PEER_HS_REPLY_LEN], confirm[PEER_HS_CONFIRM_LEN];
    make_key(K, 1);
    seal_keyring_t r;
    RING(&r, 1);
    ctx_of(NULL, ctx);
    memset(hello, 0, sizeof hello);
    hello[0] = 0x10;
    randombytes_buf(hello + 33, 16);
    label_hash(hello + 49, K, "dcache peer_hs v1 hello", ctx, 32, hello, 49, NULL, 0, NULL, 0);
    peer_hs_t sh, ch;
    peer_hs_session_t c;
    assert_int_equal(peer_hs_server_reply(&sh, &r, NULL, hello, sizeof hello, reply), PEER_HS_AUTH_FAILED);
    assert_true(all_zero(&sh, sizeof sh));

    assert_int_equal(peer_hs_client_hello(&ch, &r, NULL, hello), PEER_HS_OK);
    memset(reply, 0, sizeof reply);
    reply[0] = 0x11;
    label_hash(reply + 57, K, "dcache peer_hs v1 reply", ctx, 32, hello, 81, reply, 57, NULL, 0);
    assert_int_equal(peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, &c), PEER_HS_AUTH_FAILED);
    assert_false(c.live);
    assert_true(all_zero(&ch, sizeof ch));
}

static void rotation_case(const seal_keyring_t *cr, const seal_keyring_t *sr, unsigned want_index)
{
    peer_hs_session_t c, s;
    unsigned idx = 99;
    handshake_ok(cr, sr, &c, &s, &idx);
    assert_int_equal(idx, want_index);
    send_ok(&c, &s, "up", 2);
    send_ok(&s, &c, "down", 4);
    peer_hs_session_wipe(&c);
    peer_hs_session_wipe(&s);
}

static void test_rotation(void **state)
{
    /* 1 = old key, 2 = new key. Rotation: add 2 everywhere as a second key,
     * make it primary node by node, then drop 1. Every pair of nodes in any
     * of those states must connect, either way round. */
    seal_keyring_t old_only, old_new, new_old, new_only;
    RING(&old_only, 1);
    RING(&old_new, 1, 2);
    RING(&new_old, 2, 1);
    RING(&new_only, 2);

    rotation_case(&old_only, &old_new, 0);
    rotation_case(&old_new, &old_only, 0);
    rotation_case(&old_only, &new_old, 1);  /* a client not yet rotated */
    rotation_case(&new_old, &old_new, 1);   /* primaries differ both ways */
    rotation_case(&old_new, &new_old, 1);
    rotation_case(&new_old, &new_old, 0);
    rotation_case(&new_only, &new_old, 0);
    rotation_case(&new_old, &new_only, 0);
    rotation_case(&new_only, &old_new, 1);

    /* Out of step: the old key dropped while a client still sends with it. */
    peer_hs_session_t c, s;
    int step = 0;
    assert_int_equal(handshake(&old_new, NULL, &new_only, NULL, &c, &s, NULL, &step), PEER_HS_AUTH_FAILED);
    assert_int_equal(step, 2);
    assert_int_equal(handshake(&new_only, NULL, &old_only, NULL, &c, &s, NULL, &step), PEER_HS_AUTH_FAILED);

    /* Every slot of a full ring is tried. */
    seal_keyring_t full, last;
    RING(&full, 10, 11, 12, 13, 14, 15, 16, 17);
    RING(&last, 17);
    rotation_case(&last, &full, 7);
    /* A corrupt count reads no further than the array. */
    full.nkeys = 1000;
    rotation_case(&last, &full, 7);
    RING(&last, 18);
    assert_int_equal(handshake(&last, NULL, &full, NULL, &c, &s, NULL, &step), PEER_HS_AUTH_FAILED);
}

static void test_names(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_session_t c, s;
    int step = 0;
    assert_int_equal(handshake(&r, "node-b", &r, "node-b", &c, &s, NULL, &step), PEER_HS_OK);
    send_ok(&c, &s, "x", 1);
    /* Steered to another node: the server sees the HELLO was not for it. */
    assert_int_equal(handshake(&r, "node-b", &r, "node-c", &c, &s, NULL, &step), PEER_HS_AUTH_FAILED);
    assert_int_equal(step, 2);
    assert_int_equal(handshake(&r, "node-b", &r, NULL, &c, &s, NULL, &step), PEER_HS_AUTH_FAILED);
    assert_int_equal(handshake(&r, NULL, &r, "node-b", &c, &s, NULL, &step), PEER_HS_AUTH_FAILED);
    /* NULL and "" are the same: no binding. */
    assert_int_equal(handshake(&r, NULL, &r, "", &c, &s, NULL, &step), PEER_HS_OK);
    assert_int_equal(handshake(&r, "", &r, NULL, &c, &s, NULL, &step), PEER_HS_OK);

    char name[PEER_HS_NAME_MAX + 2];
    memset(name, 'n', PEER_HS_NAME_MAX);
    name[PEER_HS_NAME_MAX] = '\0';
    assert_int_equal(handshake(&r, name, &r, name, &c, &s, NULL, &step), PEER_HS_OK);
    name[PEER_HS_NAME_MAX] = 'n';
    name[PEER_HS_NAME_MAX + 1] = '\0';
    assert_int_equal(handshake(&r, name, &r, name, &c, &s, NULL, &step), PEER_HS_BAD_LENGTH);
    assert_int_equal(step, 1);
    char shorter[PEER_HS_NAME_MAX + 1];
    memcpy(shorter, name, PEER_HS_NAME_MAX);
    shorter[PEER_HS_NAME_MAX] = '\0';
    assert_int_equal(handshake(&r, shorter, &r, name, &c, &s, NULL, &step), PEER_HS_BAD_LENGTH);
    assert_int_equal(step, 2);
    peer_hs_session_wipe(&c);
    peer_hs_session_wipe(&s);
}

static void test_replay_same_session(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_session_t c, s;
    handshake_ok(&r, &r, &c, &s, NULL);
    uint8_t f1[64], f2[64];
    size_t n1 = seal_frame(&c, "PUT a=1", 7, f1, sizeof f1);
    size_t n2 = seal_frame(&c, "PUT b=2", 7, f2, sizeof f2);
    open_ok(&s, f1, n1, "PUT a=1", 7);
    open_fails(&s, f1, n1, PEER_HS_DECRYPT_FAILED);
    /* The session is dead now, even for the genuine next frame. */
    uint8_t out[64];
    size_t m = 0;
    assert_int_equal(peer_hs_decrypt(&s, f2, n2, out, sizeof out, &m), PEER_HS_BAD_STATE);
    assert_int_equal(peer_hs_encrypt(&s, (const uint8_t *)"x", 1, f1, sizeof f1, &m), PEER_HS_BAD_STATE);

    /* The same the other way. */
    handshake_ok(&r, &r, &c, &s, NULL);
    n1 = seal_frame(&s, "OK", 2, f1, sizeof f1);
    open_ok(&c, f1, n1, "OK", 2);
    open_fails(&c, f1, n1, PEER_HS_DECRYPT_FAILED);
    peer_hs_session_wipe(&s);
}

static void test_reorder_and_drop(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_session_t c, s;
    uint8_t f[3][64];
    size_t n[3];

    handshake_ok(&r, &r, &c, &s, NULL);
    for (int i = 0; i < 3; i++) n[i] = seal_frame(&c, "frame", 5, f[i], sizeof f[i]);
    open_fails(&s, f[1], n[1], PEER_HS_DECRYPT_FAILED); /* second before first */

    handshake_ok(&r, &r, &c, &s, NULL);
    for (int i = 0; i < 3; i++) n[i] = seal_frame(&c, "frame", 5, f[i], sizeof f[i]);
    open_ok(&s, f[0], n[0], "frame", 5);
    open_fails(&s, f[2], n[2], PEER_HS_DECRYPT_FAILED); /* one dropped */

    handshake_ok(&r, &r, &c, &s, NULL);
    for (int i = 0; i < 3; i++) n[i] = seal_frame(&s, "frame", 5, f[i], sizeof f[i]);
    open_ok(&c, f[0], n[0], "frame", 5);
    open_ok(&c, f[1], n[1], "frame", 5);
    open_fails(&c, f[0], n[0], PEER_HS_DECRYPT_FAILED); /* an old one again */
    peer_hs_session_wipe(&c);
    peer_hs_session_wipe(&s);
}

static void test_other_session_and_direction(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_session_t c1, s1, c2, s2;
    handshake_ok(&r, &r, &c1, &s1, NULL);
    handshake_ok(&r, &r, &c2, &s2, NULL);
    uint8_t f[64], g[64];
    /* The first frame of each session: same position, same keyring. */
    size_t n = seal_frame(&c1, "DELETE k", 8, f, sizeof f);
    size_t m = seal_frame(&s1, "DELETED", 7, g, sizeof g);
    peer_hs_session_t s2b = s2, c2b = c2;
    open_fails(&s2b, f, n, PEER_HS_DECRYPT_FAILED);
    open_fails(&c2b, g, m, PEER_HS_DECRYPT_FAILED);

    /* Reflected back to its sender, or across directions. */
    peer_hs_session_t c1b = c1, s1b = s1;
    open_fails(&c1b, f, n, PEER_HS_DECRYPT_FAILED);
    open_fails(&s1b, g, m, PEER_HS_DECRYPT_FAILED);

    /* The genuine receivers still take them. */
    open_ok(&s1, f, n, "DELETE k", 8);
    open_ok(&c1, g, m, "DELETED", 7);
    peer_hs_session_wipe(&c1);
    peer_hs_session_wipe(&s1);
    peer_hs_session_wipe(&c2);
    peer_hs_session_wipe(&s2);
}

static void test_tampered_handshake(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_t ch, sh, ch0, sh0;
    uint8_t hello[PEER_HS_HELLO_LEN], reply[PEER_HS_REPLY_LEN], confirm[PEER_HS_CONFIRM_LEN];
    uint8_t bad_hello[PEER_HS_HELLO_LEN], bad_reply[PEER_HS_REPLY_LEN], bad_confirm[PEER_HS_CONFIRM_LEN];
    uint8_t out[PEER_HS_REPLY_LEN];
    peer_hs_session_t c, s;

    assert_int_equal(peer_hs_client_hello(&ch0, &r, "n", hello), PEER_HS_OK);
    for (size_t i = 0; i < sizeof hello; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(bad_hello, hello, sizeof hello);
            bad_hello[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(peer_hs_server_reply(&sh, &r, "n", bad_hello, sizeof bad_hello, out),
                             i == 0 ? PEER_HS_BAD_TYPE : PEER_HS_AUTH_FAILED);
        }
    }
    assert_int_equal(peer_hs_server_reply(&sh0, &r, "n", hello, sizeof hello, reply), PEER_HS_OK);
    for (size_t i = 0; i < sizeof reply; i++) {
        memcpy(bad_reply, reply, sizeof reply);
        bad_reply[i] ^= 0x80;
        ch = ch0;
        assert_int_equal(peer_hs_client_confirm(&ch, bad_reply, sizeof bad_reply, confirm, &c),
                         i == 0 ? PEER_HS_BAD_TYPE : PEER_HS_AUTH_FAILED);
        assert_false(c.live);
    }
    ch = ch0;
    assert_int_equal(peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, &c), PEER_HS_OK);
    for (size_t i = 0; i < sizeof confirm; i++) {
        memcpy(bad_confirm, confirm, sizeof confirm);
        bad_confirm[i] ^= 0x01;
        sh = sh0;
        assert_int_equal(peer_hs_server_finish(&sh, bad_confirm, sizeof bad_confirm, &s),
                         i == 0 ? PEER_HS_BAD_TYPE : PEER_HS_AUTH_FAILED);
        assert_false(s.live);
    }
    sh = sh0;
    assert_int_equal(peer_hs_server_finish(&sh, confirm, sizeof confirm, &s), PEER_HS_OK);

    /* Every bit of a frame counts. */
    uint8_t f[PEER_HS_ABYTES + 5], bad[sizeof f];
    size_t n = seal_frame(&c, "hello", 5, f, sizeof f);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, f, n);
            bad[i] ^= (uint8_t)(1u << bit);
            peer_hs_session_t t = s;
            open_fails(&t, bad, n, PEER_HS_DECRYPT_FAILED);
        }
    }
    open_ok(&s, f, n, "hello", 5);
    peer_hs_wipe(&ch0);
    peer_hs_wipe(&sh0);
    peer_hs_session_wipe(&c);
    peer_hs_session_wipe(&s);
}

static void test_replayed_hello(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_t ch, genuine, sh1, sh2, sh3;
    uint8_t hello[PEER_HS_HELLO_LEN], reply1[PEER_HS_REPLY_LEN], reply2[PEER_HS_REPLY_LEN],
        reply3[PEER_HS_REPLY_LEN], confirm1[PEER_HS_CONFIRM_LEN], confirm2[PEER_HS_CONFIRM_LEN];
    peer_hs_session_t c1, s1, c2, s2, junk;

    /* A recorded connection: HELLO, REPLY, CONFIRM, frames. */
    assert_int_equal(peer_hs_client_hello(&ch, &r, NULL, hello), PEER_HS_OK);
    genuine = ch; /* stands for the client's ephemeral secret, which the replayer lacks */
    assert_int_equal(peer_hs_server_reply(&sh1, &r, NULL, hello, sizeof hello, reply1), PEER_HS_OK);
    assert_int_equal(peer_hs_client_confirm(&ch, reply1, sizeof reply1, confirm1, &c1), PEER_HS_OK);
    assert_int_equal(peer_hs_server_finish(&sh1, confirm1, sizeof confirm1, &s1), PEER_HS_OK);
    uint8_t up[64], down[64];
    size_t nu = seal_frame(&c1, "PUT k=v", 7, up, sizeof up);
    size_t nd = seal_frame(&s1, "OK", 2, down, sizeof down);

    /* Replayed to a server: a new REPLY, and the old CONFIRM does not fit it. */
    assert_int_equal(peer_hs_server_reply(&sh3, &r, NULL, hello, sizeof hello, reply3), PEER_HS_OK);
    assert_memory_not_equal(reply3 + 1, reply1 + 1, 32);  /* fresh server key */
    assert_memory_not_equal(reply3 + 33, reply1 + 33, 24); /* fresh stream header */
    assert_int_equal(peer_hs_server_finish(&sh3, confirm1, sizeof confirm1, &junk), PEER_HS_AUTH_FAILED);
    assert_false(junk.live);
    assert_int_equal(peer_hs_key_index(&sh3), 0);

    /* Even the genuine client, completing with the new REPLY, gets keys of
     * which the recorded frames know nothing: they are useless there. */
    assert_int_equal(peer_hs_server_reply(&sh2, &r, NULL, hello, sizeof hello, reply2), PEER_HS_OK);
    assert_int_equal(peer_hs_client_confirm(&genuine, reply2, sizeof reply2, confirm2, &c2), PEER_HS_OK);
    assert_memory_not_equal(confirm2, confirm1, sizeof confirm1);
    assert_int_equal(peer_hs_server_finish(&sh2, confirm2, sizeof confirm2, &s2), PEER_HS_OK);
    peer_hs_session_t s2b = s2, c2b = c2;
    open_fails(&s2b, up, nu, PEER_HS_DECRYPT_FAILED);
    open_fails(&c2b, down, nd, PEER_HS_DECRYPT_FAILED);
    send_ok(&c2, &s2, "fresh", 5);
    /* A REPLY for another HELLO is refused as well. */
    peer_hs_t other;
    uint8_t hello_b[PEER_HS_HELLO_LEN], cb[PEER_HS_CONFIRM_LEN];
    assert_int_equal(peer_hs_client_hello(&other, &r, NULL, hello_b), PEER_HS_OK);
    assert_int_equal(peer_hs_client_confirm(&other, reply1, sizeof reply1, cb, &junk), PEER_HS_AUTH_FAILED);

    open_ok(&s1, up, nu, "PUT k=v", 7);
    open_ok(&c1, down, nd, "OK", 2);
    peer_hs_session_wipe(&c1);
    peer_hs_session_wipe(&s1);
    peer_hs_session_wipe(&c2);
    peer_hs_session_wipe(&s2);
}

static void test_lengths_and_types(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_t ch0, sh0, ch, sh;
    uint8_t hello[PEER_HS_HELLO_LEN + 1], reply[PEER_HS_REPLY_LEN + 1], confirm[PEER_HS_CONFIRM_LEN + 1];
    uint8_t out[PEER_HS_REPLY_LEN];
    peer_hs_session_t c, s;
    assert_int_equal(peer_hs_client_hello(&ch0, &r, NULL, hello), PEER_HS_OK);
    hello[PEER_HS_HELLO_LEN] = 0;

    size_t hl[] = {0, 1, 49, PEER_HS_HELLO_LEN - 1, PEER_HS_HELLO_LEN + 1};
    for (size_t i = 0; i < sizeof hl / sizeof hl[0]; i++)
        assert_int_equal(peer_hs_server_reply(&sh, &r, NULL, hello, hl[i], out), PEER_HS_BAD_LENGTH);
    assert_int_equal(peer_hs_server_reply(&sh, &r, NULL, NULL, 0, out), PEER_HS_BAD_LENGTH);
    assert_int_equal(peer_hs_server_reply(&sh0, &r, NULL, hello, PEER_HS_HELLO_LEN, reply), PEER_HS_OK);
    reply[PEER_HS_REPLY_LEN] = 0;

    size_t rl[] = {0, 1, PEER_HS_REPLY_LEN - 1, PEER_HS_REPLY_LEN + 1};
    for (size_t i = 0; i < sizeof rl / sizeof rl[0]; i++) {
        ch = ch0;
        assert_int_equal(peer_hs_client_confirm(&ch, reply, rl[i], confirm, &c), PEER_HS_BAD_LENGTH);
    }
    /* Another message where a REPLY belongs: named by its type. */
    ch = ch0;
    assert_int_equal(peer_hs_client_confirm(&ch, hello, PEER_HS_HELLO_LEN, confirm, &c), PEER_HS_BAD_TYPE);
    uint8_t hello_sized[PEER_HS_REPLY_LEN];
    memset(hello_sized, 0, sizeof hello_sized);
    memcpy(hello_sized, hello, PEER_HS_HELLO_LEN);
    ch = ch0;
    assert_int_equal(peer_hs_client_confirm(&ch, hello_sized, sizeof hello_sized, confirm, &c), PEER_HS_BAD_TYPE);
    assert_int_equal(peer_hs_server_reply(&sh, &r, NULL, reply, PEER_HS_REPLY_LEN, out), PEER_HS_BAD_TYPE);
    uint8_t sealed[PEER_HS_HELLO_LEN];
    memcpy(sealed, hello, sizeof sealed);
    sealed[0] = 0x02; /* a seal frame's first byte: a peer that skipped the handshake */
    assert_int_equal(peer_hs_server_reply(&sh, &r, NULL, sealed, sizeof sealed, out), PEER_HS_BAD_TYPE);

    ch = ch0;
    assert_int_equal(peer_hs_client_confirm(&ch, reply, PEER_HS_REPLY_LEN, confirm, &c), PEER_HS_OK);
    confirm[PEER_HS_CONFIRM_LEN] = 0;
    size_t cl[] = {0, 1, PEER_HS_CONFIRM_LEN - 1, PEER_HS_CONFIRM_LEN + 1};
    for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++) {
        sh = sh0;
        assert_int_equal(peer_hs_server_finish(&sh, confirm, cl[i], &s), PEER_HS_BAD_LENGTH);
    }
    sh = sh0;
    assert_int_equal(peer_hs_server_finish(&sh, reply, PEER_HS_CONFIRM_LEN, &s), PEER_HS_BAD_TYPE);
    sh = sh0;
    assert_int_equal(peer_hs_server_finish(&sh, confirm, PEER_HS_CONFIRM_LEN, &s), PEER_HS_OK);

    /* Frames: shorter than the overhead, cut, or with a byte more. */
    uint8_t f[64];
    size_t n = seal_frame(&c, "truncate me", 11, f, sizeof f - 1);
    for (size_t len = 0; len < PEER_HS_ABYTES; len++) {
        peer_hs_session_t t = s;
        open_fails(&t, f, len, PEER_HS_BAD_LENGTH);
    }
    for (size_t len = PEER_HS_ABYTES; len < n; len++) {
        peer_hs_session_t t = s;
        open_fails(&t, f, len, PEER_HS_DECRYPT_FAILED);
    }
    f[n] = 0;
    peer_hs_session_t t = s;
    open_fails(&t, f, n + 1, PEER_HS_DECRYPT_FAILED);
    open_ok(&s, f, n, "truncate me", 11);
    peer_hs_wipe(&ch0);
    peer_hs_wipe(&sh0);
    peer_hs_session_wipe(&c);
    peer_hs_session_wipe(&s);
}

static void test_no_room(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    peer_hs_session_t c, s;
    handshake_ok(&r, &r, &c, &s, NULL);
    uint8_t f[64], out[64];
    size_t n = 0, m = 0;
    assert_int_equal(peer_hs_encrypt(&c, (const uint8_t *)"abcdef", 6, f, 6 + PEER_HS_ABYTES - 1, &n),
                     PEER_HS_NO_ROOM);
    assert_int_equal(peer_hs_encrypt(&c, (const uint8_t *)"abcdef", 6, f, 0, &n), PEER_HS_NO_ROOM);
    assert_int_equal(peer_hs_encrypt(&c, (const uint8_t *)"abcdef", 6, f, 5, &n), PEER_HS_NO_ROOM);
    /* Nothing was used up: the next frame is still the first. */
    n = seal_frame(&c, "abcdef", 6, f, 6 + PEER_HS_ABYTES);
    assert_int_equal(peer_hs_decrypt(&s, f, n, out, 5, &m), PEER_HS_NO_ROOM);
    assert_true(s.live);
    open_ok(&s, f, n, "abcdef", 6);
    /* Exactly enough room for an empty message. */
    n = seal_frame(&c, "", 0, f, PEER_HS_ABYTES);
    assert_int_equal(peer_hs_decrypt(&s, f, n, out, 0, &m), PEER_HS_OK);
    assert_int_equal(m, 0);
    peer_hs_session_wipe(&c);
    peer_hs_session_wipe(&s);
}

static void test_states_and_wiping(void **state)
{
    seal_keyring_t r;
    RING(&r, 1);
    uint8_t hello[PEER_HS_HELLO_LEN], reply[PEER_HS_REPLY_LEN], confirm[PEER_HS_CONFIRM_LEN], f[64], out[64];
    memset(reply, 0x11, sizeof reply);
    memset(confirm, 0x12, sizeof confirm);
    memset(f, 0, sizeof f);
    size_t n = 0;
    peer_hs_session_t c, s, zero;
    memset(&zero, 0, sizeof zero);

    /* Zero-filled structs are unusable, not keyed with zeros. */
    assert_int_equal(peer_hs_encrypt(&zero, (const uint8_t *)"x", 1, f, sizeof f, &n), PEER_HS_BAD_STATE);
    assert_int_equal(peer_hs_decrypt(&zero, f, sizeof f, out, sizeof out, &n), PEER_HS_BAD_STATE);
    peer_hs_t ch, sh;
    memset(&ch, 0, sizeof ch);
    memset(&sh, 0, sizeof sh);
    assert_int_equal(peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, &c), PEER_HS_BAD_STATE);
    assert_int_equal(peer_hs_server_finish(&sh, confirm, sizeof confirm, &s), PEER_HS_BAD_STATE);

    /* Each side's steps, in order, once. */
    assert_int_equal(peer_hs_client_hello(&ch, &r, NULL, hello), PEER_HS_OK);
    assert_false(all_zero(ch.sk, sizeof ch.sk));
    assert_int_equal(peer_hs_server_reply(&sh, &r, NULL, hello, sizeof hello, reply), PEER_HS_OK);
    peer_hs_t wrong = ch;
    assert_int_equal(peer_hs_server_finish(&wrong, confirm, sizeof confirm, &s), PEER_HS_BAD_STATE);
    wrong = sh;
    assert_int_equal(peer_hs_client_confirm(&wrong, reply, sizeof reply, confirm, &c), PEER_HS_BAD_STATE);
    assert_true(all_zero(&wrong, sizeof wrong)); /* a failure wipes the handshake */
    assert_int_equal(peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, &c), PEER_HS_OK);
    assert_int_equal(peer_hs_server_finish(&sh, confirm, sizeof confirm, &s), PEER_HS_OK);

    /* Secrets are gone from the finished handshakes. */
    assert_true(all_zero(ch.key, sizeof ch.key));
    assert_true(all_zero(ch.sk, sizeof ch.sk));
    assert_true(all_zero(sh.key, sizeof sh.key));
    assert_true(all_zero(sh.rx_key, sizeof sh.rx_key));
    assert_true(all_zero(&sh.session, sizeof sh.session));

    peer_hs_session_t c2 = c;
    assert_int_equal(peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, &c2), PEER_HS_BAD_STATE);
    assert_false(c2.live); /* a failed step leaves no usable session in *out */
    assert_int_equal(peer_hs_server_finish(&sh, confirm, sizeof confirm, &s), PEER_HS_BAD_STATE);
    assert_false(s.live);

    /* Wiping. */
    handshake_ok(&r, &r, &c, &s, NULL);
    send_ok(&c, &s, "a", 1);
    peer_hs_session_wipe(&c);
    assert_true(all_zero(&c, sizeof c));
    assert_int_equal(peer_hs_encrypt(&c, (const uint8_t *)"x", 1, f, sizeof f, &n), PEER_HS_BAD_STATE);
    assert_int_equal(peer_hs_client_hello(&ch, &r, NULL, hello), PEER_HS_OK);
    peer_hs_wipe(&ch);
    assert_true(all_zero(&ch, sizeof ch));
    assert_int_equal(peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, &c), PEER_HS_BAD_STATE);
    peer_hs_session_wipe(&s);
}

static void test_status_names(void **state)
{
    assert_string_equal(peer_hs_status_name(PEER_HS_OK), "ok");
    assert_string_equal(peer_hs_status_name(PEER_HS_BAD_LENGTH), "bad_length");
    assert_string_equal(peer_hs_status_name(PEER_HS_BAD_TYPE), "bad_type");
    assert_string_equal(peer_hs_status_name(PEER_HS_AUTH_FAILED), "auth_failed");
    assert_string_equal(peer_hs_status_name(PEER_HS_NO_KEY), "no_key");
    assert_string_equal(peer_hs_status_name(PEER_HS_DECRYPT_FAILED), "decrypt_failed");
    assert_string_equal(peer_hs_status_name(PEER_HS_NO_ROOM), "no_room");
    assert_string_equal(peer_hs_status_name(PEER_HS_BAD_STATE), "bad_state");
    assert_string_equal(peer_hs_status_name((peer_hs_status_t)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_wire_format),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_degenerate_keys),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_replay_same_session),
        cmocka_unit_test(test_reorder_and_drop),
        cmocka_unit_test(test_other_session_and_direction),
        cmocka_unit_test(test_tampered_handshake),
        cmocka_unit_test(test_replayed_hello),
        cmocka_unit_test(test_lengths_and_types),
        cmocka_unit_test(test_no_room),
        cmocka_unit_test(test_states_and_wiping),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
