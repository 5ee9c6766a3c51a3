/* chaos_load.c: keep-alive load clients for the fault suite, one thread each, with every
 * request's outcome recorded for the scenario's accounting. */
#include "chaos_load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHAOS_BUF 65536

/* One connection's read state. */
typedef struct chaos_conn {
    int fd;
    int served;
    char buf[CHAOS_BUF];
    size_t len;
    char body[CHAOS_BUF]; /* a chunked body, decoded */
    size_t body_len;
} chaos_conn;

/* What the response parser found. */
typedef struct chaos_resp {
    int status;
    int retry_after;
    int close;
    const char *body;
    size_t body_len;
    size_t total; /* bytes of buf the response took */
} chaos_resp;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

int64_t chaos_load_now(const chaos_load *l)
{
    return mono_ms() - l->t0_ms;
}

const char *chaos_kind_name(int kind)
{
    static const char *const names[CHAOS_KINDS] = {"answered", "connect",  "reset",      "eof",
                                                   "hung",     "bad_http", "wrong_body", "extra"};

    return kind >= 0 && kind < CHAOS_KINDS ? names[kind] : "?";
}

int chaos_rec_failed(const chaos_rec *r)
{
    return r->kind != CHAOS_ANSWERED || r->status < 200 || r->status > 299;
}

static int conn_open(chaos_conn *c, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c->len = 0;
    c->served = 0;
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void conn_close(chaos_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return CHAOS_RESET;
        p += w;
        n -= (size_t)w;
    }
    return CHAOS_ANSWERED;
}

/* Reads more bytes before the deadline: CHAOS_ANSWERED when some came, else the kind. */
static int read_more(chaos_conn *c, int64_t deadline)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int64_t left = deadline - mono_ms();
    ssize_t r;

    if (c->len >= sizeof(c->buf))
        return CHAOS_BAD_HTTP;
    if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
        return CHAOS_HUNG;
    r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (r < 0)
        return errno == EINTR ? CHAOS_ANSWERED : CHAOS_RESET;
    if (r == 0)
        return CHAOS_EOF;
    c->len += (size_t)r;
    return CHAOS_ANSWERED;
}

static const char *head_value(const char *head, const char *end, const char *name)
{
    size_t n = strlen(name);
    const char *p = head;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        p++;
        if ((size_t)(end - p) > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            while (*p == ' ')
                p++;
            return p;
        }
    }
    return NULL;
}

/* Decodes a chunked body that starts at body_off into c->body; 1 when complete (out's
 * body and total set), 0 when more bytes are needed, -1 when malformed. */
static int chunked_done(chaos_conn *c, size_t body_off, chaos_resp *out)
{
    size_t in = body_off;

    c->body_len = 0;
    for (;;) {
        char *eol = memmem(c->buf + in, c->len - in, "\r\n", 2);
        char *end;
        unsigned long size;

        if (eol == NULL)
            return 0;
        size = strtoul(c->buf + in, &end, 16);
        if (end == c->buf + in || size > sizeof(c->body) - c->body_len)
            return -1;
        in = (size_t)(eol - c->buf) + 2;
        if (c->len - in < size + 2)
            return 0;
        if (size == 0) { /* no trailers expected: the last chunk's CRLF ends the body */
            out->body = c->body;
            out->body_len = c->body_len;
            out->total = in + 2;
            return 1;
        }
        memcpy(c->body + c->body_len, c->buf + in, size);
        c->body_len += size;
        in += size + 2;
    }
}

