/* Unit tests for warm_cron, in virtual time: instants are Unix ms made from
 * UTC dates by the test's own calendar helper. Named cases (steps, month
 * ends, leap days, the either-day rule, names, @every on its anchor's grid,
 * macros), every parse error with what its message must name, and a
 * property test against a minute-by-minute search that reads the calendar
 * from gmtime_r rather than from the module's arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "node/warm/warm_cron.h"

/* ---- helpers ---- */

/* Days since 1970-01-01 (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

/* Unix ms of y-mo-d h:mi in UTC. */
static int64_t ms_utc(int y, int mo, int d, int h, int mi)
{
    return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000LL;
}

static warm_cron_t parse_ok(const char *spec)
{
    warm_cron_t c;
    char err[256];
    bool ok = warm_cron_parse(&c, spec, err, sizeof err);
    if (!ok) fail_msg("'%s' refused: %s", spec, err);
    return c;
}

static int64_t next_of(const char *spec, int64_t after_ms)
{
    warm_cron_t c = parse_ok(spec);
    return warm_cron_next(&c, after_ms, 0);
}

/* Asserts that spec fires at each of want[0..n) in turn, starting after
 * from: each firing is the next after the previous one. */
static void assert_sequence(const char *spec, int64_t from, const int64_t *want, size_t n)
{
    warm_cron_t c = parse_ok(spec);
    int64_t t = from;
    for (size_t i = 0; i < n; i++) {
        int64_t got = warm_cron_next(&c, t, 0);
        if (got != want[i])
            fail_msg("'%s' firing %zu: got %lld, want %lld", spec, i, (long long)got, (long long)want[i]);
        t = got;
    }
}

/* ---- the clock helper itself ---- */

static void test_ms_helper(void **state)
{
    (void)state;
    /* From `date -u -d ... +%s`. */
    assert_true(ms_utc(2026, 12, 2, 0, 0) == 1796169600000LL);
    assert_true(ms_utc(2028, 2, 29, 0, 0) == 1835395200000LL);
    assert_true(ms_utc(2026, 1, 1, 0, 0) == 1767225600000LL);
    assert_true(ms_utc(2030, 12, 31, 23, 59) == 1924991940000LL);
    assert_true(ms_utc(2100, 3, 1, 0, 0) == 4107542400000LL);
    assert_true(ms_utc(1970, 1, 1, 0, 0) == 0);
}

/* ---- cron fields ---- */

static void test_step_minutes(void **state)
{
    (void)state;
    int64_t at1015 = ms_utc(2026, 3, 10, 10, 15);
    assert_true(next_of("*/15 * * * *", ms_utc(2026, 3, 10, 10, 7) + 30000) == at1015);
    /* Strictly after: from the firing itself, the one after it. */
    assert_true(next_of("*/15 * * * *", at1015) == ms_utc(2026, 3, 10, 10, 30));
    assert_true(next_of("*/15 * * * *", at1015 - 1) == at1015);
    assert_true(next_of("*/15 * * * *", at1015 + 1) == ms_utc(2026, 3, 10, 10, 30));
    /* Over the hour and the day. */
    assert_true(next_of("*/15 * * * *", ms_utc(2026, 3, 10, 23, 50)) == ms_utc(2026, 3, 11, 0, 0));
    assert_true(next_of("* * * * *", ms_utc(2026, 12, 31, 23, 59)) == ms_utc(2027, 1, 1, 0, 0));
}

static void test_daily(void **state)
{
    (void)state;
    assert_true(next_of("0 0 * * *", ms_utc(2026, 12, 31, 12, 0)) == ms_utc(2027, 1, 1, 0, 0));
    assert_true(next_of("0 0 * * *", ms_utc(2027, 1, 1, 0, 0)) == ms_utc(2027, 1, 2, 0, 0));
    assert_true(next_of("0 12 * * *", ms_utc(2026, 5, 5, 12, 0)) == ms_utc(2026, 5, 6, 12, 0));
    assert_true(next_of("0 12 * * *", ms_utc(2026, 5, 5, 11, 59) + 59999) == ms_utc(2026, 5, 5, 12, 0));
}

