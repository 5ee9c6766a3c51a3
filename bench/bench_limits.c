/* bench_limits.c: what the per-request checks of backpressure and the circuit breaker cost a
 * worker, on their shared tables filled with 1,000 services: ns per request in CPU time, so
 * the figure holds on a busy machine where wrk runs are noise. Prints; never judges. */
#include <stdio.h>
#include <time.h>

#include "busgate/common.h"
#include "busgate/routing/breaker.h"
#include "busgate/routing/bus_view.h"

#define NSERVICES 1000 /* of the tables' 1024 entries: long probe runs, the worst case */
#define NFEW 100
#define NREQ 4000000

static int64_t cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char names[NSERVICES][16];

/* What workers/dispatch_guard.c does for the backlog: the sample, the running count. */
static double bench_backlog(bg_busview *v, int n)
{
    int64_t t0 = cpu_ns(), sum = 0;
    bg_bv_sample s;

    for (int i = 0; i < NREQ; i++) {
        const char *svc = names[i % n];
        if (bg_bv_get(v, svc, &s) == BG_OK)
            sum += s.lag + s.pending + bg_bv_added(v, svc) - s.added_at + s.oldest_ms;
        bg_bv_add(v, svc, 1); /* the REQUEST went out */
    }
    if (sum == 42)
        printf("(unlikely)\n");
    return (double)(cpu_ns() - t0) / NREQ;
}

/* Admission and a successful verdict, as every request to a healthy service has them. */
static double bench_breaker(bg_breaker *b, int n)
{
    bg_brk_params p = {5, 10000, 5000, 1, 35000};
    int64_t t0 = cpu_ns(), now = bg_mono_ms(), retry;
    bg_brk_ticket t;

    for (int i = 0; i < NREQ; i++) {
        const char *svc = names[i % n];
        if (bg_brk_admit(b, svc, &p, now, &t, &retry))
            bg_brk_result(b, svc, &p, &t, 0, now);
    }
    return (double)(cpu_ns() - t0) / NREQ;
}

static void bench_print(bg_busview *v, bg_breaker *b, int n)
{
    printf("limits: %4d services: backlog check (sample, count, add) %6.1f ns/request, "
           "breaker admit + success %6.1f ns/request (CPU time)\n",
           n, bench_backlog(v, n), bench_breaker(b, n));
}

int main(void)
{
    char err[BG_ERR_LEN];
    bg_busview *v = bg_bv_create(err);
    bg_breaker *b = v != NULL ? bg_brk_create(err) : NULL;
    bg_bv_sample s = {.lag = 3, .pending = 2, .consumers = 1, .groups = 1};

    if (b == NULL) {
        fprintf(stderr, "bench_limits: %s\n", err);
        return 1;
    }
    for (int i = 0; i < NSERVICES; i++) {
        if (i == NFEW)
            bench_print(v, b, NFEW);
        snprintf(names[i], sizeof(names[i]), "service-%d", i);
        if (bg_bv_put(v, names[i], &s) != BG_OK || bg_brk_ensure(b, names[i]) != BG_OK) {
            fprintf(stderr, "bench_limits: table full at %d\n", i);
            return 1;
        }
    }
    bench_print(v, b, NSERVICES);
    printf("limits: (a whole request costs a worker some 10-20 us of CPU: see http_bench)\n");
    bg_brk_destroy(b);
    bg_bv_destroy(v);
    return 0;
}
