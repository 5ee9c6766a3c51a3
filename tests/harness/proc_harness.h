/* proc_harness.h: busgated and other built binaries as real processes in end-to-end tests. */
#ifndef BUSGATE_TEST_PROC_HARNESS_H
#define BUSGATE_TEST_PROC_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Typical use (one private Valkey per test, see valkey_harness.h):
 *
 *   bgt_valkey v;  bgt_gw g;
 *   bgt_valkey_start(&v, NULL);
 *   bgt_gw_opts o = {.valkey_url = v.url, .workers = 2};
 *   cr_assert_eq(bgt_gw_init(&g, &o), 0);       temp dir, free port, busgate.ini written
 *   cr_assert_eq(bgt_gw_start(&g), 0);          busgated -g -c ini; waits for the port
 *   cr_assert_eq(bgt_gw_wait_workers(&g, 2, 10000), 2);
 *   ... bgt_http_get(g.port, "/healthz", ...) ...
 *   bgt_gw_stop(&g);                            SIGTERM, bounded wait, SIGKILL; dir removed
 *   bgt_valkey_stop(&v);
 *
 * The master is started with PR_SET_PDEATHSIG, so a crashing test does not
 * leave it behind (its workers finish and exit when their master is gone).
 */

#define BGT_GW_MAX_WORKERS 64

typedef struct bgt_gw_opts {
    const char *valkey_url;    /* [valkey] url; NULL: valkey://127.0.0.1:1 (nothing listens) */
    int workers;               /* [gateway] workers; 0 = 2 */
    const char *log_level;     /* [gateway] log_level; NULL = info */
    const char *drain_timeout; /* [gateway] drain_timeout; NULL = 5s */
    /* More "key = value" lines for [gateway], may be NULL. The harness already
     * writes listen, workers, pid_file, error_log, log_level and drain_timeout:
     * repeating one of these (other than listen) makes the ini invalid. */
    const char *extra_gateway;
    const char *extra; /* more sections appended verbatim ("[admin]\ntoken = ..."), may be NULL */
} bgt_gw_opts;

typedef struct bgt_gw {
    pid_t pid;         /* the master; 0 when not running (or not our child: daemon mode) */
    int port;          /* the HTTP port the ini listens on (127.0.0.1) */
    char dir[256];     /* temp dir with the files below; removed by bgt_gw_stop */
    char ini[320];     /* DIR/busgate.ini */
    char log[320];     /* DIR/error.log: error_log, log_level = info */
    char pidfile[320]; /* DIR/busgated.pid */
    char out[320];     /* DIR/stderr.log: busgated's stdout and stderr */
} bgt_gw;

/* Path of a binary of this build: BUILD/NAME, found in the nearest directory above the
 * running test binary (BUILD/tests/test_x, BUILD/tests/chaos/test_x) that has it.
 * Returns 0, or -1 when it is not built. */
int bgt_build_path(const char *name, char *out, size_t len);

/* Makes the temp dir, picks a free port and writes the ini. Returns 0 or -1. */
int bgt_gw_init(bgt_gw *g, const bgt_gw_opts *o);
/* (Re)writes DIR/busgate.ini from o, same port and paths (for reload tests). */
int bgt_gw_write_ini(const bgt_gw *g, const bgt_gw_opts *o);
/* Writes text verbatim as the ini (e.g. an invalid one for a reload test). */
int bgt_gw_write_raw(const bgt_gw *g, const char *text);

/* Starts `busgated -g -c INI` plus extra args (NULL-terminated, may be NULL)
 * and waits up to 10 s until the port accepts. Returns 0, or -1 (it exited or
 * never listened: the reason is in g->out / g->log). */
int bgt_gw_start(bgt_gw *g);
int bgt_gw_start_args(bgt_gw *g, const char *const *extra_args);

/* Runs busgated to completion with args (NULL-terminated) and -c INI
 * appended; output into out. Returns its exit status, -1 on a timeout
 * (killed) or a signal. */
