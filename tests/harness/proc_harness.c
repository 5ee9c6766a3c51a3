/* proc_harness.c: busgated and other built binaries as real processes for end-to-end tests. */
#include "proc_harness.h"

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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "valkey_harness.h"

long long bgt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

int bgt_build_path(const char *name, char *out, size_t len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    if (n <= 0)
        return -1;
    exe[n] = '\0';
    /* BUILD/tests/test_x or BUILD/tests/<suite>/test_x: the first directory above
     * the test binary that holds the binary is BUILD. */
    while ((slash = strrchr(exe, '/')) != NULL) {
        *slash = '\0';
        if ((size_t)snprintf(out, len, "%s/%s", exe, name) >= len)
            return -1;
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    int rc;

    if (f == NULL)
        return -1;
    rc = fputs(text, f) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

int bgt_gw_write_raw(const bgt_gw *g, const char *text)
{
    char tmp[400];

    /* Whole file at once (rename): a reload never reads half of it. */
    snprintf(tmp, sizeof(tmp), "%s.tmp", g->ini);
    if (write_file(tmp, text) != 0)
        return -1;
    return rename(tmp, g->ini);
}

int bgt_gw_write_ini(const bgt_gw *g, const bgt_gw_opts *o)
{
    char text[16384];
    int n;

    n = snprintf(text, sizeof(text),
                 "[gateway]\nlisten = 127.0.0.1:%d\nworkers = %d\npid_file = %s\n"
                 "error_log = %s\nlog_level = %s\ndrain_timeout = %s\n%s%s"
                 "[valkey]\nurl = %s\n%s",
                 g->port, o->workers > 0 ? o->workers : 2, g->pidfile, g->log,
                 o->log_level ? o->log_level : "info", o->drain_timeout ? o->drain_timeout : "5s",
                 o->extra_gateway ? o->extra_gateway : "",
                 o->extra_gateway && o->extra_gateway[0] &&
                         o->extra_gateway[strlen(o->extra_gateway) - 1] != '\n'
                     ? "\n"
                     : "",
                 o->valkey_url ? o->valkey_url : "valkey://127.0.0.1:1", o->extra ? o->extra : "");
    if (n < 0 || (size_t)n >= sizeof(text))
        return -1;
    return bgt_gw_write_raw(g, text);
}

int bgt_gw_init(bgt_gw *g, const bgt_gw_opts *o)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->dir, sizeof(g->dir), "/tmp/busgate-test-XXXXXX");
    if (mkdtemp(g->dir) == NULL)
        return -1;
    snprintf(g->ini, sizeof(g->ini), "%s/busgate.ini", g->dir);
    snprintf(g->log, sizeof(g->log), "%s/error.log", g->dir);
    snprintf(g->pidfile, sizeof(g->pidfile), "%s/busgated.pid", g->dir);
    snprintf(g->out, sizeof(g->out), "%s/stderr.log", g->dir);
    g->port = bgt_free_port();
    if (g->port <= 0)
        return -1;
    return bgt_gw_write_ini(g, o);
}

/* argv: busgated, extra args..., -c INI (if with_ini), NULL. */
static int build_argv(const bgt_gw *g, const char *bin, const char *const *args, int with_ini,
                      const char **argv, int max)
{
    int n = 0;

    argv[n++] = bin;
    for (int i = 0; args != NULL && args[i] != NULL && n < max - 4; i++)
        argv[n++] = args[i];
    if (with_ini) {
        argv[n++] = "-c";
        argv[n++] = g->ini;
    }
    argv[n] = NULL;
    return n;
}

