/* fuzz_config.c: libFuzzer target for the ini loader (busgated -t and every start read it).
 *
 * Each input is written as the whole ini file into one private temp dir made once per process,
 * then loaded with a roomy, a small and no error buffer, and for services (bus only). Checks:
 * no crash, error text NUL-terminated inside its buffer (each buffer is malloc'ed at its exact
 * size so ASan sees a write past it), a failure always says why, the result does not depend on
 * the buffer, and an accepted file yields a config that keeps the documented rules. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/config/config.h"

#define BIG_ERRLEN 4096
#define SMALL_ERRLEN_MAX 200
#define FD_RESERVE 64 /* config_check.c: descriptors a worker needs besides connections */

static char dir_path[64];
static char ini_path[96];
static int ini_fd = -1;
static bg_config cfg, defaults_once;

static void fuzz_cleanup(void)
{
    if (ini_fd >= 0)
        close(ini_fd);
    unlink(ini_path);
    rmdir(dir_path);
}

/* A path key may name /dev/stdin or /proc/self/fd/0: reading it must not wait on a terminal. */
static void stdin_from_null(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
        abort();
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    stdin_from_null();
    snprintf(dir_path, sizeof(dir_path), "/tmp/fuzz_config.XXXXXX");
    if (mkdtemp(dir_path) == NULL)
        abort();
    /* Relative paths in the ini resolve against this otherwise empty dir: reproducible runs. */
    snprintf(ini_path, sizeof(ini_path), "%s/busgate.ini", dir_path);
    ini_fd = open(ini_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (ini_fd < 0)
        abort();
    atexit(fuzz_cleanup);
    bg_config_defaults(&defaults_once);
    return 0;
}

static void write_ini(const uint8_t *data, size_t size)
{
    size_t done = 0;
    ssize_t n;

    if (ftruncate(ini_fd, 0) != 0)
        abort();
    while (done < size) {
        n = pwrite(ini_fd, data + done, size - done, (off_t)done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
}

static void check_terminated(const char *field, size_t size)
{
    if (memchr(field, '\0', size) == NULL)
        abort();
}

#define CHECK_STR(f) check_terminated((f), sizeof(f))

static void check_strings(const bg_config *c)
{
    CHECK_STR(c->path);
    CHECK_STR(c->gateway.instance_id);
    CHECK_STR(c->gateway.user);
    CHECK_STR(c->gateway.group);
    CHECK_STR(c->gateway.pid_file);
    CHECK_STR(c->gateway.error_log);
    CHECK_STR(c->gateway.access_log);
    CHECK_STR(c->valkey.url);
    CHECK_STR(c->valkey.password_file);
    CHECK_STR(c->valkey.tls_ca_file);
    CHECK_STR(c->valkey.tls_cert_file);
    CHECK_STR(c->valkey.tls_key_file);
    CHECK_STR(c->valkey.tls_server_name);
    CHECK_STR(c->messaging.key_prefix);
    CHECK_STR(c->messaging.control_stream);
    CHECK_STR(c->messaging.request_stream_template);
    CHECK_STR(c->messaging.response_queue_name);
    CHECK_STR(c->messaging.consumer_group);
    CHECK_STR(c->admin.token);
    CHECK_STR(c->admin.token_file);
    CHECK_STR(c->identity.reserved_headers);
    CHECK_STR(c->identity.reserved_prefix);
    CHECK_STR(c->tls.certificate);
    CHECK_STR(c->tls.certificate_key);
    CHECK_STR(c->tls.client_ca);
    CHECK_STR(c->tls.ciphers);
    CHECK_STR(c->tls.ciphersuites);
}

/* The rules docs/configuration.md promises for an accepted file. */
static void check_accepted(const bg_config *c, int bus_only)
{
    const char *hit = strstr(c->messaging.request_stream_template, "{service}");

    check_strings(c);
    if (c->gateway.nlisten < 1 || c->gateway.nlisten > BG_MAX_LISTEN)
        abort();
    for (int i = 0; i < c->gateway.nlisten; i++) {
        CHECK_STR(c->gateway.listen[i].host);
        if (c->gateway.listen[i].port < 1 || c->gateway.listen[i].port > 65535)
            abort();
    }
    if (c->gateway.workers < 1 || c->gateway.workers > 256)
        abort();
    if (hit == NULL)
        abort();
    /* The template holds "{service}" once, and the prefix no brace at all. */
    if (strstr(hit + 1, "{service}") != NULL || strpbrk(c->messaging.key_prefix, "{}") != NULL)
        abort();
    if (c->messaging.heartbeat_expiry_ms <= c->messaging.heartbeat_interval_ms)
        abort();
    if (bus_only)
        return;
    if (c->gateway.open_files < c->gateway.max_connections + FD_RESERVE)
        abort();
    if (c->admin.enabled != (c->admin.token[0] != '\0'))
        abort();
    /* An ssl listener is only accepted with a certificate and its key. */
    for (int i = 0; i < c->gateway.nlisten; i++) {
        if (c->gateway.listen[i].tls &&
            (c->tls.certificate[0] == '\0' || c->tls.certificate_key[0] == '\0'))
            abort();
    }
    if (c->tls.protocols == 0 || (c->tls.protocols & ~(BG_TLS_PROTO_TLS12 | BG_TLS_PROTO_TLS13)))
        abort();
}

/* Loads with an error buffer of exactly errlen bytes; returns the result. */
static int load_with(int bus_only, size_t errlen, int expect_text)
{
    char *errors = errlen ? malloc(errlen) : NULL;
    int rc;

    if (errlen && errors == NULL)
        abort();
    if (errors)
        memset(errors, 'x', errlen); /* no NUL to find unless the loader writes one */
    rc = bus_only ? bg_config_load_bus_only(ini_path, &cfg, errors, errlen)
                  : bg_config_load(ini_path, &cfg, errors, errlen);
    if (errors && memchr(errors, '\0', errlen) == NULL)
        abort();
    if (rc != BG_OK && rc != BG_ERR)
        abort();
    if (errors && rc == BG_OK && errors[0] != '\0')
        abort(); /* an accepted file reports nothing */
    if (errors && expect_text && rc == BG_ERR && errors[0] == '\0')
        abort(); /* every rejection explains itself */
    if (rc == BG_OK)
        check_accepted(&cfg, bus_only);
    free(errors);
    return rc;
}

/* The loader's verdict must not depend on how much room its messages get. */
static void check_loads(const uint8_t *data, size_t size)
{
    size_t small = 1 + (size ? data[size - 1] : 0) % SMALL_ERRLEN_MAX;
    int rc = load_with(0, BIG_ERRLEN, 1);

    if (load_with(0, small, 0) != rc || load_with(0, 0, 0) != rc)
        abort();
    (void)load_with(1, BIG_ERRLEN, 1);
}

/* The unit parsers are public too (the SDK and busgatectl take durations and sizes). */
static void check_units(const uint8_t *data, size_t size)
{
    char text[64];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1, sz;
    int64_t ms;

    memcpy(text, data, n);
    text[n] = '\0';
    if (bg_parse_duration_ms(text, &ms) == BG_OK && ms < 0)
        abort();
    (void)bg_parse_size(text, &sz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_ini(data, size);
    check_loads(data, size);
    check_units(data, size);
    bg_config_defaults(&cfg);
    if (memcmp(&cfg, &defaults_once, sizeof(cfg)) != 0)
        abort(); /* defaults start from a clean slate every time */
    return 0;
}