int bgt_gw_run(const bgt_gw *g, const char *const *args, char *out, size_t outlen, int timeout_ms);

/* Runs `busgatectl -c INI ARGS` (args: one shell-quoted string) to completion, bounded to
 * 15 s; stdout and stderr together into out. Returns its wait status as pclose gives it,
 * or -1 when busgatectl is not built or cannot be started. */
int bgt_ctl_run(const char *ini, const char *args, char *out, size_t len);

/* Sends sig to the master. Returns 0 or -1. */
int bgt_gw_signal(const bgt_gw *g, int sig);
/* Waits up to timeout_ms for the master (our child) to exit; returns its exit
 * code, 128+signal when killed, or -1 when it did not exit in time. */
int bgt_gw_wait_exit(bgt_gw *g, int timeout_ms);
/* Master pid read from the pid file, or -1. */
pid_t bgt_gw_pidfile_pid(const bgt_gw *g);
/* Stops the master (SIGTERM, 10 s, then SIGKILL of it and of any worker left),
 * removes the dir. Safe to call twice. */
void bgt_gw_stop(bgt_gw *g);

/* Worker processes of the master: its children whose /proc cmdline starts
 * with "busgate: worker". Fills pids (up to max, sorted), returns the count. */
int bgt_gw_workers(const bgt_gw *g, pid_t *pids, int max);
/* Waits until the master has exactly n workers; returns the last count seen. */
int bgt_gw_wait_workers(const bgt_gw *g, int n, int timeout_ms);
/* Children of pid (any title); returns the count. */
int bgt_children(pid_t pid, pid_t *pids, int max);
/* The process title: the first string of /proc/PID/cmdline (argv[0], or the
 * whole title after setproctitle); "" when the process is gone. Returns its length. */
int bgt_proc_title(pid_t pid, char *out, size_t len);

/* Number of lines of the error log containing needle. */
int bgt_gw_log_count(const bgt_gw *g, const char *needle);
/* Waits until at least `count` log lines contain needle; returns 0 or -1. */
int bgt_gw_wait_log(const bgt_gw *g, const char *needle, int count, int timeout_ms);
/* The whole error log (malloc'd, NUL-terminated; caller frees), "" if none. */
char *bgt_gw_log_text(const bgt_gw *g);

/* Starts the built binary NAME (see bgt_build_path) with args (NULL-terminated,
 * may be NULL) in the background: stdin /dev/null, stdout and stderr appended
 * to outfile (NULL: /dev/null), PR_SET_PDEATHSIG. Returns its pid or -1.
 * E.g. bgt_spawn_built("echo-service", (const char *[]){"-u", v.url, "-n", "e1", NULL}, path). */
pid_t bgt_spawn_built(const char *name, const char *const *args, const char *outfile);
/* SIGTERM, then SIGKILL after timeout_ms; reaps it. Returns the exit code,
 * 128+signal, or -1 when it was not our child. */
int bgt_stop_pid(pid_t pid, int timeout_ms);
/* Waits until the file contains needle; returns 0 or -1. */
int bgt_wait_file(const char *path, const char *needle, int timeout_ms);
/* Waits until GET path on port answers want_status; returns 0 or -1. */
int bgt_wait_http(int port, const char *path, int want_status, int timeout_ms);

/* Waits until 127.0.0.1:port accepts a TCP connection; returns 0 or -1. */
int bgt_wait_port(int port, int timeout_ms);
/* One HTTP/1.1 request on a new connection to 127.0.0.1:port (Connection:
 * close), body may be NULL. Reads the whole response into out (NUL-terminated,
 * truncated to outlen - 1). Returns the status code, or -1 (connect, timeout,
 * not HTTP). */
int bgt_http_request(int port, const char *method, const char *path, const char *headers,
                     const char *body, char *out, size_t outlen, int timeout_ms);
int bgt_http_get(int port, const char *path, char *out, size_t outlen, int timeout_ms);

/* Monotonic milliseconds (for bounded waits in tests). */
long long bgt_now_ms(void);

#endif
