/* server.c: accept on the inherited listen sockets (plain or TLS); past max_connections answer
 * 503 and close. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "busgate/core/log.h"
#include "http_conn.h"
#include "http_response.h"

#define SERVER_ACCEPT_BURST 64
#define SERVER_PAUSE_MS 500 /* after EMFILE: let connections close before trying again */

struct bg_server {
    bg_wk *wk;
    int *fds;
    int *tls; /* per fd: serve with the generation's TLS context */
    int n;
    int started, stopped, paused;
    bg_ev_timer *resume;
    unsigned long refused;
};

static void server_on_accept(bg_ev *loop, int fd, void *arg, int mask);

static void server_listen_all(bg_server *s, int on)
{
    char err[BG_ERR_LEN];
    int i;

    for (i = 0; i < s->n; i++) {
        if (s->fds[i] < 0)
            continue;
        if (!on)
            bg_ev_file_del(s->wk->loop, s->fds[i], BG_EV_READABLE);
        else if (bg_ev_file_add(s->wk->loop, s->fds[i], BG_EV_READABLE, server_on_accept, s, err) !=
                 BG_OK)
            bg_error("listen socket %d: %s", s->fds[i], err);
    }
}

static int64_t server_on_resume(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_server *s = arg;

    (void)loop;
    (void)t;
    s->resume = NULL;
    s->paused = 0;
    if (s->started && !s->stopped)
        server_listen_all(s, 1);
    return BG_EV_NOMORE;
}

/* Out of fds: a level-triggered listen socket would spin, so pause accepting. */
static void server_pause(bg_server *s)
{
    char err[BG_ERR_LEN];

    if (s->paused)
        return;
    bg_warn("accept: %s; pausing accepts for %d ms", strerror(errno), SERVER_PAUSE_MS);
    s->resume = bg_ev_timer_add(s->wk->loop, SERVER_PAUSE_MS, server_on_resume, s, err);
    if (s->resume == NULL) {
        bg_error("cannot pause accepting: %s", err);
        return;
    }
    s->paused = 1;
    server_listen_all(s, 0);
}

/* ip: for X-Forwarded-For; peer: "ip:port" or "[ip6]:port" for the access log. */
static void server_client_name(const struct sockaddr_storage *ss, char *ip, size_t iplen,
                               char *peer, size_t plen)
{
    const void *a = NULL;
    unsigned port = 0;

    if (ss->ss_family == AF_INET) {
        a = &((const struct sockaddr_in *)ss)->sin_addr;
        port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    }
    if (a == NULL || inet_ntop(ss->ss_family, a, ip, (socklen_t)iplen) == NULL) {
        snprintf(ip, iplen, "%s", ss->ss_family == AF_UNIX ? "unix" : "unknown");
        snprintf(peer, plen, "%s", ip);
        return;
    }
    snprintf(peer, plen, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
}

/* At the cap: a best-effort 503 so the client knows to retry, then close. */
static void server_refuse(bg_server *s, int fd)
{
    if (send(fd, bg_resp_overload, strlen(bg_resp_overload), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        bg_debug("refusing a connection: send: %s", strerror(errno));
    close(fd);
    if (s->refused++ % 1000 == 0)
        bg_warn("max_connections (%d) reached: refusing connections (%lu so far)",
                s->wk->cfg->gateway.max_connections, s->refused);
}

/* The TLS context of listen socket lfd's connections, or NULL for plain HTTP. */
static SSL_CTX *server_tls(const bg_server *s, int lfd)
{
    for (int i = 0; i < s->n; i++) {
        if (s->fds[i] == lfd)
            return s->tls[i] ? s->wk->ctx->tls : NULL;
    }
    return NULL;
}

static void server_take(bg_server *s, int lfd, int fd, const struct sockaddr_storage *ss)
{
    char ip[64], peer[80], err[BG_ERR_LEN];
    int one = 1;

    /* Plain text even on a TLS port: no handshake is spent on a refusal. */
    if (s->wk->nconns >= (size_t)s->wk->cfg->gateway.max_connections) {
        server_refuse(s, fd);
        return;
    }
    if (ss->ss_family != AF_UNIX &&
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        bg_debug("setsockopt(TCP_NODELAY): %s", strerror(errno));
    server_client_name(ss, ip, sizeof(ip), peer, sizeof(peer));
    if (bg_conn_new(s->wk, fd, ip, peer, server_tls(s, lfd), err) != BG_OK)
        bg_error("client %s: %s", peer, err);
}

static void server_on_accept(bg_ev *loop, int lfd, void *arg, int mask)
{
    bg_server *s = arg;
    int i;

    (void)loop;
    (void)mask;
    for (i = 0; i < SERVER_ACCEPT_BURST && !s->stopped && !s->paused; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            server_take(s, lfd, fd, &ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            server_pause(s);
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            bg_error("accept on listen socket %d: %s", lfd, strerror(errno));
        return;
    }
}

bg_server *bg_server_new(bg_wk *wk, const int *fds, const int *tls, int n, char *err)
{
    size_t count = n > 0 ? (size_t)n : 1;
    bg_server *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->fds = calloc(count, sizeof(int))) == NULL ||
        (s->tls = calloc(count, sizeof(int))) == NULL) {
        if (s != NULL)
            free(s->fds);
        free(s);
        bg_set_error(err, "server: out of memory");
        return NULL;
    }
    s->wk = wk;
    s->n = n;
    memcpy(s->fds, fds, (size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        s->tls[i] = tls != NULL && tls[i];
        if (s->tls[i] && wk->ctx->tls == NULL) {
            bg_set_error(err, "listen socket %d is TLS but no TLS context was loaded", fds[i]);
            free(s->tls);
            free(s->fds);
            free(s);
            return NULL;
        }
    }
    return s;
}

void bg_server_start(bg_server *s)
{
    /* Until then the other workers (or the older generation) accept: the
     * sockets are shared, so connections wait in the backlog, not refused. */
    if (s == NULL || s->started || s->stopped)
        return;
    s->started = 1;
    if (!s->paused)
        server_listen_all(s, 1);
}

/* Accepts until the backlog is empty (or the connection cap is reached). */
static void server_take_backlog(bg_server *s)
{
    for (int i = 0; i < s->n; i++) {
        while (s->fds[i] >= 0 && s->wk->nconns < (size_t)s->wk->cfg->gateway.max_connections) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            int fd = accept4(s->fds[i], (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
                continue;
            if (fd < 0)
                break;
            server_take(s, s->fds[i], fd, &ss);
        }
    }
}

void bg_server_stop(bg_server *s, int take_backlog)
{
    int i;

    if (s == NULL || s->stopped)
        return;
    if (take_backlog && s->started && !s->paused)
        server_take_backlog(s);
    s->stopped = 1;
    if (s->started)
        server_listen_all(s, 0);
    bg_ev_timer_del(s->wk->loop, s->resume);
    s->resume = NULL;
    /* Our copies only: the master keeps its own for the next generation. */
    for (i = 0; i < s->n; i++) {
        if (s->fds[i] >= 0)
            close(s->fds[i]);
        s->fds[i] = -1;
    }
}

void bg_server_free(bg_server *s)
{
    if (s == NULL)
        return;
    bg_server_stop(s, 0);
    free(s->fds);
    free(s->tls);
    free(s);
}
