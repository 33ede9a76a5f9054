/* Cluster-wide listing and invalidation by scatter-gather: one request to
 * every member of the ring (this node answers for itself without the
 * network), the answers merged into one response. A member that does not
 * answer is named in "unreachable", never silently skipped.
 *
 * Every node holds copies of the keys it owns (--replicas of them), so to
 * count and list each key once a node reports only the keys it is the
 * primary of (api_is_primary), while it removes every copy it holds. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_url.h"
#include "node/api/api_internal.h"

#define API_KEYS_DEFAULT_LIMIT 50
#define API_KEYS_MAX_LIMIT 1000
#define API_PREVIEW_DEFAULT_LIMIT 20
#define API_INVALIDATE_MAX_KEYS 10000
#define API_MATCH_STEP 1024

/* A member must scan its whole L1 for a pattern: give it longer than a
 * single-key request. */
static uint64_t api_scatter_timeout_ms(api_worker_t *w)
{
    return w->api->cfg->peer_timeout_ms * 5;
}

bool api_is_primary(api_worker_t *w, const void *key, size_t klen)
{
    topo_t *t = topo_cache_get(&w->topo, &w->api->topo);
    if (!t || t->self < 0) return true;
    uint32_t primary;
    return topo_owners(t, key, klen, &primary, 1) == 1 && (int32_t)primary == t->self;
}

/* ---------- what each node does for itself (and for peers) ---------- */

typedef struct api_match {
    api_worker_t *w;
    bool collect;             /* gather keys to delete after the scan step */
    uint64_t matched;         /* matches this node is the primary of */
    char **keys;
    size_t *lens;
    size_t n, cap;
    bool oom;
} api_match_t;

static void api_match_one(const store_entry_t *e, void *ctx)
{
    api_match_t *m = ctx;
    size_t klen;
    const char *key = store_entry_key(e, &klen);
    if (api_is_primary(m->w, key, klen)) m->matched++;
    if (!m->collect) return;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 2 * API_MATCH_STEP;
        char **k = realloc(m->keys, cap * sizeof *k);
        if (k) m->keys = k;
        size_t *l = k ? realloc(m->lens, cap * sizeof *l) : NULL;
        if (l) m->lens = l;
        if (!k || !l) {
            m->oom = true;
            return;
        }
        m->cap = cap;
    }
    char *copy = malloc(klen);
    if (!copy) {
        m->oom = true;
        return;
    }
    memcpy(copy, key, klen);
    m->keys[m->n] = copy;
    m->lens[m->n++] = klen;
}

void api_local_invalidate_pattern(api_worker_t *w, const char *pattern, size_t plen, bool dry_run,
                                  uint64_t *matched, uint64_t *invalidated)
{
    api_t *a = w->api;
    api_match_t m = {.w = w, .collect = !dry_run};
    uint64_t cursor = 0, removed = 0;
    do {
        m.n = 0;
        /* The scan callback runs under a shard lock: delete after it. */
        cursor = store_scan(a->store, cursor, pattern, plen, API_MATCH_STEP, api_match_one, &m);
        for (size_t i = 0; i < m.n; i++) {
            if (store_delete(a->store, m.keys[i], m.lens[i])) removed++;
            free(m.keys[i]);
        }
    } while (cursor != 0);
    free(m.keys);
    free(m.lens);
    if (!dry_run) {
        /* What the scan could not collect (no memory) still goes. */
        if (m.oom) removed += store_delete_matching(a->store, pattern, plen);
        metrics_add(&a->metrics->invalidations, removed);
    }
    *matched = m.matched;
    *invalidated = dry_run ? 0 : m.matched;
}

