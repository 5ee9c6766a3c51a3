/* test_bus_conn.c: the blocking bus connection against a private valkey-server: commands,
 * pipelining, concurrency, reconnect, backoff, timeouts, ACL auth and TLS. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "tls_certs.h"
#include "valkey_harness.h"

static bgt_valkey server;

static void server_up(void)
{
    cr_assert_eq(bgt_valkey_start(&server, NULL), 0, "valkey-server did not start");
}

static void server_down(void)
{
    bgt_valkey_stop(&server);
}

static void opts_for_port(bg_bus_opts *o, int port)
{
    bg_bus_opts_init(o);
    snprintf(o->addr.host, sizeof(o->addr.host), "127.0.0.1");
    o->addr.port = port;
}

static bg_bus *connect_or_fail(const bg_bus_opts *o)
{
    char err[BG_ERR_LEN] = "";
    bg_bus *bus = bg_bus_connect(o, err);

    cr_assert_not_null(bus, "connect failed: %s", err);
    return bus;
}

static void expect_status(redisReply *r, const char *err, const char *status)
{
    cr_assert_not_null(r, "command failed: %s", err);
    cr_assert(r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, status);
    freeReplyObject(r);
}

TestSuite(bus_conn, .init = server_up, .fini = server_down, .timeout = 60);

Test(bus_conn, runs_commands_and_returns_error_replies)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;
    bg_bus *bus;
    redisReply *r;

    opts_for_port(&o, server.port);
    bus = connect_or_fail(&o);
    expect_status(bg_bus_command(bus, err, "SET %s %b", "k", "a\0b", (size_t)3), err, "OK");
    r = bg_bus_command(bus, err, "GET k");
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(r->len, 3);
    cr_assert_eq(memcmp(r->str, "a\0b", 3), 0);
    freeReplyObject(r);
    r = bg_bus_command(bus, err, "NOSUCHCOMMAND");
    cr_assert_not_null(r, "an error reply must not become NULL");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    cr_assert_eq(bg_bus_reconnect_count(bus), 0);
    bg_bus_free(bus);
}

Test(bus_conn, selects_db_sets_client_name_and_cloexec)
{
    char err[BG_ERR_LEN] = "", reply[64];
    bg_bus_opts o;
    bg_bus *bus;
    int flags;

    opts_for_port(&o, server.port);
    o.addr.db = 3;
    o.client_name = "busgate-test";
    bus = connect_or_fail(&o);
    expect_status(bg_bus_command(bus, err, "SET only-in-3 x"), err, "OK");
    expect_status(bg_bus_command(bus, err, "CLIENT GETNAME"), err, "busgate-test");
    cr_assert_eq(bgt_valkey_cmd(&server, reply, sizeof(reply), "EXISTS only-in-3"), 0);
    cr_assert_str_eq(reply, ":0", "db 0 must not see a key written in db 3");
    flags = fcntl(bg_bus_context(bus)->fd, F_GETFD);
    cr_assert(flags >= 0 && (flags & FD_CLOEXEC), "socket is not close-on-exec");
    bg_bus_free(bus);
}

Test(bus_conn, pipelines_and_caps_replies_in_flight)
{
    char err[BG_ERR_LEN] = "", val[16];
    bg_bus_opts o;
    bg_bus *bus;
    redisReply *r;
    int i;

    opts_for_port(&o, server.port);
    bus = connect_or_fail(&o);
    for (i = 0; i < 100; i++) {
        const char *argv[] = {"RPUSH", "pipe", val};
        size_t len[] = {5, 4, (size_t)snprintf(val, sizeof(val), "%d", i)};
        cr_assert_eq(bg_bus_append_argv(bus, 3, argv, len, err), BG_OK, "%s", err);
    }
    cr_assert_null(bg_bus_command(bus, err, "PING"), "a command must not eat pipelined replies");
    cr_assert(strstr(err, "100 pipelined replies") != NULL, "err: %s", err);
    for (i = 0; i < 100; i++) {
        cr_assert_eq(bg_bus_get_reply(bus, &r, err), BG_OK, "%s", err);
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
        cr_assert_eq(r->integer, i + 1, "replies out of order");
        freeReplyObject(r);
    }
    cr_assert_eq(bg_bus_get_reply(bus, &r, err), BG_ERR, "no reply was pending");
    for (i = 0; i < BG_BUS_MAX_INFLIGHT; i++) {
        const char *argv[] = {"PING"};
        cr_assert_eq(bg_bus_append_argv(bus, 1, argv, NULL, err), BG_OK, "%s", err);
    }
    const char *ping[] = {"PING"};
    cr_assert_eq(bg_bus_append_argv(bus, 1, ping, NULL, err), BG_ERR, "cap not enforced");
    for (i = 0; i < BG_BUS_MAX_INFLIGHT; i++) {
        cr_assert_eq(bg_bus_get_reply(bus, &r, err), BG_OK, "%s", err);
        freeReplyObject(r);
    }
    bg_bus_free(bus);
}

typedef struct worker {
    pthread_t thread;
    int port, id, errors;
    long incrs;
    char err[BG_ERR_LEN];
} worker;

/* One op of three kinds: INCR a shared counter, SET a private key, GET it back. */
static int worker_op(bg_bus *bus, worker *w, int i, char *err)
{
    char key[32], val[32];
    redisReply *r;
    int ok;

    snprintf(key, sizeof(key), "w:%d", w->id);
    snprintf(val, sizeof(val), "%d:%d", w->id, i / 3);
    if (i % 3 == 0)
        r = bg_bus_command(bus, err, "INCR counter");
    else if (i % 3 == 1)
        r = bg_bus_command(bus, err, "SET %s %s", key, val);
    else
        r = bg_bus_command(bus, err, "GET %s", key);
    if (r == NULL)
        return 0;
    ok = r->type != REDIS_REPLY_ERROR;
    if (i % 3 == 2)
        ok = ok && r->type == REDIS_REPLY_STRING && strcmp(r->str, val) == 0;
    w->incrs += i % 3 == 0 && ok;
    freeReplyObject(r);
    return ok;
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    bg_bus_opts o;
    bg_bus *bus;
    int i;

    opts_for_port(&o, w->port);
    bus = bg_bus_connect(&o, w->err);
    if (bus == NULL) {
        w->errors = 1000;
        return NULL;
    }
    for (i = 0; i < 1000; i++)
        w->errors += !worker_op(bus, w, i, w->err);
    bg_bus_free(bus);
    return NULL;
}

