/* hotkeys: the frequency sketch, the Space-Saving heap and its index, and
 * the published snapshots (contract in hotkeys.h). */
#include "node/warm/hotkeys.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ring.h"

#define HK_EMPTY UINT64_MAX   /* a free index cell */

/* A monitored key. Its bytes live in the instance's inline area while they
 * fit, else in a buffer of its own (kcap > HOTKEYS_KEY_INLINE). */
typedef struct hk_slot {
    uint64_t count, error;
    uint64_t hash;        /* the seeded mix, see hk_mix */
    uint8_t *key;
    uint32_t klen, kcap;
    uint32_t heap_pos;
} hk_slot_t;

typedef struct hk_ent {
    uint64_t count, error;
    const uint8_t *key;   /* into the snapshot's own key area */
    size_t klen;
} hk_ent_t;

/* An immutable copy of a top-K once published; built by the owner while
 * private. */
typedef struct hk_snap {
    hk_ent_t *ents;       /* top_k */
    size_t n;
    bool sorted;          /* sorted once, by the first reader */
    uint64_t min;         /* no unpublished key counts more (0 unless full) */
    uint8_t *keys;
    size_t keys_cap;
    hotkeys_stats_t stats;
} hk_snap_t;

struct hotkeys {
    /* The owner thread's alone. */
    uint64_t k0, k1;      /* the seed's two mixing keys */
    uint16_t *sketch;     /* HOTKEYS_ROWS rows of width counters */
    size_t width;
    uint64_t period, since_reset;
    size_t k, n;          /* slots, in use */
    hk_slot_t *slots;
    uint32_t *heap;       /* slot numbers, a min-heap by count */
    uint64_t *index;      /* (hash >> 32) << 32 | slot, linear probing */
    size_t index_mask;
    uint8_t *inline_keys; /* k * HOTKEYS_KEY_INLINE */
    uint32_t since_publish;
    bool built;           /* priv holds a snapshot not yet published */
    hotkeys_stats_t st;
    hk_snap_t *priv;

    pthread_mutex_t lock;
    hk_snap_t *pub;       /* under lock */
};

/* ---------- hashing ---------- */


static uint64_t hk_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ring_key_hash is unseeded (it is a protocol constant), so anyone could
 * compute a key's cells from it; one multiply with secret keys hides them. */
static inline uint64_t hk_mix(const hotkeys_t *h, uint64_t ring_hash)
{
    return ring_mum(ring_hash ^ h->k0, h->k1);
}

/* ---------- the sketch ---------- */

/* Row r's cell by double hashing (Kirsch & Mitzenmacher): one 64-bit hash
 * serves all rows without weakening the count-min bound. (Caffeine's
 * one-block-per-key layout, one cache miss instead of four, measured no
 * faster here with the 32 KiB default sketch.) */
static inline size_t hk_cell(const hotkeys_t *h, uint64_t x, unsigned r)
{
    uint32_t a = (uint32_t)x, b = (uint32_t)(x >> 32) | 1u;
    return (size_t)r * h->width + ((a + r * b) & (h->width - 1));
}

static void hk_reset(hotkeys_t *h);

/* Conservative update: only the cells at the minimum grow. Every cell of
 * the key still stays >= its count, and the others no longer absorb it.
 * Returns the new estimate. A cell never saturates (a saturated cell,
 * halved, could fall below its keys' decayed count, and the top-K's
 * admission relies on it never doing so): a record about to saturate one
 * ages everything first (rare: see hotkeys.h). */
static inline uint32_t hk_sketch_add(hotkeys_t *h, uint64_t x)
{
    uint16_t *c[HOTKEYS_ROWS];
    uint16_t m = UINT16_MAX;
    for (unsigned r = 0; r < HOTKEYS_ROWS; r++) {
        c[r] = &h->sketch[hk_cell(h, x, r)];
        if (*c[r] < m) m = *c[r];
    }
    if (m == UINT16_MAX - 1) {
        hk_reset(h);
        m = UINT16_MAX / 2;
    }
    for (unsigned r = 0; r < HOTKEYS_ROWS; r++)
        if (*c[r] == m) *c[r] = (uint16_t)(m + 1);
    return (uint32_t)m + 1;
}

/* ---------- the heap ---------- */

static inline void hk_heap_set(hotkeys_t *h, size_t pos, uint32_t s)
{
    h->heap[pos] = s;
    h->slots[s].heap_pos = (uint32_t)pos;
}

