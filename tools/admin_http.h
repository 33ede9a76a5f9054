/* dcache-admin: HTTP requests to one dcache node (libcurl).
 *
 * One admin_http per process, used from one thread. Error messages are
 * printed on stderr by these functions; callers only pass the exit code on.
 */
#ifndef DCACHE_ADMIN_HTTP_H
#define DCACHE_ADMIN_HTTP_H

#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

#include "tools/admin.h"

typedef struct admin_http {
    CURL *curl;
    char *base;       /* node URL without trailing '/', owned */
    long timeout_ms;  /* 0: none */
    char *auth;       /* "Authorization: Bearer ..." or NULL, owned */
} admin_http;

typedef struct admin_http_response {
    long status;        /* HTTP status code */
    char *body;         /* raw bytes, NUL-terminated for convenience, owned */
    size_t len;         /* body length, not counting the NUL */
    char **headers;     /* "Name: value" lines of the final response, owned */
    size_t nheaders;
} admin_http_response;

/* Check the node URL (http:// or https://) and set up libcurl. Returns
 * ADMIN_EXIT_OK or ADMIN_EXIT_USAGE (message printed). `token` may be NULL;
 * it is copied. */
int admin_http_init(admin_http *h, const char *node, long timeout_ms, const char *token);
void admin_http_free(admin_http *h);

/* Percent-encode every byte outside RFC 3986's unreserved set
 * (A-Z a-z 0-9 - . _ ~). Malloc'd result. */
char *admin_http_escape(const void *bytes, size_t len);

/* Send one request to base + path (path starts with '/', is already
 * escaped and may carry a query). `body` may be NULL for no body;
 * `content_type` is sent when non-NULL. On return *r holds the response
 * (free it with admin_http_response_free) whatever the HTTP status.
 * Returns ADMIN_EXIT_OK when a response arrived, ADMIN_EXIT_CONNECT when
 * the node could not be reached, ADMIN_EXIT_FAIL for other transport
 * errors (message printed in both cases). */
int admin_http_request(admin_http *h, const char *method, const char *path,
                       const void *body, size_t len, const char *content_type,
                       admin_http_response *r);

/* Value of a response header (case-insensitive name), or NULL. Points into r. */
const char *admin_http_header(const admin_http_response *r, const char *name);

/* Report an HTTP error response: the server's "error" and "code" fields
 * when the body is JSON, else the status and the start of the body.
 * Returns ADMIN_EXIT_FAIL. */
int admin_http_fail(const admin_http_response *r, const char *method, const char *path);

/* Parse a 2xx JSON body. Returns a new reference, or NULL after printing
 * "unexpected response" when the body is not a JSON object. */
json_t *admin_http_json(const admin_http_response *r, const char *path);

/* A request whose 2xx response is a JSON object: sends, reports errors,
 * parses. Returns ADMIN_EXIT_OK with *out set (caller decrefs), or the
 * exit code. `body` may be NULL. */
int admin_http_call_json(admin_http *h, const char *method, const char *path,
                         const json_t *body, json_t **out);

void admin_http_response_free(admin_http_response *r);

#endif
