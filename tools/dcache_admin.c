/* dcache-admin: the operator's command-line client for a dcache node.
 *
 * This file parses the command line and prints help; the commands live in
 * admin_cache.c (get, put, del, keys), admin_ops.c (invalidate,
 * invalidate-pattern, preview, metrics, health, members, ring) and
 * admin_audit.c (audit), admin_warm.c (warm), admin_token.c (token add),
 * HTTP in admin_http.c.
 */
#include "autoconfig.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/admin.h"
#include "tools/admin_audit.h"
#include "tools/admin_cache.h"
#include "tools/admin_fmt.h"
#include "tools/admin_http.h"
#include "tools/admin_ops.h"
#include "tools/admin_token.h"
#include "tools/admin_warm.h"

#define DEFAULT_NODE "http://127.0.0.1:8080"
#define DEFAULT_TIMEOUT_S 30

/* Options; the ones past O_GLOBAL_END belong to some commands only. */
enum {
    O_NODE, O_JSON, O_TIMEOUT, O_TOKEN, O_HELP, O_VERSION, O_GLOBAL_END,
    O_TTL = O_GLOBAL_END, O_CONTENT_TYPE, O_FILE, O_LIMIT, O_CURSOR, O_ALL, O_DRY_RUN, O_KEY,
    O_SINCE, O_UNTIL, O_ACTION, O_ACTOR,
    O_COUNT
};

static const struct option_def {
    const char *name;
    char short_name;
    bool has_arg;
} option_defs[O_COUNT] = {
    [O_NODE] = {"node", 0, true},
    [O_JSON] = {"json", 0, false},
    [O_TIMEOUT] = {"timeout", 0, true},
    [O_TOKEN] = {"token", 0, true},
    [O_HELP] = {"help", 'h', false},
    [O_VERSION] = {"version", 'V', false},
    [O_TTL] = {"ttl", 0, true},
    [O_CONTENT_TYPE] = {"content-type", 0, true},
    [O_FILE] = {"file", 0, true},
    [O_LIMIT] = {"limit", 0, true},
    [O_CURSOR] = {"cursor", 0, true},
    [O_ALL] = {"all", 0, false},
    [O_DRY_RUN] = {"dry-run", 0, false},
    [O_KEY] = {"key", 0, true},
    [O_SINCE] = {"since", 0, true},
    [O_UNTIL] = {"until", 0, true},
    [O_ACTION] = {"action", 0, true},
    [O_ACTOR] = {"actor", 0, true},
};

#define BIT(o) (1u << (o))

