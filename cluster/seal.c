#include "cluster/seal.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#define SEAL_V_PLAIN 0x01
#define SEAL_V_CRYPT 0x02
#define SEAL_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SEAL_STR_(x) #x
#define SEAL_STR(x) SEAL_STR_(x)

_Static_assert(SEAL_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(SEAL_CRYPT_OVERHEAD == 1 + SEAL_NONCE_LEN + SEAL_TAG_LEN, "crypt overhead");

/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78). A literal table
 * rather than one built at first use: no initialisation race between threads
 * and nothing mutable. */
static const uint32_t crc32c_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
    0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
    0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
    0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
    0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
    0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
    0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
    0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
    0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
    0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
    0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
    0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
    0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
    0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
    0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
    0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
    0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
    0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
    0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
    0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
    0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
    0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
    0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
    0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
    0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
    0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
    0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
    0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
    0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
    0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
    0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
    0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
    0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

uint32_t seal_crc32c(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++) crc = crc32c_table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

void seal_keyring_init(seal_keyring_t *r)
{
    /* sodium_init is idempotent and thread-safe; calling it here spares every
     * driver and test from remembering it before the first seal. */
    if (sodium_init() < 0) {
        /* Only when the OS has no entropy source; randombytes_buf then aborts
         * at the first seal, which is louder than any status we could return. */
    }
    sodium_memzero(r, sizeof *r);
}

bool seal_keyring_add(seal_keyring_t *r, const uint8_t key[SEAL_KEY_LEN])
{
    if (r->nkeys >= SEAL_MAX_KEYS) return false;
    memcpy(r->keys[r->nkeys++], key, SEAL_KEY_LEN);
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Decodes exactly one key from b64[0..len), surrounding whitespace ignored.
 * The key is written only on success. */
static bool key_from_b64(const char *b64, size_t len, uint8_t key[SEAL_KEY_LEN])
{
    while (len > 0 && is_space(b64[0])) {
        b64++;
        len--;
    }
    while (len > 0 && is_space(b64[len - 1])) len--;
    /* One byte of slack: a 33-byte decoding must fail as too long rather than
     * be cut to 32 by the output bound. */
    uint8_t tmp[SEAL_KEY_LEN + 1];
    size_t n = 0;
    const char *end = NULL;
    bool ok = len > 0 &&
              sodium_base642bin(tmp, sizeof tmp, b64, len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) == 0 &&
              end == b64 + len && n == SEAL_KEY_LEN;
    if (ok) memcpy(key, tmp, SEAL_KEY_LEN);
    sodium_memzero(tmp, sizeof tmp);
    return ok;
}

bool seal_key_from_base64(const char *b64, uint8_t key[SEAL_KEY_LEN])
{
    return b64 && key_from_b64(b64, strlen(b64), key);
}

static bool parse_fail(char *err, size_t errcap, seal_keyring_t *tmp, const char *fmt, unsigned line)
{
    if (err && errcap) snprintf(err, errcap, fmt, line);
    sodium_memzero(tmp, sizeof *tmp);
    return false;
}

bool seal_keyring_parse(seal_keyring_t *r, const char *text, size_t len, char *err, size_t errcap)
{
    /* Parsed aside and copied on success, so a bad file leaves r as it was. */
    seal_keyring_t tmp;
    seal_keyring_init(&tmp);
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        size_t skip = 0;
        while (skip < n && is_space(line[skip])) skip++;
        if (skip == n || line[skip] == '#') continue;
        uint8_t key[SEAL_KEY_LEN];
        if (!key_from_b64(line, n, key))
            return parse_fail(err, errcap, &tmp, "line %u: not a base64-encoded 32-byte key", lineno);
        bool added = seal_keyring_add(&tmp, key);
        sodium_memzero(key, sizeof key);
        if (!added)
            return parse_fail(err, errcap, &tmp, "line %u: too many keys (at most " SEAL_STR(SEAL_MAX_KEYS) ")", lineno);
    }
    if (tmp.nkeys == 0) return parse_fail(err, errcap, &tmp, "no key found (%u lines)", lineno);
    *r = tmp;
    sodium_memzero(&tmp, sizeof tmp);
    if (err && errcap) err[0] = '\0';
    return true;
}

