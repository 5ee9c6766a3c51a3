/* test_supervisor.c: the master and its workers as real processes, and the channel. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "busgate/core/channel.h"
#include "gw_fixture.h"
#include "proc_harness.h"
#include "valkey_harness.h"

static bgt_valkey vk;
static bgt_gw gw;

static void vk_up(void)
{
    cr_assert_eq(bgt_valkey_start(&vk, NULL), 0, "valkey-server did not start");
}

/* Writes the ini of gw with n workers and optional extra [gateway] lines. */
static void gw_config(int workers, const char *extra_gateway)
{
    bgt_gw_opts o = {.valkey_url = vk.url, .workers = workers, .extra_gateway = extra_gateway};

    cr_assert_eq(bgt_gw_write_ini(&gw, &o), 0);
}

/* A gateway with 2 workers, started and with both workers up. */
static void gw_up(void)
{
    bgt_gw_opts o;

    vk_up();
    o = (bgt_gw_opts){.valkey_url = vk.url, .workers = 2};
    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    cr_assert_eq(bgt_gw_start(&gw), 0, "busgated did not start (see %s)", gw.log);
    cr_assert_eq(bgt_gw_wait_workers(&gw, 2, 10000), 2, "2 workers expected");
}

static void gw_down(void)
{
    bgt_gw_stop(&gw);
    bgt_valkey_stop(&vk);
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    int rc;

    if (f == NULL)
        return -1;
    rc = fputs(text, f) < 0 ? -1 : 0;
    return fclose(f) != 0 ? -1 : rc;
}

static int pid_alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno != ESRCH;
}

static int pid_in(pid_t pid, const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        if (pids[i] == pid)
            return 1;
    }
    return 0;
}

/* Waits until every pid in old is gone and n workers run, none of them from old. */
static int wait_replaced(const pid_t *old, int nold, int n, pid_t *now, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;

    for (;;) {
        int got = bgt_gw_workers(&gw, now, BGT_GW_MAX_WORKERS), fresh = 1;

        for (int i = 0; i < got; i++)
            fresh &= !pid_in(now[i], old, nold);
        if (got == n && fresh)
            return 0;
        if (bgt_now_ms() >= until)
            return -1;
        usleep(20000);
    }
}

TestSuite(supervisor, .init = gw_up, .fini = gw_down, .timeout = 60);

Test(supervisor, starts_titled_workers_under_the_master)
{
    pid_t w[BGT_GW_MAX_WORKERS];
    char title[256];
    int n = bgt_gw_workers(&gw, w, BGT_GW_MAX_WORKERS);

    cr_assert_eq(n, 2);
    cr_assert_gt(bgt_proc_title(gw.pid, title, sizeof(title)), 0);
    cr_assert_str_eq(title, "busgate: master process");
    for (int i = 0; i < n; i++) {
        cr_assert_gt(bgt_proc_title(w[i], title, sizeof(title)), 0);
        cr_assert_str_eq(title, "busgate: worker process");
    }
    cr_assert_eq(bgt_gw_pidfile_pid(&gw), gw.pid, "pid file holds the master's pid");
    cr_assert_eq(bgt_gw_wait_log(&gw, "started worker 0 (pid", 1, 5000), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "started worker 1 (pid", 1, 5000), 0);
}

Test(supervisor, kill9_worker_is_respawned_into_its_slot)
{
    pid_t before[BGT_GW_MAX_WORKERS], after[BGT_GW_MAX_WORKERS];
    char want[128];
    int n = bgt_gw_workers(&gw, before, BGT_GW_MAX_WORKERS);

    cr_assert_eq(n, 2);
    cr_assert_eq(kill(before[0], SIGKILL), 0);
    snprintf(want, sizeof(want), "(pid %ld) exited on signal 9; respawning", (long)before[0]);
    cr_assert_eq(bgt_gw_wait_log(&gw, want, 1, 10000), 0, "death not logged");
    cr_assert_eq(wait_replaced(before, 1, 2, after, 10000), 0, "no replacement worker");
    cr_assert(pid_in(before[1], after, 2), "the other worker was left alone");
    /* Same slot: the slot that died is the one started a second time. */
    cr_assert_eq(bgt_gw_log_count(&gw, "started worker 0 (pid") +
                     bgt_gw_log_count(&gw, "started worker 1 (pid"),
                 3);
    cr_assert_eq(bgt_gw_log_count(&gw, "started worker 2 (pid"), 0, "no new slot used");
    for (int i = 0; i < 20; i++) {
        char out[4096];

        cr_assert_eq(bgt_http_get(gw.port, "/healthz", out, sizeof(out), 5000), 200,
                     "request %d after the respawn: %s", i, out);
    }
}