/* Counts only ever grow by one, so a slot only moves down. */
static void hk_sift_down(hotkeys_t *h, size_t pos)
{
    uint32_t s = h->heap[pos];
    uint64_t c = h->slots[s].count;
    for (;;) {
        size_t l = 2 * pos + 1;
        if (l >= h->n) break;
        size_t m = l;
        if (l + 1 < h->n && h->slots[h->heap[l + 1]].count < h->slots[h->heap[l]].count) m = l + 1;
        if (h->slots[h->heap[m]].count >= c) break;
        hk_heap_set(h, pos, h->heap[m]);
        pos = m;
    }
    hk_heap_set(h, pos, s);
}

/* ---------- the index ---------- */

static inline size_t hk_home(const hotkeys_t *h, uint64_t x)
{
    return (size_t)(x >> 32) & h->index_mask;
}

/* The cell holding the key, or the free cell ending its probe sequence. */
static size_t hk_find(const hotkeys_t *h, uint64_t x, const void *key, size_t klen, bool *found)
{
    uint64_t tag = x >> 32;
    for (size_t i = hk_home(h, x);; i = (i + 1) & h->index_mask) {
        uint64_t v = h->index[i];
        if (v == HK_EMPTY) {
            *found = false;
            return i;
        }
        if (v >> 32 == tag) {
            const hk_slot_t *s = &h->slots[(uint32_t)v];
            if (s->hash == x && s->klen == klen && memcmp(s->key, key, klen) == 0) {
                *found = true;
                return i;
            }
        }
    }
}

/* Backward-shift deletion: no tombstones, so probes stay short however long
 * the stream of replacements. */
static void hk_index_del(hotkeys_t *h, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & h->index_mask;
        uint64_t v = h->index[j];
        if (v == HK_EMPTY) break;
        size_t home = hk_home(h, h->slots[(uint32_t)v].hash);
        /* v may fill the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        h->index[i] = v;
        i = j;
    }
    h->index[i] = HK_EMPTY;
}

static size_t hk_index_cell_of(const hotkeys_t *h, uint32_t s)
{
    for (size_t i = hk_home(h, h->slots[s].hash);; i = (i + 1) & h->index_mask)
        if (h->index[i] != HK_EMPTY && (uint32_t)h->index[i] == s) return i;
}

/* ---------- aging ---------- */

static void hk_reset(hotkeys_t *h)
{
    /* the counters 4 at a time: each shifts right, the bit that would
     * cross into the one below is masked off */
    size_t words = HOTKEYS_ROWS * h->width / 4;
    for (size_t i = 0; i < words; i++) {
        uint64_t v;
        memcpy(&v, h->sketch + 4 * i, 8);
        v = (v >> 1) & 0x7fff7fff7fff7fffull;
        memcpy(h->sketch + 4 * i, &v, 8);
    }
    /* count down and error up keep count - error <= decayed truth <= count;
     * halving is monotone, so the heap stays a heap */
    for (size_t i = 0; i < h->n; i++) {
        hk_slot_t *s = &h->slots[i];
        s->count >>= 1;
        s->error = (s->error + 1) >> 1;
        if (s->error > s->count) s->error = s->count;
    }
    h->since_reset = 0;
    h->st.resets++;
}

/* ---------- snapshots ---------- */

static int hk_ent_cmp(const void *pa, const void *pb)
{
    const hk_ent_t *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    if (a->error != b->error) return a->error < b->error ? -1 : 1;
    if (a->klen != b->klen) return a->klen < b->klen ? -1 : 1;
    return memcmp(a->key, b->key, a->klen);
}

static bool hk_build(hotkeys_t *h, hk_snap_t *sn)
{
    size_t need = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->slots[i].count) need += h->slots[i].klen;
    if (need > sn->keys_cap) {
        size_t cap = sn->keys_cap * 2, max = h->k * LIMITS_KEY_MAX;
        if (cap < need) cap = need;
        if (cap > max) cap = max;
        uint8_t *p = realloc(sn->keys, cap);
        if (!p) return false;
        h->st.memory_bytes += cap - sn->keys_cap;
        sn->keys = p;
        sn->keys_cap = cap;
    }
    size_t n = 0, off = 0;
    for (size_t i = 0; i < h->n; i++) {
        const hk_slot_t *s = &h->slots[i];
        if (!s->count) continue;
        memcpy(sn->keys + off, s->key, s->klen);
        sn->ents[n++] = (hk_ent_t){.count = s->count, .error = s->error, .key = sn->keys + off, .klen = s->klen};
        off += s->klen;
    }
    sn->n = n;
    sn->sorted = false;
    sn->min = h->n == h->k ? h->slots[h->heap[0]].count : 0;
    h->st.keys = h->n;
    sn->stats = h->st;
    return true;
}

