/* sandbox.c: confine a worker process: privilege drop, rlimits, no_new_privs, then the filter. */
#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "busgate/core/log.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define SANDBOX_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#define SANDBOX_HAVE_LSAN 1
#endif
#endif

/* getpwnam_r/getgrnam_r scratch space; ERANGE past it (huge groups) is reported. */
#define SANDBOX_PW_BUF 16384

/* Where the SIGSYS handler writes: the error log's fd when the trap was installed. */
static int sandbox_trap_fd = STDERR_FILENO;

static size_t sandbox_append(char *buf, size_t len, size_t cap, const char *s)
{
    while (*s != '\0' && len < cap)
        buf[len++] = *s++;
    return len;
}

/* Async-signal-safe: only write(), sigaction(), kill() of itself and sigprocmask(),
 * all allowed by the filter. The worker then dies of SIGSYS as it would without the
 * trap, so the master logs the same thing either way. */
static void sandbox_on_sigsys(int sig, siginfo_t *info, void *uctx)
{
    char line[128], digits[16];
    unsigned v = info ? (unsigned)info->si_syscall : 0;
    size_t len = 0, n = 0;
    struct sigaction dfl;
    sigset_t set;

    (void)uctx;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < sizeof(digits) - 1);
    len = sandbox_append(line, len, sizeof(line), "busgate sandbox: seccomp trapped syscall ");
    while (n > 0 && len < sizeof(line))
        line[len++] = digits[--n];
    len = sandbox_append(line, len, sizeof(line), " (scmp_sys_resolver NUMBER names it)\n");
    if (write(sandbox_trap_fd, line, len) < 0) {
        /* nothing left to report with */
    }
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    kill(getpid(), sig);
    /* The handler runs with SIGSYS blocked: unblocking delivers the pending one. */
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    _exit(1);
}

static int sandbox_install_trap(char *err)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = sandbox_on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sandbox_trap_fd = bg_log_fd();
    if (sigaction(SIGSYS, &sa, NULL) != 0) {
        bg_set_error(err, "sigaction(SIGSYS): %s", strerror(errno));
        return BG_ERR;
    }
    return BG_OK;
}

/* LeakSanitizer's exit-time check stops the world with clone() and ptrace() and
 * reads /proc: the filter forbids all three and RLIMIT_NPROC 0 the first even with
 * seccomp off. Checking now, while it still works, reports leaks made so far and
 * turns the exit-time check off (sanitizer builds only). */
static void sandbox_leak_check_now(void)
{
#ifdef SANDBOX_HAVE_LSAN
    static int done;

    if (!done)
        __lsan_do_leak_check();
    done = 1;
#endif
}

int bg_sandbox_filter_only(int trap, char *err)
{
    sandbox_leak_check_now();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        bg_set_error(err, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
        return BG_ERR;
    }
    if (trap && sandbox_install_trap(err) != BG_OK)
        return BG_ERR;
    return bg_sandbox_load_filter(trap, err);
}

/* Looks up the target ids. An unknown user or group is a configuration error. */
static int sandbox_lookup_ids(const bg_config *cfg, uid_t *uid, gid_t *gid, char *err)
{
    char buf[SANDBOX_PW_BUF];
    struct passwd pw, *pwp = NULL;
    struct group gr, *grp = NULL;
    int rc;

    rc = getpwnam_r(cfg->gateway.user, &pw, buf, sizeof(buf), &pwp);
    if (pwp == NULL) {
        bg_set_error(err, "[gateway] user '%s': %s", cfg->gateway.user,
                     rc ? strerror(rc) : "no such user");
        return BG_SANDBOX_ERR_CONFIG;
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    if (cfg->gateway.group[0] == '\0')
        return BG_OK;
    rc = getgrnam_r(cfg->gateway.group, &gr, buf, sizeof(buf), &grp);
    if (grp == NULL) {
        bg_set_error(err, "[gateway] group '%s': %s", cfg->gateway.group,
                     rc ? strerror(rc) : "no such group");
        return BG_SANDBOX_ERR_CONFIG;
    }
    *gid = gr.gr_gid;
    return BG_OK;
}

/* All three ids of each kind, so a saved set-user-id cannot bring root back. */
static int sandbox_switch_ids(uid_t uid, gid_t gid, char *err)
{
    if (setgroups(1, &gid) != 0) {
        bg_set_error(err, "setgroups(%u): %s", (unsigned)gid, strerror(errno));
        return BG_ERR;
    }
    if (setresgid(gid, gid, gid) != 0) {
        bg_set_error(err, "setresgid(%u): %s", (unsigned)gid, strerror(errno));
        return BG_ERR;
    }
    if (setresuid(uid, uid, uid) != 0) {
        bg_set_error(err, "setresuid(%u): %s", (unsigned)uid, strerror(errno));
        return BG_ERR;
    }
    return BG_OK;
}

/* Trust but verify (as OpenSSH's permanently_set_uid): the ids stuck and root is gone. */
static int sandbox_verify_ids(uid_t uid, gid_t gid, char *err)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0) {
        bg_set_error(err, "getresuid/getresgid: %s", strerror(errno));
        return BG_ERR;
    }
    if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid) {
        bg_set_error(err, "privilege drop to uid %u gid %u did not stick", (unsigned)uid,
                     (unsigned)gid);
        return BG_ERR;
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        bg_set_error(err, "privilege drop to uid %u: root could be regained", (unsigned)uid);
        return BG_ERR;
    }
    return BG_OK;
}

