/* access_log.c: the access log: the inherited descriptor, its reopen, and one line per request. */
#include "busgate/core/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Like log.c: module state, so the master's fd number is the workers' after fork(). */
static int access_fd = -1;
static char access_path[4096];

/* Output bytes kept for every field but the path, each bounded below. */
#define ACCESS_FIXED_RESERVE 1024

static int access_open_file(const char *path, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

    if (fd < 0)
        bg_set_error(err, "open(\"%s\"): %s", path, strerror(errno));
    return fd;
}

int bg_access_log_open(const char *path, char *err)
{
    int fd;

    if (path == NULL || path[0] == '\0') {
        bg_access_log_close();
        return BG_OK;
    }
    if (strcmp(path, "stderr") == 0) {
        bg_access_log_close();
        access_fd = STDERR_FILENO;
        return BG_OK;
    }
    if (strlen(path) >= sizeof(access_path)) {
        bg_set_error(err, "access log path too long");
        return BG_ERR;
    }
    /* On failure the log stays where it was (reload keeps serving). */
    fd = access_open_file(path, err);
    if (fd < 0)
        return BG_ERR;
    bg_access_log_close();
    memcpy(access_path, path, strlen(path) + 1);
    access_fd = fd;
    return BG_OK;
}

int bg_access_log_reopen(char *err)
{
    int fd;

    if (access_path[0] == '\0' || access_fd < 0)
        return BG_OK;
    fd = access_open_file(access_path, err);
    if (fd < 0)
        return BG_ERR;
    /* dup3 keeps the number (and close-on-exec), so the fd handed to workers
     * stays the one to send. */
    if (dup3(fd, access_fd, O_CLOEXEC) < 0) {
        bg_set_error(err, "dup3: %s", strerror(errno));
        close(fd);
        return BG_ERR;
    }
    close(fd);
    return BG_OK;
}

int bg_access_log_fd(void)
{
    return access_fd;
}

int bg_access_log_enabled(void)
{
    return access_fd >= 0;
}

int bg_access_log_adopt(int fd, char *err)
{
    int rc = BG_OK;

    if (fd < 0) {
        bg_set_error(err, "access log: no descriptor to adopt");
        return BG_ERR;
    }
    /* stderr or off: there is no file of ours to replace */
    if (access_fd >= 0 && access_fd != STDERR_FILENO && dup3(fd, access_fd, O_CLOEXEC) < 0) {
        bg_set_error(err, "dup3(access log): %s", strerror(errno));
        rc = BG_ERR;
    }
    close(fd);
    return rc;
}

void bg_access_log_close(void)
{
    if (access_fd > STDERR_FILENO)
        close(access_fd);
    access_fd = -1;
    access_path[0] = '\0';
}

typedef struct line_buf {
    char *p;
    size_t len, cap;
} line_buf;

/* Keeps two bytes free at the end for the newline and the NUL. */
static void line_put(line_buf *b, const char *s, size_t n)
{
    if (b->len + n + 2 > b->cap)
        n = b->cap > b->len + 2 ? b->cap - b->len - 2 : 0;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void line_printf(line_buf *b, const char *fmt, ...) BG_PRINTF(2, 3);

static void line_printf(line_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        line_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Client-controlled bytes: nothing that could fake a field or a line survives. */
static void line_value(line_buf *b, const char *key, const char *v, size_t limit)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    unsigned char c;

    line_printf(b, " %s=", key);
    if (v == NULL || v[0] == '\0') {
        line_put(b, "-", 1);
        return;
    }
    for (; *v != '\0'; v++) {
        if (b->len - start >= limit) {
            line_put(b, "...", 3);
            return;
        }
        c = (unsigned char)*v;
        if (c > 0x20 && c < 0x7f && c != '"' && c != '\\') {
            line_put(b, (const char *)&c, 1);
            continue;
        }
        line_put(b, "\\x", 2);
        line_put(b, &hex[c >> 4], 1);
        line_put(b, &hex[c & 15], 1);
    }
}

static void line_time(line_buf *b, int64_t wall_ms)
{
    time_t secs = (time_t)(wall_ms / 1000);
    char stamp[32];
    struct tm tm;

    /* gmtime_r never reads tzdata, which the sandbox would refuse anyway. */
    if (gmtime_r(&secs, &tm) == NULL ||
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf(stamp, sizeof(stamp), "1970-01-01T00:00:00");
    line_printf(b, "%s.%03dZ", stamp, (int)(wall_ms % 1000));
}

static void line_ms(line_buf *b, const char *key, int64_t us)
{
    if (us < 0)
        line_printf(b, " %s=-", key);
    else
        line_printf(b, " %s=%" PRId64 ".%03d", key, us / 1000, (int)(us % 1000));
}

size_t bg_access_log_format(const bg_access_entry *e, char *buf, size_t cap)
{
    line_buf b = {buf, 0, cap};
    size_t path_room;

    if (cap < ACCESS_FIXED_RESERVE * 2)
        return 0;
    path_room = cap - ACCESS_FIXED_RESERVE;
    line_time(&b, e->start_wall_ms < 0 ? 0 : e->start_wall_ms);
    line_value(&b, "id", e->request_id, 64);
    line_value(&b, "client", e->client, 64);
    line_value(&b, "method", e->method, 64);
    line_value(&b, "path", e->path, path_room);
    line_printf(&b, " status=%d bytes=%" PRIu64, e->status, e->bytes);
    line_value(&b, "service", e->service, 80);
    line_value(&b, "instance", e->instance, 160);
    line_ms(&b, "total_ms", e->total_us);
    line_ms(&b, "bus_ms", e->bus_us);
    /* line_put never fills the last byte, so there is always room for the newline. */
    buf[b.len++] = '\n';
    buf[b.len] = '\0';
    return b.len;
}

void bg_access_log_write(const bg_access_entry *e)
{
    char line[BG_ACCESS_LINE_MAX];
    size_t len, off = 0;
    ssize_t n;

    if (access_fd < 0)
        return;
    len = bg_access_log_format(e, line, sizeof(line));
    /* One write() per line keeps lines whole when workers share the file (O_APPEND). */
    while (off < len) {
        n = write(access_fd, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* disk full or closed: drop the line, keep serving */
        off += (size_t)n;
    }
}
