/* Cluster endpoints and metrics: the member list and SWIM counters, read
 * from the gossip driver's thread-safe snapshot. */
#include <string.h>

#include "node/api/api_internal.h"

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

static void api_prom_counter(sbuf_t *b, const char *name, const char *help, uint64_t v)
{
    metrics_prom_header(b, name, "counter", help);
    metrics_prom_uint(b, name, NULL, v);
}

static void api_prom_gauge(sbuf_t *b, const char *name, const char *help, int64_t v)
{
    metrics_prom_header(b, name, "gauge", help);
    metrics_prom_uint(b, name, NULL, v > 0 ? (uint64_t)v : 0);
}

/* One labelled sample per peer message type that is a request. */
static void api_prom_by_type(sbuf_t *b, const char *name, atomic_uint_fast64_t *by_type)
{
    static const peer_msg_type_t types[] = {PEER_MSG_GET, PEER_MSG_PUT, PEER_MSG_DELETE, PEER_MSG_INVALIDATE,
                                            PEER_MSG_INVALIDATE_PATTERN, PEER_MSG_KEYS, PEER_MSG_HANDOFF,
                                            PEER_MSG_PING};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char l[48];
        snprintf(l, sizeof l, "type=\"%s\"", peer_msg_type_name(types[i]));
        metrics_prom_uint(b, name, l, atomic_load(&by_type[types[i]]));
    }
}

