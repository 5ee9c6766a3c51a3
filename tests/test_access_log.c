/* test_access_log.c: access log lines (fields, escaping, limits), whole lines from concurrent
 * writers, reopen in the master, and a sandboxed worker adopting the reopened file (the
 * end-to-end access log through busgated is in test_supervisor.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/core/access_log.h"
#include "sandbox.h"

#define WAIT_LIMIT_MS 20000

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/bg-alog-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];

    bg_access_log_close();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(access_log, .init = make_dir, .fini = remove_dir);

static bg_access_entry sample_entry(void)
{
    bg_access_entry e = {
        .start_wall_ms = 1700000000123LL,
        .request_id = "0123456789abcdef0123456789abcdef",
        .client = "10.0.0.7:51234",
        .method = "GET",
        .path = "/orders/42",
        .status = 200,
        .bytes = 512,
        .service = "orders",
        .instance = "orders-1",
        .total_us = 1234,
        .bus_us = 987,
    };
    return e;
}

static char *read_file(const char *path)
{
    static char buf[4 << 20];
    FILE *f = fopen(path, "r");
    size_t n;

    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf) - 1, f);
    cr_assert(feof(f), "%s is larger than the test buffer", path);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int wait_child(pid_t pid)
{
    int status = 0, waited = 0;
    pid_t r;

    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && waited < WAIT_LIMIT_MS) {
        usleep(5000);
        waited += 5;
    }
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        cr_assert_fail("child still running");
    }
    return status;
}

Test(access_log, line_has_every_field_in_order)
{
    bg_access_entry e = sample_entry();
    char line[BG_ACCESS_LINE_MAX];
    size_t len = bg_access_log_format(&e, line, sizeof(line));

    cr_assert_eq(len, strlen(line));
    cr_assert_str_eq(line, "2023-11-14T22:13:20.123Z id=0123456789abcdef0123456789abcdef "
                           "client=10.0.0.7:51234 method=GET path=/orders/42 status=200 "
                           "bytes=512 service=orders instance=orders-1 total_ms=1.234 "
                           "bus_ms=0.987\n");
}

Test(access_log, absent_values_are_dashes)
{
    bg_access_entry e = {.start_wall_ms = 0, .status = 400, .bus_us = -1, .total_us = 5000000};
    char line[BG_ACCESS_LINE_MAX];

    bg_access_log_format(&e, line, sizeof(line));
    cr_assert_str_eq(line, "1970-01-01T00:00:00.000Z id=- client=- method=- path=- status=400 "
                           "bytes=0 service=- instance=- total_ms=5000.000 bus_ms=-\n");
}

Test(access_log, client_bytes_cannot_forge_fields_or_lines)
{
    bg_access_entry e = sample_entry();
    char line[BG_ACCESS_LINE_MAX];

    e.path = "/a b\"c\\d\r\nstatus=200\x01\xc3\xa9";
    e.method = "G T";
    bg_access_log_format(&e, line, sizeof(line));
    cr_assert_not_null(strstr(line, " method=G\\x20T "), "%s", line);
    cr_assert_not_null(
        strstr(line, " path=/a\\x20b\\x22c\\x5cd\\x0d\\x0astatus=200\\x01\\xc3\\xa9 status=200 "),
        "%s", line);
    cr_assert_eq(count_lines(line), 1);
    cr_assert_eq(strchr(line, '\r'), NULL);
}

Test(access_log, long_paths_are_cut_and_the_line_stays_whole)
{
    static char path[64 * 1024];
    bg_access_entry e = sample_entry();
    char line[BG_ACCESS_LINE_MAX], small[64];
    size_t len;

    memset(path, '\x7f', sizeof(path) - 1); /* every byte escaped: 4x the length */
    path[0] = '/';
    e.path = path;
    len = bg_access_log_format(&e, line, sizeof(line));
    cr_assert_lt(len, sizeof(line));
    cr_assert_eq(line[len - 1], '\n');
    cr_assert_not_null(strstr(line, "... status=200 "), "path not cut before status");
    cr_assert_not_null(strstr(line, " bus_ms=0.987\n"));
    cr_assert_eq(bg_access_log_format(&e, small, sizeof(small)), 0);
}

Test(access_log, off_and_stderr)
{
    char err[BG_ERR_LEN];
    bg_access_entry e = sample_entry();

    cr_assert_eq(bg_access_log_open("", err), BG_OK);
    cr_assert_eq(bg_access_log_enabled(), 0);
    cr_assert_eq(bg_access_log_fd(), -1);
    bg_access_log_write(&e); /* no-op */
    cr_assert_eq(bg_access_log_reopen(err), BG_OK);
    cr_assert_eq(bg_access_log_open("stderr", err), BG_OK);
    cr_assert_eq(bg_access_log_fd(), STDERR_FILENO);
    cr_assert_eq(bg_access_log_reopen(err), BG_OK);
    bg_access_log_close();
    cr_assert_eq(bg_access_log_open("/nonexistent-dir/x/access.log", err), BG_ERR);
    cr_assert_not_null(strstr(err, "open("), "%s", err);
}

