/* dcache-admin: text helpers. See admin_fmt.h. */
#include "autoconfig.h"

#include "tools/admin_fmt.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void admin_fmt_error(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("dcache-admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void oom(void)
{
    fputs("dcache-admin: out of memory\n", stderr);
    abort();
}

void *admin_fmt_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *admin_fmt_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *admin_fmt_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

char *admin_fmt_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;
    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    return s;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool admin_fmt_utf8_valid(const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *admin_fmt_base64_encode(const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    char *out = admin_fmt_xmalloc((len + 2) / 3 * 4 + 1);
    char *o = out;
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p;
    if (c == '\0')
        return -1;
    p = strchr(b64, c);
    return p ? (int)(p - b64) : -1;
}

unsigned char *admin_fmt_base64_decode(const char *text, size_t *out_len)
{
    size_t len = strlen(text);
    unsigned char *out;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t pad = 0;

    if (len % 4 != 0)
        return NULL;
    out = admin_fmt_xmalloc(len / 4 * 3 + 1);
    for (size_t i = 0; i < len; i++) {
        int v;
        if (text[i] == '=') {
            if (i < len - 2)
                goto bad;
            pad++;
            continue;
        }
        if (pad)
            goto bad;
        v = b64_value(text[i]);
        if (v < 0)
            goto bad;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
bad:
    free(out);
    return NULL;
}

char *admin_fmt_display(const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    char *out = admin_fmt_xmalloc(len * 4 + 1);
    char *o = out;
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            o += sprintf(o, "\\x%02x", p[i]);
            i++;
            continue;
        }
        memcpy(o, p + i, n);
        o += n;
        i += n;
    }
    *o = '\0';
    return out;
}

size_t admin_fmt_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

void admin_fmt_pad(const char *s, size_t width)
{
    size_t w = admin_fmt_width(s);
    fputs(s, stdout);
    for (; w < width; w++)
        putchar(' ');
}

char *admin_fmt_bytes(double n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;
    if (n < 1024)
        return admin_fmt_xasprintf("%.0f B", n);
    while (n >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        n /= 1024;
        u++;
    }
    return admin_fmt_xasprintf(n < 10 ? "%.2f %s" : n < 100 ? "%.1f %s" : "%.0f %s", n,
                               units[u]);
}

char *admin_fmt_duration(double seconds)
{
    long long s, d, h, m;
    if (!(seconds >= 0))
        return admin_fmt_xstrdup("-");
    s = (long long)seconds;
    d = s / 86400;
    h = s / 3600 % 24;
    m = s / 60 % 60;
    s %= 60;
    if (d)
        return admin_fmt_xasprintf("%lldd %lldh %lldm %llds", d, h, m, s);
    if (h)
        return admin_fmt_xasprintf("%lldh %lldm %llds", h, m, s);
    if (m)
        return admin_fmt_xasprintf("%lldm %llds", m, s);
    return admin_fmt_xasprintf("%llds", s);
}

char *admin_fmt_time_ms(long long ms)
{
    /* Floor division: a time before 1970 still rounds down. */
    time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0));
    struct tm tm;
    char buf[64];
    if (!gmtime_r(&t, &tm) || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return admin_fmt_xasprintf("%lld ms", ms);
    return admin_fmt_xstrdup(buf);
}

bool admin_fmt_json_number(const json_t *obj, const char *field, double *out)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, field) : NULL;
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

bool admin_fmt_json_int(const json_t *obj, const char *field, long long *out)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, field) : NULL;
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return true;
    }
    if (json_is_real(v) && isfinite(json_real_value(v))) {
        *out = llround(json_real_value(v));
        return true;
    }
    return false;
}

char *admin_fmt_json_text(const json_t *obj, const char *field)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, field) : NULL;
    if (json_is_string(v))
        return admin_fmt_display(json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return admin_fmt_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_real(v))
        return admin_fmt_xasprintf("%g", json_real_value(v));
    if (json_is_true(v))
        return admin_fmt_xstrdup("true");
    if (json_is_false(v))
        return admin_fmt_xstrdup("false");
    return NULL;
}

char *admin_fmt_json_key(const json_t *item)
{
    json_t *v;
    if (json_is_string(item))
        return admin_fmt_display(json_string_value(item), json_string_length(item));
    if (!json_is_object(item))
        return NULL;
    v = json_object_get(item, "key");
    if (json_is_string(v))
        return admin_fmt_display(json_string_value(v), json_string_length(v));
    v = json_object_get(item, "key_base64");
    if (json_is_string(v)) {
        size_t n;
        unsigned char *raw = admin_fmt_base64_decode(json_string_value(v), &n);
        char *out;
        if (!raw)
            return admin_fmt_display(json_string_value(v), json_string_length(v));
        out = admin_fmt_display(raw, n);
        free(raw);
        return out;
    }
    return NULL;
}

void admin_fmt_json_print(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    if (!s)
        oom();
    puts(s);
    free(s);
}
