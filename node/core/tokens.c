#include "node/core/tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const tokens_role_names[] = {"none", "reader", "writer", "admin"};

const char *tokens_role_name(tokens_role_t r)
{
    return r <= TOKENS_ROLE_ADMIN ? tokens_role_names[r] : "none";
}

bool tokens_role_parse(const char *s, size_t len, tokens_role_t *out)
{
    for (int r = TOKENS_ROLE_READER; r <= TOKENS_ROLE_ADMIN; r++) {
        if (strlen(tokens_role_names[r]) == len && memcmp(s, tokens_role_names[r], len) == 0) {
            *out = (tokens_role_t)r;
            return true;
        }
    }
    return false;
}

bool tokens_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > TOKENS_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || c == '.';
        if (!ok) return false;
    }
    return true;
}

void tokens_hash(const char *token, size_t len, uint8_t hash[TOKENS_HASH_LEN])
{
    crypto_generichash(hash, TOKENS_HASH_LEN, (const unsigned char *)token, len, NULL, 0);
}

void tokens_generate(char out[TOKENS_TOKEN_LEN + 1])
{
    if (sodium_init() < 0) abort();
    uint8_t raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(out, "dct_", 4);
    sodium_bin2base64(out + 4, TOKENS_TOKEN_LEN + 1 - 4, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

bool tokens_format_line(const char *name, tokens_role_t role, const uint8_t hash[TOKENS_HASH_LEN], char *out,
                        size_t cap)
{
    if (!tokens_name_valid(name, strlen(name)) || role == TOKENS_ROLE_NONE || role > TOKENS_ROLE_ADMIN) return false;
    char hex[2 * TOKENS_HASH_LEN + 1];
    sodium_bin2hex(hex, sizeof hex, hash, TOKENS_HASH_LEN);
    int n = snprintf(out, cap, "%s %s %s\n", name, tokens_role_name(role), hex);
    return n > 0 && (size_t)n < cap;
}

/* The next whitespace-separated field of [*p, end) on this line. */
static bool tokens_field(const char **p, const char *end, const char **f, size_t *flen)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    const char *e = s;
    while (e < end && *e != ' ' && *e != '\t') e++;
    *f = s;
    *flen = (size_t)(e - s);
    *p = e;
    return e > s;
}

bool tokens_parse(const char *text, size_t len, tokens_t *out, char *err, size_t errcap)
{
    tokens_t t = {0};
    size_t cap = 0;
    const char *p = text, *end = text + len;
    unsigned lineno = 0;
    while (p < end) {
        lineno++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *q = p;
        p = eol ? eol + 1 : end;
        if (line_end > q && line_end[-1] == '\r') line_end--;
        while (q < line_end && (*q == ' ' || *q == '\t')) q++;
        if (q == line_end || *q == '#') continue;
        const char *name, *role, *hash, *extra;
        size_t nlen, rlen, hlen, xlen;
        if (!tokens_field(&q, line_end, &name, &nlen) || !tokens_field(&q, line_end, &role, &rlen) ||
            !tokens_field(&q, line_end, &hash, &hlen) || tokens_field(&q, line_end, &extra, &xlen)) {
            snprintf(err, errcap, "line %u: expected NAME ROLE HASH", lineno);
            goto fail;
        }
        if (!tokens_name_valid(name, nlen)) {
            snprintf(err, errcap, "line %u: a name is 1 to %d of A-Z a-z 0-9 _ . -", lineno, TOKENS_NAME_MAX);
            goto fail;
        }
        tokens_entry_t e = {0};
        memcpy(e.name, name, nlen);
        if (!tokens_role_parse(role, rlen, &e.role)) {
            snprintf(err, errcap, "line %u: role '%.*s' is not reader, writer or admin", lineno,
                     (int)(rlen > 32 ? 32 : rlen), role);
            goto fail;
        }
        size_t bin_len = 0;
        if (hlen != 2 * TOKENS_HASH_LEN ||
            sodium_hex2bin(e.hash, sizeof e.hash, hash, hlen, NULL, &bin_len, NULL) != 0 ||
            bin_len != TOKENS_HASH_LEN) {
            snprintf(err, errcap, "line %u: the hash must be %d hex digits (dcache-admin token add writes it)",
                     lineno, 2 * TOKENS_HASH_LEN);
            goto fail;
        }
        for (size_t i = 0; i < t.n; i++) {
            if (strcmp(t.entries[i].name, e.name) == 0) {
                snprintf(err, errcap, "line %u: the name '%s' is used twice", lineno, e.name);
                goto fail;
            }
        }
        if (t.n == TOKENS_MAX) {
            snprintf(err, errcap, "line %u: more than %d tokens", lineno, TOKENS_MAX);
            goto fail;
        }
        if (t.n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            tokens_entry_t *grown = realloc(t.entries, ncap * sizeof *grown);
            if (!grown) {
                snprintf(err, errcap, "out of memory");
                goto fail;
            }
            t.entries = grown;
            cap = ncap;
        }
        t.entries[t.n++] = e;
    }
    *out = t;
    return true;
fail:
    tokens_free(&t);
    return false;
}

bool tokens_load_file(const char *path, tokens_t *out, char *err, size_t errcap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    bool ok = false;
    char *text = NULL;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errcap, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        snprintf(err, errcap, "%s: other users may access it (mode %04o); a tokens file must be private: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    if ((uint64_t)st.st_size > TOKENS_FILE_MAX) {
        snprintf(err, errcap, "%s: larger than %u bytes", path, TOKENS_FILE_MAX);
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text) {
        snprintf(err, errcap, "out of memory");
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            snprintf(err, errcap, "%s: %s", path, n < 0 ? strerror(errno) : "shorter than its size");
            goto out;
        }
        got += (size_t)n;
    }
    char perr[200];
    ok = tokens_parse(text, got, out, perr, sizeof perr);
    if (!ok) snprintf(err, errcap, "%s: %s", path, perr);
out:
    if (text) sodium_memzero(text, (size_t)st.st_size);
    free(text);
    close(fd);
    return ok;
}

void tokens_free(tokens_t *t)
{
    free(t->entries);
    t->entries = NULL;
    t->n = 0;
}

const tokens_entry_t *tokens_find(const tokens_t *t, const char *token, size_t len)
{
    uint8_t h[TOKENS_HASH_LEN];
    tokens_hash(token, len, h);
    const tokens_entry_t *found = NULL;
    /* No early exit: how long the lookup takes says nothing of which
     * entry, if any, matched. */
    for (size_t i = 0; i < t->n; i++)
        if (sodium_memcmp(t->entries[i].hash, h, TOKENS_HASH_LEN) == 0) found = &t->entries[i];
    return found;
}