static void hk_publish(hotkeys_t *h, bool wait)
{
    if (!h->built) {
        if (!hk_build(h, h->priv)) {
            h->since_publish = 0;   /* no memory: not again on every record */
            return;
        }
        h->built = true;
    }
    if (wait) pthread_mutex_lock(&h->lock);
    else if (pthread_mutex_trylock(&h->lock) != 0) return;
    hk_snap_t *t = h->pub;
    h->pub = h->priv;
    h->priv = t;
    pthread_mutex_unlock(&h->lock);
    h->built = false;
    h->since_publish = 0;
}

void hotkeys_publish(hotkeys_t *h)
{
    h->built = false;   /* whatever was built may be stale */
    hk_publish(h, true);
}

/* ---------- recording ---------- */

/* Makes room for klen bytes in slot s; its buffer only grows. */
static bool hk_fit(hotkeys_t *h, hk_slot_t *s, size_t klen)
{
    if (klen <= s->kcap) return true;
    size_t cap = 2 * HOTKEYS_KEY_INLINE;
    while (cap < klen) cap *= 2;
    uint8_t *p = malloc(cap);
    if (!p) return false;
    if (s->kcap > HOTKEYS_KEY_INLINE) {
        free(s->key);
        h->st.memory_bytes -= s->kcap;
    }
    h->st.memory_bytes += cap;
    s->key = p;
    s->kcap = (uint32_t)cap;
    return true;
}

/* est: the sketch's estimate of the key, this record included. */
static void hk_topk_add(hotkeys_t *h, uint64_t x, const void *key, size_t klen, uint32_t est)
{
    bool found;
    size_t cell = hk_find(h, x, key, klen, &found);
    if (found) {
        uint32_t s = (uint32_t)h->index[cell];
        h->slots[s].count++;
        hk_sift_down(h, h->slots[s].heap_pos);
        return;
    }
    if (h->n < h->k) {
        uint32_t s = (uint32_t)h->n;
        hk_slot_t *sl = &h->slots[s];
        if (!hk_fit(h, sl, klen)) {
            h->st.drops++;
            return;
        }
        memcpy(sl->key, key, klen);
        sl->klen = (uint32_t)klen;
        sl->hash = x;
        sl->count = 1;
        sl->error = 0;
        h->index[cell] = (x >> 32) << 32 | s;
        /* count 1 rises above all but the zeros and ones aging left */
        size_t pos = h->n++;
        while (pos > 0 && h->slots[h->heap[(pos - 1) / 2]].count > 1) {
            hk_heap_set(h, pos, h->heap[(pos - 1) / 2]);
            pos = (pos - 1) / 2;
        }
        hk_heap_set(h, pos, s);
        return;
    }
    /* Space-Saving would admit every newcomer, and on a long tail spend
     * most records on replacements of the minimum by keys that will not
     * come back. The sketch bounds the newcomer's decayed count from above:
     * when that is no more than the minimum, leaving it out keeps the
     * invariant (a key not monitored counts no more than the minimum), so
     * only a key that may count more replaces it. Otherwise as Space-Saving:
     * the newcomer inherits the minimum's count as its error. */
    uint32_t s = h->heap[0];
    hk_slot_t *sl = &h->slots[s];
    if (est <= sl->count) {
        h->st.filtered++;
        return;
    }
    if (!hk_fit(h, sl, klen)) {
        h->st.drops++;
        return;
    }
    hk_index_del(h, hk_index_cell_of(h, s));
    memcpy(sl->key, key, klen);
    sl->klen = (uint32_t)klen;
    sl->hash = x;
    sl->error = sl->count;
    sl->count++;
    /* the deletion may have shifted the free cell found above */
    h->index[hk_find(h, x, key, klen, &found)] = (x >> 32) << 32 | s;
    hk_sift_down(h, 0);
    h->st.replacements++;
}

void hotkeys_record_hash(hotkeys_t *h, const void *key, size_t klen, uint64_t hash)
{
    if (klen == 0 || klen > LIMITS_KEY_MAX) return;
    uint64_t x = hk_mix(h, hash);
    h->st.records++;
    uint32_t est = hk_sketch_add(h, x);
    hk_topk_add(h, x, key, klen, est);
    if (++h->since_reset >= h->period) hk_reset(h);
    if (++h->since_publish >= HOTKEYS_PUBLISH_EVERY) hk_publish(h, false);
}