static int sandbox_drop_privileges(const bg_config *cfg, char *err)
{
    uid_t uid;
    gid_t gid;
    int rc;

    if (cfg->gateway.user[0] == '\0') {
        if (cfg->gateway.group[0] != '\0') {
            bg_set_error(err, "[gateway] group '%s' needs a [gateway] user", cfg->gateway.group);
            return BG_SANDBOX_ERR_CONFIG;
        }
        if (geteuid() == 0)
            bg_warn("workers run as root: set [gateway] user to drop privileges");
        return BG_OK;
    }
    rc = sandbox_lookup_ids(cfg, &uid, &gid, err);
    if (rc != BG_OK)
        return rc;
    if (geteuid() != 0) {
        /* Already the configured user (a test, or started by that user): nothing to drop. */
        if (getuid() == uid && geteuid() == uid && getegid() == gid)
            return BG_OK;
        bg_set_error(err, "[gateway] user '%s': switching users needs root (running as uid %u)",
                     cfg->gateway.user, (unsigned)geteuid());
        return BG_SANDBOX_ERR_CONFIG;
    }
    if (uid == 0)
        bg_warn("[gateway] user '%s' is root: workers keep full privileges", cfg->gateway.user);
    if (sandbox_switch_ids(uid, gid, err) != BG_OK)
        return BG_ERR;
    return sandbox_verify_ids(uid, gid, err);
}

/* Runs before the privilege drop: raising the hard limit needs CAP_SYS_RESOURCE.
 * Without it, the soft limit goes as high as the hard one allows, with a warning. */
static int sandbox_limit_files(const bg_config *cfg, char *err)
{
    struct rlimit rl, old;
    rlim_t want = (rlim_t)cfg->gateway.open_files;

    if (cfg->gateway.open_files <= 0)
        return BG_OK;
    rl.rlim_cur = rl.rlim_max = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return BG_OK;
    if (errno != EPERM || getrlimit(RLIMIT_NOFILE, &old) != 0) {
        bg_set_error(err, "setrlimit(RLIMIT_NOFILE, %d): %s", cfg->gateway.open_files,
                     strerror(errno));
        return BG_ERR;
    }
    rl.rlim_max = old.rlim_max;
    rl.rlim_cur = want < old.rlim_max ? want : old.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        bg_set_error(err, "setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_cur,
                     strerror(errno));
        return BG_ERR;
    }
    bg_warn("[gateway] open_files = %d is above the hard limit; using %llu",
            cfg->gateway.open_files, (unsigned long long)rl.rlim_cur);
    return BG_OK;
}

/* No core files (a worker's memory holds request bodies, tokens and the Valkey
 * password) and no new processes even with seccomp off. RLIMIT_NPROC counts the
 * user's processes but binds only the process it is set in, so the master and
 * other processes of the same user can still fork; root ignores it. No
 * RLIMIT_FSIZE: the worker appends to its inherited log files. */
static int sandbox_limit_rest(char *err)
{
    const struct rlimit zero = {0, 0};

    if (setrlimit(RLIMIT_CORE, &zero) != 0) {
        bg_set_error(err, "setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
        return BG_ERR;
    }
    if (setrlimit(RLIMIT_NPROC, &zero) != 0) {
        bg_set_error(err, "setrlimit(RLIMIT_NPROC, 0): %s", strerror(errno));
        return BG_ERR;
    }
    return BG_OK;
}

static int sandbox_trap_requested(void)
{
    const char *v = getenv("BUSGATE_SECCOMP_TRAP");

    return v != NULL && strcmp(v, "1") == 0;
}

int bg_sandbox_apply(const bg_config *cfg, char *err)
{
    int rc, trap = sandbox_trap_requested();

    sandbox_leak_check_now();
    if (sandbox_limit_files(cfg, err) != BG_OK)
        return BG_ERR;
    rc = sandbox_drop_privileges(cfg, err);
    if (rc != BG_OK)
        return rc;
    if (sandbox_limit_rest(err) != BG_OK)
        return BG_ERR;
    if (!cfg->sandbox.seccomp) {
        bg_warn("[sandbox] seccomp = off: workers run without a syscall filter");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
            bg_set_error(err, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
            return BG_ERR;
        }
        return BG_OK;
    }
    if (trap)
        bg_warn("BUSGATE_SECCOMP_TRAP=1: forbidden syscalls are logged before the worker dies");
    return bg_sandbox_filter_only(trap, err);
}
