/* test_gateway_tls.c: TLS listeners end to end: curl --cacert over real TLS to busgated and
 * echo-service with a private valkey-server; ALPN and protocol versions; keep-alive, pipelining
 * and bodies over TLS; mTLS optional and required; a reload that swaps the certificate; plain
 * HTTP on the TLS port; a stalled handshake cut by header_timeout. Real processes, seccomp on. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "gw_fixture.h"
#include "tls_certs.h"
#include "tls_client.h"

static bgt_fix fix;
static bgt_tls_certs certs;
static int tls_port;

static void teardown(void);

/* busgated with an HTTP and an HTTPS listener; verify: the [tls] verify_client value. */
static void start_with(const char *verify)
{
    char gw[256], sections[2048];

    /* Criterion skips .fini when .init fails: clean up here before failing. */
    if (bgt_tls_make_certs(&certs) != 0 || bgt_tls_make_clients(&certs) != 0) {
        bgt_tls_remove_certs(&certs);
        cr_assert_fail("openssl could not make the certificates");
    }
    tls_port = bgt_free_port();
    snprintf(gw, sizeof(gw), "listen = 127.0.0.1:%d ssl\n", tls_port);
    snprintf(sections, sizeof(sections),
             "[tls]\ncertificate = %s\ncertificate_key = %s\nclient_ca = %s\nverify_client = %s\n",
             certs.server_crt, certs.server_key, certs.ca_crt, verify);
    if (tls_port <= 0 || bgt_fix_start_log(&fix, "debug", gw, sections, 1) != 0) {
        teardown();
        cr_assert_fail("fixture did not start");
    }
}

static void setup_optional(void)
{
    start_with("optional");
}

static void setup_required(void)
{
    start_with("on");
}

static void teardown(void)
{
    bgt_fix_stop(&fix);
    bgt_tls_remove_certs(&certs);
}

TestSuite(gateway_tls, .init = setup_optional, .fini = teardown, .timeout = 90);
TestSuite(gateway_mtls, .init = setup_required, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

/* Runs argv (curl) with stdout and stderr into out; returns the exit code, -1 on a
 * timeout (killed) or failure to start. */
static int run(const char *const *argv, char *out, size_t outlen, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    int pfd[2], status = 0;
    size_t used = 0;
    pid_t pid;

    cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        long long left = until - bgt_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            kill(pid, SIGKILL);
            status = -1;
            break;
        }
        n = read(pfd[0], out + used, outlen - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used == outlen - 1)
            used = 0; /* keep the tail; the tests look for short markers */
    }
    out[used] = '\0';
    close(pfd[0]);
    if (waitpid(pid, &status, 0) != pid || status == -1)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* curl over TLS to path; with_cert: present the client certificate. */
static int curl_https(const char *path, int with_cert, char *out, size_t outlen)
{
    char url[256];
    const char *argv[16] = {"curl", "-sS", "-v", "--max-time", "10", "--cacert", certs.ca_crt};
    int n = 7;

    snprintf(url, sizeof(url), "https://localhost:%d%s", tls_port, path);
    if (with_cert) {
        argv[n++] = "--cert";
        argv[n++] = certs.client_crt;
        argv[n++] = "--key";
        argv[n++] = certs.client_key;
    }
    argv[n++] = url;
    argv[n] = NULL;
    return run(argv, out, outlen, 15000);
}

static bgt_tls_opts client_opts(int with_cert)
{
    bgt_tls_opts o = {.ca = certs.ca_crt};

    if (with_cert) {
        o.cert = certs.client_crt;
        o.key = certs.client_key;
    }
    return o;
}

static void open_tls(bgt_conn *c, int with_cert)
{
    bgt_tls_opts o = client_opts(with_cert);
    char err[512];

    cr_assert_eq(bgt_conn_open_tls(c, tls_port, &o, err, sizeof(err)), 0, "%s", err);
}

static int send_and_read(bgt_conn *c, const char *req, bgt_resp *r)
{
    if (bgt_conn_send(c, req, strlen(req)) != 0)
        return -1;
    return bgt_conn_read(c, r, 0, 5000);
}

/* ---- tests ---- */