void hotkeys_record(hotkeys_t *h, const void *key, size_t klen)
{
    if (klen == 0 || klen > LIMITS_KEY_MAX) return;
    hotkeys_record_hash(h, key, klen, ring_key_hash(key, klen));
}

uint32_t hotkeys_estimate(const hotkeys_t *h, const void *key, size_t klen)
{
    if (klen == 0 || klen > LIMITS_KEY_MAX) return 0;
    uint64_t x = hk_mix(h, ring_key_hash(key, klen));
    uint16_t m = UINT16_MAX;
    for (unsigned r = 0; r < HOTKEYS_ROWS; r++) {
        uint16_t c = h->sketch[hk_cell(h, x, r)];
        if (c < m) m = c;
    }
    return m;
}

/* ---------- readers ---------- */

static void hk_entry_out(hotkeys_entry_t *o, uint64_t count, uint64_t error, const uint8_t *key, size_t klen)
{
    o->count = count;
    o->error = error;
    o->klen = klen;
    memcpy(o->key, key, klen);
}

size_t hotkeys_top(hotkeys_t *h, hotkeys_entry_t *out, size_t cap)
{
    pthread_mutex_lock(&h->lock);
    hk_snap_t *sn = h->pub;
    if (!sn->sorted) {
        qsort(sn->ents, sn->n, sizeof *sn->ents, hk_ent_cmp);
        sn->sorted = true;
    }
    size_t m = sn->n < cap ? sn->n : cap;
    for (size_t i = 0; i < m; i++) {
        const hk_ent_t *e = &sn->ents[i];
        hk_entry_out(&out[i], e->count, e->error, e->key, e->klen);
    }
    pthread_mutex_unlock(&h->lock);
    return m;
}

void hotkeys_stats(hotkeys_t *h, hotkeys_stats_t *out)
{
    pthread_mutex_lock(&h->lock);
    *out = h->pub->stats;
    pthread_mutex_unlock(&h->lock);
}

/* One instance's entry in a merge; the key is an offset until every copy is
 * made, since the area may move as it grows. */
typedef struct hk_item {
    uint64_t count, error, min;   /* min: the publishing instance's */
    union {
        size_t off;
        const uint8_t *p;
    } key;
    size_t klen;
} hk_item_t;

static int hk_item_key_cmp(const void *pa, const void *pb)
{
    const hk_item_t *a = pa, *b = pb;
    if (a->klen != b->klen) return a->klen < b->klen ? -1 : 1;
    return memcmp(a->key.p, b->key.p, a->klen);
}

static int hk_item_cmp(const void *pa, const void *pb)
{
    const hk_item_t *a = pa, *b = pb;
    hk_ent_t ea = {.count = a->count, .error = a->error, .key = a->key.p, .klen = a->klen};
    hk_ent_t eb = {.count = b->count, .error = b->error, .key = b->key.p, .klen = b->klen};
    return hk_ent_cmp(&ea, &eb);
}

size_t hotkeys_merge(hotkeys_t *const *hs, size_t n, hotkeys_entry_t *out, size_t cap)
{
    hk_item_t *items = NULL;
    uint8_t *keys = NULL;
    size_t ni = 0, icap = 0, klen = 0, kcap = 0, m = 0;
    uint64_t total_min = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        pthread_mutex_lock(&hs[i]->lock);
        const hk_snap_t *sn = hs[i]->pub;
        size_t kneed = 0;
        for (size_t j = 0; j < sn->n; j++) kneed += sn->ents[j].klen;
        if (ni + sn->n > icap) {
            size_t c = (ni + sn->n) * 2;
            hk_item_t *p = realloc(items, c * sizeof *p);
            if (p) {
                items = p;
                icap = c;
            } else {
                ok = false;
            }
        }
        if (ok && klen + kneed > kcap) {
            size_t c = (klen + kneed) * 2;
            uint8_t *p = realloc(keys, c);
            if (p) {
                keys = p;
                kcap = c;
            } else {
                ok = false;
            }
        }
        for (size_t j = 0; ok && j < sn->n; j++) {
            const hk_ent_t *e = &sn->ents[j];
            memcpy(keys + klen, e->key, e->klen);
            items[ni++] = (hk_item_t){.count = e->count, .error = e->error, .min = sn->min, .key.off = klen, .klen = e->klen};
            klen += e->klen;
        }
        total_min += sn->min;
        pthread_mutex_unlock(&hs[i]->lock);
    }
    if (!ok || ni == 0) goto done;
    for (size_t i = 0; i < ni; i++) items[i].key.p = keys + items[i].key.off;
    /* equal keys next to each other, then one item each */
    qsort(items, ni, sizeof *items, hk_item_key_cmp);
    size_t g = 0;
    for (size_t i = 0; i < ni;) {
        hk_item_t acc = items[i];
        uint64_t mins = items[i].min;
        size_t j = i + 1;
        for (; j < ni && hk_item_key_cmp(&items[i], &items[j]) == 0; j++) {
            acc.count += items[j].count;
            acc.error += items[j].error;
            mins += items[j].min;
        }
        /* the instances that did not publish it may each hold up to their
         * minimum of it */
        acc.count += total_min - mins;
        acc.error += total_min - mins;
        items[g++] = acc;
        i = j;
    }
    qsort(items, g, sizeof *items, hk_item_cmp);
    m = g < cap ? g : cap;
    for (size_t i = 0; i < m; i++) hk_entry_out(&out[i], items[i].count, items[i].error, items[i].key.p, items[i].klen);
