/* test_config.c: the ini configuration: every key with its unit, defaults, each kind of bad
 * input reported as file:line with the key, the shipped etc/busgate.ini, and busgated -t. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/config/config.h"
#include "tls_certs.h"

static char tmpdir[64];

static void suite_init(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/bgt-config-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
}

/* The temp dir holds files and at most one level of subdirectories. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) != 0)
            remove_tree(path);
    }
    closedir(d);
    rmdir(dir);
}

static void suite_fini(void)
{
    remove_tree(tmpdir);
}

TestSuite(config, .init = suite_init, .fini = suite_fini);

/* Writes content to tmpdir/name; path receives the full path (512 bytes). */
static void write_file(const char *name, const char *content, size_t len, char *path)
{
    FILE *f;

    snprintf(path, 512, "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(content, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void write_text(const char *name, const char *text, char *path)
{
    write_file(name, text, strlen(text), path);
}

static int load_text(const char *text, bg_config *cfg, char *errors, size_t errlen, char *path)
{
    write_file("test.ini", text, strlen(text), path);
    return bg_config_load(path, cfg, errors, errlen);
}

static void expect_ok(const char *text, bg_config *cfg)
{
    char errors[8192], path[512];

    cr_assert_eq(load_text(text, cfg, errors, sizeof(errors), path), BG_OK,
                 "rejected:\n%s\n--- errors:\n%s", text, errors);
    cr_assert_str_eq(errors, "");
}

/* True when one error line starts with "PATH:LINE: " and holds every needle. */
static int has_error(const char *errors, const char *path, int line, const char *const *needles)
{
    char prefix[600];
    const char *p = errors;

    snprintf(prefix, sizeof(prefix), line ? "%s:%d: " : "%s: ", path, line);
    while (p && *p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p), i;
        char one[2048];

        snprintf(one, sizeof(one), "%.*s", (int)len, p);
        for (i = 0; needles[i] && strstr(one, needles[i]); i++)
            ;
        if (strncmp(one, prefix, strlen(prefix)) == 0 && needles[i] == NULL)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

#define expect_err(text, line, ...)                                                                \
    do {                                                                                           \
        static bg_config cfg_;                                                                     \
        char errors_[16384], path_[512];                                                           \
        const char *const needles_[] = {__VA_ARGS__, NULL};                                        \
        cr_assert_eq(load_text(text, &cfg_, errors_, sizeof(errors_), path_), BG_ERR,              \
                     "accepted:\n%s", text);                                                       \
        cr_assert(has_error(errors_, path_, line, needles_),                                       \
                  "no error on line %d with '%s' for:\n%s\n--- errors:\n%s", line, needles_[0],    \
                  text, errors_);                                                                  \
    } while (0)

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(config, defaults_match_guide_table)
{
    static bg_config cfg;

    bg_config_defaults(&cfg);
    cr_assert_str_eq(cfg.messaging.request_stream_template, "router:requests:{service}");
    cr_assert_str_eq(cfg.messaging.response_queue_name, "router:responses");
    cr_assert_str_eq(cfg.messaging.consumer_group, "router-gateway");
    cr_assert_eq(cfg.gateway.request_timeout_ms, 30000);
    cr_assert_eq(cfg.messaging.lease_duration_ms, 5 * 60 * 1000);
    cr_assert_eq(cfg.messaging.batch_size, 10);
    cr_assert_eq(cfg.messaging.heartbeat_interval_ms, 10000);
}

Test(config, other_defaults)
{
    static bg_config cfg;
    char host[64] = "";

    bg_config_defaults(&cfg);
    gethostname(host, sizeof(host) - 1);
    cr_assert_str_eq(cfg.gateway.instance_id, host[0] ? host : "busgate");
    cr_assert_eq(cfg.gateway.nlisten, 1);
    cr_assert_str_eq(cfg.gateway.listen[0].host, "0.0.0.0");
    cr_assert_eq(cfg.gateway.listen[0].port, 8080);
    cr_assert_eq(cfg.gateway.workers_auto, 1);
    cr_assert_eq(cfg.gateway.workers, (int)sysconf(_SC_NPROCESSORS_ONLN));
    cr_assert_str_eq(cfg.gateway.user, "");
    cr_assert_str_eq(cfg.gateway.pid_file, "");
    cr_assert_str_eq(cfg.gateway.error_log, "stderr");
    cr_assert_str_eq(cfg.gateway.access_log, "");
    cr_assert_eq(cfg.gateway.log_level, BG_LOG_NOTICE);
    cr_assert_eq(cfg.gateway.keepalive_timeout_ms, 75000);
    cr_assert_eq(cfg.gateway.drain_timeout_ms, 30000);
    cr_assert_eq(cfg.gateway.header_timeout_ms, 10000);
    cr_assert_eq(cfg.gateway.body_timeout_ms, 60000);
    cr_assert_eq(cfg.gateway.max_request_body, 1024 * 1024);
    cr_assert_eq(cfg.gateway.max_header_size, 16 * 1024);
    cr_assert_eq(cfg.gateway.max_connections, 4096);
    cr_assert_eq(cfg.gateway.open_files, 8192);
    cr_assert_str_eq(cfg.valkey.url, "valkey://127.0.0.1:6379");
    cr_assert_str_eq(cfg.valkey.addr.host, "127.0.0.1");
    cr_assert_eq(cfg.valkey.addr.port, 6379);
    cr_assert_eq(cfg.valkey.connect_timeout_ms, 2000);
    cr_assert_eq(cfg.valkey.command_timeout_ms, 5000);
    cr_assert_eq(cfg.valkey.tls_verify, 1);
    cr_assert_eq(cfg.valkey.max_inflight, 1024);
    cr_assert_str_eq(cfg.messaging.key_prefix, "router");
    cr_assert_str_eq(cfg.messaging.control_stream, "router:control");
    cr_assert_eq(cfg.messaging.max_deliveries, 5);
    cr_assert_eq(cfg.messaging.heartbeat_expiry_ms, 30000);
    cr_assert_eq(cfg.messaging.connection_remove_ms, 120000);
    cr_assert_eq(cfg.messaging.stream_maxlen, 100000);
    cr_assert_eq(cfg.admin.enabled, 0);
    cr_assert_eq(cfg.sandbox.seccomp, 1);
    cr_assert_eq(cfg.routing.max_services, 256);
    cr_assert_eq(cfg.routing.max_connections, 1024);
    cr_assert_eq(cfg.routing.max_endpoints, 16384);
    cr_assert_str_eq(cfg.identity.reserved_headers,
                     "X-User-Id, X-User-Roles, X-User-Claims, X-Authenticated-User, "
                     "X-Forwarded-User");
    cr_assert_str_eq(cfg.identity.reserved_prefix, "X-Gateway-");
    cr_assert_eq(cfg.backpressure.backlog_max, 0, "backpressure is off by default");
    cr_assert_eq(cfg.backpressure.backlog_max_age_ms, 0);
    cr_assert_eq(cfg.breaker.failures, 0, "the breaker is off by default");
    cr_assert_eq(cfg.breaker.window_ms, 10000);
    cr_assert_eq(cfg.breaker.cooldown_ms, 5000);
    cr_assert_eq(cfg.breaker.probes, 1);
}

Test(config, empty_file_gives_defaults)
{
    static bg_config cfg, def;

    expect_ok("; nothing set\n", &cfg);
    bg_config_defaults(&def);
    memcpy(def.path, cfg.path, sizeof(def.path));
    cr_assert_eq(memcmp(&cfg, &def, sizeof(cfg)), 0);
}

static const char full_ini[] = "[gateway]\n"
                               "instance_id = gw-test.1\n"
                               "listen = 127.0.0.1:8081\n"
                               "listen = [::1]:8082\n"
                               "listen = :8083\n"
                               "listen = *:8084\n"
                               "workers = 3\n"
                               "user = nobody\n"
                               "group = nogroup\n"
                               "pid_file = run/busgated.pid\n"
                               "error_log = /var/log/busgate/error.log\n"
                               "access_log = stderr\n"
                               "log_level = debug\n"
                               "request_timeout = 250ms\n"
                               "keepalive_timeout = 0\n"
                               "drain_timeout = 2m\n"
                               "header_timeout = 5\n"
                               "body_timeout = 1h\n"
                               "max_request_body = 512k\n"
                               "max_header_size = 32K\n"
                               "max_connections = 1000\n"
                               "open_files = 2048\n"
                               "[valkey]\n"
                               "url = valkeys://gw:urlpass@valkey.internal:6390/2\n"
                               "password_file = valkey.pw\n"
                               "connect_timeout = 1500ms\n"
                               "command_timeout = 3s\n"
                               "tls_ca_file = ca.pem\n"
                               "tls_cert_file = client.pem\n"
                               "tls_key_file = client.key\n"
                               "tls_server_name = valkey.internal\n"
                               "tls_verify = off\n"
                               "max_inflight = 64\n"
                               "[messaging]\n"
                               "key_prefix = app\n"
                               "control_stream = app:ctl\n"
                               "request_stream_template = app:req:{service}\n"
                               "response_queue_name = app:resp\n"
                               "consumer_group = app-gw\n"
                               "lease_duration = 90s\n"
                               "max_deliveries = 3\n"
                               "batch_size = 50\n"
                               "heartbeat_interval = 2s\n"
                               "heartbeat_expiry = 7s\n"
                               "connection_remove_after = 1h\n"
                               "stream_maxlen = 5000\n"
                               "[admin]\n"
                               "token_file = admin.token\n"
                               "[sandbox]\n"
                               "seccomp = off\n"
                               "[routing]\n"
                               "max_services = 10\n"
                               "max_connections = 20\n"
                               "max_endpoints = 30\n"
                               "[identity]\n"
                               "reserved_headers = X-A,  X-B ,X-C\n"
                               "reserved_prefix = X-Mine-\n";

static void write_side_files(void)
{
    char path[512];

    write_text("valkey.pw", "  file-pass\n", path);
    write_text("admin.token", "0123456789abcdef-token\r\n", path);
    write_text("ca.pem", "ca", path);
    write_text("client.pem", "cert", path);
    write_text("client.key", "key", path);
}

static void assert_gateway_keys(const bg_config *cfg)
{
    char want[600];

    cr_assert_str_eq(cfg->gateway.instance_id, "gw-test.1");
    cr_assert_eq(cfg->gateway.nlisten, 4);
    cr_assert_str_eq(cfg->gateway.listen[0].host, "127.0.0.1");
    cr_assert_eq(cfg->gateway.listen[0].port, 8081);
    cr_assert_str_eq(cfg->gateway.listen[1].host, "::1");
    cr_assert_eq(cfg->gateway.listen[1].port, 8082);
    cr_assert_str_eq(cfg->gateway.listen[2].host, "0.0.0.0");
    cr_assert_eq(cfg->gateway.listen[2].port, 8083);
    cr_assert_str_eq(cfg->gateway.listen[3].host, "0.0.0.0");
    cr_assert_eq(cfg->gateway.listen[3].port, 8084);
    cr_assert_eq(cfg->gateway.workers, 3);
    cr_assert_eq(cfg->gateway.workers_auto, 0);
    cr_assert_str_eq(cfg->gateway.user, "nobody");
    cr_assert_str_eq(cfg->gateway.group, "nogroup");
    snprintf(want, sizeof(want), "%s/run/busgated.pid", tmpdir);
    cr_assert_str_eq(cfg->gateway.pid_file, want, "relative path from the file's directory");
    cr_assert_str_eq(cfg->gateway.error_log, "/var/log/busgate/error.log");
    cr_assert_str_eq(cfg->gateway.access_log, "stderr");
    cr_assert_eq(cfg->gateway.log_level, BG_LOG_DEBUG);
    cr_assert_eq(cfg->gateway.request_timeout_ms, 250);
    cr_assert_eq(cfg->gateway.keepalive_timeout_ms, 0);
    cr_assert_eq(cfg->gateway.drain_timeout_ms, 120000);
    cr_assert_eq(cfg->gateway.header_timeout_ms, 5000, "a bare number is seconds");
    cr_assert_eq(cfg->gateway.body_timeout_ms, 3600000);
    cr_assert_eq(cfg->gateway.max_request_body, 512 * 1024);
    cr_assert_eq(cfg->gateway.max_header_size, 32 * 1024);
    cr_assert_eq(cfg->gateway.max_connections, 1000);
    cr_assert_eq(cfg->gateway.open_files, 2048);
}

static void assert_valkey_keys(const bg_config *cfg)
{
    char want[600];

    cr_assert_str_eq(cfg->valkey.url, "valkeys://gw:urlpass@valkey.internal:6390/2");
    cr_assert_eq(cfg->valkey.addr.tls, 1);
    cr_assert_str_eq(cfg->valkey.addr.host, "valkey.internal");
    cr_assert_eq(cfg->valkey.addr.port, 6390);
    cr_assert_eq(cfg->valkey.addr.db, 2);
    cr_assert_str_eq(cfg->valkey.addr.user, "gw");
    cr_assert_str_eq(cfg->valkey.addr.password, "file-pass", "password_file overrides the url");
    snprintf(want, sizeof(want), "%s/valkey.pw", tmpdir);
    cr_assert_str_eq(cfg->valkey.password_file, want);
    cr_assert_eq(cfg->valkey.connect_timeout_ms, 1500);
    cr_assert_eq(cfg->valkey.command_timeout_ms, 3000);
    snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
    cr_assert_str_eq(cfg->valkey.tls_ca_file, want);
    snprintf(want, sizeof(want), "%s/client.pem", tmpdir);
    cr_assert_str_eq(cfg->valkey.tls_cert_file, want);
    snprintf(want, sizeof(want), "%s/client.key", tmpdir);
    cr_assert_str_eq(cfg->valkey.tls_key_file, want);
    cr_assert_str_eq(cfg->valkey.tls_server_name, "valkey.internal");
    cr_assert_eq(cfg->valkey.tls_verify, 0);
    cr_assert_eq(cfg->valkey.max_inflight, 64);
}

static void assert_other_keys(const bg_config *cfg)
{
    cr_assert_str_eq(cfg->messaging.key_prefix, "app");
    cr_assert_str_eq(cfg->messaging.control_stream, "app:ctl");
    cr_assert_str_eq(cfg->messaging.request_stream_template, "app:req:{service}");
    cr_assert_str_eq(cfg->messaging.response_queue_name, "app:resp");
    cr_assert_str_eq(cfg->messaging.consumer_group, "app-gw");
    cr_assert_eq(cfg->messaging.lease_duration_ms, 90000);
    cr_assert_eq(cfg->messaging.max_deliveries, 3);
    cr_assert_eq(cfg->messaging.batch_size, 50);
    cr_assert_eq(cfg->messaging.heartbeat_interval_ms, 2000);
    cr_assert_eq(cfg->messaging.heartbeat_expiry_ms, 7000);
    cr_assert_eq(cfg->messaging.connection_remove_ms, 3600000);
    cr_assert_eq(cfg->messaging.stream_maxlen, 5000);
    cr_assert_str_eq(cfg->admin.token, "0123456789abcdef-token", "token file content trimmed");
    cr_assert_eq(cfg->admin.enabled, 1);
    cr_assert_eq(cfg->sandbox.seccomp, 0);
    cr_assert_eq(cfg->routing.max_services, 10);
    cr_assert_eq(cfg->routing.max_connections, 20);
    cr_assert_eq(cfg->routing.max_endpoints, 30);
    cr_assert_str_eq(cfg->identity.reserved_headers, "X-A, X-B, X-C");
    cr_assert_str_eq(cfg->identity.reserved_prefix, "X-Mine-");
}

Test(config, every_key_parsed_with_its_unit)
{
    static bg_config cfg;
    char path[512];

    write_side_files();
    expect_ok(full_ini, &cfg);
    snprintf(path, sizeof(path), "%s/test.ini", tmpdir);
    cr_assert_str_eq(cfg.path, path);
    assert_gateway_keys(&cfg);
    assert_valkey_keys(&cfg);
    assert_other_keys(&cfg);
}

Test(config, inline_token_workers_auto_and_unix_url)
{
    static bg_config cfg;

    expect_ok("[gateway]\nworkers = auto\npid_file = off\n[admin]\ntoken = abcdefghijklmnop\n"
              "[valkey]\nurl = unix:///run/valkey.sock?db=3\n",
              &cfg);
    cr_assert_eq(cfg.gateway.workers_auto, 1);
    cr_assert_eq(cfg.gateway.workers, (int)sysconf(_SC_NPROCESSORS_ONLN));
    cr_assert_str_eq(cfg.gateway.pid_file, "");
    cr_assert_str_eq(cfg.admin.token, "abcdefghijklmnop");
    cr_assert_eq(cfg.admin.enabled, 1);
    cr_assert_eq(cfg.valkey.addr.is_unix, 1);
    cr_assert_str_eq(cfg.valkey.addr.unix_path, "/run/valkey.sock");
    cr_assert_eq(cfg.valkey.addr.db, 3);
}

Test(config, duration_units)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"0", 0},        {"250ms", 250}, {"30s", 30000}, {"5m", 300000},
              {"1h", 3600000}, {"7", 7000},    {"0ms", 0},     {"100000h", 360000000000LL}};
    static const char *const bad[] = {"",
                                      "s",
                                      "-1s",
                                      "1.5s",
                                      "30 s",
                                      "30S",
                                      "5min",
                                      "1d",
                                      "12k",
                                      "ms5",
                                      "99999999999999999999",
                                      "9223372036854775807h"};
    int64_t v;
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_assert_eq(bg_parse_duration_ms(ok[i].s, &v), BG_OK, "'%s' rejected", ok[i].s);
        cr_assert_eq(v, ok[i].ms, "'%s' = %lld", ok[i].s, (long long)v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(bg_parse_duration_ms(bad[i], &v), BG_ERR, "'%s' accepted", bad[i]);
}

Test(config, size_units)
{
    static const struct {
        const char *s;
        size_t n;
    } ok[] = {{"0", 0},           {"512", 512},    {"512k", 512 * 1024},
              {"16K", 16384},     {"1m", 1048576}, {"2MB", 2097152},
              {"1g", 1073741824}, {"3kb", 3072},   {"1Gb", 1073741824}};
    static const char *const bad[] = {
        "", "k", "-1", "1.5m", "1 m", "1t", "5s", "1mbb", "99999999999999999999", "17179869184g"};
    size_t v, i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_assert_eq(bg_parse_size(ok[i].s, &v), BG_OK, "'%s' rejected", ok[i].s);
        cr_assert_eq(v, ok[i].n, "'%s' = %zu", ok[i].s, v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(bg_parse_size(bad[i], &v), BG_ERR, "'%s' accepted", bad[i]);
}

Test(config, rejects_unknown_section)
{
    expect_err("[gateway]\nworkers = 2\n[gatway]\nworkers = 3\n", 3, "[gatway]", "unknown section",
               "allowed: gateway, valkey");
}

Test(config, rejects_unknown_key)
{
    expect_err("[gateway]\n\nworkerz = 2\n", 3, "[gateway] workerz = '2'", "unknown key",
               "allowed: instance_id, listen");
}

Test(config, rejects_missing_value)
{
    expect_err("[gateway]\nrequest_timeout =\n", 2, "request_timeout = ''", "missing value");
    expect_err("[valkey]\nurl = \"\"\n", 2, "url", "missing value");
}

Test(config, rejects_out_of_range)
{
    expect_err("[messaging]\nbatch_size = 0\n", 2, "batch_size = '0'", "out of range",
               "allowed: an integer 1..10000");
    expect_err("[gateway]\nrequest_timeout = 2h\n", 2, "request_timeout = '2h'", "out of range",
               "10ms..1h");
    expect_err("[gateway]\nmax_header_size = 512\n", 2, "max_header_size = '512'", "out of range",
               "1k..1m");
    expect_err("[gateway]\nworkers = 257\n", 2, "workers = '257'", "auto or 1..256");
    expect_err("[messaging]\nstream_maxlen = 10\n", 2, "stream_maxlen = '10'", "out of range");
    expect_err("[gateway]\nmax_connections = -5\n", 2, "max_connections = '-5'", "out of range");
}

Test(config, rejects_wrong_unit)
{
    expect_err("[gateway]\nrequest_timeout = 30 sec\n", 2, "request_timeout = '30 sec'",
               "unknown unit ' sec'", "unit ms, s, m or h");
    expect_err("[gateway]\nmax_request_body = 1h\n", 2, "max_request_body = '1h'",
               "unknown unit 'h'", "unit k, m or g");
    expect_err("[messaging]\nlease_duration = five\n", 2, "lease_duration = 'five'",
               "not a number");
    expect_err("[messaging]\nbatch_size = 10k\n", 2, "batch_size = '10k'", "not an integer");
}

Test(config, rejects_template_without_service)
{
    expect_err("[messaging]\nrequest_stream_template = router:requests:service\n", 2,
               "request_stream_template = 'router:requests:service'", "does not contain {service}");
    expect_err("[messaging]\nrequest_stream_template = q:{service}:{service}\n", 2,
               "request_stream_template", "more than once");
}

Test(config, rejects_malformed_url)
{
    expect_err("[valkey]\nurl = http://valkey:6379\n", 2, "url = 'http://valkey:6379'",
               "unknown scheme 'http'", "allowed: valkey://");
    expect_err("[valkey]\nurl = valkey://host:70000\n", 2, "url", "port '70000'");
}

Test(config, rejects_listen_without_port)
{
    expect_err("[gateway]\nlisten = 10.0.0.1\n", 2, "listen = '10.0.0.1'", "missing port");
    expect_err("[gateway]\nlisten = [::1]\n", 2, "listen = '[::1]'", "missing port");
    expect_err("[gateway]\nlisten = ::1:80\n", 2, "listen", "needs brackets");
    expect_err("[gateway]\nlisten = :0\n", 2, "listen = ':0'", "not 1..65535");
    expect_err("[gateway]\nlisten = :80\nlisten = 0.0.0.0:80\n", 3, "listen", "listed twice");
}

Test(config, rejects_more_than_16_listen)
{
    char text[2048] = "[gateway]\n";
    int i;

    for (i = 0; i < BG_MAX_LISTEN + 1; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "listen = :%d\n", 8000 + i);
    expect_err(text, BG_MAX_LISTEN + 2, "listen = ':8016'", "too many listen addresses");
}

Test(config, rejects_tls_keys_on_plain_url)
{
    char path[512];

    write_text("ca.pem", "ca", path);
    expect_err("[valkey]\nurl = valkey://h\ntls_ca_file = ca.pem\n", 3, "tls_ca_file", "ca.pem",
               "not a TLS URL", "valkeys://");
    expect_err("[valkey]\ntls_verify = off\n", 2, "tls_verify = 'off'", "not a TLS URL");
    expect_err("[valkey]\nurl = rediss://h\ntls_cert_file = ca.pem\n", 3, "tls_cert_file",
               "set without tls_key_file");
    expect_err("[valkey]\nurl = rediss://h\ntls_ca_file = missing.pem\n", 3, "tls_ca_file",
               "missing.pem", "cannot read");
}

Test(config, rejects_unreadable_secret_files)
{
    char path[512];

    expect_err("[admin]\ntoken_file = /nonexistent/admin.token\n", 2,
               "token_file = '/nonexistent/admin.token'", "cannot open");
    expect_err("[valkey]\npassword_file = nope.pw\n", 2, "password_file", "nope.pw", "cannot open");
    write_text("empty.pw", "\n", path);
    expect_err("[valkey]\npassword_file = empty.pw\n", 2, "password_file", "file is empty");
    write_text("short.token", "short\n", path);
    expect_err("[admin]\ntoken_file = short.token\n", 2, "token_file", "16..255");
    write_text("two.token", "0123456789abcdefgh\nsecond line\n", path);
    expect_err("[admin]\ntoken_file = two.token\n", 2, "token_file", "not one line");
}

Test(config, rejects_cross_field_rules)
{
    expect_err("[messaging]\nheartbeat_interval = 10s\nheartbeat_expiry = 10s\n", 3,
               "heartbeat_expiry = '10s'", "must be longer than heartbeat_interval");
    expect_err("[messaging]\nheartbeat_interval = 1m\n", 2, "heartbeat_expiry = '30s'",
               "more than heartbeat_interval = 1m");
    expect_err("[gateway]\nmax_connections = 8192\n", 2, "open_files = '8192'",
               "too low for max_connections");
    expect_err("[admin]\ntoken = abcdefghijklmnopq\ntoken_file = /etc/hostname\n", 3, "token_file",
               "token or token_file, not both");
}

Test(config, rejects_bad_syntax)
{
    expect_err("[gateway]\nthis is not a key line\n", 2, "not a 'key = value' line");
    expect_err("[gateway\nworkers = 2\n", 1, "section header without ']'");
    expect_err("workers = 2\n[gateway]\n", 1, "outside of any [section]");
    expect_err("[gateway]\n= 2\n", 2, "missing key name");
    expect_err("[gateway] extra\n", 1, "text after the section header");
}

Test(config, rejects_other_bad_values)
{
    expect_err("[gateway]\nworkers = 2\nworkers = 3\n", 3, "workers = '3'",
               "duplicate key, first set on line 2");
    expect_err("[sandbox]\nseccomp = maybe\n", 2, "seccomp = 'maybe'", "not a boolean",
               "on or off");
    expect_err("[gateway]\nlog_level = loud\n", 2, "log_level = 'loud'", "unknown log level",
               "debug, info, notice");
    expect_err("[gateway]\ninstance_id = gw 1\n", 2, "instance_id", "character");
    expect_err("[admin]\ntoken = short\n", 2, "token = '***'", "out of range");
    expect_err("[identity]\nreserved_headers = X-A, X B\n", 2, "reserved_headers",
               "'X B' is not a header name");
    expect_err("[identity]\nreserved_headers = X-A,,X-B\n", 2, "reserved_headers",
               "is not a header name");
    expect_err("[identity]\nreserved_prefix = X:\n", 2, "reserved_prefix", "not a header name");
}

Test(config, nul_byte_line_rejected)
{
    static bg_config cfg;
    static const char text[] = "[gateway]\nworkers = 2\0x\n";
    char errors[4096], path[512], want[600];

    write_file("nul.ini", text, sizeof(text) - 1, path);
    cr_assert_eq(bg_config_load(path, &cfg, errors, sizeof(errors)), BG_ERR);
    snprintf(want, sizeof(want), "%s:2: line contains a NUL byte", path);
    cr_assert(strstr(errors, want) != NULL, "%s", errors);
}

Test(config, every_error_is_reported)
{
    static bg_config cfg;
    char errors[8192], path[512];
    const char *text = "[gateway]\nworkers = many\nbogus = 1\nrequest_timeout = 1x\n"
                       "[valkey]\nurl = nope\n[messaging]\nbatch_size = 0\n";

    cr_assert_eq(load_text(text, &cfg, errors, sizeof(errors), path), BG_ERR);
    cr_assert_eq(count_lines(errors), 5, "errors:\n%s", errors);
    cr_assert_eq(cfg.gateway.request_timeout_ms, 30000, "a bad value leaves the default");
}

Test(config, missing_file_named_in_error)
{
    static bg_config cfg;
    char errors[1024], want[600];

    snprintf(want, sizeof(want), "%s/none.ini: cannot open: No such file or directory", tmpdir);
    snprintf(want + 300, 300, "%s/none.ini", tmpdir);
    cr_assert_eq(bg_config_load(want + 300, &cfg, errors, sizeof(errors)), BG_ERR);
    cr_assert(strstr(errors, want) != NULL, "%s", errors);
}

Test(config, secrets_not_echoed)
{
    static bg_config cfg;
    char errors[4096], path[512];

    cr_assert_eq(load_text("[valkey]\nurl = valkey://u:TopSecret1@host:0\n[admin]\n"
                           "token = SecretTok\n",
                           &cfg, errors, sizeof(errors), path),
                 BG_ERR);
    cr_assert(strstr(errors, "valkey://u:***@host:0") != NULL, "%s", errors);
    cr_assert_null(strstr(errors, "TopSecret1"), "%s", errors);
    cr_assert_null(strstr(errors, "SecretTok"), "%s", errors);
}

Test(config, syntax_niceties)
{
    static bg_config cfg;
    /* BOM, CRLF, comments, quotes, ':' delimiter, case-insensitive names, indentation. */
    const char *text = "\xEF\xBB\xBF; comment\r\n# other comment\r\n[GateWay]\r\n"
                       "  Workers = 5 ; inline comment\r\n"
                       "instance_id: \"gw-9\"\r\n\t  log_level = warn\r\n"
                       "[valkey]\nurl = valkey://[::1]:7000/1\n";

    expect_ok(text, &cfg);
    cr_assert_eq(cfg.gateway.workers, 5);
    cr_assert_str_eq(cfg.gateway.instance_id, "gw-9");
    cr_assert_eq(cfg.gateway.log_level, BG_LOG_WARN,
                 "an indented line is a key, not a "
                 "continuation");
    cr_assert_str_eq(cfg.valkey.addr.host, "::1");
    cr_assert_eq(cfg.valkey.addr.port, 7000);
    cr_assert_eq(cfg.valkey.addr.db, 1);
}

Test(config, long_values_kept_whole)
{
    static bg_config cfg;
    char text[4096], dir[1500], errors[4096], path[512];
    size_t i;

    for (i = 0; i < 1000; i += 10)
        memcpy(dir + i, "/abcdefghi", 10);
    dir[1000] = '\0';
    snprintf(text, sizeof(text),
             "[gateway]\npid_file = %s/busgated.pid ; trailing comment\n"
             "workers = 2\n[valkey]\nurl = valkey://%.200s@h:6390\n",
             dir, dir + 1);
    cr_assert_eq(load_text(text, &cfg, errors, sizeof(errors), path), BG_OK, "%s", errors);
    cr_assert_eq(strlen(cfg.gateway.pid_file), 1000 + strlen("/busgated.pid"));
    cr_assert_eq(strncmp(cfg.gateway.pid_file, dir, 1000), 0);
    cr_assert_eq(cfg.gateway.workers, 2, "the line after a long one is still read");
    cr_assert_eq(strlen(cfg.valkey.addr.password), 200);
    cr_assert_eq(cfg.valkey.addr.port, 6390);
}

Test(config, key_prefix_moves_default_names)
{
    static bg_config cfg;

    expect_ok("[messaging]\nkey_prefix = shop\ncontrol_stream = ctl\n", &cfg);
    cr_assert_str_eq(cfg.messaging.key_prefix, "shop");
    cr_assert_str_eq(cfg.messaging.control_stream, "ctl", "an explicit name is kept");
    cr_assert_str_eq(cfg.messaging.request_stream_template, "shop:requests:{service}");
    cr_assert_str_eq(cfg.messaging.response_queue_name, "shop:responses");
    cr_assert_str_eq(cfg.messaging.consumer_group, "router-gateway");
}

Test(config, key_prefix_with_braces_is_refused)
{
    /* A brace would make its own hash tag and break one-slot-per-service. */
    expect_err("[messaging]\nkey_prefix = {service}\n", 2, "key_prefix", "braces");
    expect_err("[messaging]\nkey_prefix = app{x}\n", 2, "key_prefix", "braces");
}

Test(config, bus_only_reads_bus_sections)
{
    static bg_config cfg;
    char errors[4096], path[512];

    write_text("svc.ini",
               "[gateway]\nworkers = 3\n[service]\nanything = goes\n[valkey]\n"
               "url = valkey://bus:6400\n[messaging]\nbatch_size = 20\n",
               path);
    cr_assert_eq(bg_config_load_bus_only(path, &cfg, errors, sizeof(errors)), BG_OK, "%s", errors);
    cr_assert_eq(cfg.gateway.workers_auto, 1, "[gateway] is not read");
    cr_assert_str_eq(cfg.valkey.addr.host, "bus");
    cr_assert_eq(cfg.valkey.addr.port, 6400);
    cr_assert_eq(cfg.messaging.batch_size, 20);
    write_text("svc2.ini", "[service]\nx = 1\n[messaging]\nbatch_sise = 20\n", path);
    cr_assert_eq(bg_config_load_bus_only(path, &cfg, errors, sizeof(errors)), BG_ERR);
    cr_assert(strstr(errors, ":4: [messaging] batch_sise = '20': unknown key") != NULL, "%s",
              errors);
}

Test(config, small_error_buffer_is_not_overrun)
{
    static bg_config cfg;
    char text[4096] = "[gateway]\n", errors[300], path[512];
    int i;

    for (i = 0; i < 40; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "bad%d = %d\n", i, i);
    memset(errors, 'Z', sizeof(errors));
    cr_assert_eq(load_text(text, &cfg, errors, sizeof(errors) - 10, path), BG_ERR);
    cr_assert(memchr(errors, '\0', sizeof(errors) - 10) != NULL);
    cr_assert_eq(errors[sizeof(errors) - 1], 'Z', "wrote past errlen");
    cr_assert(strstr(errors, "more errors not shown") != NULL, "%s", errors);
}

Test(config, shipped_ini_loads_cleanly)
{
    static bg_config cfg;
    char errors[8192];

    cr_assert_eq(access("etc/busgate.ini", R_OK), 0, "run the tests from the repository root");
    cr_assert_eq(bg_config_load("etc/busgate.ini", &cfg, errors, sizeof(errors)), BG_OK, "%s",
                 errors);
    cr_assert_str_eq(errors, "");
    cr_assert_eq(cfg.gateway.nlisten, 1);
    cr_assert_eq(cfg.gateway.listen[0].port, 8080);
}

/* Runs the busgated next to this test binary (BUILD/tests/../busgated) with args; collects
 * stdout and stderr into out and returns the exit status, -1 if it did not exit in 10 s. */
static int run_busgated(const char *const *args, char *out, size_t outlen)
{
    char exe[4096], bin[4200];
    const char *argv[8] = {"busgated"};
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    size_t used = 0, i;
    int fds[2], status = -1;
    pid_t pid;

    cr_assert_gt(n, 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(bin, sizeof(bin), "%s/../busgated", exe);
    cr_assert_eq(access(bin, X_OK), 0, "%s not built (make all first)", bin);
    for (i = 0; args[i] && i < 6; i++)
        argv[i + 1] = args[i];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0 || used + 1 >= outlen)
            break;
        n = read(fds[0], out + used, outlen - used - 1);
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    out[used] = '\0';
    close(fds[0]);
    for (i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
        usleep(10000);
    if (i == 1000) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(config, busgated_t_accepts_shipped_ini)
{
    const char *const args[] = {"-t", "-c", "etc/busgate.ini", NULL};
    char out[8192];
    int rc = run_busgated(args, out, sizeof(out));

    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    cr_assert(strstr(out, "busgated: configuration file etc/busgate.ini test is successful") !=
                  NULL,
              "%s", out);
}

Test(config, busgated_t_rejects_bad_key)
{
    char path[512], out[8192], want[700];
    const char *const args[] = {"-t", "-c", path, NULL};
    int rc;

    write_text("bad.ini", "[gateway]\nworkers = 2\nlisten_on = :80\n", path);
    rc = run_busgated(args, out, sizeof(out));
    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    snprintf(want, sizeof(want), "busgated: %s:3: [gateway] listen_on = ':80': unknown key", path);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    snprintf(want, sizeof(want), "busgated: configuration file %s test failed", path);
    cr_assert(strstr(out, want) != NULL, "%s", out);
}

/* A body above the frame's body limit could never reach a service: refused at load, so a
 * large request gets 413 from the gateway instead of a 503 from a failed XADD. */
Test(config, max_request_body_capped_by_the_frame_body_limit)
{
    static bg_config cfg;
    char path[512], out[8192], want[700];
    const char *const args[] = {"-t", "-c", path, NULL};
    int rc;

    expect_ok("[gateway]\nmax_request_body = 64m\n", &cfg);
    cr_assert_eq(cfg.gateway.max_request_body, 64u << 20);
    expect_err("[gateway]\nmax_request_body = 70m\n", 2, "[gateway] max_request_body = '70m': ",
               "larger than the body of a REQUEST frame on the bus can be", "0..64m");
    expect_err("[gateway]\nmax_request_body = 67108865\n", 2, "max_request_body = '67108865'",
               "REQUEST frame");
    expect_err("[gateway]\nmax_request_body = 1g\n", 2, "max_request_body = '1g'", "REQUEST frame");

    write_text("big.ini", "[gateway]\nworkers = 1\nmax_request_body = 70m\n", path);
    rc = run_busgated(args, out, sizeof(out));
    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    snprintf(want, sizeof(want), "busgated: %s:3: [gateway] max_request_body = '70m': larger",
             path);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    snprintf(want, sizeof(want), "busgated: configuration file %s test failed", path);
    cr_assert(strstr(out, want) != NULL, "%s", out);
}

Test(config, limits_and_breaker_keys)
{
    static bg_config cfg;

    expect_ok("[limits]\nbacklog_max = 500\nbacklog_max_age = 2s\n[breaker]\nfailures = 5\n"
              "window = 30s\ncooldown = 250ms\nprobes = 3\n",
              &cfg);
    cr_assert_eq(cfg.backpressure.backlog_max, 500);
    cr_assert_eq(cfg.backpressure.backlog_max_age_ms, 2000);
    cr_assert_eq(cfg.breaker.failures, 5);
    cr_assert_eq(cfg.breaker.window_ms, 30000);
    cr_assert_eq(cfg.breaker.cooldown_ms, 250);
    cr_assert_eq(cfg.breaker.probes, 3);
    expect_err("[limits]\nbacklog_max = -1\n", 2, "backlog_max = '-1'", "out of range");
    expect_err("[breaker]\nfailures = 1001\n", 2, "failures = '1001'", "out of range");
    expect_err("[breaker]\nprobes = 0\n", 2, "probes = '0'", "out of range");
    expect_err("[breaker]\ncooldown = 10ms\n", 2, "cooldown = '10ms'", "out of range");
}

Test(config, busgated_usage_errors)
{
    const char *const bad[] = {"-x", NULL}, *const extra[] = {"-t", "stray", NULL};
    const char *const help[] = {"-h", NULL}, *const version[] = {"-v", NULL};
    char out[4096];

    cr_assert_eq(run_busgated(bad, out, sizeof(out)), 2);
    cr_assert(strstr(out, "unknown option -x") != NULL, "%s", out);
    cr_assert_eq(run_busgated(extra, out, sizeof(out)), 2);
    cr_assert_eq(run_busgated(help, out, sizeof(out)), 0);
    cr_assert(strstr(out, "Usage: busgated") != NULL, "%s", out);
    cr_assert_eq(run_busgated(version, out, sizeof(out)), 0);
    cr_assert(strstr(out, "busgated ") != NULL, "%s", out);
}

Test(config, idempotency_section)
{
    static bg_config cfg;

    expect_ok("[idempotency]\nmethods = post, PUT\nttl = 2h\nmax_response = 64k\n", &cfg);
    cr_assert_str_eq(cfg.idempotency.methods, "POST PUT");
    expect_ok("[idempotency]\nmethods = POST PUT DELETE\nenabled = off\n", &cfg);
    cr_assert_str_eq(cfg.idempotency.methods, "POST PUT DELETE");
    cr_assert_eq(cfg.idempotency.enabled, 0);
    expect_ok("", &cfg);
    cr_assert_str_eq(cfg.idempotency.methods, "POST PATCH");
    cr_assert_eq(cfg.idempotency.ttl_ms, 24 * 3600 * 1000LL);
    expect_err("[idempotency]\n\nmethods = POST FETCH\n", 3, "[idempotency] methods", "FETCH",
               "is not a method");
    expect_err("[idempotency]\nttl = 0s\n", 2, "[idempotency] ttl");
    expect_err("[idempotency]\nmax_response = 1g\n", 2, "[idempotency] max_response");
}

/* ---- [tls] and ssl listeners ---- */

static bgt_tls_certs tls_files;

static void tls_files_remove(void)
{
    bgt_tls_remove_certs(&tls_files);
}

static void tls_files_make(void)
{
    cr_assert_eq(bgt_tls_make_certs(&tls_files), 0, "openssl could not make certificates");
}

Test(config, tls_listener_and_section_parsed, .fini = tls_files_remove)
{
    static bg_config cfg;
    char text[2048];

    tls_files_make();
    snprintf(text, sizeof(text),
             "[gateway]\nlisten = 127.0.0.1:8443 ssl\nlisten = [::1]:8080\n"
             "[tls]\ncertificate = %s\ncertificate_key = %s\nclient_ca = %s\n"
             "protocols = TLSv1.3\nciphersuites = TLS_AES_256_GCM_SHA384\n",
             tls_files.server_crt, tls_files.server_key, tls_files.ca_crt);
    expect_ok(text, &cfg);
    cr_assert_eq(cfg.gateway.nlisten, 2);
    cr_assert_eq(cfg.gateway.listen[0].tls, 1);
    cr_assert_eq(cfg.gateway.listen[0].port, 8443);
    cr_assert_eq(cfg.gateway.listen[1].tls, 0);
    cr_assert_str_eq(cfg.tls.certificate, tls_files.server_crt);
    cr_assert_eq(cfg.tls.verify_client, BG_TLS_VERIFY_ON, "client_ca alone means required");
    cr_assert_eq(cfg.tls.protocols, BG_TLS_PROTO_TLS13);
    cr_assert_str_eq(cfg.tls.ciphers, BG_TLS_DEFAULT_CIPHERS);
    cr_assert_str_eq(cfg.tls.ciphersuites, "TLS_AES_256_GCM_SHA384");

    expect_ok("[gateway]\nlisten = :80\n", &cfg);
    cr_assert_eq(cfg.tls.protocols, BG_TLS_PROTO_TLS12 | BG_TLS_PROTO_TLS13);
    cr_assert_eq(cfg.tls.verify_client, BG_TLS_VERIFY_OFF);
}

/* "[gateway]\nlisten = :8443 ssl\n[tls]\ncertificate = CRT\ncertificate_key = KEY\n" + more */
static void tls_ini(char *out, size_t len, const char *crt, const char *key, const char *more)
{
    snprintf(out, len,
             "[gateway]\nlisten = :8443 ssl\n[tls]\ncertificate = %s\ncertificate_key = %s\n%s",
             crt, key, more);
}

Test(config, tls_bad_values_name_file_line_and_key, .fini = tls_files_remove)
{
    char text[2048], path[512];
    const char *crt, *key;

    tls_files_make();
    crt = tls_files.server_crt;
    key = tls_files.server_key;
    expect_err("[gateway]\nlisten = :8443 tls\n", 2, "listen = ':8443 tls'",
               "unknown option 'tls'");
    expect_err("[gateway]\nlisten = :8080\nlisten = :8443 ssl\n", 3,
               "[gateway] listen = '0.0.0.0:8443 ssl'",
               "an ssl listener without [tls] certificate and certificate_key");
    tls_ini(text, sizeof(text), "/nonexistent/cert.pem", key, "");
    expect_err(text, 4, "[tls] certificate = '/nonexistent/cert.pem'", "cannot read");
    write_text("junk.pem", "not a certificate\n", path);
    tls_ini(text, sizeof(text), path, key, "");
    expect_err(text, 4, "[tls] certificate", "junk.pem", "not a PEM certificate chain");
    tls_ini(text, sizeof(text), crt, tls_files.other_ca_crt, "");
    expect_err(text, 5, "[tls] certificate_key", "not a PEM private key");
    snprintf(path, sizeof(path), "%s/ca.key", tls_files.dir);
    tls_ini(text, sizeof(text), crt, path, "");
    expect_err(text, 5, "[tls] certificate_key", "does not match the certificate");
    snprintf(text, sizeof(text), "[tls]\ncertificate = %s\n", crt);
    expect_err(text, 2, "[tls] certificate", "set without certificate_key");
    tls_ini(text, sizeof(text), crt, key, "verify_client = on\n");
    expect_err(text, 6, "[tls] verify_client = 'on'", "set without client_ca");
    tls_ini(text, sizeof(text), crt, key, "verify_client = maybe\n");
    expect_err(text, 6, "verify_client = 'maybe'", "unknown mode", "off, optional or on");
    tls_ini(text, sizeof(text), crt, key, "protocols = TLSv1.1 TLSv1.2\n");
    expect_err(text, 6, "[tls] protocols", "'TLSv1.1' is not supported");
    tls_ini(text, sizeof(text), crt, key, "ciphers = NOT-A-CIPHER\n");
    expect_err(text, 6, "[tls] ciphers = 'NOT-A-CIPHER'", "no usable cipher");
    tls_ini(text, sizeof(text), crt, key, "ciphersuites = TLS_NOPE\n");
    expect_err(text, 6, "[tls] ciphersuites = 'TLS_NOPE'", "no usable ciphersuite");
    tls_ini(text, sizeof(text), crt, key, "client_ca = /nonexistent/ca.pem\n");
    expect_err(text, 6, "[tls] client_ca = '/nonexistent/ca.pem'", "cannot read");
}

Test(config, auth_section)
{
    static bg_config cfg;
    char text[2048], key[512];

    write_text("jwks.json", "{\"keys\":[]}", key);
    snprintf(text, sizeof(text),
             "[identity]\nclaim_headers = X-User-Email: email , X-Tenant:tid\n"
             "[auth]\njwks_file = %s\nalgorithm = RS256\nissuer = https://idp\naudience = api\n"
             "leeway = 10s\nmax_token_size = 16k\nrequire = all\nclaim_arrays = roles, groups\n"
             "roles_claim = https://x/roles\nrealm = My API\n",
             key);
    expect_ok(text, &cfg);
    cr_assert(cfg.auth.enabled);
    cr_assert(cfg.auth.require_all);
    cr_assert_eq(cfg.auth.leeway_ms, 10000);
    cr_assert_eq(cfg.auth.max_token_size, 16384);
    cr_assert_str_eq(cfg.auth.claim_arrays, "roles,groups");
    cr_assert_str_eq(cfg.auth.realm, "My API");
    cr_assert_str_eq(cfg.identity.claim_headers, "X-User-Email:email,X-Tenant:tid");

    bg_config_defaults(&cfg);
    cr_assert(!cfg.auth.enabled);
    cr_assert_eq(cfg.auth.leeway_ms, 30000);
    cr_assert_str_eq(cfg.auth.claim_arrays, "roles,permissions");

    expect_err("[auth]\nissuer = x\n", 2, "[auth] issuer", "no key to verify tokens");
    expect_err("[auth]\nleeway = 5s\n", 2, "[auth] leeway = '(set)'", "no key to verify");
    expect_err("[auth]\njwks_file = /nonexistent/jwks\n", 2, "jwks_file", "cannot read");
    expect_err("[auth]\nalgorithm = none\n", 2, "algorithm = 'none'", "unknown algorithm");
    expect_err("[auth]\nrequire = some\n", 2, "require = 'some'", "claims or all");
    expect_err("[auth]\nrealm = a\"b\n", 2, "realm", "not allowed");
    expect_err("[identity]\nclaim_headers = X-Email\n", 2, "claim_headers", "'Header: claim'");
    expect_err("[identity]\nclaim_headers = Bad Name: email\n", 2, "claim_headers",
               "'Header: claim'");
}

Test(config, sentinel_url)
{
    static bg_config cfg;

    expect_ok("[valkey]\nurl = valkeys+sentinel://app:pw@10.0.0.1,10.0.0.2:26380/cache?db=2\n"
              "tls_ca_file = /etc/hostname\n",
              &cfg);
    cr_assert_eq(cfg.valkey.addr.sentinel, 1);
    cr_assert_eq(cfg.valkey.addr.tls, 1, "TLS keys are allowed with valkeys+sentinel://");
    cr_assert_eq(cfg.valkey.addr.nsentinels, 2);
    cr_assert_str_eq(cfg.valkey.addr.master_name, "cache");
    cr_assert_eq(cfg.valkey.addr.db, 2);
    expect_err("[valkey]\nurl = valkey+sentinel://10.0.0.1:26379\n", 2, "url",
               "missing '/master_name'");
    expect_err("[valkey]\nurl = valkey+sentinel://s1/m\ntls_ca_file = /etc/hostname\n", 3,
               "tls_ca_file", "not a TLS URL");
}

Test(config, sentinel_secrets_not_echoed)
{
    static bg_config cfg;
    char errors[4096], path[512];

    cr_assert_eq(load_text("[valkey]\nurl = valkey+sentinel://u:TopSecret1@s1/m?"
                           "sentinel_password=SenSecret2&db=x\n",
                           &cfg, errors, sizeof(errors), path),
                 BG_ERR);
    cr_assert(strstr(errors, "not a number") != NULL, "%s", errors);
    cr_assert_null(strstr(errors, "TopSecret1"), "%s", errors);
    cr_assert_null(strstr(errors, "SenSecret2"), "%s", errors);
    cr_assert(strstr(errors, "sentinel_password=***&db=x") != NULL, "%s", errors);
}