Test(supervisor, quick_deaths_back_off_exponentially)
{
    pid_t w[BGT_GW_MAX_WORKERS], prev[BGT_GW_MAX_WORKERS];
    int n;

    /* Kill the newest worker (highest pid: the one just respawned into the
     * same slot) four times in a row, each soon after its start. Four, not three:
     * the first victim was started with the fixture, and on a loaded machine that
     * may be longer ago than BG_RESPAWN_QUICK_MS, so its death may not count. */
    for (int round = 0; round < 4; round++) {
        n = bgt_gw_workers(&gw, prev, BGT_GW_MAX_WORKERS);
        cr_assert_eq(n, 2);
        cr_assert_eq(kill(prev[1], SIGKILL), 0);
        cr_assert_eq(wait_replaced(prev + 1, 1, 2, w, 10000), 0, "round %d: no respawn", round);
    }
    cr_assert_eq(bgt_gw_wait_log(&gw, "respawning in 100 ms", 1, 1000), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "respawning in 200 ms", 1, 1000), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "respawning in 400 ms", 1, 1000), 0);
}

Test(supervisor, sigsys_death_is_logged_as_seccomp_violation)
{
    pid_t w[BGT_GW_MAX_WORKERS], after[BGT_GW_MAX_WORKERS];
    char want[128];

    cr_assert_eq(bgt_gw_workers(&gw, w, BGT_GW_MAX_WORKERS), 2);
    cr_assert_eq(kill(w[1], SIGSYS), 0);
    snprintf(want, sizeof(want), "[error] master %ld: worker", (long)gw.pid);
    cr_assert_eq(bgt_gw_wait_log(&gw, "killed by SIGSYS: seccomp violation", 1, 10000), 0);
    cr_assert_geq(bgt_gw_log_count(&gw, want), 1, "logged at error level");
    cr_assert_eq(wait_replaced(w + 1, 1, 2, after, 10000), 0, "respawned after SIGSYS");
}

Test(supervisor, sighup_changes_worker_count_keeping_the_master)
{
    pid_t before[BGT_GW_MAX_WORKERS], after[BGT_GW_MAX_WORKERS];
    pid_t master = gw.pid;
    int n = bgt_gw_workers(&gw, before, BGT_GW_MAX_WORKERS);

    cr_assert_eq(n, 2);
    gw_config(3, NULL);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(wait_replaced(before, 2, 3, after, 15000), 0, "3 new workers expected");
    cr_assert_eq(gw.pid, master);
    cr_assert(pid_alive(master));
    cr_assert_eq(bgt_gw_wait_log(&gw, "reload: generation 2 started with 3 workers", 1, 5000), 0);
    cr_assert_eq(
        bgt_gw_wait_log(&gw, "reload: generation 2 ready; retiring the older workers", 1, 5000), 0,
        "the new workers reported ready over their channels");
    cr_assert_eq(bgt_gw_log_count(&gw, "reported ready in time"), 0, "no readiness timeout");
    cr_assert_eq(bgt_gw_wait_log(&gw, "exited with code 0", 2, 10000), 0,
                 "old workers drained and exited 0");
    cr_assert_eq(bgt_wait_port(gw.port, 1000), 0, "the listen socket survived the reload");
}

Test(supervisor, invalid_ini_on_sighup_keeps_old_workers)
{
    pid_t before[BGT_GW_MAX_WORKERS], after[BGT_GW_MAX_WORKERS];
    char want[400];
    int n = bgt_gw_workers(&gw, before, BGT_GW_MAX_WORKERS);

    cr_assert_eq(n, 2);
    cr_assert_eq(bgt_gw_write_raw(&gw, "[gateway]\nworkers = many\n"), 0);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "invalid; keeping the running configuration", 1, 10000), 0);
    snprintf(want, sizeof(want), "reload: %s:2: [gateway] workers = 'many'", gw.ini);
    cr_assert_eq(bgt_gw_log_count(&gw, want), 1, "the error names file, line and key");
    cr_assert_eq(bgt_gw_workers(&gw, after, BGT_GW_MAX_WORKERS), 2);
    cr_assert_arr_eq(before, after, 2 * sizeof(pid_t), "the same workers keep running");
    cr_assert_eq(bgt_wait_port(gw.port, 1000), 0);
}

Test(supervisor, reload_opens_new_and_closes_removed_listen_addresses)
{
    int extra = bgt_free_port();
    char line[64];

    cr_assert_gt(extra, 0);
    cr_assert_neq(bgt_wait_port(extra, 100), 0, "port %d is in use", extra);
    snprintf(line, sizeof(line), "listen = 127.0.0.1:%d\n", extra);
    gw_config(2, line);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "reload: generation 2", 1, 10000), 0);
    cr_assert_eq(bgt_wait_port(extra, 2000), 0, "the added address listens");
    cr_assert_eq(bgt_wait_port(gw.port, 1000), 0, "the kept address still listens");
    gw_config(2, NULL);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "reload: generation 3", 1, 10000), 0);
    /* Old-generation workers hold their copy until they exit. */
    cr_assert_eq(bgt_gw_wait_log(&gw, "exited with code 0", 4, 15000), 0);
    cr_assert_neq(bgt_wait_port(extra, 200), 0, "the removed address is closed");
    cr_assert_eq(bgt_wait_port(gw.port, 1000), 0);
}

