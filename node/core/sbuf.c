#include "node/core/sbuf.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(sbuf_t *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

void sbuf_free(sbuf_t *b)
{
    free(b->data);
    sbuf_init(b);
}

static bool sbuf_reserve(sbuf_t *b, size_t extra)
{
    if (b->failed) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra + 1) ncap *= 2;
    char *nd = realloc(b->data, ncap);
    if (!nd) {
        b->failed = true;
        return false;
    }
    b->data = nd;
    b->cap = ncap;
    return true;
}

char *sbuf_steal(sbuf_t *b, size_t *len)
{
    if (!b->data && !b->failed) sbuf_reserve(b, 0);
    char *d = b->data;
    if (d) d[b->len] = '\0';
    if (len) *len = b->len;
    sbuf_init(b);
    return d;
}

void sbuf_append(sbuf_t *b, const void *data, size_t len)
{
    if (!sbuf_reserve(b, len)) return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void sbuf_puts(sbuf_t *b, const char *s)
{
    sbuf_append(b, s, strlen(s));
}

void sbuf_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        sbuf_append(b, small, (size_t)n);
        return;
    }
    if (!sbuf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sbuf_uint(sbuf_t *b, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sbuf_append(b, tmp + sizeof tmp - n, (size_t)n);
}

bool sbuf_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
        else return false;
        if (i + n >= len) return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

void sbuf_json_string(sbuf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (!sbuf_reserve(b, len + 2)) return;
    sbuf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sbuf_append(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            sbuf_append(b, esc, 2);
        } else if (c == '\n') {
            sbuf_append(b, "\\n", 2);
        } else if (c == '\t') {
            sbuf_append(b, "\\t", 2);
        } else if (c == '\r') {
            sbuf_append(b, "\\r", 2);
        } else {
            sbuf_append(b, esc, 6);
        }
    }
    sbuf_append(b, s + run, len - run);
    sbuf_append(b, "\"", 1);
}

void sbuf_json_bytes_member(sbuf_t *b, const char *name, const char *s, size_t len)
{
    sbuf_append(b, "\"", 1);
    sbuf_puts(b, name);
    if (sbuf_utf8_valid(s, len)) {
        sbuf_append(b, "\":", 2);
        sbuf_json_string(b, s, len);
        return;
    }
    sbuf_append(b, "_base64\":\"", 10);
    size_t blen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    if (!sbuf_reserve(b, blen)) return;
    sodium_bin2base64(b->data + b->len, blen, (const unsigned char *)s, len, sodium_base64_VARIANT_ORIGINAL);
    b->len += blen - 1;
    sbuf_append(b, "\"", 1);
}