uint64_t api_local_invalidate_keys(api_worker_t *w, const peer_bytes_t *keys, size_t n)
{
    uint64_t primary = 0, removed = 0;
    /* No tombstones here: this node's clock did not stamp the key's
     * versions (its primary did), so comparing against it could refuse a
     * newer write made on a node whose clock is behind. */
    for (size_t i = 0; i < n; i++) {
        if (!store_delete(w->api->store, keys[i].p, keys[i].len)) continue;
        removed++;
        if (api_is_primary(w, keys[i].p, keys[i].len)) primary++;
    }
    metrics_add(&w->api->metrics->invalidations, removed);
    return primary;
}

typedef struct api_list {
    api_worker_t *w;
    bool primary_only;
    peer_keyinfo_t *items;
    char *bytes;
    size_t n, cap, used, bytes_cap;
} api_list_t;

static void api_list_one(const store_entry_t *e, void *ctx)
{
    api_list_t *k = ctx;
    size_t klen, vlen;
    const char *key = store_entry_key(e, &klen);
    if (k->primary_only && !api_is_primary(k->w, key, klen)) return;
    if (k->n == k->cap || k->used + klen > k->bytes_cap) return;
    store_entry_value(e, &vlen);
    memcpy(k->bytes + k->used, key, klen);
    int64_t ttl = api_entry_ttl_ms(k->w->api, e);
    /* Offsets for now: the byte buffer is final only after the scan. */
    k->items[k->n++] = (peer_keyinfo_t){.key = {.p = (const uint8_t *)(uintptr_t)k->used, .len = klen},
                                        .size = vlen,
                                        .ttl_ms = ttl ? ttl : -1};
    k->used += klen;
}

bool api_local_keys(api_worker_t *w, const char *pattern, size_t plen, uint64_t cursor, uint32_t limit,
                    bool primary_only, api_keys_page_t *page)
{
    if (limit == 0) limit = API_KEYS_DEFAULT_LIMIT;
    if (limit > API_KEYS_MAX_LIMIT) limit = API_KEYS_MAX_LIMIT;
    /* A scan may report a little more than its limit (a bucket comes whole). */
    api_list_t k = {.w = w, .primary_only = primary_only, .cap = (size_t)limit * 2,
                    .bytes_cap = (size_t)limit * 2 * STORE_KEY_MAX};
    k.items = malloc(k.cap * sizeof *k.items);
    k.bytes = malloc(k.bytes_cap);
    if (!k.items || !k.bytes) {
        free(k.items);
        free(k.bytes);
        return false;
    }
    page->next = store_scan(w->api->store, cursor, pattern, plen, limit, api_list_one, &k);
    for (size_t i = 0; i < k.n; i++) k.items[i].key.p = (const uint8_t *)k.bytes + (uintptr_t)k.items[i].key.p;
    page->items = k.items;
    page->bytes = k.bytes;
    page->n = k.n;
    return true;
}

void api_keys_page_free(api_keys_page_t *page)
{
    free(page->items);
    free(page->bytes);
    page->items = NULL;
    page->bytes = NULL;
}

/* ---------- gathering ---------- */

typedef enum { API_SC_PATTERN = 0, API_SC_PREVIEW, API_SC_KEYS_INVALIDATE } api_sc_kind_t;

typedef struct api_scatter {
    api_worker_t *w;
    http_request_t *r;
    api_sc_kind_t kind;
    topo_t *topo;
    unsigned pending;          /* replies outstanding, +1 while sending */
    bool *failed;              /* by ring index */
    uint64_t matched, invalidated;
    sbuf_t sample;
    size_t nsample, sample_max;
    char *pattern;
    size_t plen;
    bool dry_run;
    json_t *root;              /* keeps the keys' strings alive */
    peer_bytes_t *keys;
    size_t nkeys;
    bool l2_done;              /* L2 was cleared (once per cluster operation, here) */
    const char *l2_result;     /* NULL: no L2 part; "ok" or "unavailable" */
    uint64_t l2_unlinked;
} api_scatter_t;

typedef struct api_scatter_req {
    api_scatter_t *s;
    uint32_t node;
} api_scatter_req_t;

