/* dcache-admin: the operator commands. See admin_ops.h. */
#include "autoconfig.h"

#include "tools/admin_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/admin_cache.h"
#include "tools/admin_fmt.h"

static const char *plural(long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
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

int admin_ops_invalidate(admin_http *h, const admin_opts *o)
{
    json_t *keys = json_array(), *body, *doc;
    long long n;
    int rc;

    for (int i = 0; i < o->nargs; i++) {
        json_t *k = arg_string("a key", o->args[i]);
        if (!k) {
            json_decref(keys);
            return ADMIN_EXIT_USAGE;
        }
        json_array_append_new(keys, k);
    }
    body = json_pack("{s:o}", "keys", keys);
    rc = admin_http_call_json(h, "POST", "/api/invalidate", body, &doc);
    json_decref(body);
    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json)
        admin_fmt_json_print(doc);
    else if (admin_fmt_json_int(doc, "invalidated", &n))
        printf("invalidated %lld %s\n", n, plural(n, "key", "keys"));
    else
        printf("invalidated ? keys\n");
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

int admin_ops_invalidate_pattern(admin_http *h, const admin_opts *o)
{
    json_t *pattern = arg_string("the pattern", o->args[0]), *body, *doc;
    char *shown, *matched, *inval;
    int rc;

    if (!pattern)
        return ADMIN_EXIT_USAGE;
    body = json_pack("{s:o,s:b}", "pattern", pattern, "dry_run", o->dry_run);
    rc = admin_http_call_json(h, "POST", "/api/invalidate/pattern", body, &doc);
    json_decref(body);
    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
        json_decref(doc);
        return ADMIN_EXIT_OK;
    }
    shown = admin_fmt_display(o->args[0], strlen(o->args[0]));
    matched = admin_fmt_json_text(doc, "matched");
    inval = admin_fmt_json_text(doc, "invalidated");
    if (o->dry_run)
        printf("dry run: %s %s '%s'; nothing invalidated\n", matched ? matched : "?",
               matched && strcmp(matched, "1") == 0 ? "key matches" : "keys match", shown);
    else
        printf("%s %s '%s'; invalidated %s\n", matched ? matched : "?",
               matched && strcmp(matched, "1") == 0 ? "key matches" : "keys match", shown,
               inval ? inval : "?");
    free(inval);
    free(matched);
    free(shown);
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

int admin_ops_preview(admin_http *h, const admin_opts *o)
{
    char *query = NULL, *path, *shown;
    json_t *doc, *sample;
    long long matched;
    size_t n;
    int rc;

    admin_cache_query_add(&query, "pattern", o->args[0]);
    if (o->limit > 0) {
        char lim[32];
        snprintf(lim, sizeof lim, "%ld", o->limit);
        admin_cache_query_add(&query, "limit", lim);
    }
    path = admin_fmt_xasprintf("/api/invalidate/preview%s", query);
    free(query);
    rc = admin_http_call_json(h, "GET", path, NULL, &doc);
    free(path);
    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
        json_decref(doc);
        return ADMIN_EXIT_OK;
    }
    shown = admin_fmt_display(o->args[0], strlen(o->args[0]));
    sample = json_object_get(doc, "sample");
    n = json_array_size(sample);
    if (admin_fmt_json_int(doc, "matched", &matched))
        printf("%lld %s '%s'", matched, plural(matched, "key matches", "keys match"), shown);
    else
        printf("? keys match '%s'", shown);
    if (n == 0)
        printf("\n");
    else if (admin_fmt_json_int(doc, "matched", &matched) && (long long)n >= matched)
        printf(":\n");
    else
        printf("; a sample of %zu:\n", n);
    for (size_t i = 0; i < n; i++) {
        char *k = admin_fmt_json_key(json_array_get(sample, i));
        printf("  %s\n", k ? k : "?");
        free(k);
    }
    free(shown);
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

/* ---- metrics ---- */

/* "label           value", the value column at 17 (or one space after a
 * longer label); frees value, prints "-" when it is NULL. */
static void metric_row(const char *label, char *value)
{
    admin_fmt_pad(label, 16);
    if (admin_fmt_width(label) >= 16)
        putchar(' ');
    printf("%s\n", value ? value : "-");
    free(value);
}

static char *metric_int(const json_t *doc, const char *field)
{
    long long v;
    return admin_fmt_json_int(doc, field, &v) ? admin_fmt_xasprintf("%lld", v) : NULL;
}

static bool metric_known(const char *name)
{
    static const char *const known[] = {
        "hits", "misses", "hit_rate", "requests", "entries", "bytes", "evictions",
        "expirations", "invalidations", "uptime_seconds", "latency", NULL,
    };
    for (size_t i = 0; known[i]; i++)
        if (strcmp(known[i], name) == 0)
            return true;
    return false;
}

static char *latency_cell(const json_t *op, const char *field)
{
    double v;
    return admin_fmt_json_number(op, field, &v) ? admin_fmt_xasprintf("%.3f", v)
                                                : admin_fmt_xstrdup("-");
}

static void print_latency(const json_t *latency)
{
    static const char *const cols[] = {"p50_ms", "p90_ms", "p95_ms", "p99_ms"};
    const char *name;
    json_t *op;
    size_t wname = 9;

    json_object_foreach((json_t *)latency, name, op) {
        char *shown = admin_fmt_display(name, strlen(name));
        if (admin_fmt_width(shown) > wname)
            wname = admin_fmt_width(shown);
        free(shown);
    }
    printf("\n");
    admin_fmt_pad("OPERATION", wname);
    printf("  %10s  %9s  %9s  %9s  %9s\n", "COUNT", "P50 ms", "P90 ms", "P95 ms", "P99 ms");
    json_object_foreach((json_t *)latency, name, op) {
        char *shown = admin_fmt_display(name, strlen(name));
        char *count = metric_int(op, "count");
        admin_fmt_pad(shown, wname);
        printf("  %10s", count ? count : "-");
        for (size_t i = 0; i < 4; i++) {
            char *cell = latency_cell(op, cols[i]);
            printf("  %9s", cell);
            free(cell);
        }
        printf("\n");
        free(count);
        free(shown);
    }
}

int admin_ops_metrics(admin_http *h, const admin_opts *o)
{
    json_t *doc, *latency, *v;
    double rate, hits, misses, bytes, uptime;
    const char *name;
    int rc = admin_http_call_json(h, "GET", "/api/metrics", NULL, &doc);

    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
        json_decref(doc);
        return ADMIN_EXIT_OK;
    }
    metric_row("hits", metric_int(doc, "hits"));
    metric_row("misses", metric_int(doc, "misses"));
    if (admin_fmt_json_number(doc, "hit_rate", &rate))
        metric_row("hit rate", admin_fmt_xasprintf("%.1f%%", rate * 100));
    else if (admin_fmt_json_number(doc, "hits", &hits) &&
             admin_fmt_json_number(doc, "misses", &misses) && hits + misses > 0)
        metric_row("hit rate", admin_fmt_xasprintf("%.1f%%", 100 * hits / (hits + misses)));
    else
        metric_row("hit rate", NULL);
    metric_row("requests", metric_int(doc, "requests"));
    metric_row("entries", metric_int(doc, "entries"));
    if (admin_fmt_json_number(doc, "bytes", &bytes)) {
        char *human = admin_fmt_bytes(bytes);
        metric_row("bytes", admin_fmt_xasprintf("%s (%.0f)", human, bytes));
        free(human);
    } else {
        metric_row("bytes", NULL);
    }
    metric_row("evictions", metric_int(doc, "evictions"));
    metric_row("expirations", metric_int(doc, "expirations"));
    metric_row("invalidations", metric_int(doc, "invalidations"));
    metric_row("uptime", admin_fmt_json_number(doc, "uptime_seconds", &uptime)
                             ? admin_fmt_duration(uptime)
                             : NULL);
    /* Fields newer servers add: shown as they come, when they are scalars. */
    json_object_foreach(doc, name, v) {
        char *text, *label;
        if (metric_known(name) || !(text = admin_fmt_json_text(doc, name)))
            continue;
        label = admin_fmt_display(name, strlen(name));
        metric_row(label, text);
        free(label);
    }
    latency = json_object_get(doc, "latency");
    if (json_is_object(latency) && json_object_size(latency) > 0)
        print_latency(latency);
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

/* ---- health ---- */

/* GET path; *doc gets the body when it is a JSON object (any status). */
static int fetch(admin_http *h, const char *path, long *status, json_t **doc)
{
    admin_http_response r;
    int rc = admin_http_request(h, "GET", path, NULL, 0, NULL, &r);

    *doc = NULL;
    *status = 0;
    if (rc == ADMIN_EXIT_OK) {
        json_t *d = json_loadb(r.body, r.len, 0, NULL);
        *status = r.status;
        if (json_is_object(d))
            *doc = d;
        else
            json_decref(d);
        if (r.status < 200 || r.status > 299) {
            /* A not-ready /ready is an answer, not an error to report. */
            if (!(r.status == 503 && *doc && json_object_get(*doc, "ready")))
                admin_http_fail(&r, "GET", path);
        } else if (!*doc) {
            admin_fmt_error("unexpected response from %s: not a JSON object", path);
        }
    }
    admin_http_response_free(&r);
    return rc;
}

/* "ok", or "degraded (error=timeout, latency_ms=3)" for a dependency. */
static char *dependency_text(const json_t *dep)
{
    char *status, *out;
    const char *name;
    json_t *v;
    bool first = true;

    if (!json_is_object(dep)) {
        char *s = json_is_string(dep)
                      ? admin_fmt_display(json_string_value(dep), json_string_length(dep))
                      : NULL;
        return s ? s : admin_fmt_xstrdup("?");
    }
    status = admin_fmt_json_text(dep, "status");
    out = admin_fmt_xstrdup(status ? status : "?");
    free(status);
    json_object_foreach((json_t *)dep, name, v) {
        char *text, *next, *label;
        if (strcmp(name, "status") == 0 || !(text = admin_fmt_json_text(dep, name)))
            continue;
        label = admin_fmt_display(name, strlen(name));
        next = admin_fmt_xasprintf("%s%s%s=%s", out, first ? " (" : ", ", label, text);
        free(label);
        free(text);
        free(out);
        out = next;
        first = false;
    }
    if (!first) {
        char *next = admin_fmt_xasprintf("%s)", out);
        free(out);
        out = next;
    }
    return out;
}

int admin_ops_health(admin_http *h, const admin_opts *o)
{
    json_t *health, *ready, *deps, *v, *flag;
    long hstatus, rstatus;
    double uptime;
    const char *name;
    bool is_ready;
    int rc = fetch(h, "/health", &hstatus, &health);

    if (rc != ADMIN_EXIT_OK)
        return rc;
    rc = fetch(h, "/ready", &rstatus, &ready);
    if (rc != ADMIN_EXIT_OK) {
        json_decref(health);
        return rc;
    }
    flag = ready ? json_object_get(ready, "ready") : NULL;
    is_ready = rstatus >= 200 && rstatus <= 299 && !json_is_false(flag);

    if (o->json) {
        json_t *out = json_pack("{s:s,s:O?,s:I,s:O?,s:I,s:b}", "node", h->base, "health",
                                health, "health_status", (json_int_t)hstatus, "ready",
                                ready, "ready_status", (json_int_t)rstatus, "ok",
                                is_ready && hstatus >= 200 && hstatus <= 299);
        admin_fmt_json_print(out);
        json_decref(out);
    } else {
        char *text;
        metric_row("node", admin_fmt_xstrdup(h->base));
        text = admin_fmt_json_text(health, "status");
        metric_row("status", text ? text : admin_fmt_xasprintf("HTTP %ld", hstatus));
        metric_row("version", admin_fmt_json_text(health, "version"));
        metric_row("uptime", admin_fmt_json_number(health, "uptime_seconds", &uptime)
                                 ? admin_fmt_duration(uptime)
                                 : NULL);
        json_object_foreach(health, name, v) {
            char *label;
            if (strcmp(name, "status") == 0 || strcmp(name, "version") == 0 ||
                strcmp(name, "uptime_seconds") == 0 || !(text = admin_fmt_json_text(health, name)))
                continue;
            label = admin_fmt_display(name, strlen(name));
            metric_row(label, text);
            free(label);
        }
        metric_row("ready", admin_fmt_xasprintf("%s (HTTP %ld)", is_ready ? "yes" : "no",
                                                rstatus));
        deps = ready ? json_object_get(ready, "dependencies") : NULL;
        if (json_is_object(deps)) {
            printf("dependencies:\n");
            json_object_foreach(deps, name, v) {
                char *label = admin_fmt_display(name, strlen(name));
                char *indented = admin_fmt_xasprintf("  %s", label);
                metric_row(indented, dependency_text(v));
                free(indented);
                free(label);
            }
        }
    }
    json_decref(health);
    json_decref(ready);
    return is_ready && hstatus >= 200 && hstatus <= 299 ? ADMIN_EXIT_OK : ADMIN_EXIT_FAIL;
}

/* ---- members ---- */

static const char *member_field(const json_t *m, const char *field)
{
    const char *s = json_string_value(json_object_get(m, field));
    return s && *s ? s : "-";
}

int admin_ops_members(admin_http *h, const admin_opts *o)
{
    json_t *doc, *members, *m;
    size_t i;
    int rc = admin_http_call_json(h, "GET", "/api/cluster/members", NULL, &doc);

    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
        json_decref(doc);
        return ADMIN_EXIT_OK;
    }
    members = json_object_get(doc, "members");
    printf("%-24s %-8s %-22s %-22s %-10s %s\n", "NAME", "STATE", "GOSSIP", "HTTP", "ZONE", "INCARNATION");
    json_array_foreach(members, i, m) {
        char *name = admin_fmt_display(member_field(m, "name"), strlen(member_field(m, "name")));
        json_t *self = json_object_get(m, "self");
        printf("%-24s %-8s %-22s %-22s %-10s %" JSON_INTEGER_FORMAT "%s\n", name, member_field(m, "state"),
               member_field(m, "gossip"), member_field(m, "http"), member_field(m, "zone"),
               json_integer_value(json_object_get(m, "incarnation")), json_is_true(self) ? "  (this node)" : "");
        free(name);
    }
    json_decref(doc);
    return ADMIN_EXIT_OK;
}