Test(bus_conn, thirty_two_concurrent_clients)
{
    static worker workers[32];
    char reply[64], expect[64];
    long incrs = 0;
    int i;

    for (i = 0; i < 32; i++) {
        workers[i] = (worker){.port = server.port, .id = i};
        cr_assert_eq(pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]), 0);
    }
    for (i = 0; i < 32; i++) {
        pthread_join(workers[i].thread, NULL);
        cr_expect_eq(workers[i].errors, 0, "client %d: %d errors, last: %s", i, workers[i].errors,
                     workers[i].err);
        incrs += workers[i].incrs;
    }
    cr_assert_eq(incrs, 32 * 334);
    cr_assert_eq(bgt_valkey_cmd(&server, reply, sizeof(reply), "GET counter"), 0);
    cr_assert_str_eq(reply, "$5");
    cr_assert_eq(bgt_valkey_cmd(&server, reply, sizeof(reply), "INCRBY counter 0"), 0);
    snprintf(expect, sizeof(expect), ":%ld", incrs);
    cr_assert_str_eq(reply, expect);
}

static void count_hook(bg_bus *bus, void *arg)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(bus, err, "SET hook-ran yes");

    /* The hook may talk to the server: that is what consumers use it for. */
    if (r != NULL && r->type == REDIS_REPLY_STATUS)
        (*(int *)arg)++;
    freeReplyObject(r);
}

