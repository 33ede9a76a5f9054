/* mpk: the msgpack pieces both wire codecs (swim_proto, peer_proto) share:
 * a bounded reader and a packer sink. Pure; no allocation in the reader.
 *
 * The reader exists because msgpack-c's unpacker allocates arrays from their
 * headers before seeing the elements, so five bytes could ask for gigabytes.
 * Here every length is checked against the bytes left before it is used, and
 * skipping is iterative, so neither size nor nesting can hurt us.
 *
 * Status values are 0, -1, -2 on purpose: the codecs' own status enums start
 * with the same three values, so a reader status converts by a cast.
 */
#ifndef DCACHE_MPK_H
#define DCACHE_MPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { MPK_OK = 0, MPK_TRUNCATED = -1, MPK_MALFORMED = -2 } mpk_status_t;

typedef struct mpk_reader {
    const uint8_t *p;
    size_t len, pos;
} mpk_reader_t;

static inline size_t mpk_left(const mpk_reader_t *r)
{
    return r->len - r->pos;
}

mpk_status_t mpk_byte(mpk_reader_t *r, uint8_t *b);
/* Big-endian unsigned of n (1, 2, 4 or 8) bytes. */
mpk_status_t mpk_be(mpk_reader_t *r, size_t n, uint64_t *v);
/* An array header; a count larger than the bytes left is refused (every
 * element takes at least one byte). */
mpk_status_t mpk_array(mpk_reader_t *r, size_t *n);
/* Any integer encoding, as sign and two's-complement value. */
mpk_status_t mpk_int(mpk_reader_t *r, bool *neg, uint64_t *v);
/* A non-negative integer of any width, at most max. */
mpk_status_t mpk_uint(mpk_reader_t *r, uint64_t max, uint64_t *v);
mpk_status_t mpk_bool(mpk_reader_t *r, bool *v);
/* n raw bytes, pointed at in place. */
mpk_status_t mpk_body(mpk_reader_t *r, uint64_t n, const uint8_t **p, size_t *len);
mpk_status_t mpk_bin(mpk_reader_t *r, const uint8_t **p, size_t *len);
mpk_status_t mpk_str(mpk_reader_t *r, const uint8_t **p, size_t *len);
/* Skips `pending` whole values of any type. */
mpk_status_t mpk_skip(mpk_reader_t *r, size_t pending);

/* Where a msgpack_packer's bytes go: a caller's buffer (fails when full), a
 * growing malloc'd buffer (grow), or nowhere (buf NULL, not grow: only
 * counts, which is how the codecs measure an encoding exactly). */
typedef struct mpk_sink {
    uint8_t *buf;
    size_t cap, len;
    bool grow;
    bool failed;
} mpk_sink_t;

bool mpk_sink_reserve(mpk_sink_t *s, size_t n);
/* msgpack_packer_write callback; data is an mpk_sink_t. */
int mpk_sink_write(void *data, const char *bytes, size_t n);

#endif