static void api_sample_add(api_scatter_t *s, const char *key, size_t klen)
{
    if (s->nsample >= s->sample_max) return;
    if (s->nsample++) sbuf_puts(&s->sample, ",");
    if (sbuf_utf8_valid(key, klen)) {
        sbuf_json_string(&s->sample, key, klen);
    } else {
        sbuf_puts(&s->sample, "{");
        sbuf_json_bytes_member(&s->sample, "key", key, klen);
        sbuf_puts(&s->sample, "}");
    }
}

static void api_unreachable_json(sbuf_t *b, const api_scatter_t *s)
{
    sbuf_puts(b, ",\"unreachable\":[");
    size_t k = 0;
    for (size_t i = 0; s->topo && i < s->topo->n; i++) {
        if (!s->failed[i]) continue;
        if (k++) sbuf_puts(b, ",");
        const char *name = s->topo->members[i].name;
        sbuf_json_string(b, name, strlen(name));
    }
    sbuf_printf(b, "],\"nodes\":%zu}", s->topo ? s->topo->n : (size_t)1);
}

static void api_scatter_members(api_scatter_t *s);

static void api_scatter_free(api_scatter_t *s)
{
    sbuf_free(&s->sample);
    topo_unref(s->topo);
    free(s->failed);
    free(s->pattern);
    free(s->keys);
    if (s->root) json_decref(s->root);
    free(s);
}

static void api_scatter_l2_done(void *ctx, l2_result_t res, uint64_t unlinked)
{
    api_scatter_t *s = ctx;
    s->l2_result = res == L2_OK ? "ok" : "unavailable";
    s->l2_unlinked = unlinked;
    api_scatter_members(s);
}

/* Clears L2 before any L1: once per cluster operation, by the node that
 * received it. The other way round, a miss between the two would read the
 * old value back from Redis into L1. */
static bool api_scatter_l2(api_scatter_t *s)
{
    l2_t *l = s->w->l2;
    if (!l || s->l2_done) return false;
    s->l2_done = true;
    if (s->kind == API_SC_PATTERN && !s->dry_run) {
        l2_unlink_matching(l, s->pattern, s->plen, api_scatter_l2_done, s);
        return true;
    }
    if (s->kind == API_SC_KEYS_INVALIDATE) {
        const void **keys = malloc(s->nkeys * sizeof *keys);
        size_t *lens = malloc(s->nkeys * sizeof *lens);
        if (!keys || !lens) {
            free(keys);
            free(lens);
            s->l2_result = "unavailable";
            return false;
        }
        for (size_t i = 0; i < s->nkeys; i++) {
            keys[i] = s->keys[i].p;
            lens[i] = s->keys[i].len;
        }
        l2_unlink_keys(l, keys, lens, s->nkeys, api_scatter_l2_done, s);
        free(keys);
        free(lens);
        return true;
    }
    return false;
}

/* Redis missed a key invalidation: in journal mode the deletes wait in the
 * journal (replayed like writes); otherwise the caller learns that Redis
 * may still hold the old values. */
static bool api_scatter_journal_keys(api_scatter_t *s)
{
    l2_shared_t *l2 = s->w->api->l2;
    if (s->kind != API_SC_KEYS_INVALIDATE || !l2 || l2->write_mode != L2_WRITE_JOURNAL || !l2->journal) return false;
    journal_rec_t *recs = calloc(s->nkeys, sizeof *recs);
    if (!recs) return false;
    uint64_t version = api_stamp(s->w->api);
    for (size_t i = 0; i < s->nkeys; i++)
        recs[i] = (journal_rec_t){.op = JOURNAL_OP_DEL, .version = version, .key = s->keys[i].p, .klen = s->keys[i].len};
    bool ok = journal_append(l2->journal, recs, s->nkeys) == 0;
    free(recs);
    if (ok) atomic_fetch_add(&l2->stats.writes_journaled, s->nkeys);
    return ok;
}

