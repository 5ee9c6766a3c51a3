/* bench_bus.c: pipelined XADD throughput through bg_abus against valkey-benchmark -P 16,
 * side by side on one private valkey-server. Prints figures; never fails on them. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "busgate/bus/bus_async.h"
#include "busgate/core/log.h"
#include "valkey_harness.h"

#define BENCH_N 200000
#define BENCH_WINDOW 1000
#define SWEEP_N 50000
#define RUN_LIMIT_MS 120000

typedef struct bench_run {
    bg_abus *bus;
    long total, sent, done, errors;
} bench_run;

/* What one measurement found. cpu_us is this process's user+system time per
 * command: less noisy than ops/s when other work shares the cores. */
typedef struct bench_result {
    double ops, per_write, per_read, cpu_us;
} bench_result;

static int64_t bench_cpu_us(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static const char *xadd_argv[] = {"XADD", "benchstream", "*", "f", "v"};
static const size_t xadd_len[] = {4, 11, 1, 1, 1};

static void bench_on_xadd(bg_abus *b, redisReply *r, void *arg);

static int bench_send(bench_run *x)
{
    if (bg_abus_command_argv(x->bus, bench_on_xadd, x, 5, xadd_argv, xadd_len) != BG_OK)
        return BG_ERR;
    x->sent++;
    return BG_OK;
}

/* Each reply makes room for one more command: the window stays full, and the
 * replacements issued while a read is parsed leave together in the next write. */
static void bench_on_xadd(bg_abus *b, redisReply *r, void *arg)
{
    bench_run *x = arg;

    (void)b;
    x->done++;
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        x->errors++;
    if (r != NULL && x->sent < x->total && bench_send(x) != BG_OK)
        x->errors++;
}

static void bench_on_done(bg_abus *b, redisReply *r, void *arg)
{
    (void)b;
    *(int *)arg = r != NULL ? 1 : -1;
}

/* Run one command to completion (setup and cleanup between measurements). */
static int bench_sync(bg_ev *loop, bg_abus *bus, const char *cmd)
{
    int64_t end = bg_mono_ms() + 10000;
    int done = 0;

    if (bg_abus_command(bus, bench_on_done, &done, cmd) != BG_OK)
        return BG_ERR;
    while (done == 0 && bg_mono_ms() < end)
        bg_ev_run_once(loop, 50, NULL);
    return done == 1 ? BG_OK : BG_ERR;
}

/* n XADDs through bus with window commands in flight; ops 0 on error. */
static bench_result bench_ours(bg_ev *loop, bg_abus *bus, long n, long window)
{
    bench_run x = {.bus = bus, .total = n};
    bench_result res = {0};
    unsigned long w0, r0, w1, r1;
    int64_t start, end, cpu0, limit = bg_mono_ms() + RUN_LIMIT_MS;

    if (bench_sync(loop, bus, "DEL benchstream") != BG_OK)
        return res;
    bg_abus_set_max_inflight(bus, (size_t)window);
    bg_abus_io_counts(bus, &w0, &r0);
    cpu0 = bench_cpu_us();
    start = bg_mono_us();
    while (x.sent < window && x.sent < n)
        if (bench_send(&x) != BG_OK)
            return res;
    while (x.done < n && x.errors == 0 && bg_mono_ms() < limit)
        bg_ev_run_once(loop, 100, NULL);
    end = bg_mono_us();
    bg_abus_io_counts(bus, &w1, &r1);
    if (x.done < n || x.errors != 0) {
        fprintf(stderr, "bench_bus: run failed: %ld of %ld done, %ld errors (%s)\n", x.done, n,
                x.errors, bg_abus_last_error(bus));
        return res;
    }
    res.cpu_us = (double)(bench_cpu_us() - cpu0) / (double)n;
    res.per_write = (double)n / (double)(w1 - w0 ? w1 - w0 : 1);
    res.per_read = (double)n / (double)(r1 - r0 ? r1 - r0 : 1);
    res.ops = (double)n * 1e6 / (double)(end - start > 0 ? end - start : 1);
    return res;
}

static void bench_print(const char *what, const bench_result *r)
{
    printf("%s %9.0f ops/s, %.2f us CPU per command here, %.0f commands per write, %.0f "
           "replies per read\n",
           what, r->ops, r->cpu_us, r->per_write, r->per_read);
}

/* The requests-per-second figure from valkey-benchmark -q output, 0 if none. */
static double bench_reference(int port, long n)
{
    const char *tool =
        strcmp(bgt_valkey_binary(), "valkey-server") == 0 ? "valkey-benchmark" : "redis-benchmark";
    char cmd[256], line[512];
    double rps = 0;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "%s -p %d -P 16 -n %ld -q XADD benchstream '*' f v 2>&1", tool, port,
             n);
    p = popen(cmd, "r");
    if (p == NULL) {
        perror("bench_bus: popen");
        return 0;
    }
    /* Progress lines end in \r and the result follows the last ": ". */
    while (fgets(line, sizeof(line), p) != NULL) {
        char *seg = strrchr(line, '\r'), *colon, *rest = seg != NULL ? seg + 1 : line;
        if (strstr(rest, "requests per second") == NULL)
            continue;
        colon = strstr(rest, ": ");
        if (colon != NULL)
            rps = strtod(colon + 2, NULL);
    }
    if (pclose(p) != 0)
        fprintf(stderr, "bench_bus: %s exited with an error\n", tool);
    return rps;
}

