/* test_sandbox.c: the worker sandbox: forbidden calls die of SIGSYS, probes get an errno, a
 * worker's workload (event loop, sockets, memory, Valkey reconnect) survives, seccomp off and
 * trap modes, privilege drop and rlimits. Every case runs in a forked child. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "busgate/bus/bus_async.h"
#include "busgate/config/config.h"
#include "busgate/config/tls_server.h"
#include "busgate/metrics/metrics.h"
#include "sandbox.h"
#include "tls_certs.h"
#include "valkey_harness.h"

/* Exit codes of the children; anything else is a signal or a bug. */
#define CHILD_OK 0
#define CHILD_SANDBOX_FAILED 90
#define CHILD_SURVIVED 91 /* a forbidden call returned instead of killing */
#define CHILD_CHECK_FAILED 92
#define WAIT_LIMIT_MS 20000

typedef int child_fn(void *arg);

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for pid, at most WAIT_LIMIT_MS; a child still running then is killed and fails. */
static int wait_child(pid_t pid)
{
    int64_t end = now_ms() + WAIT_LIMIT_MS;
    int status = 0;
    pid_t r;

    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < end)
        usleep(5000);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        cr_assert_fail("child %d still running after %d ms", (int)pid, WAIT_LIMIT_MS);
    }
    cr_assert_eq(r, pid, "waitpid: %s", strerror(errno));
    return status;
}

static int run_child(child_fn *fn, void *arg)
{
    pid_t pid = fork();

    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0)
        _exit(fn(arg));
    return wait_child(pid);
}

static void assert_sigsys(int status, const char *what)
{
    cr_assert(WIFSIGNALED(status), "%s: expected death by SIGSYS, exited with %d", what,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    cr_assert_eq(WTERMSIG(status), SIGSYS, "%s: killed by signal %d, expected SIGSYS (%d)", what,
                 WTERMSIG(status), SIGSYS);
}

static void assert_exit_ok(int status, const char *what)
{
    cr_assert(WIFEXITED(status), "%s: killed by signal %d", what,
              WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    cr_assert_eq(WEXITSTATUS(status), CHILD_OK, "%s: exit code %d", what, WEXITSTATUS(status));
}

static int filter_on(void)
{
    char err[BG_ERR_LEN] = "";

    if (bg_sandbox_filter_only(0, err) != BG_OK) {
        fprintf(stderr, "bg_sandbox_filter_only: %s\n", err);
        return 0;
    }
    return 1;
}

/* ---- forbidden calls: one child each, each must die of SIGSYS ---- */

static int do_execve(void *arg)
{
    char *argv[] = {"/bin/true", NULL}, *envp[] = {NULL};

    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    execve(argv[0], argv, envp);
    return CHILD_SURVIVED;
}

static int do_fork(void *arg)
{
    pid_t pid;

    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    pid = fork();
    if (pid == 0)
        _exit(CHILD_SURVIVED);
    return CHILD_SURVIVED;
}

static int do_clone3(void *arg)
{
    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    syscall(SYS_clone3, NULL, (size_t)0);
    return CHILD_SURVIVED;
}

static int do_open_write(void *arg)
{
    const char *path = arg;

    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    return CHILD_SURVIVED;
}

static int do_open_append(void *arg)
{
    const char *path = arg;

    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    open(path, O_WRONLY | O_APPEND);
    return CHILD_SURVIVED;
}

static int do_mprotect_exec(void *arg)
{
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    (void)arg;
    if (page == MAP_FAILED || !filter_on())
        return CHILD_SANDBOX_FAILED;
    mprotect(page, 4096, PROT_READ | PROT_EXEC);
    return CHILD_SURVIVED;
}

static int do_mmap_exec(void *arg)
{
    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return CHILD_SURVIVED;
}

static int do_bind(void *arg)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd;

    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return CHILD_CHECK_FAILED;
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    return CHILD_SURVIVED;
}

static int do_listen(void *arg)
{
    int fd;

    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return CHILD_CHECK_FAILED;
    listen(fd, 1);
    return CHILD_SURVIVED;
}

static int do_packet_socket(void *arg)
{
    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    socket(AF_PACKET, SOCK_RAW, 0);
    return CHILD_SURVIVED;
}

static int do_kill_parent(void *arg)
{
    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    kill(getppid(), 0);
    return CHILD_SURVIVED;
}

static int do_ptrace(void *arg)
{
    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    return CHILD_SURVIVED;
}

static int do_setuid(void *arg)
{
    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    if (setuid(0) != 0) {
        /* nothing: reaching here at all is the failure */
    }
    return CHILD_SURVIVED;
}

static int do_fcntl_lock(void *arg)
{
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};

    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    fcntl(STDIN_FILENO, F_SETLK, &fl);
    return CHILD_SURVIVED;
}

