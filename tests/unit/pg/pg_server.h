/* pg_server: real PostgreSQL servers for tests, each on a free loopback
 * port with its own cluster (initdb -A trust, user "dcache", no fsync) in a
 * temporary directory that also holds its Unix socket and its logs.
 *
 * The binaries are $PG_BINDIR's, else the newest /usr/lib/postgresql/N/bin.
 * initdb and postgres refuse to run as root: when the test runs as root
 * (CI does) they run as the "postgres" system user (Debian's package
 * creates it), who is given the directory.
 *
 * Cleanup holds on failure too: the postmaster dies with the test process
 * (PR_SET_PDEATHSIG, so even a crash or a SIGKILL of the test takes it
 * along, and its backends follow it), and an atexit handler kills the ones
 * a failed test left behind. Readiness is polled (a connection accepted)
 * with a deadline, never slept on.
 *
 * Threads: the test's main thread only (the death signal follows the
 * thread that forked).
 */
#ifndef DCACHE_TEST_PG_SERVER_H
#define DCACHE_TEST_PG_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct pg_server {
    pid_t pid;     /* the postmaster; 0: not running */
    int port;
    bool stopped;  /* SIGSTOPped */
    char dir[128]; /* "" until started; the cluster is in dir/data */
} pg_server_t;

/* The directory holding initdb and postgres; NULL if none (the caller
 * reports it: CI installs postgresql). */
const char *pg_server_bindir(void);
/* A loopback TCP port nothing listens on right now. */
int pg_server_free_port(void);
/* Creates a cluster and starts it on port (0: a free one), waiting until it
 * accepts connections; false (with its logs on stderr) if that fails or
 * takes longer than max_ms. */
bool pg_server_start(pg_server_t *s, int port, uint64_t max_ms);
/* Starts it again after pg_server_kill, on the same port and cluster. */
bool pg_server_restart(pg_server_t *s, uint64_t max_ms);
/* SIGSTOP / SIGCONT, the postmaster and every backend: the kernel still
 * accepts connections, nobody answers. */
void pg_server_pause(pg_server_t *s);
void pg_server_resume(pg_server_t *s);
/* SIGKILL of the postmaster and its backends, reaped or gone (so a restart
 * finds the shared memory free). Idempotent. */
void pg_server_kill(pg_server_t *s);
/* Kills it and removes its directory. Idempotent. */
void pg_server_remove(pg_server_t *s);
/* "postgres://dcache@127.0.0.1:<port>/postgres" */
void pg_server_uri(const pg_server_t *s, char *out, size_t cap);

#endif
