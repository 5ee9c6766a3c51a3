/* test_metrics.c: shared metrics: forked writers per slot, summed Prometheus output parsed back,
 * service table overflow, merged duplicates, gauges, and the exposition format itself. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "busgate/metrics/metrics.h"

#define MAX_SAMPLES 4096
#define WAIT_LIMIT_MS 30000

/* One parsed sample: "name{labels}" as written, and its value. */
typedef struct sample {
    char key[256];
    double value;
} sample;

typedef struct parsed {
    sample s[MAX_SAMPLES];
    int n;
    char types[32][96]; /* "name type" from # TYPE lines, in order */
    int ntypes, nhelp;
} parsed;

static bg_metrics *new_metrics(int slots)
{
    char err[BG_ERR_LEN] = "";
    bg_metrics *m = bg_metrics_create(slots, err);

    cr_assert_not_null(m, "bg_metrics_create: %s", err);
    return m;
}

/* Every sample line must be NAME[{LABELS}] VALUE, preceded by its family's TYPE. */
static void parse_line(parsed *p, const char *line)
{
    const char *sp = strrchr(line, ' ');
    char *end;
    size_t klen;

    if (strncmp(line, "# HELP ", 7) == 0) {
        p->nhelp++;
        return;
    }
    if (strncmp(line, "# TYPE ", 7) == 0) {
        cr_assert_lt(p->ntypes, 32);
        snprintf(p->types[p->ntypes++], sizeof(p->types[0]), "%s", line + 7);
        return;
    }
    cr_assert_neq(line[0], '#', "unexpected comment: %s", line);
    cr_assert_not_null(sp, "no value in: %s", line);
    klen = (size_t)(sp - line);
    cr_assert_lt(klen, sizeof(p->s[0].key));
    cr_assert_lt(p->n, MAX_SAMPLES);
    cr_assert_gt(p->ntypes, 0, "sample before any TYPE: %s", line);
    cr_assert_eq(strncmp(line, p->types[p->ntypes - 1], strcspn(p->types[p->ntypes - 1], " ")), 0,
                 "sample %s not under its TYPE (%s)", line, p->types[p->ntypes - 1]);
    memcpy(p->s[p->n].key, line, klen);
    p->s[p->n].key[klen] = '\0';
    errno = 0;
    p->s[p->n].value = strtod(sp + 1, &end);
    cr_assert(errno == 0 && *end == '\0' && end != sp + 1, "bad value in: %s", line);
    p->n++;
}

static parsed *render_and_parse(const bg_metrics *m)
{
    parsed *p = calloc(1, sizeof(*p));
    char *out = NULL, *line, *save = NULL;
    size_t len = 0;

    cr_assert_not_null(p);
    cr_assert_eq(bg_metrics_render_prometheus(m, &out, &len), BG_OK);
    cr_assert_eq(strlen(out), len, "len does not match the text");
    cr_assert_gt(len, 0);
    cr_assert_eq(out[len - 1], '\n', "output must end with a newline");
    for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        parse_line(p, line);
    free(out);
    return p;
}

/* The value of key, or -1 when absent. */
static double value_of(const parsed *p, const char *key)
{
    int i;

    for (i = 0; i < p->n; i++) {
        if (strcmp(p->s[i].key, key) == 0)
            return p->s[i].value;
    }
    return -1;
}

static double requests(const parsed *p, const char *service, const char *cls)
{
    char key[256];

    snprintf(key, sizeof(key), "busgate_requests_total{service=\"%s\",code_class=\"%s\"}", service,
             cls);
    return value_of(p, key);
}

static int count_prefix(const parsed *p, const char *prefix)
{
    int i, n = 0;

    for (i = 0; i < p->n; i++)
        n += strncmp(p->s[i].key, prefix, strlen(prefix)) == 0;
    return n;
}

static void wait_all(pid_t *pids, int n)
{
    struct timespec start, now;
    int i, status;
    pid_t r;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (i = 0; i < n; i++) {
        while ((r = waitpid(pids[i], &status, WNOHANG)) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec > WAIT_LIMIT_MS / 1000) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], &status, 0);
                cr_assert_fail("writer %d did not finish", i);
            }
            usleep(2000);
        }
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed: 0x%x", i,
                  status);
    }
}

/* Writer for slot: per round one request for each of "orders" (2xx), "users" (4xx) and a
 * service of its own (5xx), with durations in the 1 ms, 10 ms and +Inf buckets. */
