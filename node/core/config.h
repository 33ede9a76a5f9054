/* config: dcache-node's settings from defaults, environment and flags.
 *
 * Every option has a flag (--http-port) and an environment variable of the
 * same name (DCACHE_HTTP_PORT); some also accept the seed's historical name
 * (CACHE_MANAGER_PORT, L1_CACHE_MAX_SIZE, ...). Precedence: flag, then
 * DCACHE_* variable, then the historical variable, then the default. One
 * table in config.c drives parsing, validation and --help, so they cannot
 * disagree.
 *
 * Ownership: config_t holds copies of every string; config_free() releases
 * them. Read-only after parsing, so any thread may read it.
 */
#ifndef DCACHE_CONFIG_H
#define DCACHE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where Redis is, parsed from --redis. */
typedef struct config_redis {
    char host[256];
    int port;
    char user[128];
    char password[256];
    int db;
} config_redis_t;

typedef struct config {
    char *http_host;
    uint64_t http_port;
    uint64_t workers;             /* 0 = one per core */
    uint64_t l1_max_entries;      /* 0 = no entry limit (memory alone) */
    uint64_t l1_max_memory;       /* bytes */
    uint64_t max_value_size;      /* bytes */
    char *eviction;               /* "lru" or "lfu" */
    uint64_t default_ttl_ms;
    uint64_t max_header_size;     /* bytes */
    uint64_t max_request_body;    /* bytes, for JSON API bodies */
    uint64_t header_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t max_connections;
    char *log_level;
    uint64_t metrics_interval_ms;
    /* Cluster membership (SWIM). */
    char *name;                   /* "" = host name:cluster port */
    char *cluster_host;           /* "" = --http-host */
    uint64_t cluster_port;
    char *advertise;              /* "" = --cluster-host */
    char *seeds;
    char *zone;
    char *cluster_key;            /* base64, 32 bytes */
    char *cluster_keyring;        /* file path */
    uint64_t probe_interval_ms;
    uint64_t probe_timeout_ms;
    uint64_t gossip_interval_ms;
    uint64_t push_pull_interval_ms;
    uint64_t suspicion_mult;
    uint64_t indirect_checks;
    uint64_t gossip_nodes;
    /* Data path (ring, peer channel). */
    uint64_t peer_port;           /* --peer-port; the cluster port when peer_shared */
    bool peer_shared;             /* no --peer-port (or the cluster port): the peer
                                   * channel shares the cluster port's TCP listener */
    uint64_t replicas;            /* owners per key, 1..5 */
    char *write_acks;             /* "all" or a number */
    unsigned write_acks_n;        /* parsed: 0 = all */
    uint64_t peer_connect_timeout_ms;
    uint64_t peer_timeout_ms;
    uint64_t sync_timeout_ms;     /* --sync-timeout */
    uint64_t repair_interval_ms;  /* --repair-interval, 0 = no repair rounds */
    uint64_t tombstone_grace_ms;  /* --tombstone-grace: the L1 tombstones' lifetime */
    uint64_t handoff_rate;        /* entries per second, 0 = unlimited */
    /* L2 (Redis). */
    char *redis;                  /* URL; "" = no L2 */
    config_redis_t redis_target;  /* parsed */
    char *redis_sentinel;         /* "host:port,..." or "" */
    char *redis_master;
    char *l2_prefix;
    char *l2_write_mode;          /* "sync" or "journal" */
    uint64_t l2_timeout_ms;
    uint64_t l2_connect_timeout_ms;
    uint64_t l2_pipeline;
    char *l2_journal_dir;
    uint64_t l2_journal_max;
    uint64_t l2_tombstone_ttl_ms;
    uint64_t max_clock_drift_ms;
    /* Security. */
    char *tokens;                 /* --tokens FILE, "" = no tokens: open API */
    bool public_read;             /* anonymous clients may GET values */
    bool metrics_auth;            /* /metrics needs a reader token */
    bool allow_anonymous;         /* no tokens on a non-loopback address */
    bool allow_unsealed;          /* no cluster key on a non-loopback address */
    char *rate_limit;             /* "RPS[:BURST]", "" = none */
    double rate_rps;              /* parsed; 0 = no limit */
    double rate_burst;
    char *cors_origins;           /* "https://a.example,..." */
    char *audit_dir;
    uint64_t audit_file_size;
    uint64_t audit_files;
    char *audit_db;               /* PostgreSQL conninfo, "" = files only */
    char *events_channel;         /* Redis channel for invalidation events, "" = none */
    char *invalidate_listen;      /* PostgreSQL channel to LISTEN on, "" = none */
    char *listen_db;              /* its PostgreSQL, "" = --audit-db */
    char *invalidate_subscribe;   /* Redis channel to SUBSCRIBE to, "" = none */
    char *origins;                /* --origins FILE, "" = no read-through */
    char *refresh_beta;           /* XFetch's beta as given */
    double refresh_beta_value;    /* parsed; 0 = no refresh-ahead */
} config_t;

/* A number option with no default that was not given (before validation). */
#define CONFIG_UNSET UINT64_MAX

typedef enum {
    CONFIG_OK = 0,
    CONFIG_EXIT_OK,     /* --help or --version was printed */
    CONFIG_ERROR,       /* a message was printed to the error stream */
} config_result_t;

/* Fills `cfg` from defaults, `envp` (NULL = environ) and argv. Writes
 * --help/--version to `out` and errors to `err`. */
config_result_t config_load(config_t *cfg, int argc, char **argv, char **envp, FILE *out, FILE *err);
void config_free(config_t *cfg);

/* redis://[user:password@]host[:port][/db] (also host:port); false when
 * malformed. */
bool config_parse_redis_url(const char *url, config_redis_t *out);
/* True for an address only this machine reaches (127.0.0.0/8, ::1,
 * localhost). */
bool config_host_is_loopback(const char *host);
/* True when `origin` (len bytes, from an Origin header) is in the
 * comma-separated list. */
bool config_origin_listed(const char *list, const char *origin, size_t len);

/* "512mb" -> 536870912; plain numbers are bytes. Returns false when malformed. */
bool config_parse_size(const char *s, uint64_t *out);
/* "10s", "500ms", "2m", "1h"; a plain number is in `bare_unit_ms` units. */
bool config_parse_duration(const char *s, uint64_t bare_unit_ms, uint64_t *out_ms);

#endif
