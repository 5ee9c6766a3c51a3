/* test_bus_async.c: the async bus connection against a private valkey-server: pipelining,
 * disconnect and reconnect, in-flight cap, command timeout, handshake, TLS, close-on-exec. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/bus/bus_async.h"
#include "busgate/core/log.h"
#include "tls_certs.h"
#include "valkey_harness.h"

static bgt_valkey server;

static void quiet(void)
{
    /* Reconnect attempts log warnings by design; keep test output readable. */
    bg_log_set_level(BG_LOG_CRIT);
    /* As in busgated: a write to a reset connection must be an error, not death. */
    signal(SIGPIPE, SIG_IGN);
}

static void server_up(void)
{
    quiet();
    cr_assert_eq(bgt_valkey_start(&server, NULL), 0, "valkey-server did not start");
}

static void server_down(void)
{
    if (server.pid > 0)
        kill(server.pid, SIGCONT); /* in case a test stopped it */
    bgt_valkey_stop(&server);
}

TestSuite(bus_async, .init = server_up, .fini = server_down, .timeout = 60);

typedef struct fixture {
    bg_ev *loop;
    bg_abus *bus;
    int ups, downs;
    int refused_while_down; /* a command issued from the "lost" hook was refused */
} fixture;

static void on_state(bg_abus *b, int connected, void *arg)
{
    fixture *f = arg;

    if (connected) {
        f->ups++;
        return;
    }
    f->downs++;
    f->refused_while_down = bg_abus_command(b, NULL, NULL, "PING") == BG_ERR;
}

static void opts_for_port(bg_bus_opts *o, int port)
{
    bg_bus_opts_init(o);
    snprintf(o->addr.host, sizeof(o->addr.host), "127.0.0.1");
    o->addr.port = port;
}

static void fixture_open(fixture *f, const bg_bus_opts *o)
{
    char err[BG_ERR_LEN] = "";

    memset(f, 0, sizeof(*f));
    f->loop = bg_ev_new(err);
    cr_assert_not_null(f->loop, "%s", err);
    f->bus = bg_abus_new(f->loop, o, err);
    cr_assert_not_null(f->bus, "bg_abus_new: %s", err);
    bg_abus_set_state_hook(f->bus, on_state, f);
}

static void fixture_close(fixture *f)
{
    bg_abus_free(f->bus);
    bg_ev_free(f->loop);
}

/* Iterate until *flag >= want or limit_ms passes (a safety bound, not a timing check). */
static void run_until(fixture *f, const int *flag, int want, int64_t limit_ms)
{
    char err[BG_ERR_LEN] = "";
    int64_t end = bg_mono_ms() + limit_ms;

    while (*flag < want && bg_mono_ms() < end)
        cr_assert_neq(bg_ev_run_once(f->loop, 50, err), BG_ERR, "%s", err);
}

static void open_connected(fixture *f, int port)
{
    bg_bus_opts o;

    opts_for_port(&o, port);
    fixture_open(f, &o);
    run_until(f, &f->ups, 1, 10000);
    cr_assert_eq(f->ups, 1, "never connected: %s", bg_abus_last_error(f->bus));
    cr_assert(bg_abus_connected(f->bus));
}

/* ---- replies ---- */

typedef struct seq_check {
    long long next; /* the INCR value the next reply must carry */
    int answered, out_of_order, nulls;
} seq_check;

static void on_incr(bg_abus *b, redisReply *r, void *arg)
{
    seq_check *s = arg;

    (void)b;
    s->answered++;
    if (r == NULL) {
        s->nulls++;
        return;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer != s->next)
        s->out_of_order++;
    s->next++;
}

/* INFO stats field as a number, read through a blocking redisContext. */
static long long server_stat(const char *field)
{
    redisContext *c = redisConnect("127.0.0.1", server.port);
    redisReply *r;
    const char *p;
    long long v = -1;

    cr_assert(c != NULL && c->err == 0, "stat connection failed");
    r = redisCommand(c, "INFO stats");
    cr_assert(r != NULL && (r->type == REDIS_REPLY_VERB || r->type == REDIS_REPLY_STRING));
    p = strstr(r->str, field);
    if (p != NULL)
        v = atoll(p + strlen(field) + 1);
    freeReplyObject(r);
    redisFree(c);
    return v;
}