static bg_abus *bench_connect(bg_ev *loop, int port)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;
    bg_abus *bus;
    int64_t end = bg_mono_ms() + 10000;

    bg_bus_opts_init(&o);
    snprintf(o.addr.host, sizeof(o.addr.host), "127.0.0.1");
    o.addr.port = port;
    o.command_timeout_ms = 30000;
    bus = bg_abus_new(loop, &o, err);
    if (bus == NULL) {
        fprintf(stderr, "bench_bus: %s\n", err);
        return NULL;
    }
    while (!bg_abus_connected(bus) && bg_mono_ms() < end)
        bg_ev_run_once(loop, 50, NULL);
    if (!bg_abus_connected(bus)) {
        fprintf(stderr, "bench_bus: no connection: %s\n", bg_abus_last_error(bus));
        bg_abus_free(bus);
        return NULL;
    }
    return bus;
}

static void bench_sweep(bg_ev *loop, bg_abus *bus)
{
    static const long windows[] = {16, 128, 1000, 4000};
    char what[64];
    size_t i;

    printf("  window sweep, %d XADDs each:\n", SWEEP_N);
    for (i = 0; i < BG_ARRAY_LEN(windows); i++) {
        bench_result r = bench_ours(loop, bus, SWEEP_N, windows[i]);
        snprintf(what, sizeof(what), "    %5ld in flight:", windows[i]);
        bench_print(what, &r);
    }
}

static int bench_main(bgt_valkey *v)
{
    char err[BG_ERR_LEN] = "";
    bench_result ours;
    double ref;
    bg_ev *loop = bg_ev_new(err);
    bg_abus *bus;

    if (loop == NULL) {
        fprintf(stderr, "bench_bus: %s\n", err);
        return 1;
    }
    bus = bench_connect(loop, v->port);
    if (bus == NULL) {
        bg_ev_free(loop);
        return 1;
    }
    printf("bus benchmark: %s on 127.0.0.1:%d, XADD benchstream * f v\n", bgt_valkey_binary(),
           v->port);
    bench_sweep(loop, bus);
    ours = bench_ours(loop, bus, BENCH_N, BENCH_WINDOW);
    printf("  ours: bg_abus, 1 connection, %d in flight, %d XADDs:\n", BENCH_WINDOW, BENCH_N);
    bench_print("   ", &ours);
    bench_sync(loop, bus, "DEL benchstream");
    bg_abus_free(bus);
    bg_ev_free(loop);
    ref = bench_reference(v->port, BENCH_N);
    printf("  valkey-benchmark -P 16 (50 connections), %d XADDs: %.0f ops/s\n", BENCH_N, ref);
    if (ref > 0 && ours.ops > 0)
        printf("  ratio ours / valkey-benchmark -P 16: %.0f%% (target >= 50%%)\n",
               100.0 * ours.ops / ref);
    return ours.ops > 0 && ref > 0 ? 0 : 1;
}

int main(void)
{
    bgt_valkey v;
    int rc;

    bg_log_set_level(BG_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    if (bgt_valkey_start(&v, NULL) != 0) {
        fprintf(stderr, "bench_bus: could not start %s\n", bgt_valkey_binary());
        return 1;
    }
    rc = bench_main(&v);
    bgt_valkey_stop(&v);
    return rc;
}
