/* idle_conns.c: holds N idle keep-alive HTTP/1.1 connections, for bench/curves.sh's connections
 * curve (what an idle connection costs a worker). Raises its RLIMIT_NOFILE as far as it may,
 * opens the connections one after another, sends one GET on each and reads its whole answer
 * (Content-Length), then keeps them all open until SIGTERM or SIGINT. Prints
 * "idle_conns: holding H of N" (and why it stopped short, when it did) once they are open.
 * Usage: idle_conns host port path N
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define ANSWER_MAX 65536

/* Room for n descriptors and a few more; 0 when the limit allows that many (after raising the
 * soft limit to the hard one, and the hard one too when privileged). */
static int raise_nofile(long n)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((long)rl.rlim_cur >= n + 16)
        return 0;
    if ((long)rl.rlim_max < n + 16)
        rl.rlim_max = (rlim_t)n + 16; /* needs CAP_SYS_RESOURCE; may fail */
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return 0;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    return -1;
}

/* Reads one answer: the head, then Content-Length bytes of body. 0 on a 2xx answer. */
static int read_answer(int fd)
{
    char buf[ANSWER_MAX + 1];
    size_t got = 0;
    long want = -1;

    while (got < ANSWER_MAX) {
        ssize_t r = read(fd, buf + got, ANSWER_MAX - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        if (want < 0) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (cl == NULL || cl > end)
                return -1;
            want = (end + 4 - buf) + strtol(cl + 17, NULL, 10);
        }
        if ((long)got >= want)
            return strncmp(buf, "HTTP/1.1 2", 10) == 0 ? 0 : (errno = EPROTO, -1);
    }
    return -1;
}

/* One connection with one request answered; -1 with errno-ish reason printed on failure. */
static int open_one(const struct sockaddr_in *sa, const char *req, size_t reqlen)
{
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 ||
        write(fd, req, reqlen) != (ssize_t)reqlen || read_answer(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char req[512];
    sigset_t set;
    long n, held = 0;
    int sig, reqlen;

    if (argc != 5 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 ||
        (n = strtol(argv[4], NULL, 10)) < 1 || n > 1000000) {
        fprintf(stderr, "usage: idle_conns host port path N\n");
        return 2;
    }
    sa.sin_port = htons((unsigned short)atoi(argv[2]));
    reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", argv[3], argv[1]);
    if (reqlen <= 0 || (size_t)reqlen >= sizeof(req))
        return 2;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (raise_nofile(n) != 0)
        fprintf(stderr, "idle_conns: RLIMIT_NOFILE too low for %ld connections\n", n);
    for (; held < n; held++)
        if (open_one(&sa, req, (size_t)reqlen) < 0) {
            printf("idle_conns: stopped at connection %ld: %s\n", held + 1, strerror(errno));
            break;
        }
    printf("idle_conns: holding %ld of %ld\n", held, n);
    fflush(stdout);
    sigwait(&set, &sig);
    return 0;
}
