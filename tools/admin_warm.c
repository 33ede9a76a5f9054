/* dcache-admin warm: warming jobs. See admin_warm.h. */
#include "autoconfig.h"

#include "tools/admin_warm.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/admin_fmt.h"

/* The node keeps the last 200 runs; /api/warming/history refuses more. */
#define WARM_HISTORY_MAX 200

static const char warm_synopsis[] =
    "warm jobs | add FILE | delete NAME | run NAME | keys KEY... | pattern PATTERN | cancel NAME | "
    "history [--limit N]";

static int __attribute__((format(printf, 1, 2))) warm_usage(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("dcache-admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nUsage: dcache-admin %s\nTry 'dcache-admin help warm'.\n", warm_synopsis);
    return ADMIN_EXIT_USAGE;
}

/* A JSON string from a command-line argument, or NULL (message printed)
 * when it is not UTF-8: JSON bodies can only carry text. */
static json_t *arg_string(const char *what, const char *arg)
{
    json_t *s = admin_fmt_utf8_valid(arg, strlen(arg)) ? json_string(arg) : NULL;
    if (!s)
        admin_fmt_error("%s is not valid UTF-8; this API takes JSON text", what);
    return s;
}

/* A string field made safe for a terminal, "-" when absent; malloc'd. */
static char *field_text(const json_t *obj, const char *field)
{
    char *s = admin_fmt_json_text(obj, field);
    return s ? s : admin_fmt_xstrdup("-");
}

static char *field_int(const json_t *obj, const char *field)
{
    long long v;
    return admin_fmt_json_int(obj, field, &v) ? admin_fmt_xasprintf("%lld", v) : admin_fmt_xstrdup("-");
}

/* An epoch-ms field as RFC 3339 UTC, "-" when absent or null. */
static char *field_time(const json_t *obj, const char *field)
{
    long long ms;
    return admin_fmt_json_int(obj, field, &ms) ? admin_fmt_time_ms(ms) : admin_fmt_xstrdup("-");
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- tables: columns as wide as their widest cell ---- */

typedef struct table {
    size_t ncols;
    const char *const *heads;
    const bool *right;  /* right-aligned columns (numbers) */
    char **cells;       /* nrows * ncols, owned */
    size_t nrows;
} table;

/* Appends a row; takes the ncols malloc'd cells. */
static void table_row(table *t, char **cells)
{
    t->cells = admin_fmt_xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof *t->cells);
    memcpy(t->cells + t->nrows * t->ncols, cells, t->ncols * sizeof *cells);
    t->nrows++;
}

static void table_cell(const char *s, size_t width, bool right, bool last)
{
    if (right)
        for (size_t w = admin_fmt_width(s); w < width; w++)
            putchar(' ');
    if (right || last)
        fputs(s, stdout);
    else
        admin_fmt_pad(s, width);
}

