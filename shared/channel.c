/* channel.c: master <-> worker command messages over a non-blocking SOCK_SEQPACKET socketpair. */
#include "busgate/channel.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

int bg_chan_send(int fd, const bg_chan_msg *m, char *err)
{
    ssize_t n;

    do {
        /* MSG_NOSIGNAL: a dead peer is an error to log, not a SIGPIPE. */
        n = send(fd, m, sizeof(*m), MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        bg_set_error(err, "channel full");
        return BG_ERR;
    }
    if (n < 0) {
        bg_set_error(err, "send() on channel: %s", strerror(errno));
        return BG_ERR;
    }
    if ((size_t)n != sizeof(*m)) {
        bg_set_error(err, "send() on channel: short write of %zd bytes", n);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_chan_recv(int fd, bg_chan_msg *m, char *err)
{
    ssize_t n;

    do {
        /* MSG_TRUNC makes an oversized message report its real length. */
        n = recv(fd, m, sizeof(*m), MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return BG_CHAN_AGAIN;
    if (n < 0) {
        bg_set_error(err, "recv() on channel: %s", strerror(errno));
        return BG_ERR;
    }
    if (n == 0) {
        bg_set_error(err, "channel closed");
        return BG_ERR;
    }
    if ((size_t)n != sizeof(*m)) {
        bg_set_error(err, "recv() on channel: message of %zd bytes, expected %zu", n, sizeof(*m));
        return BG_ERR;
    }
    m->target[sizeof(m->target) - 1] = '\0';
    return BG_OK;
}

void bg_chan_close(int fds[2])
{
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}
