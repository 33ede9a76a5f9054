/* dcache-admin: the key/value commands. See admin_cache.h. */
#include "autoconfig.h"

#include "tools/admin_cache.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/admin_fmt.h"

char *admin_cache_path(const char *key)
{
    char *esc, *path;

    /* "keys" would collide with the listing endpoint /api/cache/keys:
     * encode its first byte so a server that routes on the raw path
     * sends it to the key route (decoding gives back "keys"). */
    if (strcmp(key, "keys") == 0)
        return admin_fmt_xstrdup("/api/cache/%6Beys");
    esc = admin_http_escape(key, strlen(key));
    path = admin_fmt_xasprintf("/api/cache/%s", esc);
    free(esc);
    return path;
}

void admin_cache_query_add(char **query, const char *name, const char *value)
{
    char *esc = admin_http_escape(value, strlen(value));
    char *q = admin_fmt_xasprintf("%s%c%s=%s", *query ? *query : "", *query ? '&' : '?',
                                  name, esc);
    free(esc);
    free(*query);
    *query = q;
}

/* A string field holding arbitrary bytes: "name" when UTF-8, else
 * "name_base64". */
static void set_bytes(json_t *obj, const char *name, const void *bytes, size_t len)
{
    if (admin_fmt_utf8_valid(bytes, len)) {
        json_object_set_new(obj, name, json_stringn(bytes, len));
    } else {
        char *field = admin_fmt_xasprintf("%s_base64", name);
        char *b = admin_fmt_base64_encode(bytes, len);
        json_object_set_new(obj, field, json_string(b));
        free(b);
        free(field);
    }
}

static json_t *header_or_null(const admin_http_response *r, const char *name)
{
    const char *v = admin_http_header(r, name);
    return v && admin_fmt_utf8_valid(v, strlen(v)) ? json_string(v) : json_null();
}

/* Remaining TTL from "Cache-Control: ..., max-age=N": N, or -1 when the
 * header carries no max-age (the entry does not expire). */
static long long ttl_from_headers(const admin_http_response *r)
{
    const char *cc = admin_http_header(r, "Cache-Control");
    const char *p = cc ? strcasestr(cc, "max-age=") : NULL;
    if (!p) {
        const char *t = admin_http_header(r, "X-Cache-TTL");
        return t ? strtoll(t, NULL, 10) : -1;
    }
    return strtoll(p + 8, NULL, 10);
}

static int print_get_json(const char *key, const admin_http_response *r)
{
    json_t *out = json_object();
    const char *etag = admin_http_header(r, "ETag");
    const char *version = admin_http_header(r, "X-Cache-Version");

    set_bytes(out, "key", key, strlen(key));
    set_bytes(out, "value", r->body, r->len);
    json_object_set_new(out, "content_type", header_or_null(r, "Content-Type"));
    if (etag) {
        size_t n = strlen(etag);
        if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"')
            json_object_set_new(out, "etag", json_stringn(etag + 1, n - 2));
        else
            json_object_set_new(out, "etag", header_or_null(r, "ETag"));
    } else {
        json_object_set_new(out, "etag", json_null());
    }
    json_object_set_new(out, "ttl", json_integer(ttl_from_headers(r)));
    json_object_set_new(out, "cache", header_or_null(r, "X-Cache"));
    json_object_set_new(out, "version", version ? json_string(version) : json_null());
    json_object_set_new(out, "size", json_integer((json_int_t)r->len));
    admin_fmt_json_print(out);
    json_decref(out);
    return ADMIN_EXIT_OK;
}

int admin_cache_get(admin_http *h, const admin_opts *o)
{
    const char *key = o->args[0];
    char *path = admin_cache_path(key);
    admin_http_response r;
    int rc = admin_http_request(h, "GET", path, NULL, 0, NULL, &r);

    if (rc == ADMIN_EXIT_OK) {
        if (r.status < 200 || r.status > 299)
            rc = admin_http_fail(&r, "GET", path);
        else if (o->json)
            rc = print_get_json(key, &r);
        else if (r.len && fwrite(r.body, 1, r.len, stdout) != r.len)
            rc = ADMIN_EXIT_FAIL; /* reported by main when it flushes */
    }
    admin_http_response_free(&r);
    free(path);
    return rc;
}