Test(supervisor, sigterm_stops_gracefully_leaving_no_process)
{
    pid_t w[BGT_GW_MAX_WORKERS];
    int n = bgt_gw_workers(&gw, w, BGT_GW_MAX_WORKERS);
    struct stat st;

    cr_assert_eq(n, 2);
    cr_assert_eq(bgt_gw_signal(&gw, SIGTERM), 0);
    cr_assert_eq(bgt_gw_wait_exit(&gw, 15000), 0, "exit code 0 expected");
    for (int i = 0; i < n; i++)
        cr_assert_not(pid_alive(w[i]), "worker %ld left behind", (long)w[i]);
    cr_assert_eq(bgt_gw_log_count(&gw, "graceful stop: 2 workers draining"), 1);
    cr_assert_eq(bgt_gw_log_count(&gw, "exited with code 0"), 2, "both drained and exited 0");
    cr_assert_neq(stat(gw.pidfile, &st), 0, "pid file removed");
}

Test(supervisor, sigquit_stops_fast)
{
    pid_t w[BGT_GW_MAX_WORKERS];
    int n = bgt_gw_workers(&gw, w, BGT_GW_MAX_WORKERS);

    cr_assert_eq(n, 2);
    cr_assert_eq(bgt_gw_signal(&gw, SIGQUIT), 0);
    cr_assert_eq(bgt_gw_wait_exit(&gw, 5000), 0);
    for (int i = 0; i < n; i++)
        cr_assert_not(pid_alive(w[i]));
    cr_assert_eq(bgt_gw_log_count(&gw, "fast stop: 2 workers"), 1);
}

Test(supervisor, pid_file_refuses_a_second_master)
{
    const char *const args[] = {"-g", NULL};
    char out[4096], want[128];
    int rc = bgt_gw_run(&gw, args, out, sizeof(out), 10000);

    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    snprintf(want, sizeof(want), "already running (pid %ld", (long)gw.pid);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    cr_assert(pid_alive(gw.pid), "the first master is untouched");
    cr_assert_eq(bgt_gw_pidfile_pid(&gw), gw.pid);
}

Test(supervisor, sigusr1_reopens_the_log)
{
    char moved[400];

    snprintf(moved, sizeof(moved), "%s.1", gw.log);
    cr_assert_eq(rename(gw.log, moved), 0);
    cr_assert_eq(bgt_gw_signal(&gw, SIGUSR1), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "reopened the error log", 1, 10000), 0,
                 "the master writes to a new file at the old path");
    unlink(moved);
}

Test(supervisor, s_reload_and_s_stop_reach_the_master)
{
    const char *const reload[] = {"-s", "reload", NULL}, *const stop[] = {"-s", "stop", NULL};
    char out[4096];
    int rc = bgt_gw_run(&gw, reload, out, sizeof(out), 10000);

    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    cr_assert_eq(bgt_gw_wait_log(&gw, "reload: generation 2", 1, 10000), 0);
    rc = bgt_gw_run(&gw, stop, out, sizeof(out), 10000);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    cr_assert_eq(bgt_gw_wait_exit(&gw, 15000), 0);
}

Test(supervisor, fatal_config_exit_is_not_respawned_and_old_workers_serve_on)
{
    pid_t before[BGT_GW_MAX_WORKERS], now[BGT_GW_MAX_WORKERS];

    cr_assert_eq(bgt_gw_workers(&gw, before, BGT_GW_MAX_WORKERS), 2);
    /* An unknown user makes the new workers' sandbox fail: exit code 2. */
    gw_config(2, "user = bgt-no-such-user\n");
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw, "(fatal configuration error); not respawning", 2, 10000), 0);
    cr_assert_eq(bgt_gw_wait_log(&gw,
                                 "no worker of generation 2 is running; the older workers "
                                 "keep serving",
                                 1, 10000),
                 0);
    cr_assert_eq(bgt_gw_workers(&gw, now, BGT_GW_MAX_WORKERS), 2);
    cr_assert_arr_eq(before, now, 2 * sizeof(pid_t), "generation 1 still serves");
    cr_assert_eq(bgt_gw_log_count(&gw, "started worker"), 4, "2 at start, 2 of generation 2");
    cr_assert_eq(bgt_http_get(gw.port, "/healthz", (char[4096]){0}, 4096, 5000), 200);
    gw_config(2, NULL);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(wait_replaced(before, 2, 2, now, 15000), 0, "a fixed config replaces them");
}

/* ---- under load: a real service behind the gateway ---- */

typedef struct load_client {
    int port;
    const char *path;
    volatile int stop;
    int ok, failed, last_failure;
    char failure[512]; /* start of the last failed response */
} load_client;

