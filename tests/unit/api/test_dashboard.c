/* The embedded dashboard (node/api/api_dashboard.h): the page and every
 * file it loads are in the table, "/" is the page, and Accept-Encoding is
 * read as RFC 9110 says (q=0 refuses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/api/api_dashboard.h"

static void test_root_is_the_page(void **state)
{
    (void)state;
    const api_dashboard_asset_t *root = api_dashboard_find("/", 1);
    const api_dashboard_asset_t *page = api_dashboard_find("/index.html", 11);
    assert_non_null(root);
    assert_ptr_equal(root, page);
    assert_string_equal(page->content_type, "text/html; charset=utf-8");
    assert_null(api_dashboard_find("/index.htm", 10));
    assert_null(api_dashboard_find("/assets/", 8));
    assert_null(api_dashboard_find("", 0));
}

/* Every "./assets/..." the page names is embedded, with a content type a
 * browser runs under a strict policy (a script served as octet-stream is
 * refused with nosniff). */
static void test_page_references_are_embedded(void **state)
{
    (void)state;
    const api_dashboard_asset_t *page = api_dashboard_find("/", 1);
    assert_non_null(page);
    char *html = malloc(page->raw_len + 1);
    assert_non_null(html);
    memcpy(html, page->raw, page->raw_len);
    html[page->raw_len] = '\0';
    unsigned refs = 0;
    /* Vite writes them relative ("./assets/..."), so the page also works
     * behind a proxy that serves it under a path. */
    for (char *p = strstr(html, "\"./assets/"); p; p = strstr(p + 1, "\"./assets/")) {
        char *path = p + 2, *end = strchr(path, '"');
        assert_non_null(end);
        const api_dashboard_asset_t *a = api_dashboard_find(path, (size_t)(end - path));
        if (!a) fail_msg("the page loads %.*s, which is not embedded", (int)(end - path), path);
        size_t n = strlen(a->path);
        if (n > 3 && strcmp(a->path + n - 3, ".js") == 0) assert_string_equal(a->content_type, "text/javascript; charset=utf-8");
        if (n > 4 && strcmp(a->path + n - 4, ".css") == 0) assert_string_equal(a->content_type, "text/css; charset=utf-8");
        refs++;
    }
    assert_true(refs >= 1);
    free(html);
    for (size_t i = 0; i < api_dashboard_nassets; i++) {
        const api_dashboard_asset_t *a = &api_dashboard_assets[i];
        assert_true(a->etag[0] == '"');
        if (a->gz) {
            assert_true(a->gz_len < a->raw_len);
            assert_int_equal(a->gz[0], 0x1f); /* gzip's magic */
            assert_int_equal(a->gz[1], 0x8b);
        }
    }
}

static bool gz(const char *v)
{
    return api_dashboard_accepts_gzip(v, strlen(v));
}

static void test_accept_encoding(void **state)
{
    (void)state;
    assert_true(gz("gzip"));
    assert_true(gz("gzip, deflate, br"));
    assert_true(gz("br;q=1.0, GZIP;q=0.5"));
    assert_true(gz("deflate, *"));
    assert_true(gz(" gzip ; q=0.001"));
    assert_false(gz(""));
    assert_false(gz("br, deflate"));
    assert_false(gz("gzip;q=0"));
    assert_false(gz("gzip; q=0.0, br"));
    assert_false(gz("x-gzip"));
    assert_false(gz("gzipped"));
    assert_false(gz("*;q=0"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_is_the_page),
        cmocka_unit_test(test_page_references_are_embedded),
        cmocka_unit_test(test_accept_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
