/* valkey_harness.c: private valkey-server processes for tests. */
#include "valkey_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int bgt_in_path(const char *name)
{
    char buf[4096];
    const char *path = getenv("PATH");
    const char *p;

    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (p = path; *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, p, name);
        if (access(buf, X_OK) == 0)
            return 1;
        p += len + (end != NULL);
    }
    return 0;
}

const char *bgt_valkey_binary(void)
{
    return bgt_in_path("valkey-server") ? "valkey-server" : "redis-server";
}

int bgt_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int connect_loopback(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int raw_command(int port, const char *cmd, char *out, size_t outlen)
{
    struct timeval tv = {.tv_sec = 5};
    int fd = connect_loopback(port);
    ssize_t n;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
        close(fd);
        return -1;
    }
    n = read(fd, out, outlen - 1);
    close(fd);
    if (n <= 0)
        return -1;
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int wait_ready(bgt_valkey *v)
{
    char reply[64];
    int i;

    for (i = 0; i < 500; i++) {
        int status;
        if (waitpid(v->pid, &status, WNOHANG) == v->pid) {
            v->pid = 0;
            return -1;
        }
        if (raw_command(v->port, "PING\r\n", reply, sizeof(reply)) == 0 &&
            strcmp(reply, "+PONG") == 0)
            return 0;
        usleep(10000);
    }
    return -1;
}

static pid_t spawn_server(bgt_valkey *v)
{
    char port[16];
    const char *argv[64];
    int argc = 0, i;
    pid_t pid;

    snprintf(port, sizeof(port), "%d", v->port);
    argv[argc++] = bgt_valkey_binary();
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--dir";
    argv[argc++] = v->dir;
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--daemonize";
    argv[argc++] = "no";
    argv[argc++] = "--logfile";
    argv[argc++] = "server.log";
    for (i = 0; i < v->nextra; i++)
        argv[argc++] = v->extra[i];
    argv[argc] = NULL;

    pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (chdir(v->dir) != 0)
        _exit(126);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

static int start_on_port(bgt_valkey *v)
{
    v->pid = spawn_server(v);
    if (v->pid < 0) {
        v->pid = 0;
        return -1;
    }
    snprintf(v->url, sizeof(v->url), "valkey://127.0.0.1:%d", v->port);
    return wait_ready(v);
}

int bgt_valkey_start(bgt_valkey *v, const char *const *extra)
{
    int attempt;

    memset(v, 0, sizeof(*v));
    snprintf(v->dir, sizeof(v->dir), "/tmp/busgate-test-XXXXXX");
    if (mkdtemp(v->dir) == NULL)
        return -1;
    for (; extra != NULL && extra[v->nextra] != NULL && v->nextra < 31; v->nextra++)
        v->extra[v->nextra] = strdup(extra[v->nextra]);
    /* A free port can be taken between probe and bind: retry a few times. */
    for (attempt = 0; attempt < 5; attempt++) {
        v->port = bgt_free_port();
        if (v->port > 0 && start_on_port(v) == 0)
            return 0;
        bgt_valkey_kill(v);
    }
    return -1;
}

int bgt_valkey_restart(bgt_valkey *v)
{
    int attempt;

    for (attempt = 0; attempt < 50; attempt++) {
        if (start_on_port(v) == 0)
            return 0;
        bgt_valkey_kill(v);
        usleep(50000); /* the old socket may linger briefly */
    }
    return -1;
}

void bgt_valkey_kill(bgt_valkey *v)
{
    if (v->pid <= 0)
        return;
    kill(v->pid, SIGKILL);
    waitpid(v->pid, NULL, 0);
    v->pid = 0;
}

static void remove_dir(const char *dir)
{
    char cmd[512];

    if (dir[0] == '\0' || strncmp(dir, "/tmp/busgate-test-", 18) != 0)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        /* leftover temp dir: harmless */
    }
}

void bgt_valkey_stop(bgt_valkey *v)
{
    int i;

    bgt_valkey_kill(v);
    remove_dir(v->dir);
    v->dir[0] = '\0';
    for (i = 0; i < v->nextra; i++)
        free(v->extra[i]);
    v->nextra = 0;
}

int bgt_valkey_cmd(const bgt_valkey *v, char *out, size_t outlen, const char *fmt, ...)
{
    char inline_cmd[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(inline_cmd, sizeof(inline_cmd) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(inline_cmd) - 2)
        return -1;
    strcat(inline_cmd, "\r\n");
    return raw_command(v->port, inline_cmd, out, outlen);
}
