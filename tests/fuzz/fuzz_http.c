/* libFuzzer target for the HTTP request path as a client reaches it: the
 * input is written on a fresh connection to a real node's HTTP server
 * (llhttp parsing, the route table, bearer tokens, query strings, JSON
 * bodies, keys and patterns, the L1 behind them), on loopback, and the
 * connection is half-closed; the server must answer or close, never crash,
 * leak or overrun. One worker loop runs on its own thread for the whole
 * run, as in dcache-node; the node has no cluster and no Redis.
 *
 * Seeds: tests/fuzz/corpus/http/ (run.sh copies them). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/api/api.h"
#include "node/api/api_router.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The admin token of the tokens file below. */
#define FUZZ_TOKEN "dct_fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfu"

static config_t cfg;
static store_t *store;
static metrics_t metrics;
static metrics_history_t *history;
static api_t api;
static api_worker_t worker;
static seal_keyring_t keyring;
static uv_loop_t loop;
static http_server_t *server;
static uv_thread_t thread;
static struct sockaddr_in addr;

static void fuzz_loop(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[] = "/tmp/dcache-fuzz-tokens-XXXXXX";
    int fd = mkstemp(path);
    uint8_t hash[TOKENS_HASH_LEN];
    char line[256];
    tokens_hash(FUZZ_TOKEN, strlen(FUZZ_TOKEN), hash);
    tokens_format_line("fuzz", TOKENS_ROLE_ADMIN, hash, line, sizeof line);
    if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line)) abort();
    close(fd);
    char *args[] = {"dcache-node", "--tokens", path, "--public-read", "--rate-limit", "100000",
                    "--cors-origins", "https://a.example", "--log-level", "error", "--max-value-size", "64kb",
                    "--l1-max-memory", "16mb", "--idle-timeout", "1s"};
    FILE *devnull = fopen("/dev/null", "w");
    if (config_load(&cfg, sizeof args / sizeof args[0], args, (char *[]){NULL}, devnull, devnull) != CONFIG_OK)
        abort();
    store_config_t sc = {.max_bytes = cfg.l1_max_memory, .max_value_bytes = cfg.max_value_size};
    store = store_new(&sc);
    metrics_init(&metrics);
    history = metrics_history_new(cfg.metrics_interval_ms);
    char err[256];
    if (!store || !history || !api_init(&api, &cfg, store, &metrics, history, err, sizeof err)) abort();
    unlink(path);
    seal_keyring_init(&keyring);
    api.route.keyring = &keyring;
    uv_loop_init(&loop);
    if (api_worker_init(&worker, &api, &loop) != 0) abort();
    http_limits_t limits = {.max_header_bytes = 16384, .max_headers = 100, .max_body_bytes = cfg.max_request_body,
                            .header_timeout_ms = 1000, .idle_timeout_ms = 1000, .max_connections = 1000};
    http_handler_t h = api_router_handler(&worker);
    server = http_server_new(&loop, &limits, &h);
    if (!server || http_server_listen(server, "127.0.0.1", 0) != 0) abort();
    api_register_server(&api, http_server_stats(server));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)http_server_port(server));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uv_thread_create(&thread, fuzz_loop, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    /* Read until the server closes; it must, within its timeouts. */
    char buf[65536];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) <= 0) break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
    }
    close(fd);
    return 0;
}
