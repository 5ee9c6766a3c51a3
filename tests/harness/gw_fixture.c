/* gw_fixture.c: valkey + busgated + echo-service as real processes, and a raw HTTP client. */
#include "gw_fixture.h"
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fix_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static int fix_file_has(const char *path, const char *needle)
{
    char buf[8192];
    FILE *fp = fopen(path, "r");
    int found = 0;

    if (fp == NULL)
        return 0;
    while (!found && fgets(buf, sizeof(buf), fp) != NULL)
        found = strstr(buf, needle) != NULL;
    fclose(fp);
    return found;
}

int bgt_fix_echo_start(bgt_fix *f, int i)
{
    char bin[512], name[16], want[64];
    long long until = bgt_now_ms() + 10000;
    pid_t pid;
    int fd;

    if (bgt_build_path("echo-service", bin, sizeof(bin)) != 0) {
        fprintf(stderr, "gw_fixture: echo-service is not built\n");
        return -1;
    }
    snprintf(name, sizeof(name), "e%d", i + 1);
    snprintf(f->echo_log[i], sizeof(f->echo_log[i]), "%s/echo-%s.log", f->g.dir, name);
    unlink(f->echo_log[i]);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fd = open(f->echo_log[i], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execl(bin, bin, "-c", f->g.ini, "-n", name, "-w", "4", (char *)NULL);
        _exit(127);
    }
    f->echo[i] = pid;
    snprintf(want, sizeof(want), "registered as echo/%s", name);
    while (bgt_now_ms() < until) {
        if (fix_file_has(f->echo_log[i], want))
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            f->echo[i] = 0;
            fprintf(stderr, "gw_fixture: echo-service %s exited (see %s)\n", name, f->echo_log[i]);
            return -1;
        }
        fix_sleep_ms(20);
    }
    fprintf(stderr, "gw_fixture: echo-service %s did not register\n", name);
    return -1;
}

void bgt_fix_echo_kill(bgt_fix *f, int i, int sig)
{
    long long until = bgt_now_ms() + 5000;

    if (f->echo[i] <= 0)
        return;
    kill(f->echo[i], sig);
    while (waitpid(f->echo[i], NULL, WNOHANG) == 0) {
        if (bgt_now_ms() > until) {
            kill(f->echo[i], SIGKILL);
            waitpid(f->echo[i], NULL, 0);
            break;
        }
        fix_sleep_ms(10);
    }
    f->echo[i] = 0;
}

int bgt_fix_wait_status(const bgt_fix *f, const char *path, int want, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    char out[4096];
    int st = -1;

    while (bgt_now_ms() < until) {
        st = bgt_http_get(f->port, path, out, sizeof(out), 2000);
        if (st == want)
            return st;
        fix_sleep_ms(50);
    }
    return st;
}

int bgt_fix_start(bgt_fix *f, const char *extra_gateway, int necho)
{
    return bgt_fix_start_ex(f, extra_gateway, NULL, necho);
}

/* url NULL: a private valkey-server; log_level NULL: info. */
static int fix_start(bgt_fix *f, const char *url, const char *log_level, const char *extra_gateway,
                     const char *extra_sections, int necho)
{
    char gw[2048], extra[2048];
    bgt_gw_opts o = {0};
    int i;

    memset(f, 0, sizeof(*f));
    if (url == NULL && bgt_valkey_start(&f->v, NULL) != 0) {
        fprintf(stderr, "gw_fixture: valkey did not start\n");
        return -1;
    }
    snprintf(gw, sizeof(gw), "%s%s", BGT_FIX_GATEWAY, extra_gateway ? extra_gateway : "");
    o.valkey_url = url != NULL ? url : f->v.url;
    o.workers = 2;
    o.log_level = log_level;
    o.extra_gateway = gw;
    snprintf(extra, sizeof(extra), "%s[admin]\ntoken = %s\n%s", BGT_FIX_MESSAGING, BGT_FIX_TOKEN,
             extra_sections ? extra_sections : "");
    o.extra = extra;
    if (bgt_gw_init(&f->g, &o) != 0 || bgt_gw_start(&f->g) != 0) {
        fprintf(stderr, "gw_fixture: busgated did not start (see %s, %s)\n", f->g.out, f->g.log);
        return -1;
    }
    f->port = f->g.port;
    if (bgt_gw_wait_workers(&f->g, 2, 10000) != 2)
        return -1;
    for (i = 0; i < necho && i < BGT_FIX_MAX_ECHO; i++)
        if (bgt_fix_echo_start(f, i) != 0)
            return -1;
    if (necho > 0 && bgt_fix_wait_status(f, "/echo", 200, 10000) != 200) {
        fprintf(stderr, "gw_fixture: the echo route never answered 200\n");
        return -1;
    }
    /* Past the startup grace: unknown paths answer 404, not 503. */
    if (bgt_fix_wait_status(f, "/readyz", 200, 10000) != 200) {
        fprintf(stderr, "gw_fixture: /readyz never answered 200\n");
        return -1;
    }
    return 0;
}

