#include "cluster/swim_relay.h"

#include <stdlib.h>

swim_relay_t *swim_relay_add(swim_relays_t *t)
{
    if (!t->v) {
        t->v = calloc(SWIM_MAX_RELAYS, sizeof *t->v);
        if (!t->v) return NULL;
    }
    if (t->n == SWIM_MAX_RELAYS) t->v[0] = t->v[--t->n]; /* oldest-ish goes */
    return &t->v[t->n++];
}

bool swim_relay_take(swim_relays_t *t, uint32_t our_seq, const swim_id_t *target, swim_relay_t *out)
{
    for (unsigned i = 0; i < t->n; i++) {
        swim_relay_t *rl = &t->v[i];
        if (rl->our_seq != our_seq || !swim_id_equal(&rl->target, target)) continue;
        *out = *rl;
        t->v[i] = t->v[--t->n];
        return true;
    }
    return false;
}

void swim_relay_expire(swim_relays_t *t, int64_t now_ms, void (*fn)(const swim_relay_t *r, void *ctx), void *ctx)
{
    for (unsigned i = 0; i < t->n;) {
        swim_relay_t *rl = &t->v[i];
        if (rl->deadline_ms > now_ms) {
            i++;
            continue;
        }
        fn(rl, ctx);
        t->v[i] = t->v[--t->n];
    }
}

int64_t swim_relay_next_deadline(const swim_relays_t *t)
{
    int64_t at = INT64_MAX;
    for (unsigned i = 0; i < t->n; i++)
        if (t->v[i].deadline_ms < at) at = t->v[i].deadline_ms;
    return at;
}

void swim_relay_free(swim_relays_t *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}
