/* seal: datagrams round-trip plain and encrypted; any corruption, truncation,
 * wrong key or downgrade is refused; keyrings rotate and parse with useful
 * errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "cluster/seal.h"

static const uint8_t payload[] = "the quick brown fox jumps over the lazy dog, gossiping";
#define PLEN (sizeof payload - 1)

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

static size_t seal_ok(const seal_keyring_t *r, const uint8_t *p, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    assert_int_equal(seal_seal(r, p, len, out, cap, &n), SEAL_OK);
    assert_int_equal(n, len + seal_overhead(r));
    return n;
}

static void test_crc32c(void **state)
{
    /* The standard check value for CRC-32C, and RFC 3720's 32 zero bytes. */
    assert_int_equal(seal_crc32c((const uint8_t *)"123456789", 9), 0xe3069283u);
    assert_int_equal(seal_crc32c(NULL, 0), 0);
    uint8_t zeros[32] = {0};
    assert_int_equal(seal_crc32c(zeros, 32), 0x8a9136aau);
}

static void test_plain_roundtrip(void **state)
{
    seal_keyring_t none;
    seal_keyring_init(&none);
    uint8_t sealed[256], out[256];
    size_t n = seal_ok(&none, payload, PLEN, sealed, sizeof sealed);
    assert_int_equal(seal_overhead(&none), SEAL_PLAIN_OVERHEAD);
    assert_int_equal(sealed[0], 0x01);
    uint32_t crc = seal_crc32c(payload, PLEN);
    assert_int_equal(sealed[1], crc >> 24);
    assert_int_equal(sealed[4], crc & 0xff);
    size_t m = 0;
    assert_int_equal(seal_open(&none, sealed, n, out, sizeof out, &m), SEAL_OK);
    assert_int_equal(m, PLEN);
    assert_memory_equal(out, payload, PLEN);
    /* A NULL ring is the same as an empty one. */
    assert_int_equal(seal_open(NULL, sealed, n, out, sizeof out, &m), SEAL_OK);

    /* Empty payload. */
    n = seal_ok(&none, NULL, 0, sealed, sizeof sealed);
    assert_int_equal(seal_open(&none, sealed, n, out, sizeof out, &m), SEAL_OK);
    assert_int_equal(m, 0);
}

static void test_encrypted_roundtrip(void **state)
{
    seal_keyring_t r;
    ring_of(&r, (const uint8_t[]){1}, 1);
    uint8_t a[256], b[256], out[256];
    size_t na = seal_ok(&r, payload, PLEN, a, sizeof a);
    size_t nb = seal_ok(&r, payload, PLEN, b, sizeof b);
    assert_int_equal(seal_overhead(&r), SEAL_CRYPT_OVERHEAD);
    assert_int_equal(a[0], 0x02);
    /* Random nonces: the same payload never seals the same way twice. */
    assert_int_equal(na, nb);
    assert_memory_not_equal(a, b, na);
    /* The payload does not appear in clear. */
    assert_null(memmem(a, na, "quick brown", 11));
    size_t m = 0;
    assert_int_equal(seal_open(&r, a, na, out, sizeof out, &m), SEAL_OK);
    assert_int_equal(m, PLEN);
    assert_memory_equal(out, payload, PLEN);
    assert_int_equal(seal_open(&r, b, nb, out, sizeof out, &m), SEAL_OK);

    na = seal_ok(&r, NULL, 0, a, sizeof a);
    assert_int_equal(seal_open(&r, a, na, out, sizeof out, &m), SEAL_OK);
    assert_int_equal(m, 0);
}

static void check_bitflips(const seal_keyring_t *r)
{
    uint8_t sealed[256], bad[256], out[256];
    size_t n = seal_ok(r, payload, PLEN, sealed, sizeof sealed);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, sealed, n);
            bad[i] ^= (uint8_t)(1u << bit);
            size_t m = 0;
            seal_status_t st = seal_open(r, bad, n, out, sizeof out, &m);
            assert_int_not_equal(st, SEAL_OK);
            if (i > 0) assert_int_equal(st, r->nkeys ? SEAL_AUTH_FAILED : SEAL_BAD_CHECKSUM);
            else assert_int_equal(st, SEAL_BAD_VERSION);
        }
    }
}

