#include "node/core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autoconfig.h"
#include "cluster/limits.h"
#include "node/core/log.h"

extern char **environ;

typedef enum { OPT_STRING, OPT_UINT, OPT_SIZE, OPT_DURATION_S, OPT_DURATION_MS, OPT_BOOL } config_type_t;

typedef struct config_option {
    const char *flag;      /* without the leading "--" */
    const char *env;       /* DCACHE_* */
    const char *seed_env;  /* historical name, or NULL */
    config_type_t type;
    size_t offset;
    const char *def;
    uint64_t min, max;     /* for numbers: accepted range */
    const char *help;
} config_option_t;

#define U64_MAX UINT64_MAX
#define OPT(field) offsetof(config_t, field)

static const config_option_t config_options[] = {
    {"http-host", "DCACHE_HTTP_HOST", NULL, OPT_STRING, OPT(http_host), "127.0.0.1", 0, 0,
     "address the HTTP API listens on"},
    {"http-port", "DCACHE_HTTP_PORT", "CACHE_MANAGER_PORT", OPT_UINT, OPT(http_port), "8080", 0, 65535,
     "HTTP API port (0 picks a free port, logged at start)"},
    {"workers", "DCACHE_WORKERS", NULL, OPT_UINT, OPT(workers), "0", 0, 64,
     "HTTP worker threads sharing the port (0 = one per core)"},
    {"l1-max-entries", "DCACHE_L1_MAX_ENTRIES", "L1_CACHE_MAX_SIZE", OPT_UINT, OPT(l1_max_entries), "0", 0,
     U64_MAX, "most entries the in-memory L1 holds before evicting (0 = no entry limit: --l1-max-memory bounds it)"},
    {"l1-max-memory", "DCACHE_L1_MAX_MEMORY", NULL, OPT_SIZE, OPT(l1_max_memory), "512mb", 65536, U64_MAX,
     "most bytes the L1 holds, per-entry overhead included (e.g. 512mb, 2gb)"},
    {"max-value-size", "DCACHE_MAX_VALUE_SIZE", NULL, OPT_SIZE, OPT(max_value_size), "8mb", 1, U64_MAX,
     "largest value a PUT may store, at most 8mb (one peer frame); larger bodies get 413"},
    {"eviction", "DCACHE_EVICTION", "CACHE_EVICTION_POLICY", OPT_STRING, OPT(eviction), "lru", 0, 0,
     "eviction policy: lru or lfu"},
    {"default-ttl", "DCACHE_DEFAULT_TTL", "L2_CACHE_DEFAULT_TTL", OPT_DURATION_S, OPT(default_ttl_ms), "3600", 0,
     U64_MAX, "TTL of a PUT that names none (seconds, or 10m, 2h; 0 = never expires)"},
    {"max-header-size", "DCACHE_MAX_HEADER_SIZE", NULL, OPT_SIZE, OPT(max_header_size), "16kb", 1024, 1u << 20,
     "largest request line plus headers; larger gets 431"},
    {"max-request-body", "DCACHE_MAX_REQUEST_BODY", NULL, OPT_SIZE, OPT(max_request_body), "1mb", 1024, 1u << 30,
     "largest body of a JSON API request (values use --max-value-size)"},
    {"header-timeout", "DCACHE_HEADER_TIMEOUT", NULL, OPT_DURATION_S, OPT(header_timeout_ms), "10", 100, U64_MAX,
     "time a client has to send a request's headers (seconds, or 500ms); then 408"},
    {"idle-timeout", "DCACHE_IDLE_TIMEOUT", NULL, OPT_DURATION_S, OPT(idle_timeout_ms), "60", 100, U64_MAX,
     "a connection silent this long is closed (seconds, or 500ms)"},
    {"max-connections", "DCACHE_MAX_CONNECTIONS", NULL, OPT_UINT, OPT(max_connections), "10000", 1, 1000000,
     "open client connections per worker; more get 503"},
    {"log-level", "DCACHE_LOG_LEVEL", "LOG_LEVEL", OPT_STRING, OPT(log_level), "info", 0, 0,
     "debug, info, warn or error"},
    {"metrics-interval", "DCACHE_METRICS_INTERVAL", "METRICS_COLLECTION_INTERVAL", OPT_DURATION_MS,
     OPT(metrics_interval_ms), "5000", 100, 3600000, "metrics history sampling period (ms, or 5s)"},
    {"name", "DCACHE_NAME", NULL, OPT_STRING, OPT(name), "", 0, 0,
     "this node's name, unique in the cluster (default: host name:cluster port)"},
    {"cluster-host", "DCACHE_CLUSTER_HOST", NULL, OPT_STRING, OPT(cluster_host), "", 0, 0,
     "IP address gossip binds to (default: --http-host)"},
    {"cluster-port", "DCACHE_CLUSTER_PORT", NULL, OPT_UINT, OPT(cluster_port), "7946", 0, 65535,
     "gossip port, UDP and TCP; the peer channel shares its TCP listener unless --peer-port is given "
     "(0 picks a free port, logged at start)"},
    {"advertise", "DCACHE_ADVERTISE", NULL, OPT_STRING, OPT(advertise), "", 0, 0,
     "IP address other nodes use to reach this one (default: --cluster-host)"},
    {"seeds", "DCACHE_SEEDS", NULL, OPT_STRING, OPT(seeds), "", 0, 0,
     "host:port,... of nodes to join through; a name may list several nodes (none: start a new cluster)"},
    {"zone", "DCACHE_ZONE", NULL, OPT_STRING, OPT(zone), "", 0, 0,
     "failure-domain label; replicas go to different zones where possible"},
    {"cluster-key", "DCACHE_CLUSTER_KEY", NULL, OPT_STRING, OPT(cluster_key), "", 0, 0,
     "base64 32-byte key: seal peer traffic with XChaCha20-Poly1305 (openssl rand -base64 32)"},
    {"cluster-keyring", "DCACHE_CLUSTER_KEYRING", NULL, OPT_STRING, OPT(cluster_keyring), "", 0, 0,
     "file of base64 keys, one a line: the first seals, all open (key rotation)"},
    {"probe-interval", "DCACHE_PROBE_INTERVAL", NULL, OPT_DURATION_S, OPT(probe_interval_ms), "1s", 10, 600000,
     "SWIM protocol period: one member probed per period"},
    {"probe-timeout", "DCACHE_PROBE_TIMEOUT", NULL, OPT_DURATION_S, OPT(probe_timeout_ms), "500ms", 5, 600000,
     "time to wait for an ack before asking others to probe"},
    {"gossip-interval", "DCACHE_GOSSIP_INTERVAL", NULL, OPT_DURATION_S, OPT(gossip_interval_ms), "200ms", 5, 600000,
     "period of gossip rounds"},
    {"push-pull-interval", "DCACHE_PUSH_PULL_INTERVAL", NULL, OPT_DURATION_S, OPT(push_pull_interval_ms), "30s", 0,
     86400000, "period of full-state exchange with a random member (0 = off)"},
    {"suspicion-mult", "DCACHE_SUSPICION_MULT", NULL, OPT_UINT, OPT(suspicion_mult), "4", 1, 100,
     "suspicion timeout = this x log10(members) x probe interval (at least)"},
    {"indirect-checks", "DCACHE_INDIRECT_CHECKS", NULL, OPT_UINT, OPT(indirect_checks), "3", 0, 16,
     "members asked to probe a member that did not answer"},
    {"gossip-nodes", "DCACHE_GOSSIP_NODES", NULL, OPT_UINT, OPT(gossip_nodes), "3", 1, 16,
     "members each gossip round sends to"},
    {"peer-port", "DCACHE_PEER_PORT", NULL, OPT_UINT, OPT(peer_port), "", 0, 65535,
     "a TCP port of the peer channel's own, on --cluster-host (0 picks a free port, logged at start); "
     "none: the peer channel shares --cluster-port's TCP listener"},
    {"replicas", "DCACHE_REPLICAS", NULL, OPT_UINT, OPT(replicas), "2", 1, 5,
     "owners of each key: the primary and replicas-1 copies on other nodes"},
    {"write-acks", "DCACHE_WRITE_ACKS", NULL, OPT_STRING, OPT(write_acks), "all", 0, 0,
     "owners that must store a PUT or DELETE before it is acknowledged: 1..replicas, or all (every owner not known down)"},
    {"peer-connect-timeout", "DCACHE_PEER_CONNECT_TIMEOUT", NULL, OPT_DURATION_S, OPT(peer_connect_timeout_ms),
     "500ms", 10, 600000, "time to open a peer connection before trying the next owner"},
    {"redis", "DCACHE_REDIS", "REDIS_URL", OPT_STRING, OPT(redis), "", 0, 0,
     "Redis as L2: redis://[user:password@]host:port/db (also REDIS_HOST, REDIS_PORT, REDIS_PASSWORD); none = L1 only"},
    {"redis-sentinel", "DCACHE_REDIS_SENTINEL", NULL, OPT_STRING, OPT(redis_sentinel), "", 0, 0,
     "host:port,... of Redis Sentinels: the L2 master is asked of them and followed through failovers "
     "(--redis then only gives user, password and db)"},
    {"redis-master", "DCACHE_REDIS_MASTER", NULL, OPT_STRING, OPT(redis_master), "mymaster", 0, 0,
     "the master's name in Sentinel"},
    {"l2-prefix", "DCACHE_L2_PREFIX", NULL, OPT_STRING, OPT(l2_prefix), "dcache:", 0, 0,
     "prefix of every key dcache writes in Redis"},
    {"l2-write-mode", "DCACHE_L2_WRITE_MODE", NULL, OPT_STRING, OPT(l2_write_mode), "sync", 0, 0,
     "when Redis is down, sync: refuse writes (503); journal: accept them into a local journal replayed later"},
    {"l2-timeout", "DCACHE_L2_TIMEOUT", NULL, OPT_DURATION_S, OPT(l2_timeout_ms), "500ms", 10, 600000,
     "time Redis has to answer a command before it counts as down"},
    {"l2-connect-timeout", "DCACHE_L2_CONNECT_TIMEOUT", NULL, OPT_DURATION_S, OPT(l2_connect_timeout_ms), "1s", 10,
     600000, "time to connect to Redis (and AUTH, SELECT)"},
    {"l2-pipeline", "DCACHE_L2_PIPELINE", NULL, OPT_UINT, OPT(l2_pipeline), "10000", 1, 1000000,
     "most Redis commands in flight per worker; more fail at once"},
    {"l2-journal-dir", "DCACHE_L2_JOURNAL_DIR", NULL, OPT_STRING, OPT(l2_journal_dir), "dcache-journal", 0, 0,
     "directory of the journal (--l2-write-mode journal)"},
    {"l2-journal-max", "DCACHE_L2_JOURNAL_MAX", NULL, OPT_SIZE, OPT(l2_journal_max), "64mb", 4096, U64_MAX,
     "largest journal; when full, writes are refused as in sync mode"},
    {"l2-tombstone-ttl", "DCACHE_L2_TOMBSTONE_TTL", NULL, OPT_DURATION_S, OPT(l2_tombstone_ttl_ms), "1h", 1000,
     30ull * 86400 * 1000,
     "how long Redis keeps a deleted key's version, refusing older writes (a late write, a journal replayed later)"},
    {"handoff-rate", "DCACHE_HANDOFF_RATE", NULL, OPT_UINT, OPT(handoff_rate), "20000", 0, 100000000,
     "entries per second a node hands to their new owners after a ring change (0 = unlimited)"},
    {"peer-timeout", "DCACHE_PEER_TIMEOUT", NULL, OPT_DURATION_S, OPT(peer_timeout_ms), "1s", 10, 600000,
     "time to wait for a peer's answer before trying the next owner"},
    {"tombstone-grace", "DCACHE_TOMBSTONE_GRACE", NULL, OPT_DURATION_S, OPT(tombstone_grace_ms), "60s", 1000,
     86400000,
     "how long a delete or invalidation is remembered in L1 to refuse older values arriving late; a node that "
     "stood still longer than this drops what it held when it wakes (with --replicas 2 or more)"},
    {"repair-interval", "DCACHE_REPAIR_INTERVAL", NULL, OPT_DURATION_S, OPT(repair_interval_ms), "30s", 0, 86400000,
     "how often the owners of the same keys compare digests of what they hold and exchange what differs: missing "
     "entries, newer versions, deletes (0: never)"},
    {"sync-timeout", "DCACHE_SYNC_TIMEOUT", NULL, OPT_DURATION_S, OPT(sync_timeout_ms), "60s", 100, 3600000,
     "longest a node that started, stood still, rejoined or was declared dead waits for the other members to hand "
     "it its keys (it checks reads with them meanwhile)"},
    {"max-clock-drift", "DCACHE_MAX_CLOCK_DRIFT", NULL, OPT_DURATION_S, OPT(max_clock_drift_ms), "5s", 100,
     3600000, "versions stamped this far ahead of this node's clock are refused (replica writes) or not followed"},
    {"tokens", "DCACHE_TOKENS", NULL, OPT_STRING, OPT(tokens), "", 0, 0,
     "file of API tokens, NAME ROLE HASH a line (dcache-admin token add writes it; mode 0600): requests then "
     "need Authorization: Bearer TOKEN with the role the endpoint asks; SIGHUP reloads it (none: an open API, "
     "loopback only)"},
    {"public-read", "DCACHE_PUBLIC_READ", NULL, OPT_BOOL, OPT(public_read), "false", 0, 0,
     "with --tokens, anonymous clients may still GET and HEAD values"},
    {"metrics-auth", "DCACHE_METRICS_AUTH", NULL, OPT_BOOL, OPT(metrics_auth), "false", 0, 0,
     "with --tokens, /metrics needs a reader token too (default: open, for scrapers)"},
    {"allow-anonymous", "DCACHE_ALLOW_ANONYMOUS", NULL, OPT_BOOL, OPT(allow_anonymous), "false", 0, 0,
     "serve the API without --tokens on an address other machines reach (anyone there may write and wipe)"},
    {"allow-unsealed", "DCACHE_ALLOW_UNSEALED", NULL, OPT_BOOL, OPT(allow_unsealed), "false", 0, 0,
     "run gossip and the peer channel without --cluster-key on an address other machines reach (anyone there "
     "may join and write)"},
    {"rate-limit", "DCACHE_RATE_LIMIT", NULL, OPT_STRING, OPT(rate_limit), "", 0, 0,
     "RPS[:BURST]: requests a second per token (per address for anonymous clients), bursts of BURST "
     "(default RPS); more get 429 with Retry-After (none: no limit)"},
    {"cors-origins", "DCACHE_CORS_ORIGINS", NULL, OPT_STRING, OPT(cors_origins), "", 0, 0,
     "https://a.example,...: origins whose browser pages may call the API (none: no cross-origin access)"},
    {"audit-dir", "DCACHE_AUDIT_DIR", NULL, OPT_STRING, OPT(audit_dir), "dcache-audit", 0, 0,
     "directory of this node's audit trail, NAME.jsonl rotated by size (deletes, invalidations, warming, tokens "
     "reloads); created if missing"},
    {"audit-file-size", "DCACHE_AUDIT_FILE_SIZE", NULL, OPT_SIZE, OPT(audit_file_size), "64mb", 4096, U64_MAX,
     "size past which the audit file is rotated"},
    {"audit-files", "DCACHE_AUDIT_FILES", NULL, OPT_UINT, OPT(audit_files), "4", 1, 64,
     "rotated audit files kept (the oldest is removed)"},
    {"events-channel", "DCACHE_EVENTS_CHANNEL", NULL, OPT_STRING, OPT(events_channel), "", 0, 0,
     "with --redis: a Redis channel on which the node publishes, as JSON, every delete and invalidation it "
     "received, so applications can drop their own in-process caches (none: no publishing)"},
    {"invalidate-listen", "DCACHE_INVALIDATE_LISTEN", NULL, OPT_STRING, OPT(invalidate_listen), "", 0, 0,
     "a PostgreSQL channel to LISTEN on (with --listen-db or --audit-db): NOTIFY CHANNEL, "
     "'{\"keys\":[...]}' or '{\"pattern\":\"users:*\"}' invalidates cluster-wide (none: no listening)"},
    {"invalidate-subscribe", "DCACHE_INVALIDATE_SUBSCRIBE", NULL, OPT_STRING, OPT(invalidate_subscribe), "", 0, 0,
     "a Redis channel to SUBSCRIBE to on the --redis server: PUBLISH CHANNEL '{\"keys\":[...]}' or "
     "'{\"pattern\":\"users:*\"}' invalidates cluster-wide (none: no subscription)"},
    {"listen-db", "DCACHE_LISTEN_DB", NULL, OPT_STRING, OPT(listen_db), "", 0, 0,
     "PostgreSQL to LISTEN on for --invalidate-listen, postgres://user:password@IP:port/db (none: --audit-db)"},
    {"audit-db", "DCACHE_AUDIT_DB", NULL, OPT_STRING, OPT(audit_db), "", 0, 0,
     "PostgreSQL for the audit trail: postgres://user:password@IP:port/db (table dcache_audit, created if "
     "missing); the files are then its spool while PostgreSQL is away (none: files only)"},
    {"origins", "DCACHE_ORIGINS", NULL, OPT_STRING, OPT(origins), "", 0, 0,
     "JSON file of origins: where a missing key is loaded from (HTTP or PostgreSQL) by its primary, bound to "
     "key patterns; SIGHUP reloads it (none: a miss is a 404)"},
    {"refresh-beta", "DCACHE_REFRESH_BETA", NULL, OPT_STRING, OPT(refresh_beta), "1", 0, 0,
     "refresh-ahead of keys from origins: a read reloads a key early with the probability XFetch gives "
     "(larger: earlier; 0: never, keys then expire and miss)"},
};

