/* warm_hot: the cluster's predicted hot keys, as this node knows them (see the header). */
#include "node/warm/warm_hot.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/limits.h"
#include "node/core/sysinfo.h"

int warm_hot_init(warm_hot_t *h)
{
    memset(h, 0, sizeof *h);
    return pthread_mutex_init(&h->mu, NULL);
}

void warm_hot_destroy(warm_hot_t *h)
{
    warm_hot_items_free(h->local, h->nlocal);
    for (size_t i = 0; i < WARM_HOT_NODES; i++) warm_hot_items_free(h->remote[i].items, h->remote[i].n);
    pthread_mutex_destroy(&h->mu);
}

void warm_hot_items_free(warm_hot_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) free(items[i].key);
    free(items);
}

static int warm_hot_by_key(const void *a, const void *b)
{
    const warm_hot_item_t *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int warm_hot_by_count(const void *a, const void *b)
{
    const warm_hot_item_t *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return warm_hot_by_key(a, b);
}

static bool warm_hot_push(warm_hot_item_t **items, size_t *n, size_t *cap, uint64_t count, const char *key,
                          size_t klen)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        warm_hot_item_t *more = realloc(*items, c * sizeof *more);
        if (!more) return false;
        *items = more;
        *cap = c;
    }
    char *k = malloc(klen ? klen : 1);
    if (!k) return false;
    memcpy(k, key, klen);
    (*items)[(*n)++] = (warm_hot_item_t){.count = count, .klen = klen, .key = k};
    return true;
}

/* This node's list and the others' fresh ones, summed by key, hottest
 * first; *out is the caller's (warm_hot_items_free). */
size_t warm_hot_merged(warm_hot_t *h, warm_hot_item_t **out)
{
    warm_hot_item_t *items = NULL;
    size_t n = 0, cap = 0;
    int64_t now = sysinfo_now_ms();
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->nlocal; i++)
        if (!warm_hot_push(&items, &n, &cap, h->local[i].count, h->local[i].key, h->local[i].klen)) break;
    for (size_t k = 0; k < WARM_HOT_NODES; k++) {
        warm_hot_list_t *l = &h->remote[k];
        if (!l->node[0] || now - l->at > WARM_HOT_FRESH_MS) continue;
        for (size_t i = 0; i < l->n; i++)
            if (!warm_hot_push(&items, &n, &cap, l->items[i].count, l->items[i].key, l->items[i].klen)) break;
    }
    pthread_mutex_unlock(&h->mu);
    if (n) {
        qsort(items, n, sizeof *items, warm_hot_by_key);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (m && warm_hot_by_key(&items[m - 1], &items[i]) == 0) {
                items[m - 1].count += items[i].count;
                free(items[i].key);
            } else {
                items[m++] = items[i];
            }
        }
        n = m;
        qsort(items, n, sizeof *items, warm_hot_by_count);
    }
    *out = items;
    return n;
}

void warm_hot_local(warm_hot_t *h, const hotkeys_entry_t *e, size_t n)
{
    warm_hot_item_t *items = NULL;
    size_t m = 0, cap = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].count && !warm_hot_push(&items, &m, &cap, e[i].count, e[i].key, e[i].klen)) break;
    pthread_mutex_lock(&h->mu);
    warm_hot_item_t *old = h->local;
    size_t nold = h->nlocal;
    h->local = items;
    h->nlocal = m;
    pthread_mutex_unlock(&h->mu);
    warm_hot_items_free(old, nold);
}

void warm_hot_event(const char *node, const hotkeys_entry_t *e, size_t n, sbuf_t *out)
{
    sbuf_puts(out, "{\"node\":");
    sbuf_json_string(out, node, strlen(node));
    sbuf_puts(out, ",\"keys\":[");
    size_t shown = 0;
    for (size_t i = 0; i < n && shown < WARM_HOT_SHARED; i++) {
        /* JSON carries text: a key that is not UTF-8 stays this node's own. */
        if (!e[i].count || !sbuf_utf8_valid(e[i].key, e[i].klen)) continue;
        if (shown++) sbuf_puts(out, ",");
        sbuf_puts(out, "{\"key\":");
        sbuf_json_string(out, e[i].key, e[i].klen);
        sbuf_printf(out, ",\"count\":%llu}", (unsigned long long)e[i].count);
    }
    sbuf_puts(out, "]}");
}

void warm_hot_remote(warm_hot_t *h, const char *json, size_t len)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    const char *node = json_string_value(json_object_get(root, "node"));
    json_t *keys = json_object_get(root, "keys");
    if (!node || !json_is_array(keys)) {
        json_decref(root);
        return;
    }
    warm_hot_item_t *items = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < json_array_size(keys) && i < WARM_HOT_SHARED; i++) {
        json_t *it = json_array_get(keys, i);
        json_t *k = json_object_get(it, "key"), *c = json_object_get(it, "count");
        size_t klen = json_string_length(k);
        if (!json_is_string(k) || !klen || klen > LIMITS_KEY_MAX || !json_is_integer(c) || json_integer_value(c) < 0)
            continue;
        if (!warm_hot_push(&items, &n, &cap, (uint64_t)json_integer_value(c), json_string_value(k), klen)) break;
    }
    int64_t now = sysinfo_now_ms();
    pthread_mutex_lock(&h->mu);
    warm_hot_list_t *slot = NULL, *oldest = &h->remote[0];
    for (size_t i = 0; i < WARM_HOT_NODES && !slot; i++) {
        warm_hot_list_t *l = &h->remote[i];
        if (strcmp(l->node, node) == 0) slot = l;
        else if (!l->node[0] || l->at < oldest->at) oldest = l;
    }
    if (!slot) slot = oldest;
    warm_hot_item_t *old = slot->items;
    size_t nold = slot->n;
    snprintf(slot->node, sizeof slot->node, "%s", node);
    slot->at = now;
    slot->items = items;
    slot->n = n;
    pthread_mutex_unlock(&h->mu);
    warm_hot_items_free(old, nold);
    json_decref(root);
}

void warm_hot_json(warm_hot_t *h, size_t limit, sbuf_t *out)
{
    warm_hot_item_t *items = NULL;
    size_t n = warm_hot_merged(h, &items), lists = 0;
    int64_t now = sysinfo_now_ms();
    pthread_mutex_lock(&h->mu);
    lists = h->nlocal ? 1 : 0;
    for (size_t k = 0; k < WARM_HOT_NODES; k++)
        if (h->remote[k].node[0] && now - h->remote[k].at <= WARM_HOT_FRESH_MS) lists++;
    pthread_mutex_unlock(&h->mu);
    sbuf_puts(out, "{\"keys\":[");
    for (size_t i = 0; i < n && i < limit; i++) {
        if (i) sbuf_puts(out, ",");
        sbuf_puts(out, "{");
        sbuf_json_bytes_member(out, "key", items[i].key, items[i].klen);
        sbuf_printf(out, ",\"count\":%llu}", (unsigned long long)items[i].count);
    }
    sbuf_printf(out, "],\"nodes\":%zu}", lists);
    warm_hot_items_free(items, n);
}