/* ---- ring ---- */

/* A member field made safe for a terminal; "-" when empty or absent. */
static char *ring_field(const json_t *m, const char *field)
{
    const char *s = member_field(m, field);
    return admin_fmt_display(s, strlen(s));
}

static void ring_print_owners(const json_t *doc)
{
    json_t *owners = json_object_get(doc, "owners"), *v;
    char *key = admin_fmt_json_key(doc);
    size_t i;

    metric_row("key", key);
    printf("owners:\n");
    json_array_foreach(owners, i, v) {
        const char *s = json_string_value(v);
        char *name = admin_fmt_display(s ? s : "?", s ? strlen(s) : 1);
        printf("  %s%s\n", name, i == 0 ? "  (primary)" : "");
        free(name);
    }
}

int admin_ops_ring(admin_http *h, const admin_opts *o)
{
    json_t *doc, *nodes, *m;
    char *path, *esc = NULL;
    const char *self;
    double balance;
    long long replicas, configured, members, zones;
    size_t i, wname = 4, wzone = 4, wpeer = 4, whttp = 4;
    int rc;

    if (o->key) {
        esc = admin_http_escape(o->key, strlen(o->key));
        path = admin_fmt_xasprintf("/api/cluster/ring?key=%s", esc);
    } else {
        path = admin_fmt_xstrdup("/api/cluster/ring");
    }
    rc = admin_http_call_json(h, "GET", path, NULL, &doc);
    free(path);
    free(esc);
    if (rc != ADMIN_EXIT_OK)
        return rc;
    if (o->json) {
        admin_fmt_json_print(doc);
        json_decref(doc);
        return ADMIN_EXIT_OK;
    }
    metric_row("version", metric_int(doc, "version"));
    if (admin_fmt_json_int(doc, "replicas", &replicas) &&
        admin_fmt_json_int(doc, "replicas_configured", &configured) && configured != replicas)
        metric_row("replicas", admin_fmt_xasprintf("%lld (--replicas %lld, capped by the members)", replicas,
                                                   configured));
    else
        metric_row("replicas", metric_int(doc, "replicas"));
    if (admin_fmt_json_int(doc, "members", &members) && admin_fmt_json_int(doc, "zones", &zones))
        metric_row("members", admin_fmt_xasprintf("%lld in %lld %s", members, zones, plural(zones, "zone", "zones")));
    metric_row("balance", admin_fmt_json_number(doc, "balance", &balance)
                              ? admin_fmt_xasprintf("%.3f (busiest share / mean; 1 = even)", balance)
                              : NULL);
    nodes = json_object_get(doc, "nodes");
    /* Columns as wide as their widest cell: names and addresses vary a lot. */
    json_array_foreach(nodes, i, m) {
        size_t *w[] = {&wname, &wzone, &wpeer, &whttp};
        const char *f[] = {"name", "zone", "peer", "http"};
        for (size_t k = 0; k < 4; k++) {
            char *s = ring_field(m, f[k]);
            if (admin_fmt_width(s) > *w[k])
                *w[k] = admin_fmt_width(s);
            free(s);
        }
    }
    printf("\n");
    admin_fmt_pad("NAME", wname + 2);
    admin_fmt_pad("ZONE", wzone + 2);
    admin_fmt_pad("PEER", wpeer + 2);
    admin_fmt_pad("HTTP", whttp + 2);
    printf("%7s\n", "SHARE");
    self = json_string_value(json_object_get(doc, "self"));
    json_array_foreach(nodes, i, m) {
        char *cells[4] = {ring_field(m, "name"), ring_field(m, "zone"), ring_field(m, "peer"),
                          ring_field(m, "http")};
        size_t widths[4] = {wname, wzone, wpeer, whttp};
        const char *name = json_string_value(json_object_get(m, "name"));
        double share;
        for (size_t k = 0; k < 4; k++) {
            admin_fmt_pad(cells[k], widths[k] + 2);
            free(cells[k]);
        }
        if (admin_fmt_json_number(m, "share", &share))
            printf("%6.2f%%", share * 100);
        else
            printf("%7s", "-");
        printf("%s%s\n", json_is_true(json_object_get(m, "suspect")) ? "  suspect" : "",
               self && name && strcmp(self, name) == 0 ? "  (this node)" : "");
    }
    if (o->key) {
        printf("\n");
        ring_print_owners(doc);
    }
    json_decref(doc);
    return ADMIN_EXIT_OK;
}
