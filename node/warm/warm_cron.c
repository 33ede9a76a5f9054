#include "node/warm/warm_cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define WARM_CRON_MS_PER_MIN 60000LL
#define WARM_CRON_MIN_PER_DAY 1440LL
/* Far beyond any real schedule, near enough to zero that the arithmetic of
 * warm_cron_next (a difference, a horizon added) cannot overflow int64. */
#define WARM_CRON_TIME_LIMIT (1LL << 60)

static void warm_cron_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void warm_cron_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- calendar: Howard Hinnant's days_from_civil / civil_from_days ---- */

static int64_t warm_cron_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of y-m-d in the proleptic Gregorian calendar. */
static int64_t warm_cron_floormod(int64_t a, int64_t b)
{
    return a - b * warm_cron_floordiv(a, b);
}

static int64_t warm_cron_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = warm_cron_floordiv(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);                         /* [0, 399] */
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

static void warm_cron_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = warm_cron_floordiv(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* ---- parsing ---- */

typedef struct warm_cron_field {
    const char *name;
    int min, max;
    const char *const *names; /* indexed by value; NULL: numbers only */
    int nnames;
} warm_cron_field_t;

static const char *const warm_cron_month_names[] = {
    NULL, "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
};
static const char *const warm_cron_wday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const warm_cron_field_t warm_cron_fields[5] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, warm_cron_month_names, 13},
    {"day-of-week", 0, 7, warm_cron_wday_names, 7},
};

static const struct {
    const char *name, *fields;
} warm_cron_macros[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

static bool warm_cron_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Names a byte for a message: printable as itself, others by value, so a
 * control character does not garble the message. */
static void warm_cron_byte_text(char ch, char *buf, size_t len)
{
    if (isprint((unsigned char)ch)) snprintf(buf, len, "'%c'", ch);
    else snprintf(buf, len, "byte 0x%02x", (unsigned char)ch);
}

/* One value (a number or, where the field has them, a name) at s[*pos]. */
static bool warm_cron_value(const warm_cron_field_t *f, const char *s, size_t len, size_t *pos, int *out,
                            char *err, size_t errlen)
{
    size_t start = *pos, i = start;
    if (i < len && isdigit((unsigned char)s[i])) {
        long v = 0;
        /* Saturate: the value only has to be seen as out of range. */
        for (; i < len && isdigit((unsigned char)s[i]); i++)
            if (v < 1000000) v = v * 10 + (s[i] - '0');
        if (v < f->min || v > f->max) {
            warm_cron_err(err, errlen, "%s field: %.*s is out of %d-%d", f->name, (int)(i - start), s + start,
                          f->min, f->max);
            return false;
        }
        *out = (int)v;
        *pos = i;
        return true;
    }
    if (i < len && isalpha((unsigned char)s[i])) {
        for (; i < len && isalpha((unsigned char)s[i]); i++) {}
        if (!f->names) {
            warm_cron_err(err, errlen, "%s field: '%.*s' is not a number", f->name, (int)(i - start), s + start);
            return false;
        }
        if (i - start == 3) {
            for (int v = 0; v < f->nnames; v++)
                if (f->names[v] && strncasecmp(s + start, f->names[v], 3) == 0) {
                    *out = v;
                    *pos = i;
                    return true;
                }
        }
        warm_cron_err(err, errlen, "%s field: unknown name '%.*s'", f->name, (int)(i - start), s + start);
        return false;
    }
    if (i >= len) {
        warm_cron_err(err, errlen, "%s field: a value is missing at the end of '%.*s'", f->name, (int)len, s);
    } else {
        char b[16];
        warm_cron_byte_text(s[i], b, sizeof b);
        warm_cron_err(err, errlen, "%s field: unexpected %s in '%.*s'", f->name, b, (int)len, s);
    }
    return false;
}

/* One item of a list: `*`, `n` or `a-b`, then maybe `/step`. */
static bool warm_cron_item(const warm_cron_field_t *f, const char *s, size_t len, uint64_t *mask, char *err,
                           size_t errlen)
{
    size_t pos = 0;
    int lo, hi;
    bool single = false;
    if (s[0] == '*') {
        lo = f->min;
        hi = f->max;
        pos = 1;
    } else {
        if (!warm_cron_value(f, s, len, &pos, &lo, err, errlen)) return false;
        hi = lo;
        single = true;
        if (pos < len && s[pos] == '-') {
            pos++;
            if (!warm_cron_value(f, s, len, &pos, &hi, err, errlen)) return false;
            single = false;
            if (lo > hi) {
                size_t end = pos;
                warm_cron_err(err, errlen, "%s field: range %.*s is reversed (%d > %d)", f->name, (int)end, s, lo,
                              hi);
                return false;
            }
        }
    }
    int step = 1;
    if (pos < len && s[pos] == '/') {
        size_t start = ++pos;
        long v = 0;
        for (; pos < len && isdigit((unsigned char)s[pos]); pos++)
            if (v < 1000000) v = v * 10 + (s[pos] - '0');
        if (pos == start) {
            warm_cron_err(err, errlen, "%s field: a number must follow '/' in '%.*s'", f->name, (int)len, s);
            return false;
        }
        /* A step wider than the field can only be a typo. */
        int span = f->max - f->min + 1;
        if (v < 1 || v > span) {
            warm_cron_err(err, errlen, "%s field: step %.*s is out of 1-%d", f->name, (int)(pos - start), s + start,
                          span);
            return false;
        }
        step = (int)v;
        if (single) hi = f->max; /* `a/step`: from a to the end of the field */
    }
    if (pos < len) {
        char b[16];
        warm_cron_byte_text(s[pos], b, sizeof b);
        warm_cron_err(err, errlen, "%s field: unexpected %s in '%.*s'", f->name, b, (int)len, s);
        return false;
    }
    for (int v = lo; v <= hi; v += step) *mask |= 1ULL << v;
    return true;
}

/* A comma list of items. */
static bool warm_cron_field(const warm_cron_field_t *f, const char *s, size_t len, uint64_t *mask, char *err,
                            size_t errlen)
{
    *mask = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',') continue;
        if (i == start) {
            warm_cron_err(err, errlen, "%s field: empty list item in '%.*s'", f->name, (int)len, s);
            return false;
        }
        if (!warm_cron_item(f, s + start, i - start, mask, err, errlen)) return false;
        start = i + 1;
    }
    return true;
}