void api_route_prometheus(api_t *a, sbuf_t *b)
{
    topo_t *t = topo_slot_get(&a->topo);
    api_prom_gauge(b, "ring_version", "Version of the ring snapshot in use (rises with every membership change).",
                   t ? (int64_t)t->version : 0);
    api_prom_gauge(b, "ring_members", "Members in the ring (alive and suspect).", t ? (int64_t)t->n : 0);
    topo_unref(t);

    peer_stats_t *p = &a->peer_stats;
    metrics_prom_header(b, "peer_frames_total", "counter", "Peer channel frames, by direction.");
    api_prom_pair(b, "peer_frames_total", "direction", "in", atomic_load(&p->frames_in), "out",
                  atomic_load(&p->frames_out));
    metrics_prom_header(b, "peer_bytes_total", "counter", "Peer channel bytes, by direction.");
    api_prom_pair(b, "peer_bytes_total", "direction", "in", atomic_load(&p->bytes_in), "out",
                  atomic_load(&p->bytes_out));
    metrics_prom_header(b, "peer_dropped_total", "counter",
                        "Peer connections closed for what they sent, by reason; queue_full: output refused.");
    for (int i = 0; i < PEER_DROP_MAX; i++) {
        char l[48];
        snprintf(l, sizeof l, "reason=\"%s\"", peer_drop_name((peer_drop_t)i));
        metrics_prom_uint(b, "peer_dropped_total", l, atomic_load(&p->drops[i]));
    }
    metrics_prom_uint(b, "peer_dropped_total", "reason=\"queue_full\"", atomic_load(&p->send_refused));
    metrics_prom_header(b, "peer_requests_total", "counter", "Requests sent to peers, by type.");
    api_prom_by_type(b, "peer_requests_total", p->requests);
    metrics_prom_header(b, "peer_served_total", "counter", "Requests served for peers, by type.");
    api_prom_by_type(b, "peer_served_total", p->served);
    metrics_prom_header(b, "peer_failures_total", "counter", "Requests to peers that failed, by reason.");
    struct {
        const char *reason;
        atomic_uint_fast64_t *v;
    } fails[] = {{"timeout", &p->failures_timeout}, {"connect", &p->failures_connect},
                 {"closed", &p->failures_closed},   {"breaker_open", &p->failures_breaker},
                 {"backoff", &p->failures_backoff}, {"queue_full", &p->failures_queue}};
    for (size_t i = 0; i < sizeof fails / sizeof fails[0]; i++) {
        char l[48];
        snprintf(l, sizeof l, "reason=\"%s\"", fails[i].reason);
        metrics_prom_uint(b, "peer_failures_total", l, atomic_load(fails[i].v));
    }
    metrics_prom_header(b, "peer_connections", "gauge", "Open peer connections, by direction.");
    int64_t cin = atomic_load(&p->connections_in), cout = atomic_load(&p->connections_out);
    api_prom_pair(b, "peer_connections", "direction", "in", cin > 0 ? (uint64_t)cin : 0, "out",
                  cout > 0 ? (uint64_t)cout : 0);
    api_prom_counter(b, "peer_connects_total", "Peer connections opened.", atomic_load(&p->connects));
    api_prom_counter(b, "peer_connect_failures_total", "Peer connections that failed to open.",
                     atomic_load(&p->connect_failures));
    api_prom_counter(b, "peer_breaker_opens_total", "Times a peer's circuit breaker opened.",
                     atomic_load(&p->breaker_opens));
    api_prom_gauge(b, "peer_breakers_open", "Peers whose breaker is open now (per worker loop).",
                   atomic_load(&p->breakers_open));
    api_prom_gauge(b, "peer_pending", "Requests to peers awaiting an answer.", atomic_load(&p->pending));

    api_route_stats_t *r = &a->route;
    metrics_prom_header(b, "route_forwarded_total", "counter", "Client requests sent on to an owner, by operation.");
    static const char *const ops[] = {"get", "put", "delete"};
    for (int i = 0; i < 3; i++) {
        char l[32];
        snprintf(l, sizeof l, "operation=\"%s\"", ops[i]);
        metrics_prom_uint(b, "route_forwarded_total", l, atomic_load(&r->forwarded[i]));
    }
    api_prom_counter(b, "route_failovers_total", "Owners that failed, so the next owner was tried.",
                     atomic_load(&r->failovers));
    api_prom_counter(b, "route_unavailable_total", "Requests answered 503 because no owner answered.",
                     atomic_load(&r->unavailable));
    api_prom_counter(b, "route_coalesced_total", "GETs that joined a forwarded GET for the same key in flight.",
                     atomic_load(&r->coalesced));
    metrics_prom_header(b, "route_replica_writes_total", "counter",
                        "Writes sent to replicas, by result (skipped: the replica was known down).");
    metrics_prom_uint(b, "route_replica_writes_total", "result=\"ok\"", atomic_load(&r->replica_ok));
    metrics_prom_uint(b, "route_replica_writes_total", "result=\"failed\"", atomic_load(&r->replica_failed));
    metrics_prom_uint(b, "route_replica_writes_total", "result=\"skipped\"", atomic_load(&r->replica_skipped));
    api_prom_counter(b, "route_writes_unreplicated_total",
                     "Writes refused with 503 because fewer owners than --write-acks stored them.",
                     atomic_load(&r->writes_unreplicated));
    api_prom_counter(b, "route_invalidation_broadcasts_total",
                     "Invalidations of a key sent to members that do not own it.", atomic_load(&r->broadcasts));
    api_prom_counter(b, "route_fallbacks_total",
                     "Misses at a new owner, right after a ring change, that asked the previous owners.",
                     atomic_load(&r->fallbacks));
    api_prom_counter(b, "route_fallback_hits_total", "Fallbacks that found the key at a previous owner.",
                     atomic_load(&r->fallback_filled));
    handoff_stats_t *h = &a->handoff;
    api_prom_counter(b, "handoff_entries_total", "Entries handed to their new owners after ring changes.",
                     atomic_load(&h->entries_sent));
    api_prom_counter(b, "handoff_bytes_total", "Key and value bytes handed to new owners.", atomic_load(&h->bytes_sent));
    api_prom_counter(b, "handoff_dropped_total", "Entries removed here once their new owners had them.",
                     atomic_load(&h->entries_dropped));
    api_prom_counter(b, "handoff_batches_failed_total", "Handoff batches a new owner did not take (retried).",
                     atomic_load(&h->batches_failed));
    api_prom_counter(b, "handoff_runs_total", "Handoff scans finished.", atomic_load(&h->runs));
    metrics_prom_header(b, "handoff_last_duration_seconds", "gauge", "Duration of the last handoff scan.");
    metrics_prom_value(b, "handoff_last_duration_seconds", NULL, (double)atomic_load(&h->last_duration_ms) / 1000.0);
    api_prom_gauge(b, "handoff_running", "1 while a handoff is in progress.", atomic_load(&h->running));
    api_prom_counter(b, "tombstone_refusals_total",
                     "Fills (L2, handoff, previous owners, replica writes) refused because the key was deleted since.",
                     a->tomb ? tomb_refused(a->tomb) : 0);
    api_prom_gauge(b, "tombstones", "Recent deletes remembered (60 s; bound: 65536).",
                   a->tomb ? (int64_t)tomb_count(a->tomb, store_now_ms(a->store)) : 0);
    api_prom_gauge(b, "route_forwards_in_flight", "Forwarded GETs in flight (bound: 65536 per worker).",
                   atomic_load(&r->flights));
}