static int do_ioctl_tiocsti(void *arg)
{
    char c = 'x';

    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    ioctl(STDIN_FILENO, TIOCSTI, &c);
    return CHILD_SURVIVED;
}

/* The x32 ABI shares x86_64's audit arch: the filter must refuse its numbers. */
static int do_x32_syscall(void *arg)
{
    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
#if defined(__x86_64__)
    syscall(0x40000000 | SYS_getpid);
    return CHILD_SURVIVED;
#else
    raise(SIGSYS);
    return CHILD_SURVIVED;
#endif
}

/* The i386 ABI through int 0x80 reports another arch: killed by the arch check. */
static int do_i386_syscall(void *arg)
{
    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory"); /* i386 getpid */
    (void)ret;
    return CHILD_SURVIVED;
#else
    raise(SIGSYS);
    return CHILD_SURVIVED;
#endif
}

Test(sandbox_forbidden, execve_kills)
{
    assert_sigsys(run_child(do_execve, NULL), "execve");
}

Test(sandbox_forbidden, fork_kills)
{
    assert_sigsys(run_child(do_fork, NULL), "fork");
}

Test(sandbox_forbidden, clone3_kills)
{
    assert_sigsys(run_child(do_clone3, NULL), "clone3");
}

Test(sandbox_forbidden, open_for_writing_kills_and_creates_nothing)
{
    char path[64];
    struct stat st;

    snprintf(path, sizeof(path), "/tmp/bg-sandbox-%d-new", (int)getpid());
    unlink(path);
    assert_sigsys(run_child(do_open_write, path), "open(O_WRONLY|O_CREAT)");
    cr_assert_neq(stat(path, &st), 0, "the file was created");
}

Test(sandbox_forbidden, open_existing_for_append_kills)
{
    char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/bg-sandbox-%d-app", (int)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    assert_sigsys(run_child(do_open_append, path), "open(O_WRONLY|O_APPEND)");
    unlink(path);
}

Test(sandbox_forbidden, executable_memory_kills)
{
    assert_sigsys(run_child(do_mprotect_exec, NULL), "mprotect(PROT_EXEC)");
    assert_sigsys(run_child(do_mmap_exec, NULL), "mmap(PROT_EXEC)");
}

Test(sandbox_forbidden, bind_and_listen_kill)
{
    assert_sigsys(run_child(do_bind, NULL), "bind");
    assert_sigsys(run_child(do_listen, NULL), "listen");
}

Test(sandbox_forbidden, packet_socket_kills)
{
    assert_sigsys(run_child(do_packet_socket, NULL), "socket(AF_PACKET)");
}

Test(sandbox_forbidden, signal_to_another_process_kills)
{
    assert_sigsys(run_child(do_kill_parent, NULL), "kill(parent)");
}

Test(sandbox_forbidden, ptrace_and_setuid_kill)
{
    assert_sigsys(run_child(do_ptrace, NULL), "ptrace");
    assert_sigsys(run_child(do_setuid, NULL), "setuid");
}