Test(bus_conn, reconnects_after_restart_and_runs_hook)
{
    char err[BG_ERR_LEN] = "", reply[64];
    bg_bus_opts o;
    bg_bus *bus;
    int hooks = 0;

    opts_for_port(&o, server.port);
    bus = connect_or_fail(&o);
    bg_bus_set_reconnect_hook(bus, count_hook, &hooks);
    expect_status(bg_bus_command(bus, err, "PING"), err, "PONG");
    cr_assert_eq(hooks, 0, "the hook runs after re-connects, not the first connect");
    bgt_valkey_kill(&server);
    cr_assert_eq(bgt_valkey_restart(&server), 0);
    expect_status(bg_bus_command(bus, err, "SET after restart"), err, "OK");
    cr_assert_eq(hooks, 1, "hook ran %d times", hooks);
    cr_assert_eq(bg_bus_reconnect_count(bus), 1);
    cr_assert_eq(bgt_valkey_cmd(&server, reply, sizeof(reply), "EXISTS hook-ran"), 0);
    cr_assert_str_eq(reply, ":1");
    bg_bus_free(bus);
}

Test(bus_conn, backs_off_while_server_is_down)
{
    char err[BG_ERR_LEN] = "", where[64];
    bg_bus_opts o;
    bg_bus *bus;
    unsigned long before, attempts;
    int64_t start, elapsed;
    int calls = 0, i;
    redisReply *r = NULL;

    opts_for_port(&o, server.port);
    bus = connect_or_fail(&o);
    snprintf(where, sizeof(where), "127.0.0.1:%d", server.port);
    bgt_valkey_kill(&server);
    before = bg_bus_connect_attempts(bus);
    start = bg_mono_ms();
    while (bg_mono_ms() - start < 1500 && calls < 100000) {
        r = bg_bus_command(bus, err, "PING");
        cr_assert_null(r, "PING answered by a dead server");
        cr_assert(strstr(err, where) && strstr(err, "Connection refused"), "unclear: %s", err);
        calls++;
    }
    elapsed = bg_mono_ms() - start;
    attempts = bg_bus_connect_attempts(bus) - before;
    cr_assert_geq(attempts, 2, "no reconnect was even tried");
    /* The floor of the backoff is 100 ms between attempts, whatever the jitter. */
    cr_assert_leq(attempts, (unsigned long)(elapsed / 100 + 1), "%lu attempts in %lld ms", attempts,
                  (long long)elapsed);
    cr_assert_eq(bgt_valkey_restart(&server), 0);
    for (i = 0; i < 100 && r == NULL; i++)
        r = bg_bus_command(bus, err, "PING");
    expect_status(r, err, "PONG");
    cr_assert_eq(bg_bus_reconnect_count(bus), 1);
    bg_bus_free(bus);
}

Test(bus_conn, refused_connection_names_the_address)
{
    char err[BG_ERR_LEN] = "", expect[64];
    bg_bus_opts o;
    int port = bgt_free_port();

    opts_for_port(&o, port);
    cr_assert_null(bg_bus_connect(&o, err));
    snprintf(expect, sizeof(expect), "connect 127.0.0.1:%d: Connection refused", port);
    cr_assert_str_eq(err, expect);
}

Test(bus_conn, command_timeout_is_reported)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;
    bg_bus *bus;

    opts_for_port(&o, server.port);
    bus = connect_or_fail(&o);
    bg_bus_set_command_timeout(bus, 200);
    cr_assert_null(bg_bus_command(bus, err, "BLPOP never-pushed 5"));
    cr_assert(strstr(err, "timed out after 200 ms") != NULL, "err: %s", err);
    /* Longer than the block: the same call now answers (nil after 1 s). */
    bg_bus_set_command_timeout(bus, 3000);
    redisReply *r = bg_bus_command(bus, err, "BLPOP never-pushed 1");
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    bg_bus_free(bus);
}

typedef struct unblocker {
    int port;
    long long id;
    int done;
} unblocker;

