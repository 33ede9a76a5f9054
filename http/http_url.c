#include "http/http_url.h"

#include <string.h>

static int http_hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long http_url_decode(const char *src, size_t len, char *dst, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len) return -1;
            int hi = http_hexval(src[i + 1]), lo = http_hexval(src[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            dst[o++] = ' ';
        } else {
            dst[o++] = c;
        }
    }
    return (long)o;
}

bool http_query_find(const char *query, size_t query_len, const char *name, const char **value, size_t *value_len)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < query_len) {
        const char *amp = memchr(query + i, '&', query_len - i);
        size_t end = amp ? (size_t)(amp - query) : query_len;
        const char *part = query + i;
        size_t plen = end - i;
        const char *eq = memchr(part, '=', plen);
        size_t klen = eq ? (size_t)(eq - part) : plen;
        if (klen == nl && memcmp(part, name, nl) == 0) {
            *value = eq ? eq + 1 : part + plen;
            *value_len = eq ? plen - klen - 1 : 0;
            return true;
        }
        i = end + 1;
    }
    return false;
}

long http_query_get(const char *query, size_t query_len, const char *name, char *buf, size_t cap)
{
    const char *v;
    size_t vl;
    if (!http_query_find(query, query_len, name, &v, &vl)) return -1;
    if (vl >= cap) return -2;
    long n = http_url_decode(v, vl, buf, true);
    if (n < 0) return -2;
    buf[n] = '\0';
    return n;
}
