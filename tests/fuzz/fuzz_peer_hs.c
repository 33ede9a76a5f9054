/* libFuzzer target for the peer handshake: arbitrary bytes as a HELLO to a
 * server, as the REPLY to a genuine HELLO, as the CONFIRM to a genuine
 * REPLY, and as frames on an established session, must never crash or
 * overrun, and nothing but the genuine bytes may be accepted (a MAC or tag
 * cannot be forged by mutation). The handshake states are copies of ones
 * made once at start-up, so every input meets the same state and the seeds
 * (the genuine messages) reach the success paths. Randomness is a fixed
 * stream, so those states, and the seeds, are the same in every run: a
 * crashing input or a kept corpus replays against the same handshake.
 *
 * With FUZZ_SEED_DIR set, writes seed inputs there first (run.sh does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/peer_hs.h"
#include "tests/fuzz/fuzz_seed.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "node-b"

static seal_keyring_t ring;
static peer_hs_t client_sent_hello, server_sent_reply;
static peer_hs_session_t client_session, server_session;
static uint8_t hello[PEER_HS_HELLO_LEN], reply[PEER_HS_REPLY_LEN], confirm[PEER_HS_CONFIRM_LEN];
/* The first two client frames, their plaintexts, and both as one input
 * ([len u8][frame]...: the chunked form below). */
static const uint8_t msg1[] = "\x91\x93\x03\x01\xc4\x10seed-request-id!";
static const uint8_t msg2[] = "second";
static uint8_t frame1[sizeof msg1 - 1 + PEER_HS_ABYTES], frame2[sizeof msg2 - 1 + PEER_HS_ABYTES];

static int same(const uint8_t *data, size_t size, const uint8_t *want, size_t len)
{
    return size == len && memcmp(data, want, len) == 0;
}

/* Exactly sized heap copy, so ASan catches a read past the input. */
static uint8_t *dup_input(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (size) memcpy(p, data, size);
    return p;
}

static void fuzz_handshake(const uint8_t *data, size_t size)
{
    uint8_t *in = dup_input(data, size);
    uint8_t out_reply[PEER_HS_REPLY_LEN], out_confirm[PEER_HS_CONFIRM_LEN];
    peer_hs_t hs;
    peer_hs_session_t s;

    /* As a HELLO: only the genuine one verifies (this NAME, this key). */
    peer_hs_status_t st = peer_hs_server_reply(&hs, &ring, NAME, in, size, out_reply);
    if (st == PEER_HS_OK && !same(data, size, hello, sizeof hello)) __builtin_trap();
    if (st == PEER_HS_OK && (out_reply[0] != PEER_HS_TYPE_REPLY || peer_hs_key_index(&hs) != 1)) __builtin_trap();
    peer_hs_wipe(&hs);

    /* As the REPLY to the genuine HELLO. */
    hs = client_sent_hello;
    st = peer_hs_client_confirm(&hs, in, size, out_confirm, &s);
    if ((st == PEER_HS_OK) != same(data, size, reply, sizeof reply)) __builtin_trap();
    if (st != PEER_HS_OK && s.live) __builtin_trap();
    peer_hs_wipe(&hs);
    peer_hs_session_wipe(&s);

    /* As the CONFIRM to the genuine REPLY. */
    hs = server_sent_reply;
    st = peer_hs_server_finish(&hs, in, size, &s);
    if ((st == PEER_HS_OK) != same(data, size, confirm, sizeof confirm)) __builtin_trap();
    if (st == PEER_HS_OK && peer_hs_key_index(&hs) != 1) __builtin_trap();
    if (st != PEER_HS_OK && s.live) __builtin_trap();
    peer_hs_wipe(&hs);
    peer_hs_session_wipe(&s);
    free(in);
}

/* Feeds one frame to the session; returns whether it was accepted. */
static int feed(peer_hs_session_t *s, const uint8_t *frame, size_t len, size_t *out_len)
{
    uint8_t *in = dup_input(frame, len);
    size_t cap = len > PEER_HS_ABYTES ? len - PEER_HS_ABYTES : 0;
    uint8_t *out = malloc(cap ? cap : 1);
    peer_hs_status_t st = peer_hs_decrypt(s, in, len, out, cap, out_len);
    if (st == PEER_HS_OK && *out_len != cap) __builtin_trap();
    if (st != PEER_HS_OK && st != PEER_HS_BAD_LENGTH && st != PEER_HS_DECRYPT_FAILED) __builtin_trap();
    if (st != PEER_HS_OK && s->live) __builtin_trap(); /* a failure kills the session */
    free(out);
    free(in);
    return st == PEER_HS_OK;
}