int bgt_fix_start_ex(bgt_fix *f, const char *extra_gateway, const char *extra_sections, int necho)
{
    return fix_start(f, NULL, NULL, extra_gateway, extra_sections, necho);
}

int bgt_fix_start_log(bgt_fix *f, const char *log_level, const char *extra_gateway,
                      const char *extra_sections, int necho)
{
    return fix_start(f, NULL, log_level, extra_gateway, extra_sections, necho);
}

int bgt_fix_start_url(bgt_fix *f, const char *url, const char *extra_gateway,
                      const char *extra_sections, int necho)
{
    return fix_start(f, url, NULL, extra_gateway, extra_sections, necho);
}

bg_bus *bgt_fix_bus_open(const bgt_fix *f)
{
    char err[BG_ERR_LEN];
    bg_bus_opts o;
    bg_bus *b = NULL;

    bg_bus_opts_init(&o);
    if (bg_bus_opts_from_url(&o, f->v.url, err) == BG_OK)
        b = bg_bus_connect(&o, err);
    if (b == NULL)
        fprintf(stderr, "gw_fixture: no bus connection to %s: %s\n", f->v.url, err);
    return b;
}

int bgt_fix_cancel_count(bg_bus *b, const char *id, const char *reason)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(b, err, "XRANGE router:cancel:{echo} - +");
    int found = 0;

    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *kv = r->element[i]->element[1];
        int id_ok = id == NULL, reason_ok = 0;
        for (size_t j = 0; j + 1 < kv->elements; j += 2) {
            if (strcmp(kv->element[j]->str, "id") == 0 && id != NULL)
                id_ok = strcmp(kv->element[j + 1]->str, id) == 0;
            if (strcmp(kv->element[j]->str, "reason") == 0)
                reason_ok = strcmp(kv->element[j + 1]->str, reason) == 0;
        }
        found += id_ok && reason_ok;
    }
    if (r != NULL)
        freeReplyObject(r);
    return found;
}

void bgt_fix_stop(bgt_fix *f)
{
    int i;

    for (i = 0; i < BGT_FIX_MAX_ECHO; i++)
        bgt_fix_echo_kill(f, i, SIGTERM);
    bgt_gw_stop(&f->g);
    bgt_valkey_stop(&f->v);
}

/* ---- raw client ---- */

