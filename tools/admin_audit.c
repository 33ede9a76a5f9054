#include "tools/admin_audit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/admin_cache.h"
#include "tools/admin_fmt.h"

/* What a record acted on: its keys (and how many in all), or its pattern. */
static char *audit_target(const json_t *rec)
{
    const char *pattern = json_string_value(json_object_get(rec, "pattern"));
    if (pattern) {
        bool dry = json_is_true(json_object_get(rec, "dry_run"));
        return admin_fmt_xasprintf("%s%s", pattern, dry ? " (dry run)" : "");
    }
    json_t *keys = json_object_get(rec, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0) return admin_fmt_xstrdup("-");
    char *out = admin_fmt_xstrdup("");
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        char *next = admin_fmt_xasprintf("%s%s%s", out, i ? " " : "", json_string_value(k) ? json_string_value(k) : "?");
        free(out);
        out = next;
    }
    json_int_t total = json_integer_value(json_object_get(rec, "key_count"));
    if (total > (json_int_t)json_array_size(keys)) {
        char *next = admin_fmt_xasprintf("%s (+%" JSON_INTEGER_FORMAT " more)", out,
                                         total - (json_int_t)json_array_size(keys));
        free(out);
        out = next;
    }
    return out;
}

/* A field made safe for a terminal ("-" when absent); malloc'd. */
static char *audit_field(const json_t *rec, const char *name)
{
    char *s = admin_fmt_json_text(rec, name);
    return s ? s : admin_fmt_xstrdup("-");
}

static void audit_print(const json_t *records)
{
    printf("%-24s %-12s %-16s %-18s %-6s %-20s %-10s %s\n", "TIME", "NODE", "ACTOR", "ACTION", "STATUS", "RESULT",
           "COUNT", "TARGET");
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec) {
        char count[48] = "-";
        json_t *m = json_object_get(rec, "matched"), *inv = json_object_get(rec, "invalidated");
        if (json_is_integer(m) && json_is_integer(inv))
            snprintf(count, sizeof count, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, json_integer_value(inv),
                     json_integer_value(m));
        else if (json_is_integer(inv))
            snprintf(count, sizeof count, "%" JSON_INTEGER_FORMAT, json_integer_value(inv));
        char *target = audit_target(rec);
        char *shown = admin_fmt_display(target, strlen(target));
        char *when = audit_field(rec, "time"), *node = audit_field(rec, "node"), *actor = audit_field(rec, "actor");
        char *action = audit_field(rec, "action"), *status = audit_field(rec, "status");
        char *result = audit_field(rec, "result");
        printf("%-24s %-12s %-16s %-18s %-6s %-20s %-10s %s\n", when, node, actor, action, status, result, count,
               shown);
        free(when);
        free(node);
        free(actor);
        free(action);
        free(status);
        free(result);
        free(shown);
        free(target);
    }
}

int admin_audit(admin_http *h, const admin_opts *o)
{
    char *cursor = o->cursor ? admin_fmt_xstrdup(o->cursor) : NULL;
    json_t *all = json_array();
    int rc = ADMIN_EXIT_OK;
    for (;;) {
        char *query = NULL;
        if (o->since) admin_cache_query_add(&query, "since", o->since);
        if (o->until) admin_cache_query_add(&query, "until", o->until);
        if (o->action) admin_cache_query_add(&query, "action", o->action);
        if (o->actor) admin_cache_query_add(&query, "actor", o->actor);
        if (cursor) admin_cache_query_add(&query, "cursor", cursor);
        if (o->limit > 0) {
            char lim[32];
            snprintf(lim, sizeof lim, "%ld", o->limit > 1000 ? 1000 : o->limit);
            admin_cache_query_add(&query, "limit", lim);
        }
        char *path = admin_fmt_xasprintf("/api/audit%s", query ? query : "");
        free(query);
        json_t *doc;
        rc = admin_http_call_json(h, "GET", path, NULL, &doc);
        if (rc != ADMIN_EXIT_OK) {
            free(path);
            break;
        }
        json_t *records = json_object_get(doc, "records");
        if (!json_is_array(records)) {
            admin_fmt_error("unexpected response from %s: no \"records\" array", path);
            json_decref(doc);
            free(path);
            rc = ADMIN_EXIT_FAIL;
            break;
        }
        free(path);
        const char *next_text = json_string_value(json_object_get(doc, "next"));
        char *next = next_text ? admin_fmt_xstrdup(next_text) : NULL;
        if (!o->all) {
            if (o->json) admin_fmt_json_print(doc);
            else {
                audit_print(records);
                if (next) admin_fmt_error("more records: run again with --cursor %s (or use --all)", next);
            }
            json_decref(doc);
            free(next);
            break;
        }
        json_array_extend(all, records);
        json_decref(doc);
        free(cursor);
        cursor = next;
        if (!cursor) {
            if (o->json) {
                json_t *out = json_pack("{s:O,s:n}", "records", all, "next");
                admin_fmt_json_print(out);
                json_decref(out);
            } else {
                audit_print(all);
            }
            break;
        }
    }
    free(cursor);
    json_decref(all);
    return rc;
}
