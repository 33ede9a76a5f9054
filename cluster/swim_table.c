#include "cluster/swim_table.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static uint64_t swim_table_id_hash(const swim_id_t *id)
{
    /* Ids are random (or, under test, distinct): their bytes hash themselves. */
    uint64_t h, h2;
    memcpy(&h, id->b, sizeof h);
    memcpy(&h2, id->b + 8, sizeof h2);
    h = (h ^ (h2 * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

static uint64_t swim_table_name_hash(const swim_table_t *t, const char *name)
{
    /* Names come off the network: a keyed hash keeps crafted names from
     * piling into one run of slots. */
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, (const unsigned char *)name, strlen(name), t->hkey);
    return h;
}

bool swim_table_init(swim_table_t *t, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 16; i++) t->hkey[i] = (uint8_t)(seed >> ((i % 8) * 8)) ^ (uint8_t)(i * 37);
    t->slots = 16;
    t->by_id = calloc(t->slots, sizeof *t->by_id);
    t->by_name = calloc(t->slots, sizeof *t->by_name);
    t->cap = 8;
    t->recs = malloc(t->cap * sizeof *t->recs);
    if (!t->by_id || !t->by_name || !t->recs) {
        swim_table_destroy(t);
        return false;
    }
    return true;
}

void swim_table_destroy(swim_table_t *t)
{
    free(t->recs);
    free(t->by_id);
    free(t->by_name);
    memset(t, 0, sizeof *t);
}

static bool swim_table_id_at(const swim_table_t *t, uint32_t slot, const swim_id_t *id)
{
    uint32_t v = t->by_id[slot];
    return v && swim_id_equal(&t->recs[v - 1].id, id);
}

static bool swim_table_name_at(const swim_table_t *t, uint32_t slot, const char *name)
{
    uint32_t v = t->by_name[slot];
    return v && strcmp(t->recs[v - 1].info->name, name) == 0;
}

static uint32_t swim_table_slot_id(const swim_table_t *t, const swim_id_t *id)
{
    uint32_t mask = t->slots - 1, i = (uint32_t)swim_table_id_hash(id) & mask;
    while (t->by_id[i] && !swim_table_id_at(t, i, id)) i = (i + 1) & mask;
    return i;
}

static uint32_t swim_table_slot_name(const swim_table_t *t, const char *name)
{
    uint32_t mask = t->slots - 1, i = (uint32_t)swim_table_name_hash(t, name) & mask;
    while (t->by_name[i] && !swim_table_name_at(t, i, name)) i = (i + 1) & mask;
    return i;
}

uint32_t swim_table_find_id(const swim_table_t *t, const swim_id_t *id)
{
    uint32_t v = t->by_id[swim_table_slot_id(t, id)];
    return v ? v - 1 : SWIM_NONE;
}

uint32_t swim_table_find_name(const swim_table_t *t, const char *name)
{
    uint32_t v = t->by_name[swim_table_slot_name(t, name)];
    return v ? v - 1 : SWIM_NONE;
}

/* Linear-probing delete by backward shift: no tombstones, so lookups stay
 * short however many members come and go. */
static void swim_table_unindex(uint32_t *idx, uint32_t slots, uint32_t hole, uint64_t (*home)(const swim_table_t *, uint32_t),
                               const swim_table_t *t)
{
    uint32_t mask = slots - 1, j = hole;
    idx[hole] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!idx[j]) return;
        uint32_t h = (uint32_t)home(t, idx[j] - 1) & mask;
        /* Move j back into the hole unless its home lies cyclically in (hole, j]. */
        bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (!stays) {
            idx[hole] = idx[j];
            idx[j] = 0;
            hole = j;
        }
    }
}

static uint64_t swim_table_home_id(const swim_table_t *t, uint32_t rec)
{
    return swim_table_id_hash(&t->recs[rec].id);
}

static uint64_t swim_table_home_name(const swim_table_t *t, uint32_t rec)
{
    return swim_table_name_hash(t, t->recs[rec].info->name);
}

static bool swim_table_grow_index(swim_table_t *t)
{
    uint32_t nslots = t->slots * 2;
    uint32_t *bid = calloc(nslots, sizeof *bid), *bname = calloc(nslots, sizeof *bname);
    if (!bid || !bname) {
        free(bid);
        free(bname);
        return false;
    }
    free(t->by_id);
    free(t->by_name);
    t->by_id = bid;
    t->by_name = bname;
    t->slots = nslots;
    for (uint32_t r = 0; r < t->n; r++) {
        t->by_id[swim_table_slot_id(t, &t->recs[r].id)] = r + 1;
        t->by_name[swim_table_slot_name(t, t->recs[r].info->name)] = r + 1;
    }
    return true;
}

uint32_t swim_table_add(swim_table_t *t, const swim_rec_t *r)
{
    if ((t->n + 1) * 2 > t->slots && !swim_table_grow_index(t)) return SWIM_NONE;
    if (t->n == t->cap) {
        uint32_t ncap = t->cap * 2;
        swim_rec_t *nr = realloc(t->recs, ncap * sizeof *nr);
        if (!nr) return SWIM_NONE;
        t->recs = nr;
        t->cap = ncap;
    }
    uint32_t i = t->n++;
    t->recs[i] = *r;
    t->by_id[swim_table_slot_id(t, &r->id)] = i + 1;
    t->by_name[swim_table_slot_name(t, r->info->name)] = i + 1;
    return i;
}

static void swim_table_point(swim_table_t *t, uint32_t rec)
{
    t->by_id[swim_table_slot_id(t, &t->recs[rec].id)] = rec + 1;
    t->by_name[swim_table_slot_name(t, t->recs[rec].info->name)] = rec + 1;
}

void swim_table_remove(swim_table_t *t, uint32_t i)
{
    swim_table_unindex(t->by_id, t->slots, swim_table_slot_id(t, &t->recs[i].id), swim_table_home_id, t);
    swim_table_unindex(t->by_name, t->slots, swim_table_slot_name(t, t->recs[i].info->name), swim_table_home_name, t);
    uint32_t last = --t->n;
    if (i != last) {
        t->recs[i] = t->recs[last];
        swim_table_point(t, i);
    }
}

void swim_table_swap(swim_table_t *t, uint32_t i, uint32_t j)
{
    if (i == j) return;
    /* Find the slots while the index still agrees with the array. */
    uint32_t id_i = swim_table_slot_id(t, &t->recs[i].id), id_j = swim_table_slot_id(t, &t->recs[j].id);
    uint32_t nm_i = swim_table_slot_name(t, t->recs[i].info->name);
    uint32_t nm_j = swim_table_slot_name(t, t->recs[j].info->name);
    swim_rec_t tmp = t->recs[i];
    t->recs[i] = t->recs[j];
    t->recs[j] = tmp;
    t->by_id[id_i] = j + 1;
    t->by_name[nm_i] = j + 1;
    t->by_id[id_j] = i + 1;
    t->by_name[nm_j] = i + 1;
}

void swim_table_set_id(swim_table_t *t, uint32_t i, const swim_id_t *id)
{
    swim_table_unindex(t->by_id, t->slots, swim_table_slot_id(t, &t->recs[i].id), swim_table_home_id, t);
    t->recs[i].id = *id;
    t->by_id[swim_table_slot_id(t, id)] = i + 1;
}
