/* http_limits: what an http_server enforces on its connections and the
 * counters of what they did. Both the server and each connection (which
 * applies most limits and bumps most counters) use these, so they sit below
 * both; http_server.h is where they are documented for users.
 *
 * Threads: http_limits_t is plain data, copied by the server at creation.
 * The counters are atomic: the loop thread writes them, any thread may read.
 */
#ifndef DCACHE_HTTP_LIMITS_H
#define DCACHE_HTTP_LIMITS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_limits {
    size_t max_header_bytes;    /* default 16 KiB */
    unsigned max_headers;       /* default 100 */
    size_t max_body_bytes;      /* used when the handler has no body_limit; default 1 MiB */
    uint64_t header_timeout_ms; /* default 10 s */
    uint64_t idle_timeout_ms;   /* default 60 s */
    size_t max_connections;     /* per server; default 10000 */
} http_limits_t;

/* The counters of one server and its connections (named for the server,
 * whose http_server_stats() hands them out). */
typedef struct http_server_stats {
    atomic_uint_fast64_t connections_accepted;
    atomic_uint_fast64_t connections_rejected;   /* over max_connections */
    atomic_int_fast64_t connections_active;
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t malformed;              /* 400 from the parser */
    atomic_uint_fast64_t header_too_large;       /* 431 */
    atomic_uint_fast64_t body_too_large;         /* 413 */
    atomic_uint_fast64_t header_timeouts;        /* 408 */
    atomic_uint_fast64_t idle_timeouts;
    atomic_int_fast64_t streams_active;          /* streamed responses open (http_stream) */
    atomic_uint_fast64_t streams_slow;           /* ... closed because the client fell behind */
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
} http_server_stats_t;

void http_limits_default(http_limits_t *l);

#endif
