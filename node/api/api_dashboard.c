#include "node/api/api_dashboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/api/api_http.h"

/* The page and its scripts come from this node; it talks to this node
 * only; a value previewed as an image is a blob: URL. No inline script or
 * style, no eval, no framing. */
#define API_DASHBOARD_CSP                                                                                         \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "           \
    "form-action 'none'\r\n"

const api_dashboard_asset_t *api_dashboard_find(const char *path, size_t len)
{
    if (len == 1 && path[0] == '/') {
        path = "/index.html";
        len = sizeof "/index.html" - 1;
    }
    for (size_t i = 0; i < api_dashboard_nassets; i++) {
        const api_dashboard_asset_t *a = &api_dashboard_assets[i];
        if (strlen(a->path) == len && memcmp(a->path, path, len) == 0) return a;
    }
    return NULL;
}

static const char *api_dashboard_trim(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

bool api_dashboard_accepts_gzip(const char *value, size_t len)
{
    const char *p = value, *end = value + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        p = api_dashboard_trim(p, item_end);
        const char *name = p;
        while (p < item_end && *p != ';' && *p != ' ' && *p != '\t') p++;
        size_t nlen = (size_t)(p - name);
        bool named = (nlen == 4 && strncasecmp(name, "gzip", 4) == 0) || (nlen == 1 && *name == '*');
        double q = 1.0;
        const char *semi = memchr(p, ';', (size_t)(item_end - p));
        if (semi) {
            const char *qp = api_dashboard_trim(semi + 1, item_end);
            if (item_end - qp >= 2 && (qp[0] == 'q' || qp[0] == 'Q') && qp[1] == '=') {
                char num[16];
                size_t n = (size_t)(item_end - qp - 2);
                if (n >= sizeof num) n = sizeof num - 1;
                memcpy(num, qp + 2, n);
                num[n] = '\0';
                q = strtod(num, NULL);
            }
        }
        if (named && q > 0) return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

static bool api_dashboard_etag_matches(http_request_t *r, const char *etag)
{
    size_t len;
    const char *inm = http_request_header(r, "if-none-match", &len);
    if (!inm) return false;
    /* "*", or a list of tags (weak ones too: W/"..."); ours are hex, so
     * finding ours, quotes included, is finding it in the list. */
    const char *p = api_dashboard_trim(inm, inm + len);
    if (inm + len - p >= 1 && *p == '*') return true;
    size_t elen = strlen(etag);
    for (size_t i = 0; i + elen <= len; i++)
        if (memcmp(inm + i, etag, elen) == 0) return true;
    return false;
}

/* The table is static: nothing to free once a body is written. */
static void api_dashboard_static_body(void *ctx)
{
    (void)ctx;
}

void api_dashboard_serve(api_worker_t *w, http_request_t *r)
{
    (void)w;
    size_t plen;
    const char *path = http_request_path(r, &plen);
    const api_dashboard_asset_t *a = api_dashboard_find(path, plen);
    if (!a) {
        api_http_set_error(r, METRICS_ERR_BAD_REQUEST);
        http_respond_error(r, 404, "no_asset", "no such dashboard file");
        return;
    }
    bool immutable = plen > sizeof API_DASHBOARD_ASSETS_PREFIX - 1 &&
                     memcmp(path, API_DASHBOARD_ASSETS_PREFIX, sizeof API_DASHBOARD_ASSETS_PREFIX - 1) == 0;
    size_t aelen = 0;
    const char *ae = http_request_header(r, "accept-encoding", &aelen);
    bool gz = a->gz && ae && api_dashboard_accepts_gzip(ae, aelen);
    char hdr[768];
    int n = snprintf(hdr, sizeof hdr,
                     "%sETag: %s\r\nCache-Control: %s\r\nVary: Accept-Encoding\r\nX-Content-Type-Options: nosniff\r\n"
                     "Referrer-Policy: no-referrer\r\n%s",
                     API_DASHBOARD_CSP, a->etag, immutable ? "public, max-age=31536000, immutable" : "no-cache",
                     gz ? "Content-Encoding: gzip\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof hdr) {
        http_respond_error(r, 500, "internal", "dashboard headers too long");
        return;
    }
    if (api_dashboard_etag_matches(r, a->etag)) {
        http_response_t nm = {.status = 304, .headers = hdr, .headers_len = (size_t)n};
        http_respond(r, &nm);
        return;
    }
    http_response_t resp = {.status = 200,
                            .content_type = a->content_type,
                            .headers = hdr,
                            .headers_len = (size_t)n,
                            .body = gz ? a->gz : a->raw,
                            .body_len = gz ? a->gz_len : a->raw_len,
                            .body_release = api_dashboard_static_body};
    http_respond(r, &resp);
}