/* The five fields of s (trimmed, NUL-terminated). */
static bool warm_cron_parse_fields(warm_cron_t *out, const char *s, char *err, size_t errlen)
{
    const char *tok[5];
    size_t toklen[5];
    int n = 0;
    for (const char *p = s; *p;) {
        while (warm_cron_blank(*p)) p++;
        if (!*p) break;
        const char *start = p;
        while (*p && !warm_cron_blank(*p)) p++;
        if (n < 5) {
            tok[n] = start;
            toklen[n] = (size_t)(p - start);
        }
        n++;
    }
    if (n != 5) {
        warm_cron_err(err, errlen, "expected 5 fields (minute hour day-of-month month day-of-week), got %d", n);
        return false;
    }
    uint64_t mask[5];
    for (int i = 0; i < 5; i++)
        if (!warm_cron_field(&warm_cron_fields[i], tok[i], toklen[i], &mask[i], err, errlen)) return false;
    out->kind = WARM_CRON_FIELDS;
    out->minutes = mask[0];
    out->hours = (uint32_t)mask[1];
    out->mdays = (uint32_t)mask[2];
    out->months = (uint16_t)mask[3];
    /* 7 is Sunday too. */
    out->wdays = (uint8_t)((mask[4] | (mask[4] >> 7)) & 0x7f);
    out->mday_star = tok[2][0] == '*';
    out->wday_star = tok[4][0] == '*';
    return true;
}

