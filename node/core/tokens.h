/* tokens: the API's bearer tokens and their roles, as an operator keeps
 * them in a tokens file (--tokens), one a line:
 *
 *     # comment
 *     NAME ROLE HASH
 *
 * NAME is [A-Za-z0-9_.-]{1,64} and unique in the file (it labels metrics and
 * logs, so it must never be the token); ROLE is reader, writer or admin;
 * HASH is the BLAKE2b-256 of the token in 64 hex digits. The file holds no
 * token, so reading it (or a backup of it) does not hand out access; tokens
 * are 256 random bits, so a fast hash is enough (nothing to brute-force).
 *
 * Parsing is pure (text in, table out) so the fuzzer drives it; loading a
 * file adds the check ssh makes of a private key: a file other users may
 * read or write is refused.
 *
 * Ownership: a tokens_t owns its entries (tokens_free). Threads: a table is
 * immutable once parsed; any thread may look tokens up in it.
 */
#ifndef DCACHE_TOKENS_H
#define DCACHE_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKENS_NAME_MAX 64
#define TOKENS_HASH_LEN 32
#define TOKENS_MAX 4096               /* lines a file may hold */
#define TOKENS_FILE_MAX (1u << 20)    /* bytes */
/* "dct_" and 43 characters of unpadded base64url (32 random bytes). */
#define TOKENS_TOKEN_LEN 47

/* Ordered: a role may do everything the ones below it may. */
typedef enum {
    TOKENS_ROLE_NONE = 0,   /* anonymous: what needs no token */
    TOKENS_ROLE_READER,
    TOKENS_ROLE_WRITER,
    TOKENS_ROLE_ADMIN,
} tokens_role_t;

typedef struct tokens_entry {
    char name[TOKENS_NAME_MAX + 1];
    tokens_role_t role;
    uint8_t hash[TOKENS_HASH_LEN];
} tokens_entry_t;

typedef struct tokens {
    tokens_entry_t *entries;
    size_t n;
} tokens_t;

/* Parses a tokens file's text into `out` (which the caller frees with
 * tokens_free on success; untouched on failure). On failure, a message
 * naming the line goes to err. An empty file is valid: no token opens
 * anything. */
bool tokens_parse(const char *text, size_t len, tokens_t *out, char *err, size_t errcap);
/* Reads and parses `path`, refusing a file other users may access (mode &
 * 077) or one over TOKENS_FILE_MAX bytes. */
bool tokens_load_file(const char *path, tokens_t *out, char *err, size_t errcap);
void tokens_free(tokens_t *t);

/* The entry whose hash is the token's, or NULL. Every entry is compared
 * in constant time. */
const tokens_entry_t *tokens_find(const tokens_t *t, const char *token, size_t len);

void tokens_hash(const char *token, size_t len, uint8_t hash[TOKENS_HASH_LEN]);
/* A fresh random token, NUL-terminated. */
void tokens_generate(char out[TOKENS_TOKEN_LEN + 1]);
/* The line tokens_parse reads for this entry ("NAME ROLE HASH\n"). Returns
 * false when the name is invalid. */
bool tokens_format_line(const char *name, tokens_role_t role, const uint8_t hash[TOKENS_HASH_LEN], char *out,
                        size_t cap);

bool tokens_name_valid(const char *name, size_t len);
const char *tokens_role_name(tokens_role_t r);
bool tokens_role_parse(const char *s, size_t len, tokens_role_t *out);

#endif