static void writer(bg_metrics *m, int slot, int rounds)
{
    char own[32];
    int i;

    snprintf(own, sizeof(own), "svc-%d", slot);
    for (i = 0; i < rounds; i++) {
        bg_metrics_inflight_add(m, slot, 1);
        bg_metrics_request_done(m, slot, "orders", 200, 500);
        bg_metrics_request_done(m, slot, "users", 404, 10000);
        bg_metrics_request_done(m, slot, own, 503, 60000000);
        bg_metrics_inflight_add(m, slot, -1);
    }
    bg_metrics_inflight_add(m, slot, slot); /* left in flight: the gauge sums these */
    bg_metrics_count(m, slot, BG_METRIC_BUS_RECONNECTS, 2);
    bg_metrics_count(m, slot, BG_METRIC_DEAD_LETTERS, 1);
}

Test(metrics, forked_writers_are_summed)
{
    enum { SLOTS = 4, ROUNDS = 20000 };
    bg_metrics *m = new_metrics(SLOTS);
    pid_t pids[SLOTS];
    parsed *p;
    char key[128];
    int i;

    for (i = 0; i < SLOTS; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            writer(m, i, ROUNDS);
            _exit(0);
        }
    }
    /* Rendering while they write must not crash or tear the format. */
    for (i = 0; i < 20; i++)
        free(render_and_parse(m));
    wait_all(pids, SLOTS);
    bg_metrics_count(m, BG_METRICS_MASTER_SLOT, BG_METRIC_WORKER_RESTARTS, 3);
    p = render_and_parse(m);
    cr_assert_eq(requests(p, "orders", "2xx"), SLOTS * ROUNDS);
    cr_assert_eq(requests(p, "orders", "5xx"), 0);
    cr_assert_eq(requests(p, "users", "4xx"), SLOTS * ROUNDS);
    for (i = 0; i < SLOTS; i++) {
        snprintf(key, sizeof(key), "svc-%d", i);
        cr_assert_eq(requests(p, key, "5xx"), ROUNDS, "%s", key);
        cr_assert_eq(requests(p, key, "1xx"), 0, "%s", key);
    }
    cr_assert_eq(value_of(p, "busgate_request_duration_seconds_bucket{le=\"0.001\"}"),
                 SLOTS * ROUNDS);
    cr_assert_eq(value_of(p, "busgate_request_duration_seconds_bucket{le=\"0.01\"}"),
                 2 * SLOTS * ROUNDS);
    cr_assert_eq(value_of(p, "busgate_request_duration_seconds_bucket{le=\"30\"}"),
                 2 * SLOTS * ROUNDS);
    cr_assert_eq(value_of(p, "busgate_request_duration_seconds_bucket{le=\"+Inf\"}"),
                 3 * SLOTS * ROUNDS);
    cr_assert_eq(value_of(p, "busgate_request_duration_seconds_count"), 3 * SLOTS * ROUNDS);
    cr_assert_float_eq(value_of(p, "busgate_request_duration_seconds_sum"),
                       SLOTS * ROUNDS * (0.0005 + 0.01 + 60.0), 1e-3);
    cr_assert_eq(value_of(p, "busgate_inflight_requests"), 0 + 1 + 2 + 3);
    cr_assert_eq(value_of(p, "busgate_bus_reconnects_total"), 2 * SLOTS);
    cr_assert_eq(value_of(p, "busgate_dead_letters_total"), SLOTS);
    cr_assert_eq(value_of(p, "busgate_worker_restarts_total"), 3);
    free(p);
    bg_metrics_destroy(m);
}

Test(metrics, histogram_buckets_are_cumulative_and_bounded)
{
    bg_metrics *m = new_metrics(1);
    parsed *p;
    double prev = -1, v;
    char key[128];
    int i;

    /* One request exactly on each bound (le is inclusive) and one past the last. */
    for (i = 0; i < BG_METRICS_BUCKETS; i++)
        bg_metrics_request_done(m, 0, "a", 200, bg_metrics_bucket_us[i]);
    bg_metrics_request_done(m, 0, "a", 200, bg_metrics_bucket_us[BG_METRICS_BUCKETS - 1] + 1);
    p = render_and_parse(m);
    cr_assert_eq(count_prefix(p, "busgate_request_duration_seconds_bucket{"),
                 BG_METRICS_BUCKETS + 1);
    for (i = 0; i < BG_METRICS_BUCKETS; i++) {
        snprintf(key, sizeof(key), "busgate_request_duration_seconds_bucket{le=\"%g\"}",
                 (double)bg_metrics_bucket_us[i] / 1e6);
        v = value_of(p, key);
        cr_assert_eq(v, i + 1, "%s = %g", key, v);
        cr_assert_gt(v, prev);
        prev = v;
    }
    cr_assert_eq(value_of(p, "busgate_request_duration_seconds_bucket{le=\"+Inf\"}"),
                 BG_METRICS_BUCKETS + 1);
    free(p);
    bg_metrics_destroy(m);
}