void api_l2_prometheus(api_t *a, sbuf_t *b)
{
    l2_shared_t *s = a->l2;
    metrics_prom_header(b, "l2_up", "gauge", "1 when Redis is configured and its breaker is closed.");
    metrics_prom_uint(b, "l2_up", NULL, s && breaker_state(&s->breaker) == BREAKER_CLOSED ? 1 : 0);
    if (!s) return;
    metrics_prom_header(b, "l2_breaker_state", "gauge", "The L2 breaker: 0 closed, 1 open, 2 half-open.");
    metrics_prom_uint(b, "l2_breaker_state", NULL, (uint64_t)breaker_state(&s->breaker));
    api_prom_counter(b, "l2_breaker_opens_total", "Times the L2 breaker opened.", atomic_load(&s->breaker.opens));
    api_prom_counter(b, "l2_breaker_rejected_total", "L2 calls refused at once by the open breaker.",
                     atomic_load(&s->breaker.rejected));
    l2_stats_t *st = &s->stats;
    struct {
        const char *name, *help;
        atomic_uint_fast64_t *v;
    } c[] = {
        {"l2_gets_total", "L1 misses looked up in Redis.", &st->gets},
        {"l2_hits_total", "Lookups Redis answered with a value.", &st->hits},
        {"l2_misses_total", "Lookups Redis did not have.", &st->misses},
        {"l2_sets_total", "Values written to Redis (write-through and journal replay).", &st->sets},
        {"l2_deletes_total", "Deletes sent to Redis.", &st->dels},
        {"l2_errors_total", "Redis calls that failed (errors, timeouts, breaker open).", &st->errors},
        {"l2_fills_stale_total", "Values read from Redis older than L1's, not kept.", &st->fills_stale},
        {"l2_writes_refused_total", "Writes refused with 503: Redis down in sync mode, or the journal full.",
         &st->writes_refused},
        {"l2_writes_journaled_total", "Writes accepted into the local journal while Redis was down.",
         &st->writes_journaled},
        {"l2_journal_replayed_total", "Journal records replayed into Redis.", &st->journal_drained},
        {"l2_pattern_keys_unlinked_total", "Redis keys removed by pattern invalidation.", &st->keys_unlinked},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) api_prom_counter(b, c[i].name, c[i].help, atomic_load(c[i].v));
    api_prom_gauge(b, "l2_journal_records", "Writes in the journal waiting for Redis.",
                   s->journal ? (int64_t)journal_records(s->journal) : 0);
    api_prom_gauge(b, "l2_journal_bytes", "Bytes of the journal (bound: --l2-journal-max).",
                   s->journal ? (int64_t)journal_bytes(s->journal) : 0);
    api_prom_gauge(b, "l2_connections", "Open Redis connections (one per worker loop, plus the journal's).",
                   atomic_load(&s->redis_stats.connected));
    api_prom_gauge(b, "l2_pending", "Redis commands awaiting an answer.", atomic_load(&s->redis_stats.pending));
}
