#include "cluster/mpk.h"

#include <stdlib.h>
#include <string.h>

mpk_status_t mpk_byte(mpk_reader_t *r, uint8_t *b)
{
    if (mpk_left(r) < 1) return MPK_TRUNCATED;
    *b = r->p[r->pos++];
    return MPK_OK;
}

mpk_status_t mpk_be(mpk_reader_t *r, size_t n, uint64_t *v)
{
    if (n > mpk_left(r)) return MPK_TRUNCATED;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x = (x << 8) | r->p[r->pos + i];
    r->pos += n;
    *v = x;
    return MPK_OK;
}

mpk_status_t mpk_array(mpk_reader_t *r, size_t *n)
{
    mpk_status_t rc;
    uint8_t b;
    uint64_t v;
    if ((rc = mpk_byte(r, &b)) != MPK_OK) return rc;
    if ((b & 0xf0) == 0x90) {
        v = b & 0x0f;
    } else if (b == 0xdc || b == 0xdd) {
        if ((rc = mpk_be(r, b == 0xdc ? 2 : 4, &v)) != MPK_OK) return rc;
    } else {
        return MPK_MALFORMED;
    }
    if (v > mpk_left(r)) return MPK_TRUNCATED;
    *n = (size_t)v;
    return MPK_OK;
}

mpk_status_t mpk_int(mpk_reader_t *r, bool *neg, uint64_t *v)
{
    mpk_status_t rc;
    uint8_t b;
    uint64_t x;
    if ((rc = mpk_byte(r, &b)) != MPK_OK) return rc;
    *neg = false;
    if (b <= 0x7f) {
        x = b;
    } else if (b >= 0xe0) {
        *neg = true;
        x = (uint64_t)(int64_t)(int8_t)b;
    } else if (b >= 0xcc && b <= 0xcf) {
        if ((rc = mpk_be(r, (size_t)1 << (b - 0xcc), &x)) != MPK_OK) return rc;
    } else if (b >= 0xd0 && b <= 0xd3) {
        size_t n = (size_t)1 << (b - 0xd0);
        if ((rc = mpk_be(r, n, &x)) != MPK_OK) return rc;
        if (x >> (n * 8 - 1)) { /* negative: sign-extend */
            *neg = true;
            if (n < 8) x |= ~(uint64_t)0 << (n * 8);
        }
    } else {
        return MPK_MALFORMED;
    }
    *v = x;
    return MPK_OK;
}

mpk_status_t mpk_uint(mpk_reader_t *r, uint64_t max, uint64_t *v)
{
    mpk_status_t rc;
    bool neg;
    uint64_t x;
    if ((rc = mpk_int(r, &neg, &x)) != MPK_OK) return rc;
    if (neg || x > max) return MPK_MALFORMED;
    *v = x;
    return MPK_OK;
}

mpk_status_t mpk_bool(mpk_reader_t *r, bool *v)
{
    mpk_status_t rc;
    uint8_t b;
    if ((rc = mpk_byte(r, &b)) != MPK_OK) return rc;
    if (b != 0xc2 && b != 0xc3) return MPK_MALFORMED;
    *v = b == 0xc3;
    return MPK_OK;
}

mpk_status_t mpk_body(mpk_reader_t *r, uint64_t n, const uint8_t **p, size_t *len)
{
    if (n > mpk_left(r)) return MPK_TRUNCATED;
    *p = r->p + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return MPK_OK;
}

mpk_status_t mpk_bin(mpk_reader_t *r, const uint8_t **p, size_t *len)
{
    mpk_status_t rc;
    uint8_t b;
    uint64_t n;
    if ((rc = mpk_byte(r, &b)) != MPK_OK) return rc;
    if (b < 0xc4 || b > 0xc6) return MPK_MALFORMED;
    if ((rc = mpk_be(r, (size_t)1 << (b - 0xc4), &n)) != MPK_OK) return rc;
    return mpk_body(r, n, p, len);
}

