/* test_busgatectl.c: the control plane end to end with real processes (valkey-server, busgated,
 * echo-service, a simulated instance) observed through busgatectl, and busgatectl dead on the
 * dead letters of a request stream. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "busgate/bus/bus_queue.h"
#include "busgate/proto/frame.h"
#include "busgate/core/log.h"
#include "proc_harness.h"
#include "valkey_harness.h"

static bgt_valkey server;
static bgt_gw gw;

static void server_up(void)
{
    bg_log_set_level(BG_LOG_CRIT);
    signal(SIGPIPE, SIG_IGN);
    memset(&gw, 0, sizeof(gw));
    cr_assert_eq(bgt_valkey_start(&server, NULL), 0, "valkey-server did not start");
}

static void server_down(void)
{
    bgt_gw_stop(&gw);
    bgt_valkey_stop(&server);
}

TestSuite(busgatectl, .init = server_up, .fini = server_down, .timeout = 60);

/* ---- running busgatectl ---- */

typedef struct ctl_out {
    int rc;
    char out[1 << 16], err[4096];
} ctl_out;

static void read_fds(int ofd, int efd, ctl_out *o, long long until)
{
    size_t olen = 0, elen = 0;
    struct pollfd p[2] = {{.fd = ofd, .events = POLLIN}, {.fd = efd, .events = POLLIN}};

    while ((p[0].fd >= 0 || p[1].fd >= 0) && bgt_now_ms() < until) {
        if (poll(p, 2, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            char *buf = i == 0 ? o->out : o->err;
            size_t *len = i == 0 ? &olen : &elen, cap = i == 0 ? sizeof(o->out) : sizeof(o->err);
            ssize_t n;
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            n = read(p[i].fd, buf + *len, cap - 1 - *len);
            if (n <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            *len += (size_t)n;
            buf[*len] = '\0';
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
}

/* busgatectl ARGS... (NULL-terminated), bounded to 15 s. */
static void ctl(ctl_out *o, ...)
{
    const char *argv[16];
    char bin[4096];
    int ofd[2], efd[2], status, argc = 1;
    va_list ap;
    pid_t pid;

    memset(o, 0, sizeof(*o));
    cr_assert_eq(bgt_build_path("busgatectl", bin, sizeof(bin)), 0, "busgatectl not built");
    argv[0] = bin;
    va_start(ap, o);
    while (argc < 15 && (argv[argc] = va_arg(ap, const char *)) != NULL)
        argc++;
    va_end(ap);
    argv[argc] = NULL;
    cr_assert_eq(pipe2(ofd, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(efd, O_CLOEXEC), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(ofd[1], 1);
        dup2(efd[1], 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(ofd[1]);
    close(efd[1]);
    read_fds(ofd[0], efd[0], o, bgt_now_ms() + 15000);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        kill(pid, SIGKILL);
        o->rc = -1;
        return;
    }
    o->rc = WEXITSTATUS(status);
}

/* The gateway state through `busgatectl state --json`; NULL while there is none. */
static json_t *state(void)
{
    ctl_out o;

    ctl(&o, "-c", gw.ini, "state", "--json", NULL);
    return o.rc == 0 ? json_loads(o.out, 0, NULL) : NULL;
}

static json_t *conn_of(json_t *doc, const char *id)
{
    size_t i;
    json_t *c;

    json_array_foreach(json_object_get(doc, "connections"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "id")), id) == 0)
            return c;
    }
    return NULL;
}

/* -1: not in the state; else its number of endpoints; *up its liveness. */
static int conn_endpoints(const char *id, int *up)
{
    json_t *doc = state(), *c;
    int n = -1;

    c = doc != NULL ? conn_of(doc, id) : NULL;
    if (c != NULL) {
        n = (int)json_array_size(json_object_get(c, "endpoints"));
        if (up != NULL)
            *up = json_is_true(json_object_get(c, "up"));
    }
    json_decref(doc);
    return n;
}

#define WAIT_UNTIL(cond, ms)                                                                       \
    do {                                                                                           \
        long long end_ = bgt_now_ms() + (ms);                                                      \
        while (!(cond) && bgt_now_ms() < end_)                                                     \
            usleep(50 * 1000);                                                                     \
    } while (0)

/* ---- the gateway and instances ---- */

static void gw_start(const char *messaging)
{
    char extra[512];

    snprintf(extra, sizeof(extra), "[messaging]\n%s", messaging);
    bgt_gw_opts o = {.valkey_url = server.url,
                     .workers = 1,
                     .extra_gateway = "instance_id = gw-ctl\n",
                     .extra = extra};
    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    cr_assert_eq(bgt_gw_start(&gw), 0, "busgated did not start (see %s)", gw.log);
    /* the group skips what came before it: instances start after it exists */
    cr_assert_eq(bgt_gw_wait_log(&gw, "fleet-wide RESYNC_REQUEST (startup)", 1, 10000), 0);
}

static void gw_restart(void)
{
    int n = bgt_gw_log_count(&gw, "fleet-wide RESYNC_REQUEST (startup)");

    cr_assert_eq(bgt_gw_signal(&gw, SIGTERM), 0);
    cr_assert_eq(bgt_gw_wait_exit(&gw, 15000), 0, "busgated did not stop cleanly");
    cr_assert_eq(bgt_gw_start(&gw), 0, "busgated did not start again");
    cr_assert_eq(bgt_gw_wait_log(&gw, "fleet-wide RESYNC_REQUEST (startup)", n + 1, 10000), 0);
}

static pid_t echo_start(const char *name)
{
    char log[400];
    pid_t pid;

    snprintf(log, sizeof(log), "%s/%s.log", gw.dir, name);
    pid = bgt_spawn_built("echo-service", (const char *[]){"-c", gw.ini, "-n", name, NULL}, log);
    cr_assert_gt(pid, 0, "echo-service not built");
    return pid;
}

static redisContext *valkey(void)
{
    redisContext *c = redisConnect("127.0.0.1", server.port);

    cr_assert(c != NULL && c->err == 0, "cannot connect to the test valkey");
    return c;
}

/* Endpoints in the newest ENDPOINTS_UPDATE of instance on the control stream (-1: none). */
static int declared_endpoints(const char *instance)
{
    redisContext *c = valkey();
    redisReply *r = redisCommand(c, "XREVRANGE router:control + - COUNT 200");
    int n = -1;

    for (size_t i = 0; r != NULL && i < r->elements && n < 0; i++) {
        const redisReply *kv = r->element[i]->element[1];
        const char *type = "", *inst = "", *meta = NULL;
        for (size_t k = 0; k + 1 < kv->elements; k += 2) {
            if (strcmp(kv->element[k]->str, "type") == 0)
                type = kv->element[k + 1]->str;
            else if (strcmp(kv->element[k]->str, "instance") == 0)
                inst = kv->element[k + 1]->str;
            else if (strcmp(kv->element[k]->str, "meta") == 0)
                meta = kv->element[k + 1]->str;
        }
        if (strcmp(type, "ENDPOINTS_UPDATE") == 0 && strcmp(inst, instance) == 0 && meta) {
            json_t *m = json_loads(meta, 0, NULL);
            n = (int)json_array_size(json_object_get(m, "endpoints"));
            json_decref(m);
        }
    }
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* ---- tests ---- */

Test(busgatectl, unreachable_valkey_is_one_line_and_nonzero)
{
    const char *cmds[] = {"state", "queues", "resync"};
    ctl_out o;

    for (size_t i = 0; i < 3; i++) {
        ctl(&o, "-u", "valkey://127.0.0.1:1", cmds[i], NULL);
        cr_assert_eq(o.rc, 1, "%s: exit %d", cmds[i], o.rc);
        cr_assert_str_empty(o.out);
        cr_assert(strstr(o.err, "cannot reach Valkey") != NULL, "%s: '%s'", cmds[i], o.err);
        cr_assert_eq(strchr(o.err, '\n'), o.err + strlen(o.err) - 1, "one line: '%s'", o.err);
    }
    ctl(&o, "-u", server.url, "state", "--bogus", NULL);
    cr_assert_eq(o.rc, 2, "a usage error exits 2");
    ctl(&o, "-c", "/nonexistent/busgate.ini", "state", NULL);
    cr_assert_eq(o.rc, 1);
}

Test(busgatectl, no_running_gateway)
{
    ctl_out o;

    ctl(&o, "-u", server.url, "-g", "gw-none", "state", NULL);
    cr_assert_eq(o.rc, 1);
    cr_assert(strstr(o.err, "no running gateway 'gw-none' found") != NULL, "'%s'", o.err);
    ctl(&o, "-u", server.url, "-g", "gw-none", "resync", "--connection", "echo/e1", NULL);
    cr_assert_eq(o.rc, 1);
    cr_assert(strstr(o.err, "no running gateway") != NULL, "'%s'", o.err);
}

/* HELLO is answered with a RESYNC_REQUEST at once: the endpoints arrive through that
 * exchange, not by waiting for a heartbeat (the property, read from the gateway's log,
 * instead of a time limit a slow machine could miss). */
Test(busgatectl, registration_within_one_heartbeat_interval)
{
    int n = -1, up = 0, declared;
    ctl_out o;

    gw_start("heartbeat_interval = 2s\nheartbeat_expiry = 6s\n");
    echo_start("e1");
    WAIT_UNTIL((declared = declared_endpoints("e1")) > 0 &&
                   (n = conn_endpoints("echo/e1", &up)) == declared,
               6000);
    cr_assert_gt(declared, 0, "echo-service sent no ENDPOINTS_UPDATE");
    cr_assert_eq(n, declared, "state shows %d endpoints, the instance declared %d", n, declared);
    cr_assert(up);
    cr_assert_geq(bgt_gw_log_count(&gw, "(hello) sent to echo/e1"), 1,
                  "the endpoints did not come from the RESYNC_REQUEST answering HELLO");

    /* the human form says the same */
    ctl(&o, "-c", gw.ini, "state", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    cr_assert(strstr(o.out, "gateway gw-ctl") != NULL, "%s", o.out);
    cr_assert(strstr(o.out, "echo/e1") != NULL && strstr(o.out, "/echo/{id}") != NULL, "%s", o.out);
    /* echo-service declares "2/m burst=2" on GET /echo/limited: the route's canonical
     * limit, then the instance's text */
    cr_assert(strstr(o.out, "/echo/limited  rate 2/m\n") != NULL, "%s", o.out);
    cr_assert(strstr(o.out, "/echo/limited  rate 2/m burst=2\n") != NULL, "%s", o.out);
}

Test(busgatectl, kill9_marks_down_then_removes)
{
    int up = 1, n = 0;
    pid_t e1;

    gw_start("heartbeat_interval = 300ms\nheartbeat_expiry = 1500ms\n"
             "connection_remove_after = 1s\n");
    e1 = echo_start("e1");
    WAIT_UNTIL(conn_endpoints("echo/e1", NULL) > 0, 10000);
    cr_assert_gt(conn_endpoints("echo/e1", NULL), 0, "echo/e1 never registered");
    cr_assert_eq(kill(e1, SIGKILL), 0);
    waitpid(e1, NULL, 0);
    WAIT_UNTIL((n = conn_endpoints("echo/e1", &up)) < 0 || !up, 10000);
    cr_assert_gt(n, 0, "removed without being marked down first");
    cr_assert_not(up, "never marked down");
    WAIT_UNTIL(conn_endpoints("echo/e1", NULL) < 0, 10000);
    cr_assert_lt(conn_endpoints("echo/e1", NULL), 0, "never removed");
}

Test(busgatectl, sigterm_goodbye_removes_at_once)
{
    pid_t e1;

    gw_start("heartbeat_interval = 300ms\nheartbeat_expiry = 30s\n"
             "connection_remove_after = 30s\n");
    e1 = echo_start("e1");
    WAIT_UNTIL(conn_endpoints("echo/e1", NULL) > 0, 10000);
    cr_assert_gt(conn_endpoints("echo/e1", NULL), 0, "echo/e1 never registered");
    cr_assert_eq(bgt_stop_pid(e1, 10000), 0, "echo-service did not exit cleanly on SIGTERM");
    /* heartbeat_expiry and connection_remove_after are 30 s: only GOODBYE removes it
     * within the 10 s wait. */
    WAIT_UNTIL(conn_endpoints("echo/e1", NULL) < 0, 10000);
    cr_assert_lt(conn_endpoints("echo/e1", NULL), 0, "not removed");
    cr_assert_geq(bgt_gw_log_count(&gw, "said goodbye"), 1);
}

Test(busgatectl, startup_resync_brings_back_running_instances)
{
    int d1, d2;
    pid_t e1, e2;

    gw_start("heartbeat_interval = 1s\nheartbeat_expiry = 5s\n");
    e1 = echo_start("e1");
    e2 = echo_start("e2");
    WAIT_UNTIL(conn_endpoints("echo/e1", NULL) > 0 && conn_endpoints("echo/e2", NULL) > 0, 10000);
    d1 = declared_endpoints("e1");
    d2 = declared_endpoints("e2");
    cr_assert_gt(d1, 0);
    gw_restart();
    WAIT_UNTIL(conn_endpoints("echo/e1", NULL) == d1 && conn_endpoints("echo/e2", NULL) == d2,
               10000);
    cr_assert_eq(conn_endpoints("echo/e1", NULL), d1);
    cr_assert_eq(conn_endpoints("echo/e2", NULL), d2);
    cr_assert_eq(kill(e1, 0), 0, "the instances were not restarted");
    cr_assert_eq(kill(e2, 0), 0);
    cr_assert_eq(waitpid(e1, NULL, WNOHANG), 0);
    cr_assert_eq(waitpid(e2, NULL, WNOHANG), 0);
    bgt_stop_pid(e1, 5000);
    bgt_stop_pid(e2, 5000);
}

/* ---- a simulated instance that ignores broadcasts: only its heartbeats can
 * tell a restarted gateway about it ---- */

typedef struct sim {
    pthread_t thread;
    atomic_int stop;
    int port;
    int64_t hb_ms;
    int unknown_heartbeat_resyncs; /* RESYNC_REQUESTs it got with that reason */
} sim;

static void sim_xadd(redisContext *c, bg_frame *f)
{
    const char *head[] = {"XADD", "router:control", "*"};
    const char **argv;
    const size_t *lens;
    bg_frame_wire w;
    int argc;

    snprintf(f->service, sizeof(f->service), "sim");
    snprintf(f->instance, sizeof(f->instance), "s1");
    snprintf(f->svc_version, sizeof(f->svc_version), "2.0");
    bg_random_id(f->id);
    if (bg_frame_encode(f, &w, NULL) == BG_OK &&
        bg_frame_wire_command(&w, head, NULL, 3, &argc, &argv, &lens) == BG_OK)
        freeReplyObject(redisCommandArgv(c, argc, argv, lens));
    bg_frame_wire_free(&w);
    bg_frame_free(f);
}

static void sim_send(redisContext *c, bg_frame_type t, const char *resync_id, int64_t hb)
{
    bg_frame f;

    bg_frame_init(&f, t);
    f.interval_ms = hb;
    if (t == BG_FRAME_ENDPOINTS_UPDATE) {
        f.meta = json_loads("{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/sim\"},"
                            "{\"method\":\"GET\",\"path\":\"/sim/{id}\"}]}",
                            0, NULL);
        snprintf(f.resync_id, sizeof(f.resync_id), "%s", resync_id);
    }
    sim_xadd(c, &f);
}

/* Answers RESYNC_REQUESTs on its own instance stream read after *last. */
static void sim_answer(sim *s, redisContext *c, char *last)
{
    redisReply *r =
        redisCommand(c, "XREAD COUNT 10 BLOCK 100 STREAMS router:instance:{sim}:s1 %s", last);

    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        const redisReply *list = r->element[0]->element[1];
        for (size_t i = 0; i < list->elements; i++) {
            const redisReply *kv = list->element[i]->element[1];
            const char *id = "";
            snprintf(last, 64, "%s", list->element[i]->element[0]->str);
            for (size_t k = 0; k + 1 < kv->elements; k += 2) {
                if (strcmp(kv->element[k]->str, "id") == 0)
                    id = kv->element[k + 1]->str;
                if (strcmp(kv->element[k]->str, "reason") == 0 &&
                    strcmp(kv->element[k + 1]->str, "unknown heartbeat") == 0)
                    s->unknown_heartbeat_resyncs++;
            }
            sim_send(c, BG_FRAME_ENDPOINTS_UPDATE, id, 0);
        }
    }
    if (r != NULL)
        freeReplyObject(r);
}

static void *sim_main(void *arg)
{
    sim *s = arg;
    redisContext *c = redisConnect("127.0.0.1", s->port);
    char last[64] = "0-0";
    long long next_hb = 0;

    sim_send(c, BG_FRAME_HELLO, NULL, 0);
    while (!atomic_load(&s->stop)) {
        if (bgt_now_ms() >= next_hb) {
            sim_send(c, BG_FRAME_HEARTBEAT, NULL, s->hb_ms);
            next_hb = bgt_now_ms() + s->hb_ms;
        }
        sim_answer(s, c, last);
    }
    redisFree(c);
    return NULL;
}

Test(busgatectl, state_miss_heartbeat_brings_instance_back)
{
    sim s = {.port = server.port, .hb_ms = 300};
    redisContext *c;

    gw_start("heartbeat_interval = 300ms\nheartbeat_expiry = 3s\n");
    cr_assert_eq(pthread_create(&s.thread, NULL, sim_main, &s), 0);
    WAIT_UNTIL(conn_endpoints("sim/s1", NULL) == 2, 10000);
    cr_assert_eq(conn_endpoints("sim/s1", NULL), 2, "the simulated instance never registered");

    cr_assert_eq(bgt_gw_signal(&gw, SIGTERM), 0);
    cr_assert_eq(bgt_gw_wait_exit(&gw, 15000), 0);
    c = valkey();
    freeReplyObject(redisCommand(c, "XTRIM router:control MAXLEN 0"));
    redisFree(c);
    cr_assert_eq(bgt_gw_start(&gw), 0);
    WAIT_UNTIL(conn_endpoints("sim/s1", NULL) == 2, 10000);
    atomic_store(&s.stop, 1);
    pthread_join(s.thread, NULL);
    cr_assert_eq(conn_endpoints("sim/s1", NULL), 2, "not back after the gateway restart");
    cr_assert_geq(s.unknown_heartbeat_resyncs, 1, "it came back, but not by its heartbeat");
}

Test(busgatectl, malformed_frames_dead_lettered_gateway_keeps_working)
{
    size_t big = 2u << 20;
    char *meta = malloc(big + 16);
    redisContext *c;
    ctl_out o;

    gw_start("heartbeat_interval = 1s\nheartbeat_expiry = 5s\n");
    c = valkey();
    freeReplyObject(redisCommand(c, "XADD router:control * \x01\x02 garbage"));
    freeReplyObject(redisCommand(
        c, "XADD router:control * v 9 type HELLO id a service s instance i version 1"));
    memset(meta, ' ', big);
    memcpy(meta, "{}", 2);
    meta[big] = '\0';
    freeReplyObject(redisCommand(
        c, "XADD router:control * v 1 type HELLO id b service s instance i version 1 meta %s",
        meta));
    free(meta);
    redisFree(c);
    echo_start("e1");
    WAIT_UNTIL(conn_endpoints("echo/e1", NULL) > 0, 10000);
    cr_assert_gt(conn_endpoints("echo/e1", NULL), 0, "the gateway stopped working");
    ctl(&o, "-c", gw.ini, "queues", "--json", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    json_t *q = json_loads(o.out, 0, NULL);
    json_t *control = json_object_get(q, "control");
    cr_assert_eq(json_integer_value(json_object_get(control, "dead")), 3, "%s", o.out);
    cr_assert_eq(json_integer_value(json_object_get(control, "pending")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(control, "group")), "router-gateway:gw-ctl");
    json_t *svc = json_array_get(json_object_get(q, "services"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(svc, "service")), "echo");
    cr_assert_geq(json_integer_value(json_object_get(svc, "consumers")), 1);
    json_decref(q);
    cr_assert_eq(bgt_gw_log_count(&gw, "is malformed"), 3);
    ctl(&o, "-c", gw.ini, "queues", NULL);
    cr_assert_eq(o.rc, 0);
    cr_assert(strstr(o.out, "router:requests:{echo}") != NULL, "%s", o.out);
}

/* The id printed by `busgatectl resync` ("resync ID sent to ..."). */
static void printed_id(const ctl_out *o, char *id, size_t len)
{
    cr_assert_eq(sscanf(o->out, "resync %127s", id), 1, "'%s'", o->out);
    cr_assert_lt(strlen(id), len);
}

/* 1 once an ENDPOINTS_UPDATE answering resync_id is on the control stream. */
static int answered(const char *resync_id)
{
    redisContext *c = valkey();
    redisReply *r = redisCommand(c, "XREVRANGE router:control + - COUNT 200");
    int found = 0;

    for (size_t i = 0; r != NULL && i < r->elements; i++) {
        const redisReply *kv = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < kv->elements; k += 2)
            if (strcmp(kv->element[k]->str, "resync_id") == 0 &&
                strcmp(kv->element[k + 1]->str, resync_id) == 0)
                found = 1;
    }
    freeReplyObject(r);
    redisFree(c);
    return found;
}

Test(busgatectl, resync_through_the_bus)
{
    char id[128];
    ctl_out o;

    gw_start("heartbeat_interval = 1s\nheartbeat_expiry = 5s\n");
    echo_start("e1");
    WAIT_UNTIL(conn_endpoints("echo/e1", NULL) > 0, 10000);

    ctl(&o, "-c", gw.ini, "resync", "--connection", "echo/e1", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    printed_id(&o, id, sizeof(id));
    WAIT_UNTIL(answered(id), 5000);
    cr_assert(answered(id), "echo/e1 did not answer %s", id);

    ctl(&o, "-c", gw.ini, "resync", "--service", "echo", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    printed_id(&o, id, sizeof(id));
    WAIT_UNTIL(answered(id), 5000);
    cr_assert(answered(id), "no answer to the service-wide resync");

    ctl(&o, "-c", gw.ini, "resync", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    printed_id(&o, id, sizeof(id));
    WAIT_UNTIL(answered(id), 5000);
    cr_assert(answered(id), "no answer to the fleet-wide resync");

    ctl(&o, "-c", gw.ini, "resync", "--connection", "echo/nope", NULL);
    cr_assert_eq(o.rc, 1);
    cr_assert(strstr(o.err, "unknown connection 'echo/nope'") != NULL, "'%s'", o.err);
    ctl(&o, "-c", gw.ini, "resync", "--connection", "x", "--service", "y", NULL);
    cr_assert_eq(o.rc, 2);
}

/* ---- dead letters ---- */

#define DEAD_REQUESTS "router:requests:{echo}"
#define DEAD_STREAM DEAD_REQUESTS ":dead"

/* Two late REQUESTs on a fresh echo stream, read through its group and dead-lettered as
 * the SDK does (deadline 5 s after ts, both long past). */
static void dead_letter_two(void)
{
    char err[BG_ERR_LEN];
    bg_queue_batch b = {0};
    bg_queue_opts qo;
    bg_bus_opts o;
    bg_queue *q;
    bg_bus *bus;

    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, server.url, err), BG_OK, "%s", err);
    cr_assert_not_null(bus = bg_bus_connect(&o, err), "%s", err);
    bg_queue_opts_init(&qo);
    qo.stream = DEAD_REQUESTS;
    qo.group = "router-gateway";
    qo.consumer = "e1";
    cr_assert_not_null(q = bg_queue_new(bus, &qo, err), "%s", err);
    freeReplyObject(bg_bus_command(bus, err, "DEL %s", DEAD_REQUESTS));
    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    for (int i = 7; i <= 8; i++) {
        redisReply *r = bg_bus_command(
            bus, err,
            "XADD %s * v 1 type REQUEST id gw1:1:00000000000%d ts 1700000020000 service echo "
            "method POST path /echo/%d endpoint /echo/{id} reply_to router:responses:gw1:1 "
            "deadline 1700000025000 gateway gw1 body hello",
            DEAD_REQUESTS, i, i);
        cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "XADD: %s", err);
        freeReplyObject(r);
    }
    cr_assert_eq(bg_queue_read(q, 10, 0, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 2);
    for (size_t i = 0; i < b.count; i++)
        cr_assert_eq(bg_queue_dead_letter(q, &b.entries[i], "deadline_passed", err), BG_OK, "%s",
                     err);
    bg_queue_batch_free(&b);
    bg_queue_free(q);
    bg_bus_free(bus);
}

static long long dead_xlen(const char *key)
{
    redisContext *c = valkey();
    redisReply *r = redisCommand(c, "XLEN %s", key);
    long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* The entry id of the index-th dead letter in `dead list --json`. */
static void dead_entry_id(int index, char *id, size_t len)
{
    ctl_out o;
    json_t *doc, *e;

    ctl(&o, "-u", server.url, "dead", "list", "echo", "--json", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    doc = json_loads(o.out, 0, NULL);
    e = json_array_get(json_object_get(doc, "entries"), (size_t)index);
    cr_assert_not_null(e, "%s", o.out);
    snprintf(id, len, "%s", json_string_value(json_object_get(e, "entry_id")));
    json_decref(doc);
}

Test(busgatectl, dead_list_and_show)
{
    json_t *doc, *e;
    char id[64];
    ctl_out o;

    dead_letter_two();
    ctl(&o, "-u", server.url, "dead", "list", "echo", "--json", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    doc = json_loads(o.out, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(doc, "total")), 2, "%s", o.out);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "stream")), DEAD_STREAM);
    e = json_array_get(json_object_get(doc, "entries"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(e, "request_id")), "gw1:1:000000000007");
    cr_assert_str_eq(json_string_value(json_object_get(e, "method")), "POST");
    cr_assert_str_eq(json_string_value(json_object_get(e, "path")), "/echo/7");
    cr_assert_str_eq(json_string_value(json_object_get(e, "dead_reason")), "deadline_passed");
    cr_assert_eq(json_integer_value(json_object_get(e, "deliveries")), 1);
    cr_assert_gt(json_integer_value(json_object_get(e, "dead_at_ms")), 1700000025000);
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(e, "entry_id")));
    json_decref(doc);

    ctl(&o, "-u", server.url, "dead", "list", "echo", "--count", "1", "--json", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    doc = json_loads(o.out, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(doc, "entries")), 1, "%s", o.out);
    json_decref(doc);
    ctl(&o, "-u", server.url, "dead", "list", "echo", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    cr_assert(strstr(o.out, "2 dead letter(s)") != NULL, "%s", o.out);
    cr_assert(strstr(o.out, "gw1:1:000000000008") != NULL, "%s", o.out);

    ctl(&o, "-u", server.url, "dead", "show", "echo", id, NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    cr_assert(strstr(o.out, "dead_reason      deadline_passed\n") != NULL, "%s", o.out);
    cr_assert(strstr(o.out, "path             /echo/7\n") != NULL, "%s", o.out);
    cr_assert(strstr(o.out, "body             hello\n") != NULL, "%s", o.out);

    ctl(&o, "-u", server.url, "dead", "show", "echo", "1-1", NULL);
    cr_assert_eq(o.rc, 1);
    cr_assert(strstr(o.err, "no dead letter 1-1") != NULL, "'%s'", o.err);
    ctl(&o, "-u", server.url, "dead", "list", "nosuch", NULL);
    cr_assert_eq(o.rc, 1);
    cr_assert(strstr(o.err, "unknown service 'nosuch'") != NULL, "'%s'", o.err);
    ctl(&o, "-u", server.url, "dead", "show", "echo", "not-an-id", NULL);
    cr_assert_eq(o.rc, 2);
    ctl(&o, "-u", server.url, "dead", "purge", "echo", NULL);
    cr_assert_eq(o.rc, 2, "purge needs ENTRY_ID or --all");
}

/* The replayed entry: a valid REQUEST, the original's fields, no dead_*, a fresh deadline
 * with the original 5 s budget. */
static void expect_replayed(const char *new_id)
{
    char err[BG_ERR_LEN];
    bg_field fields[BG_FRAME_FIELDS_MAX];
    redisContext *c = valkey();
    redisReply *r = redisCommand(c, "XRANGE %s %s %s", DEAD_REQUESTS, new_id, new_id);
    const redisReply *kv;
    bg_frame f;
    size_t n = 0;

    cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1, "no entry %s", new_id);
    kv = r->element[0]->element[1];
    for (size_t i = 0; i + 1 < kv->elements; i += 2, n++) {
        cr_assert(strncmp(kv->element[i]->str, "dead_", 5) != 0, "%s kept", kv->element[i]->str);
        fields[n] = (bg_field){{kv->element[i]->str, kv->element[i]->len},
                               {kv->element[i + 1]->str, kv->element[i + 1]->len}};
    }
    cr_assert_eq(bg_frame_decode(fields, n, &f, err), BG_OK, "%s", err);
    cr_assert_str_eq(f.id, "gw1:1:000000000007");
    cr_assert_str_eq((const char *)f.path.ptr, "/echo/7");
    cr_assert_eq(f.body.len, 5);
    cr_assert_gt(f.deadline_ms, bg_wall_ms() + 3000, "the deadline is not fresh");
    cr_assert_eq(f.deadline_ms - f.ts, 5000);
    bg_frame_free(&f);
    freeReplyObject(r);
    redisFree(c);
}

Test(busgatectl, dead_replay_and_purge)
{
    char id[64], other[64], new_id[64], want[256];
    long long before = 0;
    ctl_out o;

    dead_letter_two();
    before = dead_xlen(DEAD_REQUESTS);
    dead_entry_id(0, id, sizeof(id));
    dead_entry_id(1, other, sizeof(other));
    ctl(&o, "-u", server.url, "dead", "replay", "echo", id, NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    snprintf(want, sizeof(want), "replayed %s as %%63s on " DEAD_REQUESTS, id);
    cr_assert_eq(sscanf(o.out, want, new_id), 1, "'%s'", o.out);
    expect_replayed(new_id);
    cr_assert_eq(dead_xlen(DEAD_REQUESTS), before + 1);
    cr_assert_eq(dead_xlen(DEAD_STREAM), 1);
    ctl(&o, "-u", server.url, "dead", "replay", "echo", id, NULL);
    cr_assert_eq(o.rc, 1, "a second replay of one entry");
    cr_assert(strstr(o.err, "no dead letter") != NULL, "'%s'", o.err);

    ctl(&o, "-u", server.url, "dead", "purge", "echo", other, NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    cr_assert_eq(dead_xlen(DEAD_STREAM), 0);
    ctl(&o, "-u", server.url, "dead", "purge", "echo", other, NULL);
    cr_assert_eq(o.rc, 1);

    dead_letter_two();
    ctl(&o, "-u", server.url, "dead", "replay", "echo", "--all", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    cr_assert(strstr(o.out, "replayed 2 dead letter(s)") != NULL, "%s", o.out);
    cr_assert_eq(dead_xlen(DEAD_STREAM), 0);
    dead_letter_two();
    ctl(&o, "-u", server.url, "dead", "purge", "echo", "--all", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    cr_assert(strstr(o.out, "purged 2 dead letter(s)") != NULL, "%s", o.out);
    cr_assert_eq(dead_xlen(DEAD_STREAM), 0);
}

/* ---- many gateways on one bus ---- */

static int gateways_listed(const char *const *want, int nwant)
{
    ctl_out o;
    json_t *list, *g;
    size_t i;
    int found = 0;

    ctl(&o, "-c", gw.ini, "gateways", "--json", NULL);
    if (o.rc != 0 || (list = json_loads(o.out, 0, NULL)) == NULL)
        return -1;
    json_array_foreach(list, i, g)
    {
        for (int k = 0; k < nwant; k++)
            found += strcmp(json_string_value(json_object_get(g, "gateway")), want[k]) == 0;
    }
    found = found == nwant && (int)json_array_size(list) == nwant ? nwant : -1;
    json_decref(list);
    return found;
}

/* Each gateway keeps its own state document; busgatectl finds every one of them on the
 * bus (gateways), and state names the others; a gateway that stops leaves the list. */
Test(busgatectl, gateways_lists_every_gateway_on_the_bus)
{
    const char *const both[] = {"gw-ctl", "gw-two"}, *const one[] = {"gw-ctl"};
    bgt_gw_opts o2 = {.valkey_url = server.url,
                      .workers = 1,
                      .extra_gateway = "instance_id = gw-two\n",
                      /* a master writes its state every heartbeat interval */
                      .extra = "[messaging]\nheartbeat_interval = 2s\n"};
    bgt_gw two;
    ctl_out o;
    int n = -1;

    gw_start("heartbeat_interval = 2s\n");
    cr_assert_eq(bgt_gw_init(&two, &o2), 0);
    cr_assert_eq(bgt_gw_start(&two), 0, "second busgated did not start (see %s)", two.log);
    WAIT_UNTIL((n = gateways_listed(both, 2)) == 2, 20000);
    cr_assert_eq(n, 2, "busgatectl gateways did not list gw-ctl and gw-two alone");
    ctl(&o, "-c", gw.ini, "state", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    cr_assert(strstr(o.out, "other gateways on this bus: gw-two") != NULL, "%s", o.out);
    ctl(&o, "-c", gw.ini, "gateways", NULL);
    cr_assert_eq(o.rc, 0, "%s", o.err);
    cr_assert(strstr(o.out, "gw-ctl") != NULL && strstr(o.out, "gw-two") != NULL, "%s", o.out);
    bgt_gw_stop(&two);
    WAIT_UNTIL((n = gateways_listed(one, 1)) == 1, 20000);
    cr_assert_eq(n, 1, "a stopped gateway is still listed");
}
