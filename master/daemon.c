/* daemon.c: background mode, the pid file (libbsd pidfile_*) and `busgated -s` signalling. */
#include <bsd/libutil.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "master.h"

int bg_pidfile_open(const char *path, struct pidfh **out, char *err)
{
    pid_t other = -1;

    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return BG_OK;
    *out = pidfile_open(path, 0644, &other);
    if (*out != NULL)
        return BG_OK;
    if (errno == EEXIST && other > 0)
        bg_set_error(err, "already running (pid %ld, pid file %s)", (long)other, path);
    else if (errno == EEXIST)
        bg_set_error(err, "already running (pid file %s is locked)", path);
    else
        bg_set_error(err, "pidfile_open(\"%s\"): %s", path, strerror(errno));
    return BG_ERR;
}

int bg_pidfile_write(struct pidfh *pfh, char *err)
{
    if (pfh == NULL)
        return BG_OK;
    if (pidfile_write(pfh) != 0) {
        bg_set_error(err, "pidfile_write(): %s", strerror(errno));
        return BG_ERR;
    }
    return BG_OK;
}

void bg_pidfile_remove(struct pidfh *pfh)
{
    if (pfh != NULL)
        pidfile_remove(pfh);
}

void bg_pidfile_forget(struct pidfh *pfh)
{
    int fd = pfh ? pidfile_fileno(pfh) : -1;

    /* Not pidfile_close(): a child must only drop its copy of the locked fd;
     * the lock stays with the master's open file description. */
    if (fd >= 0)
        close(fd);
}

static int daemon_stdio(int keep_stderr, char *err)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        bg_set_error(err, "open(\"/dev/null\"): %s", strerror(errno));
        return BG_ERR;
    }
    if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
        (!keep_stderr && dup2(fd, STDERR_FILENO) < 0)) {
        bg_set_error(err, "dup2(/dev/null): %s", strerror(errno));
        close(fd);
        return BG_ERR;
    }
    close(fd);
    return BG_OK;
}

int bg_daemonize(int keep_stderr, char *err)
{
    pid_t pid = fork();

    if (pid < 0) {
        bg_set_error(err, "fork() while daemonizing: %s", strerror(errno));
        return BG_ERR;
    }
    if (pid > 0)
        _exit(0); /* the pid file lock is shared with the child, which keeps it */
    if (setsid() < 0) {
        bg_set_error(err, "setsid(): %s", strerror(errno));
        return BG_ERR;
    }
    /* Paths were made absolute at load; "/" does not pin a mounted file system. */
    if (chdir("/") != 0) {
        bg_set_error(err, "chdir(\"/\"): %s", strerror(errno));
        return BG_ERR;
    }
    umask(022);
    return daemon_stdio(keep_stderr, err);
}

/* Reads the pid from the file; the master writes it as "PID\n". */
static int pid_read(const char *path, pid_t *pid, char *err)
{
    char buf[32], *end;
    ssize_t n;
    long v;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        bg_set_error(err, "open(\"%s\"): %s", path, strerror(errno));
        return BG_ERR;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        bg_set_error(err, "pid file %s is empty: is busgated running?", path);
        return BG_ERR;
    }
    buf[n] = '\0';
    errno = 0;
    v = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') || v <= 1 || v > INT_MAX) {
        bg_set_error(err, "pid file %s holds no valid pid", path);
        return BG_ERR;
    }
    *pid = (pid_t)v;
    return BG_OK;
}

/* A stale pid file may name a pid reused by another program: only signal a
 * process titled as our master. Without /proc there is nothing to check. */
static int pid_is_master(pid_t pid, const char *path, char *err)
{
    static const char title[] = "busgate: master process";
    char proc[64], buf[sizeof(title)] = "";
    int fd;
    ssize_t n;

    snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", (long)pid);
    fd = open(proc, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && access("/proc/self", F_OK) == 0) {
        bg_set_error(err, "no process %ld (stale pid file %s?)", (long)pid, path);
        return BG_ERR;
    }
    if (fd < 0)
        return BG_OK;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0 && strncmp(buf, title, sizeof(title) - 1) != 0) {
        bg_set_error(err, "process %ld from %s is not a busgate master (stale pid file?)",
                     (long)pid, path);
        return BG_ERR;
    }
    return BG_OK;
}

static int action_signal(const char *action)
{
    static const struct {
        const char *name;
        int sig;
    } map[] = {{"stop", SIGTERM}, {"quit", SIGQUIT}, {"reload", SIGHUP}, {"reopen", SIGUSR1}};

    for (size_t i = 0; i < BG_ARRAY_LEN(map); i++) {
        if (strcmp(map[i].name, action) == 0)
            return map[i].sig;
    }
    return 0;
}

int bg_signal_running(const char *pid_file, const char *action, char *err)
{
    int sig = action_signal(action);
    pid_t pid;

    if (sig == 0) {
        bg_set_error(err, "unknown signal '%s' (allowed: stop, quit, reload, reopen)", action);
        return BG_ERR;
    }
    if (pid_file == NULL || pid_file[0] == '\0') {
        bg_set_error(err, "no pid_file in the configuration: cannot find the master");
        return BG_ERR;
    }
    if (pid_read(pid_file, &pid, err) != BG_OK || pid_is_master(pid, pid_file, err) != BG_OK)
        return BG_ERR;
    if (kill(pid, sig) != 0) {
        bg_set_error(err, "kill(%ld, %s): %s", (long)pid, strsignal(sig), strerror(errno));
        return BG_ERR;
    }
    return BG_OK;
}