/* Unblock the blocked client with an error, then give it something to pop. */
static void *unblock_run(void *arg)
{
    unblocker *u = arg;
    char err[BG_ERR_LEN];
    bg_bus_opts o;
    bg_bus *bus;
    redisReply *r;
    int i;

    opts_for_port(&o, u->port);
    if ((bus = bg_bus_connect(&o, err)) == NULL)
        return NULL;
    for (i = 0; i < 500 && !u->done; i++) {
        r = bg_bus_command(bus, err, "CLIENT UNBLOCK %lld ERROR", u->id);
        u->done = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        if (!u->done)
            usleep(10000);
    }
    freeReplyObject(bg_bus_command(bus, err, "LPUSH jobs one"));
    bg_bus_free(bus);
    return NULL;
}

Test(bus_conn, unblocked_error_reconnects_and_retries)
{
    char err[BG_ERR_LEN] = "";
    unblocker u = {.port = server.port};
    pthread_t t;
    bg_bus_opts o;
    bg_bus *bus;
    redisReply *r;

    opts_for_port(&o, server.port);
    bus = connect_or_fail(&o);
    r = bg_bus_command(bus, err, "CLIENT ID");
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER, "%s", err);
    u.id = r->integer;
    freeReplyObject(r);
    cr_assert_eq(pthread_create(&t, NULL, unblock_run, &u), 0);
    r = bg_bus_command(bus, err, "BLPOP jobs 4");
    pthread_join(t, NULL);
    cr_assert(u.done, "the client was never unblocked");
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "got type %d (%s)", r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    cr_assert_str_eq(r->element[1]->str, "one");
    cr_assert_eq(bg_bus_reconnect_count(bus), 1);
    freeReplyObject(r);
    bg_bus_free(bus);
}

Test(bus_conn, acl_user_and_wrong_password)
{
    char err[BG_ERR_LEN] = "", reply[64];
    bg_bus_opts o;
    bg_bus *bus;

    cr_assert_eq(
        bgt_valkey_cmd(&server, reply, sizeof(reply), "ACL SETUSER alice on >s3cret ~* &* +@all"),
        0);
    cr_assert_str_eq(reply, "+OK");
    opts_for_port(&o, server.port);
    snprintf(o.addr.user, sizeof(o.addr.user), "alice");
    snprintf(o.addr.password, sizeof(o.addr.password), "s3cret");
    bus = connect_or_fail(&o);
    expect_status(bg_bus_command(bus, err, "ACL WHOAMI"), err, "alice");
    bg_bus_free(bus);

    snprintf(o.addr.password, sizeof(o.addr.password), "wrong");
    cr_assert_null(bg_bus_connect(&o, err));
    cr_assert(strstr(err, "AUTH failed for user 'alice'") != NULL, "err: %s", err);
    cr_assert(strstr(err, "WRONGPASS") != NULL, "err: %s", err);
}

Test(bus_conn, default_user_password)
{
    char err[BG_ERR_LEN] = "", reply[64];
    bg_bus_opts o;
    bg_bus *bus;

    cr_assert_eq(bgt_valkey_cmd(&server, reply, sizeof(reply), "CONFIG SET requirepass pw1"), 0);
    opts_for_port(&o, server.port);
    cr_assert_null(bg_bus_connect(&o, err), "connected without the password");
    cr_assert(strstr(err, "NOAUTH") != NULL, "err: %s", err);
    snprintf(o.addr.password, sizeof(o.addr.password), "pw1");
    bus = connect_or_fail(&o);
    expect_status(bg_bus_command(bus, err, "PING"), err, "PONG");
    bg_bus_free(bus);
    snprintf(o.addr.password, sizeof(o.addr.password), "pw2");
    cr_assert_null(bg_bus_connect(&o, err));
    cr_assert(strstr(err, "AUTH failed for the default user") != NULL, "err: %s", err);
}

/* TLS: a server with a certificate from a CA the test makes. */
static bgt_tls_certs certs;
static int tls_port;

static void tls_up(void)
{
    cr_assert_eq(bgt_tls_make_certs(&certs), 0, "openssl could not make certificates in %s",
                 certs.dir);
    cr_assert_eq(bgt_valkey_start_tls(&server, &certs, &tls_port, NULL), 0,
                 "TLS valkey-server did not start");
}

static void tls_down(void)
{
    bgt_valkey_stop(&server);
    bgt_tls_remove_certs(&certs);
}

