/* test_busview.c: the master's bus view: the shared table itself, and the control plane
 * sampling a service's backlog against a private valkey-server, trimming only what was
 * acknowledged, counting request dead letters, and marking the gateway warm. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "busgate/routing/breaker.h"
#include "busgate/routing/bus_view.h"
#include "busgate/control/control.h"
#include "busgate/proto/frame.h"
#include "busgate/core/log.h"
#include "busgate/metrics/metrics.h"
#include "valkey_harness.h"

#define SVC_KEY "router:requests:{orders}"
#define DEAD_KEY "router:requests:{orders}:dead"

/* ---- the table ---- */

Test(busview, put_get_and_visit)
{
    char err[BG_ERR_LEN], name[16];
    bg_busview *v = bg_bv_create(err);
    bg_bv_sample s = {.lag = 7, .pending = 3, .sampled_ms = 42}, got;

    cr_assert_not_null(v, "%s", err);
    cr_assert_eq(bg_bv_warm(v), 0);
    cr_assert_eq(bg_bv_get(v, "orders", &got), BG_ERR, "a service never sampled has no entry");
    cr_assert_eq(bg_bv_put(v, "orders", &s), BG_OK);
    s.lag = 9;
    cr_assert_eq(bg_bv_put(v, "orders", &s), BG_OK, "a second sample replaces the first");
    cr_assert_eq(bg_bv_get(v, "orders", &got), BG_OK);
    cr_assert_eq(got.lag, 9);
    cr_assert_eq(got.pending, 3);
    cr_assert_eq(bg_bv_get(v, "order", &got), BG_ERR);
    bg_bv_set_warm(v);
    cr_assert_eq(bg_bv_warm(v), 1);
    cr_assert_eq(bg_bv_warm(NULL), 0);
    bg_bv_destroy(v);

    v = bg_bv_create(err);
    for (int i = 0; i < BG_BV_MAX_SERVICES; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        cr_assert_eq(bg_bv_put(v, name, &s), BG_OK, "service %d", i);
    }
    cr_assert_eq(bg_bv_put(v, "one-too-many", &s), BG_ERR, "a full table refuses new names");
    cr_assert_eq(bg_bv_put(v, "s5", &s), BG_OK, "known names still update");
    bg_bv_destroy(v);
}

/* Workers map it after fork: a sample the parent writes is what the child reads. */
Test(busview, shared_across_fork)
{
    char err[BG_ERR_LEN];
    bg_busview *v = bg_bv_create(err);
    bg_bv_sample s = {.lag = 1};
    int status;
    pid_t pid;

    cr_assert_not_null(v, "%s", err);
    cr_assert_eq(bg_bv_put(v, "echo", &s), BG_OK);
    pid = fork();
    if (pid == 0) {
        bg_bv_sample got;
        for (int i = 0; i < 500; i++) {
            if (bg_bv_get(v, "echo", &got) == BG_OK && got.lag == 2 && bg_bv_warm(v))
                _exit(0);
            usleep(10000);
        }
        _exit(1);
    }
    s.lag = 2;
    cr_assert_eq(bg_bv_put(v, "echo", &s), BG_OK);
    bg_bv_set_warm(v);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child never saw the sample");
    bg_bv_destroy(v);
}

/* ---- sampling by the control plane ---- */

static bgt_valkey server;

static void server_up(void)
{
    /* Small stream nodes, so that approximate trimming (MINID ~) can act on 300 entries. */
    const char *const extra[] = {"--stream-node-max-entries", "10", NULL};

    bg_log_set_level(BG_LOG_CRIT);
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(bgt_valkey_start(&server, extra), 0, "valkey-server did not start");
}

static void server_down(void)
{
    bgt_valkey_stop(&server);
}

typedef struct fx {
    bg_config cfg;
    bg_rt *rt;
    bg_ev *loop;
    bg_control *ctl;
    bg_busview *view;
    bg_breaker *brk;
    bg_metrics *metrics;
    bg_bus *cli;
} fx;