Test(metrics, service_table_overflow_goes_to_other)
{
    enum { NAMES = BG_METRICS_MAX_SERVICES + 72 };
    bg_metrics *m = new_metrics(2);
    char name[32], longname[BG_METRICS_SERVICE_LEN + 8];
    parsed *p;
    int i, named;

    for (i = 0; i < NAMES; i++) {
        snprintf(name, sizeof(name), "s%03d", i);
        bg_metrics_request_done(m, 1, name, 200, 100);
        bg_metrics_request_done(m, 1, name, 201, 100);
    }
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    bg_metrics_request_done(m, 0, longname, 500, 100);
    bg_metrics_request_done(m, 0, NULL, 404, 100);
    bg_metrics_request_done(m, 0, "", 404, 100);
    p = render_and_parse(m);
    named = count_prefix(p, "busgate_requests_total{service=\"s") / 5;
    cr_assert_eq(named, BG_METRICS_MAX_SERVICES, "named services: %d", named);
    cr_assert_eq(requests(p, BG_METRICS_OTHER, "2xx"), 2 * (NAMES - BG_METRICS_MAX_SERVICES));
    cr_assert_eq(requests(p, BG_METRICS_OTHER, "5xx"), 1, "a too-long name is 'other'");
    cr_assert_eq(requests(p, BG_METRICS_NONE, "4xx"), 2);
    cr_assert_eq(value_of(p, "busgate_request_duration_seconds_count"), 2 * NAMES + 3);
    free(p);
    bg_metrics_destroy(m);
}

Test(metrics, status_classes_and_out_of_range)
{
    static const int statuses[] = {100, 199, 200, 302, 399, 400, 499, 500, 599, 0, 600, -1};
    bg_metrics *m = new_metrics(1);
    parsed *p;
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(statuses); i++)
        bg_metrics_request_done(m, 0, "c", statuses[i], -5 /* clamped to 0 */);
    p = render_and_parse(m);
    cr_assert_eq(requests(p, "c", "1xx"), 2);
    cr_assert_eq(requests(p, "c", "2xx"), 1);
    cr_assert_eq(requests(p, "c", "3xx"), 2);
    cr_assert_eq(requests(p, "c", "4xx"), 2);
    cr_assert_eq(requests(p, "c", "5xx"), 2 + 3);
    cr_assert_eq(value_of(p, "busgate_request_duration_seconds_sum"), 0);
    free(p);
    bg_metrics_destroy(m);
}

/* Two processes writing one slot should never happen, but the counts stay exact and each
 * name is shown once even if both claimed an entry for it. */
Test(metrics, shared_slot_stays_exact_and_merged)
{
    enum { WRITERS = 2, ROUNDS = 5000, NAMES = 40 };
    bg_metrics *m = new_metrics(1);
    pid_t pids[WRITERS];
    char name[32];
    parsed *p;
    int w, i, r;

    for (w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        cr_assert_geq(pids[w], 0);
        if (pids[w] != 0)
            continue;
        for (r = 0; r < ROUNDS; r++) {
            snprintf(name, sizeof(name), "n%d", r % NAMES);
            bg_metrics_request_done(m, 0, name, 200, 1);
        }
        _exit(0);
    }
    wait_all(pids, WRITERS);
    p = render_and_parse(m);
    cr_assert_eq(count_prefix(p, "busgate_requests_total{"), NAMES * 5);
    for (i = 0; i < NAMES; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        cr_assert_eq(requests(p, name, "2xx"), WRITERS * ROUNDS / NAMES, "%s", name);
    }
    free(p);
    bg_metrics_destroy(m);
}

Test(metrics, counts_survive_a_respawn_and_reset_clears_the_gauge)
{
    bg_metrics *m = new_metrics(2);
    parsed *p;
    pid_t pid;
    int gen;

    for (gen = 0; gen < 3; gen++) {
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            bg_metrics_request_done(m, 1, "orders", 200, 100);
            bg_metrics_inflight_add(m, 1, 5); /* dies with requests in flight */
            _exit(0);
        }
        wait_all(&pid, 1);
        bg_metrics_slot_reset(m, 1); /* the master reaped slot 1 */
        bg_metrics_count(m, BG_METRICS_MASTER_SLOT, BG_METRIC_WORKER_RESTARTS, 1);
    }
    p = render_and_parse(m);
    cr_assert_eq(requests(p, "orders", "2xx"), 3);
    cr_assert_eq(value_of(p, "busgate_inflight_requests"), 0);
    cr_assert_eq(value_of(p, "busgate_worker_restarts_total"), 3);
    free(p);
    bg_metrics_destroy(m);
}

