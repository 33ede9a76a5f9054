/* The cache endpoints: one key (GET, HEAD, PUT, DELETE), key listing, and
 * invalidation by keys or by pattern. Requests are validated here and
 * handed to the data path (node/route), which answers through api_http. */
#include "node/api/api_cache.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_url.h"
#include "node/api/api_http.h"
#include "node/route/route_local.h"
#include "node/route/route_read.h"
#include "node/route/route_scatter.h"
#include "node/route/route_write.h"
#include "node/warm/hotkeys.h"

/* Ten years: far enough for "long", near enough that ms arithmetic stays in
 * range. */
#define API_CACHE_MAX_TTL_S (10ull * 365 * 86400)
#define API_CACHE_PREVIEW_DEFAULT 20
#define API_CACHE_INVALIDATE_MAX_KEYS 10000

/* The key of /api/cache/{key}, percent-decoded into key[LIMITS_KEY_MAX];
 * answers 400 and returns -1 when it is empty, too long or malformed. */
static long api_cache_key(http_request_t *r, char *key)
{
    size_t plen;
    const char *path = http_request_path(r, &plen);
    size_t pre = sizeof API_CACHE_PREFIX - 1;
    const char *raw_key = path + pre;
    size_t raw_len = plen - pre;
    if (raw_len == 0) {
        http_respond_error(r, 400, "bad_key", "the key is empty");
        return -1;
    }
    /* A percent-encoded key is at most three bytes per byte of key. */
    if (raw_len > 3 * LIMITS_KEY_MAX) {
        http_respond_error(r, 400, "key_too_long", "keys are at most 1024 bytes");
        return -1;
    }
    char decoded[3 * LIMITS_KEY_MAX];
    long klen = http_url_decode(raw_key, raw_len, decoded, false);
    if (klen < 0) {
        http_respond_error(r, 400, "bad_key", "malformed percent-encoding in the key");
        return -1;
    }
    if (klen == 0 || (size_t)klen > LIMITS_KEY_MAX) {
        http_respond_error(r, 400, klen ? "key_too_long" : "bad_key",
                           klen ? "keys are at most 1024 bytes" : "the key is empty");
        return -1;
    }
    memcpy(key, decoded, (size_t)klen);
    return klen;
}

void api_cache_get(api_worker_t *w, http_request_t *r)
{
    char key[LIMITS_KEY_MAX];
    long klen = api_cache_key(r, key);
    if (klen < 0) return;
    if (w->hot) hotkeys_record(w->hot, key, (size_t)klen);
    route_read_get(&w->route, api_http_reply(r), key, (size_t)klen);
}

void api_cache_delete(api_worker_t *w, http_request_t *r)
{
    char key[LIMITS_KEY_MAX];
    long klen = api_cache_key(r, key);
    if (klen >= 0) route_write_delete(&w->route, api_http_reply(r), key, (size_t)klen);
}

/* TTL of a PUT: ?ttl=, else X-Cache-TTL, else the default. */
static bool api_cache_put_ttl(const config_t *cfg, http_request_t *r, int64_t *ttl_ms)
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
        *ttl_ms = (int64_t)cfg->default_ttl_ms;
        return true;
    }
    char *end = NULL;
    unsigned long long v = 0;
    bool ok = n > 0 && buf[0] >= '0' && buf[0] <= '9';
    if (ok) v = strtoull(buf, &end, 10);
    if (!ok || *end || v > API_CACHE_MAX_TTL_S) {
        http_respond_error(r, 400, "bad_ttl", "ttl must be whole seconds from 0 (never expires) to 315360000");
        return false;
    }
    *ttl_ms = (int64_t)v * 1000;
    return true;
}

void api_cache_put(api_worker_t *w, http_request_t *r)
{
    char key[LIMITS_KEY_MAX];
    long klen = api_cache_key(r, key);
    if (klen < 0) return;
    int64_t ttl_ms;
    if (!api_cache_put_ttl(w->api->cfg, r, &ttl_ms)) return;
    size_t ctlen, vlen;
    const char *ct = http_request_header(r, "content-type", &ctlen);
    if (ct && ctlen > LIMITS_CTYPE_MAX) {
        http_respond_error(r, 400, "bad_content_type", "Content-Type longer than 255 bytes");
        return;
    }
    const char *value = http_request_body(r, &vlen);
    store_put_args_t args = {
        .key = key,
        .key_len = (size_t)klen,
        .value = value,
        .value_len = vlen,
        .content_type = ct,
        .content_type_len = ct ? ctlen : 0,
        .ttl_ms = ttl_ms,
    };
    route_write_put(&w->route, api_http_reply(r), &args);
}

/* ---------- invalidation and preview ---------- */

