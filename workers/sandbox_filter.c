/* sandbox_filter.c: the worker's seccomp allowlist (libseccomp): what a serving worker may call. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

/*
 * Everything not listed kills the whole process (SCMP_ACT_KILL_PROCESS), so a
 * violation shows in the master's log as a worker killed by SIGSYS. Three kinds
 * of entries:
 *   - allowed outright: what the event loop, the HTTP server, the async Valkey
 *     client (including reconnects), malloc and the sanitizers call;
 *   - allowed with an argument check: the call is needed, some uses are not;
 *   - failed with an errno: calls that libc, OpenSSL or the sanitizers make
 *     merely to probe (a read-only open of /etc/localtime or /proc/self/maps, a
 *     netlink socket for getaddrinfo, isatty()); they get an error the caller
 *     already handles, nothing happens, and the worker keeps serving.
 * Creating processes, executing programs, opening files for writing, making
 * memory executable, binding or listening on new sockets, ptrace and signals to
 * other processes all fall to the default action.
 */

/* clang-format off */
static const int sandbox_allowed[] = {
    /* I/O on descriptors the worker inherited or made (logs, sockets, channel) */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(close),
    SCMP_SYS(lseek), SCMP_SYS(fstat), SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3),
    SCMP_SYS(pipe2),
    /* sockets: clients on the inherited listeners, (re)connects to Valkey, the channel */
    SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(connect), SCMP_SYS(shutdown),
    SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
    SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg),
    SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg),
    /* the event loop (bg_ev) and hiredis' connect wait */
    SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_pwait2), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(eventfd2),
    SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
    /* memory; mmap and mprotect are checked below */
    SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
    /* time and waiting */
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
    SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(futex), SCMP_SYS(sched_yield),
    SCMP_SYS(restart_syscall),
    /* signals: handlers, masks, the sanitizers' alternate stack */
    SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction),
    SCMP_SYS(sigaltstack),
    /* identity and the end */
    SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid), SCMP_SYS(getuid), SCMP_SYS(geteuid),
    SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(exit), SCMP_SYS(exit_group),
    /* randomness for ids and jitter; CPU count (glibc, sanitizers); memory size, which
     * qsort() reads without checking for failure */
    SCMP_SYS(getrandom), SCMP_SYS(sched_getaffinity), SCMP_SYS(sysinfo),
};
/* clang-format on */

/* Probes answered with an errno; the syscall never runs. */
typedef struct sandbox_deny {
    int nr;
    int err;
} sandbox_deny;

static const sandbox_deny sandbox_denied[] = {
    {SCMP_SYS(readlink), EACCES}, /* sanitizers: /proc/self/exe while reporting */
    {SCMP_SYS(readlinkat), EACCES},
    {SCMP_SYS(access), EACCES}, /* libc and OpenSSL probing for files */
    {SCMP_SYS(faccessat), EACCES},
    {SCMP_SYS(faccessat2), EACCES},
    {SCMP_SYS(uname), EPERM}, /* libraries probing the kernel version */
    {SCMP_SYS(prctl), EPERM}, /* the sanitizers name their mappings; nothing else needs it */
};

static int sandbox_add(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n,
                       const struct scmp_arg_cmp *cmp, char *err)
{
    int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
    char *name;

    if (rc == 0)
        return BG_OK;
    name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    bg_set_error(err, "seccomp_rule_add(%s): %s", name ? name : "?", strerror(-rc));
    free(name);
    return BG_ERR;
}