#define CONFIG_NOPTS (sizeof config_options / sizeof config_options[0])

bool config_parse_size(const char *s, uint64_t *out)
{
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*s)) return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return false;
    uint64_t mult = 1;
    if (*end) {
        if (strcasecmp(end, "b") == 0) mult = 1;
        else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 || strcasecmp(end, "kib") == 0) mult = 1ull << 10;
        else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 || strcasecmp(end, "mib") == 0) mult = 1ull << 20;
        else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0 || strcasecmp(end, "gib") == 0) mult = 1ull << 30;
        else return false;
    }
    if (v > UINT64_MAX / mult) return false;
    *out = v * mult;
    return true;
}

bool config_parse_duration(const char *s, uint64_t bare_unit_ms, uint64_t *out_ms)
{
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*s)) return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return false;
    uint64_t mult = bare_unit_ms;
    if (*end) {
        if (strcmp(end, "ms") == 0) mult = 1;
        else if (strcmp(end, "s") == 0) mult = 1000;
        else if (strcmp(end, "m") == 0) mult = 60000;
        else if (strcmp(end, "h") == 0) mult = 3600000;
        else if (strcmp(end, "d") == 0) mult = 86400000;
        else return false;
    }
    if (v > UINT64_MAX / mult) return false;
    *out_ms = v * mult;
    return true;
}

