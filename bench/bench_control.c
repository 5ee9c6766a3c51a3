/* bench_control.c: time from XADD of an ENDPOINTS_UPDATE to the route being visible in the shared
 * routing table, through an in-process bg_control on a private valkey-server. Prints figures. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busgate/bus/bus.h"
#include "busgate/control/control.h"
#include "busgate/proto/frame.h"
#include "busgate/core/log.h"
#include "valkey_harness.h"

#define BENCH_UPDATES 1000
#define BENCH_VISIBLE_LIMIT_US 2000000 /* one update visible within 2 s, or the run stops */
#define BIG_SERVICES 250
#define BIG_INSTANCES 4
#define BIG_ENDPOINTS 10 /* per instance: 250 * 4 * 10 = 10,000 endpoints */

typedef struct bench {
    bg_config cfg;
    bg_rt *rt;
    bg_ev *loop;
    bg_control *ctl;
    bg_bus *cli;
    pthread_t thread;
    int running;
    atomic_int stop;
} bench;

/* The master's loop, in its own thread as in busgated; main only XADDs and looks up. */
static void *bench_loop(void *arg)
{
    bench *b = arg;

    while (!atomic_load(&b->stop))
        bg_ev_run_once(b->loop, 10, NULL);
    return NULL;
}

static int bench_xadd_endpoints(bench *b, const char *svc, const char *inst, json_t *meta,
                                char *err)
{
    const char *head[] = {"XADD", "router:control", "*"};
    const char **argv;
    const size_t *lens;
    bg_frame_wire w;
    redisReply *r;
    bg_frame f;
    int argc, rc = BG_ERR;

    bg_frame_init(&f, BG_FRAME_ENDPOINTS_UPDATE);
    bg_random_id(f.id);
    snprintf(f.service, sizeof(f.service), "%s", svc);
    snprintf(f.instance, sizeof(f.instance), "%s", inst);
    snprintf(f.svc_version, sizeof(f.svc_version), "1.0");
    f.meta = meta; /* taken over: bg_frame_free drops it */
    if (bg_frame_encode(&f, &w, err) != BG_OK ||
        bg_frame_wire_command(&w, head, NULL, 3, &argc, &argv, &lens) != BG_OK)
        goto cleanup;
    r = bg_bus_command_argv(b->cli, argc, argv, lens, err);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        rc = BG_OK;
    else if (r != NULL)
        bg_set_error(err, "XADD: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r != NULL)
        bg_bus_reply_free(r);
cleanup:
    bg_frame_wire_free(&w);
    bg_frame_free(&f);
    return rc;
}

/* n endpoints "/<svc>/r<k>/{id}" plus, when extra is set, "GET <extra>". */
static json_t *bench_meta(const char *svc, int n, const char *extra)
{
    json_t *eps = json_array();
    char path[128];

    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof(path), "/%s/r%d/{id}", svc, k);
        json_array_append_new(eps, json_pack("{s:s, s:s}", "method", "GET", "path", path));
    }
    if (extra != NULL)
        json_array_append_new(eps, json_pack("{s:s, s:s}", "method", "GET", "path", extra));
    return json_pack("{s:o}", "endpoints", eps);
}

/* Polls like a worker would see it, every 20 us: a busy spin would take a
 * core from the master loop and Valkey on a 2-core machine. */