Test(sandbox_forbidden, fcntl_lock_and_tiocsti_kill)
{
    assert_sigsys(run_child(do_fcntl_lock, NULL), "fcntl(F_SETLK)");
    assert_sigsys(run_child(do_ioctl_tiocsti, NULL), "ioctl(TIOCSTI)");
}

/* Without a filter: does this kernel run i386 syscalls at all? Some VMs' kernels deliver
 * SIGSEGV for int 0x80 (no IA32 emulation), others return -ENOSYS. */
static int do_i386_probe(void *arg)
{
    (void)arg;
    /* The kernel's SIGSEGV is the answer here, not a bug for a sanitizer to report. */
    signal(SIGSEGV, SIG_DFL);
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory"); /* i386 getpid */
    return ret == (long)getpid() ? CHILD_OK : CHILD_CHECK_FAILED;
#else
    return CHILD_OK;
#endif
}

Test(sandbox_forbidden, x32_abi_kills)
{
    assert_sigsys(run_child(do_x32_syscall, NULL), "x32 syscall");
}

/* The property: the i386 entry never executes a syscall under the filter. Where the kernel
 * has no i386 entry, nothing can run through it, and the case says so and is skipped. */
Test(sandbox_forbidden, i386_abi_kills)
{
    int probe = run_child(do_i386_probe, NULL);

    if (!WIFEXITED(probe) || WEXITSTATUS(probe) != CHILD_OK) {
        cr_skip_test("this kernel does not run i386 syscalls (unfiltered int 0x80: %s %d)",
                     WIFSIGNALED(probe) ? "signal" : "exit code",
                     WIFSIGNALED(probe) ? WTERMSIG(probe) : WEXITSTATUS(probe));
    }
    assert_sigsys(run_child(do_i386_syscall, NULL), "int 0x80");
}

/* ---- probes: answered with an errno, the child lives on ---- */

static int do_probes(void *arg)
{
    struct stat st;
    struct tm tm;
    time_t t = time(NULL);
    struct termios tio;
    int fd;

    (void)arg;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 || errno != EACCES)
        return 10;
    fd = openat(AT_FDCWD, "/proc/self/maps", O_RDONLY);
    if (fd >= 0 || errno != EACCES)
        return 11;
    if (stat("/etc/passwd", &st) == 0 || errno != EACCES)
        return 12;
    if (socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) >= 0 || errno != EAFNOSUPPORT)
        return 13;
    if (tcgetattr(STDIN_FILENO, &tio) == 0 || errno != ENOTTY)
        return 14;
    if (access("/etc/passwd", R_OK) == 0 || errno != EACCES)
        return 15;
    /* tzset() may try /etc/localtime: it falls back to UTC instead of dying */
    if (localtime_r(&t, &tm) == NULL)
        return 16;
    if (fstat(STDERR_FILENO, &st) != 0)
        return 17;
    return CHILD_OK;
}

Test(sandbox_probes, read_only_opens_stat_netlink_tty_fail_with_errno)
{
    assert_exit_ok(run_child(do_probes, NULL), "probes");
}

/* ---- the workload of a serving worker survives ---- */

typedef struct workload {
    int listen_fd; /* opened by the parent, as the master opens listen sockets */
    int port;
    bg_metrics *metrics; /* created by the parent, as the master does */
} workload;

static int workload_sockets(const workload *w, int ep)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)w->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct epoll_event ev = {.events = EPOLLIN}, got[4];
    char buf[64];
    int cfd, sfd, flags, avail = 0;

    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return 20;
    sfd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    flags = fcntl(cfd, F_GETFL);
    if (sfd < 0 || flags < 0 || fcntl(cfd, F_SETFL, flags | O_NONBLOCK) != 0)
        return 21;
    ev.data.fd = sfd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0 || write(cfd, "ping", 4) != 4)
        return 22;
    if (epoll_wait(ep, got, 4, 5000) != 1 || got[0].data.fd != sfd)
        return 23;
    if (ioctl(sfd, FIONREAD, &avail) != 0 || avail != 4 || read(sfd, buf, sizeof(buf)) != 4)
        return 24;
    if (send(sfd, "pong", 4, MSG_NOSIGNAL) != 4 || recv(cfd, buf, sizeof(buf), 0) < 0)
        return 25;
    if (setsockopt(sfd, SOL_SOCKET, SO_KEEPALIVE, &(int){1}, sizeof(int)) != 0)
        return 26;
    if (shutdown(sfd, SHUT_WR) != 0 || close(sfd) != 0 || close(cfd) != 0)
        return 27;
    return CHILD_OK;
}