static int sandbox_add_lists(scmp_filter_ctx ctx, char *err)
{
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(sandbox_allowed); i++) {
        if (sandbox_add(ctx, SCMP_ACT_ALLOW, sandbox_allowed[i], 0, NULL, err) != BG_OK)
            return BG_ERR;
    }
    for (i = 0; i < BG_ARRAY_LEN(sandbox_denied); i++) {
        if (sandbox_add(ctx, SCMP_ACT_ERRNO((uint32_t)sandbox_denied[i].err), sandbox_denied[i].nr,
                        0, NULL, err) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

#define SANDBOX_CMP_MAX 2

/* One conditional rule: action when every comparison holds. */
typedef struct sandbox_cond {
    int nr;
    uint32_t action;
    unsigned n;
    struct scmp_arg_cmp cmp[SANDBOX_CMP_MAX];
} sandbox_cond;

/* Bits of open flags that make an open more than a read: with none of them set,
 * the open is a probe and fails with EACCES; with any, it kills. */
#define SANDBOX_OPEN_WRITE_BITS (O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND)

static int sandbox_add_conds(scmp_filter_ctx ctx, char *err)
{
    const uint32_t allow = SCMP_ACT_ALLOW;
    const scmp_datum_t self = (scmp_datum_t)getpid();
    /* clang-format off */
    const sandbox_cond conds[] = {
        /* no executable memory: no code is loaded after startup */
        {SCMP_SYS(mmap), allow, 1, {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)}},
        {SCMP_SYS(mprotect), allow, 1, {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)}},
        /* read-only opens are probes (tzdata, /dev/urandom for jansson's hash seed,
         * /proc/self/maps for the sanitizers): EACCES; any other open kills */
        {SCMP_SYS(openat), SCMP_ACT_ERRNO(EACCES), 1,
         {SCMP_A2(SCMP_CMP_MASKED_EQ, SANDBOX_OPEN_WRITE_BITS, O_RDONLY)}},
        {SCMP_SYS(open), SCMP_ACT_ERRNO(EACCES), 1,
         {SCMP_A1(SCMP_CMP_MASKED_EQ, SANDBOX_OPEN_WRITE_BITS, O_RDONLY)}},
        /* fstat() is newfstatat(fd, "", AT_EMPTY_PATH); a lookup by path is a probe */
        {SCMP_SYS(newfstatat), allow, 1,
         {SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)}},
        {SCMP_SYS(newfstatat), SCMP_ACT_ERRNO(EACCES), 1,
         {SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, 0)}},
        {SCMP_SYS(statx), allow, 1, {SCMP_A2(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)}},
        {SCMP_SYS(statx), SCMP_ACT_ERRNO(EACCES), 1,
         {SCMP_A2(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, 0)}},
        /* TCP or Unix sockets to Valkey; netlink is getaddrinfo's probe; others kill */
        {SCMP_SYS(socket), allow, 1, {SCMP_A0(SCMP_CMP_EQ, AF_UNIX)}},
        {SCMP_SYS(socket), allow, 1, {SCMP_A0(SCMP_CMP_EQ, AF_INET)}},
        {SCMP_SYS(socket), allow, 1, {SCMP_A0(SCMP_CMP_EQ, AF_INET6)}},
        {SCMP_SYS(socket), SCMP_ACT_ERRNO(EAFNOSUPPORT), 1, {SCMP_A0(SCMP_CMP_EQ, AF_NETLINK)}},
        /* descriptor flags only: no locks, leases, pipe sizes or signal ownership */
        {SCMP_SYS(fcntl), allow, 1, {SCMP_A1(SCMP_CMP_EQ, F_GETFD)}},
        {SCMP_SYS(fcntl), allow, 1, {SCMP_A1(SCMP_CMP_EQ, F_SETFD)}},
        {SCMP_SYS(fcntl), allow, 1, {SCMP_A1(SCMP_CMP_EQ, F_GETFL)}},
        {SCMP_SYS(fcntl), allow, 1, {SCMP_A1(SCMP_CMP_EQ, F_SETFL)}},
        {SCMP_SYS(fcntl), allow, 1, {SCMP_A1(SCMP_CMP_EQ, F_DUPFD_CLOEXEC)}},
        /* non-blocking mode and readable bytes; isatty() probes get ENOTTY; the rest
         * (TIOCSTI and friends) kills */
        {SCMP_SYS(ioctl), allow, 1, {SCMP_A1(SCMP_CMP_EQ, FIONBIO)}},
        {SCMP_SYS(ioctl), allow, 1, {SCMP_A1(SCMP_CMP_EQ, FIONREAD)}},
        {SCMP_SYS(ioctl), allow, 1, {SCMP_A1(SCMP_CMP_EQ, FIOCLEX)}},
        {SCMP_SYS(ioctl), SCMP_ACT_ERRNO(ENOTTY), 1, {SCMP_A1(SCMP_CMP_EQ, TCGETS)}},
        /* abort() and raise() signal this process only */
        {SCMP_SYS(tgkill), allow, 1, {SCMP_A0(SCMP_CMP_EQ, self)}},
        {SCMP_SYS(kill), allow, 1, {SCMP_A0(SCMP_CMP_EQ, self)}},
        /* reading its own limits (getrlimit, sanitizers) but never changing any */
        {SCMP_SYS(prlimit64), allow, 2, {SCMP_A0(SCMP_CMP_EQ, 0), SCMP_A2(SCMP_CMP_EQ, 0)}},
        {SCMP_SYS(getrlimit), allow, 0, {{0}}},
    };
    /* clang-format on */
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(conds); i++) {
        if (sandbox_add(ctx, conds[i].action, conds[i].nr, conds[i].n, conds[i].cmp, err) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

/* Builds the filter. The native architecture is the only one accepted: a call
 * through another ABI (i386 int 0x80, x32) kills the process too. */
static scmp_filter_ctx sandbox_build(int trap, char *err)
{
    uint32_t deflt = trap ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS;
    scmp_filter_ctx ctx = seccomp_init(deflt);
    int rc;

    if (ctx == NULL) {
        bg_set_error(err, "seccomp_init failed");
        return NULL;
    }
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, deflt);
    if (rc != 0) {
        bg_set_error(err, "seccomp_attr_set(BADARCH): %s", strerror(-rc));
        goto fail;
    }
    if (sandbox_add_lists(ctx, err) != BG_OK || sandbox_add_conds(ctx, err) != BG_OK)
        goto fail;
    return ctx;

fail:
    seccomp_release(ctx);
    return NULL;
}

int bg_sandbox_load_filter(int trap, char *err)
{
    scmp_filter_ctx ctx = sandbox_build(trap, err);
    int rc;

    if (ctx == NULL)
        return BG_ERR;
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc != 0) {
        bg_set_error(err, "seccomp_load: %s", strerror(-rc));
        return BG_ERR;
    }
    return BG_OK;
}
