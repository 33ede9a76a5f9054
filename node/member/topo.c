#include "node/member/topo.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

topo_t *topo_build(const topo_member_t *members, size_t n, const char *self_name, unsigned replicas,
                   uint64_t version)
{
    if (n == 0 || n > RING_MEMBERS_MAX) return NULL;
    ring_member_t *rm = calloc(n, sizeof *rm);
    if (!rm) return NULL;
    for (size_t i = 0; i < n; i++) {
        crypto_generichash(rm[i].id, RING_ID_LEN, (const unsigned char *)members[i].name, strlen(members[i].name),
                           NULL, 0);
        rm[i].zone = members[i].zone;
        rm[i].weight = RING_WEIGHT_DEFAULT;
    }
    ring_t *ring = ring_build(rm, n, replicas, version);
    topo_t *t = ring ? calloc(1, sizeof *t) : NULL;
    if (t) t->members = calloc(n, sizeof *t->members);
    if (t) t->heard = calloc(n, sizeof *t->heard);
    if (!t || !t->members || !t->heard) {
        free(rm);
        if (t) {
            free(t->members);
            free(t->heard);
            free(t);
        }
        ring_unref(ring);
        return NULL;
    }
    atomic_init(&t->refs, 1);
    t->version = version;
    t->ring = ring;
    t->n = n;
    t->self = -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t idx;
        if (!ring_find(ring, rm[i].id, &idx)) continue;
        t->members[idx] = members[i];
        if (self_name && strcmp(members[i].name, self_name) == 0) t->self = (int32_t)idx;
    }
    free(rm);
    /* Everything ownership depends on, in ring order (the same on every
     * node), and the runs: two nodes with the same fingerprint place every
     * key on the same owners and agree on who is new. */
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof t->fingerprint);
    uint8_t r = (uint8_t)ring_replicas(ring);
    crypto_generichash_update(&st, &r, 1);
    for (size_t i = 0; i < n; i++) {
        const topo_member_t *m = &t->members[i];
        crypto_generichash_update(&st, (const unsigned char *)m->name, strlen(m->name) + 1);
        crypto_generichash_update(&st, (const unsigned char *)m->zone, strlen(m->zone) + 1);
        crypto_generichash_update(&st, m->run, sizeof m->run);
    }
    uint8_t fp[sizeof t->fingerprint];
    crypto_generichash_final(&st, fp, sizeof fp);
    for (size_t i = 0; i < sizeof fp; i++) t->fingerprint |= (uint64_t)fp[i] << (8 * i);
    return t;
}

size_t topo_reachable(const topo_t *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++) n += !t->members[i].suspect;
    return n;
}

topo_t *topo_ref(topo_t *t)
{
    if (t) atomic_fetch_add(&t->refs, 1);
    return t;
}

void topo_unref(topo_t *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
    ring_unref(t->ring);
    free(t->members);
    free(t->heard);
    free(t);
}

bool topo_find(const topo_t *t, const char *name, uint32_t *index)
{
    uint8_t id[RING_ID_LEN];
    crypto_generichash(id, sizeof id, (const unsigned char *)name, strlen(name), NULL, 0);
    return ring_find(t->ring, id, index) && strcmp(t->members[*index].name, name) == 0;
}

void topo_note_heard(topo_t *t, const char *name, uint64_t now_ms)
{
    uint32_t i;
    if (t && topo_find(t, name, &i)) atomic_store_explicit(&t->heard[i], now_ms, memory_order_relaxed);
}

void topo_carry_heard(topo_t *to, const topo_t *from)
{
    if (!to || !from) return;
    for (size_t i = 0; i < from->n; i++) {
        uint32_t j;
        uint64_t at = atomic_load_explicit(&from->heard[i], memory_order_relaxed);
        if (at && topo_find(to, from->members[i].name, &j)) atomic_store_explicit(&to->heard[j], at, memory_order_relaxed);
    }
}

size_t topo_heard_since(const topo_t *t, uint64_t since_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += (int32_t)i == t->self || atomic_load_explicit(&t->heard[i], memory_order_relaxed) >= since_ms;
    return n;
}

size_t topo_owners(const topo_t *t, const void *key, size_t len, uint32_t *out, size_t cap)
{
    return ring_owners(t->ring, key, len, out, cap);
}

bool topo_same_member(const topo_member_t *a, const topo_member_t *b)
{
    return strcmp(a->name, b->name) == 0 && memcmp(a->run, b->run, sizeof a->run) == 0;
}