static int workload_timers(int ep)
{
    struct itimerspec its = {.it_value = {.tv_nsec = 2000000}};
    struct epoll_event ev = {.events = EPOLLIN}, got[2];
    uint64_t n;
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (tfd < 0 || efd < 0 || timerfd_settime(tfd, 0, &its, NULL) != 0)
        return 30;
    ev.data.fd = tfd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) != 0)
        return 31;
    if (epoll_wait(ep, got, 2, 5000) != 1 || read(tfd, &n, sizeof(n)) != sizeof(n))
        return 32;
    n = 1;
    if (write(efd, &n, sizeof(n)) != sizeof(n) || read(efd, &n, sizeof(n)) != sizeof(n))
        return 33;
    close(tfd);
    close(efd);
    return CHILD_OK;
}

static int workload_memory(void)
{
    size_t big = 64u << 20, i;
    char *p = malloc(big), *q, *small[256];
    unsigned char rnd[32];

    if (p == NULL)
        return 40;
    memset(p, 0xab, big);
    q = realloc(p, big * 2);
    if (q == NULL)
        return 41;
    memset(q + big, 0xcd, big);
    free(q);
    for (i = 0; i < BG_ARRAY_LEN(small); i++) {
        small[i] = malloc(i * 97 + 1);
        if (small[i] == NULL)
            return 42;
    }
    for (i = 0; i < BG_ARRAY_LEN(small); i++)
        free(small[i]);
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return 43;
    return CHILD_OK;
}

/* What GET /metrics does in a worker: count, then render every slot (qsort, malloc). */
static int workload_metrics(bg_metrics *m)
{
    char name[16], *text = NULL;
    size_t len = 0;
    int i;

    for (i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "svc%d", i);
        bg_metrics_request_done(m, 0, name, 200 + i % 400, i * 1000);
    }
    if (bg_metrics_render_prometheus(m, &text, &len) != BG_OK)
        return 44;
    if (strstr(text, "busgate_requests_total{service=\"svc7\",code_class=\"2xx\"} 1\n") == NULL)
        return 45;
    free(text);
    return CHILD_OK;
}

static int do_workload(void *arg)
{
    const workload *w = arg;
    char line[128];
    int ep, rc;

    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return 50;
    if ((rc = workload_sockets(w, ep)) != CHILD_OK || (rc = workload_timers(ep)) != CHILD_OK ||
        (rc = workload_memory()) != CHILD_OK || (rc = workload_metrics(w->metrics)) != CHILD_OK)
        return rc;
    snprintf(line, sizeof(line), "sandboxed pid %d at %lld ms\n", (int)getpid(),
             (long long)bg_mono_ms());
    if (write(STDERR_FILENO, line, strlen(line)) < 0)
        return 51;
    (void)bg_wall_ms();
    close(ep);
    return CHILD_OK;
}

