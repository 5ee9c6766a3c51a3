/* test_reuseport.c: [gateway] reuseport = on: one SO_REUSEPORT socket per worker, every
 * worker accepts on its own, and a reload that changes the worker count serves every
 * connection (no socket is left without a worker). */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "proc_harness.h"
#include "valkey_harness.h"

#define CONNS 48
#define ID_PREFIX 16 /* hex digits of a request id that are the worker's own */

static bgt_valkey vk;
static bgt_gw gw;

static void gw_config(int workers)
{
    bgt_gw_opts o = {.valkey_url = vk.url, .workers = workers, .extra_gateway = "reuseport = on\n"};

    cr_assert_eq(bgt_gw_write_ini(&gw, &o), 0);
}

static void up(void)
{
    bgt_gw_opts o;

    cr_assert_eq(bgt_valkey_start(&vk, NULL), 0, "valkey-server did not start");
    o = (bgt_gw_opts){.valkey_url = vk.url, .workers = 2, .extra_gateway = "reuseport = on\n"};
    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    cr_assert_eq(bgt_gw_start(&gw), 0, "busgated did not start (see %s)", gw.log);
    cr_assert_eq(bgt_gw_wait_workers(&gw, 2, 10000), 2, "2 workers expected");
}

static void down(void)
{
    bgt_gw_stop(&gw);
    bgt_valkey_stop(&vk);
}

/* A keep-alive connection that was answered GET /healthz; *id gets the worker's part of
 * its X-Request-Id. Returns the fd (left open), or -1. */
static int conn_ask(int port, char id[ID_PREFIX + 1])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 5};
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[4096];
    const char *h;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        send(fd, req, sizeof(req) - 1, 0) != (ssize_t)sizeof(req) - 1 ||
        (n = recv(fd, buf, sizeof(buf) - 1, 0)) <= 0) {
        close(fd);
        return -1;
    }
    buf[n] = '\0';
    h = strstr(buf, "X-Request-Id: ");
    if (h == NULL || strlen(h + 14) < ID_PREFIX) {
        close(fd);
        return -1;
    }
    memcpy(id, h + 14, ID_PREFIX);
    id[ID_PREFIX] = '\0';
    return fd;
}

/* Opens CONNS connections at once (all held open, so each is a new accept) and returns
 * how many workers answered them; every one must be answered. */
static int workers_answering(void)
{
    char ids[CONNS][ID_PREFIX + 1];
    int fds[CONNS], distinct = 0;

    for (int i = 0; i < CONNS; i++) {
        fds[i] = conn_ask(gw.port, ids[i]);
        cr_assert_geq(fds[i], 0, "connection %d was not answered", i);
    }
    for (int i = 0; i < CONNS; i++) {
        int seen = 0;

        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(ids[i], ids[j]) == 0;
        distinct += !seen;
        close(fds[i]);
    }
    return distinct;
}

TestSuite(reuseport, .init = up, .fini = down, .timeout = 60);

/* Hashed over 2 sockets, 48 connections all land on one with probability 2^-47. */
Test(reuseport, each_worker_accepts_its_share)
{
    cr_assert_eq(workers_answering(), 2, "both workers accepted connections");
}

Test(reuseport, reload_to_three_workers_covers_every_socket)
{
    pid_t w[BGT_GW_MAX_WORKERS];

    gw_config(3);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(
        bgt_gw_wait_log(&gw, "reload: generation 2 ready; retiring the older workers", 1, 10000),
        0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "exited with code 0", 2, 10000), 0, "old workers exited");
    cr_assert_eq(bgt_gw_workers(&gw, w, BGT_GW_MAX_WORKERS), 3);
    /* A socket no worker accepts on would leave connections unanswered. */
    cr_assert_eq(workers_answering(), 3, "all three workers accepted connections");
    gw_config(1);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "exited with code 0", 5, 10000), 0, "old workers exited");
    cr_assert_eq(workers_answering(), 1);
}

Test(reuseport, reload_keeps_the_mode)
{
    bgt_gw_opts o = {.valkey_url = vk.url, .workers = 2};

    cr_assert_eq(bgt_gw_write_ini(&gw, &o), 0); /* reuseport left out: off */
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "reuseport cannot change without a restart", 1, 10000), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "exited with code 0", 2, 10000), 0, "old workers exited");
    cr_assert_eq(workers_answering(), 2);
}
