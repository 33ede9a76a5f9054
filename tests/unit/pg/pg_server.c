/* pg_server: see pg_server.h. */
#include "tests/unit/pg/pg_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_SERVER_MAX 16
#define PG_SERVER_KIDS 256

static pg_server_t *live[PG_SERVER_MAX]; /* what the atexit handler kills */
static bool atexit_set;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool has_bins(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/initdb", dir);
    if (access(p, X_OK) != 0) return false;
    snprintf(p, sizeof p, "%s/postgres", dir);
    return access(p, X_OK) == 0;
}

const char *pg_server_bindir(void)
{
    static char found[512];
    const char *env = getenv("PG_BINDIR");
    if (env && *env) return has_bins(env) ? env : NULL;
    DIR *d = opendir("/usr/lib/postgresql");
    if (!d) return NULL;
    double best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        double v = strtod(e->d_name, &end);
        if (end == e->d_name || *end || v <= best) continue;
        char bin[512];
        snprintf(bin, sizeof bin, "/usr/lib/postgresql/%s/bin", e->d_name);
        if (!has_bins(bin)) continue;
        best = v;
        snprintf(found, sizeof found, "%s", bin);
    }
    closedir(d);
    return best >= 0 ? found : NULL;
}

int pg_server_free_port(void)
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

void pg_server_uri(const pg_server_t *s, char *out, size_t cap)
{
    snprintf(out, cap, "postgres://dcache@127.0.0.1:%d/postgres", s->port);
}

static void kill_all(void)
{
    for (int i = 0; i < PG_SERVER_MAX; i++)
        if (live[i]) pg_server_remove(live[i]);
}

static void track(pg_server_t *s, bool on)
{
    if (!atexit_set) {
        atexit(kill_all);
        atexit_set = true;
    }
    for (int i = 0; i < PG_SERVER_MAX; i++) {
        if (on && !live[i]) {
            live[i] = s;
            return;
        }
        if (!on && live[i] == s) live[i] = NULL;
    }
}

/* ---- processes ---- */

/* Root runs the server as "postgres"; anyone else as themselves. */
static bool server_user(uid_t *uid, gid_t *gid)
{
    if (geteuid() != 0) return false;
    struct passwd *pw = getpwnam("postgres");
    if (!pw) return false;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return true;
}

/* The state letter of /proc/<pid>/stat ('R', 'S', 'T', 'Z'...) and its
 * parent; 0 if the process is gone. */
static char proc_state(pid_t pid, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    char state = 0;
    int parent = 0;
    if (!p || sscanf(p + 1, " %c %d", &state, &parent) != 2) return 0;
    if (ppid) *ppid = parent;
    return state;
}

/* The postmaster's children: its backends and auxiliary processes. */
static int children(pid_t pid, pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        pid_t parent = 0;
        if (*end || p <= 0) continue;
        if (proc_state((pid_t)p, &parent) && parent == pid) out[n++] = (pid_t)p;
    }
    closedir(d);
    return n;
}

/* Waits until every process of pids is gone or a zombie (its shared memory
 * detached), within max_ms. */
static bool wait_gone(const pid_t *pids, int n, uint64_t max_ms)
{
    uint64_t until = now_ms() + max_ms;
    for (int i = 0; i < n; i++) {
        char st;
        while ((st = proc_state(pids[i], NULL)) && st != 'Z') {
            if (now_ms() >= until) return false;
            poll(NULL, 0, 5); /* between looks */
        }
    }
    return true;
}

/* Waits until pid is stopped by a signal, within max_ms. */
static void wait_stopped(pid_t pid, uint64_t max_ms)
{
    uint64_t until = now_ms() + max_ms;
    char st;
    while ((st = proc_state(pid, NULL)) && st != 'T' && st != 't' && now_ms() < until) poll(NULL, 0, 2);
}

/* Forks argv with its output in log, as the server user when root, dying
 * with the test; its pid, or -1. */