static const char *config_type_hint(config_type_t t)
{
    switch (t) {
    case OPT_UINT: return "a whole number";
    case OPT_SIZE: return "a size like 512mb";
    case OPT_DURATION_S: return "seconds, or a duration like 500ms or 2m";
    case OPT_DURATION_MS: return "milliseconds, or a duration like 5s";
    case OPT_BOOL: return "true or false";
    default: return "text";
    }
}

static bool config_set(config_t *cfg, const config_option_t *o, const char *value, const char *source, FILE *err)
{
    void *field = (char *)cfg + o->offset;
    uint64_t v = 0;
    bool ok = true;
    /* A number whose default is none may be left (or set back to) none:
     * config_validate decides what that means. */
    if (o->type != OPT_STRING && !o->def[0] && !value[0]) {
        *(uint64_t *)field = CONFIG_UNSET;
        return true;
    }
    switch (o->type) {
    case OPT_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "on")) {
            *(bool *)field = true;
        } else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no") || !strcmp(value, "off")) {
            *(bool *)field = false;
        } else {
            fprintf(err, "dcache-node: %s: invalid value '%s' (expected true or false)\n", source, value);
            return false;
        }
        return true;
    case OPT_STRING: {
        char *copy = strdup(value);
        if (!copy) return false;
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    case OPT_UINT: {
        char *end;
        errno = 0;
        unsigned long long u = strtoull(value, &end, 10);
        ok = isdigit((unsigned char)*value) && !*end && !errno;
        v = u;
        break;
    }
    case OPT_SIZE: ok = config_parse_size(value, &v); break;
    case OPT_DURATION_S: ok = config_parse_duration(value, 1000, &v); break;
    case OPT_DURATION_MS: ok = config_parse_duration(value, 1, &v); break;
    }
    /* Ranges of durations are in milliseconds whatever the bare unit. */
    uint64_t min = o->min, max = o->max;
    if (ok && (v < min || v > max)) {
        fprintf(err, "dcache-node: %s: value '%s' is out of range\n", source, value);
        return false;
    }
    if (!ok) {
        fprintf(err, "dcache-node: %s: invalid value '%s' (expected %s)\n", source, value, config_type_hint(o->type));
        return false;
    }
    *(uint64_t *)field = v;
    return true;
}

