/* dcache-admin: text helpers (UTF-8, base64, human-readable numbers, JSON
 * field access, messages).
 *
 * Functions returning char * return a malloc'd, NUL-terminated string the
 * caller frees; they abort the process when memory runs out (this is a
 * short-lived command-line tool).
 */
#ifndef DCACHE_ADMIN_FMT_H
#define DCACHE_ADMIN_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* "dcache-admin: " + message + newline, on stderr. */
void admin_fmt_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that never returns NULL. */
void *admin_fmt_xmalloc(size_t n);
void *admin_fmt_xrealloc(void *p, size_t n);
char *admin_fmt_xstrdup(const char *s);
char *admin_fmt_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
 * NUL bytes are allowed (JSON can carry them). */
bool admin_fmt_utf8_valid(const void *bytes, size_t len);

/* Standard base64 with padding. */
char *admin_fmt_base64_encode(const void *bytes, size_t len);
/* Returns a malloc'd buffer (length in *out_len, NUL-terminated for
 * convenience) or NULL when the input is not base64. */
unsigned char *admin_fmt_base64_decode(const char *text, size_t *out_len);

/* Bytes made safe for a terminal: control characters, DEL and bytes that
 * are not valid UTF-8 become \xNN; everything else is kept as is. */
char *admin_fmt_display(const void *bytes, size_t len);
/* Columns a display string takes (UTF-8 code points). */
size_t admin_fmt_width(const char *s);
/* Print s left-aligned in a field of `width` columns. */
void admin_fmt_pad(const char *s, size_t width);

/* "1.2 MiB", "512 B". */
char *admin_fmt_bytes(double n);
/* "3d 4h 5m 6s", "42s". Negative: "-". */
char *admin_fmt_duration(double seconds);
/* Milliseconds since the epoch as an RFC 3339 UTC time to the second,
 * "2026-12-02T16:00:00Z" (rounded down). */
char *admin_fmt_time_ms(long long ms);

/* JSON field access, tolerant of integers sent as reals and vice versa.
 * Return false when the field is missing or has another type. */
bool admin_fmt_json_number(const json_t *obj, const char *field, double *out);
bool admin_fmt_json_int(const json_t *obj, const char *field, long long *out);
/* A scalar field rendered for display: a string made safe with
 * admin_fmt_display, a number in decimal (versions are strings today but
 * may be numbers elsewhere), true/false. NULL when absent or not a scalar;
 * the result is malloc'd. */
char *admin_fmt_json_text(const json_t *obj, const char *field);

/* A key as the API lists it, made safe for display: a JSON string, or an
 * object with "key" or "key_base64" (bytes that are not UTF-8). NULL when
 * the item is neither. Malloc'd. */
char *admin_fmt_json_key(const json_t *item);

/* Print a JSON value on stdout, indented, followed by a newline. */
void admin_fmt_json_print(const json_t *v);

#endif