/* Read a whole stream. Returns false on a read error (errno set). */
static bool read_all(FILE *f, char **out, size_t *out_len)
{
    size_t cap = 65536, len = 0;
    char *buf = admin_fmt_xmalloc(cap);

    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                free(buf);
                return false;
            }
            break;
        }
        if (len == cap) {
            if (cap > SIZE_MAX / 2) {
                free(buf);
                errno = ENOMEM;
                return false;
            }
            cap *= 2;
            buf = admin_fmt_xrealloc(buf, cap);
        }
    }
    *out = buf;
    *out_len = len;
    return true;
}

/* The value to store, from VALUE, --file or stdin. Returns an exit code;
 * on success *value is malloc'd. */
static int put_value(const admin_opts *o, char **value, size_t *len)
{
    const char *arg = o->nargs > 1 ? o->args[1] : NULL;
    FILE *f;

    if (o->file && arg) {
        admin_fmt_error("put: give the value either as VALUE or with --file, not both");
        return ADMIN_EXIT_USAGE;
    }
    if (arg && strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        *value = admin_fmt_xmalloc(*len + 1);
        memcpy(*value, arg, *len + 1);
        return ADMIN_EXIT_OK;
    }
    if (o->file && strcmp(o->file, "-") != 0) {
        f = fopen(o->file, "rb");
        if (!f) {
            admin_fmt_error("cannot open %s: %s", o->file, strerror(errno));
            return ADMIN_EXIT_FAIL;
        }
        if (!read_all(f, value, len)) {
            admin_fmt_error("cannot read %s: %s", o->file, strerror(errno));
            fclose(f);
            return ADMIN_EXIT_FAIL;
        }
        fclose(f);
        return ADMIN_EXIT_OK;
    }
    if (!arg && !o->file && isatty(STDIN_FILENO)) {
        admin_fmt_error("put: no value: give VALUE, --file PATH, or pipe it on stdin "
                        "(VALUE '-' reads stdin)");
        return ADMIN_EXIT_USAGE;
    }
    if (!read_all(stdin, value, len)) {
        admin_fmt_error("cannot read stdin: %s", strerror(errno));
        return ADMIN_EXIT_FAIL;
    }
    return ADMIN_EXIT_OK;
}

int admin_cache_put(admin_http *h, const admin_opts *o)
{
    const char *key = o->args[0];
    char *value = NULL, *path, *query = NULL, *url;
    size_t len = 0;
    admin_http_response r;
    json_t *doc;
    int rc = put_value(o, &value, &len);

    if (rc != ADMIN_EXIT_OK)
        return rc;
    path = admin_cache_path(key);
    if (o->has_ttl) {
        char ttl[32];
        snprintf(ttl, sizeof ttl, "%lld", o->ttl);
        admin_cache_query_add(&query, "ttl", ttl);
    }
    url = admin_fmt_xasprintf("%s%s", path, query ? query : "");
    rc = admin_http_request(h, "PUT", url, value, len,
                            o->content_type ? o->content_type : "application/octet-stream", &r);
    free(value);
    if (rc == ADMIN_EXIT_OK) {
        if (r.status < 200 || r.status > 299) {
            rc = admin_http_fail(&r, "PUT", path);
        } else if (!(doc = admin_http_json(&r, path))) {
            rc = ADMIN_EXIT_FAIL;
        } else if (o->json) {
            admin_fmt_json_print(doc);
            json_decref(doc);
        } else {
            char *shown = admin_fmt_display(key, strlen(key));
            char *version = admin_fmt_json_text(doc, "version");
            long long ttl;
            printf("stored %s (version %s, ttl ", shown, version ? version : "?");
            if (!admin_fmt_json_int(doc, "ttl", &ttl))
                printf("?)\n");
            else if (ttl <= 0)
                printf("none)\n");
            else
                printf("%llds)\n", ttl);
            free(version);
            free(shown);
            json_decref(doc);
        }
    }
    admin_http_response_free(&r);
    free(url);
    free(query);
    free(path);
    return rc;
}

