/* listen.c: listening sockets, opened by the master before fork and kept across reloads. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "master.h"

#define LISTEN_BACKLOG 511 /* as nginx; the kernel caps it at somaxconn */

/* Resolves one listen address to a socket address (numeric or a host name). */
static int listen_resolve(const bg_listen_addr *a, bg_listener *out, char *err)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", a->port);
    rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        bg_set_error(err, "listen %s:%d: getaddrinfo(): %s", a->host, a->port, gai_strerror(rc));
        return BG_ERR;
    }
    memset(out, 0, sizeof(*out));
    for (int k = 0; k < BG_LISTEN_LANES_MAX; k++)
        out->fd[k] = -1;
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    out->addrlen = res->ai_addrlen;
    snprintf(out->name, sizeof(out->name), res->ai_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
             a->host, a->port);
    freeaddrinfo(res);
    return BG_OK;
}

static int listen_set_opts(int fd, int family, int reuseport, char *err)
{
    int one = 1;

    /* Restarting must not wait for TIME_WAIT connections of the last run. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        bg_set_error(err, "setsockopt(SO_REUSEADDR): %s", strerror(errno));
        return BG_ERR;
    }
    /* One socket per worker: the kernel hashes each new connection to one of them, so
     * the workers get even shares instead of racing for one backlog. */
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        bg_set_error(err, "setsockopt(SO_REUSEPORT): %s", strerror(errno));
        return BG_ERR;
    }
    /* [::]:80 next to 0.0.0.0:80 must not collide over v4-mapped addresses. */
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
        bg_set_error(err, "setsockopt(IPV6_V6ONLY): %s", strerror(errno));
        return BG_ERR;
    }
    return BG_OK;
}

static int listen_socket(bg_listener *l, int lane, int reuseport, char *err)
{
    int family = l->addr.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        bg_set_error(err, "listen %s: socket(): %s", l->name, strerror(errno));
        return BG_ERR;
    }
    if (listen_set_opts(fd, family, reuseport, err) != BG_OK)
        goto err;
    if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) != 0) {
        bg_set_error(err, "listen %s: bind(): %s", l->name, strerror(errno));
        goto err;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        bg_set_error(err, "listen %s: listen(): %s", l->name, strerror(errno));
        goto err;
    }
    l->fd[lane] = fd;
    return BG_OK;
err:
    close(fd);
    return BG_ERR;
}

/* Index in ls of a socket bound to the same address as l, or -1. */
static int listen_find(const bg_listen_set *ls, const bg_listener *l)
{
    for (int i = 0; i < ls->n; i++) {
        if (ls->l[i].addrlen == l->addrlen && memcmp(&ls->l[i].addr, &l->addr, l->addrlen) == 0)
            return i;
    }
    return -1;
}

/* Fills next->l[i]'s lanes: takes over the sockets of cur's entry for the same address
 * (their fd moves: cur's gets -1), opens the lanes cur did not have. */
static int listen_lanes(bg_listen_set *next, bg_listener *l, bg_listen_set *cur, char *err)
{
    int old = cur ? listen_find(cur, l) : -1;

    for (int k = 0; k < next->lanes; k++) {
        if (old >= 0 && cur->l[old].fd[k] >= 0) {
            l->fd[k] = cur->l[old].fd[k];
            cur->l[old].fd[k] = -1;
        } else if (listen_socket(l, k, next->reuseport, err) != BG_OK) {
            return BG_ERR;
        }
    }
    return BG_OK;
}

/* Builds next from cfg, taking over sockets of cur with the same address and lane
 * and opening the others. */
static int listen_build(bg_listen_set *next, bg_listen_set *cur, const bg_config *cfg, char *err)
{
    next->n = 0;
    next->reuseport = cur ? cur->reuseport : cfg->gateway.reuseport;
    next->lanes = next->reuseport ? cfg->gateway.workers : 1;
    if (next->lanes < 1 || next->lanes > BG_LISTEN_LANES_MAX)
        next->lanes = next->lanes < 1 ? 1 : BG_LISTEN_LANES_MAX;
    for (int i = 0; i < cfg->gateway.nlisten; i++) {
        bg_listener *l = &next->l[next->n];
        int same;

        if (listen_resolve(&cfg->gateway.listen[i], l, err) != BG_OK)
            return BG_ERR;
        l->tls = cfg->gateway.listen[i].tls;
        same = listen_find(next, l);
        if (same >= 0 && next->l[same].tls != l->tls) {
            bg_set_error(err, "listen %s: listed both with and without ssl", l->name);
            return BG_ERR;
        }
        if (same >= 0)
            continue; /* two spellings of one address ("*:80", "0.0.0.0:80") */
        next->n++;    /* counted now: listen_unbuild must see the lanes already opened */
        if (listen_lanes(next, l, cur, err) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

/* Undo of a failed listen_build: taken-over fds go back to cur, new ones close. */
static void listen_unbuild(bg_listen_set *next, bg_listen_set *cur)
{
    for (int i = 0; i < next->n; i++) {
        int old = cur ? listen_find(cur, &next->l[i]) : -1;

        for (int k = 0; k < next->lanes; k++) {
            int fd = next->l[i].fd[k];

            if (fd < 0)
                continue;
            if (old >= 0 && cur->l[old].fd[k] < 0)
                cur->l[old].fd[k] = fd;
            else
                close(fd);
        }
    }
    next->n = 0;
}

int bg_listen_open(bg_listen_set *ls, const bg_config *cfg, char *err)
{
    if (listen_build(ls, NULL, cfg, err) != BG_OK) {
        listen_unbuild(ls, NULL);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_listen_update(bg_listen_set *ls, const bg_config *cfg, char *err)
{
    bg_listen_set next;

    if (listen_build(&next, ls, cfg, err) != BG_OK) {
        listen_unbuild(&next, ls);
        return BG_ERR;
    }
    /* What is left open in ls was removed from the config. Workers of the old
     * generation keep their own copies until they exit. */
    bg_listen_close(ls);
    *ls = next;
    return BG_OK;
}

void bg_listen_close(bg_listen_set *ls)
{
    for (int i = 0; i < ls->n; i++) {
        for (int k = 0; k < BG_LISTEN_LANES_MAX; k++) {
            if (ls->l[i].fd[k] >= 0)
                close(ls->l[i].fd[k]);
            ls->l[i].fd[k] = -1;
        }
    }
    ls->n = 0;
}

int bg_listen_fds(const bg_listen_set *ls, int lane, int *out, int *tls)
{
    int k = ls->lanes > 1 && lane >= 0 ? lane % ls->lanes : 0;

    for (int i = 0; i < ls->n; i++) {
        out[i] = ls->l[i].fd[k];
        tls[i] = ls->l[i].tls;
    }
    return ls->n;
}