static void *load_run(void *arg)
{
    load_client *c = arg;
    char out[8192];

    while (!c->stop) {
        int status = bgt_http_get(c->port, c->path, out, sizeof(out), 5000);

        if (status == 200) {
            c->ok++;
        } else {
            c->failed++;
            c->last_failure = status;
            snprintf(c->failure, sizeof(c->failure), "%.500s", out);
        }
    }
    return NULL;
}

static pid_t echo_pid;
static char echo_out[400];

static void load_up(void)
{
    const char *args[] = {"-u", NULL, "-n", "e1", NULL};

    gw_up();
    args[1] = vk.url;
    snprintf(echo_out, sizeof(echo_out), "%s/echo.out", gw.dir);
    echo_pid = bgt_spawn_built("echo-service", args, echo_out);
    cr_assert_gt(echo_pid, 0, "echo-service not built");
    cr_assert_eq(bgt_wait_http(gw.port, "/echo/1", 200, 15000), 0, "echo never routed");
}

static void load_down(void)
{
    if (echo_pid > 0)
        bgt_stop_pid(echo_pid, 5000);
    echo_pid = 0;
    gw_down();
}

TestSuite(supervisor_load, .init = load_up, .fini = load_down, .timeout = 60);

Test(supervisor_load, reload_to_three_workers_fails_no_request)
{
    load_client c = {.port = gw.port, .path = "/echo/7?x=1"};
    pid_t before[BGT_GW_MAX_WORKERS], after[BGT_GW_MAX_WORKERS];
    pthread_t t;
    int ok_before;

    cr_assert_eq(bgt_gw_workers(&gw, before, BGT_GW_MAX_WORKERS), 2);
    cr_assert_eq(pthread_create(&t, NULL, load_run, &c), 0);
    for (int i = 0; i < 500 && c.ok < 20; i++)
        usleep(10000);
    gw_config(3, NULL);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(wait_replaced(before, 2, 3, after, 15000), 0, "3 new workers expected");
    ok_before = c.ok;
    for (int i = 0; i < 500 && c.ok < ok_before + 20; i++)
        usleep(10000); /* the new generation serves too */
    c.stop = 1;
    pthread_join(t, NULL);
    cr_assert_eq(c.failed, 0, "%d of %d requests failed (last status %d):\n%s", c.failed,
                 c.ok + c.failed, c.last_failure, c.failure);
    cr_assert_geq(c.ok, ok_before + 20, "requests were served after the reload");
    cr_assert_eq(bgt_gw_log_count(&gw, "reload: generation 2 ready; retiring the older workers"),
                 1);
    cr_assert_eq(bgt_gw_log_count(&gw, "reported ready in time"), 0, "no readiness timeout");
}

static void *slow_get(void *arg)
{
    load_client *c = arg;
    char out[8192];

    c->last_failure = bgt_http_get(c->port, c->path, out, sizeof(out), 20000);
    return NULL;
}

Test(supervisor_load, sigterm_lets_in_flight_requests_finish)
{
    load_client c = {.port = gw.port, .path = "/echo/slow?ms=1500"};
    char metrics[16384];
    pthread_t t;
    int seen = 0;

    cr_assert_eq(pthread_create(&t, NULL, slow_get, &c), 0);
    /* Stop only once the request is dispatched (the in-flight gauge shows it). */
    for (int i = 0; i < 200 && !seen; i++) {
        if (bgt_http_get(gw.port, "/metrics", metrics, sizeof(metrics), 2000) == 200)
            seen = strstr(metrics, "\nbusgate_inflight_requests 1") != NULL;
        if (!seen)
            usleep(10000);
    }
    cr_assert(seen, "the slow request never showed as in flight:\n%s", metrics);
    cr_assert_eq(bgt_gw_signal(&gw, SIGTERM), 0);
    cr_assert_eq(bgt_gw_wait_exit(&gw, 15000), 0, "exit code 0 expected");
    pthread_join(t, NULL);
    cr_assert_eq(c.last_failure, 200, "the in-flight request completed");
    cr_assert_eq(bgt_gw_log_count(&gw, "exited with code 0"), 2);
}

/* ---- the log files: access log lines, SIGUSR1 under seccomp ---- */

static char alog[400];