static const char *config_env_lookup(char **envp, const char *name)
{
    size_t nl = strlen(name);
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') return *e + nl + 1;
    }
    return NULL;
}

static void config_usage(FILE *out)
{
    fprintf(out,
            "Usage: dcache-node [OPTION]...\n"
            "A node of dcache, a peer-to-peer clustered cache. With no options it\n"
            "serves a single-node cache on 127.0.0.1:8080 with an in-memory L1.\n\n"
            "Every option can also be set by the environment variable shown.\n\n");
    for (size_t i = 0; i < CONFIG_NOPTS; i++) {
        const config_option_t *o = &config_options[i];
        char left[64];
        if (o->type == OPT_BOOL)
            snprintf(left, sizeof left, "--%s", o->flag);
        else
            snprintf(left, sizeof left, "--%s=%s", o->flag,
                     o->type == OPT_STRING ? "TEXT" : o->type == OPT_SIZE ? "SIZE" : o->type == OPT_UINT ? "N" : "TIME");
        fprintf(out, "  %-28s %s\n", left, o->help);
        fprintf(out, "  %-28s default %s; env %s%s%s\n", "", o->def[0] ? o->def : "none", o->env,
                o->seed_env ? " or " : "",
                o->seed_env ? o->seed_env : "");
    }
    fprintf(out, "  %-28s %s\n  %-28s %s\n", "--help", "print this help and exit", "--version",
            "print the version and exit");
}

