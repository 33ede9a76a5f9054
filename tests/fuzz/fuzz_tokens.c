/* libFuzzer target for the tokens file (--tokens): arbitrary text must parse
 * or fail with a message, never crash; what parses holds valid names and
 * roles, and writing its entries back with tokens_format_line parses to the
 * same table. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    tokens_t t;
    char err[256];
    if (!tokens_parse(text, size, &t, err, sizeof err)) {
        if (!memchr(err, '\0', sizeof err) || !err[0]) __builtin_trap();
        free(text);
        return 0;
    }
    size_t cap = t.n * 160 + 1;
    char *again = malloc(cap);
    size_t len = 0;
    for (size_t i = 0; i < t.n; i++) {
        const tokens_entry_t *e = &t.entries[i];
        if (!tokens_name_valid(e->name, strlen(e->name))) __builtin_trap();
        if (e->role < TOKENS_ROLE_READER || e->role > TOKENS_ROLE_ADMIN) __builtin_trap();
        if (!tokens_format_line(e->name, e->role, e->hash, again + len, cap - len)) __builtin_trap();
        len += strlen(again + len);
    }
    tokens_t back;
    if (!tokens_parse(again, len, &back, err, sizeof err) || back.n != t.n) __builtin_trap();
    for (size_t i = 0; i < t.n; i++)
        if (memcmp(&back.entries[i], &t.entries[i], sizeof t.entries[i]) != 0) __builtin_trap();
    /* A lookup of the raw input as a token must be safe too. */
    (void)tokens_find(&t, text, size);
    tokens_free(&back);
    tokens_free(&t);
    free(again);
    free(text);
    return 0;
}
