#include "cluster/swim_bcast.h"

#include <stdlib.h>
#include <string.h>

/* The smallest message (an ACK) is about this big: below it, stop looking. */
#define SWIM_BCAST_MIN_ROOM 24

void swim_bcast_init(swim_bcast_t *q, size_t max)
{
    memset(q, 0, sizeof *q);
    q->max = (uint32_t)(max ? max : 4096);
    q->free_head = -1;
    for (int i = 0; i < SWIM_BCAST_LEVELS; i++) q->head[i] = q->tail[i] = -1;
}

void swim_bcast_destroy(swim_bcast_t *q)
{
    free(q->items);
    free(q->index);
    memset(q, 0, sizeof *q);
}

static uint32_t swim_bcast_hash(const swim_id_t *id)
{
    uint64_t h;
    memcpy(&h, id->b, sizeof h);
    uint64_t h2;
    memcpy(&h2, id->b + 8, sizeof h2);
    return (uint32_t)(((h ^ (h2 * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull) >> 32);
}

static uint32_t swim_bcast_slot(const swim_bcast_t *q, const swim_id_t *id)
{
    uint32_t mask = q->slots - 1, i = swim_bcast_hash(id) & mask;
    while (q->index[i] && !swim_id_equal(&q->items[q->index[i] - 1].about, id)) i = (i + 1) & mask;
    return i;
}

static void swim_bcast_unindex(swim_bcast_t *q, uint32_t hole)
{
    uint32_t mask = q->slots - 1, j = hole;
    q->index[hole] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!q->index[j]) return;
        uint32_t h = swim_bcast_hash(&q->items[q->index[j] - 1].about) & mask;
        bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (!stays) {
            q->index[hole] = q->index[j];
            q->index[j] = 0;
            hole = j;
        }
    }
}

static void swim_bcast_link(swim_bcast_t *q, int32_t i)
{
    swim_bcast_item_t *it = &q->items[i];
    uint32_t lv = it->transmits < SWIM_BCAST_LEVELS ? it->transmits : SWIM_BCAST_LEVELS - 1;
    it->next = -1;
    it->prev = q->tail[lv];
    if (q->tail[lv] >= 0) q->items[q->tail[lv]].next = i;
    else q->head[lv] = i;
    q->tail[lv] = i;
}

static void swim_bcast_unlink(swim_bcast_t *q, int32_t i)
{
    swim_bcast_item_t *it = &q->items[i];
    uint32_t lv = it->transmits < SWIM_BCAST_LEVELS ? it->transmits : SWIM_BCAST_LEVELS - 1;
    if (it->prev >= 0) q->items[it->prev].next = it->next;
    else q->head[lv] = it->next;
    if (it->next >= 0) q->items[it->next].prev = it->prev;
    else q->tail[lv] = it->prev;
}

static void swim_bcast_remove(swim_bcast_t *q, int32_t i)
{
    swim_bcast_unlink(q, i);
    swim_bcast_unindex(q, swim_bcast_slot(q, &q->items[i].about));
    q->items[i].next = q->free_head;
    q->free_head = i;
    q->n--;
}

static bool swim_bcast_grow(swim_bcast_t *q)
{
    uint32_t ncap = q->cap ? q->cap * 2 : 16;
    if (ncap > q->max) ncap = q->max;
    swim_bcast_item_t *ni = realloc(q->items, ncap * sizeof *ni);
    if (!ni) return false;
    q->items = ni;
    for (uint32_t i = ncap; i > q->cap; i--) {
        q->items[i - 1].next = q->free_head;
        q->free_head = (int32_t)(i - 1);
    }
    q->cap = ncap;
    /* Keep the index at most half full. */
    uint32_t nslots = 16;
    while (nslots < 2 * ncap) nslots *= 2;
    if (nslots != q->slots) {
        int32_t *nidx = calloc(nslots, sizeof *nidx);
        if (!nidx) return false;
        free(q->index);
        q->index = nidx;
        q->slots = nslots;
        for (int lv = 0; lv < SWIM_BCAST_LEVELS; lv++)
            for (int32_t i = q->head[lv]; i >= 0; i = q->items[i].next)
                q->index[swim_bcast_slot(q, &q->items[i].about)] = i + 1;
    }
    return true;
}

void swim_bcast_push(swim_bcast_t *q, const swim_msg_t *m)
{
    swim_id_t about = m->type == SWIM_MSG_ALIVE ? m->member.id : m->id;
    uint32_t size = (uint32_t)swim_msg_size(m);
    if (size == 0) return; /* not encodable: nothing to spread */
    if (q->slots) {
        uint32_t s = swim_bcast_slot(q, &about);
        if (q->index[s]) swim_bcast_remove(q, q->index[s] - 1);
    }
    if (q->n == q->max) {
        for (int lv = SWIM_BCAST_LEVELS - 1; lv >= 0; lv--) {
            if (q->head[lv] >= 0) {
                swim_bcast_remove(q, q->head[lv]);
                q->dropped++;
                break;
            }
        }
    }
    if (q->free_head < 0 && !swim_bcast_grow(q)) {
        q->dropped++;
        return;
    }
    int32_t i = q->free_head;
    q->free_head = q->items[i].next;
    swim_bcast_item_t *it = &q->items[i];
    it->msg = *m;
    it->about = about;
    it->transmits = 0;
    it->size = size;
    swim_bcast_link(q, i);
    q->index[swim_bcast_slot(q, &about)] = i + 1;
    q->n++;
}

unsigned swim_bcast_fill(swim_bcast_t *q, swim_packet_writer_t *w, uint32_t limit)
{
    unsigned added = 0, misses = 0;
    int32_t sent = -1; /* items sent this time, relinked after the walk */
    /* A nearly full packet would otherwise walk the whole queue looking
     * for something small enough. */
    for (int lv = 0; lv < SWIM_BCAST_LEVELS && w->cap - w->len >= SWIM_BCAST_MIN_ROOM && misses < 8; lv++) {
        for (int32_t i = q->head[lv], next; i >= 0 && w->cap - w->len >= SWIM_BCAST_MIN_ROOM && misses < 8;
             i = next) {
            next = q->items[i].next;
            swim_bcast_item_t *it = &q->items[i];
            if (it->transmits >= limit) {
                swim_bcast_remove(q, i);
                continue;
            }
            /* +4: the compound's header may grow by a few bytes. */
            if ((size_t)it->size + 4 > w->cap - w->len || swim_packet_add(w, &it->msg) != SWIM_PROTO_OK) {
                misses++;
                continue;
            }
            added++;
            swim_bcast_unlink(q, i);
            it->transmits++;
            it->next = sent;
            sent = i;
        }
    }
    while (sent >= 0) {
        int32_t i = sent;
        sent = q->items[i].next;
        if (q->items[i].transmits >= limit) {
            swim_bcast_unindex(q, swim_bcast_slot(q, &q->items[i].about));
            q->items[i].next = q->free_head;
            q->free_head = i;
            q->n--;
        } else {
            swim_bcast_link(q, i);
        }
    }
    return added;
}