bool topo_is_owner(const topo_t *t, const uint32_t *owners, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((int32_t)owners[i] == t->self) return true;
    return false;
}

void topo_slot_init(topo_slot_t *s)
{
    pthread_mutex_init(&s->lock, NULL);
    s->cur = s->prev = NULL;
    atomic_init(&s->generation, 0);
}

void topo_slot_destroy(topo_slot_t *s)
{
    topo_unref(s->cur);
    topo_unref(s->prev);
    s->cur = s->prev = NULL;
    pthread_mutex_destroy(&s->lock);
}

void topo_slot_publish(topo_slot_t *s, topo_t *t)
{
    pthread_mutex_lock(&s->lock);
    topo_t *old = s->prev;
    s->prev = s->cur;
    s->cur = t;
    atomic_fetch_add_explicit(&s->generation, 1, memory_order_release);
    pthread_mutex_unlock(&s->lock);
    topo_unref(old);
}

void topo_slot_replace(topo_slot_t *s, topo_t *t)
{
    pthread_mutex_lock(&s->lock);
    topo_t *old = s->cur;
    s->cur = t;
    atomic_fetch_add_explicit(&s->generation, 1, memory_order_release);
    pthread_mutex_unlock(&s->lock);
    topo_unref(old);
}

void topo_slot_clear_prev(topo_slot_t *s)
{
    pthread_mutex_lock(&s->lock);
    topo_t *old = s->prev;
    s->prev = NULL;
    atomic_fetch_add_explicit(&s->generation, 1, memory_order_release);
    pthread_mutex_unlock(&s->lock);
    topo_unref(old);
}

topo_t *topo_slot_get(topo_slot_t *s)
{
    pthread_mutex_lock(&s->lock);
    topo_t *t = topo_ref(s->cur);
    pthread_mutex_unlock(&s->lock);
    return t;
}

topo_t *topo_cache_get(topo_cache_t *c, topo_slot_t *s)
{
    uint64_t g = atomic_load_explicit(&s->generation, memory_order_acquire);
    if (g != c->generation) {
        pthread_mutex_lock(&s->lock);
        topo_t *cur = topo_ref(s->cur), *prev = topo_ref(s->prev);
        c->generation = atomic_load_explicit(&s->generation, memory_order_relaxed);
        pthread_mutex_unlock(&s->lock);
        topo_unref(c->cur);
        topo_unref(c->prev);
        c->cur = cur;
        c->prev = prev;
    }
    return c->cur;
}

topo_t *topo_cache_get_noting(topo_cache_t *c, topo_slot_t *s, topo_back_fn back, void *ctx)
{
    if (atomic_load_explicit(&s->generation, memory_order_acquire) == c->generation) return c->cur;
    topo_t *old = topo_ref(c->cur);
    topo_t *t = topo_cache_get(c, s);
    for (size_t i = 0; t && i < t->n; i++) {
        const topo_member_t *m = &t->members[i];
        const topo_member_t *was = NULL;
        for (size_t j = 0; old && j < old->n && !was; j++)
            if (strcmp(old->members[j].name, m->name) == 0) was = &old->members[j];
        if (!was || memcmp(was->run, m->run, sizeof m->run) != 0 || (was->suspect && !m->suspect)) back(m, ctx);
    }
    topo_unref(old);
    return t;
}

topo_t *topo_cache_prev(topo_cache_t *c)
{
    return c->prev;
}

void topo_cache_clear(topo_cache_t *c)
{
    topo_unref(c->cur);
    topo_unref(c->prev);
    c->cur = c->prev = NULL;
    c->generation = 0;
}

static const metrics_desc_t topo_metrics_rows[] = {
    METRICS_ROW(topo_metrics_t, version, METRICS_GAUGE, METRICS_U64, "ring_version", NULL,
                "Version of the ring snapshot in use (rises with every membership change)."),
    METRICS_ROW(topo_metrics_t, members, METRICS_GAUGE, METRICS_U64, "ring_members", NULL,
                "Members in the ring (alive and suspect)."),
};
const metrics_table_t topo_metrics_table = METRICS_TABLE(topo_metrics_rows);

void topo_slot_metrics(topo_slot_t *s, topo_metrics_t *out)
{
    topo_t *t = topo_slot_get(s);
    out->version = t ? t->version : 0;
    out->members = t ? t->n : 0;
    topo_unref(t);
}
