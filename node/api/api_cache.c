/* The cache endpoints: one key (GET, HEAD, PUT, DELETE), key listing, and
 * invalidation by keys or by pattern. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_url.h"
#include "node/api/api_internal.h"

#define API_DEFAULT_CONTENT_TYPE "application/octet-stream"
/* Ten years: far enough for "long", near enough that ms arithmetic stays in
 * range. */
#define API_MAX_TTL_S (10ull * 365 * 86400)

uint64_t api_stamp(api_t *a)
{
    pthread_mutex_lock(&a->hlc_lock);
    uint64_t v = hlc_stamp(&a->hlc, store_now_ms(a->store));
    pthread_mutex_unlock(&a->hlc_lock);
    return v;
}

void api_observe(api_t *a, uint64_t version)
{
    pthread_mutex_lock(&a->hlc_lock);
    hlc_observe(&a->hlc, version, store_now_ms(a->store));
    pthread_mutex_unlock(&a->hlc_lock);
}

/* Remaining TTL in ms, at least 1 for a live entry; 0 when it never
 * expires. */
int64_t api_entry_ttl_ms(api_t *a, const store_entry_t *e)
{
    int64_t exp = store_entry_expires_at(e);
    if (exp == 0) return 0;
    int64_t left = exp - store_now_ms(a->store);
    return left > 0 ? left : 1;
}

static char *api_put_hex(char *p, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) *p++ = hex[(v >> (i * 4)) & 15];
    return p;
}

static char *api_put_dec(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static char *api_put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

size_t api_node_headers(char *buf, const char *node, const char *owner)
{
    char *p = api_put_str(buf, "X-Cache-Node: ");
    p = api_put_str(p, node);
    p = api_put_str(p, "\r\nX-Cache-Owner: ");
    p = api_put_str(p, owner);
    p = api_put_str(p, "\r\n");
    return (size_t)(p - buf);
}

void api_respond_json_headers(http_request_t *r, int status, const char *json, size_t len, const char *headers,
                              size_t headers_len)
{
    http_response_t resp = {.status = status,
                            .content_type = "application/json",
                            .headers = headers,
                            .headers_len = headers_len,
                            .body = json,
                            .body_len = len};
    http_respond(r, &resp);
}

void api_respond_miss(http_request_t *r, const char *node, const char *owner)
{
    static const char body[] = "{\"error\":\"key not found\",\"code\":\"not_found\"}";
    char hdr[API_NODE_HEADERS_MAX + 20];
    size_t n = api_node_headers(hdr, node, owner);
    memcpy(hdr + n, "X-Cache: MISS\r\n", 15);
    api_respond_json_headers(r, 404, body, sizeof body - 1, hdr, n + 15);
}

/* True when an If-None-Match list names this ETag (or is "*"). */
static bool api_etag_matches(const char *inm, size_t len, const char *etag, size_t etag_len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (inm[i] == ' ' || inm[i] == ',')) i++;
        if (i < len && inm[i] == '*') return true;
        if (i + 2 < len && inm[i] == 'W' && inm[i + 1] == '/') i += 2;
        size_t start = i;
        while (i < len && inm[i] != ',') i++;
        size_t end = i;
        while (end > start && inm[end - 1] == ' ') end--;
        if (end - start == etag_len && memcmp(inm + start, etag, etag_len) == 0) return true;
    }
    return false;
}

void api_respond_value(http_request_t *r, const api_value_t *v, void (*release)(void *), void *ctx)
{
    char hdr[256 + API_NODE_HEADERS_MAX], *p = hdr;
    p = api_put_str(p, "X-Cache: ");
    p = api_put_str(p, v->cache ? v->cache : "HIT");
    p = api_put_str(p, "\r\nETag: \"");
    char *etag = p - 1;
    p = api_put_hex(p, v->version);
    *p++ = '"';
    size_t etag_len = (size_t)(p - etag);
    if (v->ttl_ms > 0) {
        p = api_put_str(p, "\r\nCache-Control: max-age=");
        p = api_put_dec(p, (uint64_t)(v->ttl_ms + 999) / 1000);
    }
    p = api_put_str(p, "\r\nX-Cache-Version: ");
    p = api_put_dec(p, v->version);
    p = api_put_str(p, "\r\n");
    p += api_node_headers(p, v->node, v->owner);

    size_t inm_len;
    const char *inm = http_request_header(r, "if-none-match", &inm_len);
    if (inm && api_etag_matches(inm, inm_len, etag, etag_len)) {
        if (release) release(ctx);
        http_response_t resp = {.status = 304, .headers = hdr, .headers_len = (size_t)(p - hdr)};
        http_respond(r, &resp);
        return;
    }
    http_response_t resp = {
        .status = 200,
        .content_type = v->ctlen ? v->ct : API_DEFAULT_CONTENT_TYPE,
        .content_type_len = v->ctlen ? v->ctlen : sizeof API_DEFAULT_CONTENT_TYPE - 1,
        .headers = hdr,
        .headers_len = (size_t)(p - hdr),
        .body = v->value,
        .body_len = v->len,
        .body_release = release,
        .body_release_ctx = ctx,
    };
    http_respond(r, &resp);
}