static void test_bitflips(void **state)
{
    seal_keyring_t none, keyed;
    seal_keyring_init(&none);
    ring_of(&keyed, (const uint8_t[]){3}, 1);
    check_bitflips(&none);
    check_bitflips(&keyed);
}

static void check_truncation(const seal_keyring_t *r)
{
    uint8_t sealed[256], out[256];
    size_t n = seal_ok(r, payload, PLEN, sealed, sizeof sealed);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *p = malloc(cut ? cut : 1); /* exactly cut bytes, for ASan */
        memcpy(p, sealed, cut);
        size_t m = 0;
        assert_int_not_equal(seal_open(r, p, cut, out, sizeof out, &m), SEAL_OK);
        free(p);
    }
    size_t m;
    assert_int_equal(seal_open(r, sealed, 0, out, sizeof out, &m), SEAL_TOO_SHORT);
    assert_int_equal(seal_open(r, sealed, r->nkeys ? SEAL_CRYPT_OVERHEAD - 1 : SEAL_PLAIN_OVERHEAD - 1, out,
                               sizeof out, &m),
                     SEAL_TOO_SHORT);
}

static void test_truncated(void **state)
{
    seal_keyring_t none, keyed;
    seal_keyring_init(&none);
    ring_of(&keyed, (const uint8_t[]){4}, 1);
    check_truncation(&none);
    check_truncation(&keyed);
}

static void test_wrong_key(void **state)
{
    seal_keyring_t a, b;
    ring_of(&a, (const uint8_t[]){5}, 1);
    ring_of(&b, (const uint8_t[]){6}, 1);
    uint8_t sealed[256], out[256];
    size_t n = seal_ok(&a, payload, PLEN, sealed, sizeof sealed), m;
    assert_int_equal(seal_open(&b, sealed, n, out, sizeof out, &m), SEAL_AUTH_FAILED);
}

static void test_rotation(void **state)
{
    seal_keyring_t old_only, new_old, new_only;
    ring_of(&old_only, (const uint8_t[]){10}, 1);
    ring_of(&new_old, (const uint8_t[]){11, 10}, 2);
    ring_of(&new_only, (const uint8_t[]){11}, 1);
    uint8_t sealed[256], out[256];
    size_t n, m;

    /* A node still on the old key is understood by one that has rotated. */
    n = seal_ok(&old_only, payload, PLEN, sealed, sizeof sealed);
    assert_int_equal(seal_open(&new_old, sealed, n, out, sizeof out, &m), SEAL_OK);
    assert_memory_equal(out, payload, PLEN);
    assert_int_equal(seal_open(&new_only, sealed, n, out, sizeof out, &m), SEAL_AUTH_FAILED);

    /* The rotated node seals with its primary, the new key. */
    n = seal_ok(&new_old, payload, PLEN, sealed, sizeof sealed);
    assert_int_equal(seal_open(&new_only, sealed, n, out, sizeof out, &m), SEAL_OK);
    assert_int_equal(seal_open(&old_only, sealed, n, out, sizeof out, &m), SEAL_AUTH_FAILED);

    /* A full ring still opens with its last key. */
    seal_keyring_t full;
    uint8_t seeds[SEAL_MAX_KEYS];
    for (int i = 0; i < SEAL_MAX_KEYS; i++) seeds[i] = (uint8_t)(20 + i);
    seeds[SEAL_MAX_KEYS - 1] = 10;
    ring_of(&full, seeds, SEAL_MAX_KEYS);
    uint8_t key[SEAL_KEY_LEN] = {0};
    assert_false(seal_keyring_add(&full, key));
    n = seal_ok(&old_only, payload, PLEN, sealed, sizeof sealed);
    assert_int_equal(seal_open(&full, sealed, n, out, sizeof out, &m), SEAL_OK);
}