#define RUN_UNTIL(f, cond, ms)                                                                     \
    do {                                                                                           \
        int64_t end_ = bg_mono_ms() + (ms);                                                        \
        while (!(cond) && bg_mono_ms() < end_)                                                     \
            bg_ev_run_once((f)->loop, 10, NULL);                                                   \
    } while (0)

static redisReply *cmd(fx *f, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(bg_bus_context(f->cli), fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "command failed");
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s", r->str);
    return r;
}

static long long cmd_int(fx *f, const char *fmt, ...)
{
    redisReply *r;
    long long v;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(bg_bus_context(f->cli), fmt, ap);
    va_end(ap);
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER, "not an integer reply");
    v = r->integer;
    freeReplyObject(r);
    return v;
}

static void fx_open(fx *f)
{
    bg_rt_limits lim = {.max_services = 8, .max_connections = 8, .max_endpoints = 64};
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;

    memset(f, 0, sizeof(*f));
    bg_config_defaults(&f->cfg);
    snprintf(f->cfg.gateway.instance_id, sizeof(f->cfg.gateway.instance_id), "gw1");
    snprintf(f->cfg.valkey.url, sizeof(f->cfg.valkey.url), "%s", server.url);
    cr_assert_eq(bg_valkey_url_parse(server.url, &f->cfg.valkey.addr, err), BG_OK, "%s", err);
    f->cfg.messaging.stream_maxlen = 100;
    f->cfg.routing.max_services = lim.max_services;
    f->cfg.routing.max_connections = lim.max_connections;
    f->cfg.routing.max_endpoints = lim.max_endpoints;
    bg_bus_opts_init(&o);
    o.addr = f->cfg.valkey.addr;
    f->cli = bg_bus_connect(&o, err);
    cr_assert_not_null(f->cli, "%s", err);
    freeReplyObject(cmd(f, "FLUSHALL"));
    f->rt = bg_rt_create(&lim, err);
    f->loop = bg_ev_new(err);
    f->view = bg_bv_create(err);
    f->brk = bg_brk_create(err);
    f->metrics = bg_metrics_create(2, err);
    cr_assert(f->rt && f->loop && f->view && f->brk && f->metrics, "%s", err);
    f->ctl = bg_control_new(&f->cfg, f->rt, f->loop, err);
    cr_assert_not_null(f->ctl, "%s", err);
    bg_control_set_metrics(f->ctl, f->metrics);
    bg_control_set_busview(f->ctl, f->view);
    bg_control_set_breaker(f->ctl, f->brk);
    RUN_UNTIL(f, cmd_int(f, "XLEN router:broadcast") >= 1, 5000);
    cr_assert_geq(cmd_int(f, "XLEN router:broadcast"), 1, "no startup resync");
}

static void fx_close(fx *f)
{
    bg_control_free(f->ctl);
    bg_ev_free(f->loop);
    bg_rt_destroy(f->rt);
    bg_bv_destroy(f->view);
    bg_brk_destroy(f->brk);
    bg_metrics_destroy(f->metrics);
    bg_bus_free(f->cli);
}

/* A HELLO puts service "orders" in the registry: it is sampled from then on. */
static void hello(fx *f)
{
    const char *head[] = {"XADD", "router:control", "*"};
    const char **argv;
    const size_t *lens;
    char err[BG_ERR_LEN] = "";
    bg_frame_wire w;
    bg_frame fr;
    redisReply *r;
    int argc;

    bg_frame_init(&fr, BG_FRAME_HELLO);
    snprintf(fr.id, sizeof(fr.id), "h1");
    snprintf(fr.service, sizeof(fr.service), "orders");
    snprintf(fr.instance, sizeof(fr.instance), "o1");
    snprintf(fr.svc_version, sizeof(fr.svc_version), "1.0");
    cr_assert_eq(bg_frame_encode(&fr, &w, err), BG_OK, "%s", err);
    cr_assert_eq(bg_frame_wire_command(&w, head, NULL, 3, &argc, &argv, &lens), BG_OK);
    r = bg_bus_command_argv(f->cli, argc, argv, lens, err);
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "XADD: %s", err);
    freeReplyObject(r);
    bg_frame_wire_free(&w);
    bg_frame_free(&fr);
}

