/* /health (the process is up) and /ready (it should get traffic). */
#include "node/api/api_health.h"

#include "node/audit/audit.h"

#include <stdio.h>
#include <string.h>

#include "autoconfig.h"
#include "node/api/api_http.h"
#include "node/audit/audit.h"
#include "node/core/sbuf.h"
#include "node/core/sysinfo.h"

void api_health_live(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
    char body[160];
    int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"uptime_seconds\":%lld,\"version\":\"%s\"}",
                     (long long)((sysinfo_now_ms() - a->started_ms) / 1000), PACKAGE_VERSION);
    http_respond_json(r, 200, body, (size_t)n);
}

void api_health_whoami(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
    const api_req_t *q = api_req(r);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_printf(&b, "{\"tokens\":%s,\"name\":", a->auth.enabled ? "true" : "false");
    if (q->token_slot != UINT32_MAX) {
        const char *name = a->auth.names[q->token_slot].name;
        sbuf_json_string(&b, name, strlen(name));
    } else {
        sbuf_puts(&b, "null");
    }
    tokens_role_t role = a->auth.enabled ? (tokens_role_t)q->role : TOKENS_ROLE_ADMIN;
    sbuf_printf(&b, ",\"role\":\"%s\"}", tokens_role_name(role));
    api_http_sbuf(r, 200, &b);
}

const char *api_health_state(api_t *a)
{
    if (atomic_load(&a->draining)) return "draining";
    if (atomic_load(&a->route.sync.minority)) return "minority";
    if (route_clock_untrusted(&a->route)) return "clock_skew";
    if (atomic_load(&a->route.sync.syncing)) return "syncing";
    return "ok";
}

const char *api_health_l2_state(api_t *a)
{
    l2_shared_t *s = a->route.l2;
    if (!s) return "disabled";
    return breaker_state(&s->breaker) == BREAKER_CLOSED ? "ok" : "degraded";
}

const char *api_health_audit_state(api_t *a)
{
    if (!a->audit) return "disabled";
    audit_stats_t *as = audit_stats(a->audit);
    return !as->pg.configured || atomic_load(&as->pg.up) ? "ok" : "degraded";
}

static const char *api_health_cluster_state(api_t *a)
{
    gossip_t *g = atomic_load(&a->gossip);
    if (!g) return "starting";
    gossip_metrics_t m;
    gossip_get_metrics(g, &m);
    return m.joined ? "ok" : "joining";
}

void api_health_ready(api_worker_t *w, http_request_t *r)
{
    api_t *a = w->api;
    /* Draining, minority, clock_skew or syncing make it unready: it
     * refuses writes, or may hold less than it owns. L2 down does not:
     * it keeps serving from L1. */
    const char *state = api_health_state(a);
    bool ready = strcmp(state, "ok") == 0;
    size_t entries = store_entry_count(a->store);
    char l2[256];
    l2_shared_t *s = a->route.l2;
    if (!s) {
        snprintf(l2, sizeof l2, "{\"status\":\"disabled\",\"detail\":\"no --redis configured\"}");
    } else {
        snprintf(l2, sizeof l2, "{\"status\":\"%s\",\"breaker\":\"%s\",\"write_mode\":\"%s\",\"journal_records\":%llu}",
                 api_health_l2_state(a), breaker_state_name(breaker_state(&s->breaker)),
                 s->write_mode == L2_WRITE_JOURNAL ? "journal" : "sync",
                 (unsigned long long)(s->journal ? journal_records(s->journal) : 0));
    }
    /* The audit trail never makes the node unready: records wait in the
     * files while PostgreSQL is away. */
    char audit[192];
    if (!a->audit) {
        snprintf(audit, sizeof audit, "{\"status\":\"disabled\"}");
    } else {
        audit_stats_t *as = audit_stats(a->audit);
        if (!as->pg.configured)
            snprintf(audit, sizeof audit, "{\"status\":\"ok\",\"sink\":\"file\"}");
        else
            snprintf(audit, sizeof audit, "{\"status\":\"%s\",\"sink\":\"postgres\",\"backlog_bytes\":%lld}",
                     api_health_audit_state(a), (long long)atomic_load(&as->pg.backlog_bytes));
    }
    char body[800];
    int n = snprintf(body, sizeof body,
                     "{\"ready\":%s,\"status\":\"%s\",\"dependencies\":{"
                     "\"l1\":{\"status\":\"ok\",\"entries\":%zu},"
                     "\"l2\":%s,"
                     "\"audit\":%s,"
                     "\"cluster\":{\"status\":\"%s\"}}}",
                     ready ? "true" : "false", state, entries, l2, audit, api_health_cluster_state(a));
    if (strcmp(state, "draining") == 0) api_http_set_error(r, METRICS_ERR_DRAINING);
    else if (strcmp(state, "minority") == 0) api_http_set_error(r, METRICS_ERR_MINORITY);
    else if (strcmp(state, "clock_skew") == 0) api_http_set_error(r, METRICS_ERR_CLOCK_SKEW);
    else if (strcmp(state, "syncing") == 0) api_http_set_error(r, METRICS_ERR_SYNCING);
    http_respond_json(r, ready ? 200 : 503, body, (size_t)n);
}
