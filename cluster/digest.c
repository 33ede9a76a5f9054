#include "cluster/digest.h"

#include <string.h>

/* splitmix64's finaliser: every input bit flips about half the output. */
static uint64_t digest_fmix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t digest_item(uint64_t hash, uint64_t version, bool tomb)
{
    /* The tombstone flag goes in with its own constant, so a tombstone and
     * an entry of the same version do not cancel out across a pair. */
    return digest_fmix(hash ^ digest_fmix(version + (tomb ? 0x9e3779b97f4a7c15ull : 0x2545f4914f6cdd1dull)));
}

unsigned digest_level_for(uint64_t items)
{
    unsigned level = DIGEST_LEVEL_MIN;
    while (level < DIGEST_LEVEL_MAX && (items >> level) > 8) level++;
    return level;
}

unsigned digest_table_level(size_t len)
{
    for (unsigned l = DIGEST_LEVEL_MIN; l <= DIGEST_LEVEL_MAX; l++)
        if (len == digest_table_bytes(l)) return l;
    return 0;
}

unsigned digest_bitmap_level(size_t len)
{
    for (unsigned l = DIGEST_LEVEL_MIN; l <= DIGEST_LEVEL_MAX; l++)
        if (len == digest_bitmap_bytes(l)) return l;
    return 0;
}

void digest_table_encode(const uint64_t *table, unsigned level, uint8_t *out)
{
    for (size_t b = 0; b < digest_buckets(level); b++)
        for (int i = 0; i < 8; i++) out[b * 8u + (size_t)i] = (uint8_t)(table[b] >> (8 * i));
}

static uint64_t digest_load(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

size_t digest_compare(const uint64_t *ours, unsigned our_level, const uint8_t *theirs, unsigned their_level,
                      uint8_t *bits, unsigned *level)
{
    unsigned l = our_level < their_level ? our_level : their_level;
    size_t ours_per = (size_t)1 << (our_level - l), theirs_per = (size_t)1 << (their_level - l);
    memset(bits, 0, digest_bitmap_bytes(l));
    size_t n = 0;
    for (size_t b = 0; b < digest_buckets(l); b++) {
        uint64_t a = 0, t = 0;
        for (size_t i = 0; i < ours_per; i++) a ^= ours[b * ours_per + i];
        for (size_t i = 0; i < theirs_per; i++) t ^= digest_load(theirs + (b * theirs_per + i) * 8u);
        if (a != t) {
            bits[b >> 3] |= (uint8_t)(1u << (b & 7));
            n++;
        }
    }
    *level = l;
    return n;
}

void digest_bits_widen(const uint8_t *bits, unsigned level, uint8_t *into, unsigned into_level)
{
    size_t per = (size_t)1 << (into_level - level);
    for (size_t b = 0; b < digest_buckets(level); b++) {
        if (!((bits[b >> 3] >> (b & 7)) & 1u)) continue;
        for (size_t i = b * per; i < (b + 1) * per; i++) into[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
}

size_t digest_bits_count(const uint8_t *bits, unsigned level)
{
    size_t n = 0;
    for (size_t i = 0; i < digest_bitmap_bytes(level); i++) n += (size_t)__builtin_popcount(bits[i]);
    return n;
}