static long long dead_letters(fx *f)
{
    const char *name = "busgate_dead_letters_total ";
    char *text = NULL, *line;
    size_t len = 0;
    long long v = -1;

    cr_assert_eq(bg_metrics_render_prometheus(f->metrics, &text, &len), BG_OK);
    for (line = strstr(text, name); line != NULL; line = strstr(line + 1, name))
        if (line == text || line[-1] == '\n') {
            v = strtoll(line + strlen(name), NULL, 10);
            break;
        }
    free(text);
    return v;
}

/* Stream ids "ms-seq" in order: a <= b. */
static int id_le(const char *a, const char *b)
{
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;

    cr_assert_eq(sscanf(a, "%llu-%llu", &am, &as), 2);
    cr_assert_eq(sscanf(b, "%llu-%llu", &bm, &bs), 2);
    return am < bm || (am == bm && as <= bs);
}

TestSuite(busview_sample, .init = server_up, .fini = server_down, .timeout = 60);

Test(busview_sample, warm_after_the_startup_resync)
{
    fx f;

    fx_open(&f);
    RUN_UNTIL(&f, bg_bv_warm(f.view), 10000);
    cr_assert(bg_bv_warm(f.view), "never warm after the startup resync");
    fx_close(&f);
}

/* 300 requests: 150 read (of which 120 acked, 30 pending), 150 unread, stream_maxlen 100.
 * The sample says lag 150, pending 30; the trim drops acked entries only. */
Test(busview_sample, backlog_sampled_and_only_acked_entries_trimmed)
{
    bg_bv_sample s = {0};
    char first_pending[64];
    redisReply *r;
    fx f;

    fx_open(&f);
    freeReplyObject(cmd(&f, "XGROUP CREATE " SVC_KEY " router-gateway $ MKSTREAM"));
    for (int i = 0; i < 300; i++)
        freeReplyObject(cmd(&f, "XADD " SVC_KEY " * n %d", i));
    r = cmd(&f, "XREADGROUP GROUP router-gateway c1 COUNT 150 STREAMS " SVC_KEY " >");
    cr_assert_eq(r->element[0]->element[1]->elements, 150);
    for (int i = 0; i < 120; i++)
        freeReplyObject(cmd(&f, "XACK " SVC_KEY " router-gateway %s",
                            r->element[0]->element[1]->element[i]->element[0]->str));
    snprintf(first_pending, sizeof(first_pending), "%s",
             r->element[0]->element[1]->element[120]->element[0]->str);
    freeReplyObject(r);
    hello(&f);
    RUN_UNTIL(&f, bg_bv_get(f.view, "orders", &s) == BG_OK && s.lag == 150, 10000);
    cr_assert_eq(bg_bv_get(f.view, "orders", &s), BG_OK, "never sampled");
    cr_assert_eq(s.lag, 150);
    cr_assert_eq(s.pending, 30);
    cr_assert_eq(s.groups, 1);
    cr_assert_eq(s.consumers, 1);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN " SVC_KEY) < 300, 5000);
    cr_assert_lt(cmd_int(&f, "XLEN " SVC_KEY), 300, "acknowledged entries were never trimmed");
    cr_assert_geq(cmd_int(&f, "XLEN " SVC_KEY), 180, "unread or pending entries were trimmed");
    r = cmd(&f, "XRANGE " SVC_KEY " - + COUNT 1");
    cr_assert_eq(r->elements, 1);
    cr_assert(id_le(r->element[0]->element[0]->str, first_pending),
              "the oldest pending entry %s was trimmed (first left: %s)", first_pending,
              r->element[0]->element[0]->str);
    freeReplyObject(r);
    fx_close(&f);
}