static int bench_visible(bench *b, const char *path, int64_t limit_us)
{
    const struct timespec nap = {.tv_sec = 0, .tv_nsec = 20 * 1000};
    int64_t end = bg_mono_us() + limit_us;
    bg_rt_match m;

    while (bg_mono_us() < end) {
        bg_rt_lookup(b->rt, "GET", path, strlen(path), &m);
        if (m.status == BG_RT_FOUND)
            return BG_OK;
        nanosleep(&nap, NULL);
    }
    return BG_ERR;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* BENCH_UPDATES updates of one instance, each adding a new path; latency in us. */
static int bench_measure(bench *b, const char *label)
{
    int64_t *lat = calloc(BENCH_UPDATES, sizeof(*lat));
    char path[64], err[BG_ERR_LEN];
    int n = 0;

    for (; lat != NULL && n < BENCH_UPDATES; n++) {
        snprintf(path, sizeof(path), "/bench/v%d", n);
        int64_t t0 = bg_mono_us();
        if (bench_xadd_endpoints(b, "bench", "m1", bench_meta("bench", 10, path), err) != BG_OK)
            break;
        if (bench_visible(b, path, BENCH_VISIBLE_LIMIT_US) != BG_OK) {
            snprintf(err, sizeof(err), "update %d not visible within 2 s", n);
            break;
        }
        lat[n] = bg_mono_us() - t0;
    }
    if (n < BENCH_UPDATES) {
        fprintf(stderr, "bench_control: %s: %s\n", label, lat ? err : "out of memory");
        free(lat);
        return BG_ERR;
    }
    qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
    printf("control: %-34s %d updates: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms "
           "(target p99 < 5 ms)\n",
           label, n, lat[n / 2] / 1000.0, lat[n * 9 / 10] / 1000.0, lat[n * 99 / 100] / 1000.0,
           lat[n - 1] / 1000.0);
    free(lat);
    return BG_OK;
}

/* 10,000 endpoints over 1,000 connections of 250 services, then wait until routed. */
static int bench_fill(bench *b)
{
    char svc[32], inst[32], last[64], err[BG_ERR_LEN];

    for (int s = 0; s < BIG_SERVICES; s++) {
        snprintf(svc, sizeof(svc), "svc%d", s);
        for (int i = 0; i < BIG_INSTANCES; i++) {
            snprintf(inst, sizeof(inst), "i%d", i);
            if (bench_xadd_endpoints(b, svc, inst, bench_meta(svc, BIG_ENDPOINTS, NULL), err) !=
                BG_OK) {
                fprintf(stderr, "bench_control: fill: %s\n", err);
                return BG_ERR;
            }
        }
    }
    snprintf(last, sizeof(last), "/svc%d/r%d/1", BIG_SERVICES - 1, BIG_ENDPOINTS - 1);
    return bench_visible(b, last, 30 * 1000000LL);
}

static int bench_open(bench *b, const bgt_valkey *v, char *err)
{
    bg_rt_limits lim;
    bg_bus_opts o;

    bg_config_defaults(&b->cfg);
    snprintf(b->cfg.gateway.instance_id, sizeof(b->cfg.gateway.instance_id), "bench");
    if (bg_valkey_url_parse(v->url, &b->cfg.valkey.addr, err) != BG_OK)
        return BG_ERR;
    lim = (bg_rt_limits){.max_services = b->cfg.routing.max_services,
                         .max_connections = b->cfg.routing.max_connections,
                         .max_endpoints = b->cfg.routing.max_endpoints};
    b->rt = bg_rt_create(&lim, err);
    b->loop = b->rt != NULL ? bg_ev_new(err) : NULL;
    b->ctl = b->loop != NULL ? bg_control_new(&b->cfg, b->rt, b->loop, err) : NULL;
    if (b->ctl == NULL)
        return BG_ERR;
    bg_bus_opts_init(&o);
    o.addr = b->cfg.valkey.addr;
    b->cli = bg_bus_connect(&o, err);
    if (b->cli == NULL)
        return BG_ERR;
    /* the group is made with the startup resync: wait for it before writing */
    for (int i = 0; i < 500; i++) {
        redisReply *r = bg_bus_command(b->cli, err, "XLEN router:broadcast");
        long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        if (r != NULL)
            bg_bus_reply_free(r);
        if (n > 0) {
            b->running = pthread_create(&b->thread, NULL, bench_loop, b) == 0;
            return b->running ? BG_OK : BG_ERR;
        }
        bg_ev_run_once(b->loop, 10, NULL);
    }
    bg_set_error(err, "the control plane did not start");
    return BG_ERR;
}

static void bench_close(bench *b)
{
    if (b->running) {
        atomic_store(&b->stop, 1);
        pthread_join(b->thread, NULL);
    }
    bg_control_free(b->ctl);
    bg_ev_free(b->loop);
    bg_bus_free(b->cli);
    if (b->rt != NULL)
        bg_rt_destroy(b->rt);
}

int main(void)
{
    char err[BG_ERR_LEN] = "";
    bench b = {0};
    bgt_valkey v;
    int rc = 1;

    bg_log_set_level(BG_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    if (bgt_valkey_start(&v, NULL) != 0) {
        fprintf(stderr, "bench_control: could not start %s\n", bgt_valkey_binary());
        return 1;
    }
    if (bench_open(&b, &v, err) != BG_OK) {
        fprintf(stderr, "bench_control: %s\n", err);
        goto cleanup;
    }
    printf("control: XADD ENDPOINTS_UPDATE -> route visible in shared memory (%s)\n",
           bgt_valkey_binary());
    if (bench_measure(&b, "1 connection, 11 endpoints:") != BG_OK || bench_fill(&b) != BG_OK ||
        bench_measure(&b, "1,001 connections, 10,011 endpoints:") != BG_OK)
        goto cleanup;
    rc = 0;
cleanup:
    bench_close(&b);
    bgt_valkey_stop(&v);
    return rc;
}