size_t seal_overhead(const seal_keyring_t *r)
{
    return r && r->nkeys ? SEAL_CRYPT_OVERHEAD : SEAL_PLAIN_OVERHEAD;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

seal_status_t seal_seal(const seal_keyring_t *r, const uint8_t *payload, size_t len, uint8_t *out, size_t cap,
                        size_t *out_len)
{
    size_t over = seal_overhead(r);
    if (len > cap || cap - len < over) return SEAL_NO_ROOM;
    if (!r || r->nkeys == 0) {
        out[0] = SEAL_V_PLAIN;
        put_be32(out + 1, seal_crc32c(payload, len));
        if (len) memmove(out + SEAL_PLAIN_OVERHEAD, payload, len);
        *out_len = len + SEAL_PLAIN_OVERHEAD;
        return SEAL_OK;
    }
    out[0] = SEAL_V_CRYPT;
    randombytes_buf(out + 1, SEAL_NONCE_LEN);
    unsigned long long clen = 0;
    /* The version byte is associated data, so flipping it to downgrade or
     * confuse the format fails authentication. */
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + SEAL_NONCE_LEN, &clen, payload, len, out, 1, NULL,
                                               out + 1, r->keys[0]);
    *out_len = 1 + SEAL_NONCE_LEN + (size_t)clen;
    return SEAL_OK;
}

seal_status_t seal_open(const seal_keyring_t *r, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *out_len)
{
    bool keyed = r && r->nkeys > 0;
    if (len < 1) return SEAL_TOO_SHORT;
    if (in[0] == SEAL_V_PLAIN) {
        if (keyed) return SEAL_NOT_ENCRYPTED;
        if (len < SEAL_PLAIN_OVERHEAD) return SEAL_TOO_SHORT;
        size_t n = len - SEAL_PLAIN_OVERHEAD;
        if (seal_crc32c(in + SEAL_PLAIN_OVERHEAD, n) != get_be32(in + 1)) return SEAL_BAD_CHECKSUM;
        if (n > cap) return SEAL_NO_ROOM;
        if (n) memmove(out, in + SEAL_PLAIN_OVERHEAD, n);
        *out_len = n;
        return SEAL_OK;
    }
    if (in[0] != SEAL_V_CRYPT) return SEAL_BAD_VERSION;
    if (!keyed) return SEAL_AUTH_FAILED; /* we hold no key that could open it */
    if (len < SEAL_CRYPT_OVERHEAD) return SEAL_TOO_SHORT;
    size_t n = len - SEAL_CRYPT_OVERHEAD;
    if (n > cap) return SEAL_NO_ROOM;
    const uint8_t *nonce = in + 1, *c = in + 1 + SEAL_NONCE_LEN;
    /* Primary first: after a rotation most traffic is sealed with it. */
    for (unsigned i = 0; i < r->nkeys && i < SEAL_MAX_KEYS; i++) {
        unsigned long long mlen = 0;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, c, len - 1 - SEAL_NONCE_LEN, in, 1, nonce,
                                                       r->keys[i]) == 0) {
            *out_len = (size_t)mlen;
            return SEAL_OK;
        }
    }
    return SEAL_AUTH_FAILED;
}

const char *seal_status_name(seal_status_t s)
{
    switch (s) {
    case SEAL_OK:
        return "ok";
    case SEAL_TOO_SHORT:
        return "too_short";
    case SEAL_BAD_VERSION:
        return "bad_version";
    case SEAL_BAD_CHECKSUM:
        return "bad_checksum";
    case SEAL_AUTH_FAILED:
        return "auth_failed";
    case SEAL_NOT_ENCRYPTED:
        return "not_encrypted";
    case SEAL_NO_ROOM:
        return "no_room";
    }
    return "unknown";
}