static void api_scatter_finish(api_scatter_t *s)
{
    int status = 200;
    if (s->l2_result && strcmp(s->l2_result, "unavailable") == 0) {
        if (api_scatter_journal_keys(s)) {
            s->l2_result = "journaled";
        } else {
            status = 503;
            if (s->w->api->l2) atomic_fetch_add(&s->w->api->l2->stats.writes_refused, 1);
        }
    }
    sbuf_t b;
    sbuf_init(&b);
    if (status == 503)
        sbuf_puts(&b, "{\"error\":\"L1 is invalidated on every node but Redis is unavailable: it may still hold "
                      "the old values; retry\",\"code\":\"l2_unavailable\",");
    else sbuf_puts(&b, "{");
    switch (s->kind) {
    case API_SC_PATTERN:
        sbuf_printf(&b, "\"matched\":%llu,\"invalidated\":%llu", (unsigned long long)s->matched,
                    (unsigned long long)s->invalidated);
        break;
    case API_SC_PREVIEW:
        sbuf_printf(&b, "\"matched\":%llu,\"sample\":[", (unsigned long long)s->matched);
        if (s->sample.len) sbuf_append(&b, s->sample.data, s->sample.len);
        sbuf_puts(&b, "]");
        break;
    case API_SC_KEYS_INVALIDATE:
        sbuf_printf(&b, "\"invalidated\":%llu", (unsigned long long)s->invalidated);
        break;
    }
    if (s->l2_result)
        sbuf_printf(&b, ",\"l2\":{\"status\":\"%s\",\"unlinked\":%llu}", s->l2_result,
                    (unsigned long long)s->l2_unlinked);
    api_unreachable_json(&b, s);
    api_respond_sbuf(s->r, status, &b);
    api_scatter_free(s);
}

static void api_scatter_done_one(api_scatter_t *s)
{
    if (--s->pending == 0) api_scatter_finish(s);
}

static void api_scatter_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    api_scatter_req_t *q = ctx;
    api_scatter_t *s = q->s;
    if (res == PEER_OK && resp->type == PEER_MSG_INVALIDATE_RESP) {
        s->matched += resp->matched;
        s->invalidated += resp->invalidated;
    } else if (res == PEER_OK && resp->type == PEER_MSG_KEYS_RESP) {
        peer_iter_t it;
        peer_iter_init(&it, resp);
        peer_keyinfo_t ki;
        while (peer_iter_keyinfo(&it, &ki)) api_sample_add(s, (const char *)ki.key.p, ki.key.len);
    } else {
        s->failed[q->node] = true;
    }
    free(q);
    api_scatter_done_one(s);
}

static void api_scatter_send(api_scatter_t *s, uint32_t node, const peer_msg_t *req)
{
    const topo_member_t *m = &s->topo->members[node];
    api_scatter_req_t *q = malloc(sizeof *q);
    if (!q || m->peer.ss_family == 0) {
        free(q);
        s->failed[node] = true;
        return;
    }
    q->s = s;
    q->node = node;
    s->pending++;
    peer_result_t res = peer_pool_request(s->w->pool, m->name, (const struct sockaddr *)&m->peer, req,
                                          api_scatter_timeout_ms(s->w), api_scatter_reply, q);
    if (res != PEER_OK) {
        s->pending--;
        s->failed[node] = true;
        free(q);
    }
}

/* L2 first (api_scatter_l2), then this node's part and a request to every
 * other member. */
static void api_scatter_run(api_scatter_t *s)
{
    if (!api_scatter_l2(s)) api_scatter_members(s);
}

