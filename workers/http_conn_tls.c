/* http_conn_tls.c: TLS on a client connection: the first byte (a TLS record or plain HTTP),
 * the non-blocking handshake, reads and writes through OpenSSL with WANT_READ/WANT_WRITE
 * either way, the verified client subject, close_notify. Plain connections pass through. */
#include "http_conn_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "busgate/core/log.h"

#define TLS_RECORD_HANDSHAKE 0x16 /* the first byte of every ClientHello */

/* As nginx words it: the client is told, in the one language it can read. */
#define TLS_PLAIN_DETAIL "The plain HTTP request was sent to HTTPS port"

/* The newest OpenSSL reason; empties the queue so the next call starts clean. */
static const char *tls_reason(void)
{
    unsigned long e = 0, next;
    const char *r;

    while ((next = ERR_get_error()) != 0)
        e = next;
    r = e != 0 ? ERR_reason_error_string(e) : NULL;
    return r != NULL ? r : "connection closed or reset";
}

int bg_conn_tls_start(bg_conn *c, SSL_CTX *ctx, char *err)
{
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        bg_set_error(err, "TLS: SSL_new: %s", tls_reason());
        SSL_free(c->ssl);
        c->ssl = NULL;
        return BG_ERR;
    }
    SSL_set_accept_state(c->ssl);
    c->tls = BG_TLS_HELLO;
    return BG_OK;
}

void bg_conn_tls_free(bg_conn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    free(c->client_subject);
    c->client_subject = NULL;
}

int bg_conn_tls_pending(const bg_conn *c)
{
    return c->ssl != NULL && c->tls == BG_TLS_OPEN && SSL_pending(c->ssl) > 0;
}

/* Plain HTTP on the TLS port: no TLS from here on, a 400 in clear text, a lingering close. */
static void tls_refuse_plain(bg_conn *c)
{
    bg_debug("client %s: plain HTTP on a TLS port", c->peer);
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->tls = BG_TLS_NONE;
    c->tls_read_wants = 0;
    bg_conn_fail(c, bg_conn_xchg_new(c), 400, TLS_PLAIN_DETAIL);
}

/* Peeks at the first byte: 1 = a TLS record, 0 = wait, -1 = handled (closed or refused). */
static int tls_first_byte(bg_conn *c)
{
    unsigned char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        bg_debug("client %s: %s before the TLS handshake", c->peer,
                 n < 0 ? strerror(errno) : "closed");
        bg_conn_kill(c);
        return -1;
    }
    if (b != TLS_RECORD_HANDSHAKE) {
        tls_refuse_plain(c);
        return -1;
    }
    c->tls = BG_TLS_HANDSHAKE;
    return 1;
}

/* The verified client certificate's subject, for the identity code (bg_conn_client_subject). */
static void tls_keep_subject(bg_conn *c)
{
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    BIO *bio;
    char *p;
    long len;

    if (peer == NULL || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL ||
        X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) < 0 ||
        (len = BIO_get_mem_data(bio, &p)) < 0 ||
        (c->client_subject = strndup(p, (size_t)len)) == NULL)
        bg_warn("client %s: cannot keep the client certificate subject: out of memory", c->peer);
    BIO_free(bio);
}

static void tls_opened(bg_conn *c)
{
    c->tls = BG_TLS_OPEN;
    c->tls_read_wants = 0;
    tls_keep_subject(c);
    bg_debug("client %s: TLS %s %s%s%s", c->peer, SSL_get_version(c->ssl),
             SSL_get_cipher_name(c->ssl), c->client_subject ? ", client " : "",
             c->client_subject ? c->client_subject : "");
}

void bg_conn_tls_handshake(bg_conn *c)
{
    int r, e;

    if (c->tls == BG_TLS_HELLO && tls_first_byte(c) <= 0)
        return;
    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        tls_opened(c);
        bg_conn_read(c); /* a request may have come with the handshake's last flight */
        return;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->tls_read_wants = e == SSL_ERROR_WANT_WRITE;
        return;
    }
    /* Clients that give up on our certificate land here: debug, not an error of ours. */
    bg_debug("client %s: TLS handshake failed: %s", c->peer,
             e == SSL_ERROR_SYSCALL && errno != 0 ? strerror(errno) : tls_reason());
    bg_conn_kill(c);
}

ssize_t bg_conn_recv(bg_conn *c, void *buf, size_t len)
{
    int r, e;

    if (c->ssl == NULL)
        return read(c->fd, buf, len);
    ERR_clear_error();
    r = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    c->tls_read_wants = 0;
    if (r > 0)
        return r;
    e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        c->tls_read_wants = e == SSL_ERROR_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify, or a bare EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            errno = ECONNRESET;
        return -1;
    default:
        bg_debug("client %s: TLS read: %s", c->peer, tls_reason());
        errno = EPROTO;
        return -1;
    }
}

/* One SSL_write of buf: bytes taken, or -1 with errno (EAGAIN: the wanted event is recorded). */
static ssize_t tls_write(bg_conn *c, const void *buf, size_t len)
{
    int r, e;

    ERR_clear_error();
    r = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    c->tls_write_wants = 0;
    if (r > 0)
        return r;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        c->tls_write_wants = e == SSL_ERROR_WANT_READ;
        errno = EAGAIN;
        return -1;
    }
    if (e != SSL_ERROR_SYSCALL || errno == 0) {
        bg_debug("client %s: TLS write: %s", c->peer, tls_reason());
        errno = EPIPE;
    }
    return -1;
}

/* A write OpenSSL could not finish must be repeated with the same bytes; the first
 * buffer is the head of the response queue, which stays put until it is written. */
ssize_t bg_conn_send(bg_conn *c, const struct iovec *iov, int n)
{
    if (c->ssl == NULL)
        return writev(c->fd, iov, n);
    return n > 0 ? tls_write(c, iov[0].iov_base, iov[0].iov_len) : 0;
}

int bg_conn_tls_flush_continue(bg_conn *c)
{
    while (c->tls_continue > 0) {
        size_t off = BG_RESP_CONTINUE_LEN - c->tls_continue;
        ssize_t w = tls_write(c, bg_resp_continue + off, c->tls_continue);

        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        c->tls_continue -= (size_t)w;
    }
    return 1;
}

int bg_conn_send_continue(bg_conn *c)
{
    ssize_t w;

    if (c->ssl != NULL) {
        c->tls_continue = BG_RESP_CONTINUE_LEN;
        if (bg_conn_tls_flush_continue(c) < 0)
            return BG_ERR;
        c->want_write = c->tls_continue > 0;
        return BG_OK;
    }
    w = send(c->fd, bg_resp_continue, BG_RESP_CONTINUE_LEN, MSG_NOSIGNAL);
    /* Nothing else is queued, so the socket buffer is empty; a short write is
     * practically impossible and only delays the client, which sends its body
     * after a timeout. */
    if (w != BG_RESP_CONTINUE_LEN)
        bg_debug("client %s: 100 Continue not sent", c->client);
    return BG_OK;
}

void bg_conn_tls_shutdown(bg_conn *c)
{
    if (c->ssl == NULL || c->tls != BG_TLS_OPEN)
        return;
    /* One try: a close_notify the socket cannot take now is not worth waiting for. */
    ERR_clear_error();
    if (SSL_shutdown(c->ssl) < 0)
        ERR_clear_error();
}
