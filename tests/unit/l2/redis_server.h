/* redis_server: real redis-server processes for tests, each on a free
 * loopback port in its own temporary directory, with no persistence
 * (--save '' --appendonly no) and its log in that directory.
 *
 * Cleanup holds on failure too: a server dies with the test process
 * (PR_SET_PDEATHSIG, so even a crash or a SIGKILL of the test takes it
 * along), and an atexit handler kills the ones a failed test left behind.
 * Readiness is polled (PING answered) with a deadline, never slept on.
 *
 * Threads: the test's main thread only (the death signal follows the
 * thread that forked).
 */
#ifndef DCACHE_TEST_REDIS_SERVER_H
#define DCACHE_TEST_REDIS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct redis_server {
    pid_t pid;         /* 0: not running */
    int port;
    bool stopped;      /* SIGSTOPped */
    char dir[128];     /* "" until started */
    char password[64]; /* "" = none */
} redis_server_t;

/* The redis-server to run: $REDIS_SERVER, else one on PATH; NULL if none
 * (the caller reports it: CI installs redis-server). */
const char *redis_server_bin(void);
/* A loopback TCP port nothing listens on right now. */
int redis_server_free_port(void);
/* Starts a server (password NULL: no requirepass) on port (0: a free one)
 * and waits until it answers; false (with its log on stderr) if it does not
 * within max_ms. */
bool redis_server_start(redis_server_t *s, const char *password, int port, uint64_t max_ms);
/* Starts it again after redis_server_kill, on the same port and directory. */
bool redis_server_restart(redis_server_t *s, uint64_t max_ms);
/* SIGSTOP / SIGCONT: the kernel still accepts connections, nobody answers. */
void redis_server_pause(redis_server_t *s);
void redis_server_resume(redis_server_t *s);
/* SIGKILL and reap. Idempotent. */
void redis_server_kill(redis_server_t *s);
/* Kills it and removes its directory. Idempotent. */
void redis_server_remove(redis_server_t *s);
/* One inline command ("INFO clients") on a fresh blocking connection
 * (AUTH first if the server has a password); the reply's first line, or a
 * bulk reply's body, into out (NUL-terminated). false on any failure,
 * within about a second. */
bool redis_server_query(const redis_server_t *s, const char *cmd, char *out, size_t cap);

#endif
