/* api_auth: who may call which endpoint, and how often.
 *
 * With --tokens, a request names itself with `Authorization: Bearer TOKEN`;
 * the token's role (node/core/tokens.h) must reach the endpoint's. No
 * token, or one the file does not hold: 401 `unauthorized` with
 * `WWW-Authenticate: Bearer`; a role too low: 403 `forbidden`. Without
 * --tokens every client is anonymous and may do everything (config refuses
 * that off loopback unless --allow-anonymous).
 *
 * With --rate-limit, every admitted request takes one from a token bucket:
 * the token's (by name, so reloading the file keeps it) or, for anonymous
 * clients, the client address's. An empty bucket: 429 `rate_limited` with
 * Retry-After. Health probes are never limited.
 *
 * SIGHUP reloads the tokens file (api_auth_reload): a file that does not
 * load leaves the tokens in force as they were, and says why in the log.
 *
 * Metrics carry token names, never tokens: requests, 403s and 429s per
 * name, 401s by reason, reloads. Names are kept for the process's life
 * (at most TOKENS_MAX of them; later ones are counted under "other") so a
 * counter never goes backwards across a reload.
 *
 * Ownership: main owns the api_auth_t (api_auth_init/destroy); it borrows
 * the config. Threads: api_auth_admit on any worker at once (the tokens are
 * read under a read lock, counters are atomic); api_auth_reload on the main
 * thread.
 */
#ifndef DCACHE_API_AUTH_H
#define DCACHE_API_AUTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http_request.h"
#include "node/core/config.h"
#include "node/core/ratelimit.h"
#include "node/core/sbuf.h"
#include "node/core/tokens.h"

/* One token name's counters. */
typedef struct api_auth_name {
    char name[TOKENS_NAME_MAX + 1];
    uint64_t limit_key;          /* its rate-limit bucket (ratelimit_key of the name) */
    atomic_uint_fast64_t requests, forbidden, rate_limited;
} api_auth_name_t;

typedef struct api_auth_stats {
    atomic_uint_fast64_t missing, unknown, forbidden, rate_limited, anonymous_rate_limited, reloads,
        reload_failures;
    atomic_int_fast64_t tokens;
} api_auth_stats_t;

typedef struct api_auth {
    const config_t *cfg;
    bool enabled;                 /* --tokens given */
    pthread_rwlock_t lock;        /* guards tokens, slot_of, nnames */
    tokens_t tokens;
    uint32_t *slot_of;            /* tokens.entries[i]'s counters: names[slot_of[i]] */
    api_auth_name_t *names;       /* TOKENS_MAX + 1; the last is "other" */
    uint32_t nnames;
    ratelimit_t *limit;           /* NULL without --rate-limit */
    api_auth_stats_t stats;
} api_auth_t;

/* Loads the tokens file (when configured) and sets up the rate limiter.
 * false with a message in err when the file does not load. */
bool api_auth_init(api_auth_t *a, const config_t *cfg, char *err, size_t errcap);
void api_auth_destroy(api_auth_t *a);
/* Rereads the tokens file; false (tokens unchanged) with err when it does
 * not load. A no-op returning true without --tokens. */
bool api_auth_reload(api_auth_t *a, char *err, size_t errcap);

/* Lets r through to an endpoint that needs `need` (TOKENS_ROLE_NONE: open;
 * `limited`: counts against the rate limit). Otherwise answers 401, 403 or
 * 429 itself, consuming r, and returns false. */
bool api_auth_admit(api_auth_t *a, http_request_t *r, tokens_role_t need, bool limited);

/* The auth and rate-limit series in Prometheus text. */
void api_auth_render(api_auth_t *a, sbuf_t *b);

#endif