mpk_status_t mpk_str(mpk_reader_t *r, const uint8_t **p, size_t *len)
{
    mpk_status_t rc;
    uint8_t b;
    uint64_t n;
    if ((rc = mpk_byte(r, &b)) != MPK_OK) return rc;
    if ((b & 0xe0) == 0xa0) {
        n = b & 0x1f;
    } else if (b >= 0xd9 && b <= 0xdb) {
        if ((rc = mpk_be(r, (size_t)1 << (b - 0xd9), &n)) != MPK_OK) return rc;
    } else {
        return MPK_MALFORMED;
    }
    return mpk_body(r, n, p, len);
}

mpk_status_t mpk_skip(mpk_reader_t *r, size_t pending)
{
    mpk_status_t rc;
    /* A counter of values still to skip instead of recursion: nesting
     * cannot exhaust the stack, and the counter stays bounded because every
     * count is checked against the bytes left. */
    while (pending > 0) {
        pending--;
        uint8_t b;
        uint64_t n = 0;
        if ((rc = mpk_byte(r, &b)) != MPK_OK) return rc;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) continue;
        if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd || b == 0xde || b == 0xdf) {
            if (b <= 0x9f) n = b & 0x0f;
            else if ((rc = mpk_be(r, (b == 0xdc || b == 0xde) ? 2 : 4, &n)) != MPK_OK) return rc;
            if (b <= 0x8f || b >= 0xde) n *= 2; /* maps hold key and value */
            if (n > mpk_left(r)) return MPK_TRUNCATED;
            pending += (size_t)n;
            continue;
        }
        if ((b & 0xe0) == 0xa0) {
            n = b & 0x1f;
        } else if (b >= 0xc4 && b <= 0xc6) {
            if ((rc = mpk_be(r, (size_t)1 << (b - 0xc4), &n)) != MPK_OK) return rc;
        } else if (b >= 0xc7 && b <= 0xc9) {
            if ((rc = mpk_be(r, (size_t)1 << (b - 0xc7), &n)) != MPK_OK) return rc;
            n += 1; /* the ext type byte */
        } else if (b == 0xca || b == 0xcb) {
            n = b == 0xca ? 4 : 8;
        } else if (b >= 0xcc && b <= 0xd3) {
            n = (uint64_t)1 << ((b - 0xcc) & 3);
        } else if (b >= 0xd4 && b <= 0xd8) {
            n = ((uint64_t)1 << (b - 0xd4)) + 1;
        } else if (b >= 0xd9 && b <= 0xdb) {
            if ((rc = mpk_be(r, (size_t)1 << (b - 0xd9), &n)) != MPK_OK) return rc;
        } else {
            return MPK_MALFORMED; /* 0xc1, never used */
        }
        if (n > mpk_left(r)) return MPK_TRUNCATED;
        r->pos += (size_t)n;
    }
    return MPK_OK;
}

bool mpk_sink_reserve(mpk_sink_t *s, size_t n)
{
    if (n <= s->cap - s->len) return true;
    if (!s->grow || n > SIZE_MAX / 2 - s->len) return false;
    size_t cap = s->cap ? s->cap : 256;
    while (cap - s->len < n) cap *= 2;
    uint8_t *p = realloc(s->buf, cap);
    if (!p) return false;
    s->buf = p;
    s->cap = cap;
    return true;
}

int mpk_sink_write(void *data, const char *bytes, size_t n)
{
    mpk_sink_t *s = data;
    if (s->failed) return -1;
    if (s->buf == NULL && !s->grow) {
        s->len += n;
        return 0;
    }
    if (!mpk_sink_reserve(s, n)) {
        s->failed = true;
        return -1;
    }
    if (n) memcpy(s->buf + s->len, bytes, n); /* bytes may be NULL when n == 0 */
    s->len += n;
    return 0;
}