Test(busview_sample, request_dead_letters_are_counted)
{
    bg_bv_sample s = {0};
    fx f;

    fx_open(&f);
    freeReplyObject(cmd(&f, "XGROUP CREATE " SVC_KEY " router-gateway $ MKSTREAM"));
    hello(&f);
    RUN_UNTIL(&f, bg_bv_get(f.view, "orders", &s) == BG_OK, 10000);
    cr_assert_eq(bg_bv_get(f.view, "orders", &s), BG_OK, "never sampled");
    cr_assert_eq(dead_letters(&f), 0);
    for (int i = 0; i < 3; i++)
        freeReplyObject(cmd(&f, "XADD " DEAD_KEY " * dead_reason deadline_passed"));
    RUN_UNTIL(&f, dead_letters(&f) == 3, 10000);
    cr_assert_eq(dead_letters(&f), 3, "request dead letters not counted");
    freeReplyObject(cmd(&f, "DEL " DEAD_KEY)); /* a purge does not make the counter go back */
    RUN_UNTIL(&f, bg_bv_get(f.view, "orders", &s) == BG_OK && s.dead_added == 0, 10000);
    freeReplyObject(cmd(&f, "XADD " DEAD_KEY " * dead_reason max_deliveries"));
    RUN_UNTIL(&f, dead_letters(&f) == 4, 10000);
    cr_assert_eq(dead_letters(&f), 4);
    fx_close(&f);
}

/* The age of the oldest request waiting or pending, from the times in the stream ids
 * against the server's clock: ids a minute and half a minute old. A sampled service also
 * gets its circuit breaker entry (closed). */
Test(busview_sample, oldest_waiting_or_pending_age_is_sampled)
{
    bg_bv_sample s = {0};
    bg_brk_info bi;
    long long now;
    redisReply *r;
    fx f;

    fx_open(&f);
    freeReplyObject(cmd(&f, "XGROUP CREATE " SVC_KEY " router-gateway $ MKSTREAM"));
    r = cmd(&f, "TIME");
    now =
        strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    freeReplyObject(cmd(&f, "XADD " SVC_KEY " %lld-0 n 1", now - 60000));
    freeReplyObject(cmd(&f, "XADD " SVC_KEY " %lld-0 n 2", now - 30000));
    freeReplyObject(cmd(&f, "XREADGROUP GROUP router-gateway c1 COUNT 1 STREAMS " SVC_KEY " >"));
    hello(&f);
    RUN_UNTIL(&f, bg_bv_get(f.view, "orders", &s) == BG_OK && s.pending == 1, 10000);
    cr_assert_eq(s.pending, 1, "never sampled");
    cr_assert(s.oldest_ms >= 60000 && s.oldest_ms < 70000, "oldest %lld ms, the pending one",
              (long long)s.oldest_ms);
    cr_assert_eq(bg_brk_get(f.brk, "orders", &bi), BG_OK, "no breaker entry");
    cr_assert_eq(bi.state, BG_BRK_CLOSED);
    freeReplyObject(cmd(&f, "XACK " SVC_KEY " router-gateway %lld-0", now - 60000));
    RUN_UNTIL(&f, bg_bv_get(f.view, "orders", &s) == BG_OK && s.pending == 0, 10000);
    cr_assert(s.oldest_ms >= 30000 && s.oldest_ms < 40000, "oldest %lld ms, the unread one",
              (long long)s.oldest_ms);
    freeReplyObject(cmd(&f, "XREADGROUP GROUP router-gateway c1 COUNT 1 STREAMS " SVC_KEY " >"));
    freeReplyObject(cmd(&f, "XACK " SVC_KEY " router-gateway %lld-0", now - 30000));
    RUN_UNTIL(&f, bg_bv_get(f.view, "orders", &s) == BG_OK && s.lag == 0 && s.oldest_ms == 0,
              10000);
    cr_assert_eq(s.oldest_ms, 0, "nothing waits: no age");
    fx_close(&f);
}