/* Prints and frees the table. */
static void table_print(table *t)
{
    size_t *width = admin_fmt_xmalloc(t->ncols * sizeof *width);
    for (size_t c = 0; c < t->ncols; c++) {
        width[c] = admin_fmt_width(t->heads[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t w = admin_fmt_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = r == 0 ? t->heads[c] : t->cells[(r - 1) * t->ncols + c];
            if (c)
                fputs("  ", stdout);
            table_cell(s, width[c], t->right[c], c + 1 == t->ncols);
        }
        putchar('\n');
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(width);
}

/* ---- warm jobs ---- */

/* "2 keys", "pattern users:*", "query on db", "hot 100". */
static char *job_source(const json_t *job)
{
    json_t *src = json_object_get(job, "source"), *keys = json_object_get(src, "keys");
    char *s, *out;
    long long n;

    if (json_is_array(keys))
        return admin_fmt_xasprintf("%zu %s", json_array_size(keys), json_array_size(keys) == 1 ? "key" : "keys");
    if ((s = admin_fmt_json_text(src, "pattern"))) {
        out = admin_fmt_xasprintf("pattern %s", s);
        free(s);
        return out;
    }
    if (json_object_get(src, "query")) {
        s = field_text(src, "origin");
        out = admin_fmt_xasprintf("query on %s", s);
        free(s);
        return out;
    }
    if (admin_fmt_json_int(src, "hot", &n))
        return admin_fmt_xasprintf("hot %lld", n);
    return field_text(job, "source_type");
}

/* "done: 2 keys, 2 loaded, 0 failed"; "-" without a run. */
static char *job_last_run(const json_t *run)
{
    long long keys = 0, loaded = 0, failed = 0;
    char *state, *out;

    if (!json_is_object(run))
        return admin_fmt_xstrdup("-");
    state = field_text(run, "state");
    admin_fmt_json_int(run, "keys", &keys);
    admin_fmt_json_int(run, "loaded", &loaded);
    admin_fmt_json_int(run, "failed", &failed);
    out = admin_fmt_xasprintf("%s: %lld %s, %lld loaded, %lld failed", state, keys, keys == 1 ? "key" : "keys",
                              loaded, failed);
    free(state);
    return out;
}

/* The run in progress: keys done (loaded, missing or failed) out of the
 * job's list ("120/500 (24%)"), or out of those taken from the source so
 * far when the source is a pattern, a query or the hot keys, whose size
 * is not known in advance ("120 done, 300 taken"). "-" when none. */
static char *job_running(const json_t *job, const json_t *run)
{
    long long keys = 0, loaded = 0, missing = 0, failed = 0, done;
    json_t *list = json_object_get(json_object_get(job, "source"), "keys");

    if (!json_is_object(run))
        return admin_fmt_xstrdup("-");
    admin_fmt_json_int(run, "keys", &keys);
    admin_fmt_json_int(run, "loaded", &loaded);
    admin_fmt_json_int(run, "missing", &missing);
    admin_fmt_json_int(run, "failed", &failed);
    done = loaded + missing + failed;
    if (json_is_array(list) && json_array_size(list) > 0)
        return admin_fmt_xasprintf("%lld/%zu (%.0f%%)", done, json_array_size(list),
                                   100.0 * (double)done / (double)json_array_size(list));
    return admin_fmt_xasprintf("%lld done, %lld taken", done, keys);
}

static int warm_jobs(admin_http *h, const admin_opts *o)
{
    static const char *const heads[] = {"NAME",     "SOURCE",  "SCHEDULE", "PRIORITY", "ENABLED",
                                        "NEXT-RUN", "LAST-RUN", "RUNNING", "FILE"};
    static const bool right[] = {false, false, false, true, false, false, false, false, false};
    table t = {.ncols = 9, .heads = heads, .right = right};
    json_t *doc, *jobs, *job;
    size_t i;
    int rc = admin_http_call_json(h, "GET", "/api/warming/jobs", NULL, &doc);

    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
        json_decref(doc);
        return ADMIN_EXIT_OK;
    }
    jobs = json_object_get(doc, "jobs");
    if (!json_is_array(jobs)) {
        admin_fmt_error("unexpected response from /api/warming/jobs: no \"jobs\" array");
        json_decref(doc);
        return ADMIN_EXIT_FAIL;
    }
    json_array_foreach(jobs, i, job) {
        json_t *enabled = json_object_get(job, "enabled");
        char *cells[9] = {
            field_text(job, "name"),
            job_source(job),
            field_text(job, "schedule"),
            field_int(job, "priority"),
            admin_fmt_xstrdup(json_is_boolean(enabled) ? (json_is_true(enabled) ? "yes" : "no") : "-"),
            field_time(job, "next_run_ms"),
            job_last_run(json_object_get(job, "last_run")),
            job_running(job, json_object_get(job, "running")),
            admin_fmt_xstrdup(json_is_true(json_object_get(job, "from_file")) ? "yes" : "no"),
        };
        table_row(&t, cells);
    }
    table_print(&t);
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

/* ---- warm add, delete ---- */

static int warm_add(admin_http *h, const admin_opts *o, char **args)
{
    const char *file = args[0];
    bool from_stdin = strcmp(file, "-") == 0;
    json_error_t jerr;
    json_t *job, *doc;
    char *name;
    int rc;

    job = from_stdin ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                     : json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!job) {
        if (jerr.line > 0)
            admin_fmt_error("%s: not a JSON job: %s (line %d)", from_stdin ? "stdin" : file, jerr.text, jerr.line);
        else
            admin_fmt_error("%s: %s", from_stdin ? "stdin" : file, jerr.text);
        return ADMIN_EXIT_FAIL;
    }
    if (!json_is_object(job)) {
        admin_fmt_error("%s: a job is a JSON object: {\"name\": ..., \"source\": {...}, ...}",
                        from_stdin ? "stdin" : file);
        json_decref(job);
        return ADMIN_EXIT_FAIL;
    }
    rc = admin_http_call_json(h, "POST", "/api/warming/jobs", job, &doc);
    json_decref(job);
    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
    } else {
        json_t *saved = json_object_get(doc, "job");
        char *source = job_source(saved), *schedule = admin_fmt_json_text(saved, "schedule");
        name = field_text(saved, "name");
        printf("saved job %s: %s, %s%s\n", name, source, schedule ? "schedule " : "runs when triggered",
               schedule ? schedule : "");
        free(schedule);
        free(source);
        free(name);
    }
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

static int warm_delete(admin_http *h, const admin_opts *o, char **args)
{
    char *esc = admin_http_escape(args[0], strlen(args[0]));
    char *path = admin_fmt_xasprintf("/api/warming/jobs/%s", esc);
    json_t *doc;
    int rc = admin_http_call_json(h, "DELETE", path, NULL, &doc);

    free(path);
    free(esc);
    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
    } else {
        char *name = admin_fmt_display(args[0], strlen(args[0]));
        printf("deleted job %s\n", name);
        free(name);
    }
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

/* ---- warm run, keys, pattern, cancel ---- */

/* POSTs body (consumed) to path and prints the node's JSON, or `what`
 * followed by the response's field `field`. */
static int warm_post(admin_http *h, const admin_opts *o, const char *path, json_t *body, const char *what,
                     const char *field)
{
    json_t *doc;
    int rc = admin_http_call_json(h, "POST", path, body, &doc);

    json_decref(body);
    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
    } else {
        char *v = field_text(doc, field);
        printf("%s %s\n", what, v);
        free(v);
    }
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

static int warm_run(admin_http *h, const admin_opts *o, char **args)
{
    json_t *name = arg_string("the job name", args[0]);
    if (!name)
        return ADMIN_EXIT_USAGE;
    return warm_post(h, o, "/api/warming/trigger", json_pack("{s:o}", "job", name), "triggered job", "triggered");
}

static int warm_keys(admin_http *h, const admin_opts *o, char **args, int nargs)
{
    json_t *keys = json_array();
    for (int i = 0; i < nargs; i++) {
        json_t *k = arg_string("a key", args[i]);
        if (!k) {
            json_decref(keys);
            return ADMIN_EXIT_USAGE;
        }
        json_array_append_new(keys, k);
    }
    return warm_post(h, o, "/api/warming/trigger", json_pack("{s:o}", "keys", keys), "started run", "run");
}

static int warm_pattern(admin_http *h, const admin_opts *o, char **args)
{
    json_t *pattern = arg_string("the pattern", args[0]);
    if (!pattern)
        return ADMIN_EXIT_USAGE;
    return warm_post(h, o, "/api/warming/trigger", json_pack("{s:o}", "pattern", pattern), "started run", "run");
}

static int warm_cancel(admin_http *h, const admin_opts *o, char **args)
{
    json_t *name = arg_string("the job name", args[0]), *doc;
    int rc;

    if (!name)
        return ADMIN_EXIT_USAGE;
    json_t *body = json_pack("{s:o}", "job", name);
    rc = admin_http_call_json(h, "POST", "/api/warming/cancel", body, &doc);
    json_decref(body);
    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
    } else {
        char *shown = admin_fmt_display(args[0], strlen(args[0]));
        /* 202: the run stops on whichever node runs it, a moment later;
         * a job with no run in progress is not an error. */
        printf("cancel requested for job %s\n", shown);
        free(shown);
    }
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

/* ---- warm history ---- */

/* How long the run took, or has been running so far. */
static char *run_duration(const json_t *run, long long now)
{
    long long start, end;
    if (!admin_fmt_json_int(run, "started_ms", &start))
        return admin_fmt_xstrdup("-");
    if (!admin_fmt_json_int(run, "ended_ms", &end))
        end = now;
    return admin_fmt_duration((double)(end - start) / 1000.0);
}

static int warm_history(admin_http *h, const admin_opts *o)
{
    static const char *const heads[] = {"ID",       "JOB",  "NODE",   "TRIGGER", "STATE",  "STARTED", "DURATION",
                                        "KEYS",     "LOADED", "MISSING", "FAILED", "KEYS/S", "ERROR"};
    static const bool right[] = {false, false, false, false, false, false, false,
                                 true,  true,  true,  true,  true,  false};
    table t = {.ncols = 12, .heads = heads, .right = right};
    json_t *doc, *runs, *run;
    char *path;
    long long now = now_ms();
    size_t i;
    int rc;

    if (o->limit > 0)
        path = admin_fmt_xasprintf("/api/warming/history?limit=%ld", o->limit > WARM_HISTORY_MAX ? WARM_HISTORY_MAX
                                                                                                  : o->limit);
    else
        path = admin_fmt_xstrdup("/api/warming/history");
    rc = admin_http_call_json(h, "GET", path, NULL, &doc);
    if (rc != ADMIN_EXIT_OK) {
        free(path);
        return rc;
    }
    if (o->json) {
        admin_fmt_json_print(doc);
        json_decref(doc);
        free(path);
        return ADMIN_EXIT_OK;
    }
    runs = json_object_get(doc, "runs");
    if (!json_is_array(runs)) {
        admin_fmt_error("unexpected response from %s: no \"runs\" array", path);
        json_decref(doc);
        free(path);
        return ADMIN_EXIT_FAIL;
    }
    free(path);
    /* ERROR only when some run has one. */
    json_array_foreach(runs, i, run) {
        if (json_is_string(json_object_get(run, "error")))
            t.ncols = 13;
    }
    json_array_foreach(runs, i, run) {
        double rate;
        char *cells[13] = {
            field_text(run, "id"),
            field_text(run, "job"),
            field_text(run, "node"),
            field_text(run, "trigger"),
            field_text(run, "state"),
            field_time(run, "started_ms"),
            run_duration(run, now),
            field_int(run, "keys"),
            field_int(run, "loaded"),
            field_int(run, "missing"),
            field_int(run, "failed"),
            admin_fmt_json_number(run, "keys_per_s", &rate) ? admin_fmt_xasprintf("%.1f", rate)
                                                             : admin_fmt_xstrdup("-"),
            t.ncols == 13 ? field_text(run, "error") : NULL,
        };
        table_row(&t, cells);
    }
    table_print(&t);
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

/* ---- dispatch ---- */

enum { W_JOBS, W_ADD, W_DELETE, W_RUN, W_KEYS, W_PATTERN, W_CANCEL, W_HISTORY };

static const struct warm_sub {
    const char *name;
    const char *synopsis;
    int min_args, max_args; /* after the subcommand; max -1: no limit */
} subs[] = {
    [W_JOBS] = {"jobs", "warm jobs", 0, 0},
    [W_ADD] = {"add", "warm add FILE", 1, 1},
    [W_DELETE] = {"delete", "warm delete NAME", 1, 1},
    [W_RUN] = {"run", "warm run NAME", 1, 1},
    [W_KEYS] = {"keys", "warm keys KEY...", 1, -1},
    [W_PATTERN] = {"pattern", "warm pattern PATTERN", 1, 1},
    [W_CANCEL] = {"cancel", "warm cancel NAME", 1, 1},
    [W_HISTORY] = {"history", "warm history [--limit N]", 0, 0},
};

int admin_warm(admin_http *h, const admin_opts *o)
{
    size_t n = sizeof subs / sizeof subs[0], s;
    char **args;
    int nargs;

    if (o->nargs < 1)
        return warm_usage("warm: which? jobs, add, delete, run, keys, pattern, cancel or history");
    for (s = 0; s < n; s++)
        if (strcmp(subs[s].name, o->args[0]) == 0)
            break;
    if (s == n) {
        char *shown = admin_fmt_display(o->args[0], strlen(o->args[0]));
        int rc = warm_usage("warm: unknown subcommand '%s' (jobs, add, delete, run, keys, pattern, cancel or "
                            "history)", shown);
        free(shown);
        return rc;
    }
    args = o->args + 1;
    nargs = o->nargs - 1;
    if (nargs < subs[s].min_args || (subs[s].max_args >= 0 && nargs > subs[s].max_args)) {
        fprintf(stderr, "dcache-admin: wrong number of arguments for 'warm %s'\n", subs[s].name);
        fprintf(stderr, "Usage: dcache-admin %s\nTry 'dcache-admin help warm'.\n", subs[s].synopsis);
        return ADMIN_EXIT_USAGE;
    }
    if (o->limit > 0 && s != W_HISTORY) {
        fprintf(stderr, "dcache-admin: option '--limit' does not apply to 'warm %s'\n", subs[s].name);
        fputs("Try 'dcache-admin help warm'.\n", stderr);
        return ADMIN_EXIT_USAGE;
    }
    switch (s) {
    case W_JOBS: return warm_jobs(h, o);
    case W_ADD: return warm_add(h, o, args);
    case W_DELETE: return warm_delete(h, o, args);
    case W_RUN: return warm_run(h, o, args);
    case W_KEYS: return warm_keys(h, o, args, nargs);
    case W_PATTERN: return warm_pattern(h, o, args);
    case W_CANCEL: return warm_cancel(h, o, args);
    default: return warm_history(h, o);
    }
}
