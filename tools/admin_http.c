/* dcache-admin: HTTP requests to one dcache node. See admin_http.h. */
#include "autoconfig.h"

#include "tools/admin_http.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/admin_fmt.h"

int admin_http_init(admin_http *h, const char *node, long timeout_ms, const char *token)
{
    size_t n;

    memset(h, 0, sizeof *h);
    if (strncasecmp(node, "http://", 7) != 0 && strncasecmp(node, "https://", 8) != 0) {
        admin_fmt_error("--node must be an http:// or https:// URL, not '%s'", node);
        return ADMIN_EXIT_USAGE;
    }
    if (strchr(node, '?') || strchr(node, '#')) {
        admin_fmt_error("--node must not carry a query or fragment: '%s'", node);
        return ADMIN_EXIT_USAGE;
    }
    if (token && strpbrk(token, "\r\n")) {
        admin_fmt_error("the token must not contain line breaks");
        return ADMIN_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail;
    if (!(h->curl = curl_easy_init())) {
        curl_global_cleanup();
        goto fail;
    }
    h->base = admin_fmt_xstrdup(node);
    n = strlen(h->base);
    while (n > 0 && h->base[n - 1] == '/')
        h->base[--n] = '\0';
    h->timeout_ms = timeout_ms;
    if (token && *token)
        h->auth = admin_fmt_xasprintf("Authorization: Bearer %s", token);
    return ADMIN_EXIT_OK;
fail:
    admin_fmt_error("cannot initialise libcurl");
    return ADMIN_EXIT_FAIL;
}

void admin_http_free(admin_http *h)
{
    if (h->curl) {
        curl_easy_cleanup(h->curl);
        curl_global_cleanup();
    }
    free(h->base);
    free(h->auth);
    memset(h, 0, sizeof *h);
}

char *admin_http_escape(const void *bytes, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = bytes;
    char *out = admin_fmt_xmalloc(len * 3 + 1);
    char *o = out;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (isalnum(c) && c < 0x80) {
            *o++ = (char)c;
        } else if (c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    admin_http_response *r = arg;
    size_t n = size * nmemb;
    r->body = admin_fmt_xrealloc(r->body, r->len + n + 1);
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void clear_headers(admin_http_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->headers[i]);
    free(r->headers);
    r->headers = NULL;
    r->nheaders = 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    admin_http_response *r = arg;
    size_t n = size * nmemb;
    size_t len = n;
    char *line;

    /* A status line starts a new response (after 100 Continue or a
     * redirect): keep only the last response's headers. */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        clear_headers(r);
        return n;
    }
    while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (len == 0 || !memchr(data, ':', len))
        return n;
    line = admin_fmt_xmalloc(len + 1);
    memcpy(line, data, len);
    line[len] = '\0';
    r->headers = admin_fmt_xrealloc(r->headers, (r->nheaders + 1) * sizeof *r->headers);
    r->headers[r->nheaders++] = line;
    return n;
}

const char *admin_http_header(const admin_http_response *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = r->nheaders; i-- > 0;) {
        const char *h = r->headers[i];
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            h += n + 1;
            while (*h == ' ' || *h == '\t')
                h++;
            return h;
        }
    }
    return NULL;
}

static bool connect_error(CURLcode rc, CURL *curl)
{
    curl_off_t connect_us = 0;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    case CURLE_OPERATION_TIMEDOUT:
        /* A timeout before the TCP connection was up is a connect failure;
         * after it, the node is reachable but did not answer in time. */
        return curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us) != CURLE_OK ||
               connect_us == 0;
    default:
        return false;
    }
}