Test(bus_async, ten_thousand_pipelined_commands_answered_in_order)
{
    enum { N = 10000 };
    fixture f;
    seq_check s = {.next = 1};
    unsigned long w0, r0, w1, r1;
    long long reads0, reads1;
    int i;

    open_connected(&f, server.port);
    bg_abus_set_max_inflight(f.bus, N);
    bg_abus_io_counts(f.bus, &w0, &r0);
    reads0 = server_stat("total_reads_processed");
    for (i = 0; i < N; i++)
        cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "INCR counter"), BG_OK, "cmd %d", i);
    cr_assert_eq(bg_abus_inflight(f.bus), N);
    run_until(&f, &s.answered, N, 30000);
    reads1 = server_stat("total_reads_processed");
    bg_abus_io_counts(f.bus, &w1, &r1);
    cr_assert_eq(s.answered, N);
    cr_assert_eq(s.nulls, 0);
    cr_assert_eq(s.out_of_order, 0);
    cr_assert_eq(bg_abus_inflight(f.bus), 0);
    /* Pipelining, not one round trip per command: a few dozen writes and
     * reads on each side for 10k commands (about 300 KB of requests). */
    cr_expect_lt(w1 - w0, 200, "%lu writes for %d commands", w1 - w0, N);
    cr_expect_lt(r1 - r0, 1000, "%lu reads for %d replies", r1 - r0, N);
    cr_expect_lt(reads1 - reads0, 1000, "server read %lld times", reads1 - reads0);
    fixture_close(&f);
}

typedef struct once {
    int calls[512]; /* per command: how many times its callback ran */
    int nulls, total;
} once;

/* Per-command privdata: the slot to count, with a back pointer. */
typedef struct slot {
    once *o;
    int i;
} slot;

static void on_slot(bg_abus *b, redisReply *r, void *arg)
{
    slot *s = arg;

    (void)b;
    s->o->calls[s->i]++;
    s->o->total++;
    if (r == NULL)
        s->o->nulls++;
}

static void on_pong(bg_abus *b, redisReply *r, void *arg)
{
    (void)b;
    *(int *)arg =
        (r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) ? 1 : -1;
}

Test(bus_async, disconnect_fails_pending_once_then_reconnects_by_itself)
{
    enum { N = 200 };
    fixture f;
    static once o;
    static slot sl[N + 1];
    int i, pong = 0;

    memset(&o, 0, sizeof(o));
    open_connected(&f, server.port);
    /* The BLPOP holds the server; every PING behind it stays unanswered. */
    sl[0] = (slot){&o, 0};
    cr_assert_eq(bg_abus_command(f.bus, on_slot, &sl[0], "BLPOP %s %d", "nothing", 30), BG_OK);
    for (i = 1; i <= N; i++) {
        sl[i] = (slot){&o, i};
        cr_assert_eq(bg_abus_command(f.bus, on_slot, &sl[i], "PING"), BG_OK);
    }
    for (i = 0; i < 5; i++)
        bg_ev_run_once(f.loop, 10, NULL); /* flush them out */
    cr_assert_eq(o.total, 0, "answered while the BLPOP blocks?");
    bgt_valkey_kill(&server);
    run_until(&f, &o.total, N + 1, 10000);
    cr_assert_eq(o.total, N + 1);
    cr_assert_eq(o.nulls, N + 1);
    for (i = 0; i <= N; i++)
        cr_assert_eq(o.calls[i], 1, "callback %d ran %d times", i, o.calls[i]);
    cr_assert_eq(f.downs, 1);
    cr_assert(f.refused_while_down, "a command was accepted with no connection");
    cr_assert_not(bg_abus_connected(f.bus));
    cr_assert_eq(bg_abus_inflight(f.bus), 0);

    cr_assert_eq(bgt_valkey_restart(&server), 0);
    run_until(&f, &f.ups, 2, 15000);
    cr_assert_eq(f.ups, 2, "no reconnect: %s", bg_abus_last_error(f.bus));
    cr_assert_eq(bg_abus_reconnects(f.bus), 1);
    cr_assert_eq(bg_abus_command(f.bus, on_pong, &pong, "PING"), BG_OK);
    run_until(&f, &pong, 1, 5000);
    cr_assert_eq(pong, 1);
    for (i = 0; i <= N; i++)
        cr_assert_eq(o.calls[i], 1, "callback %d ran again", i);
    fixture_close(&f);
}

