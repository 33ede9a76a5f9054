/* redis_server: see redis_server.h. */
#include "tests/unit/l2/redis_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_SERVER_MAX 16

static redis_server_t *live[REDIS_SERVER_MAX]; /* what the atexit handler kills */
static bool atexit_set;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *redis_server_bin(void)
{
    static char found[512];
    const char *env = getenv("REDIS_SERVER");
    if (env && *env) return access(env, X_OK) == 0 ? env : NULL;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(found, sizeof found, "%.*s/redis-server", (int)n, path);
        if (n && access(found, X_OK) == 0) return found;
        path += n + (path[n] == ':');
    }
    return NULL;
}

int redis_server_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static void kill_all(void)
{
    for (int i = 0; i < REDIS_SERVER_MAX; i++)
        if (live[i]) redis_server_remove(live[i]);
}

static void track(redis_server_t *s, bool on)
{
    if (!atexit_set) {
        atexit(kill_all);
        atexit_set = true;
    }
    for (int i = 0; i < REDIS_SERVER_MAX; i++) {
        if (on && !live[i]) {
            live[i] = s;
            return;
        }
        if (!on && live[i] == s) live[i] = NULL;
    }
}

static void print_log(const redis_server_t *s)
{
    char path[160], buf[4096];
    snprintf(path, sizeof path, "%s/redis.log", s->dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    fprintf(stderr, "---- %s ----\n%s\n----\n", path, buf);
}

static bool spawn(redis_server_t *s)
{
    const char *bin = redis_server_bin();
    if (!bin) {
        fprintf(stderr, "redis-server not found: install it (Debian: redis-server) or set REDIS_SERVER\n");
        return false;
    }
    char port[16], log[160];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(log, sizeof log, "%s/redis.log", s->dir);
    const char *argv[] = {bin,           "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                          "no",          "--daemonize", "no", "--dir", s->dir, "--requirepass", s->password, NULL};
    if (!*s->password) argv[13] = NULL;
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); /* the test died before prctl */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    s->stopped = false;
    track(s, true);
    return true;
}

static bool wait_ready(redis_server_t *s, uint64_t max_ms)
{
    uint64_t until = now_ms() + max_ms;
    char buf[64];
    for (;;) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            fprintf(stderr, "redis-server on port %d exited (status %d)\n", s->port, st);
            s->pid = 0;
            print_log(s);
            return false;
        }
        if (redis_server_query(s, "PING", buf, sizeof buf) && strcmp(buf, "+PONG") == 0) return true;
        if (now_ms() >= until) break;
        poll(NULL, 0, 10); /* between probes */
    }
    fprintf(stderr, "redis-server on port %d did not answer within %llu ms\n", s->port, (unsigned long long)max_ms);
    print_log(s);
    return false;
}

bool redis_server_start(redis_server_t *s, const char *password, int port, uint64_t max_ms)
{
    memset(s, 0, sizeof *s);
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/dcache-redis-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        s->dir[0] = 0;
        return false;
    }
    snprintf(s->password, sizeof s->password, "%s", password ? password : "");
    s->port = port ? port : redis_server_free_port();
    return s->port > 0 && spawn(s) && wait_ready(s, max_ms);
}

bool redis_server_restart(redis_server_t *s, uint64_t max_ms)
{
    redis_server_kill(s);
    return spawn(s) && wait_ready(s, max_ms);
}

void redis_server_pause(redis_server_t *s)
{
    if (s->pid > 0 && kill(s->pid, SIGSTOP) == 0) s->stopped = true;
}

void redis_server_resume(redis_server_t *s)
{
    if (s->pid > 0 && kill(s->pid, SIGCONT) == 0) s->stopped = false;
}

void redis_server_kill(redis_server_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL); /* stopped or not */
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) continue;
    }
    s->pid = 0;
    s->stopped = false;
    track(s, false);
}

void redis_server_remove(redis_server_t *s)
{
    redis_server_kill(s);
    if (!s->dir[0]) return;
    DIR *d = opendir(s->dir);
    if (d) {
        struct dirent *e;
        char path[400];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name), unlink(path);
        closedir(d);
    }
    rmdir(s->dir);
    s->dir[0] = 0;
}

/* Reads until buf holds a whole reply (a line, or a bulk header and body). */
static bool read_reply(int fd, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    for (;;) {
        char *eol = memchr(buf, '\n', *len);
        if (eol && buf[0] != '$') return true;
        if (eol && buf[0] == '$') {
            long n = atol(buf + 1);
            size_t head = (size_t)(eol - buf) + 1;
            if (n < 0 || *len >= head + (size_t)n + 2) return true;
        }
        if (*len + 1 >= cap) return false;
        ssize_t got = read(fd, buf + *len, cap - 1 - *len);
        if (got <= 0) return false;
        *len += (size_t)got;
        buf[*len] = 0;
    }
}

static bool send_line(int fd, const char *cmd, char *buf, size_t cap, size_t *len)
{
    char line[256];
    int n = snprintf(line, sizeof line, "%s\r\n", cmd);
    return n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) == n && read_reply(fd, buf, cap, len);
}

bool redis_server_query(const redis_server_t *s, const char *cmd, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static char buf[65536];
    size_t len = 0;
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (ok && *s->password) {
        char auth[96];
        snprintf(auth, sizeof auth, "AUTH %s", s->password);
        ok = send_line(fd, auth, buf, sizeof buf, &len) && strncmp(buf, "+OK", 3) == 0;
    }
    ok = ok && send_line(fd, cmd, buf, sizeof buf, &len);
    close(fd);
    if (!ok || cap == 0) return false;
    const char *body = buf;
    size_t n = strcspn(buf, "\r\n");
    if (buf[0] == '$' && atol(buf + 1) >= 0) {
        body = buf + n + 2;
        n = (size_t)atol(buf + 1);
    }
    if (n >= cap) n = cap - 1;
    memcpy(out, body, n);
    out[n] = 0;
    return true;
}