static pid_t run(pg_server_t *s, const char *const *argv, const char *log)
{
    uid_t uid = 0;
    gid_t gid = 0;
    bool as_user = server_user(&uid, &gid);
    if (geteuid() == 0 && !as_user) {
        fprintf(stderr, "running as root and there is no \"postgres\" user to run PostgreSQL as\n");
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (as_user && (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) _exit(126);
    /* After the credentials change, which clears it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127); /* the test died before prctl */
    if (chdir(s->dir) != 0) _exit(126);  /* postgres wants a cwd it can read */
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

static void print_log(const pg_server_t *s, const char *name)
{
    char path[200], buf[4096];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    fprintf(stderr, "---- %s ----\n%s\n----\n", path, buf);
}

static bool initdb(pg_server_t *s, uint64_t max_ms)
{
    char bin[600], data[200], log[200];
    snprintf(bin, sizeof bin, "%s/initdb", pg_server_bindir());
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(log, sizeof log, "%s/initdb.log", s->dir);
    const char *argv[] = {bin, "-D", data, "-A", "trust", "-U", "dcache", "-N", "-E", "UTF8", "--no-locale", NULL};
    pid_t pid = run(s, argv, log);
    if (pid < 0) return false;
    uint64_t until = now_ms() + max_ms;
    int st = 0;
    pid_t got;
    while ((got = waitpid(pid, &st, WNOHANG)) == 0 && now_ms() < until) poll(NULL, 0, 10);
    if (got == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    fprintf(stderr, "initdb failed (status %d)\n", st);
    print_log(s, "initdb.log");
    return false;
}

static bool spawn(pg_server_t *s)
{
    char bin[600], data[200], log[200], port[16];
    snprintf(bin, sizeof bin, "%s/postgres", pg_server_bindir());
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(log, sizeof log, "%s/postgres.log", s->dir);
    snprintf(port, sizeof port, "%d", s->port);
    const char *argv[] = {bin, "-D", data, "-k", s->dir, "-p", port, "-h", "127.0.0.1", "-F",
                          "-c", "max_connections=40", NULL};
    pid_t pid = run(s, argv, log);
    if (pid < 0) return false;
    s->pid = pid;
    s->stopped = false;
    track(s, true);
    return true;
}

static bool wait_ready(pg_server_t *s, uint64_t max_ms)
{
    uint64_t until = now_ms() + max_ms;
    char conninfo[160];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=dcache dbname=postgres connect_timeout=1",
             s->port);
    for (;;) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            fprintf(stderr, "postgres on port %d exited (status %d)\n", s->port, st);
            s->pid = 0;
            track(s, false);
            print_log(s, "postgres.log");
            return false;
        }
        if (PQping(conninfo) == PQPING_OK) return true;
        if (now_ms() >= until) break;
        poll(NULL, 0, 10); /* between probes */
    }
    fprintf(stderr, "postgres on port %d did not accept connections within %llu ms\n", s->port,
            (unsigned long long)max_ms);
    print_log(s, "postgres.log");
    return false;
}

bool pg_server_start(pg_server_t *s, int port, uint64_t max_ms)
{
    memset(s, 0, sizeof *s);
    if (!pg_server_bindir()) {
        fprintf(stderr, "PostgreSQL not found: install it (Debian: postgresql) or set PG_BINDIR\n");
        return false;
    }
    /* Root hands the directory to "postgres", who must reach it: not
     * through a TMPDIR under root's home. */
    const char *tmp = geteuid() == 0 ? NULL : getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/dcache-pg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        s->dir[0] = 0;
        return false;
    }
    uid_t uid;
    gid_t gid;
    if (server_user(&uid, &gid) && chown(s->dir, uid, gid) != 0) return false;
    uint64_t t0 = now_ms();
    s->port = port ? port : pg_server_free_port();
    if (s->port <= 0 || !initdb(s, max_ms)) return false;
    uint64_t spent = now_ms() - t0;
    return spawn(s) && wait_ready(s, max_ms > spent ? max_ms - spent : 1);
}

bool pg_server_restart(pg_server_t *s, uint64_t max_ms)
{
    pg_server_kill(s);
    return spawn(s) && wait_ready(s, max_ms);
}

void pg_server_pause(pg_server_t *s)
{
    if (s->pid <= 0) return;
    /* The postmaster first, so that it forks no backend we would miss. */
    kill(s->pid, SIGSTOP);
    wait_stopped(s->pid, 2000);
    pid_t kids[PG_SERVER_KIDS];
    int n = children(s->pid, kids, PG_SERVER_KIDS);
    for (int i = 0; i < n; i++) kill(kids[i], SIGSTOP);
    s->stopped = true;
}

void pg_server_resume(pg_server_t *s)
{
    if (s->pid <= 0) return;
    pid_t kids[PG_SERVER_KIDS];
    int n = children(s->pid, kids, PG_SERVER_KIDS);
    for (int i = 0; i < n; i++) kill(kids[i], SIGCONT);
    kill(s->pid, SIGCONT);
    s->stopped = false;
}

void pg_server_kill(pg_server_t *s)
{
    if (s->pid > 0) {
        /* Stopped first, it forks no backend we would miss; a backend left
         * attached to the shared memory would make a restart refuse. */
        kill(s->pid, SIGSTOP);
        wait_stopped(s->pid, 2000);
        pid_t kids[PG_SERVER_KIDS];
        int n = children(s->pid, kids, PG_SERVER_KIDS);
        kill(s->pid, SIGKILL);
        for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) continue;
        if (!wait_gone(kids, n, 5000)) fprintf(stderr, "pg_server: a backend of port %d outlived SIGKILL\n", s->port);
    }
    s->pid = 0;
    s->stopped = false;
    track(s, false);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void pg_server_remove(pg_server_t *s)
{
    pg_server_kill(s);
    if (!s->dir[0]) return;
    nftw(s->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = 0;
}