int admin_http_request(admin_http *h, const char *method, const char *path,
                       const void *body, size_t len, const char *content_type,
                       admin_http_response *r)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    char *url = admin_fmt_xasprintf("%s%s", h->base, path);
    char *ct = NULL;
    CURLcode rc;
    int ret = ADMIN_EXIT_OK;

    memset(r, 0, sizeof *r);
    curl_easy_reset(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "dcache-admin/" PACKAGE_VERSION);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, r);
    if (h->timeout_ms > 0) {
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, h->timeout_ms);
        curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, h->timeout_ms);
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body) {
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    /* Never wait for 100 Continue; never let curl pick a form content type. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (content_type) {
        ct = admin_fmt_xasprintf("Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, ct);
    } else if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type:");
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json, */*");
    if (h->auth)
        hdrs = curl_slist_append(hdrs, h->auth);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);

    rc = curl_easy_perform(h->curl);
    if (rc != CURLE_OK) {
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        if (connect_error(rc, h->curl)) {
            admin_fmt_error("cannot connect to %s: %s", h->base, why);
            ret = ADMIN_EXIT_CONNECT;
        } else if (rc == CURLE_URL_MALFORMAT) {
            admin_fmt_error("bad node URL %s: %s", h->base, why);
            ret = ADMIN_EXIT_USAGE;
        } else {
            admin_fmt_error("%s %s: %s", method, url, why);
            ret = ADMIN_EXIT_FAIL;
        }
    } else {
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
    }
    curl_slist_free_all(hdrs);
    free(ct);
    free(url);
    if (!r->body) {
        r->body = admin_fmt_xmalloc(1);
        r->body[0] = '\0';
    }
    return ret;
}

int admin_http_fail(const admin_http_response *r, const char *method, const char *path)
{
    json_t *doc = json_loadb(r->body, r->len, 0, NULL);
    json_t *err = json_is_object(doc) ? json_object_get(doc, "error") : NULL;

    if (json_is_string(err)) {
        char *msg = admin_fmt_display(json_string_value(err), json_string_length(err));
        char *code = admin_fmt_json_text(doc, "code");
        admin_fmt_error("%s (code %s, HTTP %ld)", msg, code ? code : "none", r->status);
        free(msg);
        free(code);
    } else {
        /* Not our JSON error (a proxy, a crash page): show what we got. */
        size_t n = r->len < 200 ? r->len : 200, m = 0;
        char *flat = admin_fmt_xmalloc(n + 1), *snippet;
        /* One line: each run of spaces, tabs and line breaks becomes one space. */
        for (size_t i = 0; i < n; i++) {
            bool space = strchr(" \t\r\n", r->body[i]) && r->body[i] != '\0';
            if (!space)
                flat[m++] = r->body[i];
            else if (m > 0 && flat[m - 1] != ' ')
                flat[m++] = ' ';
        }
        snippet = admin_fmt_display(flat, m);
        free(flat);
        admin_fmt_error("%s %s: HTTP %ld%s%s%s", method, path, r->status,
                        r->len ? ": " : " (empty body)", snippet, r->len > n ? "..." : "");
        free(snippet);
    }
    json_decref(doc);
    return ADMIN_EXIT_FAIL;
}

json_t *admin_http_json(const admin_http_response *r, const char *path)
{
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->len, 0, &jerr);
    if (!doc) {
        admin_fmt_error("unexpected response from %s (HTTP %ld): not JSON: %s", path,
                        r->status, jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        admin_fmt_error("unexpected response from %s (HTTP %ld): not a JSON object", path,
                        r->status);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int admin_http_call_json(admin_http *h, const char *method, const char *path,
                         const json_t *body, json_t **out)
{
    admin_http_response r;
    char *text = NULL;
    int rc;

    *out = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text) {
            admin_fmt_error("cannot encode the request as JSON");
            return ADMIN_EXIT_FAIL;
        }
    }
    rc = admin_http_request(h, method, path, text, text ? strlen(text) : 0,
                            text ? "application/json" : NULL, &r);
    free(text);
    if (rc == ADMIN_EXIT_OK) {
        if (r.status < 200 || r.status > 299)
            rc = admin_http_fail(&r, method, path);
        else if (!(*out = admin_http_json(&r, path)))
            rc = ADMIN_EXIT_FAIL;
    }
    admin_http_response_free(&r);
    return rc;
}

void admin_http_response_free(admin_http_response *r)
{
    clear_headers(r);
    free(r->body);
    memset(r, 0, sizeof *r);
}