/* Parses one response at the start of c->buf: 1 complete, 0 incomplete, -1 malformed. */
static int parse_resp(chaos_conn *c, chaos_resp *out)
{
    char *hend = memmem(c->buf, c->len, "\r\n\r\n", 4);
    const char *v;
    size_t body_off;
    long clen = -1;

    memset(out, 0, sizeof(*out));
    if (hend == NULL)
        return c->len >= sizeof(c->buf) ? -1 : 0;
    if (c->len < 12 || strncmp(c->buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    out->status = atoi(c->buf + 9);
    if (out->status < 100 || out->status > 599)
        return -1;
    body_off = (size_t)(hend - c->buf) + 4;
    out->retry_after = head_value(c->buf, hend, "Retry-After") != NULL;
    v = head_value(c->buf, hend, "Connection");
    out->close = v != NULL && strncasecmp(v, "close", 5) == 0;
    v = head_value(c->buf, hend, "Transfer-Encoding");
    if (v != NULL && strncasecmp(v, "chunked", 7) == 0)
        return chunked_done(c, body_off, out);
    v = head_value(c->buf, hend, "Content-Length");
    if (v != NULL)
        clen = strtol(v, NULL, 10);
    if (clen < 0)
        return -1; /* every answer of the gateway is framed */
    if (c->len - body_off < (size_t)clen)
        return 0;
    out->body = c->buf + body_off;
    out->body_len = (size_t)clen;
    out->total = body_off + (size_t)clen;
    return 1;
}

/* Sends one request and reads its answer into r; the connection is closed when the
 * answer said so or anything went wrong. */
static void one_request(chaos_client *cl, chaos_conn *c, unsigned long seq, chaos_rec *r)
{
    const chaos_load *l = cl->load;
    char req[256], want[96];
    int64_t start = mono_ms(), deadline = start + l->hang_ms;
    chaos_resp resp;
    int n, kind, rc = 0;

    snprintf(want, sizeof(want), "\"path\":\"/echo/c%d-%lu\"", cl->index, seq);
    n = snprintf(req, sizeof(req), "GET /echo/c%d-%lu HTTP/1.1\r\nHost: chaos\r\n\r\n", cl->index,
                 seq);
    memset(r, 0, sizeof(*r));
    r->start_ms = start - l->t0_ms;
    r->reused = c->served > 0;
    kind = send_all(c->fd, req, (size_t)n);
    while (kind == CHAOS_ANSWERED && (rc = parse_resp(c, &resp)) == 0)
        kind = read_more(c, deadline);
    if (kind == CHAOS_ANSWERED && rc < 0)
        kind = CHAOS_BAD_HTTP;
    if (kind == CHAOS_ANSWERED) {
        r->status = (int16_t)resp.status;
        r->retry_after = (uint8_t)resp.retry_after;
        if (resp.status == 200 && memmem(resp.body, resp.body_len, want, strlen(want)) == NULL)
            kind = CHAOS_WRONG_BODY;
        else if (c->len > resp.total)
            kind = CHAOS_EXTRA; /* one request at a time: nothing may follow its answer */
        c->len = 0;
        c->served++;
    }
    r->kind = (uint8_t)kind;
    r->end_ms = mono_ms() - l->t0_ms;
    if (kind != CHAOS_ANSWERED || resp.close)
        conn_close(c);
}

static int client_push(chaos_client *cl, const chaos_rec *r)
{
    if (cl->nrecs == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 4096;
        chaos_rec *p = realloc(cl->recs, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        cl->recs = p;
        cl->cap = cap;
    }
    cl->recs[cl->nrecs++] = *r;
    return 0;
}

static void *client_main(void *arg)
{
    chaos_client *cl = arg;
    const chaos_load *l = cl->load;
    int64_t end = l->t0_ms + l->duration_ms;
    chaos_conn *c = calloc(1, sizeof(*c));
    unsigned long seq = 0;
    chaos_rec r;

    if (c == NULL)
        return NULL;
    c->fd = -1;
    while (mono_ms() < end) {
        if (c->fd < 0 && conn_open(c, l->port) != 0) {
            memset(&r, 0, sizeof(r));
            r.kind = CHAOS_CONNECT;
            r.start_ms = r.end_ms = chaos_load_now(l);
            if (client_push(cl, &r) != 0)
                break;
            sleep_ms(10); /* nothing listens for a moment: no hot loop */
            continue;
        }
        one_request(cl, c, seq++, &r);
        if (client_push(cl, &r) != 0)
            break;
    }
    conn_close(c);
    free(c);
    return NULL;
}

int chaos_load_start(chaos_load *l, int port, int nclients, int duration_ms, int hang_ms)
{
    memset(l, 0, sizeof(*l));
    l->port = port;
    l->nclients = nclients;
    l->duration_ms = duration_ms;
    l->hang_ms = hang_ms;
    l->t0_ms = mono_ms();
    l->clients = calloc((size_t)nclients, sizeof(*l->clients));
    if (l->clients == NULL)
        return -1;
    for (int i = 0; i < nclients; i++) {
        l->clients[i].load = l;
        l->clients[i].index = i;
        if (pthread_create(&l->clients[i].thread, NULL, client_main, &l->clients[i]) != 0) {
            l->nclients = i;
            return -1;
        }
    }
    return 0;
}

void chaos_load_join(chaos_load *l)
{
    for (int i = 0; i < l->nclients; i++)
        pthread_join(l->clients[i].thread, NULL);
}

void chaos_load_free(chaos_load *l)
{
    if (l->clients == NULL)
        return;
    for (int i = 0; i < l->nclients; i++)
        free(l->clients[i].recs);
    free(l->clients);
    l->clients = NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void sum_one(chaos_sum *s, const chaos_rec *r)
{
    s->total++;
    s->kind[r->kind]++;
    if (r->kind != CHAOS_ANSWERED)
        return;
    s->status[r->status / 100]++;
    s->ok += r->status >= 200 && r->status <= 299;
    s->s404 += r->status == 404;
    s->s502 += r->status == 502;
    s->s503 += r->status == 503;
    s->s503_retry += r->status == 503 && r->retry_after;
    s->s504 += r->status == 504;
}

void chaos_load_sum(const chaos_load *l, int64_t from_ms, int64_t to_ms, chaos_sum *s)
{
    size_t n = 0, k = 0;
    int64_t *lat;

    memset(s, 0, sizeof(*s));
    for (int i = 0; i < l->nclients; i++)
        n += l->clients[i].nrecs;
    lat = malloc((n ? n : 1) * sizeof(*lat));
    for (int i = 0; i < l->nclients; i++) {
        const chaos_client *cl = &l->clients[i];
        long failed = 0;
        for (size_t j = 0; j < cl->nrecs; j++) {
            const chaos_rec *r = &cl->recs[j];
            if (r->start_ms < from_ms || r->start_ms >= to_ms)
                continue;
            sum_one(s, r);
            failed += chaos_rec_failed(r);
            if (lat != NULL)
                lat[k++] = r->end_ms - r->start_ms;
        }
        if (failed > s->max_clients_failed)
            s->max_clients_failed = failed;
    }
    if (lat != NULL && k > 0) {
        qsort(lat, k, sizeof(*lat), cmp_i64);
        s->lat_max_ms = lat[k - 1];
        s->lat_p99_ms = lat[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1];
    }
    free(lat);
}

int64_t chaos_load_first_ok_after(const chaos_load *l, int64_t from_ms, int64_t *end_ms)
{
    int64_t best = -1, best_end = -1;

    for (int i = 0; i < l->nclients; i++) {
        const chaos_client *cl = &l->clients[i];
        for (size_t j = 0; j < cl->nrecs; j++) {
            const chaos_rec *r = &cl->recs[j];
            if (r->start_ms < from_ms || chaos_rec_failed(r))
                continue;
            if (best < 0 || r->end_ms < best_end) {
                best = r->start_ms;
                best_end = r->end_ms;
            }
        }
    }
    if (end_ms != NULL)
        *end_ms = best_end;
    return best;
}

void chaos_sum_print(const char *scenario, const chaos_sum *s)
{
    printf("chaos %-16s requests %6ld ok %6ld | 404 %ld 502 %ld 503 %ld (Retry-After %ld) 504 %ld "
           "other-non-2xx %ld | connect %ld reset %ld eof %ld hung %ld bad_http %ld wrong_body "
           "%ld extra %ld | latency p99 %lld ms max %lld ms | worst client %ld failed\n",
           scenario, s->total, s->ok, s->s404, s->s502, s->s503, s->s503_retry, s->s504,
           s->status[1] + s->status[3] + s->status[4] + s->status[5] - s->s404 - s->s502 - s->s503 -
               s->s504,
           s->kind[CHAOS_CONNECT], s->kind[CHAOS_RESET], s->kind[CHAOS_EOF], s->kind[CHAOS_HUNG],
           s->kind[CHAOS_BAD_HTTP], s->kind[CHAOS_WRONG_BODY], s->kind[CHAOS_EXTRA],
           (long long)s->lat_p99_ms, (long long)s->lat_max_ms, s->max_clients_failed);
    fflush(stdout);
}