bool config_host_is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "[::1]") == 0;
}

/* The next item of a comma-separated list at *p, spaces around it trimmed;
 * false at the end. */
static bool config_list_next(const char **p, const char **item, size_t *len)
{
    if (!**p) return false;
    size_t n = strcspn(*p, ",");
    const char *s = *p, *e = *p + n;
    while (s < e && *s == ' ') s++;
    while (e > s && e[-1] == ' ') e--;
    *item = s;
    *len = (size_t)(e - s);
    *p += n;
    if (**p == ',') (*p)++;
    return true;
}

bool config_origin_listed(const char *list, const char *origin, size_t len)
{
    const char *item;
    size_t n;
    while (config_list_next(&list, &item, &n))
        if (n == len && memcmp(item, origin, len) == 0) return true;
    return false;
}

static bool config_parse_beta(config_t *cfg, FILE *err)
{
    char *end;
    errno = 0;
    double beta = strtod(cfg->refresh_beta, &end);
    if (!isdigit((unsigned char)cfg->refresh_beta[0]) || errno || *end || beta < 0 || beta > 100) {
        fprintf(err, "dcache-node: --refresh-beta: '%s' must be a number from 0 to 100 (1 is XFetch's usual)\n",
                cfg->refresh_beta);
        return false;
    }
    cfg->refresh_beta_value = beta;
    return true;
}