static void test_weekdays_across_weekend(void **state)
{
    (void)state;
    /* 2026-03-12 is a Thursday. */
    const int64_t want[] = {
        ms_utc(2026, 3, 13, 2, 30), /* Fri */
        ms_utc(2026, 3, 16, 2, 30), /* Mon: Sat and Sun skipped */
        ms_utc(2026, 3, 17, 2, 30),
    };
    assert_sequence("30 2 * * 1-5", ms_utc(2026, 3, 12, 3, 0), want, 3);
    assert_true(next_of("30 2 * * 1-5", ms_utc(2026, 3, 13, 2, 0)) == ms_utc(2026, 3, 13, 2, 30));
}

static void test_first_of_month(void **state)
{
    (void)state;
    const int64_t want[] = {
        ms_utc(2026, 2, 1, 9, 0), ms_utc(2026, 3, 1, 9, 0), ms_utc(2026, 4, 1, 9, 0),
    };
    assert_sequence("0 9 1 * *", ms_utc(2026, 1, 31, 10, 0), want, 3);
    assert_true(next_of("0 9 1 * *", ms_utc(2026, 12, 15, 0, 0)) == ms_utc(2027, 1, 1, 9, 0));
    assert_true(next_of("0 9 1 * *", ms_utc(2028, 2, 1, 9, 0)) == ms_utc(2028, 3, 1, 9, 0));
}

static void test_leap_day(void **state)
{
    (void)state;
    assert_true(next_of("0 0 29 2 *", ms_utc(2026, 1, 1, 0, 0)) == ms_utc(2028, 2, 29, 0, 0));
    assert_true(next_of("0 0 29 2 *", ms_utc(2028, 2, 29, 0, 0)) == ms_utc(2032, 2, 29, 0, 0));
    assert_true(next_of("0 0 * 2 *", ms_utc(2028, 2, 28, 0, 0)) == ms_utc(2028, 2, 29, 0, 0));
    assert_true(next_of("0 0 * 2 *", ms_utc(2027, 2, 28, 0, 0)) == ms_utc(2028, 2, 1, 0, 0));
    /* 2100 is no leap year: from 2096-03-01 the next is 2104, past the horizon. */
    assert_true(next_of("0 0 29 2 *", ms_utc(2096, 3, 1, 0, 0)) == -1);
    assert_true(next_of("0 0 29 2 *", ms_utc(2000, 1, 1, 0, 0)) == ms_utc(2000, 2, 29, 0, 0));
}

static void test_never(void **state)
{
    (void)state;
    assert_true(next_of("0 0 30 2 *", ms_utc(2026, 1, 1, 0, 0)) == -1);
    assert_true(next_of("0 0 31 2,4,6,9,11 *", ms_utc(2026, 1, 1, 0, 0)) == -1);
    assert_true(next_of("* * 30,31 FEB *", ms_utc(2026, 1, 1, 0, 0)) == -1);
}

static void test_31st_skips_short_months(void **state)
{
    (void)state;
    const int64_t want[] = {
        ms_utc(2026, 3, 31, 0, 0), ms_utc(2026, 5, 31, 0, 0),  ms_utc(2026, 7, 31, 0, 0),
        ms_utc(2026, 8, 31, 0, 0), ms_utc(2026, 10, 31, 0, 0), ms_utc(2026, 12, 31, 0, 0),
        ms_utc(2027, 1, 31, 0, 0),
    };
    assert_sequence("0 0 31 * *", ms_utc(2026, 1, 31, 0, 0), want, 7);
}

