/* redis_sub: a Redis SUBSCRIBE on one channel, on one libuv loop, kept up
 * by itself (invalidation events announced by PUBLISH: api_inbound).
 *
 * redis_uv cannot carry pub/sub (a subscribed connection's replies no longer
 * match commands), so this is a connection of its own: a libuv TCP socket,
 * commands formatted and replies parsed with hiredis's protocol functions
 * (redisFormatCommandArgv, redisReader), AUTH when a password is given,
 * then SUBSCRIBE.
 *
 * Kept up: a connection that fails, closes or does not get through AUTH and
 * SUBSCRIBE within connect_timeout_ms is dropped and tried again after a
 * backoff (backoff_min_ms, doubling up to backoff_max_ms, reset once
 * subscribed). `subscribed(ctx, again)` runs each time the subscription is
 * in effect; again is true after a loss: what was published meanwhile went
 * unheard, and the caller must act on that.
 *
 * Bounds: one reply at a time is parsed; a message larger than
 * REDIS_SUB_MESSAGE_MAX drops the connection (counted, and a gap).
 * The host is resolved with uv_getaddrinfo (the thread pool), never on the
 * loop.
 *
 * Threads: the loop's. Ownership: the creator owns it (redis_sub_close,
 * then redis_sub_free after done); it copies the config's strings.
 */
#ifndef DCACHE_REDIS_SUB_H
#define DCACHE_REDIS_SUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define REDIS_SUB_MESSAGE_MAX (1u << 20)

typedef struct redis_sub_config {
    const char *host;
    int port;
    const char *username;         /* NULL: AUTH password */
    const char *password;         /* NULL or "": no AUTH */
    const char *channel;
    uint64_t connect_timeout_ms;  /* 2000 */
    uint64_t backoff_min_ms;      /* 200 */
    uint64_t backoff_max_ms;      /* 5000 */
    void (*message)(void *ctx, const char *channel, const char *payload, size_t len);
    void (*subscribed)(void *ctx, bool again);
    void *ctx;
} redis_sub_config_t;

typedef struct redis_sub redis_sub_t;

/* Starts connecting. NULL on allocation failure. */
redis_sub_t *redis_sub_new(uv_loop_t *loop, const redis_sub_config_t *cfg);
/* True while subscribed. */
bool redis_sub_up(const redis_sub_t *s);
/* Drops the connection and closes the handles; done(arg) runs once, from
 * the loop. */
void redis_sub_close(redis_sub_t *s, void (*done)(void *arg), void *arg);
void redis_sub_free(redis_sub_t *s);

#endif