static bool config_parse_rate(config_t *cfg, FILE *err)
{
    cfg->rate_rps = cfg->rate_burst = 0;
    if (!cfg->rate_limit[0]) return true;
    char *end;
    errno = 0;
    double rps = strtod(cfg->rate_limit, &end);
    double burst = rps < 1 ? 1 : ceil(rps);
    bool ok = isdigit((unsigned char)cfg->rate_limit[0]) && !errno && rps > 0 && rps <= 1e7;
    if (ok && *end == ':') {
        const char *b = end + 1;
        unsigned long long v = isdigit((unsigned char)*b) ? strtoull(b, &end, 10) : 0;
        ok = v >= 1 && v <= 100000000;
        burst = (double)v;
    }
    if (!ok || *end) {
        fprintf(err, "dcache-node: --rate-limit: '%s' must be RPS or RPS:BURST (e.g. 100 or 50:200; RPS above 0, "
                     "BURST at least 1)\n", cfg->rate_limit);
        return false;
    }
    cfg->rate_rps = rps;
    cfg->rate_burst = burst;
    return true;
}

static bool config_validate_origins(const char *list, FILE *err)
{
    const char *s;
    size_t len;
    while (config_list_next(&list, &s, &len)) {
        const char *e = s + len;
        size_t scheme = len > 8 && strncmp(s, "https://", 8) == 0 ? 8 : len > 7 && strncmp(s, "http://", 7) == 0 ? 7 : 0;
        bool ok = scheme && len <= 200 && memchr(s + scheme, '/', len - scheme) == NULL;
        for (const char *c = s; ok && c < e; c++) ok = *c > ' ' && *c < 127 && *c != '*';
        if (!ok) {
            fprintf(err, "dcache-node: --cors-origins: '%.*s' is not an origin like https://app.example.com "
                         "(scheme, host, optional port; no path, no wildcard)\n", (int)(len > 200 ? 200 : len), s);
            return false;
        }
    }
    return true;
}

/* What reaches this node from other machines must say who it is, unless the
 * operator says in so many words that anyone may. */
static bool config_validate_security(config_t *cfg, FILE *err)
{
    if (!config_parse_rate(cfg, err) || !config_parse_beta(cfg, err) || !config_validate_origins(cfg->cors_origins, err))
        return false;
    if (!cfg->tokens[0] && !cfg->allow_anonymous && !config_host_is_loopback(cfg->http_host)) {
        fprintf(err, "dcache-node: --http-host %s is reachable from other machines and no --tokens file is "
                     "given: anyone there could read, write and wipe the cache. Give --tokens FILE (see "
                     "dcache-admin token add), or --allow-anonymous to serve it open anyway\n", cfg->http_host);
        return false;
    }
    if ((cfg->public_read || cfg->metrics_auth) && !cfg->tokens[0]) {
        fprintf(err, "dcache-node: --%s only means something with --tokens\n",
                cfg->public_read ? "public-read" : "metrics-auth");
        return false;
    }
    const char *cluster = cfg->cluster_host[0] ? cfg->cluster_host : cfg->http_host;
    bool keyed = cfg->cluster_key[0] || cfg->cluster_keyring[0];
    if (!keyed && !cfg->allow_unsealed && (!config_host_is_loopback(cluster) ||
                                          (cfg->advertise[0] && !config_host_is_loopback(cfg->advertise)))) {
        fprintf(err, "dcache-node: the cluster address %s is reachable from other machines and no --cluster-key is "
                     "given: anyone there could join the cluster and write to it. Give --cluster-key (openssl rand "
                     "-base64 32, the same on every node), or --allow-unsealed to run unauthenticated anyway\n",
                cfg->advertise[0] ? cfg->advertise : cluster);
        return false;
    }
    return true;
}