static void test_either_day_rule(void **state)
{
    (void)state;
    /* Both restricted: the 13th OR a Friday. */
    const int64_t both[] = {
        ms_utc(2026, 3, 6, 0, 0),  ms_utc(2026, 3, 13, 0, 0), ms_utc(2026, 3, 20, 0, 0), ms_utc(2026, 3, 27, 0, 0),
        ms_utc(2026, 4, 3, 0, 0),  ms_utc(2026, 4, 10, 0, 0), ms_utc(2026, 4, 13, 0, 0), /* a Monday */
        ms_utc(2026, 4, 17, 0, 0),
    };
    assert_sequence("0 0 13 * 5", ms_utc(2026, 3, 1, 0, 0), both, 8);
    /* One of them `*`: only the other one counts. */
    const int64_t mday[] = {ms_utc(2026, 3, 13, 0, 0), ms_utc(2026, 4, 13, 0, 0)};
    assert_sequence("0 0 13 * *", ms_utc(2026, 3, 1, 0, 0), mday, 2);
    const int64_t wday[] = {ms_utc(2026, 3, 6, 0, 0), ms_utc(2026, 3, 13, 0, 0), ms_utc(2026, 3, 20, 0, 0)};
    assert_sequence("0 0 * * 5", ms_utc(2026, 3, 1, 0, 0), wday, 3);
    /* A field starting with `*` counts as unrestricted (Vixie cron): odd
     * days AND Mondays. */
    const int64_t star_step[] = {
        ms_utc(2026, 3, 9, 0, 0), ms_utc(2026, 3, 23, 0, 0), ms_utc(2026, 4, 13, 0, 0), ms_utc(2026, 4, 27, 0, 0),
    };
    assert_sequence("0 0 */2 * 1", ms_utc(2026, 3, 1, 0, 0), star_step, 4);
    /* An explicit full range is a restriction: 1-31 OR Monday = every day. */
    assert_true(next_of("0 0 1-31 * 1", ms_utc(2026, 3, 1, 0, 0)) == ms_utc(2026, 3, 2, 0, 0));
}

static void test_names(void **state)
{
    (void)state;
    /* 2026-01-30 is a Friday, 31 a Saturday; July 1 a Wednesday. */
    const int64_t want[] = {ms_utc(2026, 1, 30, 12, 0), ms_utc(2026, 7, 1, 12, 0), ms_utc(2026, 7, 2, 12, 0)};
    assert_sequence("0 12 * JAN,jul mon-fri", ms_utc(2026, 1, 30, 0, 0), want, 3);
    assert_sequence("0 12 * 1,7 1-5", ms_utc(2026, 1, 30, 0, 0), want, 3);
    /* 7, 0 and SUN are all Sunday; 2026-03-01 is one. */
    warm_cron_t seven = parse_ok("0 0 * * 7"), zero = parse_ok("0 0 * * 0"), sun = parse_ok("0 0 * * Sun");
    int64_t t = ms_utc(2026, 2, 23, 0, 0); /* a Monday */
    assert_true(warm_cron_next(&seven, t, 0) == ms_utc(2026, 3, 1, 0, 0));
    for (int i = 0; i < 10; i++) {
        int64_t n = warm_cron_next(&seven, t, 0);
        assert_true(n == warm_cron_next(&zero, t, 0));
        assert_true(n == warm_cron_next(&sun, t, 0));
        t = n;
    }
    /* A range up to 7 takes Sunday in. */
    assert_true(next_of("0 0 * * 6-7", ms_utc(2026, 2, 28, 0, 0)) == ms_utc(2026, 3, 1, 0, 0));
    assert_true(next_of("0 0 * * fri-sat", ms_utc(2026, 2, 28, 0, 0)) == ms_utc(2026, 3, 6, 0, 0));
    assert_true(next_of("0 0 1 mar-may/2 *", ms_utc(2026, 3, 2, 0, 0)) == ms_utc(2026, 5, 1, 0, 0));
}

