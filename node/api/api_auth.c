#include "node/api/api_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/api/api_http.h"
#include "node/core/sysinfo.h"
#include "node/metrics/metrics.h"

#define API_AUTH_OTHER TOKENS_MAX   /* the counters of names beyond the table */

/* The counters' slot for `name`, added when new. Under the write lock. */
static uint32_t api_auth_slot(api_auth_t *a, const char *name)
{
    for (uint32_t i = 0; i < a->nnames; i++)
        if (strcmp(a->names[i].name, name) == 0) return i;
    if (a->nnames == TOKENS_MAX) return API_AUTH_OTHER;
    api_auth_name_t *n = &a->names[a->nnames];
    snprintf(n->name, sizeof n->name, "%s", name);
    n->limit_key = ratelimit_key("token", n->name, strlen(n->name));
    return a->nnames++;
}

/* Puts `t` in force (taking it over); the old tokens are freed. */
static bool api_auth_install(api_auth_t *a, tokens_t *t, char *err, size_t errcap)
{
    uint32_t *slots = calloc(t->n ? t->n : 1, sizeof *slots);
    if (!slots) {
        snprintf(err, errcap, "out of memory");
        tokens_free(t);
        return false;
    }
    pthread_rwlock_wrlock(&a->lock);
    for (size_t i = 0; i < t->n; i++) slots[i] = api_auth_slot(a, t->entries[i].name);
    tokens_t old = a->tokens;
    uint32_t *old_slots = a->slot_of;
    a->tokens = *t;
    a->slot_of = slots;
    pthread_rwlock_unlock(&a->lock);
    atomic_store(&a->stats.tokens, (int64_t)t->n);
    tokens_free(&old);
    free(old_slots);
    return true;
}

bool api_auth_init(api_auth_t *a, const config_t *cfg, char *err, size_t errcap)
{
    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    a->enabled = cfg->tokens[0] != '\0';
    pthread_rwlock_init(&a->lock, NULL);
    snprintf(err, errcap, "out of memory");
    a->names = calloc(TOKENS_MAX + 1, sizeof *a->names);
    if (!a->names) return false;
    api_auth_name_t *other = &a->names[API_AUTH_OTHER];
    snprintf(other->name, sizeof other->name, "other");
    other->limit_key = ratelimit_key("token", other->name, strlen(other->name));
    if (cfg->rate_rps > 0 && !(a->limit = ratelimit_new(cfg->rate_rps, cfg->rate_burst))) return false;
    if (!a->enabled) return true;
    tokens_t t;
    if (!tokens_load_file(cfg->tokens, &t, err, errcap)) return false;
    return api_auth_install(a, &t, err, errcap);
}

void api_auth_destroy(api_auth_t *a)
{
    tokens_free(&a->tokens);
    free(a->slot_of);
    free(a->names);
    ratelimit_free(a->limit);
    pthread_rwlock_destroy(&a->lock);
    memset(a, 0, sizeof *a);
}

bool api_auth_reload(api_auth_t *a, char *err, size_t errcap)
{
    if (!a->enabled) return true;
    tokens_t t;
    bool ok = tokens_load_file(a->cfg->tokens, &t, err, errcap) && api_auth_install(a, &t, err, errcap);
    atomic_fetch_add(ok ? &a->stats.reloads : &a->stats.reload_failures, 1);
    return ok;
}

/* The token of an `Authorization: Bearer TOKEN` header; NULL when the
 * header is absent or of another scheme. */