static void tls_opts(bg_bus_opts *o, const char *ca)
{
    opts_for_port(o, tls_port);
    o->addr.tls = 1;
    o->tls_ca_file = ca;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    while (d != NULL && readdir(d) != NULL)
        n++;
    if (d != NULL)
        closedir(d);
    return n;
}

TestSuite(bus_tls, .init = tls_up, .fini = tls_down, .timeout = 60);

Test(bus_tls, verified_connection_works)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;
    bg_bus *bus;

    tls_opts(&o, certs.ca_crt);
    bus = connect_or_fail(&o);
    expect_status(bg_bus_command(bus, err, "SET over tls"), err, "OK");
    expect_status(bg_bus_command(bus, err, "GET over"), err, "tls");
    bg_bus_free(bus);
    o.tls_server_name = "localhost"; /* SNI plus a DNS name check */
    bus = connect_or_fail(&o);
    expect_status(bg_bus_command(bus, err, "PING"), err, "PONG");
    bg_bus_free(bus);
}

Test(bus_tls, wrong_ca_is_refused)
{
    char err[BG_ERR_LEN] = "", expect[96];
    bg_bus_opts o;
    int fds = open_fds();

    tls_opts(&o, certs.other_ca_crt);
    cr_assert_null(bg_bus_connect(&o, err), "a certificate from an unknown CA was accepted");
    snprintf(expect, sizeof(expect), "TLS handshake with 127.0.0.1:%d failed: ", tls_port);
    cr_assert(strstr(err, expect) == err, "err: %s", err);
    cr_assert(strstr(err, "certificate verify failed") != NULL, "err: %s", err);
    cr_assert_eq(open_fds(), fds, "a failed handshake leaked a descriptor");
}

Test(bus_tls, wrong_server_name_is_refused)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;

    tls_opts(&o, certs.ca_crt);
    o.tls_server_name = "db.example.org";
    cr_assert_null(bg_bus_connect(&o, err), "a certificate for another name was accepted");
    cr_assert(strstr(err, "certificate verify failed (hostname mismatch)") != NULL, "err: %s", err);
}

Test(bus_tls, verify_off_accepts_any_certificate)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;
    bg_bus *bus;

    tls_opts(&o, certs.other_ca_crt);
    o.tls_verify = 0;
    bus = connect_or_fail(&o);
    expect_status(bg_bus_command(bus, err, "PING"), err, "PONG");
    bg_bus_free(bus);
}

Test(bus_tls, plain_client_on_tls_port_fails_cleanly)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;

    opts_for_port(&o, tls_port);
    o.connect_timeout_ms = 1000;
    o.command_timeout_ms = 1000;
    cr_assert_null(bg_bus_connect(&o, err), "plain text accepted on a TLS port");
    cr_assert(strstr(err, "PING failed on 127.0.0.1:") == err, "err: %s", err);
}

Test(bus_conn, connects_from_a_url_with_user_and_db)
{
    char err[BG_ERR_LEN] = "", reply[64], url[128];
    bg_bus_opts o;
    bg_bus *bus;
    redisReply *r;

    cr_assert_eq(
        bgt_valkey_cmd(&server, reply, sizeof(reply), "ACL SETUSER bob on >pw ~* &* +@all"), 0);
    bg_bus_opts_init(&o);
    snprintf(url, sizeof(url), "valkey://bob:pw@127.0.0.1:%d/2", server.port);
    cr_assert_eq(bg_bus_opts_from_url(&o, url, err), BG_OK, "%s", err);
    bus = connect_or_fail(&o);
    expect_status(bg_bus_command(bus, err, "ACL WHOAMI"), err, "bob");
    r = bg_bus_command(bus, err, "CLIENT INFO");
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "%s", err);
    cr_assert(strstr(r->str, " db=2 ") != NULL, "not in db 2: %s", r->str);
    freeReplyObject(r);
    bg_bus_free(bus);
    cr_assert_eq(bg_bus_opts_from_url(&o, "http://nope", err), BG_ERR);
}
