/* origin_http: asynchronous HTTP GETs of an origin's values, for
 * read-through loading, on one libuv loop.
 *
 * Built on libcurl's multi interface driven by the loop
 * (curl_multi_socket_action): a uv_poll_t per socket curl asks to watch
 * and one uv_timer_t for the multi handle's timeout, so no curl call ever
 * blocks the loop on the network. Names are resolved by libcurl's
 * threaded resolver (Debian's libcurl is built with it: AsynchDNS), off
 * the loop. Connections and resolved names are kept and reused per client.
 * libcurl honours the usual proxy variables (http_proxy, https_proxy,
 * no_proxy) as it does everywhere; TLS peers are verified.
 *
 * Failing, not hanging: once origin_http_get accepted a request its
 * callback runs exactly once, from the loop and never from inside
 * origin_http_get (even a malformed URL is reported on a later turn): at
 * the latest timeout_ms after the call, by the loop's clock (resolving,
 * waiting for a connection under max_host_connections, connecting and
 * reading all count against it), or from origin_http_close. The deadline
 * is a timer of the request's own: curl's (also set) does not run while a
 * transfer waits for a connection. Redirects are answers, not followed (an origin that
 * moved is misconfigured, and following would hide it); only http and
 * https are spoken.
 *
 * Bounded: a body is read into one buffer that never holds more than
 * max_body bytes. A 2xx body larger than that (by Content-Length, or once
 * that many bytes have arrived) aborts the transfer with
 * ORIGIN_HTTP_TOO_LARGE. Any other status's body is read up to max_body
 * and cut there (the transfer stops, the status is still the answer): a
 * big error page must not turn a 404 into "too large". Headers are kept
 * only as far as the response needs them (Content-Type, Cache-Control);
 * libcurl bounds each header line (100 KiB).
 *
 * Threads: a client and every callback it makes belong to its loop's
 * thread. origin_http_global_init (which origin_http_new calls) may be
 * called from any thread; it must have run before another thread of the
 * process starts using libcurl, which is why a daemon calls it at start-up.
 *
 * Ownership: the creator owns the client: origin_http_close, run the loop
 * until `done`, then origin_http_free. The client owns each request (its
 * curl easy handle, a copy of its headers, its body buffer) from
 * origin_http_get until the callback returns, and the request's deadline
 * timer until its close callback frees the rest; the callback only
 * borrows the response. The client owns its multi handle, its timer and
 * one socket context with its uv_poll_t per socket curl watches, freed
 * from the poll's close callback. ctx is the caller's, never touched.
 */
#ifndef DCACHE_ORIGIN_HTTP_H
#define DCACHE_ORIGIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum {
    ORIGIN_HTTP_OK = 0,    /* 2xx: body, content type and freshness set */
    ORIGIN_HTTP_NOT_FOUND, /* 404 or 410: the origin says there is no such value */
    ORIGIN_HTTP_STATUS,    /* any other status (3xx are not followed; 5xx, 4xx) */
    ORIGIN_HTTP_TIMEOUT,   /* no complete answer within timeout_ms (connect included) */
    ORIGIN_HTTP_CONNECT,   /* could not resolve or connect */
    ORIGIN_HTTP_TOO_LARGE, /* a 2xx body larger than max_body: aborted while reading */
    ORIGIN_HTTP_ERROR,     /* anything else curl reports (bad URL, protocol error, out of memory) */
    ORIGIN_HTTP_SHUTDOWN,  /* the client is closing */
    ORIGIN_HTTP_RESULT_MAX
} origin_http_result_t;

/* "ok", "not_found", "status", "timeout", "connect", "too_large", "error",
 * "shutdown" (for logs and metrics labels). */
const char *origin_http_result_name(origin_http_result_t r);

/* What arrived, valid during the callback only (the client frees it after
 * the callback returns: copy what must outlive it). */
typedef struct origin_http_response {
    long status;              /* HTTP status, 0 when none arrived */
    /* OK: the whole body. NOT_FOUND and STATUS: as much as was read (at
     * most max_body; for logs). Otherwise empty. Never NULL, and followed
     * by a NUL byte that is not part of it, for parsers that want one. */
    const char *body;
    size_t len;
    /* Content-Type as sent (surrounding spaces trimmed), ctlen 0 when
     * absent or longer than 255 bytes (then dropped, not cut: a cut media
     * type would be a wrong one). Not NUL-terminated. */
    const char *content_type;
    size_t ctlen;
    /* Freshness from Cache-Control: s-maxage wins over max-age (this is a
     * shared cache); -1 when neither is present. A directive given twice
     * counts at its smaller value. */
    int64_t max_age_ms;
    /* Cache-Control: no-store, no-cache or private (with or without field
     * names: treated as the whole response): the caller must not keep it. */
    bool no_store;
} origin_http_response_t;

/* Exactly once per accepted request. May call origin_http_get and
 * origin_http_close, not origin_http_free. */
typedef void (*origin_http_cb)(void *ctx, origin_http_result_t res, const origin_http_response_t *resp);

typedef struct origin_http origin_http_t;

/* curl_global_init, once per process (pthread_once): 0, or -1 when it
 * failed (and every later call says so too). */
int origin_http_global_init(void);

/* A client on loop; at most max_host_connections connections to any one
 * host (0: no limit; transfers beyond it wait for a connection, their
 * clocks running). NULL when libcurl cannot start or memory runs out. */
origin_http_t *origin_http_new(uv_loop_t *loop, unsigned max_host_connections);

/* Starts a GET of url (http:// or https://) with the extra request headers
 * ("Name: value", NULL-terminated; may be NULL; copied), to be answered
 * within timeout_ms, reading at most max_body bytes of body.
 *
 * Returns 0 when accepted: cb(ctx, ...) then runs exactly once, later,
 * from the loop, whatever happens. Returns -1 when the request cannot even
 * start, and then cb is NOT called (the caller answers its own caller at
 * once): url or cb NULL, timeout_ms <= 0 (curl's 0 means "never"), a
 * header holding CR or LF, the client closing (origin_http_close was
 * called; a callback of the shutdown that asks again gets -1 too), or out
 * of memory. */
int origin_http_get(origin_http_t *c, const char *url, const char *const *headers, long timeout_ms,
                    size_t max_body, origin_http_cb cb, void *ctx);

/* Requests accepted and not yet answered. */
size_t origin_http_in_flight(const origin_http_t *c);

/* Fails every request in flight with ORIGIN_HTTP_SHUTDOWN, from inside
 * this call, drops every connection and closes the client's handles; then
 * done(arg) runs once, from the loop (never from inside this call).
 * Idempotent: later calls do nothing. */
void origin_http_close(origin_http_t *c, void (*done)(void *arg), void *arg);
/* After done. NULL is fine. */
void origin_http_free(origin_http_t *c);


#endif