static bool config_validate(config_t *cfg, FILE *err)
{
    if (strcmp(cfg->eviction, "lru") != 0 && strcmp(cfg->eviction, "lfu") != 0) {
        fprintf(err, "dcache-node: --eviction: '%s' is not a policy (expected lru or lfu)\n", cfg->eviction);
        return false;
    }
    log_level_t lvl;
    if (!log_parse_level(cfg->log_level, &lvl)) {
        fprintf(err, "dcache-node: --log-level: '%s' is not a level (expected debug, info, warn or error)\n",
                cfg->log_level);
        return false;
    }
    if (cfg->max_value_size > LIMITS_VALUE_MAX) {
        fprintf(err, "dcache-node: --max-value-size (%llu bytes) is over %u bytes (8mb): values travel between "
                     "nodes in one peer frame, which carries at most that\n",
                (unsigned long long)cfg->max_value_size, LIMITS_VALUE_MAX);
        return false;
    }
    if (cfg->max_value_size > cfg->l1_max_memory) {
        fprintf(err, "dcache-node: --max-value-size (%llu bytes) is larger than --l1-max-memory (%llu bytes)\n",
                (unsigned long long)cfg->max_value_size, (unsigned long long)cfg->l1_max_memory);
        return false;
    }
    if (cfg->repair_interval_ms && cfg->repair_interval_ms < 1000) {
        fprintf(err, "dcache-node: --repair-interval must be 0 (no repair) or at least 1s: a round scans all of L1\n");
        return false;
    }
    /* No --peer-port, or the cluster port itself: the peer channel shares
     * the cluster port's TCP listener. */
    cfg->peer_shared = cfg->peer_port == CONFIG_UNSET || (cfg->peer_port && cfg->peer_port == cfg->cluster_port);
    if (cfg->peer_shared) cfg->peer_port = cfg->cluster_port;
    if (cfg->probe_timeout_ms >= cfg->probe_interval_ms) {
        fprintf(err, "dcache-node: --probe-timeout must be shorter than --probe-interval\n");
        return false;
    }
    if (strcmp(cfg->write_acks, "all") == 0) {
        cfg->write_acks_n = 0;
    } else {
        char *end = NULL;
        unsigned long v = isdigit((unsigned char)cfg->write_acks[0]) ? strtoul(cfg->write_acks, &end, 10) : 0;
        if (!end || *end || v < 1 || v > cfg->replicas) {
            fprintf(err, "dcache-node: --write-acks: '%s' must be all or a number from 1 to --replicas (%llu)\n",
                    cfg->write_acks, (unsigned long long)cfg->replicas);
            return false;
        }
        cfg->write_acks_n = (unsigned)v;
    }
    if (cfg->cluster_key[0] && cfg->cluster_keyring[0]) {
        fprintf(err, "dcache-node: give --cluster-key or --cluster-keyring, not both\n");
        return false;
    }
    if (strcmp(cfg->l2_write_mode, "sync") != 0 && strcmp(cfg->l2_write_mode, "journal") != 0) {
        fprintf(err, "dcache-node: --l2-write-mode: '%s' must be sync or journal\n", cfg->l2_write_mode);
        return false;
    }
    if (strlen(cfg->l2_prefix) >= 128) {
        fprintf(err, "dcache-node: --l2-prefix is longer than 127 bytes\n");
        return false;
    }
    if (cfg->redis[0] && !config_parse_redis_url(cfg->redis, &cfg->redis_target)) {
        /* Not the URL itself: it may hold a password. */
        fprintf(err, "dcache-node: --redis is not redis://[user:password@]host:port/db\n");
        return false;
    }
    if (cfg->invalidate_listen[0] && !cfg->listen_db[0] && !cfg->audit_db[0]) {
        fprintf(err, "dcache-node: --invalidate-listen needs a PostgreSQL: --listen-db or --audit-db\n");
        return false;
    }
    if (cfg->invalidate_subscribe[0] && (!cfg->redis[0] || cfg->redis_sentinel[0])) {
        fprintf(err, "dcache-node: --invalidate-subscribe needs --redis (and no --redis-sentinel yet)\n");
        return false;
    }
    if (cfg->events_channel[0] && !cfg->redis[0] && !cfg->redis_sentinel[0]) {
        fprintf(err, "dcache-node: --events-channel publishes on Redis: it needs --redis\n");
        return false;
    }
    return config_validate_security(cfg, err);
}

