/* Cluster endpoints and metrics: the member list and SWIM counters, read
 * from the gossip driver's thread-safe snapshot. */
#include <string.h>

#include "node/api_internal.h"

void api_cluster_members(api_t *a, http_request_t *r)
{
    gossip_t *g = atomic_load(&a->gossip);
    if (!g) {
        http_respond_error(r, 503, "cluster_starting", "membership is not running yet");
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    gossip_members_json(g, &b);
    api_respond_sbuf(r, 200, &b);
}

static void api_prom_pair(sbuf_t *b, const char *name, const char *label, const char *v1, uint64_t n1,
                          const char *v2, uint64_t n2)
{
    char l[64];
    snprintf(l, sizeof l, "%s=\"%s\"", label, v1);
    metrics_prom_uint(b, name, l, n1);
    snprintf(l, sizeof l, "%s=\"%s\"", label, v2);
    metrics_prom_uint(b, name, l, n2);
}

void api_cluster_prometheus(api_t *a, sbuf_t *b)
{
    gossip_t *g = atomic_load(&a->gossip);
    if (!g) return;
    gossip_metrics_t m;
    gossip_get_metrics(g, &m);
    const swim_stats_t *s = &m.swim;
    metrics_prom_header(b, "cluster_members", "gauge", "Members known to this node, by state.");
    static const char *const states[] = {"alive", "suspect", "dead", "left"};
    for (int i = 0; i < 4; i++) {
        char l[32];
        snprintf(l, sizeof l, "state=\"%s\"", states[i]);
        metrics_prom_uint(b, "cluster_members", l, m.members[i]);
    }
    struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"swim_probes_total", "Direct probes sent.", s->probes},
        {"swim_probe_failures_total", "Probes that got no ack in their period.", s->probe_failures},
        {"swim_ping_reqs_total", "Indirect probe requests sent.", s->ping_reqs_sent},
        {"swim_pings_relayed_total", "Pings sent on behalf of other members.", s->pings_relayed},
        {"swim_acks_total", "Acks received for our probes.", s->acks_received},
        {"swim_nacks_total", "Nacks received (Lifeguard).", s->nacks_received},
        {"swim_suspicions_raised_total", "Members this node began to suspect.", s->suspicions_raised},
        {"swim_refutations_total", "Suspicions of this node it refuted.", s->refutations},
        {"swim_deaths_declared_total", "Suspicions this node turned into deaths.", s->deaths_declared},
        {"swim_push_pulls_total", "Full-state exchanges this node started.", s->push_pulls},
        {"swim_broadcasts_dropped_total", "Updates dropped from a full queue.", s->broadcasts_dropped},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        metrics_prom_header(b, counters[i].name, "counter", counters[i].help);
        metrics_prom_uint(b, counters[i].name, NULL, counters[i].v);
    }
    metrics_prom_header(b, "swim_packets_total", "counter", "Gossip datagrams, by direction.");
    api_prom_pair(b, "swim_packets_total", "direction", "in", s->packets_in, "out", s->packets_out);
    metrics_prom_header(b, "swim_bytes_total", "counter", "Gossip payload bytes, by direction.");
    api_prom_pair(b, "swim_bytes_total", "direction", "in", s->bytes_in, "out", s->bytes_out);
    metrics_prom_header(b, "swim_exchanges_total", "counter", "Push-pull exchanges, by result.");
    api_prom_pair(b, "swim_exchanges_total", "result", "ok", m.exchanges_ok, "failed", m.exchanges_failed);
    metrics_prom_header(b, "swim_dropped_total", "counter", "Gossip input dropped, by reason.");
    struct {
        const char *reason;
        uint64_t v;
    } drops[] = {
        {"auth", m.drops_auth},         {"checksum", m.drops_checksum},   {"version", m.drops_version},
        {"short", m.drops_short},       {"malformed", s->drops_malformed}, {"wrong_target", s->drops_wrong_target},
        {"bad_state", s->drops_state},  {"send_error", m.send_errors},
    };
    for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
        char l[48];
        snprintf(l, sizeof l, "reason=\"%s\"", drops[i].reason);
        metrics_prom_uint(b, "swim_dropped_total", l, drops[i].v);
    }
    metrics_prom_header(b, "swim_health_score", "gauge", "Lifeguard local health score (0 = healthy).");
    metrics_prom_uint(b, "swim_health_score", NULL, s->health_score);
}