static void api_cache_key_json(sbuf_t *b, const void *key, size_t klen)
{
    if (sbuf_utf8_valid(key, klen)) {
        sbuf_json_string(b, key, klen);
    } else {
        sbuf_puts(b, "{");
        sbuf_json_bytes_member(b, "key", key, klen);
        sbuf_puts(b, "}");
    }
}

static const char *api_cache_l2_status(route_scatter_l2_t l2)
{
    switch (l2) {
    case ROUTE_SCATTER_L2_OK: return "ok";
    case ROUTE_SCATTER_L2_JOURNALED: return "journaled";
    case ROUTE_SCATTER_L2_UNAVAILABLE: return "unavailable";
    default: return NULL;
    }
}

/* What a scatter answers with, by the kind of request. */
typedef enum { API_CACHE_SC_PATTERN = 0, API_CACHE_SC_PREVIEW, API_CACHE_SC_KEYS } api_cache_sc_t;

typedef struct api_cache_scatter {
    http_request_t *r;
    api_cache_sc_t kind;
    bool dry_run;
} api_cache_scatter_t;

static void api_cache_scatter_done(void *ctx, const route_scatter_result_t *res)
{
    api_cache_scatter_t *sc = ctx;
    http_request_t *r = sc->r;
    api_cache_sc_t kind = sc->kind;
    bool changes = kind != API_CACHE_SC_PREVIEW && !sc->dry_run;
    free(sc);
    const char *l2 = api_cache_l2_status(res->l2);
    bool l2_failed = res->l2 == ROUTE_SCATTER_L2_UNAVAILABLE;
    /* Acknowledged means done: a member that did not answer may still
     * serve the old values (the other side of a partition, a node that just
     * stood still), so the client hears it as a failure to retry. */
    bool incomplete = changes && res->nunreachable > 0 && !l2_failed;
    sbuf_t b;
    sbuf_init(&b);
    if (l2_failed)
        sbuf_puts(&b, "{\"error\":\"L1 is invalidated on every node but Redis is unavailable: it may still hold "
                      "the old values; retry\",\"code\":\"l2_unavailable\",");
    else if (incomplete)
        sbuf_puts(&b, "{\"error\":\"some members did not answer: they may still hold the old values; retry\","
                      "\"code\":\"invalidation_incomplete\",");
    else sbuf_puts(&b, "{");
    switch (kind) {
    case API_CACHE_SC_PATTERN:
        api_http_set_counts(r, (int64_t)res->matched, (int64_t)res->invalidated);
        sbuf_printf(&b, "\"matched\":%llu,\"invalidated\":%llu", (unsigned long long)res->matched,
                    (unsigned long long)res->invalidated);
        break;
    case API_CACHE_SC_PREVIEW:
        sbuf_printf(&b, "\"matched\":%llu,\"sample\":[", (unsigned long long)res->matched);
        for (size_t i = 0; i < res->nsample; i++) {
            if (i) sbuf_puts(&b, ",");
            api_cache_key_json(&b, res->sample[i].p, res->sample[i].len);
        }
        sbuf_puts(&b, "]");
        break;
    case API_CACHE_SC_KEYS:
        api_http_set_counts(r, -1, (int64_t)res->invalidated);
        sbuf_printf(&b, "\"invalidated\":%llu", (unsigned long long)res->invalidated);
        break;
    }
    if (l2) sbuf_printf(&b, ",\"l2\":{\"status\":\"%s\",\"unlinked\":%llu}", l2, (unsigned long long)res->l2_unlinked);
    sbuf_puts(&b, ",\"unreachable\":[");
    for (size_t i = 0; i < res->nunreachable; i++) {
        if (i) sbuf_puts(&b, ",");
        sbuf_json_string(&b, res->unreachable[i], strlen(res->unreachable[i]));
    }
    sbuf_printf(&b, "],\"nodes\":%zu", res->nodes);
    if (kind != API_CACHE_SC_PREVIEW) {
        /* Each member's part, so an operator sees where the keys were. */
        sbuf_puts(&b, ",\"per_node\":[");
        for (size_t i = 0; i < res->nodes; i++) {
            const route_scatter_node_t *n = &res->per_node[i];
            sbuf_puts(&b, i ? ",{\"node\":" : "{\"node\":");
            sbuf_json_string(&b, n->name, strlen(n->name));
            sbuf_printf(&b, ",\"answered\":%s,", n->answered ? "true" : "false");
            if (kind == API_CACHE_SC_PATTERN)
                sbuf_printf(&b, "\"matched\":%llu,", (unsigned long long)n->matched);
            sbuf_printf(&b, "\"invalidated\":%llu}", (unsigned long long)n->invalidated);
        }
        sbuf_puts(&b, "]");
    }
    sbuf_puts(&b, "}");
    if (l2_failed || incomplete) {
        static const char hdr[] = "Retry-After: 1\r\n";
        api_http_set_error(r, l2_failed ? METRICS_ERR_L2_UNAVAILABLE : METRICS_ERR_INCOMPLETE);
        if (b.failed) {
            sbuf_free(&b);
            http_respond_error(r, 503, "no_memory", "out of memory building the response");
            return;
        }
        api_http_json_headers(r, 503, b.data, b.len, hdr, sizeof hdr - 1);
        sbuf_free(&b);
        return;
    }
    api_http_sbuf(r, 200, &b);
}