static void test_ranges_with_steps(void **state)
{
    (void)state;
    const int64_t r[] = {
        ms_utc(2026, 6, 1, 10, 10), ms_utc(2026, 6, 1, 10, 20), ms_utc(2026, 6, 1, 10, 30),
        ms_utc(2026, 6, 1, 11, 10),
    };
    assert_sequence("10-30/10 * * * *", ms_utc(2026, 6, 1, 10, 0), r, 4);
    const int64_t from5[] = {
        ms_utc(2026, 6, 1, 10, 5), ms_utc(2026, 6, 1, 10, 25), ms_utc(2026, 6, 1, 10, 45),
        ms_utc(2026, 6, 1, 11, 5),
    };
    assert_sequence("5/20 * * * *", ms_utc(2026, 6, 1, 10, 0), from5, 4);
    /* Lists of mixed items; hours stepped. */
    const int64_t mixed[] = {
        ms_utc(2026, 6, 1, 0, 1), ms_utc(2026, 6, 1, 0, 7), ms_utc(2026, 6, 1, 0, 8), ms_utc(2026, 6, 1, 0, 9),
        ms_utc(2026, 6, 1, 0, 40), ms_utc(2026, 6, 1, 0, 50), ms_utc(2026, 6, 1, 6, 1),
    };
    assert_sequence("1,7-9,40/10 */6 * * *", ms_utc(2026, 5, 31, 23, 59), mixed, 7);
    /* a/n in day-of-week runs to 7: Mon, Wed, Fri and Sun. */
    const int64_t odd_wdays[] = {
        ms_utc(2026, 3, 2, 0, 0), ms_utc(2026, 3, 4, 0, 0), ms_utc(2026, 3, 6, 0, 0), ms_utc(2026, 3, 8, 0, 0),
        ms_utc(2026, 3, 9, 0, 0),
    };
    assert_sequence("0 0 * * 1/2", ms_utc(2026, 3, 1, 0, 0), odd_wdays, 5);
}

/* ---- @every and macros ---- */

static void test_every_anchor(void **state)
{
    (void)state;
    warm_cron_t c = parse_ok("@every 30s");
    assert_int_equal(c.kind, WARM_CRON_EVERY);
    assert_true(c.period_ms == 30000);
    int64_t anchor = ms_utc(2026, 4, 1, 8, 0) + 1234;
    assert_true(warm_cron_next(&c, anchor, anchor) == anchor + 30000);
    assert_true(warm_cron_next(&c, anchor + 95000, anchor) == anchor + 120000);
    assert_true(warm_cron_next(&c, anchor + 90000, anchor) == anchor + 120000); /* strictly after */
    assert_true(warm_cron_next(&c, anchor + 89999, anchor) == anchor + 90000);
    /* Before the anchor the grid extends backwards. */
    assert_true(warm_cron_next(&c, anchor - 1, anchor) == anchor);
    assert_true(warm_cron_next(&c, anchor - 45000, anchor) == anchor - 30000);
    /* Negative times (before 1970) stay on the grid too. */
    assert_true(warm_cron_next(&c, -1, 0) == 0);
    assert_true(warm_cron_next(&c, -30001, 0) == -30000);

    c = parse_ok("@every 1h30m");
    assert_true(c.period_ms == 5400000);
    assert_true(warm_cron_next(&c, anchor + 5400000 * 3 + 7, anchor) == anchor + 5400000LL * 4);
    assert_true(parse_ok("@every 1500ms").period_ms == 1500);
    assert_true(parse_ok("@every 1d12h").period_ms == 36 * 3600000LL);
    assert_true(parse_ok("@every 5m").period_ms == 300000);
    assert_true(parse_ok("@every 1s").period_ms == 1000);
    assert_true(parse_ok("@every 365d").period_ms == 365 * 86400000LL);
    assert_true(parse_ok("@EVERY\t2H").period_ms == 7200000);
    assert_true(parse_ok("@every 1m1s1ms").period_ms == 61001);
}

static void test_macros(void **state)
{
    (void)state;
    int64_t from = ms_utc(2026, 3, 4, 10, 30); /* a Wednesday */
    assert_true(next_of("@hourly", from) == ms_utc(2026, 3, 4, 11, 0));
    assert_true(next_of("@daily", from) == ms_utc(2026, 3, 5, 0, 0));
    assert_true(next_of("@midnight", from) == ms_utc(2026, 3, 5, 0, 0));
    assert_true(next_of("@weekly", from) == ms_utc(2026, 3, 8, 0, 0)); /* Sunday */
    assert_true(next_of("@monthly", from) == ms_utc(2026, 4, 1, 0, 0));
    assert_true(next_of("@yearly", from) == ms_utc(2027, 1, 1, 0, 0));
    assert_true(next_of("@annually", from) == ms_utc(2027, 1, 1, 0, 0));
    assert_true(next_of("@Daily", from) == ms_utc(2026, 3, 5, 0, 0));
    /* The text stays the macro. */
    warm_cron_t c = parse_ok(" @weekly ");
    assert_string_equal(warm_cron_text(&c), "@weekly");
}