Test(bus_async, inflight_cap_refuses_past_the_cap)
{
    fixture f;
    seq_check s = {.next = 1};
    int i;

    open_connected(&f, server.port);
    bg_abus_set_max_inflight(f.bus, 8);
    for (i = 0; i < 8; i++)
        cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "INCR capped"), BG_OK);
    cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "INCR capped"), BG_ERR);
    cr_assert_eq(bg_abus_inflight(f.bus), 8);
    run_until(&f, &s.answered, 8, 10000);
    cr_assert_eq(s.answered, 8, "the refused command must never call back");
    cr_assert_eq(s.out_of_order, 0);
    cr_assert_eq(bg_abus_inflight(f.bus), 0);
    cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "INCR capped"), BG_OK);
    run_until(&f, &s.answered, 9, 10000);
    cr_assert_eq(s.answered, 9);
    cr_assert_eq(s.nulls, 0);
    fixture_close(&f);
}

Test(bus_async, push_commands_are_refused)
{
    static const char *argv[] = {"ssubscribe", "chan"};
    fixture f;
    seq_check s = {.next = 1};

    open_connected(&f, server.port);
    cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "SUBSCRIBE %s", "chan"), BG_ERR);
    cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "psubscribe chan*"), BG_ERR);
    cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "UNSUBSCRIBE"), BG_ERR);
    cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "MONITOR"), BG_ERR);
    cr_assert_eq(bg_abus_command_argv(f.bus, on_incr, &s, 2, argv, NULL), BG_ERR);
    cr_assert_eq(bg_abus_inflight(f.bus), 0);
    /* A command that merely starts like one is fine. */
    cr_assert_eq(bg_abus_command(f.bus, on_incr, &s, "INCR %s", "SUBSCRIBE"), BG_OK);
    run_until(&f, &s.answered, 1, 10000);
    cr_assert_eq(s.answered, 1);
    cr_assert_eq(s.out_of_order, 0);
    fixture_close(&f);
}

/* ---- command timeout ---- */

typedef struct trickle {
    fixture *f;
    int first_result; /* 0 pending, 1 answered, -1 NULL */
    int sent;
} trickle;

static void on_first(bg_abus *b, redisReply *r, void *arg)
{
    trickle *t = arg;

    (void)b;
    t->first_result = r == NULL ? -1 : 1;
}

/* A new command every 20 ms: hiredis alone would push the deadline on each. */
static int64_t send_trickle(bg_ev *loop, bg_ev_timer *tm, void *arg)
{
    trickle *t = arg;

    (void)loop;
    (void)tm;
    if (t->first_result != 0)
        return BG_EV_NOMORE;
    if (bg_abus_command(t->f->bus, NULL, NULL, "PING") == BG_OK)
        t->sent++;
    return 20;
}

Test(bus_async, command_timeout_fires_against_a_stopped_server)
{
    fixture f;
    bg_bus_opts o;
    trickle t = {0};
    char err[BG_ERR_LEN] = "";
    int64_t start;

    opts_for_port(&o, server.port);
    o.command_timeout_ms = 300;
    fixture_open(&f, &o);
    run_until(&f, &f.ups, 1, 10000);
    cr_assert_eq(f.ups, 1, "%s", bg_abus_last_error(f.bus));
    t.f = &f;
    cr_assert_eq(kill(server.pid, SIGSTOP), 0);
    start = bg_mono_ms();
    cr_assert_eq(bg_abus_command(f.bus, on_first, &t, "PING"), BG_OK);
    cr_assert_not_null(bg_ev_timer_add(f.loop, 20, send_trickle, &t, err));
    while (t.first_result == 0 && bg_mono_ms() - start < 10000)
        bg_ev_run_once(f.loop, 50, NULL);
    cr_assert_eq(t.first_result, -1, "the command was not failed by the timeout");
    cr_assert_geq(bg_mono_ms() - start, 300, "timed out before the deadline");
    cr_assert_gt(t.sent, 3, "the trickle did not run");
    cr_assert(strstr(bg_abus_last_error(f.bus), "timed out") != NULL, "last error: %s",
              bg_abus_last_error(f.bus));
    cr_assert_eq(f.downs, 1);
    cr_assert_eq(kill(server.pid, SIGCONT), 0);
    run_until(&f, &f.ups, 2, 15000);
    cr_assert_eq(f.ups, 2, "no reconnect after SIGCONT: %s", bg_abus_last_error(f.bus));
    fixture_close(&f);
}