/* TTL of a PUT: ?ttl=, else X-Cache-TTL, else the default. */
static bool api_put_ttl(api_t *a, http_request_t *r, int64_t *ttl_ms)
{
    size_t qlen, hlen;
    const char *q = http_request_query(r, &qlen);
    char buf[32];
    long n = http_query_get(q, qlen, "ttl", buf, sizeof buf);
    if (n == -1) {
        const char *h = http_request_header(r, "x-cache-ttl", &hlen);
        if (h) {
            if (hlen >= sizeof buf) n = -2;
            else {
                memcpy(buf, h, hlen);
                buf[hlen] = '\0';
                n = (long)hlen;
            }
        }
    }
    if (n == -1) {
        *ttl_ms = (int64_t)a->cfg->default_ttl_ms;
        return true;
    }
    char *end = NULL;
    unsigned long long v = 0;
    bool ok = n > 0 && buf[0] >= '0' && buf[0] <= '9';
    if (ok) v = strtoull(buf, &end, 10);
    if (!ok || *end || v > API_MAX_TTL_S) {
        http_respond_error(r, 400, "bad_ttl", "ttl must be whole seconds from 0 (never expires) to 315360000");
        return false;
    }
    *ttl_ms = (int64_t)v * 1000;
    return true;
}

static size_t api_write_headers(char *hdr, const char *node, const char *owner, bool journaled)
{
    size_t n = api_node_headers(hdr, node, owner);
    if (journaled) {
        static const char j[] = "X-Cache-Durability: journal\r\n";
        memcpy(hdr + n, j, sizeof j - 1);
        n += sizeof j - 1;
    }
    return n;
}

void api_respond_put(http_request_t *r, const char *key, size_t klen, uint64_t version, int64_t ttl_ms,
                     bool created, const char *node, const char *owner, bool journaled)
{
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{");
    sbuf_json_bytes_member(&b, "key", key, klen);
    sbuf_printf(&b, ",\"version\":\"%llu\",\"ttl\":%lld}", (unsigned long long)version, (long long)(ttl_ms / 1000));
    if (b.failed) {
        sbuf_free(&b);
        http_respond_error(r, 503, "no_memory", "out of memory building the response");
        return;
    }
    char hdr[API_NODE_HEADERS_MAX + 40];
    size_t n = api_write_headers(hdr, node, owner, journaled);
    api_respond_json_headers(r, created ? 201 : 200, b.data, b.len, hdr, n);
    sbuf_free(&b);
}

void api_respond_deleted(http_request_t *r, bool existed, const char *node, const char *owner, bool journaled)
{
    const char *body = existed ? "{\"deleted\":true}" : "{\"deleted\":false}";
    char hdr[API_NODE_HEADERS_MAX + 40];
    size_t n = api_write_headers(hdr, node, owner, journaled);
    api_respond_json_headers(r, 200, body, strlen(body), hdr, n);
}

void api_respond_store_error(http_request_t *r, store_status_t st)
{
    if (st == STORE_TOO_LARGE) http_respond_error(r, 413, "value_too_large", "value larger than this node can hold");
    else http_respond_error(r, 503, "no_memory", "the store could not allocate the entry");
}

static void api_put(api_worker_t *w, http_request_t *r, const char *key, size_t klen)
{
    int64_t ttl_ms;
    if (!api_put_ttl(w->api, r, &ttl_ms)) return;
    size_t ctlen, vlen;
    const char *ct = http_request_header(r, "content-type", &ctlen);
    if (ct && ctlen > STORE_CTYPE_MAX) {
        http_respond_error(r, 400, "bad_content_type", "Content-Type longer than 255 bytes");
        return;
    }
    const char *value = http_request_body(r, &vlen);
    store_put_args_t args = {
        .key = key,
        .key_len = klen,
        .value = value,
        .value_len = vlen,
        .content_type = ct,
        .content_type_len = ct ? ctlen : 0,
        .ttl_ms = ttl_ms,
    };
    api_route_put(w, r, &args);
}

void api_cache_item(api_worker_t *w, http_request_t *r, const char *raw_key, size_t raw_len)
{
    char key[STORE_KEY_MAX];
    if (raw_len == 0) {
        http_respond_error(r, 400, "bad_key", "the key is empty");
        return;
    }
    /* A percent-encoded key is at most three bytes per byte of key. */
    if (raw_len > 3 * STORE_KEY_MAX) {
        http_respond_error(r, 400, "key_too_long", "keys are at most 1024 bytes");
        return;
    }
    char decoded[3 * STORE_KEY_MAX];
    long klen = http_url_decode(raw_key, raw_len, decoded, false);
    if (klen < 0) {
        http_respond_error(r, 400, "bad_key", "malformed percent-encoding in the key");
        return;
    }
    if (klen == 0 || (size_t)klen > STORE_KEY_MAX) {
        http_respond_error(r, 400, klen ? "key_too_long" : "bad_key",
                           klen ? "keys are at most 1024 bytes" : "the key is empty");
        return;
    }
    memcpy(key, decoded, (size_t)klen);
    switch (http_request_method(r)) {
    case HTTP_M_GET:
    case HTTP_M_HEAD: api_route_get(w, r, key, (size_t)klen); break;
    case HTTP_M_PUT: api_put(w, r, key, (size_t)klen); break;
    default: api_route_delete(w, r, key, (size_t)klen); break;
    }
}
