/* warm_cron: when a warming job runs. A schedule is parsed once from its
 * text and then asked for the next firing time after a given moment; the
 * caller keeps the clock and the timers, so this module does no I/O and
 * never reads a clock (tests run it in virtual time).
 *
 * A schedule is one of:
 *   - a 5-field cron expression, "minute hour day-of-month month
 *     day-of-week", evaluated in UTC with Vixie cron's semantics:
 *       minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
 *       day-of-week 0-7 (0 and 7 are Sunday) or SUN-SAT; names are three
 *       letters, any case. Each field is a comma list of items, an item
 *       being `*`, `n` or `a-b`, optionally followed by `/step`: every
 *       step-th value of the range, where `a/step` runs from a up to the
 *       field's maximum (for day-of-week that maximum is 7, as in Vixie
 *       cron, so "1/2" is Mon, Wed, Fri and Sun).
 *       Day-of-month and day-of-week: when both are restricted a day
 *       matches if EITHER does ("0 0 13 * 5": the 13th, and Fridays); when
 *       one is unrestricted only the other counts. As in Vixie cron (and
 *       cronie), a field is unrestricted when it starts with `*`, stepped
 *       or not: with `*` stepped by 2 as day-of-month and 1 as day-of-week,
 *       a day must be odd AND a Monday.
 *     A job fires at second 0 of each matching minute.
 *   - "@every DURATION": a fixed period of whole units ms, s, m, h, d,
 *     combined without spaces ("30s", "1h30m", "1d12h"), 1s to 365d.
 *   - a macro: @hourly "0 * * * *", @daily and @midnight "0 0 * * *",
 *     @weekly "0 0 * * 0", @monthly "0 0 1 * *", @yearly and @annually
 *     "0 0 1 1 *".
 * Keywords, macros and names are case-insensitive; fields are separated by
 * spaces or tabs. The text is at most WARM_CRON_TEXT_MAX bytes once leading
 * and trailing white space is trimmed.
 *
 * Ownership: none; a warm_cron_t is a plain value without pointers, free
 * to copy or drop. Threads: any; every function is pure
 * (reads only its arguments, keeps no state).
 */
#ifndef DCACHE_WARM_CRON_H
#define DCACHE_WARM_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WARM_CRON_TEXT_MAX 128               /* bytes of the trimmed text, NUL not included */
#define WARM_CRON_EVERY_MIN_MS 1000LL        /* @every: the shortest period */
#define WARM_CRON_EVERY_MAX_MS 31536000000LL /* @every: the longest period, 365 days */
#define WARM_CRON_HORIZON_DAYS 1830          /* warm_cron_next looks this far ahead: 5 years */

typedef enum { WARM_CRON_FIELDS = 0, WARM_CRON_EVERY = 1 } warm_cron_kind_t;

typedef struct warm_cron {
    warm_cron_kind_t kind;
    /* WARM_CRON_FIELDS: bit i set when value i matches. */
    uint64_t minutes;  /* bits 0-59 */
    uint32_t hours;    /* bits 0-23 */
    uint32_t mdays;    /* bits 1-31 */
    uint16_t months;   /* bits 1-12 */
    uint8_t wdays;     /* bits 0-6, Sunday 0 (a 7 in the text sets bit 0) */
    bool mday_star, wday_star; /* the field starts with `*` (the either-matches rule) */
    /* WARM_CRON_EVERY */
    int64_t period_ms;
    char text[WARM_CRON_TEXT_MAX + 1]; /* the spec as given, trimmed */
} warm_cron_t;

/* Parses spec into *out. On an error returns false, leaves *out undefined
 * and writes what is wrong to err (when errlen > 0), naming the field:
 * "minute field: 61 is out of 0-59", "expected 5 fields, got 4". */
bool warm_cron_parse(warm_cron_t *out, const char *spec, char *err, size_t errlen);

/* The first firing time strictly after after_ms (Unix ms, UTC), or -1 when
 * there is none within WARM_CRON_HORIZON_DAYS days ("0 0 30 2 *" never
 * fires; "0 0 29 2 *" may wait more than 5 years around 2100).
 * @every: the smallest anchor_ms + k * period > after_ms for any integer k,
 * so firings stay on the grid of the anchor (say, when the job was
 * created) however late the caller asks; the result is at most one period
 * after after_ms, even before the anchor. Cron schedules ignore anchor_ms.
 * Times beyond about +-2^60 ms give -1 rather than overflow. */
int64_t warm_cron_next(const warm_cron_t *c, int64_t after_ms, int64_t anchor_ms);

/* The schedule's text as it was parsed, trimmed; lives as long as *c. */
const char *warm_cron_text(const warm_cron_t *c);

#endif