Test(gateway_tls, curl_https_round_trip_beside_http)
{
    char out[65536];
    bgt_resp r;
    const char get[] = "GET /echo/7 HTTP/1.1\r\nHost: t\r\n\r\n";

    cr_assert_eq(curl_https("/echo/7", 0, out, sizeof(out)), 0, "%s", out);
    cr_assert_not_null(strstr(out, "< HTTP/1.1 200"), "%s", out);
    cr_assert_not_null(strstr(out, "ALPN: server accepted http/1.1"), "%s", out);
    cr_assert_not_null(strstr(out, "\"params\":{\"id\":\"7\"}"), "%s", out);
    cr_assert_not_null(strstr(out, "[\"X-Forwarded-Proto\",\"https\"]"), "%s", out);

    /* The plain listener serves at the same time, and says so. */
    cr_assert_eq(bgt_fix_request(&fix, get, strlen(get), &r, 5000), 200);
    cr_assert_not_null(strstr(r.body, "[\"X-Forwarded-Proto\",\"http\"]"), "%s", r.body);
    bgt_resp_free(&r);
}

Test(gateway_tls, tls12_and_13_only_alpn_http11)
{
    bgt_tls_opts o = client_opts(0);
    char err[512], alpn[32];
    bgt_conn c;

    open_tls(&c, 0);
    cr_assert_str_eq(bgt_tls_version(&c), "TLSv1.3");
    bgt_tls_alpn(&c, alpn, sizeof(alpn));
    cr_assert_str_eq(alpn, "http/1.1");
    bgt_conn_close(&c);

    o.max_version = TLS1_2_VERSION;
    cr_assert_eq(bgt_conn_open_tls(&c, tls_port, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(bgt_tls_version(&c), "TLSv1.2");
    bgt_conn_close(&c);

    o.max_version = TLS1_1_VERSION;
    cr_assert_neq(bgt_conn_open_tls(&c, tls_port, &o, err, sizeof(err)), 0,
                  "a TLS 1.1 handshake succeeded");
}

Test(gateway_tls, keep_alive_pipelining_and_bodies_over_tls)
{
    const size_t big = 1 << 20;
    char req[128], want[64], all[2048] = "", head[256], *body = malloc(big);
    bgt_resp r;
    bgt_conn c;
    int i;

    open_tls(&c, 0);
    for (i = 0; i < 50; i++) {
        snprintf(req, sizeof(req), "GET /echo/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        cr_assert_eq(send_and_read(&c, req, &r), 0, "request %d got no answer", i);
        cr_assert_eq(r.status, 200, "request %d", i);
        snprintf(want, sizeof(want), "\"params\":{\"id\":\"%d\"}", i);
        cr_assert_not_null(strstr(r.body, want), "request %d: %s", i, r.body);
        cr_assert_null(strstr(r.head, "Connection: close"));
        bgt_resp_free(&r);
    }
    /* Ten requests in one write, answered in order. */
    for (i = 0; i < 10; i++) {
        snprintf(req, sizeof(req), "GET /echo/p%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        strcat(all, req);
    }
    cr_assert_eq(bgt_conn_send(&c, all, strlen(all)), 0);
    for (i = 0; i < 10; i++) {
        cr_assert_eq(bgt_conn_read(&c, &r, 0, 5000), 0, "pipelined %d", i);
        snprintf(want, sizeof(want), "\"params\":{\"id\":\"p%d\"}", i);
        cr_assert_not_null(strstr(r.body, want), "pipelined %d out of order: %s", i, r.body);
        bgt_resp_free(&r);
    }
    /* 1 MiB each way: many records, partial writes. Then 100-continue. */
    for (size_t k = 0; k < big; k++)
        body[k] = (char)(k * 7 + 3);
    snprintf(head, sizeof(head),
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
             "Content-Length: %zu\r\n\r\n",
             big);
    cr_assert_eq(bgt_conn_send(&c, head, strlen(head)), 0);
    cr_assert_eq(bgt_conn_send(&c, body, big), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 15000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, big);
    cr_assert_eq(memcmp(r.body, body, big), 0, "the echoed body differs");
    bgt_resp_free(&r);
    cr_assert_eq(send_and_read(&c,
                               "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                               "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n",
                               &r),
                 0);
    cr_assert_eq(r.status, 100);
    bgt_resp_free(&r);
    cr_assert_eq(send_and_read(&c, "hi", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"body\":\"hi\""), "%s", r.body);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    free(body);
}

Test(gateway_tls, limits_behave_as_over_http)
{
    char req[256];
    bgt_resp r;
    bgt_conn c;

    /* A body over max_request_body (2m in the fixture): 413 and close, as in clear. */
    open_tls(&c, 0);
    snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             3 * 1024 * 1024);
    cr_assert_eq(send_and_read(&c, req, &r), 0);
    cr_assert_eq(r.status, 413);
    bgt_resp_free(&r);
    cr_assert(bgt_conn_wait_eof(&c, 5000), "connection left open after 413");
    bgt_conn_close(&c);

    /* A head that stops half way: 408 after header_timeout (1s in the fixture). */
    open_tls(&c, 0);
    cr_assert_eq(bgt_conn_send(&c, "GET /echo HTTP/1.1\r\nHost:", 25), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert_eq(r.status, 408);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
}

Test(gateway_tls, optional_client_certificate_gives_the_subject)
{
    bgt_tls_opts o = {.ca = certs.ca_crt, .cert = certs.stranger_crt, .key = certs.stranger_key};
    char out[65536], err[512];
    bgt_conn c;

    cr_assert_eq(curl_https("/echo/1", 1, out, sizeof(out)), 0, "%s", out);
    cr_assert_not_null(strstr(out, "< HTTP/1.1 200"), "%s", out);
    /* The worker keeps the verified subject on the connection (debug log shows it). */
    cr_assert_eq(bgt_gw_wait_log(&fix.g, "client CN=test client,O=busgate tests", 1, 5000), 0);
    /* Without a token the verified subject is the identity the service gets. */
    cr_assert_not_null(strstr(out, "[\"X-User-Id\",\"CN=test client,O=busgate tests\"]"), "%s",
                       out);
    cr_assert_not_null(strstr(out, "\\\"amr\\\":[\\\"mtls\\\"]"), "%s", out);

    cr_assert_eq(curl_https("/echo/2", 0, out, sizeof(out)), 0, "%s", out);
    cr_assert_not_null(strstr(out, "< HTTP/1.1 200"), "no certificate is fine when optional");
    cr_assert_null(strstr(out, "X-User-Id"), "no certificate, no identity: %s", out);

    /* A certificate the client CA did not sign fails the handshake: with TLS 1.3 the
     * client may learn it only at its first read, so a request must get no answer. */
    if (bgt_conn_open_tls(&c, tls_port, &o, err, sizeof(err)) == 0) {
        bgt_resp r = {.status = -1};

        if (bgt_conn_send(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", 31) == 0)
            cr_assert_neq(bgt_conn_read(&c, &r, 0, 5000), 0, "answered: %d", r.status);
        bgt_resp_free(&r);
        bgt_conn_close(&c);
    }
    cr_assert_eq(bgt_gw_log_count(&fix.g, "client CN=stranger"), 0);
}

Test(gateway_mtls, client_certificate_required)
{
    char out[65536];

    cr_assert_eq(curl_https("/echo/1", 1, out, sizeof(out)), 0, "%s", out);
    cr_assert_not_null(strstr(out, "< HTTP/1.1 200"), "%s", out);
    cr_assert_eq(bgt_gw_wait_log(&fix.g, "client CN=test client,O=busgate tests", 1, 5000), 0);

    /* Without a certificate there is no HTTP at all. */
    cr_assert_neq(curl_https("/echo/2", 0, out, sizeof(out)), 0, "%s", out);
    cr_assert_null(strstr(out, "< HTTP/1.1"), "%s", out);
}

Test(gateway_tls, plain_http_on_the_tls_port_gets_400_and_close)
{
    const char get[] = "GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n";
    bgt_resp r;
    bgt_conn c;

    cr_assert_eq(bgt_conn_open(&c, tls_port), 0);
    cr_assert_eq(bgt_conn_send(&c, get, strlen(get)), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 5000), 0);
    cr_assert_eq(r.status, 400);
    cr_assert_not_null(strstr(r.body, "plain HTTP request was sent to HTTPS port"), "%s", r.body);
    cr_assert_not_null(strstr(r.head, "Connection: close"), "%s", r.head);
    bgt_resp_free(&r);
    cr_assert(bgt_conn_wait_eof(&c, 5000), "connection left open");
    bgt_conn_close(&c);
}

Test(gateway_tls, stalled_handshake_cut_by_header_timeout)
{
    const char hello_start[] = "\x16\x03\x01\x02\x00\x01"; /* a ClientHello that never ends */
    bgt_conn silent, partial, good;
    bgt_resp r;

    cr_assert_eq(bgt_conn_open(&silent, tls_port), 0);
    cr_assert_eq(bgt_conn_open(&partial, tls_port), 0);
    cr_assert_eq(bgt_conn_send(&partial, hello_start, sizeof(hello_start) - 1), 0);
    /* header_timeout is 1s in the fixture; the bound only keeps a failure short. */
    cr_assert(bgt_conn_wait_eof(&silent, 10000), "a silent connection was kept");
    cr_assert(bgt_conn_wait_eof(&partial, 10000), "a stalled handshake was kept");
    bgt_conn_close(&silent);
    bgt_conn_close(&partial);

    open_tls(&good, 0);
    cr_assert_eq(send_and_read(&good, "GET /echo/ok HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    bgt_conn_close(&good);
}

/* One request on a fresh TLS connection; the server certificate's serial into serial. */
static int request_fresh(int i, char *serial, size_t len)
{
    bgt_tls_opts o = client_opts(0);
    char req[128], err[512];
    bgt_resp r;
    bgt_conn c;
    int status;

    if (bgt_conn_open_tls(&c, tls_port, &o, err, sizeof(err)) != 0) {
        cr_log_error("request %d: %s", i, err);
        return -1;
    }
    bgt_tls_peer_serial(&c, serial, len);
    snprintf(req, sizeof(req), "GET /echo/r%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", i);
    status = send_and_read(&c, req, &r) == 0 ? r.status : -1;
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    return status;
}

Test(gateway_tls, reload_swaps_the_certificate_without_failures)
{
    const char slow[] = "GET /echo/slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n";
    char first[128], fresh[128], now[128];
    int i, swapped = -1;
    bgt_conn held;
    bgt_resp r;

    cr_assert_eq(request_fresh(0, first, sizeof(first)), 200);
    /* A request in flight on an old worker's TLS connection is answered, not dropped. */
    open_tls(&held, 0);
    cr_assert_eq(bgt_conn_send(&held, slow, strlen(slow)), 0);
    cr_assert_eq(bgt_tls_reissue_server(&certs), 0);
    cr_assert_eq(bgt_tls_file_serial(certs.server_crt, fresh, sizeof(fresh)), 0);
    cr_assert_str_neq(first, fresh, "the reissued certificate has the old serial");
    cr_assert_eq(bgt_gw_signal(&fix.g, SIGHUP), 0);
    /* Requests go on through the reload; every one is answered. Bounded: 400 x ~25 ms. */
    for (i = 1; i <= 400 && swapped < 0; i++) {
        cr_assert_eq(request_fresh(i, now, sizeof(now)), 200, "request %d during the reload", i);
        if (strcmp(now, fresh) == 0)
            swapped = i;
        else
            cr_assert_str_eq(now, first, "request %d saw an unknown certificate", i);
        usleep(25000);
    }
    cr_assert_geq(swapped, 0, "the new certificate was never served");
    cr_assert_eq(bgt_conn_read(&held, &r, 0, 10000), 0, "the request in flight was dropped");
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    bgt_conn_close(&held);
    for (i = 0; i < 5; i++) {
        cr_assert_eq(request_fresh(1000 + i, now, sizeof(now)), 200);
        cr_assert_str_eq(now, fresh, "a connection after the swap saw the old certificate");
    }
}

Test(gateway_tls, reload_with_a_broken_certificate_keeps_serving)
{
    char serial[128], before[128];
    FILE *f;

    cr_assert_eq(request_fresh(0, before, sizeof(before)), 200);
    f = fopen(certs.server_crt, "w");
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    cr_assert_eq(bgt_gw_signal(&fix.g, SIGHUP), 0);
    cr_assert_eq(bgt_gw_wait_log(&fix.g, "keeping the running configuration", 1, 10000), 0);
    cr_assert_gt(bgt_gw_log_count(&fix.g, "[tls] certificate"), 0);
    cr_assert_eq(request_fresh(1, serial, sizeof(serial)), 200);
    cr_assert_str_eq(serial, before);
}