static api_cache_scatter_t *api_cache_scatter_new(http_request_t *r, api_cache_sc_t kind)
{
    api_cache_scatter_t *sc = malloc(sizeof *sc);
    if (!sc) {
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return NULL;
    }
    sc->r = r;
    sc->kind = kind;
    sc->dry_run = false;
    return sc;
}

static void api_cache_scatter_failed(api_cache_scatter_t *sc)
{
    http_request_t *r = sc->r;
    free(sc);
    api_http_set_error(r, METRICS_ERR_NO_MEMORY);
    http_respond_error(r, 503, "no_memory", "out of memory");
}

/* An invalidation through a node that sees only itself (or a minority)
 * would reach too few; one read just after a stall may be older than
 * writes it would remove (route_write_refusal). */
static bool api_cache_refused(api_worker_t *w, http_request_t *r)
{
    const char *why = NULL;
    route_error_t err = route_write_refusal(&w->route, &why);
    if (err == ROUTE_ERR_COUNT) return false;
    api_http_route_error(r, err, why);
    return true;
}

void api_cache_invalidate_keys(api_worker_t *w, http_request_t *r)
{
    if (api_cache_refused(w, r)) return;
    json_t *root = api_http_json_body(r);
    if (!root) return;
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > API_CACHE_INVALIDATE_MAX_KEYS) {
        json_decref(root);
        http_respond_error(r, 400, "bad_keys", "\"keys\" must be an array of 1 to 10000 strings");
        return;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        size_t len = json_string_length(k);
        if (!json_is_string(k) || len == 0 || len > LIMITS_KEY_MAX) {
            json_decref(root);
            http_respond_error(r, 400, "bad_key", "every key must be a string of 1 to 1024 bytes");
            return;
        }
    }
    size_t n = json_array_size(keys);
    peer_bytes_t *list = malloc(n * sizeof *list);
    api_cache_scatter_t *sc = list ? api_cache_scatter_new(r, API_CACHE_SC_KEYS) : NULL;
    if (!sc) {
        free(list);
        json_decref(root);
        if (!list) {
            api_http_set_error(r, METRICS_ERR_NO_MEMORY);
            http_respond_error(r, 503, "no_memory", "out of memory");
        }
        return;
    }
    json_array_foreach(keys, i, k) {
        list[i].p = (const uint8_t *)json_string_value(k);
        list[i].len = json_string_length(k);
    }
    bool started = route_scatter_keys(&w->route, list, n, api_cache_scatter_done, sc);
    free(list);
    json_decref(root);
    if (!started) api_cache_scatter_failed(sc);
}

static void api_cache_scatter_pattern(api_worker_t *w, http_request_t *r, api_cache_sc_t kind, const char *pattern,
                                      size_t plen, bool dry_run, size_t sample_max)
{
    api_cache_scatter_t *sc = api_cache_scatter_new(r, kind);
    if (!sc) return;
    sc->dry_run = dry_run;
    route_scatter_kind_t sk = kind == API_CACHE_SC_PREVIEW ? ROUTE_SCATTER_PREVIEW : ROUTE_SCATTER_INVALIDATE;
    if (!route_scatter_pattern(&w->route, sk, pattern, plen, dry_run, sample_max, api_cache_scatter_done, sc))
        api_cache_scatter_failed(sc);
}

void api_cache_invalidate_pattern(api_worker_t *w, http_request_t *r)
{
    if (api_cache_refused(w, r)) return;
    json_t *root = api_http_json_body(r);
    if (!root) return;
    json_t *pat = json_object_get(root, "pattern");
    json_t *dry = json_object_get(root, "dry_run");
    if (!json_is_string(pat) || json_string_length(pat) == 0 || json_string_length(pat) > LIMITS_KEY_MAX) {
        json_decref(root);
        http_respond_error(r, 400, "bad_pattern", "\"pattern\" must be a string of 1 to 1024 bytes");
        return;
    }
    if (dry && !json_is_boolean(dry)) {
        json_decref(root);
        http_respond_error(r, 400, "bad_request", "\"dry_run\" must be true or false");
        return;
    }
    if (!api_http_pattern_ok(r, json_string_value(pat), json_string_length(pat))) {
        json_decref(root);
        return;
    }
    api_cache_scatter_pattern(w, r, API_CACHE_SC_PATTERN, json_string_value(pat), json_string_length(pat),
                              dry && json_is_true(dry), 0);
    json_decref(root);
}

