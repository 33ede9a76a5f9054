/* tokens: the tokens file's format, lookups by token, the file's
 * permission check, and what token add writes reading back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/core/tokens.h"

static void test_round_trip(void **state)
{
    (void)state;
    char a[TOKENS_TOKEN_LEN + 1], b[TOKENS_TOKEN_LEN + 1], text[1024] = "# tokens\n\n";
    tokens_generate(a);
    tokens_generate(b);
    assert_int_equal(strlen(a), TOKENS_TOKEN_LEN);
    assert_memory_equal(a, "dct_", 4);
    assert_string_not_equal(a, b);
    uint8_t h[TOKENS_HASH_LEN];
    tokens_hash(a, strlen(a), h);
    assert_true(tokens_format_line("alice", TOKENS_ROLE_ADMIN, h, text + strlen(text), sizeof text - strlen(text)));
    tokens_hash(b, strlen(b), h);
    assert_true(tokens_format_line("bob.ro", TOKENS_ROLE_READER, h, text + strlen(text), sizeof text - strlen(text)));
    strcat(text, "   # indented comment\r\n");
    tokens_t t;
    char err[256];
    assert_true(tokens_parse(text, strlen(text), &t, err, sizeof err));
    assert_int_equal(t.n, 2);
    const tokens_entry_t *e = tokens_find(&t, a, strlen(a));
    assert_non_null(e);
    assert_string_equal(e->name, "alice");
    assert_int_equal(e->role, TOKENS_ROLE_ADMIN);
    e = tokens_find(&t, b, strlen(b));
    assert_non_null(e);
    assert_int_equal(e->role, TOKENS_ROLE_READER);
    assert_null(tokens_find(&t, a, strlen(a) - 1));
    assert_null(tokens_find(&t, "", 0));
    tokens_free(&t);
}

static void test_errors(void **state)
{
    (void)state;
    const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char line[256];
    struct {
        const char *fmt;
        const char *says;
    } bad[] = {
        {"alice admin\n", "NAME ROLE HASH"},
        {"alice admin %s extra\n", "NAME ROLE HASH"},
        {"al ice admin %s\n", "NAME ROLE HASH"},
        {"alice root %s\n", "not reader, writer or admin"},
        {"ali/ce admin %s\n", "a name is"},
        {"alice admin %.60s\n", "hex digits"},
        {"alice admin %.63sz\n", "hex digits"},
        {"alice admin %s\nalice reader %s\n", "used twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, bad[i].fmt, hex, hex);
        tokens_t t = {0};
        char err[256] = "";
        if (tokens_parse(line, strlen(line), &t, err, sizeof err) || !strstr(err, bad[i].says))
            fail_msg("case %zu: expected '%s', got '%s'", i, bad[i].says, err);
        assert_null(t.entries);
    }
    tokens_t t;
    char err[256];
    assert_true(tokens_parse("", 0, &t, err, sizeof err));
    assert_int_equal(t.n, 0);
    assert_null(tokens_find(&t, "dct_x", 5));
    tokens_free(&t);
}

static void test_file_permissions(void **state)
{
    (void)state;
    char path[] = "/tmp/dcache-tokens-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *line = "ops admin 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
    assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
    close(fd);
    tokens_t t;
    char err[512];
    assert_int_equal(chmod(path, 0600), 0);
    assert_true(tokens_load_file(path, &t, err, sizeof err));
    assert_int_equal(t.n, 1);
    tokens_free(&t);
    assert_int_equal(chmod(path, 0640), 0);
    assert_false(tokens_load_file(path, &t, err, sizeof err));
    assert_non_null(strstr(err, "chmod 600"));
    unlink(path);
    assert_false(tokens_load_file(path, &t, err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