/* ---- free ---- */

Test(bus_async, free_fails_pending_callbacks_once)
{
    enum { N = 50 };
    fixture f;
    static once o;
    static slot sl[N];
    int i;

    memset(&o, 0, sizeof(o));
    open_connected(&f, server.port);
    for (i = 0; i < N; i++) {
        sl[i] = (slot){&o, i};
        cr_assert_eq(bg_abus_command(f.bus, on_slot, &sl[i], "PING"), BG_OK);
    }
    bg_abus_free(f.bus);
    cr_assert_eq(o.total, N);
    cr_assert_eq(o.nulls, N);
    for (i = 0; i < N; i++)
        cr_assert_eq(o.calls[i], 1);
    bg_ev_free(f.loop);
}

typedef struct freer {
    fixture *f;
    int calls, later_nulls;
} freer;

static void on_free_me(bg_abus *b, redisReply *r, void *arg)
{
    freer *x = arg;

    x->calls++;
    if (x->calls == 1) {
        cr_assert_not_null(r);
        bg_abus_free(b); /* inside a callback: hiredis defers, no use after free */
        x->f->bus = NULL;
    } else if (r == NULL) {
        x->later_nulls++;
    }
}

Test(bus_async, free_inside_a_reply_callback)
{
    fixture f;
    freer x = {&f, 0, 0};
    int i;

    open_connected(&f, server.port);
    /* A BLPOP keeps the later ones pending when the first reply frees the bus. */
    cr_assert_eq(bg_abus_command(f.bus, on_free_me, &x, "PING"), BG_OK);
    cr_assert_eq(bg_abus_command(f.bus, on_free_me, &x, "BLPOP %s %d", "nothing", 30), BG_OK);
    for (i = 0; i < 3; i++)
        cr_assert_eq(bg_abus_command(f.bus, on_free_me, &x, "PING"), BG_OK);
    run_until(&f, &x.calls, 5, 10000);
    cr_assert_eq(x.calls, 5);
    cr_assert_eq(x.later_nulls, 4);
    cr_assert_null(f.bus);
    bg_ev_free(f.loop);
}

/* ---- handshake ---- */

#define STR_LEN 512

static void on_copy_str(bg_abus *b, redisReply *r, void *arg)
{
    char *out = arg;

    (void)b;
    snprintf(out, STR_LEN, "%s", r != NULL && r->str != NULL ? r->str : "(null)");
}

Test(bus_async, handshake_selects_db_and_sets_name)
{
    fixture f;
    bg_bus_opts o;
    char info[STR_LEN] = "", name[STR_LEN] = "";

    opts_for_port(&o, server.port);
    o.addr.db = 3;
    o.client_name = "abus-test";
    fixture_open(&f, &o);
    cr_assert_eq(bg_abus_command(f.bus, on_copy_str, info, "CLIENT INFO"), BG_OK,
                 "commands queue while connecting");
    cr_assert_eq(bg_abus_command(f.bus, on_copy_str, name, "CLIENT GETNAME"), BG_OK);
    run_until(&f, &f.ups, 1, 10000);
    while (name[0] == '\0' && f.ups == 1)
        bg_ev_run_once(f.loop, 50, NULL);
    cr_assert(strstr(info, " db=3 ") != NULL, "CLIENT INFO: %s", info);
    cr_assert_str_eq(name, "abus-test");
    fixture_close(&f);
}

static int has_text(const char *s)
{
    return s[0] != '\0';
}