/* Forked writers share one O_APPEND file, as workers do: every line arrives whole. */
Test(access_log, concurrent_writers_never_split_lines)
{
    enum { WRITERS = 3, LINES = 2000 };
    char path[128], err[BG_ERR_LEN], *text, *line, *save = NULL;
    bg_access_entry e = sample_entry();
    pid_t pids[WRITERS];
    int w, i, seen = 0;

    snprintf(path, sizeof(path), "%s/access.log", dir);
    cr_assert_eq(bg_access_log_open(path, err), BG_OK, "%s", err);
    for (w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        cr_assert_geq(pids[w], 0);
        if (pids[w] != 0)
            continue;
        e.service = w == 0 ? "alpha" : w == 1 ? "beta" : "gamma";
        for (i = 0; i < LINES; i++) {
            e.status = 200 + i % 100;
            bg_access_log_write(&e);
        }
        _exit(0);
    }
    for (w = 0; w < WRITERS; w++)
        cr_assert_eq(wait_child(pids[w]), 0);
    text = read_file(path);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cr_assert_eq(strncmp(line, "2023-11-14T22:13:20.123Z id=", 28), 0, "torn: %s", line);
        cr_assert_not_null(strstr(line, " bus_ms=0.987"), "torn: %s", line);
        seen++;
    }
    cr_assert_eq(seen, WRITERS * LINES);
}

Test(access_log, reopen_keeps_the_descriptor_number)
{
    char path[128], rotated[140], err[BG_ERR_LEN];
    bg_access_entry e = sample_entry();
    int fd;

    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    cr_assert_eq(bg_access_log_open(path, err), BG_OK, "%s", err);
    fd = bg_access_log_fd();
    bg_access_log_write(&e);
    cr_assert_eq(rename(path, rotated), 0);
    cr_assert_eq(bg_access_log_reopen(err), BG_OK, "%s", err);
    cr_assert_eq(bg_access_log_fd(), fd);
    e.status = 503;
    bg_access_log_write(&e);
    cr_assert_not_null(strstr(read_file(rotated), " status=200 "));
    cr_assert_eq(count_lines(read_file(rotated)), 1);
    cr_assert_not_null(strstr(read_file(path), " status=503 "));
    cr_assert_eq(count_lines(read_file(path)), 1);
}

/* A reload naming a file that cannot be opened leaves the log where it was, and a
 * later reopen still follows the old path (not the one that failed). */
Test(access_log, failed_open_keeps_the_current_file)
{
    char path[128], rotated[140], err[BG_ERR_LEN];
    bg_access_entry e = sample_entry();
    int fd;

    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    cr_assert_eq(bg_access_log_open(path, err), BG_OK, "%s", err);
    fd = bg_access_log_fd();
    cr_assert_eq(bg_access_log_open("/nonexistent-dir/x/access.log", err), BG_ERR);
    cr_assert_eq(bg_access_log_fd(), fd);
    cr_assert_eq(rename(path, rotated), 0);
    cr_assert_eq(bg_access_log_reopen(err), BG_OK, "%s", err);
    bg_access_log_write(&e);
    cr_assert_not_null(strstr(read_file(path), " status=200 "));
    cr_assert_eq(count_lines(read_file(rotated)), 0);
}

/* The worker side of the reopen, under the seccomp filter: receive the master's new
 * descriptor (SCM_RIGHTS; the supervisor's channel does this in busgated) and adopt it. */
static int child_adopt(int sock)
{
    char byte, cbuf[CMSG_SPACE(sizeof(int))], err[BG_ERR_LEN];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    bg_access_entry e = sample_entry();
    struct cmsghdr *c;
    int fd;

    if (bg_sandbox_filter_only(0, err) != BG_OK)
        return 90;
    e.status = 201;
    bg_access_log_write(&e); /* before the reopen: to the old file */
    if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1)
        return 91;
    c = CMSG_FIRSTHDR(&mh);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS)
        return 92;
    memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    if (bg_access_log_adopt(fd, err) != BG_OK)
        return 93;
    e.status = 202;
    bg_access_log_write(&e);
    return 0;
}

static void send_fd(int sock, int fd)
{
    char byte = 'r', cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(fd));
    cr_assert_eq(sendmsg(sock, &mh, 0), 1, "sendmsg: %s", strerror(errno));
}

Test(access_log, sandboxed_worker_adopts_the_reopened_file)
{
    char path[128], rotated[140], err[BG_ERR_LEN], *text;
    int sv[2], status;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    cr_assert_eq(bg_access_log_open(path, err), BG_OK, "%s", err);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        _exit(child_adopt(sv[1]));
    }
    close(sv[1]);
    /* The master's SIGUSR1: rotate, reopen, hand the new descriptor over. */
    cr_assert_eq(rename(path, rotated), 0);
    cr_assert_eq(bg_access_log_reopen(err), BG_OK, "%s", err);
    send_fd(sv[0], bg_access_log_fd());
    status = wait_child(pid);
    close(sv[0]);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
    text = read_file(path);
    cr_assert_eq(count_lines(text), 1, "new file: %s", text);
    cr_assert_not_null(strstr(text, " status=202 "), "%s", text);
    text = read_file(rotated);
    cr_assert_eq(count_lines(text), 1, "rotated file: %s", text);
    cr_assert_not_null(strstr(text, " status=201 "), "%s", text);
}
