/* dcache-admin: types shared by the command-line client's modules.
 *
 * The client is single-threaded; nothing here is safe to share between
 * threads. Strings in admin_opts are borrowed from argv or the environment
 * and live as long as the process.
 */
#ifndef DCACHE_ADMIN_H
#define DCACHE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

/* Process exit codes. Documented in `dcache-admin --help`. */
enum {
    ADMIN_EXIT_OK = 0,      /* success */
    ADMIN_EXIT_FAIL = 1,    /* not found, not ready, server or I/O error */
    ADMIN_EXIT_USAGE = 2,   /* bad command line */
    ADMIN_EXIT_CONNECT = 3, /* cannot connect to the node */
};

/* Everything the command line says, once parsed. */
typedef struct admin_opts {
    const char *node;         /* base URL, e.g. http://127.0.0.1:8080 */
    const char *token;        /* bearer token, NULL for none */
    long timeout_ms;          /* per request; 0 = no limit */
    bool json;                /* print JSON instead of text */

    /* put */
    bool has_ttl;
    long long ttl;            /* seconds, >= 0 */
    const char *content_type; /* NULL: application/octet-stream */
    const char *file;         /* NULL: VALUE argument or stdin */

    /* keys, preview */
    long limit;               /* 0: server default */
    const char *cursor;       /* NULL: start */
    bool all;                 /* keys: follow cursors to the end */

    /* invalidate-pattern */
    bool dry_run;

    /* audit */
    const char *since, *until;  /* NULL: unbounded */
    const char *action, *actor; /* NULL: any */

    /* ring */
    const char *key;          /* --key: also show this key's owners; NULL: none */

    /* positional arguments after the command name */
    char **args;
    int nargs;
} admin_opts;

#endif