static const struct command {
    const char *name;
    const char *synopsis;
    int min_args, max_args; /* max -1: no limit */
    unsigned options;       /* command-specific options it accepts */
    int (*run)(admin_http *h, const admin_opts *o);
    const char *help;       /* synopsis line, then indented description */
} commands[] = {
    {"get", "get KEY",
     1, 1, 0, admin_cache_get,
     "  get KEY                     Print the value of KEY exactly as stored (raw\n"
     "                              bytes, no newline added). Exit 1 when absent.\n"},
    {"put", "put KEY [VALUE] [--ttl SECONDS] [--content-type TYPE] [--file PATH]",
     1, 2, BIT(O_TTL) | BIT(O_CONTENT_TYPE) | BIT(O_FILE), admin_cache_put,
     "  put KEY [VALUE]             Store VALUE under KEY and print its version and\n"
     "                              TTL. With VALUE '-', or without VALUE when stdin\n"
     "                              is not a terminal, the value is read from stdin.\n"
     "      --ttl SECONDS           expire after SECONDS (suffix s, m, h or d allowed;\n"
     "                              0 = never); default: the node's default TTL\n"
     "      --content-type TYPE     Content-Type stored with the value\n"
     "                              (default: application/octet-stream)\n"
     "      --file PATH             read the value from PATH ('-' = stdin)\n"},
    {"del", "del KEY",
     1, 1, 0, admin_cache_del,
     "  del KEY                     Delete KEY; prints \"deleted: yes\" or \"deleted: no\".\n"},
    {"keys", "keys [PATTERN] [--limit N] [--cursor C] [--all]",
     0, 1, BIT(O_LIMIT) | BIT(O_CURSOR) | BIT(O_ALL), admin_cache_keys,
     "  keys [PATTERN]              List keys (all, or those matching PATTERN) as a\n"
     "                              table KEY SIZE (bytes) TTL (seconds left). When more\n"
     "                              remain, stderr says which --cursor continues.\n"
     "      --limit N               at most N keys per page (default: the node's)\n"
     "      --cursor C              continue a listing where a page stopped\n"
     "      --all                   follow the cursor to the end of the listing\n"},
    {"invalidate", "invalidate KEY...",
     1, -1, 0, admin_ops_invalidate,
     "  invalidate KEY...           Invalidate the keys on every node of the cluster\n"
     "                              and print how many were invalidated.\n"},
    {"invalidate-pattern", "invalidate-pattern PATTERN [--dry-run]",
     1, 1, BIT(O_DRY_RUN), admin_ops_invalidate_pattern,
     "  invalidate-pattern PATTERN  Invalidate every key matching PATTERN on every\n"
     "                              node; prints how many matched and were invalidated.\n"
     "      --dry-run               only count the matches; invalidate nothing\n"},
    {"preview", "preview PATTERN [--limit N]",
     1, 1, BIT(O_LIMIT), admin_ops_preview,
     "  preview PATTERN             Count the keys matching PATTERN and list a sample\n"
     "                              (what invalidate-pattern would hit).\n"
     "      --limit N               size of the sample (default: the node's)\n"},
    {"metrics", "metrics",
     0, 0, 0, admin_ops_metrics,
     "  metrics                     Summary: hits, misses, hit rate, requests, entries,\n"
     "                              bytes, evictions, expirations, invalidations,\n"
     "                              uptime, and latency per operation (count, p50, p90,\n"
     "                              p95, p99 in ms).\n"},
    {"health", "health",
     0, 0, 0, admin_ops_health,
     "  health                      Liveness (/health) and readiness (/ready) with the\n"
     "                              status of each dependency. Exit 1 when the node is\n"
     "                              not healthy or not ready.\n"},
    {"members", "members",
     0, 0, 0, admin_ops_members,
     "  members                     Cluster members as this node sees them: name, state\n"
     "                              (alive, suspect, dead, left), addresses, zone,\n"
     "                              incarnation.\n"},
    {"ring", "ring [--key KEY]",
     0, 0, BIT(O_KEY), admin_ops_ring,
     "  ring [--key KEY]            The hash ring this node routes with: its version\n"
     "                              (local to the node), owners per key, balance\n"
     "                              (busiest share / mean share), then each member's\n"
     "                              zone, peer and HTTP addresses and the share of\n"
     "                              the key hash space it owns as primary (percent).\n"
     "      --key KEY               also print the owners of KEY, primary first\n"},
    {"audit", "audit [--since T] [--until T] [--action A] [--actor A] [--limit N] [--cursor C] [--all]",
     0, 0, BIT(O_SINCE) | BIT(O_UNTIL) | BIT(O_ACTION) | BIT(O_ACTOR) | BIT(O_LIMIT) | BIT(O_CURSOR) | BIT(O_ALL),
     admin_audit,
     "  audit                       The node's audit trail, newest first: time, node,\n"
     "                              actor (token name or client address), action,\n"
     "                              status, result, invalidated/matched, keys or\n"
     "                              pattern. Needs an admin token with --tokens.\n"
     "      --since T, --until T    bounds: an age (90s, 30m, 1h, 7d), an RFC 3339\n"
     "                              UTC time (2026-12-02T16:00:00Z) or epoch ms\n"
     "      --action A              delete, invalidate, invalidate_pattern, warm,\n"
     "                              warm_job, tokens_reload or origins_reload\n"
     "      --actor A               a token name, or a client address\n"
     "      --limit N               records per page (default 100, at most 1000)\n"
     "      --cursor C              the page after the one that printed C\n"
     "      --all                   follow the pages to the end\n"},
    {"warm", "warm jobs | add FILE | delete NAME | run NAME | keys KEY... | pattern PATTERN | cancel NAME | "
             "history [--limit N]",
     1, -1, BIT(O_LIMIT), admin_warm,
     "  warm SUBCOMMAND             Warming jobs (README \"Warming\"):\n"
     "    jobs                      the jobs: name, source, schedule, priority,\n"
     "                              enabled, next run, last run (state, keys,\n"
     "                              loaded, failed), the run in progress (keys done\n"
     "                              of the list, or of those taken so far) and FILE\n"
     "                              (yes: declared in the --origins file, read-only)\n"
     "    add FILE                  create or replace a job from a JSON file ('-' =\n"
     "                              stdin): {\"name\": N, \"source\": {\"keys\": [...]}}\n"
     "    delete NAME               delete a job\n"
     "    run NAME                  run a job now\n"
     "    keys KEY...               warm these keys now (an ad-hoc run on this node);\n"
     "                              prints the run's id\n"
     "    pattern PATTERN           warm the keys Redis holds that match PATTERN now\n"
     "                              (an ad-hoc SCAN); prints the run's id\n"
     "    cancel NAME               stop the job's run, on whichever node runs it\n"
     "    history [--limit N]       runs, newest first: id, job, node, trigger,\n"
     "                              state, start, duration, keys, loaded, missing,\n"
     "                              failed, keys/s (and why, when one failed)\n"
     "      --limit N               at most N runs (default 50, at most 200)\n"},
    {"token", "token add NAME ROLE --file FILE",
     3, 3, BIT(O_FILE), NULL, /* talks to no node: main runs admin_token_run */
     "  token add NAME ROLE --file FILE\n"
     "                              Make a random API token for NAME with ROLE\n"
     "                              (reader, writer or admin), append its line (the\n"
     "                              name, role and a hash, never the token) to FILE,\n"
     "                              the nodes' --tokens file, created mode 0600, and\n"
     "                              print the token: this once, it is kept nowhere.\n"
     "                              Then copy FILE to the nodes and send them SIGHUP.\n"
     "      --file FILE             the tokens file\n"},
    {"help", "help [COMMAND]",
     0, 1, 0, NULL,
     "  help [COMMAND]              This text, or the part about COMMAND.\n"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char global_help[] =
    "Global options (they may come before or after the command):\n"
    "  --node URL          the node to talk to (default: $DCACHE_NODE, else\n"
    "                      " DEFAULT_NODE "); any node of a cluster serves the\n"
    "                      whole API\n"
    "  --json              print JSON instead of text: the node's response as is\n"
    "                      (keys --all: every page merged; health: /health and\n"
    "                      /ready together; get: an object with the value and\n"
    "                      its metadata, described at the end of --help)\n"
    "  --timeout SECONDS   give up on a request after SECONDS (default: 30; 0 = wait\n"
    "                      forever; fractions allowed)\n"
    "  --token TOKEN       send \"Authorization: Bearer TOKEN\" (default: $DCACHE_TOKEN)\n"
    "  -h, --help          show this help (or a command's, after it) and exit\n"
    "  -V, --version       show the version and exit\n";

static const char footer_help[] =
    "Options take their value as the next argument or after '=' (--ttl=60). A lone\n"
    "'--' ends the options: later arguments that start with '-' are keys or values\n"
    "(dcache-admin put -- -key- -value-).\n"
    "\n"
    "Patterns use Redis glob syntax: * ? [a-z] [^a] and \\ to escape. Quote them so\n"
    "the shell leaves them alone: dcache-admin keys 'users:*' --limit 10\n"
    "\n"
    "Keys may hold any bytes; they are percent-encoded in URLs. Bytes that are not\n"
    "printable UTF-8 are shown as \\xNN in tables.\n"
    "\n"
    "get --json prints an object: key, value (or value_base64 when the value is not\n"
    "UTF-8), content_type, etag, ttl (seconds left, -1 = no expiry), cache (the\n"
    "X-Cache header), version and size.\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  not found, not ready, or an error answered by the node (its message and\n"
    "     code are printed on stderr), or a local I/O error\n"
    "  2  usage error\n"
    "  3  cannot connect to the node\n"
    "\n"
    "Environment:\n"
    "  DCACHE_NODE   default for --node\n"
    "  DCACHE_TOKEN  default for --token\n";

static void print_help(const struct command *only)
{
    if (only) {
        printf("Usage: dcache-admin [GLOBAL OPTIONS] %s\n\n%s", only->synopsis, only->help);
        printf("\n%s\nSee 'dcache-admin --help' for everything else.\n", global_help);
        return;
    }
    printf("Usage: dcache-admin [OPTIONS] COMMAND [ARGS]\n"
           "\n"
           "Operate a dcache node: read and write keys, invalidate, inspect metrics,\n"
           "health and the cluster, run warming jobs.\n"
           "\n"
           "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fputs(commands[i].help, stdout);
    printf("\n%s\n%s", global_help, footer_help);
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int __attribute__((format(printf, 1, 2))) usage(const char *fmt, ...)
{
    va_list ap;
    fputs("dcache-admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'dcache-admin --help'.\n", stderr);
    return ADMIN_EXIT_USAGE;
}

/* A non-negative integer, with an optional unit suffix when `units`. */
static bool parse_count(const char *s, bool units, long long max, long long *out)
{
    char *end;
    long long v, mul = 1;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno)
        return false;
    if (units && *end && !end[1]) {
        switch (*end) {
        case 's': mul = 1; break;
        case 'm': mul = 60; break;
        case 'h': mul = 3600; break;
        case 'd': mul = 86400; break;
        default: return false;
        }
        end++;
    }
    if (*end || v > max / mul)
        return false;
    *out = v * mul;
    return true;
}

typedef struct parsed {
    const char *values[O_COUNT]; /* value of each option given (last wins) */
    unsigned given;              /* BIT(option) for each option given */
    char **pos;                  /* positional arguments, command first */
    int npos;
} parsed;

static int parse_args(int argc, char **argv, parsed *p)
{
    bool ended = false;

    memset(p, 0, sizeof *p);
    p->pos = admin_fmt_xmalloc((size_t)argc * sizeof *p->pos);
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        const char *inline_value = NULL;
        size_t name_len;
        int o;

        if (ended || a[0] != '-' || a[1] == '\0') {
            p->pos[p->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            ended = true;
            continue;
        }
        for (o = 0; o < O_COUNT; o++) {
            const struct option_def *d = &option_defs[o];
            if (a[1] != '-') {
                if (d->short_name && a[1] == d->short_name && a[2] == '\0')
                    break;
                continue;
            }
            name_len = strlen(d->name);
            if (strncmp(a + 2, d->name, name_len) == 0 &&
                (a[2 + name_len] == '\0' || (a[2 + name_len] == '=' && d->has_arg))) {
                if (a[2 + name_len] == '=')
                    inline_value = a + 3 + name_len;
                break;
            }
        }
        if (o == O_COUNT) {
            if (a[1] == '-' && strchr(a, '='))
                return usage("unknown option '%s' (or it takes no value)", a);
            return usage("unknown option '%s' (use '--' before keys or values that start "
                         "with '-')", a);
        }
        if (option_defs[o].has_arg && !inline_value) {
            if (i + 1 >= argc)
                return usage("option '%s' needs a value", a);
            inline_value = argv[++i];
        }
        p->values[o] = inline_value;
        p->given |= BIT(o);
    }
    return ADMIN_EXIT_OK;
}

/* Fill admin_opts from the parsed command line and the environment. */
static int build_opts(const parsed *p, const struct command *cmd, admin_opts *o)
{
    const char *env;
    long long n;

    memset(o, 0, sizeof *o);
    for (int i = O_GLOBAL_END; i < O_COUNT; i++) {
        if ((p->given & BIT(i)) && !(cmd->options & BIT(i))) {
            fprintf(stderr, "dcache-admin: option '--%s' does not apply to '%s'\n",
                    option_defs[i].name, cmd->name);
            fputs("Try 'dcache-admin help ", stderr);
            fprintf(stderr, "%s'.\n", cmd->name);
            return ADMIN_EXIT_USAGE;
        }
    }
    o->args = p->pos + 1;
    o->nargs = p->npos - 1;
    if (o->nargs < cmd->min_args || (cmd->max_args >= 0 && o->nargs > cmd->max_args)) {
        fprintf(stderr, "dcache-admin: wrong number of arguments for '%s'\n", cmd->name);
        fprintf(stderr, "Usage: dcache-admin %s\nTry 'dcache-admin help %s'.\n", cmd->synopsis,
                cmd->name);
        return ADMIN_EXIT_USAGE;
    }
    for (int i = 0; i < o->nargs; i++) {
        /* put's VALUE may be empty; keys and patterns may not. */
        if (o->args[i][0] == '\0' && !(strcmp(cmd->name, "put") == 0 && i == 1))
            return usage("%s", "an empty key or pattern is not allowed");
    }

    env = getenv("DCACHE_NODE");
    o->node = p->values[O_NODE] ? p->values[O_NODE] : env && *env ? env : DEFAULT_NODE;
    env = getenv("DCACHE_TOKEN");
    o->token = p->values[O_TOKEN] ? p->values[O_TOKEN] : env && *env ? env : NULL;
    o->json = p->given & BIT(O_JSON);
    o->timeout_ms = DEFAULT_TIMEOUT_S * 1000L;
    if (p->values[O_TIMEOUT]) {
        char *end;
        double s = strtod(p->values[O_TIMEOUT], &end);
        if (end == p->values[O_TIMEOUT] || *end || !isfinite(s) || s < 0 || s > 86400.0 * 365)
            return usage("--timeout wants a number of seconds, not '%s'", p->values[O_TIMEOUT]);
        o->timeout_ms = (long)ceil(s * 1000);
    }
    if (p->values[O_TTL]) {
        if (!parse_count(p->values[O_TTL], true, 100LL * 365 * 86400, &n))
            return usage("--ttl wants seconds (e.g. 60, 90s, 15m, 2h, 7d), not '%s'",
                         p->values[O_TTL]);
        o->has_ttl = true;
        o->ttl = n;
    }
    if (p->values[O_LIMIT]) {
        if (!parse_count(p->values[O_LIMIT], false, 1000000000, &n) || n == 0)
            return usage("--limit wants a positive integer, not '%s'", p->values[O_LIMIT]);
        o->limit = (long)n;
    }
    if (p->values[O_CONTENT_TYPE]) {
        if (!p->values[O_CONTENT_TYPE][0] || strpbrk(p->values[O_CONTENT_TYPE], "\r\n"))
            return usage("--content-type wants a media type, not '%s'",
                         p->values[O_CONTENT_TYPE]);
        o->content_type = p->values[O_CONTENT_TYPE];
    }
    o->file = p->values[O_FILE];
    if (o->file && !o->file[0])
        return usage("%s", "--file wants a path");
    o->cursor = p->values[O_CURSOR];
    o->all = p->given & BIT(O_ALL);
    o->dry_run = p->given & BIT(O_DRY_RUN);
    o->since = p->values[O_SINCE];
    o->until = p->values[O_UNTIL];
    o->action = p->values[O_ACTION];
    o->actor = p->values[O_ACTOR];
    o->key = p->values[O_KEY];
    if (o->key && !o->key[0])
        return usage("%s", "--key wants a key");
    return ADMIN_EXIT_OK;
}

int main(int argc, char **argv)
{
    const struct command *cmd = NULL;
    parsed p;
    admin_opts o;
    admin_http h;
    int rc = parse_args(argc, argv, &p);

    if (rc != ADMIN_EXIT_OK)
        goto out;
    if (p.npos > 0 && !(cmd = find_command(p.pos[0])) &&
        !(p.given & (BIT(O_HELP) | BIT(O_VERSION)))) {
        rc = usage("unknown command '%s'", p.pos[0]);
        goto out;
    }
    if (p.given & BIT(O_VERSION)) {
        printf("dcache-admin %s\n", PACKAGE_VERSION);
    } else if (cmd && strcmp(cmd->name, "help") == 0) {
        const struct command *about = p.npos > 1 ? find_command(p.pos[1]) : NULL;
        if (p.npos > 2)
            rc = usage("%s", "help takes at most one command");
        else if (p.npos > 1 && !about)
            rc = usage("unknown command '%s'", p.pos[1]);
        else
            print_help(about);
    } else if (p.given & BIT(O_HELP)) {
        print_help(cmd);
    } else if (!cmd) {
        rc = usage("%s", "no command given");
    } else if (strcmp(cmd->name, "token") == 0) {
        if ((rc = build_opts(&p, cmd, &o)) == ADMIN_EXIT_OK) rc = admin_token_run(&o);
    } else if ((rc = build_opts(&p, cmd, &o)) == ADMIN_EXIT_OK &&
               (rc = admin_http_init(&h, o.node, o.timeout_ms, o.token)) == ADMIN_EXIT_OK) {
        rc = cmd->run(&h, &o);
        admin_http_free(&h);
    }
out:
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "dcache-admin: cannot write the output: %s\n", strerror(errno));
        if (rc == ADMIN_EXIT_OK)
            rc = ADMIN_EXIT_FAIL;
    }
    free(p.pos);
    return rc;
}