int bgt_conn_open(bgt_conn *c, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

    memset(c, 0, sizeof(*c));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

void bgt_conn_close(bgt_conn *c)
{
    if (c->ssl != NULL)
        bgt_tls_close(c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

int bgt_conn_send(bgt_conn *c, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = c->ssl ? bgt_tls_send(c, p, len) : send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more into the buffer; 1 = got bytes, 0 = EOF, -1 = timeout or error. */
static int conn_fill(bgt_conn *c, long long until)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    long long left = until - bgt_now_ms();
    ssize_t n;

    if (c->eof)
        return 0;
    /* Bytes OpenSSL already decrypted raise no poll event. */
    if ((c->ssl == NULL || !bgt_tls_pending(c)) && (left <= 0 || poll(&pfd, 1, (int)left) <= 0))
        return -1;
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? c->cap * 2 : 131072;
        char *p = realloc(c->buf, cap + 1);
        if (p == NULL)
            return -1;
        c->buf = p;
        c->cap = cap;
    }
    n = c->ssl ? bgt_tls_recv(c, c->buf + c->len, c->cap - c->len)
               : recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n == 0) {
        c->eof = 1;
        return 0;
    }
    if (n < 0)
        return errno == EINTR ? 1 : -1;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return 1;
}

static void conn_consume(bgt_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    if (c->buf != NULL)
        c->buf[c->len] = '\0';
}

int bgt_conn_wait_eof(bgt_conn *c, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    int r;

    while ((r = conn_fill(c, until)) == 1)
        c->len = 0;
    return r == 0;
}

static int conn_need(bgt_conn *c, size_t n, long long until)
{
    while (c->len < n)
        if (conn_fill(c, until) != 1)
            return -1;
    return 0;
}

/* Decodes a chunked body from the buffer into r; -1 on timeout or bad framing. */
static int conn_read_chunked(bgt_conn *c, bgt_resp *r, long long until)
{
    for (;;) {
        char *eol;
        unsigned long size;

        while ((eol = c->buf != NULL ? strstr(c->buf, "\r\n") : NULL) == NULL)
            if (conn_fill(c, until) != 1)
                return -1;
        size = strtoul(c->buf, NULL, 16);
        if (conn_need(c, (size_t)(eol - c->buf) + 2 + size + 2, until) != 0)
            return -1;
        eol = strstr(c->buf, "\r\n");
        r->body = realloc(r->body, r->body_len + size + 1);
        memcpy(r->body + r->body_len, eol + 2, size);
        r->body_len += size;
        r->body[r->body_len] = '\0';
        conn_consume(c, (size_t)(eol - c->buf) + 2 + size + 2);
        if (size == 0)
            return 0; /* no trailers are sent by busgate */
    }
}

static int conn_read_body(bgt_conn *c, bgt_resp *r, int head_request, long long until)
{
    char v[64];

    r->body = calloc(1, 1);
    if (head_request || r->status < 200 || r->status == 204 || r->status == 304)
        return 0;
    if (bgt_resp_header(r, "transfer-encoding", v, sizeof(v)) == 0)
        return conn_read_chunked(c, r, until);
    if (bgt_resp_header(r, "content-length", v, sizeof(v)) == 0) {
        size_t n = strtoul(v, NULL, 10);
        if (conn_need(c, n, until) != 0)
            return -1;
        free(r->body);
        r->body = malloc(n + 1);
        memcpy(r->body, c->buf, n);
        r->body[n] = '\0';
        r->body_len = n;
        conn_consume(c, n);
        return 0;
    }
    while (conn_fill(c, until) == 1) /* close-delimited */
        ;
    free(r->body);
    r->body = malloc(c->len + 1);
    memcpy(r->body, c->buf ? c->buf : "", c->len);
    r->body[c->len] = '\0';
    r->body_len = c->len;
    conn_consume(c, c->len);
    return 0;
}

int bgt_conn_read(bgt_conn *c, bgt_resp *r, int head_request, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    char *end;
    size_t hl;

    memset(r, 0, sizeof(*r));
    r->status = -1;
    while ((end = c->buf != NULL ? strstr(c->buf, "\r\n\r\n") : NULL) == NULL)
        if (conn_fill(c, until) != 1)
            return -1;
    hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof(r->head))
        return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    conn_consume(c, hl);
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    return conn_read_body(c, r, head_request, until);
}

void bgt_resp_free(bgt_resp *r)
{
    free(r->body);
    r->body = NULL;
}

int bgt_resp_header(const bgt_resp *r, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");

    while (p != NULL && p[2] != '\r') {
        const char *line = p + 2, *eol = strstr(line, "\r\n");
        if (eol == NULL)
            return -1;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, len, "%.*s", (int)(eol - v), v);
            return 0;
        }
        p = eol;
    }
    return -1;
}

int bgt_fix_request(const bgt_fix *f, const char *raw, size_t len, bgt_resp *r, int timeout_ms)
{
    bgt_conn c;
    int rc;

    memset(r, 0, sizeof(*r));
    r->status = -1;
    if (bgt_conn_open(&c, f->port) != 0)
        return -1;
    rc = bgt_conn_send(&c, raw, len) == 0
             ? bgt_conn_read(&c, r, strncmp(raw, "HEAD ", 5) == 0, timeout_ms)
             : -1;
    bgt_conn_close(&c);
    return rc == 0 ? r->status : -1;
}
