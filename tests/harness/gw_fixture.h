/* gw_fixture.h: end-to-end gateway fixture for the tests/test_gateway_*.c suites: a private
 * valkey-server, busgated with 2 workers, echo-service instances, and a raw HTTP/1.1 client
 * that reads responses one by one (keep-alive, pipelining, chunked, HEAD). */
#ifndef BUSGATE_TEST_GW_FIXTURE_H
#define BUSGATE_TEST_GW_FIXTURE_H

#include <stddef.h>
#include <sys/types.h>

#include "busgate/bus/bus.h"
#include "proc_harness.h"
#include "valkey_harness.h"

#define BGT_FIX_MAX_ECHO 4
#define BGT_FIX_TOKEN "test-admin-token-0123456789"

/* Short timeouts so the status tests stay fast. Added to [gateway] by bgt_fix_start. */
#define BGT_FIX_GATEWAY                                                                            \
    "instance_id = gw-test\nrequest_timeout = 2s\nheader_timeout = 1s\nbody_timeout = 1s\n"        \
    "max_request_body = 2m\nmax_header_size = 8k\n"
/* Heartbeats every 200 ms, down after 1 s: instance loss is seen quickly. */
#define BGT_FIX_MESSAGING "[messaging]\nheartbeat_interval = 200ms\nheartbeat_expiry = 1s\n"

typedef struct bgt_fix {
    bgt_valkey v;
    bgt_gw g;
    int port;
    pid_t echo[BGT_FIX_MAX_ECHO];
    char echo_log[BGT_FIX_MAX_ECHO][320];
} bgt_fix;

/* Valkey, then busgated (2 workers, seccomp on, admin token BGT_FIX_TOKEN) with
 * BGT_FIX_GATEWAY plus extra_gateway, then `necho` echo-service instances e1..eN;
 * returns when GET /echo answers 200. 0 or -1 (the reason printed to stderr). */
int bgt_fix_start(bgt_fix *f, const char *extra_gateway, int necho);
/* The same, with more ini sections appended verbatim (e.g. "[valkey]\ncommand_timeout = 1s\n"). */
int bgt_fix_start_ex(bgt_fix *f, const char *extra_gateway, const char *extra_sections, int necho);
/* The same with [gateway] log_level (NULL: info). */
int bgt_fix_start_log(bgt_fix *f, const char *log_level, const char *extra_gateway,
                      const char *extra_sections, int necho);
/* The same on a Valkey the caller runs (e.g. a valkey+sentinel:// url): f->v stays unused. */
int bgt_fix_start_url(bgt_fix *f, const char *url, const char *extra_gateway,
                      const char *extra_sections, int necho);
void bgt_fix_stop(bgt_fix *f);
/* A blocking bus connection to the fixture's Valkey (the caller frees it); NULL with the
 * reason printed to stderr. */
bg_bus *bgt_fix_bus_open(const bgt_fix *f);
/* CANCEL frames on router:cancel:{echo} with this reason and, when id is not NULL, id. */
int bgt_fix_cancel_count(bg_bus *b, const char *id, const char *reason);
/* Echo instance i (0-based, named e<i+1>): start and wait for its registration line. */
int bgt_fix_echo_start(bgt_fix *f, int i);
/* SIGKILL (no GOODBYE) or SIGTERM (GOODBYE) and reap. */
void bgt_fix_echo_kill(bgt_fix *f, int i, int sig);
/* Polls GET path until it answers want (bounded); returns the last status. */
int bgt_fix_wait_status(const bgt_fix *f, const char *path, int want, int timeout_ms);

/* A raw client connection with its own read buffer (responses may arrive together). */
typedef struct bgt_conn {
    int fd;
    char *buf;
    size_t len, cap;
    int eof;
    void *ssl, *ssl_ctx; /* TLS (tls_client.h): SSL and SSL_CTX; NULL for plain TCP */
} bgt_conn;

typedef struct bgt_resp {
    int status;
    char head[16384]; /* status line and headers, NUL-terminated */
    char *body;       /* malloc'd, NUL-terminated; body_len bytes */
    size_t body_len;
} bgt_resp;

int bgt_conn_open(bgt_conn *c, int port);
void bgt_conn_close(bgt_conn *c);
int bgt_conn_send(bgt_conn *c, const void *data, size_t len);
/* Reads one response (Content-Length, chunked, or until EOF; no body for HEAD, 1xx,
 * 204, 304). Returns 0, or -1 on timeout / EOF before a whole response. */
int bgt_conn_read(bgt_conn *c, bgt_resp *r, int head_request, int timeout_ms);
/* Waits until the peer closes: 1 when EOF came within timeout_ms (data is discarded). */
int bgt_conn_wait_eof(bgt_conn *c, int timeout_ms);
void bgt_resp_free(bgt_resp *r);
/* Value of a response header (case-insensitive) copied into out; 0 or -1 when absent. */
int bgt_resp_header(const bgt_resp *r, const char *name, char *out, size_t len);

/* One request on a new connection; the response read into r. Returns the status or -1. */
int bgt_fix_request(const bgt_fix *f, const char *raw, size_t len, bgt_resp *r, int timeout_ms);

#endif
