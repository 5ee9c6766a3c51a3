/* bench_routes.c: route lookup cost and publish time of the shared routing table at 10k endpoints
 * over 1k services. Prints figures; never passes or fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busgate/common.h"
#include "busgate/routing/route_table.h"

#define NSERVICES 1000
#define NEP 10 /* endpoints per service */
#define NPATHS 65536
#define NLOOKUPS 4000000
#define NPUBLISH 200    /* publishes per figure (even: every change is undone) */
#define NPUBLISH_NEW 20 /* where every connection is new: the slow case */

static const struct {
    const char *method, *tmpl, *path; /* path: one request matching tmpl, %d = service */
} shapes[NEP] = {
    {"GET", "/svc%d/items", "/svc%d/items"},
    {"GET", "/svc%d/items/{id}", "/svc%d/items/8812"},
    {"PUT", "/svc%d/items/{id}", "/svc%d/items/8812"},
    {"GET", "/svc%d/items/{id}/notes/{nid}", "/svc%d/items/17/notes/3"},
    {"POST", "/svc%d/users/{uid}/orders", "/svc%d/users/u-42/orders"},
    {"GET", "/svc%d/users/{uid}/orders/{oid}", "/svc%d/users/u-42/orders/o-9"},
    {"GET", "/svc%d/files/{path*}", "/svc%d/files/a/b/c.txt"},
    {"GET", "/svc%d/health", "/svc%d/health"},
    {"GET", "/api/v2/svc%d/items/{id}", "/api/v2/svc%d/items/5"},
    {"DELETE", "/api/v2/svc%d/items/{id}", "/api/v2/svc%d/items/5"},
};

/* Requests that miss: unknown service, unknown sub-path, wrong method. */
static const struct {
    const char *method, *path;
} misses[] = {
    {"GET", "/nosuch%d/items"},
    {"GET", "/svc%d/itemz/1"},
    {"DELETE", "/svc%d/health"},
    {"GET", "/api/v3/svc%d/items/5"},
};

/* CPU time of this process: on a shared machine the wall clock also counts other tenants. */
static int64_t cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct timing {
    double wall, cpu;
} timing;

typedef struct req {
    const char *method;
    char path[64];
    size_t len;
} req;

static char tmpl[NSERVICES][NEP][64], names[NSERVICES][16], ids[NSERVICES][32];
static char tmpl_alt[NSERVICES][64]; /* a second first endpoint: "one connection changed" */
static bg_rt_endpoint_in eps[NSERVICES][NEP];
static bg_rt_connection_in conns[NSERVICES];
static req reqs[NPATHS];