static void api_scatter_members(api_scatter_t *s)
{
    api_worker_t *w = s->w;
    s->pending = 1;
    uint64_t matched = 0, invalidated = 0;
    if (s->kind == API_SC_KEYS_INVALIDATE) {
        invalidated = api_local_invalidate_keys(w, s->keys, s->nkeys);
    } else {
        api_local_invalidate_pattern(w, s->pattern, s->plen, s->dry_run, &matched, &invalidated);
        if (s->kind == API_SC_PREVIEW && s->sample_max) {
            api_keys_page_t page = {0};
            uint64_t cursor = 0;
            do {
                if (!api_local_keys(w, s->pattern, s->plen, cursor, (uint32_t)s->sample_max, true, &page)) break;
                for (size_t i = 0; i < page.n; i++)
                    api_sample_add(s, (const char *)page.items[i].key.p, page.items[i].key.len);
                cursor = page.next;
                api_keys_page_free(&page);
            } while (cursor != 0 && s->nsample < s->sample_max);
        }
    }
    s->matched += matched;
    s->invalidated += invalidated;
    for (uint32_t i = 0; s->topo && i < s->topo->n; i++) {
        if ((int32_t)i == s->topo->self) continue;
        peer_msg_t req = {.flags = PEER_F_FORWARDED};
        if (s->kind == API_SC_KEYS_INVALIDATE) {
            req.type = PEER_MSG_INVALIDATE;
            req.count = (uint32_t)s->nkeys;
            req.keys = s->keys;
        } else {
            req.type = PEER_MSG_INVALIDATE_PATTERN;
            req.pattern.p = (const uint8_t *)s->pattern;
            req.pattern.len = s->plen;
            req.dry_run = s->dry_run;
        }
        api_scatter_send(s, i, &req);
        if (s->kind == API_SC_PREVIEW && s->sample_max) {
            peer_msg_t kr = {.type = PEER_MSG_KEYS,
                             .flags = PEER_F_FORWARDED | PEER_F_PRIMARY,
                             .limit = (uint32_t)s->sample_max};
            kr.pattern = req.pattern;
            api_scatter_send(s, i, &kr);
        }
    }
    api_scatter_done_one(s);
}

static api_scatter_t *api_scatter_new(api_worker_t *w, http_request_t *r, api_sc_kind_t kind)
{
    api_scatter_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->w = w;
    s->r = r;
    s->kind = kind;
    s->topo = topo_ref(topo_cache_get(&w->topo, &w->api->topo));
    s->failed = calloc(s->topo ? s->topo->n : 1, sizeof *s->failed);
    if (!s->failed) {
        topo_unref(s->topo);
        free(s);
        return NULL;
    }
    sbuf_init(&s->sample);
    return s;
}

/* ---------- the endpoints ---------- */

/* Reads ?pattern= (default "*"); answers 400 and returns -1 when bad. */
static long api_pattern_param(http_request_t *r, char *buf, size_t cap, bool required)
{
    size_t qlen;
    const char *q = http_request_query(r, &qlen);
    long n = http_query_get(q, qlen, "pattern", buf, cap);
    if (n == -2) {
        http_respond_error(r, 400, "bad_pattern", "pattern is malformed or longer than 1024 bytes");
        return -1;
    }
    if (n <= 0) {
        if (required) {
            http_respond_error(r, 400, "bad_pattern", "a non-empty pattern parameter is required");
            return -1;
        }
        buf[0] = '*';
        buf[1] = '\0';
        return 1;
    }
    return n;
}

void api_invalidate_keys(api_worker_t *w, http_request_t *r)
{
    json_t *root = api_parse_json_body(r);
    if (!root) return;
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > API_INVALIDATE_MAX_KEYS) {
        json_decref(root);
        http_respond_error(r, 400, "bad_keys", "\"keys\" must be an array of 1 to 10000 strings");
        return;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        size_t len = json_string_length(k);
        if (!json_is_string(k) || len == 0 || len > STORE_KEY_MAX) {
            json_decref(root);
            http_respond_error(r, 400, "bad_key", "every key must be a string of 1 to 1024 bytes");
            return;
        }
    }
    api_scatter_t *s = api_scatter_new(w, r, API_SC_KEYS_INVALIDATE);
    if (s) s->keys = malloc(json_array_size(keys) * sizeof *s->keys);
    if (!s || !s->keys) {
        json_decref(root);
        if (s) api_scatter_free(s);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    s->root = root;
    json_array_foreach(keys, i, k) {
        s->keys[i].p = (const uint8_t *)json_string_value(k);
        s->keys[i].len = json_string_length(k);
    }
    s->nkeys = json_array_size(keys);
    api_scatter_run(s);
}