static void test_downgrade_and_versions(void **state)
{
    seal_keyring_t none, keyed;
    seal_keyring_init(&none);
    ring_of(&keyed, (const uint8_t[]){7}, 1);
    uint8_t sealed[256], out[256];
    size_t n, m;

    n = seal_ok(&none, payload, PLEN, sealed, sizeof sealed);
    assert_int_equal(seal_open(&keyed, sealed, n, out, sizeof out, &m), SEAL_NOT_ENCRYPTED);
    n = seal_ok(&keyed, payload, PLEN, sealed, sizeof sealed);
    assert_int_equal(seal_open(&none, sealed, n, out, sizeof out, &m), SEAL_AUTH_FAILED);

    for (int v = 0; v < 256; v++) {
        if (v == 1 || v == 2) continue;
        sealed[0] = (uint8_t)v;
        assert_int_equal(seal_open(&keyed, sealed, n, out, sizeof out, &m), SEAL_BAD_VERSION);
        assert_int_equal(seal_open(&none, sealed, n, out, sizeof out, &m), SEAL_BAD_VERSION);
    }
}

static void test_no_room(void **state)
{
    seal_keyring_t none, keyed;
    seal_keyring_init(&none);
    ring_of(&keyed, (const uint8_t[]){8}, 1);
    uint8_t sealed[256], out[256];
    size_t n, m;
    assert_int_equal(seal_seal(&none, payload, PLEN, sealed, PLEN + SEAL_PLAIN_OVERHEAD - 1, &n), SEAL_NO_ROOM);
    assert_int_equal(seal_seal(&keyed, payload, PLEN, sealed, PLEN + SEAL_CRYPT_OVERHEAD - 1, &n), SEAL_NO_ROOM);
    assert_int_equal(seal_seal(&keyed, payload, PLEN, sealed, 3, &n), SEAL_NO_ROOM);
    n = seal_ok(&keyed, payload, PLEN, sealed, PLEN + SEAL_CRYPT_OVERHEAD);
    assert_int_equal(seal_open(&keyed, sealed, n, out, PLEN - 1, &m), SEAL_NO_ROOM);
    assert_int_equal(seal_open(&keyed, sealed, n, out, PLEN, &m), SEAL_OK);
    n = seal_ok(&none, payload, PLEN, sealed, PLEN + SEAL_PLAIN_OVERHEAD);
    assert_int_equal(seal_open(&none, sealed, n, out, PLEN - 1, &m), SEAL_NO_ROOM);
    assert_int_equal(seal_open(&none, sealed, n, out, PLEN, &m), SEAL_OK);
}

static void b64_of(const uint8_t *bin, size_t n, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, bin, n, sodium_base64_VARIANT_ORIGINAL);
}

static void test_key_from_base64(void **state)
{
    uint8_t key[SEAL_KEY_LEN], got[SEAL_KEY_LEN], big[33] = {0};
    char b64[64], buf[128];
    make_key(key, 1);
    b64_of(key, SEAL_KEY_LEN, b64, sizeof b64);
    assert_true(seal_key_from_base64(b64, got));
    assert_memory_equal(got, key, SEAL_KEY_LEN);

    snprintf(buf, sizeof buf, " \t%s\r\n", b64);
    memset(got, 0, sizeof got);
    assert_true(seal_key_from_base64(buf, got));
    assert_memory_equal(got, key, SEAL_KEY_LEN);

    /* Wrong lengths, alphabet, inner whitespace, missing padding. */
    memset(got, 0xee, sizeof got);
    b64_of(key, 31, buf, sizeof buf);
    assert_false(seal_key_from_base64(buf, got));
    b64_of(big, 33, buf, sizeof buf);
    assert_false(seal_key_from_base64(buf, got));
    sodium_bin2base64(buf, sizeof buf, key, SEAL_KEY_LEN, sodium_base64_VARIANT_URLSAFE);
    if (strpbrk(buf, "-_")) assert_false(seal_key_from_base64(buf, got));
    snprintf(buf, sizeof buf, "%.20s %s", b64, b64 + 20);
    assert_false(seal_key_from_base64(buf, got));
    snprintf(buf, sizeof buf, "%.43s", b64);
    assert_false(seal_key_from_base64(buf, got));
    assert_false(seal_key_from_base64("", got));
    assert_false(seal_key_from_base64("   ", got));
    assert_false(seal_key_from_base64("not base64 at all!", got));
    assert_false(seal_key_from_base64(NULL, got));
    for (int i = 0; i < SEAL_KEY_LEN; i++) assert_int_equal(got[i], 0xee); /* untouched on failure */
}

