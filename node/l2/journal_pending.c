/* The table of keys waiting in the journal (contract in journal_pending.h):
 * open addressing with linear probing, grown by doubling while at most half
 * full, up to twice the bound; a cleared generation is removed in one pass
 * (each removal moves back what follows it on its probe run). */
#include "node/l2/journal_pending.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>

#define JOURNAL_PENDING_MIN_SLOTS 1024u

typedef struct journal_pending_slot {
    uint64_t hash, version;
    uint64_t gen;              /* 0: empty (generations start at 1) */
    bool del;
} journal_pending_slot_t;

struct journal_pending {
    pthread_mutex_t lock;
    journal_pending_slot_t *slots;
    size_t mask;               /* slots - 1; slots a power of two */
    size_t count, max;
    size_t max_slots;          /* the smallest power of two >= 2 * max */
    uint64_t overflows;
    uint64_t doubt_gen;        /* 0: not in doubt; else the newest generation that overflowed */
    uint8_t key[crypto_shorthash_KEYBYTES];
};

static size_t journal_pending_home(const journal_pending_t *p, uint64_t h)
{
    uint8_t in[8], out[crypto_shorthash_BYTES];
    for (int i = 0; i < 8; i++) in[i] = (uint8_t)(h >> (8 * i));
    crypto_shorthash(out, in, sizeof in, p->key);
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | out[i];
    return (size_t)x;
}

journal_pending_t *journal_pending_new(size_t max_entries)
{
    if (max_entries == 0) max_entries = 1;
    journal_pending_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    size_t max_slots = JOURNAL_PENDING_MIN_SLOTS;
    while (max_slots < 2 * max_entries) max_slots *= 2;
    size_t n = JOURNAL_PENDING_MIN_SLOTS;
    p->slots = calloc(n, sizeof *p->slots);
    if (!p->slots) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->mask = n - 1;
    p->max = max_entries;
    p->max_slots = max_slots;
    randombytes_buf(p->key, sizeof p->key);
    return p;
}

void journal_pending_free(journal_pending_t *p)
{
    if (!p) return;
    pthread_mutex_destroy(&p->lock);
    free(p->slots);
    free(p);
}

/* The slot holding hash, or the empty slot where it would go. */
static journal_pending_slot_t *journal_pending_probe(const journal_pending_t *p, journal_pending_slot_t *slots,
                                                     size_t mask, uint64_t hash)
{
    size_t i = journal_pending_home(p, hash) & mask;
    while (slots[i].gen != 0 && slots[i].hash != hash) i = (i + 1) & mask;
    return &slots[i];
}

/* Doubles the slots; false when there is no memory for it. */
static bool journal_pending_grow(journal_pending_t *p)
{
    size_t n = (p->mask + 1) * 2;
    journal_pending_slot_t *slots = calloc(n, sizeof *slots);
    if (!slots) return false;
    for (size_t i = 0; i <= p->mask; i++)
        if (p->slots[i].gen) *journal_pending_probe(p, slots, n - 1, p->slots[i].hash) = p->slots[i];
    free(p->slots);
    p->slots = slots;
    p->mask = n - 1;
    return true;
}

bool journal_pending_add(journal_pending_t *p, uint64_t hash, uint64_t version, bool del, uint64_t gen)
{
    if (gen == 0) gen = 1;
    pthread_mutex_lock(&p->lock);
    journal_pending_slot_t *s = journal_pending_probe(p, p->slots, p->mask, hash);
    bool ok = true;
    if (s->gen) {
        if (version > s->version) {
            s->version = version;
            s->del = del;
            s->gen = gen;
        } else if (version == s->version && gen > s->gen) {
            /* The same write twice: pending until its later copy is drained. */
            s->gen = gen;
        }
        /* An older record in a later file changes nothing: once the newest
         * one is in Redis, the replay of the older one is refused there. */
    } else {
        bool room = p->count < p->max;
        if (room && 2 * (p->count + 1) > p->mask + 1) {
            /* Grown while at most half full, so probes stay short. */
            room = p->mask + 1 < p->max_slots && journal_pending_grow(p);
            if (room) s = journal_pending_probe(p, p->slots, p->mask, hash);
        }
        if (room) {
            *s = (journal_pending_slot_t){.hash = hash, .version = version, .gen = gen, .del = del};
            p->count++;
        } else {
            ok = false;
            p->overflows++;
            if (gen > p->doubt_gen) p->doubt_gen = gen;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

/* Empties slot i and moves back the entries after it that a probe could
 * no longer reach past the hole (Knuth's algorithm R for linear probing). */
static void journal_pending_remove_at(journal_pending_t *p, size_t i)
{
    size_t j = i;
    for (;;) {
        p->slots[i].gen = 0;
        for (;;) {
            j = (j + 1) & p->mask;
            if (!p->slots[j].gen) return;
            size_t k = journal_pending_home(p, p->slots[j].hash) & p->mask;
            /* An entry whose home lies cyclically in (i, j] stays. */
            bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (!stays) break;
        }
        p->slots[i] = p->slots[j];
        i = j;
    }
}

void journal_pending_clear(journal_pending_t *p, uint64_t gen)
{
    pthread_mutex_lock(&p->lock);
    if (p->doubt_gen && p->doubt_gen <= gen) p->doubt_gen = 0;
    for (size_t i = 0; i <= p->mask && p->count;) {
        if (p->slots[i].gen && p->slots[i].gen <= gen) {
            journal_pending_remove_at(p, i);
            p->count--;
            continue; /* an entry may have moved into slot i */
        }
        i++;
    }
    pthread_mutex_unlock(&p->lock);
}

journal_pending_state_t journal_pending_lookup(journal_pending_t *p, uint64_t hash, uint64_t *version)
{
    pthread_mutex_lock(&p->lock);
    journal_pending_state_t st = JOURNAL_PENDING_NONE;
    if (p->doubt_gen) {
        st = JOURNAL_PENDING_IN_DOUBT;
    } else if (p->count) {
        const journal_pending_slot_t *s = journal_pending_probe(p, p->slots, p->mask, hash);
        if (s->gen) {
            st = s->del ? JOURNAL_PENDING_DEL : JOURNAL_PENDING_SET;
            *version = s->version;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return st;
}

void journal_pending_get_stats(journal_pending_t *p, journal_pending_stats_t *out)
{
    pthread_mutex_lock(&p->lock);
    *out = (journal_pending_stats_t){.entries = p->count, .max_entries = p->max, .overflows = p->overflows,
                                     .in_doubt = p->doubt_gen != 0};
    pthread_mutex_unlock(&p->lock);
}
