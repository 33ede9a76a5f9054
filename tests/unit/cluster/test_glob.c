/* glob: Redis's glob language. Every row of the table below was checked
 * against redis-server 7.0's KEYS (except the empty-string rows, which KEYS
 * cannot show), so L1 and L2 agree on what a pattern names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/glob.h"

typedef struct glob_case {
    const char *pattern, *string;
    bool match;
} glob_case_t;

static const glob_case_t redis_cases[] = {
    {"*", "anything", true},
    {"*", "", true},
    {"?", "a", true},
    {"?", "", false},
    {"?", "ab", false},
    {"a*", "abc", true},
    {"a*", "bac", false},
    {"*c", "abc", true},
    {"*c", "abd", false},
    {"a*c", "ac", true},
    {"a*c", "abbbc", true},
    {"a*c", "abbbd", false},
    {"a?c", "abc", true},
    {"a?c", "ac", false},
    {"users:*", "users:1", true},
    {"users:*", "users:", true},
    {"users:*", "user:1", false},
    {"*:*:*", "a:b:c", true},
    {"*:*:*", "a:b", false},
    {"[abc]", "b", true},
    {"[abc]", "d", false},
    {"[a-c]x", "bx", true},
    {"[a-c]x", "dx", false},
    {"[c-a]", "b", true},
    {"[^abc]", "d", true},
    {"[^abc]", "a", false},
    {"[^a-c]", "b", false},
    {"[\\]]", "]", true},
    {"[a\\-z]", "-", true},
    {"[a\\-z]", "b", false},
    {"h\\*llo", "h*llo", true},
    {"h\\*llo", "hello", false},
    {"h\\?llo", "h?llo", true},
    {"h\\?llo", "hello", false},
    {"\\\\", "\\", true},
    {"a\\", "a\\", true},
    {"h[ae]llo", "hello", true},
    {"h[ae]llo", "hallo", true},
    {"h[ae]llo", "hillo", false},
    {"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
    {"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaab", true},
    {"a**b", "ab", true},
    {"**", "x", true},
    {"[abc", "a", true},
    {"[abc", "b", true},
    {"ab[", "ab", false},
    {"[", "a", false},
    {"[]", "a", false},
    {"[-a]", "-", true},
    {"[a-]", "-", false},
    {"[a-]", "a", true},
    {"x[]y]", "x]y", false},
};

static void test_redis_compatible_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof redis_cases / sizeof redis_cases[0]; i++) {
        const glob_case_t *c = &redis_cases[i];
        bool got = glob_match(c->pattern, strlen(c->pattern), c->string, strlen(c->string));
        if (got != c->match) fail_msg("pattern '%s' vs '%s': expected %d, got %d", c->pattern, c->string, c->match, got);
    }
}

static void test_binary_safe(void **state)
{
    (void)state;
    const char key[] = {'a', 0, 'b', (char)0xff};
    assert_true(glob_match("a*", 2, key, sizeof key));
    assert_true(glob_match("a?b?", 4, key, sizeof key));
    const char pat[] = {'a', 0, '*'};
    assert_true(glob_match(pat, sizeof pat, key, sizeof key));
    assert_false(glob_match("a", 1, key, sizeof key));
    const char hi[] = {'[', (char)0xf0, '-', (char)0xff, ']'};
    assert_true(glob_match(hi, sizeof hi, key + 3, 1));
}

static void test_pathological_pattern_is_linear(void **state)
{
    (void)state;
    /* Exponential in a naive recursive matcher; here a few million steps. */
    char pat[201], str[2001];
    for (int i = 0; i < 100; i++) {
        pat[2 * i] = '*';
        pat[2 * i + 1] = 'a';
    }
    pat[200] = 'b';
    memset(str, 'a', 2000);
    str[2000] = 0;
    assert_false(glob_match(pat, 201, str, 2000));
}

static void test_is_literal(void **state)
{
    (void)state;
    assert_true(glob_is_literal("users:42", 8));
    assert_false(glob_is_literal("users:*", 7));
    assert_false(glob_is_literal("a?", 2));
    assert_false(glob_is_literal("[a]", 3));
    assert_false(glob_is_literal("a\\*", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_compatible_table),
        cmocka_unit_test(test_binary_safe),
        cmocka_unit_test(test_pathological_pattern_is_linear),
        cmocka_unit_test(test_is_literal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