Test(bus_async, acl_user_wrong_password_is_a_clear_error)
{
    char reply[STR_LEN];
    fixture f;
    bg_bus_opts o;
    int64_t end;

    cr_assert_eq(
        bgt_valkey_cmd(&server, reply, sizeof(reply), "ACL SETUSER alice on >s3cret ~* &* +@all"),
        0);
    cr_assert_str_eq(reply, "+OK");
    opts_for_port(&o, server.port);
    snprintf(o.addr.user, sizeof(o.addr.user), "alice");
    snprintf(o.addr.password, sizeof(o.addr.password), "wrong");
    fixture_open(&f, &o);
    end = bg_mono_ms() + 10000;
    while (!has_text(bg_abus_last_error(f.bus)) && bg_mono_ms() < end)
        bg_ev_run_once(f.loop, 50, NULL);
    cr_assert(strstr(bg_abus_last_error(f.bus), "AUTH failed: WRONGPASS") != NULL, "%s",
              bg_abus_last_error(f.bus));
    cr_assert_eq(f.ups, 0);
    fixture_close(&f);

    snprintf(o.addr.password, sizeof(o.addr.password), "s3cret");
    fixture_open(&f, &o);
    cr_assert_eq(bg_abus_command(f.bus, on_copy_str, reply, "ACL WHOAMI"), BG_OK);
    run_until(&f, &f.ups, 1, 10000);
    cr_assert_eq(f.ups, 1, "%s", bg_abus_last_error(f.bus));
    while (strcmp(reply, "alice") != 0 && f.ups == 1 && bg_mono_ms() < end)
        bg_ev_run_once(f.loop, 50, NULL);
    cr_assert_str_eq(reply, "alice");
    fixture_close(&f);
}

/* ---- sockets ---- */

/* Sockets currently open in this process, as a bitmap by fd number. */
static void socket_fds(unsigned char *set, int max)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char path[64], link[64];

    memset(set, 0, (size_t)max);
    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        ssize_t n;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof(link) - 1);
        if (n > 0 && fd < max && strncmp(link, "socket:", 7) == 0)
            set[fd] = 1;
    }
    closedir(d);
}

Test(bus_async, sockets_are_close_on_exec)
{
    enum { MAXFD = 1024 };
    static unsigned char before[MAXFD], after[MAXFD];
    fixture f;
    int fd, fresh = 0;

    socket_fds(before, MAXFD);
    open_connected(&f, server.port);
    socket_fds(after, MAXFD);
    for (fd = 0; fd < MAXFD; fd++) {
        if (!after[fd] || before[fd])
            continue;
        fresh++;
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd %d lacks FD_CLOEXEC", fd);
    }
    cr_assert_geq(fresh, 1, "no new socket found");
    fixture_close(&f);
}

/* ---- TLS ---- */

static bgt_tls_certs certs;
static bgt_valkey tls_server;
static int tls_port;

static void tls_up(void)
{
    quiet();
    cr_assert_eq(bgt_tls_make_certs(&certs), 0, "openssl could not make test certificates");
    cr_assert_eq(bgt_valkey_start_tls(&tls_server, &certs, &tls_port, NULL), 0);
}

static void tls_down(void)
{
    bgt_valkey_stop(&tls_server);
    bgt_tls_remove_certs(&certs);
}

TestSuite(bus_async_tls, .init = tls_up, .fini = tls_down, .timeout = 60);

static void tls_opts(bg_bus_opts *o, const char *ca)
{
    opts_for_port(o, tls_port);
    o->addr.tls = 1;
    o->tls_ca_file = ca;
}

Test(bus_async_tls, verified_connection_works)
{
    fixture f;
    bg_bus_opts o;
    int pong = 0;

    tls_opts(&o, certs.ca_crt);
    fixture_open(&f, &o);
    cr_assert_eq(bg_abus_command(f.bus, on_pong, &pong, "PING"), BG_OK);
    run_until(&f, &pong, 1, 10000);
    cr_assert_eq(pong, 1, "%s", bg_abus_last_error(f.bus));
    cr_assert_eq(f.ups, 1);
    fixture_close(&f);
}

Test(bus_async_tls, wrong_ca_is_refused_with_a_clear_error)
{
    fixture f;
    bg_bus_opts o;
    int64_t end;

    tls_opts(&o, certs.other_ca_crt);
    fixture_open(&f, &o);
    end = bg_mono_ms() + 10000;
    while (!has_text(bg_abus_last_error(f.bus)) && bg_mono_ms() < end)
        bg_ev_run_once(f.loop, 50, NULL);
    cr_assert(strstr(bg_abus_last_error(f.bus), "certificate verify failed") != NULL, "%s",
              bg_abus_last_error(f.bus));
    cr_assert_eq(f.ups, 0);
    fixture_close(&f);
}
