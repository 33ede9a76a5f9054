/* libFuzzer target for the glob matcher that pattern invalidation runs over
 * every key: arbitrary pattern and key (split at the first NUL) must never
 * crash, read past either, or take more than O(pattern x key) steps (the
 * run's -timeout catches a blow-up); a literal pattern matches exactly the
 * key it spells, and "*" matches everything. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/glob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    size_t klen = nul ? size - plen - 1 : 0;
    /* Exactly sized copies, so ASan sees a read past the end. */
    char *p = malloc(plen ? plen : 1), *k = malloc(klen ? klen : 1);
    memcpy(p, data, plen);
    if (klen) memcpy(k, nul + 1, klen);
    bool m = glob_match(p, plen, k, klen);
    if (!glob_match("*", 1, k, klen)) __builtin_trap();
    if (glob_is_literal(p, plen)) {
        /* Unescape: a literal pattern names one key. */
        char *lit = malloc(plen ? plen : 1);
        size_t n = 0;
        for (size_t i = 0; i < plen; i++) {
            if (p[i] == '\\' && i + 1 < plen) i++;
            lit[n++] = p[i];
        }
        bool same = n == klen && (n == 0 || memcmp(lit, k, n) == 0);
        if (m != same) __builtin_trap();
        if (!glob_match(p, plen, lit, n)) __builtin_trap();
        free(lit);
    }
    free(p);
    free(k);
    return 0;
}