/* "@every DURATION"; d is what follows "@every", blanks included. */
static bool warm_cron_parse_every(warm_cron_t *out, const char *d, char *err, size_t errlen)
{
    if (*d && !warm_cron_blank(*d)) {
        warm_cron_err(err, errlen, "unknown macro '%s'", out->text);
        return false;
    }
    while (warm_cron_blank(*d)) d++;
    if (!*d) {
        warm_cron_err(err, errlen, "@every: the duration is missing (e.g. @every 30s, @every 1h30m)");
        return false;
    }
    int64_t total = 0;
    for (const char *p = d; *p;) {
        const char *num = p;
        int64_t v = 0;
        for (; isdigit((unsigned char)*p); p++)
            if (v <= WARM_CRON_EVERY_MAX_MS) v = v * 10 + (*p - '0'); /* saturates past the maximum */
        if (p == num) {
            char b[16];
            warm_cron_byte_text(*p, b, sizeof b);
            warm_cron_err(err, errlen, "@every: expected a number at %s in '%s'", b, d);
            return false;
        }
        const char *unit = p;
        for (; isalpha((unsigned char)*p); p++) {}
        size_t ulen = (size_t)(p - unit);
        int64_t scale = 0;
        if (ulen == 2 && strncasecmp(unit, "ms", 2) == 0) scale = 1;
        else if (ulen == 1 && (*unit == 's' || *unit == 'S')) scale = 1000;
        else if (ulen == 1 && (*unit == 'm' || *unit == 'M')) scale = 60000;
        else if (ulen == 1 && (*unit == 'h' || *unit == 'H')) scale = 3600000;
        else if (ulen == 1 && (*unit == 'd' || *unit == 'D')) scale = 86400000;
        if (ulen == 0 && *p) {
            char bt[16];
            warm_cron_byte_text(*p, bt, sizeof bt);
            warm_cron_err(err, errlen, "@every: unexpected %s in '%s' (whole units only, e.g. 1h30m)", bt, d);
            return false;
        }
        if (ulen == 0) {
            warm_cron_err(err, errlen, "@every: %.*s needs a unit (ms, s, m, h or d) in '%s'", (int)(p - num), num, d);
            return false;
        }
        if (!scale) {
            warm_cron_err(err, errlen, "@every: unknown unit '%.*s' in '%s' (use ms, s, m, h or d)", (int)ulen, unit,
                          d);
            return false;
        }
        /* v and total stay below ~2^35 ms by the checks, so this cannot overflow. */
        if (v > WARM_CRON_EVERY_MAX_MS || (total += v * scale) > WARM_CRON_EVERY_MAX_MS) {
            warm_cron_err(err, errlen, "@every: %s is above the longest period, 365d", d);
            return false;
        }
    }
    if (total < WARM_CRON_EVERY_MIN_MS) {
        warm_cron_err(err, errlen, "@every: %s is below the shortest period, 1s", d);
        return false;
    }
    out->kind = WARM_CRON_EVERY;
    out->period_ms = total;
    return true;
}

bool warm_cron_parse(warm_cron_t *out, const char *spec, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = '\0';
    if (!spec) {
        warm_cron_err(err, errlen, "no schedule");
        return false;
    }
    const char *b = spec, *e = spec + strlen(spec);
    while (b < e && isspace((unsigned char)*b)) b++;
    while (e > b && isspace((unsigned char)e[-1])) e--;
    size_t len = (size_t)(e - b);
    if (len == 0) {
        warm_cron_err(err, errlen, "empty schedule");
        return false;
    }
    if (len > WARM_CRON_TEXT_MAX) {
        warm_cron_err(err, errlen, "the schedule is %zu bytes, longer than %d", len, WARM_CRON_TEXT_MAX);
        return false;
    }
    memcpy(out->text, b, len);
    out->text[len] = '\0';
    const char *s = out->text;
    if (s[0] != '@') return warm_cron_parse_fields(out, s, err, errlen);
    if (strncasecmp(s, "@every", 6) == 0) return warm_cron_parse_every(out, s + 6, err, errlen);
    size_t wlen = strcspn(s, " \t");
    for (size_t i = 0; i < sizeof warm_cron_macros / sizeof warm_cron_macros[0]; i++) {
        if (strlen(warm_cron_macros[i].name) != wlen || strncasecmp(s, warm_cron_macros[i].name, wlen) != 0) continue;
        if (s[wlen]) {
            warm_cron_err(err, errlen, "%s takes nothing after it, got '%s'", warm_cron_macros[i].name,
                          s + wlen + strspn(s + wlen, " \t"));
            return false;
        }
        /* The expansion is known good; only the text stays the macro. */
        return warm_cron_parse_fields(out, warm_cron_macros[i].fields, err, errlen);
    }
    warm_cron_err(err, errlen,
                  "unknown macro '%.*s' (known: @every, @hourly, @daily, @midnight, @weekly, @monthly, @yearly, "
                  "@annually)",
                  (int)wlen, s);
    return false;
}

