/* sbuf: a growable byte buffer for building responses (JSON, Prometheus
 * text). The buffer owns its memory; sbuf_free() releases it, or
 * sbuf_steal() hands it to the caller. An allocation failure sets `failed`
 * and later appends do nothing, so callers check once at the end. */
#ifndef DCACHE_SBUF_H
#define DCACHE_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sbuf {
    char *data;
    size_t len, cap;
    bool failed;
} sbuf_t;

void sbuf_init(sbuf_t *b);
void sbuf_free(sbuf_t *b);
/* Returns the data (NUL-terminated) and leaves the buffer empty. */
char *sbuf_steal(sbuf_t *b, size_t *len);
void sbuf_append(sbuf_t *b, const void *data, size_t len);
void sbuf_puts(sbuf_t *b, const char *s);
void sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_uint(sbuf_t *b, uint64_t v);
/* Appends a JSON string literal (quotes included) of valid UTF-8 text. */
void sbuf_json_string(sbuf_t *b, const char *s, size_t len);
/* Appends `"name":"value"` for a binary-safe string: `"<name>":"..."` when
 * the bytes are valid UTF-8, `"<name>_base64":"..."` otherwise. */
void sbuf_json_bytes_member(sbuf_t *b, const char *name, const char *s, size_t len);

bool sbuf_utf8_valid(const char *s, size_t len);

#endif