static int open_listener(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

Test(sandbox_allowed, worker_workload_survives)
{
    workload w;

    char err[BG_ERR_LEN] = "";

    w.listen_fd = open_listener(&w.port);
    w.metrics = bg_metrics_create(4, err);
    cr_assert_not_null(w.metrics, "%s", err);
    assert_exit_ok(run_child(do_workload, &w), "workload");
    close(w.listen_fd);
    bg_metrics_destroy(w.metrics);
}

/* ---- reconnecting to Valkey under the filter ---- */

typedef struct reconnect {
    const char *url;
    const char *tls_ca_file; /* NULL: plain TCP */
    int tls_port;
    int ready_fd; /* the child writes one byte once it is sandboxed */
} reconnect;

static void on_pong(bg_abus *b, redisReply *r, void *priv)
{
    int *got = priv;

    (void)b;
    *got = (r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) ? 1 : -1;
}

/* Runs the loop until *flag is set or cond() holds; bounded. */
static int run_until(bg_ev *loop, bg_abus *b, int64_t limit_ms, int want_reconnect,
                     const int *reply)
{
    char err[BG_ERR_LEN];
    int64_t end = bg_mono_ms() + limit_ms;

    while (bg_mono_ms() < end) {
        if (reply != NULL && *reply != 0)
            return *reply == 1;
        if (reply == NULL && bg_abus_connected(b) &&
            (!want_reconnect || bg_abus_reconnects(b) >= 1))
            return 1;
        if (bg_ev_run_once(loop, 50, err) == BG_ERR)
            return 0;
    }
    return 0;
}

static int do_reconnect(void *arg)
{
    const reconnect *rc = arg;
    char err[BG_ERR_LEN];
    bg_bus_opts o;
    bg_ev *loop;
    bg_abus *b;
    int got = 0;

    signal(SIGPIPE, SIG_IGN);
    bg_bus_opts_init(&o);
    loop = bg_ev_new(err);
    if (loop == NULL || bg_bus_opts_from_url(&o, rc->url, err) != BG_OK)
        return 60;
    if (rc->tls_ca_file != NULL) {
        o.addr.tls = 1;
        o.addr.port = rc->tls_port;
        o.tls_ca_file = rc->tls_ca_file; /* loaded now, before the sandbox */
    }
    b = bg_abus_new(loop, &o, err);
    if (b == NULL || !run_until(loop, b, 5000, 0, NULL))
        return 61;
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    if (write(rc->ready_fd, "r", 1) != 1)
        return 62;
    if (!run_until(loop, b, 15000, 1, NULL))
        return 63;
    if (bg_abus_command(b, on_pong, &got, "PING") != BG_OK || !run_until(loop, b, 5000, 0, &got))
        return 64;
    /* no bg_abus_free/bg_ev_free: _exit, as a worker killed at this point would */
    return CHILD_OK;
}

static int wait_byte(int fd, int64_t limit_ms)
{
    int64_t end = bg_mono_ms() + limit_ms;
    char c;

    while (bg_mono_ms() < end) {
        if (read(fd, &c, 1) == 1)
            return 1;
        usleep(10000);
    }
    return 0;
}

/* The child connects, enters the sandbox, and must reconnect after a server restart. */
static void check_reconnect(bgt_valkey *v, reconnect *rc)
{
    int fds[2], status;
    pid_t pid;

    cr_assert_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    rc->url = v->url;
    rc->ready_fd = fds[1];
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(do_reconnect(rc));
    if (!wait_byte(fds[0], 10000)) {
        status = wait_child(pid);
        cr_assert_fail("child not sandboxed and connected; status 0x%x", status);
    }
    bgt_valkey_kill(v);
    cr_assert_eq(bgt_valkey_restart(v), 0, "valkey did not restart");
    status = wait_child(pid);
    close(fds[0]);
    close(fds[1]);
    assert_exit_ok(status, "reconnect");
}

static bgt_valkey server;
static bgt_tls_certs certs;

static void stop_server(void)
{
    bgt_valkey_stop(&server);
    bgt_tls_remove_certs(&certs);
}

Test(sandbox_allowed, valkey_reconnect_under_the_filter, .fini = stop_server)
{
    reconnect rc = {0};

    cr_assert_eq(bgt_valkey_start(&server, NULL), 0, "valkey did not start");
    check_reconnect(&server, &rc);
}

/* OpenSSL's handshake on a reconnect must need nothing the filter refuses, given a CA
 * file loaded before the sandbox. */
Test(sandbox_allowed, valkey_tls_reconnect_under_the_filter, .fini = stop_server)
{
    reconnect rc = {0};

    cr_assert_eq(bgt_tls_make_certs(&certs), 0, "openssl could not make test certificates");
    cr_assert_eq(bgt_valkey_start_tls(&server, &certs, &rc.tls_port, NULL), 0);
    rc.tls_ca_file = certs.ca_crt;
    check_reconnect(&server, &rc);
}

/* ---- a TLS listener's handshake under the filter ---- */

/* The worker side: the context came from the parent (the master builds it before fork);
 * the filter goes on, then a whole server handshake with a client certificate, its
 * subject taken as http_conn_tls.c does, one exchange and close_notify. */
static int do_tls_server(void *arg)
{
    SSL_CTX *ctx = ((void **)arg)[0];
    int fd = *(int *)((void **)arg)[1];
    char buf[16] = "";
    SSL *ssl;
    BIO *bio;

    signal(SIGPIPE, SIG_IGN); /* as the worker: the client may be gone by close_notify */
    if (!filter_on())
        return CHILD_SANDBOX_FAILED;
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1)
        return CHILD_CHECK_FAILED;
    bio = BIO_new(BIO_s_mem());
    if (SSL_get0_peer_certificate(ssl) == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
        X509_NAME_print_ex(bio, X509_get_subject_name(SSL_get0_peer_certificate(ssl)), 0,
                           XN_FLAG_RFC2253) < 0)
        return CHILD_CHECK_FAILED;
    BIO_free(bio);
    if (SSL_read(ssl, buf, 4) != 4 || memcmp(buf, "ping", 4) != 0 || SSL_write(ssl, "pong", 4) != 4)
        return CHILD_CHECK_FAILED;
    SSL_shutdown(ssl);
    SSL_free(ssl);
    return CHILD_OK;
}

