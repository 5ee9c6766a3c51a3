/* test_gateway_limits.c: end-to-end traffic protection with the real parts (valkey-server,
 * busgated with 2 workers, echo-service): queue-depth backpressure ([limits] backlog_max,
 * backlog_max_age) refuses with 503 before a REQUEST reaches the stream and serves again
 * once the backlog drains; the circuit breaker ([breaker]) opens after failures in a row
 * (500 from the service, 504), refuses in every worker without writing to the stream,
 * probes after its cool-down, opens again on a failed probe and closes on a good one.
 * Waits are bounded polling loops; nothing asserts how long anything took. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "gw_fixture.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static int get(const bgt_fix *f, const char *path, bgt_resp *r)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);

    return bgt_fix_request(f, req, (size_t)n, r, 10000);
}

/* Status of one GET on a new connection (the response is dropped). */
static int status_of(const bgt_fix *f, const char *path)
{
    bgt_resp r;
    int st = get(f, path, &r);

    bgt_resp_free(&r);
    return st;
}

/* XINFO STREAM's entries-added: every REQUEST ever written to the echo stream. */
static long long entries_added(const bgt_fix *f)
{
    char out[64];

    cr_assert_eq(bgt_valkey_cmd(&f->v, out, sizeof(out),
                                "EVAL \"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
                                "local t = redis.call('XINFO', 'STREAM', KEYS[1]) for i = "
                                "1, #t, 2 do if t[i] == 'entries-added' then return t[i + 1] end "
                                "end\" 1 router:requests:{echo}"),
                 0);
    cr_assert_eq(out[0], ':', "%s", out);
    return strtoll(out + 1, NULL, 10);
}

/* The value of the /metrics line that starts with prefix, or -1 when there is none. */
static double metric(const bgt_fix *f, const char *prefix)
{
    bgt_resp r;
    double v = -1;
    char *p;

    if (get(f, "/metrics", &r) == 200 && (p = strstr(r.body, prefix)) != NULL)
        v = strtod(p + strlen(prefix), NULL);
    bgt_resp_free(&r);
    return v;
}

/* Polls /metrics until the line starting with prefix is there with at least want; the
 * last value (-1: no such line). */
static double wait_metric(const bgt_fix *f, const char *prefix, double want)
{
    double v = -1;

    for (int i = 0; i < 200 && (v = metric(f, prefix)) < want; i++)
        sleep_ms(50);
    return v;
}

