/* log.c: the error log: one line per event, "time [level] ident pid: message". */
#include "busgate/core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int log_fd = STDERR_FILENO;
static char log_path[4096];
static char log_ident[64] = "busgate";
static bg_log_level log_level = BG_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error", "crit"};

static int open_log_file(const char *path, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

    if (fd < 0) {
        bg_set_error(err, "open(\"%s\"): %s", path, strerror(errno));
        return -1;
    }
    return fd;
}

int bg_log_open(const char *path, char *err)
{
    int fd;

    if (path == NULL || path[0] == '\0' || strcmp(path, "stderr") == 0) {
        bg_log_close();
        log_path[0] = '\0';
        return BG_OK;
    }
    if (strlen(path) >= sizeof(log_path)) {
        bg_set_error(err, "log path too long");
        return BG_ERR;
    }
    fd = open_log_file(path, err);
    if (fd < 0)
        return BG_ERR;
    bg_log_close();
    log_fd = fd;
    memcpy(log_path, path, strlen(path) + 1);
    return BG_OK;
}

int bg_log_reopen(char *err)
{
    int fd;

    if (log_path[0] == '\0')
        return BG_OK;
    fd = open_log_file(log_path, err);
    if (fd < 0)
        return BG_ERR;
    /* dup3 keeps the descriptor number (and close-on-exec), so what was
     * handed out by number stays valid. */
    if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
        bg_set_error(err, "dup3: %s", strerror(errno));
        close(fd);
        return BG_ERR;
    }
    close(fd);
    return BG_OK;
}

int bg_log_adopt_fd(int fd)
{
    int rc = BG_OK, saved;

    if (fd < 0) {
        errno = EBADF;
        return BG_ERR;
    }
    if (log_fd != STDERR_FILENO && fd != log_fd && dup3(fd, log_fd, O_CLOEXEC) < 0)
        rc = BG_ERR;
    saved = errno;
    if (fd != log_fd)
        close(fd);
    errno = saved;
    return rc;
}

void bg_log_close(void)
{
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = STDERR_FILENO;
}

int bg_log_fd(void)
{
    return log_fd;
}

void bg_log_set_level(bg_log_level level)
{
    log_level = level;
}

bg_log_level bg_log_get_level(void)
{
    return log_level;
}

int bg_log_parse_level(const char *name, bg_log_level *out)
{
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(level_names); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (bg_log_level)i;
            return BG_OK;
        }
    }
    return BG_ERR;
}

void bg_log_set_ident(const char *ident)
{
    snprintf(log_ident, sizeof(log_ident), "%s", ident);
}

void bg_log(bg_log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t len;
    va_list ap;
    int saved_errno = errno;

    if (level < log_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    len += (size_t)snprintf(line + len, sizeof(line) - len,
                            ".%03ldZ [%s] %s %d: ", ts.tv_nsec / 1000000, level_names[level],
                            log_ident, (int)getpid());
    va_start(ap, fmt);
    if (len < sizeof(line))
        vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);
    len = strnlen(line, sizeof(line) - 2);
    line[len++] = '\n';
    /* One write() per line keeps lines whole when several processes share the file. */
    if (write(log_fd, line, len) < 0) {
        /* Nowhere left to report a failing log; drop the line. */
    }
    errno = saved_errno;
}