static void fuzz_frames(const uint8_t *data, size_t size)
{
    /* The whole input as the first frame from the client. */
    peer_hs_session_t s = server_session;
    size_t n = 0;
    if (feed(&s, data, size, &n) != same(data, size, frame1, sizeof frame1)) __builtin_trap();
    /* And to the client, which must refuse its own direction's frame. */
    peer_hs_session_t c = client_session;
    if (feed(&c, data, size, &n)) __builtin_trap();

    /* The input as a stream of frames, [len u8][frame] each: only the
     * genuine frames, in order, pass; the first refusal ends it. */
    s = server_session;
    size_t pos = 0;
    unsigned accepted = 0;
    while (pos < size && s.live) {
        size_t len = data[pos++];
        if (len > size - pos) len = size - pos;
        const uint8_t *f = data + pos;
        pos += len;
        if (!feed(&s, f, len, &n)) break;
        const uint8_t *want = accepted == 0 ? frame1 : accepted == 1 ? frame2 : NULL;
        size_t want_len = accepted == 0 ? sizeof frame1 : sizeof frame2;
        if (!want || !same(f, len, want, want_len)) __builtin_trap();
        accepted++;
    }
    peer_hs_session_wipe(&s);
    peer_hs_session_wipe(&c);

    /* The bytes as a message: encrypted on a copy of the server's side,
     * opened on a copy of the client's, unchanged. */
    s = server_session;
    c = client_session;
    size_t cap = size + PEER_HS_ABYTES, m = 0;
    uint8_t *enc = malloc(cap), *back = malloc(size ? size : 1);
    if (peer_hs_encrypt(&s, data, size, enc, cap, &n) != PEER_HS_OK || n != cap) __builtin_trap();
    if (peer_hs_decrypt(&c, enc, n, back, size, &m) != PEER_HS_OK || m != size) __builtin_trap();
    if (size && memcmp(back, data, size) != 0) __builtin_trap();
    if (peer_hs_encrypt(&s, data, size, enc, cap - 1, &n) != PEER_HS_NO_ROOM) __builtin_trap();
    free(enc);
    free(back);
    peer_hs_session_wipe(&s);
    peer_hs_session_wipe(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_handshake(data, size);
    fuzz_frames(data, size);
    return 0;
}

/* libsodium's randombytes from a counter: reproducible keys and nonces. */
static uint64_t rng_counter;

static void rng_buf(void *buf, size_t n)
{
    uint8_t seed[randombytes_SEEDBYTES] = {0};
    memcpy(seed, &rng_counter, sizeof rng_counter);
    rng_counter++;
    randombytes_buf_deterministic(buf, n, seed);
}

static uint32_t rng_random(void)
{
    uint32_t v;
    rng_buf(&v, sizeof v);
    return v;
}

static const char *rng_name(void)
{
    return "fuzz_counter";
}

static randombytes_implementation rng = {
    .implementation_name = rng_name,
    .random = rng_random,
    .buf = rng_buf,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Before sodium_init (seal_keyring_init), as libsodium requires. */
    randombytes_set_implementation(&rng);
    /* The client's primary is the server's second key: the rotation path. */
    uint8_t k[SEAL_KEY_LEN];
    seal_keyring_t client_ring;
    seal_keyring_init(&ring);
    seal_keyring_init(&client_ring);
    memset(k, 0x40, sizeof k);
    seal_keyring_add(&ring, k);
    memset(k, 0x41, sizeof k);
    seal_keyring_add(&ring, k);
    seal_keyring_add(&client_ring, k);

    peer_hs_t ch, sh;
    size_t n = 0;
    if (peer_hs_client_hello(&ch, &client_ring, NAME, hello) != PEER_HS_OK) abort();
    client_sent_hello = ch;
    if (peer_hs_server_reply(&sh, &ring, NAME, hello, sizeof hello, reply) != PEER_HS_OK) abort();
    server_sent_reply = sh;
    if (peer_hs_client_confirm(&ch, reply, sizeof reply, confirm, &client_session) != PEER_HS_OK) abort();
    if (peer_hs_server_finish(&sh, confirm, sizeof confirm, &server_session) != PEER_HS_OK) abort();
    /* The frames come from a copy, so the template sessions stay at their
     * first frame (a copy of a live session is fine here: nothing secret). */
    peer_hs_session_t c = client_session;
    if (peer_hs_encrypt(&c, msg1, sizeof msg1 - 1, frame1, sizeof frame1, &n) != PEER_HS_OK) abort();
    if (peer_hs_encrypt(&c, msg2, sizeof msg2 - 1, frame2, sizeof frame2, &n) != PEER_HS_OK) abort();

    const char *dir = getenv("FUZZ_SEED_DIR");
    if (!dir) return 0;
    fuzz_write_seed(dir, "hello", hello, sizeof hello);
    fuzz_write_seed(dir, "reply", reply, sizeof reply);
    fuzz_write_seed(dir, "confirm", confirm, sizeof confirm);
    fuzz_write_seed(dir, "frame1", frame1, sizeof frame1);
    uint8_t stream[2 + sizeof frame1 + sizeof frame2];
    stream[0] = (uint8_t)sizeof frame1;
    memcpy(stream + 1, frame1, sizeof frame1);
    stream[1 + sizeof frame1] = (uint8_t)sizeof frame2;
    memcpy(stream + 2 + sizeof frame1, frame2, sizeof frame2);
    fuzz_write_seed(dir, "stream", stream, sizeof stream);
    return 0;
}