static const char *api_auth_bearer(http_request_t *r, size_t *len, bool *present)
{
    size_t hlen;
    const char *h = http_request_header(r, "authorization", &hlen);
    *present = h != NULL;
    if (!h || hlen < 7 || strncasecmp(h, "bearer ", 7) != 0) return NULL;
    const char *t = h + 7, *end = h + hlen;
    while (t < end && *t == ' ') t++;
    while (end > t && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *len = (size_t)(end - t);
    return *len ? t : NULL;
}

static void api_auth_unauthorized(http_request_t *r, const char *message)
{
    static const char hdr[] = "WWW-Authenticate: Bearer realm=\"dcache\"\r\n";
    api_http_set_error(r, METRICS_ERR_UNAUTHORIZED);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"error\":");
    sbuf_json_string(&b, message, strlen(message));
    sbuf_puts(&b, ",\"code\":\"unauthorized\"}");
    api_http_json_headers(r, 401, b.failed ? "{}" : b.data, b.failed ? 2 : b.len, hdr, sizeof hdr - 1);
    sbuf_free(&b);
}

/* The client's address without its port, for anonymous buckets. */
static size_t api_auth_client_host(http_request_t *r, const char **host)
{
    const char *peer = http_request_peer(r);
    const char *colon = strrchr(peer, ':');
    *host = peer;
    return colon ? (size_t)(colon - peer) : strlen(peer);
}

bool api_auth_admit(api_auth_t *a, http_request_t *r, tokens_role_t need, bool limited)
{
    tokens_role_t role = TOKENS_ROLE_NONE;
    uint32_t slot = UINT32_MAX;
    if (a->enabled) {
        bool present;
        size_t tlen = 0;
        const char *token = api_auth_bearer(r, &tlen, &present);
        if (token) {
            pthread_rwlock_rdlock(&a->lock);
            const tokens_entry_t *e = tokens_find(&a->tokens, token, tlen);
            if (e) {
                role = e->role;
                slot = a->slot_of[e - a->tokens.entries];
            }
            pthread_rwlock_unlock(&a->lock);
            if (!e && need != TOKENS_ROLE_NONE) {
                atomic_fetch_add_explicit(&a->stats.unknown, 1, memory_order_relaxed);
                api_auth_unauthorized(r, "the bearer token is not known to this node");
                return false;
            }
        } else if (need != TOKENS_ROLE_NONE) {
            atomic_fetch_add_explicit(&a->stats.missing, 1, memory_order_relaxed);
            api_auth_unauthorized(r, present ? "the Authorization header must be Bearer TOKEN"
                                             : "this endpoint needs Authorization: Bearer TOKEN");
            return false;
        }
        if (slot != UINT32_MAX) atomic_fetch_add_explicit(&a->names[slot].requests, 1, memory_order_relaxed);
        api_req(r)->token_slot = slot;
        api_req(r)->role = (uint8_t)role;
        if (role < need) {
            atomic_fetch_add_explicit(&a->stats.forbidden, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&a->names[slot].forbidden, 1, memory_order_relaxed);
            char msg[96];
            snprintf(msg, sizeof msg, "this needs the %s role; the token has %s", tokens_role_name(need),
                     tokens_role_name(role));
            api_http_set_error(r, METRICS_ERR_FORBIDDEN);
            http_respond_error(r, 403, "forbidden", msg);
            return false;
        }
    }
    if (!a->limit || !limited) return true;
    uint64_t key;
    if (slot != UINT32_MAX) {
        key = a->names[slot].limit_key;
    } else {
        const char *host;
        size_t hlen = api_auth_client_host(r, &host);
        key = ratelimit_key("addr", host, hlen);
    }
    uint64_t wait_ms = ratelimit_take(a->limit, key, sysinfo_now_ms());
    if (!wait_ms) return true;
    atomic_fetch_add_explicit(&a->stats.rate_limited, 1, memory_order_relaxed);
    if (slot != UINT32_MAX) atomic_fetch_add_explicit(&a->names[slot].rate_limited, 1, memory_order_relaxed);
    else atomic_fetch_add_explicit(&a->stats.anonymous_rate_limited, 1, memory_order_relaxed);
    api_http_refuse(r, 429, METRICS_ERR_RATE_LIMITED, "too many requests: over --rate-limit", (wait_ms + 999) / 1000);
    return false;
}