bool config_parse_redis_url(const char *url, config_redis_t *out)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0) p += 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : 0;
        size_t plen = colon ? (size_t)(at - colon - 1) : (size_t)(at - p);
        const char *pw = colon ? colon + 1 : p;
        if (ulen >= sizeof out->user || plen >= sizeof out->password) return false;
        memcpy(out->user, p, ulen);
        memcpy(out->password, pw, plen);
        p = at + 1;
    }
    const char *host_end;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close) return false;
        p++;
        host_end = close;
    } else {
        host_end = p + strcspn(p, ":/");
    }
    size_t hlen = (size_t)(host_end - p);
    if (hlen == 0 || hlen >= sizeof out->host) return false;
    memcpy(out->host, p, hlen);
    p = host_end + (*host_end == ']');
    if (*p == ':') {
        char *end;
        unsigned long port = isdigit((unsigned char)p[1]) ? strtoul(p + 1, &end, 10) : 0;
        if (port < 1 || port > 65535) return false;
        out->port = (int)port;
        p = end;
    }
    if (*p == '/') {
        if (p[1] == '\0') return true;
        char *end;
        unsigned long db = isdigit((unsigned char)p[1]) ? strtoul(p + 1, &end, 10) : 100000;
        if (db > 65535 || *end) return false;
        out->db = (int)db;
        return true;
    }
    return *p == '\0';
}

config_result_t config_load(config_t *cfg, int argc, char **argv, char **envp, FILE *out, FILE *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!envp) envp = environ;
    for (size_t i = 0; i < CONFIG_NOPTS; i++) {
        const config_option_t *o = &config_options[i];
        char src[96];
        if (!config_set(cfg, o, o->def, "default", err)) return CONFIG_ERROR;
        const char *v;
        if (o->seed_env && (v = config_env_lookup(envp, o->seed_env))) {
            snprintf(src, sizeof src, "environment %s", o->seed_env);
            if (!config_set(cfg, o, v, src, err)) return CONFIG_ERROR;
        }
        if ((v = config_env_lookup(envp, o->env))) {
            snprintf(src, sizeof src, "environment %s", o->env);
            if (!config_set(cfg, o, v, src, err)) return CONFIG_ERROR;
        }
    }
    /* The seed's separate REDIS_HOST / REDIS_PORT / REDIS_PASSWORD make a URL
     * when no URL is given (a --redis flag below still wins). */
    const char *rh = config_env_lookup(envp, "REDIS_HOST");
    if (!cfg->redis[0] && rh && rh[0]) {
        const char *rp = config_env_lookup(envp, "REDIS_PORT"), *pw = config_env_lookup(envp, "REDIS_PASSWORD");
        char url[1024];
        snprintf(url, sizeof url, "redis://%s%s%s%s:%s", pw && pw[0] ? ":" : "", pw && pw[0] ? pw : "",
                 pw && pw[0] ? "@" : "", rh, rp && rp[0] ? rp : "6379");
        free(cfg->redis);
        cfg->redis = strdup(url);
        if (!cfg->redis) return CONFIG_ERROR;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            config_usage(out);
            return CONFIG_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0) {
            fprintf(out, "dcache-node %s\n", PACKAGE_VERSION);
            return CONFIG_EXIT_OK;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "dcache-node: unexpected argument '%s' (see --help)\n", a);
            return CONFIG_ERROR;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const config_option_t *o = NULL;
        for (size_t k = 0; k < CONFIG_NOPTS; k++) {
            if (strlen(config_options[k].flag) == nl && strncmp(config_options[k].flag, name, nl) == 0) {
                o = &config_options[k];
                break;
            }
        }
        if (!o) {
            fprintf(err, "dcache-node: unknown option '--%.*s' (see --help)\n", (int)nl, name);
            return CONFIG_ERROR;
        }
        const char *value = eq ? eq + 1 : NULL;
        /* A switch alone means on; it never takes the next argument. */
        if (!value && o->type == OPT_BOOL) value = "true";
        if (!value) {
            if (i + 1 >= argc) {
                fprintf(err, "dcache-node: option '--%s' needs a value\n", o->flag);
                return CONFIG_ERROR;
            }
            value = argv[++i];
        }
        char src[96];
        snprintf(src, sizeof src, "--%s", o->flag);
        if (!config_set(cfg, o, value, src, err)) return CONFIG_ERROR;
    }
    return config_validate(cfg, err) ? CONFIG_OK : CONFIG_ERROR;
}

void config_free(config_t *cfg)
{
    for (size_t i = 0; i < CONFIG_NOPTS; i++) {
        if (config_options[i].type == OPT_STRING) {
            char **p = (char **)((char *)cfg + config_options[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}
