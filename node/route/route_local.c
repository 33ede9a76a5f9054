/* route_local: this node's own part of cluster-wide operations, for the
 * node that received the request and for peers alike (see route_local.h). */
#include "node/route/route_local.h"

#include <stdlib.h>
#include <string.h>

#define ROUTE_MATCH_STEP 1024

typedef struct route_match {
    route_worker_t *w;
    bool collect;             /* gather keys to delete after the scan step */
    uint64_t matched;         /* matches this node is the primary of */
    char **keys;
    size_t *lens;
    size_t n, cap;
    bool oom;
} route_match_t;

static void route_match_one(const store_entry_t *e, void *ctx)
{
    route_match_t *m = ctx;
    size_t klen;
    const char *key = store_entry_key(e, &klen);
    if (route_is_primary(m->w, key, klen)) m->matched++;
    if (!m->collect) return;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 2 * ROUTE_MATCH_STEP;
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

/* Whether an invalidation's version can be used (route_local.h); moves
 * the clock past it when it can. */
static bool route_local_versioned(route_t *rt, uint64_t version)
{
    if (version == 0 || !route_plausible(rt, version)) return false;
    route_observe(rt, version);
    return true;
}

static bool route_local_delete(route_t *rt, const void *key, size_t klen, bool versioned, uint64_t version)
{
    return versioned ? store_delete_versioned(rt->store, key, klen, STORE_DELETE_IF_OLDER, version)
                     : store_delete(rt->store, key, klen);
}

void route_local_invalidate_pattern(route_worker_t *w, const char *pattern, size_t plen, bool dry_run,
                                    uint64_t version, uint64_t *matched, uint64_t *invalidated)
{
    route_t *a = w->route;
    route_match_t m = {.w = w, .collect = !dry_run};
    uint64_t cursor = 0, removed = 0, removed_primary = 0;
    bool versioned = !dry_run && route_local_versioned(a, version);
    /* Before the scan: a fill that lands behind it is refused. */
    if (versioned) route_tomb_add_pattern(a, pattern, plen, version);
    do {
        m.n = 0;
        /* The scan callback runs under a shard lock: delete after it. */
        cursor = store_scan(a->store, cursor, pattern, plen, ROUTE_MATCH_STEP, route_match_one, &m);
        for (size_t i = 0; i < m.n; i++) {
            if (route_local_delete(a, m.keys[i], m.lens[i], versioned, version)) {
                removed++;
                if (route_is_primary(w, m.keys[i], m.lens[i])) removed_primary++;
            }
            free(m.keys[i]);
        }
    } while (cursor != 0);
    free(m.keys);
    free(m.lens);
    if (!dry_run) {
        /* What the scan could not collect (no memory) still goes, newer
         * or not: a miss costs less than a stale read. */
        if (m.oom) removed += store_delete_matching(a->store, pattern, plen);
        metrics_add(&a->metrics->invalidations, removed);
    }
    *matched = m.matched;
    /* A newer copy that stayed was not invalidated; without the list (no
     * memory) every match went. */
    *invalidated = dry_run ? 0 : m.oom ? m.matched : removed_primary;
}

uint64_t route_local_invalidate_keys(route_worker_t *w, const peer_bytes_t *keys, size_t n, uint64_t version)
{
    uint64_t primary = 0, removed = 0;
    /* The version was stamped by the node that received the invalidation,
     * not by the keys' primaries; every member observes it before
     * answering, so a write that starts after the invalidation was answered
     * is stamped newer on whichever primary takes it. */
    bool versioned = route_local_versioned(w->route, version);
    for (size_t i = 0; i < n; i++) {
        /* The tombstone first: a fill landing between the two is refused. */
        if (versioned) route_tomb_add(w->route, keys[i].p, keys[i].len, version);
        if (!route_local_delete(w->route, keys[i].p, keys[i].len, versioned, version)) continue;
        removed++;
        if (route_is_primary(w, keys[i].p, keys[i].len)) primary++;
    }
    metrics_add(&w->route->metrics->invalidations, removed);
    return primary;
}

typedef struct route_list {
    route_worker_t *w;
    bool primary_only;
    peer_keyinfo_t *items;
    char *bytes;
    size_t n, cap, used, bytes_cap;
    bool oom;
} route_list_t;

/* Room for one more key: one scan step reports a whole bucket (during a
 * rehash, the buckets of both tables), which may be more than the page
 * was sized for. */
static bool route_list_room(route_list_t *k, size_t klen)
{
    if (k->n == k->cap) {
        peer_keyinfo_t *items = realloc(k->items, 2 * k->cap * sizeof *items);
        if (!items) return false;
        k->items = items;
        k->cap *= 2;
    }
    if (k->used + klen > k->bytes_cap) {
        char *bytes = realloc(k->bytes, 2 * k->bytes_cap + klen);
        if (!bytes) return false;
        k->bytes = bytes;
        k->bytes_cap = 2 * k->bytes_cap + klen;
    }
    return true;
}

static void route_list_one(const store_entry_t *e, void *ctx)
{
    route_list_t *k = ctx;
    size_t klen, vlen;
    const char *key = store_entry_key(e, &klen);
    if (k->primary_only && !route_is_primary(k->w, key, klen)) return;
    if (k->oom || !route_list_room(k, klen)) {
        k->oom = true;
        return;
    }
    store_entry_value(e, &vlen);
    memcpy(k->bytes + k->used, key, klen);
    int64_t ttl = route_entry_ttl_ms(k->w->route, e);
    /* Offsets for now: the byte buffer is final only after the scan. */
    k->items[k->n++] = (peer_keyinfo_t){.key = {.p = (const uint8_t *)(uintptr_t)k->used, .len = klen},
                                        .size = vlen,
                                        .ttl_ms = ttl ? ttl : -1};
    k->used += klen;
}

bool route_local_keys(route_worker_t *w, const char *pattern, size_t plen, uint64_t cursor, uint32_t limit,
                      bool primary_only, route_local_page_t *page)
{
    if (limit == 0) limit = ROUTE_LOCAL_KEYS_DEFAULT;
    if (limit > ROUTE_LOCAL_KEYS_MAX) limit = ROUTE_LOCAL_KEYS_MAX;
    /* A scan may report a little more than its limit (a bucket comes whole). */
    route_list_t k = {.w = w, .primary_only = primary_only, .cap = (size_t)limit * 2,
                    .bytes_cap = (size_t)limit * 2 * LIMITS_KEY_MAX};
    k.items = malloc(k.cap * sizeof *k.items);
    k.bytes = malloc(k.bytes_cap);
    if (!k.items || !k.bytes) {
        free(k.items);
        free(k.bytes);
        return false;
    }
    /* One scan examines a bounded number of buckets and may find few
     * matches (or none) where they are sparse; a page filled by a few
     * scans spares the client round trips and lets a preview's sample hold
     * what its count says. Bounded too, so a sparse pattern over a big
     * store does not hold the loop. */
    uint64_t next = cursor;
    unsigned scans = 0;
    do {
        next = store_scan(w->route->store, next, pattern, plen, limit, route_list_one, &k);
    } while (next != 0 && k.n < limit && !k.oom && ++scans < ROUTE_LOCAL_KEYS_SCANS);
    page->next = next;
    if (k.oom) {
        free(k.items);
        free(k.bytes);
        return false;
    }
    for (size_t i = 0; i < k.n; i++) k.items[i].key.p = (const uint8_t *)k.bytes + (uintptr_t)k.items[i].key.p;
    page->items = k.items;
    page->bytes = k.bytes;
    page->n = k.n;
    return true;
}

void route_local_page_free(route_local_page_t *page)
{
    free(page->items);
    free(page->bytes);
    page->items = NULL;
    page->bytes = NULL;
}

uint32_t route_local_accept_handoff(route_t *rt, const peer_msg_t *batch)
{
    peer_iter_t it;
    peer_iter_init(&it, batch);
    peer_entry_t e;
    uint32_t settled = 0;
    int64_t now = store_now_ms(rt->store);
    while (peer_iter_entry(&it, &e)) {
        /* Expired, deleted since, or older than the copy here: the sender's
         * copy is obsolete, settled all the same. In doubt (a floor,
         * tomb.h): not taken, not settled; the sender keeps it and tries
         * again. */
        if (e.expires_at_ms && (int64_t)e.expires_at_ms <= now) {
            settled++;
            continue;
        }
        tomb_verdict_t tv = route_tomb_check(rt, e.key.p, e.key.len, e.version);
        if (tv == TOMB_DELETED) settled++;
        if (tv != TOMB_CLEAR) continue;
        route_observe(rt, e.version);
        store_put_args_t args = {.key = e.key.p,
                                 .key_len = e.key.len,
                                 .value = e.value.p,
                                 .value_len = e.value.len,
                                 .content_type = (const char *)e.content_type.p,
                                 .content_type_len = e.content_type.len,
                                 .ttl_ms = e.expires_at_ms ? (int64_t)e.expires_at_ms - now : 0,
                                 .version = e.version};
        store_status_t st = store_put_if_newer(rt->store, &args, NULL);
        if (st == STORE_OK || st == STORE_STALE) settled++;
    }
    return settled;
}