/* A gateway refusal: 503, Retry-After, problem+json whose detail holds needle. */
static void assert_refusal(const bgt_resp *r, const char *needle)
{
    char v[128];

    cr_assert_eq(r->status, 503, "status %d: %s", r->status, r->body ? r->body : "");
    cr_assert_eq(bgt_resp_header(r, "Retry-After", v, sizeof(v)), 0, "no Retry-After");
    cr_assert_gt(atoi(v), 0, "Retry-After: %s", v);
    cr_assert_eq(bgt_resp_header(r, "Content-Type", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "application/problem+json");
    cr_assert_not_null(strstr(r->body, needle), "detail without '%s': %s", needle, r->body);
}

/* ---- backpressure ---- */

TestSuite(gateway_backpressure, .timeout = 90);

#define BURST_CONNS 8
#define BURST_PER_CONN 4

/* backlog_max 4, one echo instance whose handlers sleep: of a burst of 32 requests about
 * four are written to the stream; the rest are refused at once and never reach it. Once
 * the four are answered the service is served again. */
Test(gateway_backpressure, past_backlog_max_is_503_and_nothing_more_reaches_the_stream)
{
    bgt_fix f;
    bgt_conn conns[BURST_CONNS];
    char req[256];
    int accepted = 0, refused = 0, n;
    long long added0;
    bgt_resp r;

    cr_assert_eq(bgt_fix_start_ex(&f, NULL, "[limits]\nbacklog_max = 4\n", 1), 0);
    cr_assert_geq(wait_metric(&f, "busgate_service_consumers{service=\"echo\"} ", 1), 1,
                  "the echo backlog was never sampled");
    added0 = entries_added(&f);
    for (int i = 0; i < BURST_CONNS; i++) {
        cr_assert_eq(bgt_conn_open(&conns[i], f.port), 0);
        for (int j = 0; j < BURST_PER_CONN; j++) {
            n = snprintf(req, sizeof(req),
                         "GET /echo/slow?ms=1000&r=%d HTTP/1.1\r\nHost: t\r\n\r\n",
                         i * BURST_PER_CONN + j);
            cr_assert_eq(bgt_conn_send(&conns[i], req, (size_t)n), 0);
        }
    }
    for (int i = 0; i < BURST_CONNS; i++) {
        for (int j = 0; j < BURST_PER_CONN; j++) {
            cr_assert_eq(bgt_conn_read(&conns[i], &r, 0, 20000), 0, "no answer %d/%d", i, j);
            if (r.status == 503) {
                assert_refusal(&r, "backlogged");
                refused++;
            } else {
                cr_assert(r.status == 200 || r.status == 504, "status %d", r.status);
                accepted++;
            }
            bgt_resp_free(&r);
        }
        bgt_conn_close(&conns[i]);
    }
    cr_assert_gt(refused, 0, "the backlog was never refused");
    cr_assert_gt(accepted, 0);
    cr_assert_eq(entries_added(&f) - added0, accepted,
                 "a refused request reached the stream (%d accepted, %d refused)", accepted,
                 refused);
    cr_assert_eq(wait_metric(&f, "busgate_backpressure_rejected_total{service=\"echo\"} ", refused),
                 refused);
    cr_assert_eq(bgt_fix_wait_status(&f, "/echo/after", 200, 20000), 200,
                 "never served again after the backlog drained");
    bgt_fix_stop(&f);
}

/* backlog_max_age 300ms: while one request waits in a handler, the next ones are refused
 * once it is older than that; after it is answered they are served again. */
Test(gateway_backpressure, oldest_request_past_backlog_max_age_is_503_until_answered)
{
    bgt_fix f;
    bgt_conn slow;
    static const char req[] = "GET /echo/slow?ms=1800 HTTP/1.1\r\nHost: t\r\n\r\n";
    int refused = 0;
    bgt_resp r;

    cr_assert_eq(bgt_fix_start_ex(&f, NULL, "[limits]\nbacklog_max_age = 300ms\n", 1), 0);
    cr_assert_geq(wait_metric(&f, "busgate_service_consumers{service=\"echo\"} ", 1), 1);
    cr_assert_eq(bgt_conn_open(&slow, f.port), 0);
    cr_assert_eq(bgt_conn_send(&slow, req, sizeof(req) - 1), 0);
    for (int i = 0; i < 400 && !refused; i++) {
        if (get(&f, "/echo/poll", &r) == 503) {
            assert_refusal(&r, "oldest request");
            refused = 1;
        }
        bgt_resp_free(&r);
        sleep_ms(10);
    }
    cr_assert(refused, "never refused while a request was older than backlog_max_age");
    cr_assert_eq(bgt_conn_read(&slow, &r, 0, 20000), 0);
    cr_assert(r.status == 200 || r.status == 504, "status %d", r.status);
    bgt_resp_free(&r);
    bgt_conn_close(&slow);
    cr_assert_eq(bgt_fix_wait_status(&f, "/echo/after", 200, 20000), 200,
                 "never served again once the old request was answered");
    cr_assert_gt(metric(&f, "busgate_service_oldest_request_age_seconds{service=\"echo\"} "), -1);
    bgt_fix_stop(&f);
}

/* ---- circuit breaker ---- */

TestSuite(gateway_breaker, .timeout = 120);

#define BRK_SECTIONS "[breaker]\nfailures = 3\nwindow = 1m\ncooldown = 4s\nprobes = 1\n"

/* The worker that answered: the first 16 hex digits of a request id are its process's. */
static int worker_of(const bgt_resp *r, char seen[2][17])
{
    char id[64];

    cr_assert_eq(bgt_resp_header(r, "X-Request-Id", id, sizeof(id)), 0);
    id[16] = '\0';
    for (int i = 0; i < 2; i++) {
        if (seen[i][0] == '\0')
            memcpy(seen[i], id, 17);
        if (strcmp(seen[i], id) == 0)
            return i;
    }
    cr_assert_fail("a third worker id %s", id);
    return -1;
}

/* Fresh connections until both workers answered, each answer checked by check (which
 * returns 0 to stop early, e.g. the cool-down ended). Returns how many workers were seen. */
static int both_workers(const bgt_fix *f, const char *path, int (*check)(const bgt_resp *))
{
    char seen[2][17] = {"", ""};
    int got[2] = {0, 0};
    bgt_resp r;

    for (int i = 0; i < 400 && !(got[0] && got[1]); i++) {
        cr_assert_gt(get(f, path, &r), 0, "no answer");
        if (!check(&r)) {
            bgt_resp_free(&r);
            break;
        }
        got[worker_of(&r, seen)] = 1;
        bgt_resp_free(&r);
    }
    return got[0] + got[1];
}

static int is_open_refusal(const bgt_resp *r)
{
    if (r->status != 503)
        return 0;
    assert_refusal(r, "circuit breaker");
    return 1;
}

static int is_ok(const bgt_resp *r)
{
    cr_assert_eq(r->status, 200, "status %d once closed: %s", r->status, r->body);
    return 1;
}

/* The gateway's state document (busgatectl state reads it). */
static int state_says(const bgt_fix *f, const char *needle)
{
    char err[BG_ERR_LEN];
    bg_bus_opts o;
    bg_bus *b;
    redisReply *rep;
    int found = 0;

    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, f->v.url, err), BG_OK, "%s", err);
    b = bg_bus_connect(&o, err);
    cr_assert_not_null(b, "%s", err);
    for (int i = 0; i < 100 && !found; i++) {
        rep = bg_bus_command(b, err, "GET router:gateway:gw-test:state");
        found = rep != NULL && rep->type == REDIS_REPLY_STRING && strstr(rep->str, needle);
        if (rep != NULL)
            freeReplyObject(rep);
        if (!found)
            sleep_ms(50);
    }
    bg_bus_free(b);
    return found;
}