/* The client side, in the test process: 0 when the exchange went through. */
static int tls_client_ping(int fd)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char buf[8] = "";
    SSL *ssl;
    int ok;

    cr_assert_not_null(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    cr_assert_eq(SSL_CTX_load_verify_locations(ctx, certs.ca_crt, NULL), 1);
    cr_assert_eq(SSL_CTX_use_certificate_chain_file(ctx, certs.client_crt), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey_file(ctx, certs.client_key, SSL_FILETYPE_PEM), 1);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set1_host(ssl, "localhost");
    ok = SSL_connect(ssl) == 1 && SSL_write(ssl, "ping", 4) == 4 && SSL_read(ssl, buf, 4) == 4 &&
         memcmp(buf, "pong", 4) == 0;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return ok ? 0 : -1;
}

Test(sandbox_allowed, tls_server_handshake_under_the_filter, .fini = stop_server)
{
    static bg_config cfg;
    char err[BG_ERR_LEN];
    bg_tls_key bad;
    SSL_CTX *ctx;
    void *arg[2];
    int sv[2], client_rc;
    pid_t pid;

    cr_assert_eq(bgt_tls_make_certs(&certs), 0, "openssl could not make test certificates");
    cr_assert_eq(bgt_tls_make_clients(&certs), 0);
    bg_config_defaults(&cfg);
    snprintf(cfg.tls.certificate, sizeof(cfg.tls.certificate), "%s", certs.server_crt);
    snprintf(cfg.tls.certificate_key, sizeof(cfg.tls.certificate_key), "%s", certs.server_key);
    snprintf(cfg.tls.client_ca, sizeof(cfg.tls.client_ca), "%s", certs.ca_crt);
    cfg.tls.verify_client = BG_TLS_VERIFY_ON;
    ctx = bg_tls_server_ctx_new(&cfg, &bad, err);
    cr_assert_not_null(ctx, "[tls] %s: %s", bg_tls_key_name(bad), err);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    arg[0] = ctx;
    arg[1] = &sv[1];
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        _exit(do_tls_server(arg));
    }
    close(sv[1]);
    client_rc = tls_client_ping(sv[0]);
    close(sv[0]);
    assert_exit_ok(wait_child(pid), "TLS server under the filter");
    cr_assert_eq(client_rc, 0, "the client saw no pong");
    SSL_CTX_free(ctx);
}

