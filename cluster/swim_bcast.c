#include "cluster/swim_bcast.h"

#include <stdlib.h>
#include <string.h>

void swim_bcast_init(swim_bcast_t *q, size_t max)
{
    memset(q, 0, sizeof *q);
    q->max = max ? max : 4096;
}

void swim_bcast_destroy(swim_bcast_t *q)
{
    free(q->items);
    memset(q, 0, sizeof *q);
}

static void swim_bcast_remove(swim_bcast_t *q, size_t i)
{
    memmove(&q->items[i], &q->items[i + 1], (q->n - i - 1) * sizeof *q->items);
    q->n--;
}

void swim_bcast_push(swim_bcast_t *q, const swim_msg_t *m)
{
    swim_bcast_item_t it;
    memset(&it, 0, sizeof it);
    it.msg = *m;
    it.about = m->type == SWIM_MSG_ALIVE ? m->member.id : m->id;
    if (m->type == SWIM_MSG_ALIVE) memcpy(it.name, m->member.name, sizeof it.name);
    for (size_t i = 0; i < q->n;) {
        swim_bcast_item_t *o = &q->items[i];
        bool same = swim_id_equal(&o->about, &it.about) || (it.name[0] && o->name[0] && strcmp(o->name, it.name) == 0);
        if (same) swim_bcast_remove(q, i);
        else i++;
    }
    if (q->n == q->max) {
        swim_bcast_remove(q, q->n - 1);
        q->dropped++;
    }
    if (q->n == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 8;
        if (ncap > q->max) ncap = q->max;
        swim_bcast_item_t *ni = realloc(q->items, ncap * sizeof *ni);
        if (!ni) {
            q->dropped++;
            return;
        }
        q->items = ni;
        q->cap = ncap;
    }
    /* New updates have zero transmits: they go first. */
    memmove(&q->items[1], &q->items[0], q->n * sizeof *q->items);
    q->items[0] = it;
    q->n++;
}

unsigned swim_bcast_fill(swim_bcast_t *q, swim_packet_writer_t *w, uint32_t limit)
{
    unsigned added = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (swim_packet_add(w, &q->items[i].msg) != SWIM_PROTO_OK) continue;
        q->items[i].transmits++;
        added++;
    }
    /* Retire what is done and restore the order (few items move). */
    size_t o = 0;
    for (size_t i = 0; i < q->n; i++)
        if (q->items[i].transmits < limit) q->items[o++] = q->items[i];
    q->n = o;
    for (size_t i = 1; i < q->n; i++) {
        swim_bcast_item_t key = q->items[i];
        size_t j = i;
        while (j > 0 && q->items[j - 1].transmits > key.transmits) {
            q->items[j] = q->items[j - 1];
            j--;
        }
        q->items[j] = key;
    }
    return added;
}