Test(metrics, bad_slots_are_ignored)
{
    bg_metrics *m = new_metrics(2);
    parsed *p;

    bg_metrics_request_done(m, 2, "x", 200, 1);
    bg_metrics_request_done(m, -7, "x", 200, 1);
    bg_metrics_inflight_add(m, 99, 1);
    bg_metrics_count(m, 5, BG_METRIC_DEAD_LETTERS, 1);
    bg_metrics_count(m, 0, BG_METRIC_COUNTER_COUNT, 1);
    bg_metrics_slot_reset(m, 42);
    bg_metrics_request_done(NULL, 0, "x", 200, 1);
    p = render_and_parse(m);
    cr_assert_eq(count_prefix(p, "busgate_requests_total{"), 0);
    cr_assert_eq(value_of(p, "busgate_inflight_requests"), 0);
    cr_assert_eq(value_of(p, "busgate_dead_letters_total"), 0);
    cr_assert_eq(bg_metrics_max_slots(m), 2);
    free(p);
    bg_metrics_destroy(m);
}

Test(metrics, format_has_help_type_and_escapes_labels)
{
    static const char *const families[] = {
        "busgate_requests_total counter",
        "busgate_backpressure_rejected_total counter",
        "busgate_breaker_rejected_total counter",
        "busgate_request_duration_seconds histogram",
        "busgate_inflight_requests gauge",
        "busgate_worker_restarts_total counter",
        "busgate_bus_reconnects_total counter",
        "busgate_dead_letters_total counter",
        "busgate_ratelimit_denied_total counter",
        "busgate_ratelimit_failopen_total counter",
        "busgate_ratelimit_evictions_total counter",
    };
    bg_metrics *m = new_metrics(1);
    parsed *p;
    size_t i;

    bg_metrics_request_done(m, 0, "we\"ird\\na\nme", 200, 1);
    p = render_and_parse(m);
    cr_assert_eq(p->ntypes, (int)BG_ARRAY_LEN(families));
    cr_assert_eq(p->nhelp, (int)BG_ARRAY_LEN(families));
    for (i = 0; i < BG_ARRAY_LEN(families); i++)
        cr_assert_str_eq(p->types[i], families[i]);
    cr_assert_eq(requests(p, "we\\\"ird\\\\na\\nme", "2xx"), 1);
    free(p);
    bg_metrics_destroy(m);
}

/* Refusals by the gateway itself, per service, summed over the slots that counted them. */
Test(metrics, service_refusal_counters_are_summed_per_service)
{
    bg_metrics *m = new_metrics(2);
    parsed *p;

    bg_metrics_service_count(m, 0, "echo", BG_METRIC_SVC_BACKPRESSURE, 2);
    bg_metrics_service_count(m, 1, "echo", BG_METRIC_SVC_BACKPRESSURE, 3);
    bg_metrics_service_count(m, 1, "orders", BG_METRIC_SVC_BREAKER, 1);
    bg_metrics_service_count(m, 7, "echo", BG_METRIC_SVC_BREAKER, 1); /* no such slot */
    bg_metrics_service_count(m, 0, "echo", BG_METRIC_SVC_COUNTER_COUNT, 1);
    p = render_and_parse(m);
    cr_assert_eq(value_of(p, "busgate_backpressure_rejected_total{service=\"echo\"}"), 5);
    cr_assert_eq(value_of(p, "busgate_breaker_rejected_total{service=\"echo\"}"), 0);
    cr_assert_eq(value_of(p, "busgate_breaker_rejected_total{service=\"orders\"}"), 1);
    cr_assert_eq(value_of(p, "busgate_backpressure_rejected_total{service=\"orders\"}"), 0);
    free(p);
    bg_metrics_destroy(m);
}

Test(metrics, create_checks_its_argument)
{
    char err[BG_ERR_LEN] = "";

    cr_assert_null(bg_metrics_create(0, err));
    cr_assert_neq(err[0], '\0');
    cr_assert_null(bg_metrics_create(1 << 20, err));
    bg_metrics_destroy(NULL);
}

Test(metrics, ratelimit_counters_are_summed)
{
    bg_metrics *m = new_metrics(2);
    parsed *p;

    bg_metrics_count(m, 0, BG_METRIC_RATELIMIT_DENIED, 3);
    bg_metrics_count(m, 1, BG_METRIC_RATELIMIT_DENIED, 2);
    bg_metrics_count(m, 1, BG_METRIC_RATELIMIT_FAILOPEN, 1);
    bg_metrics_count(m, 0, BG_METRIC_RATELIMIT_EVICTED, 4);
    p = render_and_parse(m);
    cr_assert_eq(value_of(p, "busgate_ratelimit_denied_total"), 5);
    cr_assert_eq(value_of(p, "busgate_ratelimit_failopen_total"), 1);
    cr_assert_eq(value_of(p, "busgate_ratelimit_evictions_total"), 4);
    free(p);
    bg_metrics_destroy(m);
}