static void api_scatter_pattern(api_worker_t *w, http_request_t *r, api_sc_kind_t kind, const char *pattern,
                                size_t plen, bool dry_run, size_t sample_max)
{
    api_scatter_t *s = api_scatter_new(w, r, kind);
    if (s) s->pattern = malloc(plen);
    if (!s || !s->pattern) {
        if (s) api_scatter_free(s);
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    memcpy(s->pattern, pattern, plen);
    s->plen = plen;
    s->dry_run = dry_run;
    s->sample_max = sample_max;
    api_scatter_run(s);
}

void api_invalidate_pattern(api_worker_t *w, http_request_t *r)
{
    json_t *root = api_parse_json_body(r);
    if (!root) return;
    json_t *pat = json_object_get(root, "pattern");
    json_t *dry = json_object_get(root, "dry_run");
    if (!json_is_string(pat) || json_string_length(pat) == 0 || json_string_length(pat) > STORE_KEY_MAX) {
        json_decref(root);
        http_respond_error(r, 400, "bad_pattern", "\"pattern\" must be a string of 1 to 1024 bytes");
        return;
    }
    if (dry && !json_is_boolean(dry)) {
        json_decref(root);
        http_respond_error(r, 400, "bad_request", "\"dry_run\" must be true or false");
        return;
    }
    api_scatter_pattern(w, r, API_SC_PATTERN, json_string_value(pat), json_string_length(pat),
                        dry && json_is_true(dry), 0);
    json_decref(root);
}

void api_invalidate_preview(api_worker_t *w, http_request_t *r)
{
    char pattern[STORE_KEY_MAX + 1];
    long plen = api_pattern_param(r, pattern, sizeof pattern, true);
    if (plen < 0) return;
    uint64_t limit;
    if (!api_query_uint(r, "limit", API_PREVIEW_DEFAULT_LIMIT, 0, API_KEYS_MAX_LIMIT, &limit)) return;
    api_scatter_pattern(w, r, API_SC_PREVIEW, pattern, (size_t)plen, true, (size_t)limit);
}

/* ---------- listing: one node per page ---------- */

typedef struct api_keys_req {
    api_worker_t *w;
    http_request_t *r;
    topo_t *topo;
    uint32_t node, limit;
    char pattern[STORE_KEY_MAX + 1];
    size_t plen;
} api_keys_req_t;

static void api_keys_respond(api_keys_req_t *k, const peer_keyinfo_t *items, size_t n, uint64_t next,
                             bool unreachable)
{
    const char *node = k->topo ? k->topo->members[k->node].name : api_self_name(k->w->api);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"keys\":[");
    for (size_t i = 0; i < n; i++) {
        sbuf_puts(&b, i ? ",{" : "{");
        sbuf_json_bytes_member(&b, "key", (const char *)items[i].key.p, items[i].key.len);
        int64_t ttl = items[i].ttl_ms < 0 ? -1 : (items[i].ttl_ms + 999) / 1000;
        sbuf_printf(&b, ",\"size\":%llu,\"ttl\":%lld,\"node\":", (unsigned long long)items[i].size, (long long)ttl);
        sbuf_json_string(&b, node, strlen(node));
        sbuf_puts(&b, "}");
    }
    if (!k->topo) {
        sbuf_printf(&b, "],\"cursor\":\"%llu\"", (unsigned long long)next);
    } else if (next) {
        sbuf_printf(&b, "],\"cursor\":\"%u.%llu\"", k->node, (unsigned long long)next);
    } else if (k->node + 1 < k->topo->n) {
        sbuf_printf(&b, "],\"cursor\":\"%u.0\"", k->node + 1);
    } else {
        sbuf_puts(&b, "],\"cursor\":\"0\"");
    }
    sbuf_printf(&b, ",\"count\":%zu,\"unreachable\":[", n);
    if (unreachable) sbuf_json_string(&b, node, strlen(node));
    sbuf_puts(&b, "]}");
    api_respond_sbuf(k->r, 200, &b);
    topo_unref(k->topo);
    free(k);
}

