/* tls_certs.c: make test certificates with the openssl tool and start a TLS-enabled valkey-server.
 */
#include "tls_certs.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run argv in dir with its output in dir/openssl.log; 0 when it exits 0. */
static int run_in(const char *dir, const char *const *argv)
{
    char log[320];
    int status;
    pid_t pid;

    snprintf(log, sizeof(log), "%s/openssl.log", dir);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0 || chdir(dir) != 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int make_ca(const char *dir, const char *name, const char *cn)
{
    char key[64], crt[64], subj[128];
    const char *argv[] = {
        "openssl", "req",     "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",  "-keyout", key,     "-out",    crt,  "-days",    "2",
        "-subj",   subj,      NULL};

    snprintf(key, sizeof(key), "%s.key", name);
    snprintf(crt, sizeof(crt), "%s.crt", name);
    snprintf(subj, sizeof(subj), "/CN=%s", cn);
    return run_in(dir, argv);
}

static int make_server(const char *dir)
{
    const char *csr[] = {"openssl",
                         "req",
                         "-new",
                         "-newkey",
                         "ec",
                         "-pkeyopt",
                         "ec_paramgen_curve:prime256v1",
                         "-nodes",
                         "-keyout",
                         "server.key",
                         "-out",
                         "server.csr",
                         "-subj",
                         "/CN=localhost",
                         NULL};
    const char *sign[] = {"openssl", "x509",       "-req",   "-in",    "server.csr",
                          "-CA",     "ca.crt",     "-CAkey", "ca.key", "-CAcreateserial",
                          "-out",    "server.crt", "-days",  "2",      "-extfile",
                          "san.cnf", NULL};
    char path[320];
    FILE *f;

    snprintf(path, sizeof(path), "%s/san.cnf", dir);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\n", f);
    if (fclose(f) != 0)
        return -1;
    if (run_in(dir, csr) != 0)
        return -1;
    return run_in(dir, sign);
}

/* A client key and certificate NAME.{key,crt} with subject subj, signed by CA (ca or other-ca). */
static int make_client(const char *dir, const char *name, const char *subj, const char *ca)
{
    char key[64], csr[64], crt[64], ca_crt[64], ca_key[64], srl[64];
    const char *req[] = {
        "openssl", "req",     "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",  "-keyout", key,    "-out",    csr,  "-subj",    subj,
        NULL};
    const char *sign[] = {"openssl", "x509",   "-req",  "-in",       csr, "-CA",
                          ca_crt,    "-CAkey", ca_key,  "-CAserial", srl, "-CAcreateserial",
                          "-out",    crt,      "-days", "2",         NULL};

    snprintf(key, sizeof(key), "%s.key", name);
    snprintf(csr, sizeof(csr), "%s.csr", name);
    snprintf(crt, sizeof(crt), "%s.crt", name);
    snprintf(ca_crt, sizeof(ca_crt), "%s.crt", ca);
    snprintf(ca_key, sizeof(ca_key), "%s.key", ca);
    snprintf(srl, sizeof(srl), "%s.srl", ca);
    if (run_in(dir, req) != 0)
        return -1;
    return run_in(dir, sign);
}

int bgt_tls_make_clients(bgt_tls_certs *t)
{
    snprintf(t->client_crt, sizeof(t->client_crt), "%s/client.crt", t->dir);
    snprintf(t->client_key, sizeof(t->client_key), "%s/client.key", t->dir);
    snprintf(t->stranger_crt, sizeof(t->stranger_crt), "%s/stranger.crt", t->dir);
    snprintf(t->stranger_key, sizeof(t->stranger_key), "%s/stranger.key", t->dir);
    if (make_client(t->dir, "client", "/O=busgate tests/CN=test client", "ca") != 0)
        return -1;
    return make_client(t->dir, "stranger", "/CN=stranger", "other-ca");
}

int bgt_tls_reissue_server(bgt_tls_certs *t)
{
    return make_server(t->dir);
}

int bgt_tls_make_certs(bgt_tls_certs *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/busgate-test-tls-XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        t->dir[0] = '\0';
        return -1;
    }
    snprintf(t->ca_crt, sizeof(t->ca_crt), "%s/ca.crt", t->dir);
    snprintf(t->server_crt, sizeof(t->server_crt), "%s/server.crt", t->dir);
    snprintf(t->server_key, sizeof(t->server_key), "%s/server.key", t->dir);
    snprintf(t->other_ca_crt, sizeof(t->other_ca_crt), "%s/other-ca.crt", t->dir);
    if (make_ca(t->dir, "ca", "busgate test CA") != 0 ||
        make_ca(t->dir, "other-ca", "unrelated test CA") != 0 || make_server(t->dir) != 0)
        return -1;
    return 0;
}

void bgt_tls_remove_certs(bgt_tls_certs *t)
{
    const char *argv[] = {"rm", "-rf", t->dir, NULL};

    if (strncmp(t->dir, "/tmp/busgate-test-tls-", 22) != 0)
        return;
    if (run_in("/tmp", argv) != 0) {
        /* a leftover temp dir is harmless */
    }
    t->dir[0] = '\0';
}

int bgt_valkey_start_tls(bgt_valkey *v, const bgt_tls_certs *t, int *tls_port,
                         const char *const *extra)
{
    char port[16];
    const char *args[32] = {
        "--tls-port",         port,          "--tls-cert-file",    t->server_crt,
        "--tls-key-file",     t->server_key, "--tls-ca-cert-file", t->ca_crt,
        "--tls-auth-clients", "no"};
    int n = 10, attempt;

    for (; extra != NULL && *extra != NULL && n < 31; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    /* The TLS port is probed like the plain one and can be taken meanwhile: retry. */
    for (attempt = 0; attempt < 5; attempt++) {
        *tls_port = bgt_free_port();
        snprintf(port, sizeof(port), "%d", *tls_port);
        if (*tls_port > 0 && bgt_valkey_start(v, args) == 0)
            return 0;
        bgt_valkey_stop(v);
    }
    return -1;
}
