/* test_chaos.c: the fault suite. Each scenario starts a private Valkey, busgated with 2
 * workers and two echo instances, drives keep-alive load where every request carries a
 * unique id, injects one fault, and accounts for every request: no wrong body, no second
 * answer, no hang, ever; the scenario's own guarantee (e.g. no failure at all across a
 * reload); and afterwards /readyz 200, no leftover processes, bounded streams.
 *
 * CHAOS_SECONDS (default 10) and CHAOS_CLIENTS (default 24) size the load; `make test`
 * runs a short form, `make chaos` the full one. The figures are printed, one line per
 * scenario ("chaos <name> ..."). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos_load.h"
#include "gw_fixture.h"

#define CHAOS_HANG_MS 10000 /* request_timeout is 2 s: 10 s without an answer is a hang */
#define CHAOS_STOP_MS 3000  /* how long Valkey stays SIGSTOPped */
#define CHAOS_DOWN_MS 1000  /* how long Valkey stays dead before its restart */
#define CHAOS_MAX_SEEN 64

/* Leases short enough that what a killed instance held is reclaimed within the run. */
#define CHAOS_SECTIONS                                                                             \
    "[valkey]\ncommand_timeout = 1s\n[messaging]\nlease_duration = 2s\nstream_maxlen = 20000\n"

typedef struct chaos_run {
    const char *name;
    bgt_fix f;
    chaos_load load;
    int seconds, clients;
    int64_t fault_ms; /* load time when the fault was injected */
    int64_t back_ms;  /* load time when the faulted part was back (restarts) */
    pid_t seen[CHAOS_MAX_SEEN];
    int nseen;
} chaos_run;

static chaos_run run;