void api_cache_invalidate_preview(api_worker_t *w, http_request_t *r)
{
    char pattern[LIMITS_KEY_MAX + 1];
    long plen = api_http_pattern_param(r, pattern, sizeof pattern, true);
    if (plen < 0) return;
    uint64_t limit;
    if (!api_http_query_uint(r, "limit", API_CACHE_PREVIEW_DEFAULT, 0, ROUTE_LOCAL_KEYS_MAX, &limit)) return;
    api_cache_scatter_pattern(w, r, API_CACHE_SC_PREVIEW, pattern, (size_t)plen, true, (size_t)limit);
}

/* ---------- listing: one member per page ---------- */

static void api_cache_keys_page(void *ctx, const route_scatter_page_t *page)
{
    http_request_t *r = ctx;
    if (page->no_memory) {
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"keys\":[");
    for (size_t i = 0; i < page->n; i++) {
        const peer_keyinfo_t *it = &page->items[i];
        sbuf_puts(&b, i ? ",{" : "{");
        sbuf_json_bytes_member(&b, "key", (const char *)it->key.p, it->key.len);
        int64_t ttl = it->ttl_ms < 0 ? -1 : (it->ttl_ms + 999) / 1000;
        sbuf_printf(&b, ",\"size\":%llu,\"ttl\":%lld,\"node\":", (unsigned long long)it->size, (long long)ttl);
        sbuf_json_string(&b, page->node, strlen(page->node));
        sbuf_puts(&b, "}");
    }
    /* The cursor names the member and its own cursor: "I.N". */
    if (!page->nodes) {
        sbuf_printf(&b, "],\"cursor\":\"%llu\"", (unsigned long long)page->next);
    } else if (page->next) {
        sbuf_printf(&b, "],\"cursor\":\"%u.%llu\"", page->node_index, (unsigned long long)page->next);
    } else if (page->node_index + 1 < page->nodes) {
        sbuf_printf(&b, "],\"cursor\":\"%u.0\"", page->node_index + 1);
    } else {
        sbuf_puts(&b, "],\"cursor\":\"0\"");
    }
    sbuf_printf(&b, ",\"count\":%zu,\"unreachable\":[", page->n);
    if (page->unreachable) sbuf_json_string(&b, page->node, strlen(page->node));
    sbuf_puts(&b, "]}");
    api_http_sbuf(r, 200, &b);
}

/* "N" (one node) or "I.N" (node I of the ring, its cursor N). */
static bool api_cache_parse_cursor(const char *s, long len, uint32_t *node, uint64_t *cursor)
{
    char buf[48];
    if (len <= 0 || len >= (long)sizeof buf) return len == -1 ? (*node = 0, *cursor = 0, true) : false;
    memcpy(buf, s, (size_t)len);
    buf[len] = '\0';
    char *dot = strchr(buf, '.'), *end;
    const char *num = buf;
    *node = 0;
    if (dot) {
        *dot = '\0';
        if (buf[0] < '0' || buf[0] > '9') return false;
        unsigned long i = strtoul(buf, &end, 10);
        if (*end || i > RING_MEMBERS_MAX) return false;
        *node = (uint32_t)i;
        num = dot + 1;
    }
    if (num[0] < '0' || num[0] > '9') return false;
    *cursor = strtoull(num, &end, 10);
    return *end == '\0';
}

void api_cache_keys(api_worker_t *w, http_request_t *r)
{
    char pattern[LIMITS_KEY_MAX + 1];
    long plen = api_http_pattern_param(r, pattern, sizeof pattern, false);
    uint64_t limit = 0, cursor = 0;
    if (plen < 0 || !api_http_query_uint(r, "limit", ROUTE_LOCAL_KEYS_DEFAULT, 1, ROUTE_LOCAL_KEYS_MAX, &limit)) return;
    size_t qlen;
    const char *q = http_request_query(r, &qlen);
    char cbuf[48];
    long clen = http_query_get(q, qlen, "cursor", cbuf, sizeof cbuf);
    uint32_t node = 0;
    route_scatter_start_t st = ROUTE_SCATTER_BAD_NODE;
    if (api_cache_parse_cursor(cbuf, clen == 0 ? -1 : clen, &node, &cursor))
        st = route_scatter_list(&w->route, pattern, (size_t)plen, node, cursor, (uint32_t)limit, api_cache_keys_page, r);
    if (st == ROUTE_SCATTER_BAD_NODE) {
        http_respond_error(r, 400, "bad_cursor", "cursor must be one returned by a previous listing");
    } else if (st == ROUTE_SCATTER_NO_MEMORY) {
        api_http_set_error(r, METRICS_ERR_NO_MEMORY);
        http_respond_error(r, 503, "no_memory", "out of memory");
    }
}