int admin_cache_del(admin_http *h, const admin_opts *o)
{
    char *path = admin_cache_path(o->args[0]);
    json_t *doc;
    int rc = admin_http_call_json(h, "DELETE", path, NULL, &doc);

    if (rc == ADMIN_EXIT_OK) {
        json_t *d = json_object_get(doc, "deleted");
        if (o->json)
            admin_fmt_json_print(doc);
        else
            printf("deleted: %s\n", json_is_boolean(d) ? (json_is_true(d) ? "yes" : "no") : "?");
        json_decref(doc);
    }
    free(path);
    return rc;
}

/* ---- keys ---- */

/* A set of listed keys, to drop the duplicates a cursor walk may return
 * while the cluster changes underneath it. Open addressing; each entry is
 * an owned copy of a tag byte ('k' for "key", 'b' for "key_base64")
 * followed by the key's bytes. */
typedef struct key_set {
    char **keys;
    size_t *lens;
    size_t cap, count;
} key_set;

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Insert an owned entry; returns false (and frees p) when already there. */
static bool key_set_insert(key_set *s, char *p, size_t n)
{
    size_t i;
    if (s->count * 2 >= s->cap) {
        key_set old = *s;
        s->cap = old.cap ? old.cap * 2 : 1024;
        s->keys = admin_fmt_xmalloc(s->cap * sizeof *s->keys);
        s->lens = admin_fmt_xmalloc(s->cap * sizeof *s->lens);
        memset(s->keys, 0, s->cap * sizeof *s->keys);
        s->count = 0;
        for (i = 0; i < old.cap; i++)
            if (old.keys[i])
                key_set_insert(s, old.keys[i], old.lens[i]);
        free(old.keys);
        free(old.lens);
    }
    for (i = hash_bytes(p, n) & (s->cap - 1); s->keys[i]; i = (i + 1) & (s->cap - 1)) {
        if (s->lens[i] == n && memcmp(s->keys[i], p, n) == 0) {
            free(p);
            return false;
        }
    }
    s->keys[i] = p;
    s->lens[i] = n;
    s->count++;
    return true;
}

/* True when the listed item was not seen before. Items without a key
 * string are kept (and shown as "?"). */
static bool key_set_add_item(key_set *s, const json_t *item)
{
    const json_t *k = json_is_object(item) ? json_object_get(item, "key") : item;
    char tag = 'k';
    char *copy;
    size_t n;

    if (!json_is_string(k)) {
        k = json_is_object(item) ? json_object_get(item, "key_base64") : NULL;
        tag = 'b';
    }
    if (!json_is_string(k))
        return true;
    n = json_string_length(k);
    copy = admin_fmt_xmalloc(n + 1);
    copy[0] = tag;
    memcpy(copy + 1, json_string_value(k), n);
    return key_set_insert(s, copy, n + 1);
}

/* True when the cursor was not returned before (a loop would never end). */
static bool key_set_add_cursor(key_set *s, const char *cursor)
{
    size_t n = strlen(cursor);
    char *copy = admin_fmt_xmalloc(n + 1);
    memcpy(copy, cursor, n + 1);
    return key_set_insert(s, copy, n);
}

static void key_set_free(key_set *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->keys[i]);
    free(s->keys);
    free(s->lens);
}

