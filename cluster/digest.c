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

void digest_table_encode(const uint64_t *table, uint8_t *out)
{
    for (uint32_t b = 0; b < DIGEST_BUCKETS; b++)
        for (int i = 0; i < 8; i++) out[b * 8u + (uint32_t)i] = (uint8_t)(table[b] >> (8 * i));
}

size_t digest_compare(const uint64_t *ours, const uint8_t *theirs, uint8_t *bits)
{
    memset(bits, 0, DIGEST_BITMAP_BYTES);
    size_t n = 0;
    for (uint32_t b = 0; b < DIGEST_BUCKETS; b++) {
        uint64_t t = 0;
        for (int i = 7; i >= 0; i--) t = (t << 8) | theirs[b * 8u + (uint32_t)i];
        if (t != ours[b]) {
            bits[b >> 3] |= (uint8_t)(1u << (b & 7));
            n++;
        }
    }
    return n;
}

size_t digest_bits_count(const uint8_t *bits)
{
    size_t n = 0;
    for (uint32_t i = 0; i < DIGEST_BITMAP_BYTES; i++) n += (size_t)__builtin_popcount(bits[i]);
    return n;
}
