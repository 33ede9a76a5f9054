/* libFuzzer target for packet sealing: arbitrary bytes through seal_open with
 * and without a keyring must never crash or overrun; what opens must re-seal
 * and open to the same payload. The keyring parser gets the same bytes as
 * text.
 *
 * With FUZZ_SEED_DIR set, writes seed inputs there first (run.sh does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/seal.h"
#include "tests/fuzz/fuzz_seed.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static seal_keyring_t none, keyed;

static void check_open(const seal_keyring_t *r, const uint8_t *data, size_t size)
{
    /* Exactly sized heap buffers, so ASan catches a write past the payload. */
    uint8_t *out = malloc(size ? size : 1);
    size_t n = 0;
    if (seal_open(r, data, size, out, size, &n) == SEAL_OK) {
        if (n > size) __builtin_trap();
        size_t cap = n + seal_overhead(r), n2 = 0, n3 = 0;
        uint8_t *sealed = malloc(cap), *back = malloc(n ? n : 1);
        if (seal_seal(r, out, n, sealed, cap, &n2) != SEAL_OK || n2 != cap) __builtin_trap();
        if (seal_open(r, sealed, n2, back, n, &n3) != SEAL_OK || n3 != n) __builtin_trap();
        if (n && memcmp(out, back, n) != 0) __builtin_trap();
        free(sealed);
        free(back);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_open(&none, data, size);
    check_open(&keyed, data, size);

    seal_keyring_t r;
    char err[128];
    seal_keyring_init(&r);
    if (seal_keyring_parse(&r, (const char *)data, size, err, sizeof err)) {
        if (r.nkeys == 0 || r.nkeys > SEAL_MAX_KEYS) __builtin_trap();
    } else if (r.nkeys != 0 || memchr(err, '\0', sizeof err) == NULL) {
        __builtin_trap();
    }
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    uint8_t key[SEAL_KEY_LEN];
    (void)seal_key_from_base64(s, key);
    free(s);
    (void)seal_crc32c(data, size);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    uint8_t k[SEAL_KEY_LEN];
    seal_keyring_init(&none);
    seal_keyring_init(&keyed);
    for (int i = 0; i < 2; i++) {
        memset(k, 0x40 + i, sizeof k);
        seal_keyring_add(&keyed, k);
    }
    const char *dir = getenv("FUZZ_SEED_DIR");
    if (!dir) return 0;
    static const uint8_t payload[] = "\x91\x93\x03\x01\xc4\x10seed-source-id!!";
    uint8_t out[256];
    size_t n;
    if (seal_seal(&none, payload, sizeof payload - 1, out, sizeof out, &n) == SEAL_OK)
        fuzz_write_seed(dir, "plain", out, n);
    if (seal_seal(&keyed, payload, sizeof payload - 1, out, sizeof out, &n) == SEAL_OK)
        fuzz_write_seed(dir, "crypt", out, n);
    static const char ring[] = "# keys\nQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEA=\n\n"
                               "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\n";
    fuzz_write_seed(dir, "keyring", (const uint8_t *)ring, sizeof ring - 1);
    return 0;
}
