#include "http/http_request.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_request_internal.h"

/* ---------- request accessors ---------- */

http_method_t http_request_method(const http_request_t *r)
{
    return r->method;
}

const char *http_request_method_name(const http_request_t *r)
{
    return llhttp_method_name((llhttp_method_t)r->llhttp_method);
}

/* Splits the request target into path and query; an absolute-form target
 * (http://host/path) is reduced to its path. */
static void http_request_target(const http_request_t *r, const char **path, size_t *plen, const char **query,
                                size_t *qlen)
{
    const char *u = r->hbuf;
    size_t n = r->url_len;
    size_t start = 0;
    if (n > 7 && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0)) {
        const char *slash = memchr(u + 8, '/', n - 8);
        start = slash ? (size_t)(slash - u) : n;
    }
    size_t end = n;
    const char *hash = memchr(u + start, '#', n - start);
    if (hash) end = (size_t)(hash - u);
    const char *q = memchr(u + start, '?', end - start);
    size_t pend = q ? (size_t)(q - u) : end;
    *path = u + start;
    *plen = pend - start;
    *query = q ? q + 1 : u + end;
    *qlen = q ? end - (pend + 1) : 0;
}

const char *http_request_path(const http_request_t *r, size_t *len)
{
    const char *p, *q;
    size_t ql;
    http_request_target(r, &p, len, &q, &ql);
    return p;
}

const char *http_request_query(const http_request_t *r, size_t *len)
{
    const char *p, *q;
    size_t pl;
    http_request_target(r, &p, &pl, &q, len);
    return q;
}

const char *http_request_header(const http_request_t *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (unsigned i = 0; i < r->nheaders; i++) {
        const http_header_ref_t *h = &r->headers[i];
        if (h->name_len == nl && h->value_off != UINT32_MAX && strncasecmp(r->hbuf + h->name_off, name, nl) == 0) {
            const char *v = r->hbuf + h->value_off;
            size_t vl = h->value_len;
            while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
            *len = vl;
            return v;
        }
    }
    *len = 0;
    return NULL;
}

const char *http_request_body(const http_request_t *r, size_t *len)
{
    *len = r->body_len;
    return r->body_len ? r->body : "";
}

uint64_t http_request_start_ns(const http_request_t *r)
{
    return r->start_ns;
}

const char *http_request_peer(const http_request_t *r)
{
    return r->peer;
}

void http_request_set_tag(http_request_t *r, int tag)
{
    r->tag = tag;
}

bool http_request_add_headers(http_request_t *r, const char *lines, size_t len)
{
    if (r->extra_len + len > HTTP_EXTRA_HEADERS_MAX) return false;
    if (r->extra_len + len > r->extra_cap) {
        char *grown = realloc(r->extra, HTTP_EXTRA_HEADERS_MAX);
        if (!grown) return false;
        r->extra = grown;
        r->extra_cap = HTTP_EXTRA_HEADERS_MAX;
    }
    memcpy(r->extra + r->extra_len, lines, len);
    r->extra_len += len;
    return true;
}

int http_request_tag(const http_request_t *r)
{
    return r->tag;
}

/* ---------- responses ---------- */

void http_respond(http_request_t *r, const http_response_t *resp)
{
    r->respond(r, resp);
}

void http_respond_json(http_request_t *r, int status, const char *json, size_t len)
{
    http_response_t resp = {.status = status, .content_type = "application/json", .body = json, .body_len = len};
    http_respond(r, &resp);
}

void http_respond_error(http_request_t *r, int status, const char *code, const char *message)
{
    char body[1024];
    size_t n = 0;
    static const char head[] = "{\"error\":\"";
    memcpy(body, head, sizeof head - 1);
    n = sizeof head - 1;
    /* Escape for JSON; messages may quote client input. */
    for (const unsigned char *m = (const unsigned char *)message; *m && n < sizeof body - 80; m++) {
        if (*m == '"' || *m == '\\') {
            body[n++] = '\\';
            body[n++] = (char)*m;
        } else if (*m < 0x20) {
            n += (size_t)snprintf(body + n, 8, "\\u%04x", *m);
        } else {
            body[n++] = (char)*m;
        }
    }
    n += (size_t)snprintf(body + n, sizeof body - n, "\",\"code\":\"%s\"}", code);
    if (n >= sizeof body) n = sizeof body - 1;
    http_respond_json(r, status, body, n);
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

void *http_request_app(const http_request_t *r)
{
    /* Like strchr: the application's state is its own to change, whatever
     * the constness of the request it reads it through (the response hook
     * gets a const one). */
    return (void *)r->app;
}