static void print_keys_table(const json_t *items)
{
    size_t n = json_array_size(items), wkey = 3, wsize = 4;
    char **cells = admin_fmt_xmalloc(3 * (n ? n : 1) * sizeof *cells);

    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(items, i);
        long long size, ttl;
        char *key = admin_fmt_json_key(it);
        cells[3 * i] = key ? key : admin_fmt_xstrdup("?");
        cells[3 * i + 1] = admin_fmt_json_int(it, "size", &size)
                               ? admin_fmt_xasprintf("%lld", size)
                               : admin_fmt_xstrdup("?");
        if (!admin_fmt_json_int(it, "ttl", &ttl))
            cells[3 * i + 2] = admin_fmt_xstrdup("?");
        else if (ttl < 0)
            cells[3 * i + 2] = admin_fmt_xstrdup("none");
        else
            cells[3 * i + 2] = admin_fmt_xasprintf("%llds", ttl);
        if (admin_fmt_width(cells[3 * i]) > wkey)
            wkey = admin_fmt_width(cells[3 * i]);
        if (strlen(cells[3 * i + 1]) > wsize)
            wsize = strlen(cells[3 * i + 1]);
    }
    admin_fmt_pad("KEY", wkey);
    printf("  %*s  TTL\n", (int)wsize, "SIZE");
    for (size_t i = 0; i < n; i++) {
        admin_fmt_pad(cells[3 * i], wkey);
        printf("  %*s  %s\n", (int)wsize, cells[3 * i + 1], cells[3 * i + 2]);
        free(cells[3 * i]);
        free(cells[3 * i + 1]);
        free(cells[3 * i + 2]);
    }
    free(cells);
}

int admin_cache_keys(admin_http *h, const admin_opts *o)
{
    const char *pattern = o->nargs > 0 ? o->args[0] : NULL;
    char *cursor = o->cursor ? admin_fmt_xstrdup(o->cursor) : NULL;
    json_t *all = json_array();
    key_set seen = {0}, cursors = {0};
    int rc = ADMIN_EXIT_OK;

    if (cursor)
        key_set_add_cursor(&cursors, cursor);

    for (;;) {
        char *query = NULL, *path, *next;
        json_t *doc, *items;

        if (pattern)
            admin_cache_query_add(&query, "pattern", pattern);
        if (cursor)
            admin_cache_query_add(&query, "cursor", cursor);
        if (o->limit > 0) {
            char lim[32];
            snprintf(lim, sizeof lim, "%ld", o->limit);
            admin_cache_query_add(&query, "limit", lim);
        }
        path = admin_fmt_xasprintf("/api/cache/keys%s", query ? query : "");
        free(query);
        rc = admin_http_call_json(h, "GET", path, NULL, &doc);
        if (rc != ADMIN_EXIT_OK) {
            free(path);
            break;
        }
        items = json_object_get(doc, "keys");
        if (!json_is_array(items)) {
            admin_fmt_error("unexpected response from %s: no \"keys\" array", path);
            json_decref(doc);
            free(path);
            rc = ADMIN_EXIT_FAIL;
            break;
        }
        free(path);
        next = admin_fmt_json_text(doc, "cursor");
        if (!next)
            next = admin_fmt_xstrdup("0");

        if (!o->all) {
            if (o->json) {
                admin_fmt_json_print(doc);
            } else {
                print_keys_table(items);
                if (strcmp(next, "0") != 0)
                    admin_fmt_error("more keys: run again with --cursor %s (or use --all)",
                                    next);
            }
            json_decref(doc);
            free(next);
            break;
        }
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *it = json_array_get(items, i);
            if (key_set_add_item(&seen, it))
                json_array_append(all, it);
        }
        json_decref(doc);
        if (strcmp(next, "0") == 0) {
            free(next);
            if (o->json) {
                json_t *out = json_pack("{s:O,s:s}", "keys", all, "cursor", "0");
                admin_fmt_json_print(out);
                json_decref(out);
            } else {
                print_keys_table(all);
            }
            break;
        }
        if (!key_set_add_cursor(&cursors, next)) {
            admin_fmt_error("the node returned cursor %s a second time; stopping", next);
            free(next);
            rc = ADMIN_EXIT_FAIL;
            break;
        }
        free(cursor);
        cursor = next;
    }
    free(cursor);
    key_set_free(&seen);
    key_set_free(&cursors);
    json_decref(all);
    return rc;
}