/* ---- the next firing ---- */

static bool warm_cron_day_matches(const warm_cron_t *c, unsigned mday, unsigned wday)
{
    bool md = (c->mdays >> mday) & 1, wd = (c->wdays >> wday) & 1;
    /* Vixie cron: either day field may select the day when both restrict. */
    return (c->mday_star || c->wday_star) ? (md && wd) : (md || wd);
}

static int64_t warm_cron_next_fields(const warm_cron_t *c, int64_t after_ms)
{
    int64_t minute = warm_cron_floordiv(after_ms, WARM_CRON_MS_PER_MIN) + 1; /* strictly after */
    int64_t day = warm_cron_floordiv(minute, WARM_CRON_MIN_PER_DAY);
    int64_t end = day + WARM_CRON_HORIZON_DAYS;
    unsigned mod = (unsigned)(minute - day * WARM_CRON_MIN_PER_DAY);
    unsigned h0 = mod / 60, m0 = mod % 60; /* only on the first day; 0 on the others */
    /* At most one pass per day or skipped month over the horizon, each a
     * few dozen operations, whatever the schedule. */
    while (day <= end) {
        int64_t y;
        unsigned m, d;
        warm_cron_civil_from_days(day, &y, &m, &d);
        if (!((c->months >> m) & 1)) {
            day = m == 12 ? warm_cron_days_from_civil(y + 1, 1, 1) : warm_cron_days_from_civil(y, m + 1, 1);
            h0 = m0 = 0;
            continue;
        }
        unsigned wday = (unsigned)warm_cron_floormod(day + 4, 7); /* 1970-01-01 was a Thursday */
        if (warm_cron_day_matches(c, d, wday)) {
            for (unsigned h = h0; h < 24; h++) {
                if (!((c->hours >> h) & 1)) continue;
                uint64_t mins = c->minutes & (~0ULL << (h == h0 ? m0 : 0));
                if (mins) {
                    int64_t t = day * WARM_CRON_MIN_PER_DAY + h * 60 + (int64_t)__builtin_ctzll(mins);
                    return t * WARM_CRON_MS_PER_MIN;
                }
            }
        }
        day++;
        h0 = m0 = 0;
    }
    return -1;
}

int64_t warm_cron_next(const warm_cron_t *c, int64_t after_ms, int64_t anchor_ms)
{
    if (after_ms > WARM_CRON_TIME_LIMIT || after_ms < -WARM_CRON_TIME_LIMIT) return -1;
    if (c->kind == WARM_CRON_FIELDS) return warm_cron_next_fields(c, after_ms);
    if (anchor_ms > WARM_CRON_TIME_LIMIT || anchor_ms < -WARM_CRON_TIME_LIMIT || c->period_ms <= 0) return -1;
    int64_t k = warm_cron_floordiv(after_ms - anchor_ms, c->period_ms) + 1;
    return anchor_ms + k * c->period_ms;
}

const char *warm_cron_text(const warm_cron_t *c)
{
    return c->text;
}