static void child_exec(const char *const *argv, int outfd)
{
    int null = open("/dev/null", O_RDONLY);

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (null >= 0)
        dup2(null, 0);
    dup2(outfd, 1);
    dup2(outfd, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

int bgt_gw_start_args(bgt_gw *g, const char *const *extra_args)
{
    char bin[4096];
    const char *argv[40];
    const char *const fg[] = {"-g", NULL};
    const char *const *args = extra_args ? extra_args : fg;
    int outfd, status;
    long long until = bgt_now_ms() + 10000;

    if (bgt_build_path("busgated", bin, sizeof(bin)) != 0)
        return -1;
    build_argv(g, bin, args, 1, argv, 40);
    outfd = open(g->out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (outfd < 0)
        return -1;
    g->pid = fork();
    if (g->pid == 0)
        child_exec(argv, outfd);
    close(outfd);
    if (g->pid < 0) {
        g->pid = 0;
        return -1;
    }
    while (bgt_now_ms() < until) {
        if (waitpid(g->pid, &status, WNOHANG) == g->pid) {
            g->pid = 0;
            return -1;
        }
        if (bgt_wait_port(g->port, 50) == 0)
            return 0;
    }
    return -1;
}

int bgt_gw_start(bgt_gw *g)
{
    return bgt_gw_start_args(g, NULL);
}

static int wait_child(pid_t pid, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 || bgt_now_ms() >= until)
            return -1;
        sleep_ms(10);
    }
}

static size_t read_pipe(int fd, char *out, size_t outlen, long long until)
{
    size_t used = 0;

    while (used + 1 < outlen) {
        struct pollfd p = {fd, POLLIN, 0};
        long long left = until - bgt_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        n = read(fd, out + used, outlen - used - 1);
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    out[used] = '\0';
    return used;
}

int bgt_gw_run(const bgt_gw *g, const char *const *args, char *out, size_t outlen, int timeout_ms)
{
    char bin[4096];
    const char *argv[40];
    long long until = bgt_now_ms() + timeout_ms;
    int fds[2], rc;
    pid_t pid;

    if (bgt_build_path("busgated", bin, sizeof(bin)) != 0 || pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    build_argv(g, bin, args, 1, argv, 40);
    pid = fork();
    if (pid == 0)
        child_exec(argv, fds[1]);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    /* A daemon keeps the pipe open through its stderr only until it detaches. */
    read_pipe(fds[0], out, outlen, until);
    close(fds[0]);
    rc = wait_child(pid, (int)(until > bgt_now_ms() ? until - bgt_now_ms() : 0) + 100);
    if (rc < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return rc >= 128 ? -1 : rc;
}

int bgt_gw_signal(const bgt_gw *g, int sig)
{
    pid_t pid = g->pid > 0 ? g->pid : bgt_gw_pidfile_pid(g);

    return pid > 0 ? kill(pid, sig) : -1;
}

int bgt_gw_wait_exit(bgt_gw *g, int timeout_ms)
{
    int rc;

    if (g->pid <= 0)
        return -1;
    rc = wait_child(g->pid, timeout_ms);
    if (rc >= 0)
        g->pid = 0;
    return rc;
}

pid_t bgt_gw_pidfile_pid(const bgt_gw *g)
{
    char buf[32] = "";
    FILE *f = fopen(g->pidfile, "r");
    long v = -1;

    if (f == NULL)
        return -1;
    if (fgets(buf, sizeof(buf), f) != NULL)
        v = strtol(buf, NULL, 10);
    fclose(f);
    return v > 1 ? (pid_t)v : -1;
}

static void remove_tree(const char *dir)
{
    DIR *d;
    struct dirent *e;
    char path[600];

    if (strncmp(dir, "/tmp/busgate-test-", 18) != 0 || (d = opendir(dir)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* SIGKILLs the pids that are still busgate processes (a pid may be reused). */
static void kill_workers(const pid_t *pids, int n)
{
    char title[256];

    for (int i = 0; i < n; i++) {
        if (bgt_proc_title(pids[i], title, sizeof(title)) > 0 && strncmp(title, "busgate", 7) == 0)
            kill(pids[i], SIGKILL);
    }
}

/* A master that is not our child (daemon mode) is found through the pid file. */
static void stop_foreign(const bgt_gw *g)
{
    pid_t pid = bgt_gw_pidfile_pid(g), kids[BGT_GW_MAX_WORKERS];
    char title[256];
    int n;

    /* The pid file may be stale or written by a test: only a master is stopped. */
    if (pid <= 0 || bgt_proc_title(pid, title, sizeof(title)) == 0 ||
        strcmp(title, "busgate: master process") != 0)
        return;
    n = bgt_children(pid, kids, BGT_GW_MAX_WORKERS);
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000 && kill(pid, 0) == 0; i++)
        sleep_ms(10);
    kill(pid, SIGKILL);
    kill_workers(kids, n);
}

void bgt_gw_stop(bgt_gw *g)
{
    pid_t kids[BGT_GW_MAX_WORKERS];
    int n;

    if (g->pid > 0) {
        n = bgt_children(g->pid, kids, BGT_GW_MAX_WORKERS);
        kill(g->pid, SIGTERM);
        if (bgt_gw_wait_exit(g, 10000) < 0) {
            kill(g->pid, SIGKILL);
            waitpid(g->pid, NULL, 0);
            g->pid = 0;
        }
        kill_workers(kids, n); /* normally gone already */
    }
    if (g->dir[0] != '\0') {
        stop_foreign(g);
        remove_tree(g->dir);
    }
    g->dir[0] = '\0';
}

int bgt_proc_title(pid_t pid, char *out, size_t len)
{
    char path[64];
    ssize_t n;
    int fd;

    out[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, out, len - 1);
    close(fd);
    if (n <= 0)
        return 0;
    /* Only the first string: setproctitle() leaves filler bytes after the
     * title's NUL in the old argv area (libbsd writes a '.' there). */
    out[n] = '\0';
    /* When the title is longer than the original argv area, libbsd spills into
     * the environment area and the kernel may pad the string with spaces. */
    n = (ssize_t)strlen(out);
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
    return (int)n;
}

/* The parent pid from /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces. */
static pid_t proc_ppid(const char *pid)
{
    char path[300], buf[1024], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0' || p[2] == '\0')
        return -1;
    return (pid_t)strtol(p + 3, NULL, 10);
}

static int pid_cmp(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

    return (x > y) - (x < y);
}

/* Children of parent; with prefix, only those whose title starts with it. */
static int list_children(pid_t parent, const char *prefix, pid_t *pids, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    char title[256];
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || proc_ppid(e->d_name) != parent)
            continue;
        pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
        if (prefix != NULL && (bgt_proc_title(pid, title, sizeof(title)) == 0 ||
                               strncmp(title, prefix, strlen(prefix)) != 0))
            continue;
        pids[n++] = pid;
    }
    closedir(d);
    qsort(pids, (size_t)n, sizeof(pid_t), pid_cmp);
    return n;
}

int bgt_children(pid_t pid, pid_t *pids, int max)
{
    return list_children(pid, NULL, pids, max);
}

int bgt_gw_workers(const bgt_gw *g, pid_t *pids, int max)
{
    pid_t master = g->pid > 0 ? g->pid : bgt_gw_pidfile_pid(g);

    return master > 0 ? list_children(master, "busgate: worker", pids, max) : 0;
}

int bgt_gw_wait_workers(const bgt_gw *g, int n, int timeout_ms)
{
    pid_t pids[BGT_GW_MAX_WORKERS];
    long long until = bgt_now_ms() + timeout_ms;
    int got;

    for (;;) {
        got = bgt_gw_workers(g, pids, BGT_GW_MAX_WORKERS);
        if (got == n || bgt_now_ms() >= until)
            return got;
        sleep_ms(20);
    }
}

char *bgt_gw_log_text(const bgt_gw *g)
{
    FILE *f = fopen(g->log, "r");
    char *text = NULL;
    size_t len = 0;

    if (f != NULL) {
        fseek(f, 0, SEEK_END);
        len = (size_t)(ftell(f) > 0 ? ftell(f) : 0);
        rewind(f);
    }
    text = malloc(len + 1);
    if (text == NULL) {
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    len = f ? fread(text, 1, len, f) : 0;
    text[len] = '\0';
    if (f != NULL)
        fclose(f);
    return text;
}

int bgt_gw_log_count(const bgt_gw *g, const char *needle)
{
    char *text = bgt_gw_log_text(g), *line, *next;
    int n = 0;

    for (line = text; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        n += strstr(line, needle) != NULL;
    }
    free(text);
    return n;
}

int bgt_gw_wait_log(const bgt_gw *g, const char *needle, int count, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;

    for (;;) {
        if (bgt_gw_log_count(g, needle) >= count)
            return 0;
        if (bgt_now_ms() >= until)
            return -1;
        sleep_ms(20);
    }
}

static int connect_port(int port, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct pollfd p;
    int err = 0;
    socklen_t len = sizeof(err);

    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return fd;
    p = (struct pollfd){fd, POLLOUT, 0};
    if (errno != EINPROGRESS || poll(&p, 1, timeout_ms) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int bgt_wait_port(int port, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;

    for (;;) {
        int fd = connect_port(port, 200);

        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (bgt_now_ms() >= until)
            return -1;
        sleep_ms(10);
    }
}

static int send_all(int fd, const char *buf, size_t len, long long until)
{
    while (len > 0) {
        struct pollfd p = {fd, POLLOUT, 0};
        long long left = until - bgt_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return -1;
        n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
    return 0;
}

int bgt_http_request(int port, const char *method, const char *path, const char *headers,
                     const char *body, char *out, size_t outlen, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    size_t blen = body ? strlen(body) : 0;
    char head[4096];
    int fd, status = -1, n;

    n = snprintf(head, sizeof(head),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s"
                 "Content-Length: %zu\r\n\r\n",
                 method, path, port, headers ? headers : "", blen);
    if (n < 0 || (size_t)n >= sizeof(head))
        return -1;
    fd = connect_port(port, timeout_ms);
    if (fd < 0)
        return -1;
    if (send_all(fd, head, (size_t)n, until) == 0 &&
        send_all(fd, body ? body : "", blen, until) == 0)
        read_pipe(fd, out, outlen, until);
    else
        out[0] = '\0';
    close(fd);
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    return status;
}

int bgt_http_get(int port, const char *path, char *out, size_t outlen, int timeout_ms)
{
    return bgt_http_request(port, "GET", path, NULL, NULL, out, outlen, timeout_ms);
}

pid_t bgt_spawn_built(const char *name, const char *const *args, const char *outfile)
{
    char bin[4096];
    const char *argv[40];
    int outfd;
    pid_t pid;

    if (bgt_build_path(name, bin, sizeof(bin)) != 0)
        return -1;
    build_argv(NULL, bin, args, 0, argv, 40);
    outfd = open(outfile ? outfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (outfd < 0)
        return -1;
    pid = fork();
    if (pid == 0)
        child_exec(argv, outfd);
    close(outfd);
    return pid;
}

int bgt_stop_pid(pid_t pid, int timeout_ms)
{
    int rc;

    if (pid <= 0 || kill(pid, SIGTERM) != 0)
        return -1;
    rc = wait_child(pid, timeout_ms);
    if (rc < 0) {
        kill(pid, SIGKILL);
        rc = wait_child(pid, 5000);
    }
    return rc;
}

int bgt_wait_file(const char *path, const char *needle, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    char buf[65536];

    for (;;) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

        if (f != NULL)
            fclose(f);
        buf[n] = '\0';
        if (strstr(buf, needle) != NULL)
            return 0;
        if (bgt_now_ms() >= until)
            return -1;
        sleep_ms(20);
    }
}

int bgt_wait_http(int port, const char *path, int want_status, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    char out[4096];

    for (;;) {
        if (bgt_http_get(port, path, out, sizeof(out), 2000) == want_status)
            return 0;
        if (bgt_now_ms() >= until)
            return -1;
        sleep_ms(50);
    }
}

int bgt_ctl_run(const char *ini, const char *args, char *out, size_t len)
{
    char bin[512], cmd[2048];
    size_t n = 0;
    FILE *p;

    out[0] = '\0';
    if (bgt_build_path("busgatectl", bin, sizeof(bin)) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "timeout 15 '%s' -c '%s' %s 2>&1", bin, ini, args);
    if ((p = popen(cmd, "r")) == NULL)
        return -1;
    while (n + 1 < len && fgets(out + n, (int)(len - n), p) != NULL)
        n += strlen(out + n);
    out[n] = '\0';
    return pclose(p);
}
