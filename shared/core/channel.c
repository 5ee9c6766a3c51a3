/* channel.c: master <-> worker command messages over a non-blocking SOCK_SEQPACKET socketpair. */
#include "busgate/core/channel.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for BG_CHAN_MAX_FDS descriptors, aligned for a cmsghdr. */
typedef union chan_cbuf {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * BG_CHAN_MAX_FDS)];
} chan_cbuf;

int bg_chan_open(int fds[2], char *err)
{
    /* SEQPACKET keeps message boundaries, so one recv is one whole message. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
        bg_set_error(err, "socketpair(): %s", strerror(errno));
        fds[0] = fds[1] = -1;
        return BG_ERR;
    }
    return BG_OK;
}

int bg_chan_send_fds(int fd, const bg_chan_msg *m, const int *fds, int nfds, char *err)
{
    struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    chan_cbuf cb;
    ssize_t n;

    if (nfds < 0 || nfds > BG_CHAN_MAX_FDS) {
        bg_set_error(err, "channel: %d descriptors, at most %d", nfds, BG_CHAN_MAX_FDS);
        return BG_ERR;
    }
    if (nfds > 0) {
        struct cmsghdr *c;

        memset(&cb, 0, sizeof(cb));
        mh.msg_control = cb.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    do {
        /* MSG_NOSIGNAL: a dead peer is an error to log, not a SIGPIPE. */
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        bg_set_error(err, "channel full");
        return BG_ERR;
    }
    if (n < 0) {
        bg_set_error(err, "sendmsg() on channel: %s", strerror(errno));
        return BG_ERR;
    }
    if ((size_t)n != sizeof(*m)) {
        bg_set_error(err, "sendmsg() on channel: short write of %zd bytes", n);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_chan_send(int fd, const bg_chan_msg *m, char *err)
{
    return bg_chan_send_fds(fd, m, NULL, 0, err);
}

/* Moves the descriptors of every SCM_RIGHTS header into fds[0..max) and
 * closes the rest; returns how many were kept. */
static int chan_take_fds(struct msghdr *mh, int *fds, int max)
{
    int kept = 0;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
        size_t n;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int got;

            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (kept < max)
                fds[kept++] = got;
            else
                close(got);
        }
    }
    return kept;
}

static void chan_close_fds(int *fds, int *nfds)
{
    for (int i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
}

/* Whether the message itself is usable; err set when not. */
static int chan_check(ssize_t n, const struct msghdr *mh, const bg_chan_msg *m, char *err)
{
    if (n == 0) {
        bg_set_error(err, "channel closed");
        return BG_ERR;
    }
    if ((size_t)n != sizeof(*m)) {
        bg_set_error(err, "recv() on channel: message of %zd bytes, expected %zu", n, sizeof(*m));
        return BG_ERR;
    }
    if (mh->msg_flags & MSG_CTRUNC) {
        /* The kernel could not pass every descriptor (the buffer or our fd
         * limit): a partial set would be misread, so none is used. */
        bg_set_error(err, "recvmsg() on channel: descriptors truncated");
        return BG_ERR;
    }
    return BG_OK;
}

int bg_chan_recv_fds(int fd, bg_chan_msg *m, int *fds, int max, int *nfds, char *err)
{
    struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
    chan_cbuf cb;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof(cb.buf)};
    ssize_t n;

    *nfds = 0;
    do {
        /* MSG_TRUNC makes an oversized message report its real length. */
        n = recvmsg(fd, &mh, MSG_TRUNC | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return BG_CHAN_AGAIN;
    if (n < 0) {
        bg_set_error(err, "recvmsg() on channel: %s", strerror(errno));
        return BG_ERR;
    }
    *nfds = chan_take_fds(&mh, fds, max);
    if (chan_check(n, &mh, m, err) != BG_OK) {
        chan_close_fds(fds, nfds);
        return BG_ERR;
    }
    m->target[sizeof(m->target) - 1] = '\0';
    return BG_OK;
}

int bg_chan_recv(int fd, bg_chan_msg *m, char *err)
{
    int none;

    return bg_chan_recv_fds(fd, m, NULL, 0, &none, err);
}

void bg_chan_close(int fds[2])
{
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}