/* Lines of path containing needle (0 when the file is missing). */
static int file_count(const char *path, const char *needle)
{
    char line[8192];
    FILE *f = fopen(path, "r");
    int n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Waits until path has at least count lines containing needle; returns the last count. */
static int file_wait_count(const char *path, const char *needle, int count, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    int n;

    while ((n = file_count(path, needle)) < count && bgt_now_ms() < until)
        usleep(20000);
    return n;
}

/* GET /echo/<tag>?token=secret n times, each answered 200. */
static void get_tagged(const char *tag, int n)
{
    char path[128], out[8192];

    snprintf(path, sizeof(path), "/echo/%s?token=secret", tag);
    for (int i = 0; i < n; i++)
        cr_assert_eq(bgt_http_get(gw.port, path, out, sizeof(out), 5000), 200, "%s: %s", path, out);
}

/* Access log in the gateway's dir; seccomp is on (the default). */
static void logs_up(void)
{
    const char *args[] = {"-u", NULL, "-n", "e1", NULL};
    bgt_gw_opts o;
    char line[500];

    vk_up();
    o = (bgt_gw_opts){.valkey_url = vk.url, .workers = 2};
    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    snprintf(alog, sizeof(alog), "%s/access.log", gw.dir);
    snprintf(line, sizeof(line), "access_log = %s\n", alog);
    gw_config(2, line);
    cr_assert_eq(bgt_gw_start(&gw), 0, "busgated did not start (see %s)", gw.log);
    cr_assert_eq(bgt_gw_wait_workers(&gw, 2, 10000), 2);
    args[1] = vk.url;
    snprintf(echo_out, sizeof(echo_out), "%s/echo.out", gw.dir);
    echo_pid = bgt_spawn_built("echo-service", args, echo_out);
    cr_assert_gt(echo_pid, 0, "echo-service not built");
    cr_assert_eq(bgt_wait_http(gw.port, "/echo/1", 200, 15000), 0, "echo never routed");
    cr_assert_eq(bgt_wait_http(gw.port, "/readyz", 200, 15000), 0, "never ready");
}

TestSuite(supervisor_logs, .init = logs_up, .fini = load_down, .timeout = 60);

Test(supervisor_logs, one_access_log_line_per_request)
{
    get_tagged("alog-one", 6);
    cr_assert_eq(file_wait_count(alog, " path=/echo/alog-one ", 6, 5000), 6);
    cr_assert_eq(file_count(alog, " method=GET path=/echo/alog-one status=200 "), 6);
    cr_assert_eq(file_count(alog, " service=echo instance=e1 "), file_count(alog, "service=echo"));
    cr_assert_eq(file_count(alog, "secret"), 0, "the query is not logged");
    cr_assert_eq(bgt_http_get(gw.port, "/no/such/route", (char[4096]){0}, 4096, 5000), 404);
    cr_assert_eq(file_wait_count(alog, " path=/no/such/route status=404 ", 1, 5000), 1);
}

Test(supervisor_logs, sigusr1_moves_both_logs_of_sandboxed_workers)
{
    char old_err[420], old_alog[420];
    pid_t before[BGT_GW_MAX_WORKERS], after[BGT_GW_MAX_WORKERS];

    cr_assert_eq(bgt_gw_log_count(&gw, "seccomp = off"), 0, "the workers run under seccomp");
    cr_assert_eq(bgt_gw_workers(&gw, before, BGT_GW_MAX_WORKERS), 2);
    get_tagged("rot-before", 2);
    cr_assert_eq(file_wait_count(alog, "path=/echo/rot-before ", 2, 5000), 2);
    snprintf(old_err, sizeof(old_err), "%s.1", gw.log);
    snprintf(old_alog, sizeof(old_alog), "%s.1", alog);
    cr_assert_eq(rename(gw.log, old_err), 0);
    cr_assert_eq(rename(alog, old_alog), 0);
    cr_assert_eq(bgt_gw_signal(&gw, SIGUSR1), 0);
    /* Each worker says so in the new error log: it took the master's descriptors. */
    cr_assert_eq(bgt_gw_wait_log(&gw, "log files taken over from the master", 2, 10000), 0,
                 "both workers write to the new error log");
    cr_assert_eq(bgt_gw_log_count(&gw, "reopened the access log"), 1);
    /* Every worker took over both files: whichever serves, the line lands there. */
    get_tagged("rot-after", 8);
    cr_assert_eq(file_wait_count(alog, "path=/echo/rot-after ", 8, 5000), 8);
    cr_assert_eq(file_count(alog, "path=/echo/rot-before "), 0);
    cr_assert_eq(file_count(old_alog, "path=/echo/rot-before "), 2, "the old file keeps its lines");
    cr_assert_eq(file_count(old_alog, "path=/echo/rot-after "), 0);
    cr_assert_eq(file_count(old_err, "log files taken over"), 0);
    cr_assert_eq(bgt_gw_workers(&gw, after, BGT_GW_MAX_WORKERS), 2);
    cr_assert_arr_eq(before, after, 2 * sizeof(pid_t), "no worker died (SIGSYS) on the way");
}

Test(supervisor_logs, reload_moves_the_access_log_for_new_workers)
{
    pid_t before[BGT_GW_MAX_WORKERS], after[BGT_GW_MAX_WORKERS];
    char moved[420], line[500];

    cr_assert_eq(bgt_gw_workers(&gw, before, BGT_GW_MAX_WORKERS), 2);
    snprintf(moved, sizeof(moved), "%s/access2.log", gw.dir);
    snprintf(line, sizeof(line), "access_log = %s\n", moved);
    gw_config(2, line);
    cr_assert_eq(bgt_gw_signal(&gw, SIGHUP), 0);
    cr_assert_eq(wait_replaced(before, 2, 2, after, 15000), 0, "a new generation expected");
    cr_assert_eq(bgt_gw_log_count(&gw, "reload: access log is now"), 1);
    get_tagged("moved", 4);
    cr_assert_eq(file_wait_count(moved, "path=/echo/moved ", 4, 5000), 4);
    cr_assert_eq(file_count(alog, "path=/echo/moved "), 0);
}

/* ---- graceful stop: what a draining worker does with its connections ---- */

static const char healthz_req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

Test(supervisor_cli, drain_serves_fresh_connections_and_closes_idle_ones)
{
    bgt_gw_opts o = {.valkey_url = vk.url, .workers = 1};
    bgt_conn fresh, idle;
    bgt_resp r;
    char hdr[64];

    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    cr_assert_eq(bgt_gw_start(&gw), 0, "busgated did not start (see %s)", gw.log);
    cr_assert_eq(bgt_conn_open(&fresh, gw.port), 0);
    cr_assert_eq(bgt_conn_open(&idle, gw.port), 0);
    /* idle: one answered keep-alive request. One worker accepts in order, so
     * once that is answered, fresh (connected first) is accepted too. */
    cr_assert_eq(bgt_conn_send(&idle, healthz_req, strlen(healthz_req)), 0);
    cr_assert_eq(bgt_conn_read(&idle, &r, 0, 10000), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    cr_assert_eq(bgt_gw_signal(&gw, SIGTERM), 0);
    /* Its close also says the drain began: only now does fresh send its request. */
    cr_assert_eq(bgt_conn_wait_eof(&idle, 5000), 1, "the idle keep-alive connection is closed");
    cr_assert_eq(bgt_conn_send(&fresh, healthz_req, strlen(healthz_req)), 0);
    cr_assert_eq(bgt_conn_read(&fresh, &r, 0, 5000), 0, "the fresh connection is served");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(bgt_resp_header(&r, "Connection", hdr, sizeof(hdr)), 0);
    cr_assert_str_eq(hdr, "close");
    bgt_resp_free(&r);
    cr_assert_eq(bgt_conn_wait_eof(&fresh, 5000), 1);
    bgt_conn_close(&fresh);
    bgt_conn_close(&idle);
    cr_assert_eq(bgt_gw_wait_exit(&gw, 15000), 0);
}

TestSuite(supervisor_cli, .init = vk_up, .fini = gw_down, .timeout = 60);

Test(supervisor_cli, daemon_mode_detaches_and_s_stop_ends_it)
{
    const char *const none[] = {NULL}, *const stop[] = {"-s", "stop", NULL};
    bgt_gw_opts o = {.valkey_url = vk.url, .workers = 1};
    char out[4096];
    pid_t master;
    int rc;

    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    rc = bgt_gw_run(&gw, none, out, sizeof(out), 10000);
    cr_assert_eq(rc, 0, "the foreground process exits 0 once detached:\n%s", out);
    cr_assert_eq(bgt_wait_port(gw.port, 10000), 0);
    for (int i = 0; i < 500 && bgt_gw_pidfile_pid(&gw) <= 0; i++)
        usleep(10000);
    master = bgt_gw_pidfile_pid(&gw);
    cr_assert_gt(master, 0, "pid file written");
    cr_assert_eq(bgt_gw_wait_workers(&gw, 1, 10000), 1);
    cr_assert_eq(getsid(master), master, "the daemon leads its own session");
    rc = bgt_gw_run(&gw, stop, out, sizeof(out), 10000);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    for (int i = 0; i < 1500 && pid_alive(master); i++)
        usleep(10000);
    cr_assert_not(pid_alive(master), "the daemon stopped");
}

Test(supervisor_cli, s_without_a_running_master_fails_clearly)
{
    const char *const stop[] = {"-s", "stop", NULL}, *const bad[] = {"-s", "explode", NULL};
    bgt_gw_opts o = {.valkey_url = vk.url};
    char out[4096], line[32];
    int rc;

    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    rc = bgt_gw_run(&gw, stop, out, sizeof(out), 10000);
    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_assert(strstr(out, "busgated: -s stop: open(") != NULL, "%s", out);
    rc = bgt_gw_run(&gw, bad, out, sizeof(out), 10000);
    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_assert(strstr(out, "unknown signal 'explode'") != NULL, "%s", out);
    /* A stale pid file naming some other process: refused, nothing signalled. */
    snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    cr_assert_eq(write_text(gw.pidfile, line), 0);
    rc = bgt_gw_run(&gw, stop, out, sizeof(out), 10000);
    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_assert(strstr(out, "is not a busgate master (stale pid file?)") != NULL, "%s", out);
    unlink(gw.pidfile);
}

Test(supervisor_cli, listen_failure_is_reported_before_starting)
{
    bgt_gw_opts o = {.valkey_url = vk.url};
    const char *const args[] = {"-g", NULL};
    char out[4096], line[64];
    int rc;

    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    snprintf(line, sizeof(line), "listen = 203.0.113.7:%d\n", gw.port); /* not a local address */
    o.extra_gateway = line;
    cr_assert_eq(bgt_gw_write_ini(&gw, &o), 0);
    rc = bgt_gw_run(&gw, args, out, sizeof(out), 10000);
    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_assert(strstr(out, "busgated: cannot listen: listen 203.0.113.7:") != NULL, "%s", out);
    cr_assert(strstr(out, "bind(): Cannot assign requested address") != NULL, "%s", out);
}

Test(supervisor_cli, invalid_config_at_start_exits_2_with_every_error)
{
    bgt_gw_opts o = {.valkey_url = vk.url};
    const char *const args[] = {"--foreground", NULL};
    char out[4096], want[400];
    int rc;

    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    cr_assert_eq(bgt_gw_write_raw(&gw, "[gateway]\nworkers = 0\nlisten = nowhere\n"), 0);
    rc = bgt_gw_run(&gw, args, out, sizeof(out), 10000);
    cr_assert_eq(rc, 2, "exit %d:\n%s", rc, out);
    snprintf(want, sizeof(want), "busgated: %s:2: [gateway] workers = '0'", gw.ini);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    snprintf(want, sizeof(want), "busgated: %s:3: [gateway] listen = 'nowhere'", gw.ini);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    cr_assert(strstr(out, "is invalid, not starting") != NULL, "%s", out);
}

/* ---- the channel, in one process ---- */

Test(channel, carries_whole_messages_both_ways)
{
    int fds[2];
    char err[BG_ERR_LEN];
    bg_chan_msg in = {.cmd = BG_CHAN_RESYNC, .target_kind = BG_CHAN_TARGET_SERVICE}, out;

    cr_assert_eq(bg_chan_open(fds, err), BG_OK, "%s", err);
    snprintf(in.target, sizeof(in.target), "orders");
    cr_assert_eq(bg_chan_recv(fds[0], &out, err), BG_CHAN_AGAIN, "nothing waiting yet");
    cr_assert_eq(bg_chan_send(fds[1], &in, err), BG_OK, "%s", err);
    in.cmd = BG_CHAN_QUIT_GRACEFUL;
    cr_assert_eq(bg_chan_send(fds[0], &in, err), BG_OK, "%s", err);
    cr_assert_eq(bg_chan_recv(fds[0], &out, err), BG_OK, "%s", err);
    cr_assert_eq(out.cmd, BG_CHAN_RESYNC);
    cr_assert_eq(out.target_kind, BG_CHAN_TARGET_SERVICE);
    cr_assert_str_eq(out.target, "orders");
    cr_assert_eq(bg_chan_recv(fds[1], &out, err), BG_OK, "%s", err);
    cr_assert_eq(out.cmd, BG_CHAN_QUIT_GRACEFUL);
    bg_chan_close(fds);
    cr_assert_eq(fds[0], -1);
    cr_assert_eq(fds[1], -1);
}

Test(channel, reports_close_short_messages_and_a_full_buffer)
{
    int fds[2], i;
    char err[BG_ERR_LEN];
    bg_chan_msg m = {.cmd = BG_CHAN_REOPEN_LOGS}, out;

    cr_assert_eq(bg_chan_open(fds, err), BG_OK, "%s", err);
    cr_assert_eq(write(fds[1], "abc", 3), 3);
    cr_assert_eq(bg_chan_recv(fds[0], &out, err), BG_ERR);
    cr_assert(strstr(err, "message of 3 bytes") != NULL, "%s", err);
    for (i = 0; i < 100000 && bg_chan_send(fds[1], &m, err) == BG_OK; i++)
        ;
    cr_assert_lt(i, 100000, "the socket buffer never filled");
    cr_assert_str_eq(err, "channel full");
    close(fds[1]);
    fds[1] = -1;
    while (bg_chan_recv(fds[0], &out, err) == BG_OK)
        ;
    cr_assert_str_eq(err, "channel closed");
    bg_chan_close(fds);
}

Test(channel, fds_are_nonblocking_and_close_on_exec)
{
    int fds[2];
    char err[BG_ERR_LEN];

    cr_assert_eq(bg_chan_open(fds, err), BG_OK, "%s", err);
    for (int i = 0; i < 2; i++) {
        cr_assert(fcntl(fds[i], F_GETFL) & O_NONBLOCK);
        cr_assert(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
    }
    bg_chan_close(fds);
}

/* A pipe whose write end we pass: writing through a received copy shows it is
 * that pipe; EOF on the read end shows no copy is left open. */
static void pipe_open(int p[2])
{
    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
}

static int pipe_at_eof(int rd)
{
    char c;

    return read(rd, &c, 1) == 0;
}

Test(channel, passes_descriptors_in_order)
{
    int ch[2], a[2], b[2], got[BG_CHAN_MAX_FDS], n = -1, sent[2];
    char err[BG_ERR_LEN], buf[8] = {0};
    bg_chan_msg in = {.cmd = BG_CHAN_REOPEN_LOGS,
                      .target_kind = BG_CHAN_LOG_ERROR | BG_CHAN_LOG_ACCESS},
                out;

    cr_assert_eq(bg_chan_open(ch, err), BG_OK, "%s", err);
    pipe_open(a);
    pipe_open(b);
    sent[0] = a[1];
    sent[1] = b[1];
    cr_assert_eq(bg_chan_send_fds(ch[0], &in, sent, 2, err), BG_OK, "%s", err);
    cr_assert_eq(bg_chan_recv_fds(ch[1], &out, got, BG_CHAN_MAX_FDS, &n, err), BG_OK, "%s", err);
    cr_assert_eq(out.cmd, BG_CHAN_REOPEN_LOGS);
    cr_assert_eq(out.target_kind, 3);
    cr_assert_eq(n, 2);
    cr_assert(fcntl(got[0], F_GETFD) & FD_CLOEXEC, "received descriptors are close-on-exec");
    cr_assert_eq(write(got[0], "A", 1), 1);
    cr_assert_eq(write(got[1], "B", 1), 1);
    cr_assert_eq(read(a[0], buf, sizeof(buf)), 1);
    cr_assert_eq(buf[0], 'A');
    cr_assert_eq(read(b[0], buf, sizeof(buf)), 1);
    cr_assert_eq(buf[0], 'B');
    close(got[0]);
    close(got[1]);
    close(a[1]);
    close(b[1]);
    cr_assert(pipe_at_eof(a[0]) && pipe_at_eof(b[0]));
    cr_assert_eq(bg_chan_send_fds(ch[0], &in, sent, BG_CHAN_MAX_FDS + 1, err), BG_ERR);
    close(a[0]);
    close(b[0]);
    bg_chan_close(ch);
}

Test(channel, unexpected_descriptors_are_closed)
{
    int ch[2], p[2], got[1], n = -1;
    char err[BG_ERR_LEN];
    bg_chan_msg in = {.cmd = BG_CHAN_QUIT_GRACEFUL}, out;
    int two[2];

    cr_assert_eq(bg_chan_open(ch, err), BG_OK, "%s", err);
    pipe_open(p);
    /* bg_chan_recv expects none: the message still arrives, the copy is closed. */
    cr_assert_eq(bg_chan_send_fds(ch[0], &in, &p[1], 1, err), BG_OK, "%s", err);
    cr_assert_eq(bg_chan_recv(ch[1], &out, err), BG_OK, "%s", err);
    cr_assert_eq(out.cmd, BG_CHAN_QUIT_GRACEFUL);
    /* More than max: the extra one is closed. */
    two[0] = two[1] = p[1];
    cr_assert_eq(bg_chan_send_fds(ch[0], &in, two, 2, err), BG_OK, "%s", err);
    cr_assert_eq(bg_chan_recv_fds(ch[1], &out, got, 1, &n, err), BG_OK, "%s", err);
    cr_assert_eq(n, 1);
    close(got[0]);
    close(p[1]);
    cr_assert(pipe_at_eof(p[0]), "a received copy was left open");
    close(p[0]);
    bg_chan_close(ch);
}

Test(channel, truncated_descriptors_are_an_error_and_closed)
{
    int ch[2], p[2], got[BG_CHAN_MAX_FDS], n = -1, many[BG_CHAN_MAX_FDS + 2];
    char err[BG_ERR_LEN], cbuf[CMSG_SPACE(sizeof(many))];
    bg_chan_msg in = {.cmd = BG_CHAN_REOPEN_LOGS}, out;
    struct iovec iov = {.iov_base = &in, .iov_len = sizeof(in)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *c;

    cr_assert_eq(bg_chan_open(ch, err), BG_OK, "%s", err);
    pipe_open(p);
    for (size_t i = 0; i < BG_ARRAY_LEN(many); i++)
        many[i] = p[1];
    /* More than the receiver has room for: the kernel truncates (MSG_CTRUNC). */
    memset(cbuf, 0, sizeof(cbuf));
    c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(many));
    memcpy(CMSG_DATA(c), many, sizeof(many));
    cr_assert_eq(sendmsg(ch[0], &mh, 0), (ssize_t)sizeof(in), "sendmsg: %s", strerror(errno));
    cr_assert_eq(bg_chan_recv_fds(ch[1], &out, got, BG_CHAN_MAX_FDS, &n, err), BG_ERR);
    cr_assert_eq(n, 0);
    cr_assert(strstr(err, "truncated") != NULL, "%s", err);
    close(p[1]);
    cr_assert(pipe_at_eof(p[0]), "a received copy was left open");
    close(p[0]);
    bg_chan_close(ch);
}
