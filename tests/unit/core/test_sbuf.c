/* sbuf: JSON escaping, UTF-8 validation, base64 for binary strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "node/core/sbuf.h"

static void test_json_string_escapes(void **state)
{
    sbuf_t b;
    sbuf_init(&b);
    const char s[] = "a\"b\\c\n\x01" "d";
    sbuf_json_string(&b, s, sizeof s - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001d\"");
    sbuf_free(&b);
}

static void test_utf8_validation(void **state)
{
    assert_true(sbuf_utf8_valid("plain", 5));
    assert_true(sbuf_utf8_valid("caf\xc3\xa9", 5));
    assert_true(sbuf_utf8_valid("\xf0\x9f\x98\x80", 4));
    assert_false(sbuf_utf8_valid("\xff", 1));
    assert_false(sbuf_utf8_valid("\xc3", 1));          /* truncated */
    assert_false(sbuf_utf8_valid("\xc0\xaf", 2));      /* overlong */
    assert_false(sbuf_utf8_valid("\xed\xa0\x80", 3));  /* surrogate */
    assert_false(sbuf_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
}

static void test_bytes_member(void **state)
{
    sbuf_t b;
    sbuf_init(&b);
    sbuf_json_bytes_member(&b, "key", "users:1", 7);
    assert_string_equal(b.data, "\"key\":\"users:1\"");
    sbuf_free(&b);
    sbuf_init(&b);
    sbuf_json_bytes_member(&b, "key", "a\xff", 2);
    assert_string_equal(b.data, "\"key_base64\":\"Yf8=\"");
    sbuf_free(&b);
}

static void test_printf_and_steal(void **state)
{
    sbuf_t b;
    sbuf_init(&b);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    sbuf_printf(&b, "%s-%d", big, 42);
    sbuf_uint(&b, 18446744073709551615ull);
    size_t len;
    char *s = sbuf_steal(&b, &len);
    assert_int_equal(len, 599 + 3 + 20);
    assert_memory_equal(s + 599, "-4218446744073709551615", 23);
    assert_null(b.data);
    free(s);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_string_escapes),
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_bytes_member),
        cmocka_unit_test(test_printf_and_steal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