static void api_keys_reply(void *ctx, peer_result_t res, const peer_msg_t *resp)
{
    api_keys_req_t *k = ctx;
    if (res != PEER_OK || resp->type != PEER_MSG_KEYS_RESP) {
        api_keys_respond(k, NULL, 0, 0, true);
        return;
    }
    peer_keyinfo_t *items = malloc((resp->count ? resp->count : 1) * sizeof *items);
    if (!items) {
        http_respond_error(k->r, 503, "no_memory", "out of memory");
        topo_unref(k->topo);
        free(k);
        return;
    }
    peer_iter_t it;
    peer_iter_init(&it, resp);
    size_t n = 0;
    while (n < resp->count && peer_iter_keyinfo(&it, &items[n])) n++;
    api_keys_respond(k, items, n, resp->cursor, false);
    free(items);
}

static void api_keys_local(api_keys_req_t *k, uint64_t cursor, bool primary_only)
{
    api_keys_page_t page = {0};
    if (!api_local_keys(k->w, k->pattern, k->plen, cursor, k->limit, primary_only, &page)) {
        http_respond_error(k->r, 503, "no_memory", "out of memory");
        topo_unref(k->topo);
        free(k);
        return;
    }
    api_keys_respond(k, page.items, page.n, page.next, false);
    api_keys_page_free(&page);
}

/* "N" (one node) or "I.N" (node I of the ring, its cursor N). */
static bool api_parse_cursor(const char *s, long len, uint32_t *node, uint64_t *cursor)
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
    api_keys_req_t *k = calloc(1, sizeof *k);
    if (!k) {
        http_respond_error(r, 503, "no_memory", "out of memory");
        return;
    }
    long plen = api_pattern_param(r, k->pattern, sizeof k->pattern, false);
    uint64_t limit = 0, cursor = 0;
    if (plen < 0 || !api_query_uint(r, "limit", API_KEYS_DEFAULT_LIMIT, 1, API_KEYS_MAX_LIMIT, &limit)) {
        free(k);
        return;
    }
    size_t qlen;
    const char *q = http_request_query(r, &qlen);
    char cbuf[48];
    long clen = http_query_get(q, qlen, "cursor", cbuf, sizeof cbuf);
    uint32_t node = 0;
    topo_t *t = topo_cache_get(&w->topo, &w->api->topo);
    if (!api_parse_cursor(cbuf, clen == 0 ? -1 : clen, &node, &cursor) || (t && node >= t->n) ||
        (!t && node != 0)) {
        free(k);
        http_respond_error(r, 400, "bad_cursor", "cursor must be one returned by a previous listing");
        return;
    }
    k->w = w;
    k->r = r;
    k->plen = (size_t)plen;
    k->limit = (uint32_t)limit;
    k->node = node;
    k->topo = t && t->n > 1 ? topo_ref(t) : NULL;
    if (!k->topo) {
        api_keys_local(k, cursor, false);
        return;
    }
    if ((int32_t)node == t->self) {
        api_keys_local(k, cursor, true);
        return;
    }
    const topo_member_t *m = &t->members[node];
    peer_msg_t req = {.type = PEER_MSG_KEYS, .flags = PEER_F_FORWARDED | PEER_F_PRIMARY, .cursor = cursor,
                      .limit = k->limit};
    req.pattern.p = (const uint8_t *)k->pattern;
    req.pattern.len = k->plen;
    if (m->peer.ss_family == 0 ||
        peer_pool_request(w->pool, m->name, (const struct sockaddr *)&m->peer, &req, api_scatter_timeout_ms(w),
                          api_keys_reply, k) != PEER_OK)
        api_keys_respond(k, NULL, 0, 0, true);
}
