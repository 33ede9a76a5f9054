#include "tools/admin_token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/core/tokens.h"

static int admin_token_add(const admin_opts *o, const char *name, const char *role_text)
{
    tokens_role_t role;
    if (!tokens_name_valid(name, strlen(name))) {
        fprintf(stderr, "dcache-admin: a token name is 1 to %d of A-Z a-z 0-9 _ . - (it labels metrics)\n",
                TOKENS_NAME_MAX);
        return ADMIN_EXIT_USAGE;
    }
    if (!tokens_role_parse(role_text, strlen(role_text), &role)) {
        fprintf(stderr, "dcache-admin: the role is reader, writer or admin, not '%s'\n", role_text);
        return ADMIN_EXIT_USAGE;
    }
    if (!o->file) {
        fprintf(stderr, "dcache-admin: token add needs --file FILE (the node's --tokens file)\n");
        return ADMIN_EXIT_USAGE;
    }
    /* What is there must load as a node would load it, and must not hold
     * the name already: the line appended has to keep the file valid. */
    char err[512];
    tokens_t existing = {0};
    if (access(o->file, F_OK) == 0 && !tokens_load_file(o->file, &existing, err, sizeof err)) {
        fprintf(stderr, "dcache-admin: %s\n", err);
        return ADMIN_EXIT_FAIL;
    }
    for (size_t i = 0; i < existing.n; i++) {
        if (strcmp(existing.entries[i].name, name) == 0) {
            fprintf(stderr, "dcache-admin: %s already has a token named '%s'\n", o->file, name);
            tokens_free(&existing);
            return ADMIN_EXIT_FAIL;
        }
    }
    tokens_free(&existing);

    char token[TOKENS_TOKEN_LEN + 1], line[256];
    uint8_t hash[TOKENS_HASH_LEN];
    tokens_generate(token);
    tokens_hash(token, strlen(token), hash);
    tokens_format_line(name, role, hash, line, sizeof line);
    int fd = open(o->file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    size_t len = strlen(line);
    if (fd < 0 || write(fd, line, len) != (ssize_t)len || fsync(fd) != 0) {
        fprintf(stderr, "dcache-admin: cannot write %s: %s\n", o->file, strerror(errno));
        if (fd >= 0) close(fd);
        return ADMIN_EXIT_FAIL;
    }
    close(fd);
    if (o->json)
        printf("{\"name\":\"%s\",\"role\":\"%s\",\"token\":\"%s\"}\n", name, tokens_role_name(role), token);
    else
        printf("%s\n", token);
    fprintf(stderr,
            "dcache-admin: added %s (%s) to %s. The token above is shown this once and kept nowhere: store it "
            "now. Copy the file to every node and send them SIGHUP to load it.\n",
            name, tokens_role_name(role), o->file);
    return ADMIN_EXIT_OK;
}

int admin_token_run(const admin_opts *o)
{
    if (strcmp(o->args[0], "add") == 0) {
        if (o->nargs != 3) {
            fprintf(stderr, "dcache-admin: usage: token add NAME ROLE --file FILE\n");
            return ADMIN_EXIT_USAGE;
        }
        return admin_token_add(o, o->args[1], o->args[2]);
    }
    fprintf(stderr, "dcache-admin: unknown token command '%s' (token add NAME ROLE --file FILE)\n", o->args[0]);
    return ADMIN_EXIT_USAGE;
}