static void test_keyring_parse(void **state)
{
    uint8_t k1[SEAL_KEY_LEN], k2[SEAL_KEY_LEN];
    char b1[64], b2[64], text[1024], err[128];
    make_key(k1, 1);
    make_key(k2, 2);
    b64_of(k1, SEAL_KEY_LEN, b1, sizeof b1);
    b64_of(k2, SEAL_KEY_LEN, b2, sizeof b2);
    seal_keyring_t r;
    seal_keyring_init(&r);

    int n = snprintf(text, sizeof text, "# cluster keys\n\n  %s\r\n\t# old key, drop after rotation\n%s", b1, b2);
    assert_true(seal_keyring_parse(&r, text, (size_t)n, err, sizeof err));
    assert_int_equal(r.nkeys, 2);
    assert_memory_equal(r.keys[0], k1, SEAL_KEY_LEN);
    assert_memory_equal(r.keys[1], k2, SEAL_KEY_LEN);

    /* Errors name the line and leave the ring as it was. */
    n = snprintf(text, sizeof text, "%s\n# comment\nbogus\n%s\n", b2, b1);
    assert_false(seal_keyring_parse(&r, text, (size_t)n, err, sizeof err));
    assert_non_null(strstr(err, "line 3"));
    assert_int_equal(r.nkeys, 2);
    assert_memory_equal(r.keys[0], k1, SEAL_KEY_LEN);

    n = snprintf(text, sizeof text, "# only comments\n\n   \n");
    assert_false(seal_keyring_parse(&r, text, (size_t)n, err, sizeof err));
    assert_non_null(strstr(err, "no key"));
    assert_false(seal_keyring_parse(&r, "", 0, err, sizeof err));

    n = 0;
    for (int i = 0; i < SEAL_MAX_KEYS + 1; i++) n += snprintf(text + n, sizeof text - (size_t)n, "%s\n", b1);
    assert_false(seal_keyring_parse(&r, text, (size_t)n, err, sizeof err));
    assert_non_null(strstr(err, "line 9"));
    assert_non_null(strstr(err, "too many"));

    /* The length bounds the text: no NUL needed, and one inside is an error. */
    memcpy(text, b2, 44);
    text[44] = 'X';
    assert_true(seal_keyring_parse(&r, text, 44, NULL, 0));
    assert_memory_equal(r.keys[0], k2, SEAL_KEY_LEN);
    assert_int_equal(r.nkeys, 1);
    n = snprintf(text, sizeof text, "%s\n%s", b1, b2);
    text[50] = '\0';
    assert_false(seal_keyring_parse(&r, text, (size_t)n, err, 8)); /* a short err buffer truncates */
    assert_int_equal(strlen(err), 7);
}

static void test_status_names(void **state)
{
    assert_string_equal(seal_status_name(SEAL_OK), "ok");
    assert_string_equal(seal_status_name(SEAL_TOO_SHORT), "too_short");
    assert_string_equal(seal_status_name(SEAL_BAD_VERSION), "bad_version");
    assert_string_equal(seal_status_name(SEAL_BAD_CHECKSUM), "bad_checksum");
    assert_string_equal(seal_status_name(SEAL_AUTH_FAILED), "auth_failed");
    assert_string_equal(seal_status_name(SEAL_NOT_ENCRYPTED), "not_encrypted");
    assert_string_equal(seal_status_name(SEAL_NO_ROOM), "no_room");
    assert_string_equal(seal_status_name((seal_status_t)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_plain_roundtrip),
        cmocka_unit_test(test_encrypted_roundtrip),
        cmocka_unit_test(test_bitflips),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_downgrade_and_versions),
        cmocka_unit_test(test_no_room),
        cmocka_unit_test(test_key_from_base64),
        cmocka_unit_test(test_keyring_parse),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