static int env_int(const char *name, int def, int lo, int hi)
{
    const char *v = getenv(name);
    int n = v != NULL ? atoi(v) : def;

    return n < lo ? lo : n > hi ? hi : n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* Remembers the current workers, so the end can check that none of them outlived its
 * master or its retirement. */
static void remember_workers(chaos_run *r)
{
    pid_t pids[BGT_GW_MAX_WORKERS];
    int n = bgt_gw_workers(&r->f.g, pids, BGT_GW_MAX_WORKERS);

    for (int i = 0; i < n; i++) {
        int known = 0;
        for (int j = 0; j < r->nseen; j++)
            known |= r->seen[j] == pids[i];
        if (!known && r->nseen < CHAOS_MAX_SEEN)
            r->seen[r->nseen++] = pids[i];
    }
}

static void setup(void)
{
    memset(&run, 0, sizeof(run));
    run.seconds = env_int("CHAOS_SECONDS", 10, 5, 120);
    run.clients = env_int("CHAOS_CLIENTS", 24, 2, 256);
    cr_assert_eq(bgt_fix_start_ex(&run.f, NULL, CHAOS_SECTIONS, 2), 0, "fixture did not start");
    remember_workers(&run);
}

static bgt_gw second; /* the second gateway of second_gateway_restart */

static void teardown(void)
{
    if (second.pid > 0)
        bgt_gw_stop(&second);
    if (run.f.v.pid > 0)
        kill(run.f.v.pid, SIGCONT);
    chaos_load_free(&run.load);
    bgt_fix_stop(&run.f);
}

TestSuite(chaos, .init = setup, .fini = teardown, .timeout = 180);
#define CHAOS_MAXLEN 20000       /* stream_maxlen above */
#define CHAOS_REPLY_MAXLEN 11000 /* services trim reply streams with MAXLEN ~ 10000 */

/* ---- running one scenario ---- */

typedef void (*chaos_fault)(chaos_run *r);

/* Load for the whole run, the fault at a third of it; the whole run summed into all. */
static void chaos_go(chaos_run *r, const char *name, chaos_fault fault, chaos_sum *all)
{
    int dur = r->seconds * 1000;

    r->name = name;
    cr_assert_eq(chaos_load_start(&r->load, r->f.port, r->clients, dur, CHAOS_HANG_MS), 0);
    sleep_ms(dur / 3);
    r->fault_ms = chaos_load_now(&r->load);
    fault(r);
    remember_workers(r);
    chaos_load_join(&r->load);
    chaos_load_sum(&r->load, 0, INT64_MAX, all);
    chaos_sum_print(name, all);
}

/* What no fault may ever cause: a wrong or second answer, a hang, garbage. */
static void assert_never(const chaos_sum *s)
{
    cr_expect_eq(s->kind[CHAOS_WRONG_BODY], 0, "%ld answers with another request's body",
                 s->kind[CHAOS_WRONG_BODY]);
    cr_expect_eq(s->kind[CHAOS_EXTRA], 0, "%ld requests answered twice", s->kind[CHAOS_EXTRA]);
    cr_expect_eq(s->kind[CHAOS_HUNG], 0, "%ld requests hung", s->kind[CHAOS_HUNG]);
    cr_expect_eq(s->kind[CHAOS_BAD_HTTP], 0, "%ld garbled answers", s->kind[CHAOS_BAD_HTTP]);
    cr_expect_eq(s->s404, 0, "%ld answers of 404 for a served route", s->s404);
    cr_assert_gt(s->ok, 0, "nothing was served");
}

/* Every failed request satisfies pred; the count of those that do not is returned. */
static long count_failed_unless(const chaos_load *l, int (*pred)(const chaos_rec *))
{
    long bad = 0;

    for (int i = 0; i < l->nclients; i++)
        for (size_t j = 0; j < l->clients[i].nrecs; j++) {
            const chaos_rec *rec = &l->clients[i].recs[j];
            bad += chaos_rec_failed(rec) && !pred(rec);
        }
    return bad;
}

/* ---- the state afterwards ---- */

static int proc_alive(pid_t pid)
{
    char path[64], buf[256];
    FILE *fp;
    int alive;

    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((fp = fopen(path, "r")) == NULL)
        return 0;
    /* A zombie nobody reaps (a container's pid 1 may not) is gone all the same. */
    alive = fgets(buf, sizeof(buf), fp) != NULL && strstr(buf, ") Z ") == NULL;
    fclose(fp);
    return alive;
}

/* Seen workers that are not current workers must be gone. Returns how many are left. */
static int leftover_workers(const chaos_run *r, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    int left;

    do {
        pid_t now[BGT_GW_MAX_WORKERS];
        int n = r->f.g.pid > 0 ? bgt_gw_workers(&r->f.g, now, BGT_GW_MAX_WORKERS) : 0;
        left = 0;
        for (int i = 0; i < r->nseen; i++) {
            int current = 0;
            for (int j = 0; j < n; j++)
                current |= now[j] == r->seen[i];
            left += !current && proc_alive(r->seen[i]);
        }
        if (left == 0)
            return 0;
        sleep_ms(50);
    } while (bgt_now_ms() < until);
    return left;
}

/* ":N" replies of an EVAL, as a number (-1 on error). */
static long valkey_eval_long(const bgt_valkey *v, const char *script)
{
    char out[256];

    if (bgt_valkey_cmd(v, out, sizeof(out), "EVAL %s 0", script) != 0 || out[0] != ':')
        return -1;
    return atol(out + 1);
}

/* Entries pending in the groups of the request streams; the longest request stream; the
 * longest reply stream. One word each, as bgt_valkey_cmd splits on spaces. */
#define LUA_STREAMS(body)                                                                          \
    "\"local\tn=0\tfor\t_,k\tin\tipairs(redis.call('KEYS','router:*'))\tdo\tif\t"                  \
    "redis.call('TYPE',k).ok=='stream'\tthen\t" body "\tend\tend\treturn\tn\""
#define LUA_PENDING                                                                                \
    LUA_STREAMS("if\tk:find('^router:requests:')\tand\tnot\tk:find(':dead$')\tthen\t"              \
                "for\t_,g\tin\tipairs(redis.call('XINFO','GROUPS',k))\tdo\tfor\ti=1,#g,2\tdo\t"    \
                "if\tg[i]=='pending'\tthen\tn=n+g[i+1]\tend\tend\tend\tend")
#define LUA_MAX_LEN(prefix)                                                                        \
    LUA_STREAMS("if\tk:find('^" prefix "')\tand\tnot\tk:find(':dead$')\tthen\t"                    \
                "n=math.max(n,redis.call('XLEN',k))\tend")

static void assert_streams_bounded(const chaos_run *r)
{
    long long until = bgt_now_ms() + 15000;
    long pending, reqlen, replen;

    do {
        pending = valkey_eval_long(&r->f.v, LUA_PENDING);
        reqlen = valkey_eval_long(&r->f.v, LUA_MAX_LEN("router:requests:"));
        replen = valkey_eval_long(&r->f.v, LUA_MAX_LEN("router:responses:"));
        if (pending == 0 && reqlen >= 0 && reqlen <= CHAOS_MAXLEN && replen >= 0 &&
            replen <= CHAOS_REPLY_MAXLEN)
            break;
        sleep_ms(100);
    } while (bgt_now_ms() < until);
    printf("chaos %-16s settled: pending %ld, longest request stream %ld, longest reply stream "
           "%ld\n",
           r->name, pending, reqlen, replen);
    cr_expect_eq(pending, 0, "requests still pending after the run");
    cr_expect(reqlen >= 0 && reqlen <= CHAOS_MAXLEN, "request stream of %ld entries", reqlen);
    cr_expect(replen >= 0 && replen <= CHAOS_REPLY_MAXLEN, "reply stream of %ld entries", replen);
}

/* /readyz 200, the route served, nworkers workers, nothing left over, streams bounded. */
static void assert_settled(chaos_run *r, int nworkers)
{
    cr_expect_eq(bgt_fix_wait_status(&r->f, "/readyz", 200, 15000), 200, "/readyz never 200");
    cr_expect_eq(bgt_fix_wait_status(&r->f, "/echo", 200, 15000), 200, "/echo never 200");
    cr_expect_eq(bgt_gw_wait_workers(&r->f.g, nworkers, 15000), nworkers);
    cr_expect_eq(leftover_workers(r, 15000), 0, "worker processes outlived their retirement");
    assert_streams_bounded(r);
}

/* ---- scenarios ---- */

static int is_transport_loss(const chaos_rec *rec)
{
    return rec->kind == CHAOS_RESET || rec->kind == CHAOS_EOF;
}

static void fault_kill_worker(chaos_run *r)
{
    pid_t pids[BGT_GW_MAX_WORKERS];

    cr_assert_geq(bgt_gw_workers(&r->f.g, pids, BGT_GW_MAX_WORKERS), 1);
    cr_assert_eq(kill(pids[0], SIGKILL), 0);
}

/* Only requests that had reached the killed worker fail: at most one per connection
 * (the one it held), a transport error, and every other request is served. */
Test(chaos, worker_kill9)
{
    chaos_sum s;

    chaos_go(&run, "worker_kill9", fault_kill_worker, &s);
    assert_never(&s);
    cr_expect_leq(s.max_clients_failed, 1, "a client lost more than the request it had in flight");
    cr_expect_eq(count_failed_unless(&run.load, is_transport_loss), 0,
                 "a request that never reached the killed worker failed");
    assert_settled(&run, 2);
}

static void fault_kill_instance(chaos_run *r)
{
    bgt_fix_echo_kill(&r->f, 0, SIGKILL);
}

static int is_deadline_or_retry(const chaos_rec *rec)
{
    return rec->kind == CHAOS_ANSWERED &&
           (rec->status == 504 || (rec->status == 503 && rec->retry_after));
}

/* An instance dies with requests in hand: those are answered 504 at their deadline (or
 * reclaimed), everything else is served by the other instance. */
Test(chaos, instance_kill9)
{
    chaos_sum s;

    chaos_go(&run, "instance_kill9", fault_kill_instance, &s);
    assert_never(&s);
    cr_expect_eq(count_failed_unless(&run.load, is_deadline_or_retry), 0,
                 "a failure other than 504 / 503 Retry-After");
    assert_settled(&run, 2);
}

static void fault_term_instance(chaos_run *r)
{
    bgt_fix_echo_kill(&r->f, 0, SIGTERM);
}

/* GOODBYE and a drained instance: nothing fails. */
Test(chaos, instance_sigterm)
{
    chaos_sum s;

    chaos_go(&run, "instance_sigterm", fault_term_instance, &s);
    assert_never(&s);
    cr_expect_eq(s.total - s.ok, 0, "%ld requests failed across an instance's orderly exit",
                 s.total - s.ok);
    assert_settled(&run, 2);
}

/* The ini with "workers = 2" replaced by "workers = 3". */
static void rewrite_workers(const chaos_run *r)
{
    char text[8192], *p;
    FILE *fp = fopen(r->f.g.ini, "r");
    size_t n;

    cr_assert_not_null(fp);
    n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    p = strstr(text, "workers = 2");
    cr_assert_not_null(p, "the fixture's ini has no 'workers = 2'");
    p[strlen("workers = ")] = '3';
    cr_assert_eq(bgt_gw_write_raw(&r->f.g, text), 0);
}

static void fault_reload(chaos_run *r)
{
    rewrite_workers(r);
    cr_assert_eq(bgt_gw_signal(&r->f.g, SIGHUP), 0);
}

/* A reload replaces every worker: no request fails, no connection is reset. */
Test(chaos, reload_2_to_3_workers)
{
    chaos_sum s;

    chaos_go(&run, "reload_2_to_3", fault_reload, &s);
    assert_never(&s);
    cr_expect_eq(s.total - s.ok, 0, "%ld requests failed across a reload", s.total - s.ok);
    assert_settled(&run, 3);
}

static void fault_valkey_restart(chaos_run *r)
{
    bgt_valkey_kill(&r->f.v);
    sleep_ms(CHAOS_DOWN_MS);
    cr_assert_eq(bgt_valkey_restart(&r->f.v), 0, "valkey did not come back on its port");
    r->back_ms = chaos_load_now(&r->load);
}

static int is_bus_down_answer(const chaos_rec *rec)
{
    return rec->kind == CHAOS_ANSWERED &&
           ((rec->status == 503 && rec->retry_after) || rec->status == 504);
}

/* Valkey dies and comes back empty: while it is down the gateway answers 503 with
 * Retry-After from the routing table it kept (never 404); afterwards it rebuilds its
 * groups and re-learns the services by itself. */
Test(chaos, valkey_restart_empty)
{
    int64_t back_ms, first_end, first;
    chaos_sum s;

    chaos_go(&run, "valkey_restart", fault_valkey_restart, &s);
    back_ms = run.back_ms;
    first = chaos_load_first_ok_after(&run.load, back_ms, &first_end);
    printf("chaos %-16s valkey back at %lld ms; first good 200 after it ended %lld ms later\n",
           "valkey_restart", (long long)back_ms, (long long)(first_end - back_ms));
    assert_never(&s);
    cr_expect_geq(first, 0, "no request succeeded after Valkey came back");
    cr_expect_eq(count_failed_unless(&run.load, is_bus_down_answer), 0,
                 "a failure other than 503 Retry-After / 504 while the bus was down");
    assert_settled(&run, 2);
}

static void fault_valkey_stop(chaos_run *r)
{
    cr_assert_eq(kill(r->f.v.pid, SIGSTOP), 0);
    sleep_ms(CHAOS_STOP_MS);
    cr_assert_eq(kill(r->f.v.pid, SIGCONT), 0);
}

/* Valkey frozen for 3 s: requests wait or time out with 504/503, none is lost. */
Test(chaos, valkey_sigstop)
{
    chaos_sum s;

    chaos_go(&run, "valkey_sigstop", fault_valkey_stop, &s);
    assert_never(&s);
    cr_expect_eq(count_failed_unless(&run.load, is_bus_down_answer), 0,
                 "a failure other than 503 Retry-After / 504 while the bus was frozen");
    assert_settled(&run, 2);
}

/* Refused while no master listens; 503 with Retry-After from the fresh master until
 * the services have replayed their endpoints to it (its startup grace). */
static int is_refused_or_regrace(const chaos_rec *rec)
{
    return rec->kind == CHAOS_CONNECT ||
           (rec->start_ms >= run.back_ms && rec->kind == CHAOS_ANSWERED && rec->status == 503 &&
            rec->retry_after);
}

/* kill -9 of the master, then what an init system does: start a fresh one once the old
 * workers are gone. */
static void fault_kill_master(chaos_run *r)
{
    cr_assert_eq(kill(r->f.g.pid, SIGKILL), 0);
    cr_assert_eq(bgt_gw_wait_exit(&r->f.g, 5000), 128 + SIGKILL);
    /* Unsupervised workers finish what they hold and exit (drain_timeout is 5 s). */
    cr_expect_eq(leftover_workers(r, 10000), 0, "workers kept serving without a master");
    r->back_ms = chaos_load_now(&r->load); /* from here on only the fresh master answers */
    cr_assert_eq(bgt_gw_start(&r->f.g), 0, "a fresh master did not start");
    cr_assert_eq(bgt_gw_wait_workers(&r->f.g, 2, 10000), 2);
}

/* The workers of a dead master answer what they hold (nothing is reset) and exit; the
 * only failures are refused connections until the fresh master listens. */
Test(chaos, master_kill9)
{
    int64_t first_end;
    chaos_sum s;

    chaos_go(&run, "master_kill9", fault_kill_master, &s);
    if (chaos_load_first_ok_after(&run.load, run.back_ms, &first_end) < 0)
        first_end = -1;
    printf("chaos %-16s killed at %lld ms, fresh master started at %lld ms, first good 200 "
           "after it at %lld ms\n",
           "master_kill9", (long long)run.fault_ms, (long long)run.back_ms, (long long)first_end);
    assert_never(&s);
    cr_expect_eq(count_failed_unless(&run.load, is_refused_or_regrace), 0,
                 "a request was lost by a dying worker instead of being answered");
    assert_settled(&run, 2);
}

/* ---- two gateways on one bus ---- */

/* A second busgated (gw-second, 2 workers) on the fixture's Valkey, configured like the
 * first; the fixture's [gateway] text starts with its own instance_id line, replaced. */
static void second_start(void)
{
    char gateway[1024], extra[1024];
    const char *rest = strchr(BGT_FIX_GATEWAY, '\n') + 1;
    bgt_gw_opts o = {.valkey_url = run.f.v.url, .workers = 2};

    cr_assert(strncmp(BGT_FIX_GATEWAY, "instance_id = ", 14) == 0);
    snprintf(gateway, sizeof(gateway), "instance_id = gw-second\n%s", rest);
    snprintf(extra, sizeof(extra), "%s[admin]\ntoken = %s\n%s", BGT_FIX_MESSAGING, BGT_FIX_TOKEN,
             CHAOS_SECTIONS);
    o.extra_gateway = gateway;
    o.extra = extra;
    cr_assert_eq(bgt_gw_init(&second, &o), 0);
    cr_assert_eq(bgt_gw_start(&second), 0, "second gateway did not start (see %s)", second.log);
    cr_assert_eq(bgt_gw_wait_workers(&second, 2, 10000), 2);
    cr_assert_eq(bgt_wait_http(second.port, "/echo", 200, 15000), 0, "gw-second never served");
}

static int64_t second_back_ms;

/* While gw-second is away its clients are refused; its fresh master answers 503 with
 * Retry-After until the services replayed their endpoints to it; a request sent on a kept
 * connection as the draining gateway closed it sees a clean EOF. Nothing else. */
static int is_second_restart_loss(const chaos_rec *rec)
{
    return rec->kind == CHAOS_CONNECT || (rec->kind == CHAOS_EOF && rec->reused) ||
           (rec->start_ms >= second_back_ms && rec->kind == CHAOS_ANSWERED && rec->status == 503 &&
            rec->retry_after);
}

/* Two gateways serve the same services from one bus under load; one is stopped (SIGTERM)
 * and started again mid-run. The other never fails a request, and no answer crosses
 * gateways (every body is the echo of its own request). */
Test(chaos, second_gateway_restart)
{
    int dur = run.seconds * 1000;
    chaos_load load2;
    chaos_sum s1, s2;

    memset(&load2, 0, sizeof(load2));
    second_start();
    run.name = "two_gateways";
    cr_assert_eq(chaos_load_start(&run.load, run.f.port, run.clients / 2, dur, CHAOS_HANG_MS), 0);
    cr_assert_eq(chaos_load_start(&load2, second.port, run.clients / 2, dur, CHAOS_HANG_MS), 0);
    sleep_ms(dur / 3);
    cr_assert_eq(bgt_gw_signal(&second, SIGTERM), 0);
    cr_assert_eq(bgt_gw_wait_exit(&second, 15000), 0, "gw-second did not stop cleanly");
    second_back_ms = chaos_load_now(&load2);
    cr_assert_eq(bgt_gw_start(&second), 0, "gw-second did not start again");
    chaos_load_join(&run.load);
    chaos_load_join(&load2);
    chaos_load_sum(&run.load, 0, INT64_MAX, &s1);
    chaos_load_sum(&load2, 0, INT64_MAX, &s2);
    chaos_sum_print("gw_kept", &s1);
    chaos_sum_print("gw_restarted", &s2);
    assert_never(&s1);
    assert_never(&s2);
    cr_expect_eq(s1.total - s1.ok, 0, "%ld requests failed on the gateway that kept running",
                 s1.total - s1.ok);
    cr_expect_eq(count_failed_unless(&load2, is_second_restart_loss), 0,
                 "the restarted gateway lost a request in another way");
    cr_expect_eq(bgt_wait_http(second.port, "/echo", 200, 15000), 0, "gw-second never back");
    chaos_load_free(&load2);
    bgt_gw_stop(&second);
    assert_settled(&run, 2);
}