/* ---- bg_sandbox_apply: seccomp off, trap mode, privileges, rlimits ---- */

static void test_config(bg_config *cfg)
{
    bg_config_defaults(cfg);
    cfg->gateway.user[0] = '\0';
    cfg->gateway.group[0] = '\0';
    cfg->gateway.open_files = 256;
}

static int do_seccomp_off(void *arg)
{
    char *argv[] = {"/bin/sh", "-c", "exit 42", NULL}, err[BG_ERR_LEN];
    const char *path = arg;
    bg_config cfg;
    int fd;

    test_config(&cfg);
    cfg.sandbox.seccomp = 0;
    if (bg_sandbox_apply(&cfg, err) != BG_OK)
        return CHILD_SANDBOX_FAILED;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) != 0)
        return 70;
    execv(argv[0], argv);
    return 71;
}

Test(sandbox_apply, seccomp_off_filters_nothing)
{
    char path[64];
    struct stat st;
    int status;

    snprintf(path, sizeof(path), "/tmp/bg-sandbox-%d-off", (int)getpid());
    status = run_child(do_seccomp_off, path);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 42,
              "execve under seccomp = off did not run /bin/sh (status 0x%x)", status);
    cr_assert_eq(stat(path, &st), 0, "open for writing under seccomp = off failed");
    unlink(path);
}

static int do_trap(void *arg)
{
    char *argv[] = {"/bin/true", NULL}, err[BG_ERR_LEN];
    const int *fd = arg;
    bg_config cfg;

    if (dup2(*fd, STDERR_FILENO) < 0)
        return 80;
    setenv("BUSGATE_SECCOMP_TRAP", "1", 1);
    test_config(&cfg);
    if (bg_sandbox_apply(&cfg, err) != BG_OK)
        return CHILD_SANDBOX_FAILED;
    execv(argv[0], argv);
    return CHILD_SURVIVED;
}

Test(sandbox_apply, trap_mode_logs_the_syscall_then_dies_of_sigsys)
{
    char out[4096] = "", want[64];
    int fds[2], status;
    ssize_t n;

    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    status = run_child(do_trap, &fds[1]);
    close(fds[1]);
    n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    cr_assert_gt(n, 0, "nothing written by the SIGSYS handler");
    out[n] = '\0';
    assert_sigsys(status, "execve in trap mode");
    snprintf(want, sizeof(want), "trapped syscall %d ", (int)SYS_execve);
    cr_assert_not_null(strstr(out, want), "'%s' not in the log: %s", want, out);
}

static int do_limits(void *arg)
{
    struct rlimit nofile, core, nproc;
    char err[BG_ERR_LEN];
    bg_config cfg;

    (void)arg;
    test_config(&cfg);
    cfg.gateway.open_files = 100;
    if (bg_sandbox_apply(&cfg, err) != BG_OK)
        return CHILD_SANDBOX_FAILED;
    if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 || getrlimit(RLIMIT_CORE, &core) != 0 ||
        getrlimit(RLIMIT_NPROC, &nproc) != 0)
        return 100;
    if (nofile.rlim_cur != 100 || nofile.rlim_max != 100)
        return 101;
    if (core.rlim_cur != 0 || core.rlim_max != 0 || nproc.rlim_cur != 0 || nproc.rlim_max != 0)
        return 102;
    return CHILD_OK;
}

Test(sandbox_apply, rlimits_set)
{
    assert_exit_ok(run_child(do_limits, NULL), "rlimits");
}