static void test_text_and_copy(void **state)
{
    (void)state;
    warm_cron_t c = parse_ok("  */5\t* * *  MON-fri \n");
    assert_string_equal(warm_cron_text(&c), "*/5\t* * *  MON-fri");
    warm_cron_t copy = c; /* a plain value */
    memset(&c, 0xa5, sizeof c);
    assert_string_equal(warm_cron_text(&copy), "*/5\t* * *  MON-fri");
    assert_true(warm_cron_next(&copy, ms_utc(2026, 3, 6, 23, 57), 0) == ms_utc(2026, 3, 9, 0, 0));
    assert_string_equal(warm_cron_text(&(warm_cron_t){0}), "");

    /* The length limit is on the trimmed text. */
    char spec[300];
    memset(spec, ' ', 100);
    snprintf(spec + 100, sizeof spec - 100, "0 0 * * *%100s", "");
    warm_cron_t padded = parse_ok(spec);
    assert_string_equal(warm_cron_text(&padded), "0 0 * * *");
    /* Exactly 128 bytes: a minute of 120 zeros. */
    memset(spec, '0', 120);
    strcpy(spec + 120, " * * * *");
    assert_int_equal(strlen(spec), 128);
    warm_cron_t z = parse_ok(spec);
    assert_true(z.minutes == 1);
    assert_int_equal(strlen(warm_cron_text(&z)), 128);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    char long129[160];
    memset(long129, '0', 121);
    strcpy(long129 + 121, " * * * *");
    assert_int_equal(strlen(long129), 129);
    const struct {
        const char *spec;
        const char *want[3]; /* each must appear in the message */
    } cases[] = {
        {"* * * *", {"expected 5 fields", "got 4"}},
        {"* * * * * *", {"expected 5 fields", "got 6"}},
        {"", {"empty"}},
        {" \t\n", {"empty"}},
        {long129, {"129 bytes", "longer than 128"}},
        {"61 * * * *", {"minute field: 61 is out of 0-59"}},
        {"* 24 * * *", {"hour field: 24 is out of 0-23"}},
        {"* * 0 * *", {"day-of-month field: 0 is out of 1-31"}},
        {"* * 32 * *", {"day-of-month field: 32 is out of 1-31"}},
        {"* * * 0 *", {"month field: 0 is out of 1-12"}},
        {"* * * 13 *", {"month field: 13 is out of 1-12"}},
        {"* * * * 8", {"day-of-week field: 8 is out of 0-7"}},
        {"99999999999 * * * *", {"minute field: 99999999999 is out of 0-59"}},
        {"1-60 * * * *", {"minute field: 60 is out of 0-59"}},
        {"*/0 * * * *", {"minute field: step 0 is out of 1-60"}},
        {"* 1-5/0 * * *", {"hour field: step 0"}},
        {"* * * * */0", {"day-of-week field: step 0"}},
        {"*/61 * * * *", {"minute field: step 61 is out of 1-60"}},
        {"*/ * * * *", {"minute field", "number must follow '/'"}},
        {"30-10 * * * *", {"minute field: range 30-10 is reversed"}},
        {"* * * DEC-JAN *", {"month field: range DEC-JAN is reversed"}},
        {"* * * * sat-sun", {"day-of-week field: range sat-sun is reversed"}},
        {"1,,2 * * * *", {"minute field: empty list item", "1,,2"}},
        {"1, * * * *", {"minute field: empty list item"}},
        {"* ,1 * * *", {"hour field: empty list item"}},
        {"1- * * * *", {"minute field", "value is missing"}},
        {"1x * * * *", {"minute field: unexpected 'x'"}},
        {"1#2 * * * *", {"minute field: unexpected '#'"}},
        {"? * * * *", {"minute field: unexpected '?'"}},
        {"-5 * * * *", {"minute field: unexpected '-'"}},
        {"*-5 * * * *", {"minute field: unexpected '-'"}},
        {"* * * * *\x01", {"day-of-week field: unexpected byte 0x01"}},
        {"* * 1.5 * *", {"day-of-month field: unexpected '.'"}},
        {"a * * * *", {"minute field: 'a' is not a number"}},
        {"* * * FOO *", {"month field: unknown name 'FOO'"}},
        {"* * * * MONDAY", {"day-of-week field: unknown name 'MONDAY'"}},
        {"* * * MON *", {"month field: unknown name 'MON'"}},
        {"* * * * JAN", {"day-of-week field: unknown name 'JAN'"}},
        {"* * * 1/JAN *", {"month field", "number must follow '/'"}},
        {"@every", {"@every", "duration is missing"}},
        {"@every   ", {"@every", "duration is missing"}},
        {"@every 500ms", {"@every: 500ms is below", "1s"}},
        {"@every 999ms", {"below"}},
        {"@every 0s", {"below"}},
        {"@every 366d", {"@every: 366d is above", "365d"}},
        {"@every 365d1ms", {"above"}},
        {"@every 99999999999999999999d", {"above"}},
        {"@every 8761h", {"above"}},
        {"@every 5", {"@every: 5 needs a unit"}},
        {"@every 1h30", {"@every: 30 needs a unit"}},
        {"@every 5x", {"@every: unknown unit 'x'"}},
        {"@every 5min", {"unknown unit 'min'"}},
        {"@every 1.5h", {"@every: unexpected '.'"}},
        {"@every 1h 30m", {"@every: expected a number at ' '"}},
        {"@every h", {"@every: expected a number at 'h'"}},
        {"@every -5s", {"expected a number at '-'"}},
        {"@everyday", {"unknown macro '@everyday'"}},
        {"@fortnightly", {"unknown macro '@fortnightly'"}},
        {"@", {"unknown macro '@'"}},
        {"@daily 5", {"@daily takes nothing after it", "'5'"}},
        {"@reboot", {"unknown macro '@reboot'"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        warm_cron_t c;
        char err[256];
        if (warm_cron_parse(&c, cases[i].spec, err, sizeof err)) fail_msg("'%s' was accepted", cases[i].spec);
        for (int j = 0; j < 3 && cases[i].want[j]; j++)
            if (!strstr(err, cases[i].want[j]))
                fail_msg("'%s': message \"%s\" does not say \"%s\"", cases[i].spec, err, cases[i].want[j]);
    }
    /* No spec at all; no room for a message; a small one is cut, terminated. */
    warm_cron_t c;
    char err[16];
    assert_false(warm_cron_parse(&c, NULL, err, sizeof err));
    assert_string_equal(err, "no schedule");
    assert_false(warm_cron_parse(&c, "61 * * * *", NULL, 0));
    assert_false(warm_cron_parse(&c, "61 * * * *", err, sizeof err));
    assert_int_equal(strlen(err), sizeof err - 1);
    /* Success clears a previous message. */
    assert_true(warm_cron_parse(&c, "* * * * *", err, sizeof err));
    assert_string_equal(err, "");
}

/* ---- property: against a minute-by-minute search ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    /* xorshift64*: fixed seed, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int rng_in(int lo, int hi)
{
    return lo + (int)(rng() % (uint64_t)(hi - lo + 1));
}

typedef struct {
    int min, max;
    const char *const *names; /* NULL: numbers only */
    int nnames;
} field_t;

static const char *const month_names[] = {NULL, "JAN", "feb", "Mar", "APR", "may", "Jun",
                                          "JUL", "aug", "Sep", "OCT", "nov", "Dec"};
static const char *const wday_names[] = {"sun", "MON", "Tue", "wed", "THU", "Fri", "sat"};

static const field_t fields[5] = {
    {0, 59, NULL, 0}, {0, 23, NULL, 0}, {1, 31, NULL, 0}, {1, 12, month_names, 13}, {0, 7, wday_names, 7},
};

static void put_value(const field_t *f, int v, char *buf, size_t *len, size_t cap)
{
    if (f->names && v < f->nnames && f->names[v] && rng() % 3 == 0)
        *len += (size_t)snprintf(buf + *len, cap - *len, "%s", f->names[v]);
    else *len += (size_t)snprintf(buf + *len, cap - *len, "%d", v);
}

/* A random valid field: its text in buf and the values it selects in *mask
 * (computed from how it was built, not by parsing it back). */
static void random_field(const field_t *f, char *buf, size_t cap, uint64_t *mask)
{
    size_t len = 0;
    *mask = 0;
    int items = rng() % 4 == 0 ? rng_in(2, 3) : 1;
    for (int i = 0; i < items; i++) {
        if (i) buf[len++] = ',';
        int lo, hi, step = 1;
        int span = f->max - f->min + 1;
        switch (rng() % 7) {
        case 0: /* `*` */
            lo = f->min, hi = f->max;
            len += (size_t)snprintf(buf + len, cap - len, "*");
            break;
        case 1: /* `*` stepped */
            lo = f->min, hi = f->max, step = rng_in(1, span);
            len += (size_t)snprintf(buf + len, cap - len, "*/%d", step);
            break;
        case 2:
        case 3: /* one value, the commonest in real schedules */
            lo = hi = rng_in(f->min, f->max);
            put_value(f, lo, buf, &len, cap);
            break;
        case 4: /* a-b */
            lo = rng_in(f->min, f->max), hi = rng_in(lo, f->max);
            put_value(f, lo, buf, &len, cap);
            buf[len++] = '-';
            put_value(f, hi, buf, &len, cap);
            break;
        case 5: /* a-b/n */
            lo = rng_in(f->min, f->max), hi = rng_in(lo, f->max), step = rng_in(1, span);
            put_value(f, lo, buf, &len, cap);
            buf[len++] = '-';
            put_value(f, hi, buf, &len, cap);
            len += (size_t)snprintf(buf + len, cap - len, "/%d", step);
            break;
        default: /* a/n: a to the field's end */
            lo = rng_in(f->min, f->max), hi = f->max, step = rng_in(1, span);
            put_value(f, lo, buf, &len, cap);
            len += (size_t)snprintf(buf + len, cap - len, "/%d", step);
            break;
        }
        for (int v = lo; v <= hi; v += step) *mask |= 1ULL << v;
    }
    buf[len] = '\0';
}

typedef struct {
    uint64_t mask[5];
    int mday_star, wday_star;
} expect_t;

/* The first minute strictly after after_ms that matches, looking at every
 * minute of the next `days` days; -1 if none. The calendar comes from
 * gmtime_r, once per day. */
static int64_t brute_next(const expect_t *e, int64_t after_ms, int days)
{
    int64_t t = after_ms - after_ms % 60000 + 60000; /* after_ms >= 0 here */
    int64_t end = after_ms + (int64_t)days * 86400000LL;
    int64_t day = -1;
    bool day_ok = false;
    for (; t <= end; t += 60000) {
        if (t / 86400000 != day) {
            day = t / 86400000;
            time_t secs = (time_t)(t / 1000);
            struct tm tm;
            gmtime_r(&secs, &tm);
            int wday = tm.tm_wday;
            bool md = (e->mask[2] >> tm.tm_mday) & 1;
            bool wd = ((e->mask[4] >> wday) & 1) || (wday == 0 && ((e->mask[4] >> 7) & 1));
            bool dm = (e->mday_star || e->wday_star) ? (md && wd) : (md || wd);
            day_ok = ((e->mask[3] >> (tm.tm_mon + 1)) & 1) && dm;
        }
        if (!day_ok) continue;
        int64_t mod = (t / 60000) % 1440;
        if (((e->mask[1] >> (mod / 60)) & 1) && ((e->mask[0] >> (mod % 60)) & 1)) return t;
    }
    return -1;
}

static void test_property_vs_brute_force(void **state)
{
    (void)state;
    const int days = 400;
    int64_t lo = ms_utc(2026, 1, 1, 0, 0), hi = ms_utc(2031, 1, 1, 0, 0);
    int found = 0, none = 0;
    for (int n = 0; n < 2000; n++) {
        char spec[5 * 64], part[5][64];
        expect_t e;
        do { /* three long items in every field could pass the length limit */
            for (int i = 0; i < 5; i++) random_field(&fields[i], part[i], sizeof part[i], &e.mask[i]);
            snprintf(spec, sizeof spec, "%s %s %s %s %s", part[0], part[1], part[2], part[3], part[4]);
        } while (strlen(spec) > WARM_CRON_TEXT_MAX);
        e.mday_star = part[2][0] == '*';
        e.wday_star = part[4][0] == '*';
        warm_cron_t c = parse_ok(spec);
        assert_string_equal(warm_cron_text(&c), spec);
        /* Starts on a minute, a second, or anywhere. */
        int64_t after = lo + (int64_t)(rng() % (uint64_t)(hi - lo));
        if (n % 3 == 0) after -= after % 60000;
        else if (n % 3 == 1) after -= after % 1000;
        int64_t want = brute_next(&e, after, days);
        int64_t got = warm_cron_next(&c, after, 0);
        if (want >= 0) {
            found++;
            if (got != want)
                fail_msg("#%d '%s' after %lld: got %lld, want %lld", n, spec, (long long)after, (long long)got,
                         (long long)want);
        } else {
            /* None in the window: the module may still find one later. */
            none++;
            if (got != -1 && got <= after + days * 86400000LL)
                fail_msg("#%d '%s' after %lld: got %lld inside a window with none", n, spec, (long long)after,
                         (long long)got);
        }
    }
    /* The generator must mostly make schedules that fire. */
    assert_true(found > 1500);
    print_message("property: %d matched the brute force, %d had no firing within %d days\n", found, none, days);
}

static void test_property_every(void **state)
{
    (void)state;
    for (int n = 0; n < 20000; n++) {
        int64_t period = 1000 + (int64_t)(rng() % (uint64_t)(WARM_CRON_EVERY_MAX_MS - 1000 + 1));
        warm_cron_t c;
        char spec[64];
        snprintf(spec, sizeof spec, "@every %lldms", (long long)period);
        c = parse_ok(spec);
        assert_true(c.period_ms == period);
        int64_t anchor = (int64_t)(rng() % 4000000000000ULL), after = (int64_t)(rng() % 4000000000000ULL);
        int64_t got = warm_cron_next(&c, after, anchor);
        assert_true(got > after);
        assert_true(got - after <= period);
        assert_true((got - anchor) % period == 0);
    }
}

/* ---- bounds ---- */

static void test_extreme_times(void **state)
{
    (void)state;
    warm_cron_t c = parse_ok("* * * * *");
    assert_true(warm_cron_next(&c, INT64_MAX, 0) == -1);
    assert_true(warm_cron_next(&c, INT64_MIN, 0) == -1);
    /* Before 1970: 1969-12-31 23:59 -> midnight. */
    assert_true(warm_cron_next(&c, -60000, 0) == 0);
    assert_true(next_of("0 0 1 1 *", -1) == 0);
    assert_true(next_of("0 0 * * 4", -1) == 0); /* 1970-01-01 was a Thursday */
    c = parse_ok("@every 1s");
    assert_true(warm_cron_next(&c, INT64_MAX - 10, 0) == -1);
    assert_true(warm_cron_next(&c, 0, INT64_MIN) == -1);
}

static void test_never_is_bounded(void **state)
{
    (void)state;
    /* A schedule that never fires costs one horizon of days, not of
     * minutes: many calls stay fast (the test's timeout would notice). */
    const char *specs[] = {"0 0 30 2 *", "* * 31 4 *", "59 23 31 11 *", "0 0 29 2 *"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        warm_cron_t c = parse_ok(specs[i]);
        for (int n = 0; n < 2000; n++) (void)warm_cron_next(&c, ms_utc(2097, 1, 1, 0, 0) + n * 60000LL, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ms_helper),
        cmocka_unit_test(test_step_minutes),
        cmocka_unit_test(test_daily),
        cmocka_unit_test(test_weekdays_across_weekend),
        cmocka_unit_test(test_first_of_month),
        cmocka_unit_test(test_leap_day),
        cmocka_unit_test(test_never),
        cmocka_unit_test(test_31st_skips_short_months),
        cmocka_unit_test(test_either_day_rule),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ranges_with_steps),
        cmocka_unit_test(test_every_anchor),
        cmocka_unit_test(test_macros),
        cmocka_unit_test(test_text_and_copy),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_property_vs_brute_force),
        cmocka_unit_test(test_property_every),
        cmocka_unit_test(test_extreme_times),
        cmocka_unit_test(test_never_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