/* busgatectl state (text) prints needle. */
static int ctl_state_says(const bgt_fix *f, const char *needle)
{
    const char *const args[] = {"-c", f->g.ini, "state", NULL};
    char out[400];
    int status;
    pid_t pid;

    snprintf(out, sizeof(out), "%s/ctl-state.out", f->g.dir);
    unlink(out);
    pid = bgt_spawn_built("busgatectl", args, out);
    cr_assert_gt(pid, 0);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return bgt_wait_file(out, needle, 100) == 0;
}

Test(gateway_breaker, failures_open_it_for_every_worker_a_probe_closes_it)
{
    bgt_fix f;
    long long added0;

    cr_assert_eq(bgt_fix_start_ex(&f, NULL, BRK_SECTIONS, 1), 0);
    cr_assert_eq(wait_metric(&f, "busgate_breaker_state{service=\"echo\"} ", 0), 0,
                 "the echo breaker was never made");
    /* Three failures in a row: a 500 from the service, a deadline, another 500. */
    cr_assert_eq(status_of(&f, "/echo/status/500"), 500);
    cr_assert_eq(status_of(&f, "/echo/slow?ms=5000"), 504);
    cr_assert_eq(status_of(&f, "/echo/status/500"), 500);
    cr_assert_eq(metric(&f, "busgate_breaker_state{service=\"echo\"} "), 1, "not open");
    added0 = entries_added(&f);
    cr_assert_eq(both_workers(&f, "/echo/fast", is_open_refusal), 2,
                 "both workers did not refuse while open");
    cr_assert_eq(entries_added(&f), added0, "a REQUEST was written while the breaker was open");
    cr_assert_gt(metric(&f, "busgate_breaker_rejected_total{service=\"echo\"} "), 1);
    cr_assert(state_says(&f, "\"echo\":{\"state\":\"open\""), "the state document says nothing");
    cr_assert(ctl_state_says(&f, "  breaker open (probes in "),
              "busgatectl state: see %s/ctl-state.out", f.g.dir);

    /* After the cool-down one probe goes through; it fails, so the breaker opens again. */
    for (int i = 0; i < 300 && status_of(&f, "/echo/status/500") == 503; i++)
        sleep_ms(50);
    cr_assert_eq(wait_metric(&f, "busgate_breaker_opens_total{service=\"echo\"} ", 2), 2,
                 "a failed probe did not open it again");
    /* The next probe succeeds and closes it: every worker serves again. */
    cr_assert_eq(bgt_fix_wait_status(&f, "/echo/probe", 200, 30000), 200, "never closed");
    cr_assert_eq(metric(&f, "busgate_breaker_state{service=\"echo\"} "), 0);
    cr_assert_eq(both_workers(&f, "/echo/closed", is_ok), 2);
    cr_assert(state_says(&f, "\"echo\":{\"state\":\"closed\""));
    bgt_fix_stop(&f);
}

/* Off by default: failures only ever give the service's own answers. */
Test(gateway_breaker, off_by_default)
{
    bgt_fix f;

    cr_assert_eq(bgt_fix_start(&f, NULL, 1), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(status_of(&f, "/echo/status/503"), 503);
    cr_assert_eq(status_of(&f, "/echo/ok"), 200);
    cr_assert_eq(metric(&f, "busgate_breaker_state{"), -1, "breaker metrics while off");
    bgt_fix_stop(&f);
}