done:
    free(items);
    free(keys);
    return m;
}

/* ---------- life ---------- */

static hk_snap_t *hk_snap_new(size_t k)
{
    hk_snap_t *sn = calloc(1, sizeof *sn);
    if (!sn) return NULL;
    sn->ents = calloc(k, sizeof *sn->ents);
    if (!sn->ents) {
        free(sn);
        return NULL;
    }
    return sn;
}

static void hk_snap_free(hk_snap_t *sn)
{
    if (!sn) return;
    free(sn->ents);
    free(sn->keys);
    free(sn);
}

hotkeys_t *hotkeys_new(const hotkeys_config_t *cfg)
{
    hotkeys_config_t c = cfg ? *cfg : (hotkeys_config_t){0};
    if (!c.top_k) c.top_k = HOTKEYS_TOP_K_DEFAULT;
    if (!c.sketch_width) c.sketch_width = HOTKEYS_WIDTH_DEFAULT;
    if (c.top_k > HOTKEYS_TOP_K_MAX || c.sketch_width > HOTKEYS_WIDTH_MAX) return NULL;
    size_t width = HOTKEYS_WIDTH_MIN;
    while (width < c.sketch_width) width *= 2;
    size_t cells = 2;
    while (cells < 2 * c.top_k) cells *= 2;

    hotkeys_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->k = c.top_k;
    h->width = width;
    h->period = (uint64_t)HOTKEYS_PERIOD_FACTOR * width;
    h->index_mask = cells - 1;
    uint64_t sm = c.seed;
    h->k0 = hk_splitmix(&sm);
    h->k1 = hk_splitmix(&sm) | 1;
    h->sketch = calloc(HOTKEYS_ROWS * width, sizeof *h->sketch);
    h->slots = calloc(h->k, sizeof *h->slots);
    h->heap = calloc(h->k, sizeof *h->heap);
    h->index = malloc(cells * sizeof *h->index);
    h->inline_keys = malloc(h->k * HOTKEYS_KEY_INLINE);
    h->priv = hk_snap_new(h->k);
    h->pub = hk_snap_new(h->k);
    if (!h->sketch || !h->slots || !h->heap || !h->index || !h->inline_keys || !h->priv || !h->pub ||
        pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h->sketch);
        free(h->slots);
        free(h->heap);
        free(h->index);
        free(h->inline_keys);
        hk_snap_free(h->priv);
        hk_snap_free(h->pub);
        free(h);
        return NULL;
    }
    memset(h->index, 0xff, cells * sizeof *h->index);
    for (size_t i = 0; i < h->k; i++) {
        h->slots[i].key = h->inline_keys + i * HOTKEYS_KEY_INLINE;
        h->slots[i].kcap = HOTKEYS_KEY_INLINE;
    }
    h->st.width = width;
    h->st.period = h->period;
    h->st.memory_bytes = sizeof *h + HOTKEYS_ROWS * width * sizeof *h->sketch + h->k * (sizeof *h->slots + sizeof *h->heap + HOTKEYS_KEY_INLINE) +
                         cells * sizeof *h->index + 2 * (sizeof(hk_snap_t) + h->k * sizeof(hk_ent_t));
    /* readers see the geometry before the first record */
    h->pub->stats = h->st;
    return h;
}

void hotkeys_free(hotkeys_t *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->k; i++)
        if (h->slots[i].kcap > HOTKEYS_KEY_INLINE) free(h->slots[i].key);
    free(h->sketch);
    free(h->slots);
    free(h->heap);
    free(h->index);
    free(h->inline_keys);
    hk_snap_free(h->priv);
    hk_snap_free(h->pub);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