static void make_state(void)
{
    for (int s = 0; s < NSERVICES; s++) {
        snprintf(names[s], sizeof(names[s]), "svc%d", s);
        snprintf(ids[s], sizeof(ids[s]), "conn-%d", s);
        snprintf(tmpl_alt[s], sizeof(tmpl_alt[s]), "/svc%d/items-v2", s);
        for (int e = 0; e < NEP; e++) {
            snprintf(tmpl[s][e], sizeof(tmpl[s][e]), shapes[e].tmpl, s);
            eps[s][e] = (bg_rt_endpoint_in){shapes[e].method, tmpl[s][e], 30000, "read", NULL};
        }
        conns[s] = (bg_rt_connection_in){ids[s], names[s], ids[s], "1.0", 1, 0, eps[s], NEP};
    }
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Three hits for every miss, in random order. */
static void make_requests(void)
{
    uint64_t x = 88172645463325252ull;

    for (int i = 0; i < NPATHS; i++) {
        int s = (int)(xorshift(&x) % NSERVICES);
        if (i % 4 == 3) {
            int m = (int)(xorshift(&x) % BG_ARRAY_LEN(misses));
            reqs[i].method = misses[m].method;
            snprintf(reqs[i].path, sizeof(reqs[i].path), misses[m].path, s);
        } else {
            int e = (int)(xorshift(&x) % NEP);
            reqs[i].method = shapes[e].method;
            snprintf(reqs[i].path, sizeof(reqs[i].path), shapes[e].path, s);
        }
        reqs[i].len = strlen(reqs[i].path);
    }
}

/* What changes between two publishes. */
typedef enum { PUB_SAME, PUB_ONE, PUB_ALL } pub_kind;

static void publish_change(pub_kind kind, int i)
{
    int s = i / 2 % NSERVICES; /* each connection changes, then changes back */

    if (kind == PUB_ONE) /* one connection replaces its endpoints, as an ENDPOINTS_UPDATE */
        eps[s][0].path_template = eps[s][0].path_template == tmpl[s][0] ? tmpl_alt[s] : tmpl[s][0];
    if (kind == PUB_ALL) /* every connection new: nothing the writer compiled before is reused */
        for (s = 0; s < NSERVICES; s++)
            snprintf(ids[s], sizeof(ids[s]), "conn-%d-%d", s, i + 1);
}

static timing bench_publish(bg_rt *rt, pub_kind kind, int n)
{
    char err[BG_ERR_LEN];
    int64_t w0 = bg_mono_us(), c0 = cpu_us();

    for (int i = 0; i < n; i++) {
        publish_change(kind, i);
        if (bg_rt_publish(rt, conns, NSERVICES, err) != BG_OK) {
            fprintf(stderr, "bench_routes: publish: %s\n", err);
            exit(1);
        }
    }
    return (timing){(double)(bg_mono_us() - w0) / n / 1000.0, (double)(cpu_us() - c0) / n / 1000.0};
}

static timing bench_lookup(const bg_rt *rt, long counts[5])
{
    bg_rt_match m;
    int64_t w0 = bg_mono_us(), c0 = cpu_us();

    for (long i = 0; i < NLOOKUPS; i++) {
        const req *r = &reqs[i & (NPATHS - 1)];
        bg_rt_lookup(rt, r->method, r->path, r->len, &m);
        counts[m.status]++;
    }
    return (timing){(double)(bg_mono_us() - w0) * 1000.0 / NLOOKUPS,
                    (double)(cpu_us() - c0) * 1000.0 / NLOOKUPS};
}

int main(void)
{
    bg_rt_limits lim = {.max_services = 1024, .max_connections = 1024, .max_endpoints = 16384};
    char err[BG_ERR_LEN], *json = NULL;
    long counts[5] = {0};
    timing pub_same, pub_one, pub_all, look;
    double snap_ms;
    int64_t t0;
    bg_rt *rt = bg_rt_create(&lim, err);

    if (rt == NULL) {
        fprintf(stderr, "bench_routes: %s\n", err);
        return 1;
    }
    make_state();
    make_requests();
    bench_publish(rt, PUB_SAME, 2); /* both copies' pages touched once */
    pub_same = bench_publish(rt, PUB_SAME, NPUBLISH);
    pub_one = bench_publish(rt, PUB_ONE, NPUBLISH);
    pub_all = bench_publish(rt, PUB_ALL, NPUBLISH_NEW);
    look = bench_lookup(rt, counts);
    t0 = bg_mono_us();
    if (bg_rt_snapshot_json(rt, &json, err) != BG_OK) {
        fprintf(stderr, "bench_routes: snapshot: %s\n", err);
        return 1;
    }
    snap_ms = (double)(bg_mono_us() - t0) / 1000.0;
    printf("routes: %d services, %d endpoints, mapping %.1f MiB (limits 1024/1024/16384)\n",
           NSERVICES, NSERVICES * NEP, (double)bg_rt_mapping_size(rt) / (1 << 20));
    printf("routes: publish, nothing changed       %.2f ms wall, %.2f ms cpu\n", pub_same.wall,
           pub_same.cpu);
    printf("routes: publish, 1 connection changed  %.2f ms wall, %.2f ms cpu\n", pub_one.wall,
           pub_one.cpu);
    printf("routes: publish, every connection new  %.2f ms wall, %.2f ms cpu\n", pub_all.wall,
           pub_all.cpu);
    printf("routes: lookup %.0f ns wall, %.0f ns cpu (target < 1000 ns)\n", look.wall, look.cpu);
    printf("routes: lookups: %ld found, %ld 404, %ld 405, %ld busy\n", counts[BG_RT_FOUND],
           counts[BG_RT_NOT_FOUND], counts[BG_RT_METHOD_NOT_ALLOWED], counts[BG_RT_BUSY]);
    printf("routes: state snapshot as JSON %.2f ms (%zu bytes)\n", snap_ms, strlen(json));
    free(json);
    bg_rt_destroy(rt);
    return 0;
}