typedef struct priv_case {
    const char *user, *group;
    uid_t become; /* setresuid to this first (unprivileged start), or (uid_t)-1 */
    int want;     /* bg_sandbox_apply's answer */
} priv_case;

static int do_priv(void *arg)
{
    const priv_case *pc = arg;
    char err[BG_ERR_LEN] = "";
    bg_config cfg;
    gid_t groups[4];
    int rc;

    test_config(&cfg);
    cfg.sandbox.seccomp = 0;
    snprintf(cfg.gateway.user, sizeof(cfg.gateway.user), "%s", pc->user);
    snprintf(cfg.gateway.group, sizeof(cfg.gateway.group), "%s", pc->group);
    if (pc->become != (uid_t)-1 &&
        (setgroups(0, NULL) != 0 || setresgid(pc->become, pc->become, pc->become) != 0 ||
         setresuid(pc->become, pc->become, pc->become) != 0))
        return 110;
    rc = bg_sandbox_apply(&cfg, err);
    if (rc != pc->want) {
        fprintf(stderr, "bg_sandbox_apply(%s:%s) = %d: %s\n", pc->user, pc->group, rc, err);
        return 111;
    }
    if (rc != BG_OK || pc->become != (uid_t)-1)
        return CHILD_OK;
    if (getuid() != 65534 || geteuid() != 65534 || getgid() != 65534 || getegid() != 65534)
        return 112;
    if (getgroups(4, groups) != 1 || groups[0] != 65534)
        return 113;
    if (setuid(0) == 0 || errno != EPERM)
        return 114;
    return CHILD_OK;
}

static void require_root_and_nobody(void)
{
    struct passwd *pw = getpwnam("nobody");

    if (geteuid() != 0 || pw == NULL || pw->pw_uid != 65534 || pw->pw_gid != 65534)
        cr_skip_test("needs root and nobody/nogroup = 65534");
}

Test(sandbox_privileges, drops_to_the_configured_user_for_good)
{
    priv_case pc = {"nobody", "nogroup", (uid_t)-1, BG_OK};

    require_root_and_nobody();
    assert_exit_ok(run_child(do_priv, &pc), "drop to nobody");
}

Test(sandbox_privileges, unknown_user_or_group_or_group_alone_is_a_config_error)
{
    priv_case u = {"bg-no-such-user", "", (uid_t)-1, BG_SANDBOX_ERR_CONFIG};
    priv_case g = {"nobody", "bg-no-such-group", (uid_t)-1, BG_SANDBOX_ERR_CONFIG};
    priv_case alone = {"", "nogroup", (uid_t)-1, BG_SANDBOX_ERR_CONFIG};

    assert_exit_ok(run_child(do_priv, &u), "unknown user");
    assert_exit_ok(run_child(do_priv, &g), "unknown group");
    assert_exit_ok(run_child(do_priv, &alone), "group without user");
}

Test(sandbox_privileges, refuses_to_switch_users_without_root)
{
    priv_case other = {"daemon", "", 65534, BG_SANDBOX_ERR_CONFIG};
    priv_case same = {"nobody", "nogroup", 65534, BG_OK};

    require_root_and_nobody();
    assert_exit_ok(run_child(do_priv, &other), "switch without root");
    assert_exit_ok(run_child(do_priv, &same), "already the configured user");
}

/* exit() runs atexit handlers and flushes stdio (and, in sanitizer builds, would run the
 * leak check that needs ptrace): a worker's normal exit must survive the filter. */
static int do_normal_exit(void *arg)
{
    char err[BG_ERR_LEN];
    bg_config cfg;

    (void)arg;
    test_config(&cfg);
    if (bg_sandbox_apply(&cfg, err) != BG_OK)
        return CHILD_SANDBOX_FAILED;
    printf("buffered output flushed at exit\n");
    exit(CHILD_OK);
}

Test(sandbox_apply, normal_exit_survives_the_filter)
{
    assert_exit_ok(run_child(do_normal_exit, NULL), "exit()");
}