#define API_AUTH_COUNTER(F, name, labels, help) METRICS_ATOMIC_COUNTER(api_auth_stats_t, F, name, labels, help)
static const metrics_desc_t api_auth_rows[] = {
    METRICS_ATOMIC_GAUGE(api_auth_stats_t, tokens, "auth_tokens", NULL, "Tokens in force from the --tokens file."),
    API_AUTH_COUNTER(missing, "auth_unauthorized_total", "reason=\"missing\"",
                 "Requests refused with 401, by reason: no bearer token, or one the file does not hold."),
    API_AUTH_COUNTER(unknown, "auth_unauthorized_total", "reason=\"unknown\"", NULL),
    API_AUTH_COUNTER(forbidden, "auth_forbidden_total", NULL,
                 "Requests refused with 403: the token's role is below the endpoint's."),
    API_AUTH_COUNTER(rate_limited, "rate_limited_total", NULL,
                 "Requests refused with 429 over --rate-limit."),
    API_AUTH_COUNTER(anonymous_rate_limited, "rate_limited_anonymous_total", NULL,
                 "Requests without a token refused with 429 over --rate-limit (bucket per client address)."),
    API_AUTH_COUNTER(reloads, "auth_reloads_total", "result=\"ok\"",
                 "Reloads of the tokens file on SIGHUP, by result (a failed one keeps the tokens in force)."),
    API_AUTH_COUNTER(reload_failures, "auth_reloads_total", "result=\"failed\"", NULL),
};
static const metrics_table_t api_auth_table = METRICS_TABLE(api_auth_rows);

static const metrics_desc_t api_auth_limit_rows[] = {
    METRICS_ATOMIC_GAUGE(ratelimit_stats_t, keys, "rate_limit_buckets", NULL,
                         "Token buckets held (one per token name or client address), at most 16384."),
    METRICS_ATOMIC_COUNTER(ratelimit_stats_t, evictions, "rate_limit_bucket_evictions_total", NULL,
                           "Buckets given up for a new client when the table was full (that client's next "
                           "request starts from a full burst)."),
};
static const metrics_table_t api_auth_limit_table = METRICS_TABLE(api_auth_limit_rows);

static void api_auth_render_names(api_auth_t *a, sbuf_t *b, const char *metric, size_t offset, const char *help)
{
    metrics_prom_header(b, metric, "counter", help);
    for (uint32_t i = 0; i <= TOKENS_MAX; i++) {
        if (i < TOKENS_MAX && i >= a->nnames) continue;
        atomic_uint_fast64_t *c = (atomic_uint_fast64_t *)((char *)&a->names[i] + offset);
        uint64_t v = atomic_load_explicit(c, memory_order_relaxed);
        if (i == TOKENS_MAX && !v) continue;
        char labels[TOKENS_NAME_MAX + 16];
        snprintf(labels, sizeof labels, "token=\"%s\"", a->names[i].name);
        metrics_prom_uint(b, metric, labels, v);
    }
}

void api_auth_render(api_auth_t *a, sbuf_t *b)
{
    metrics_render_one(b, &api_auth_table, &a->stats);
    if (a->limit) metrics_render_one(b, &api_auth_limit_table, ratelimit_stats(a->limit));
    if (!a->enabled) return;
    pthread_rwlock_rdlock(&a->lock);
    api_auth_render_names(a, b, "auth_requests_total", offsetof(api_auth_name_t, requests),
                          "Requests that presented a known token, by the token's name.");
    api_auth_render_names(a, b, "auth_token_forbidden_total", offsetof(api_auth_name_t, forbidden),
                          "Requests refused with 403, by the token's name.");
    api_auth_render_names(a, b, "auth_token_rate_limited_total", offsetof(api_auth_name_t, rate_limited),
                          "Requests refused with 429, by the token's name.");
    pthread_rwlock_unlock(&a->lock);
}
