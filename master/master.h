/* master.h: private state and functions of the master process (supervision only, no protocol). */
#ifndef BUSGATE_MASTER_H
#define BUSGATE_MASTER_H

#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "busgate/config/config.h"
#include "busgate/core/ev.h"
#include "busgate/routing/route_table.h"

typedef struct bg_control bg_control;
typedef struct bg_metrics bg_metrics;
typedef struct bg_busview bg_busview;
typedef struct bg_doc bg_doc;
typedef struct bg_ratetable bg_ratetable;
typedef struct bg_breaker bg_breaker;
struct pidfh;

/* Worker slots: a fixed table, as the metrics area and reply keys are per slot. */
#define BG_MAX_WORKER_SLOTS 256

/* Respawn backoff: a worker that dies within BG_RESPAWN_QUICK_MS of its start
 * counts as dying quickly; the n-th quick death in a row waits
 * BG_RESPAWN_BASE_MS << (n - 1), at most BG_RESPAWN_MAX_MS. */
#define BG_RESPAWN_QUICK_MS 5000
#define BG_RESPAWN_BASE_MS 100
#define BG_RESPAWN_MAX_MS 30000

/* Reload: the old generation is retired once every new worker is ready, at
 * the latest connect_timeout + this long after the new one was started. */
#define BG_RELOAD_READY_SLACK_MS 1000

/* Fast stop (SIGINT/SIGQUIT): SIGTERM to workers, SIGKILL after this long. */
#define BG_FAST_STOP_MS 1000

/* ---- listen.c: listening sockets, opened before fork, kept across reloads ---- */

/* Sockets per address with reuseport: one per worker of a generation (workers max). */
#define BG_LISTEN_LANES_MAX 256

typedef struct bg_listener {
    /* fd[lane]: one socket, or with reuseport one per worker lane, all bound to addr
     * (SO_REUSEPORT: the kernel spreads new connections over them) */
    int fd[BG_LISTEN_LANES_MAX];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char name[300]; /* "0.0.0.0:8080", "[::1]:8080" for logs */
    int tls;        /* "ssl": workers serve it with the generation's TLS context */
} bg_listener;

typedef struct bg_listen_set {
    bg_listener l[BG_MAX_LISTEN];
    int n;
    int lanes;     /* sockets per address: 1, or the worker count with reuseport */
    int reuseport; /* fixed at start: a reload cannot switch it */
} bg_listen_set;

/* Opens every cfg->gateway.listen address (SO_REUSEADDR, non-blocking,
 * close-on-exec; with reuseport, one SO_REUSEPORT socket per worker lane). All or
 * nothing: on BG_ERR nothing stays open. */
int bg_listen_open(bg_listen_set *ls, const bg_config *cfg, char *err);
/* Reload: keeps sockets whose address (and lane) is still listed, opens new ones,
 * closes removed ones. All or nothing: on BG_ERR ls is unchanged. */
int bg_listen_update(bg_listen_set *ls, const bg_config *cfg, char *err);
void bg_listen_close(bg_listen_set *ls);
/* Copies the fds of worker lane `lane` in order into out[BG_MAX_LISTEN] and their ssl
 * flags into tls[BG_MAX_LISTEN]; returns their count. */
int bg_listen_fds(const bg_listen_set *ls, int lane, int *out, int *tls);

/* ---- tls.c: the server TLS context of a generation ---- */

/* Reads the [tls] files into a new context when some listener is TLS (*out
 * NULL when none is). Workers inherit it across fork(), so the files are read
 * before they drop privileges and enter the sandbox. BG_ERR with err set. */
int bg_master_tls_load(const bg_config *cfg, SSL_CTX **out, char *err);

/* ---- process.c: the worker slot table ---- */

typedef enum {
    BG_SLOT_FREE = 0,
    BG_SLOT_RUNNING, /* a live process */
    BG_SLOT_WAITING, /* dead, respawn timer armed */
} bg_slot_state;

typedef struct bg_slot {
    bg_slot_state state;
    pid_t pid;
    int chan;             /* master's end of the channel, -1 when none */
    unsigned generation;  /* config generation the process runs */
    unsigned exiting : 1; /* told to quit: not respawned */
    unsigned killed : 1;  /* SIGKILL sent after the drain time */
    unsigned ready : 1;   /* the worker sent BG_CHAN_READY */
    int64_t started_ms;   /* bg_mono_ms() at fork */
    int64_t deadline_ms;  /* exiting: SIGKILL at this time (0 = none) */
    int quick_deaths;     /* consecutive deaths within BG_RESPAWN_QUICK_MS */
    int lane;             /* its index in its generation: which reuseport sockets it gets */
    bg_ev_timer *respawn_timer;
} bg_slot;

typedef struct bg_master bg_master;

/* Fills free slots with n workers of the current generation; returns how
 * many started (fewer than n is logged). */
int bg_proc_spawn_generation(bg_master *m, int n);
/* Reaps every exited child (WNOHANG), logs how each ended and respawns or
 * frees its slot. */
void bg_proc_reap(bg_master *m);
/* Tells every running worker of a generation older than `generation` (or all,
 * with generation 0) to quit gracefully; SIGKILL after drain_ms. */
void bg_proc_quit_older(bg_master *m, unsigned generation, int64_t drain_ms);
/* Graceful stop of the gateway: every worker drains after taking its listen backlog. */
void bg_proc_quit_all_final(bg_master *m, int64_t drain_ms);
/* Sends sig to every live worker and marks them exiting; SIGKILL after drain_ms. */
void bg_proc_signal_all(bg_master *m, int sig, int64_t drain_ms);
/* Sends msg with nfds descriptors (SCM_RIGHTS) to every live worker (best
 * effort, failures logged). */
struct bg_chan_msg;
void bg_proc_broadcast(bg_master *m, const struct bg_chan_msg *msg, const int *fds, int nfds);
/* SIGKILLs exiting workers whose deadline has passed; returns the next
 * deadline in ms from now, or -1 when none is pending. */
int64_t bg_proc_enforce_deadlines(bg_master *m);
/* Live worker processes (running slots). */
int bg_proc_live(const bg_master *m);
/* Cancels respawn timers: during shutdown nothing is respawned. */
void bg_proc_cancel_respawns(bg_master *m);

/* ---- child.c: the worker side of fork() ---- */

/* Runs in the child right after fork(): keeps only its own fds, sets the
 * parent-death signal and the title, resets signals, runs bg_worker_main and
 * _exits with its code. Never returns. */
void bg_child_run(bg_master *m, int slot, int worker_chan) __attribute__((noreturn));

/* ---- signals.c: flags set by handlers, acted on in the master loop ---- */

typedef struct bg_sigflags {
    volatile sig_atomic_t reload, terminate, quit_fast, reopen, child;
} bg_sigflags;

extern bg_sigflags bg_sig;

/* Installs the master's handlers; each sets its flag and wakes loop. */
int bg_signals_install(bg_ev *loop, char *err);
/* In a child: default dispositions and an empty signal mask again. */
void bg_signals_reset(void);

/* ---- daemon.c: background mode, pid file, -s ---- */

/* Locks and creates the pid file (not written yet). NULL path or "" = no pid
 * file: *out = NULL and BG_OK. A running master makes it fail with
 * "already running (pid N)". */
int bg_pidfile_open(const char *path, struct pidfh **out, char *err);
int bg_pidfile_write(struct pidfh *pfh, char *err);
void bg_pidfile_remove(struct pidfh *pfh);
/* Closes the pid file's fd in a child without touching the file. */
void bg_pidfile_forget(struct pidfh *pfh);
/* Detaches from the terminal: fork (the parent exits 0), setsid, stdio to
 * /dev/null (stderr too unless keep_stderr). */
int bg_daemonize(int keep_stderr, char *err);
/* -s: reads pid_file and sends the signal for action stop|quit|reload|reopen. */
int bg_signal_running(const char *pid_file, const char *action, char *err);

/* ---- the master ---- */

struct bg_master {
    pid_t pid;           /* the master's own pid (children check their parent) */
    bg_config *cfg;      /* the current generation's config */
    unsigned generation; /* bumped by every successful reload */
    bg_ev *loop;
    bg_rt *rt;
    bg_metrics *metrics;
    bg_busview *busview; /* warm-up and backlogs for workers (shared mapping) */
    bg_doc *openapi;     /* the aggregated OpenAPI document for workers (shared mapping) */
    /* local-mode rate limit buckets (shared mapping) */
    bg_ratetable *ratetable;
    bg_breaker *breaker; /* per-service circuit breakers, moved by workers (shared mapping) */
    bg_control *control;
    bg_listen_set listen;
    SSL_CTX *tls; /* the current generation's TLS context; NULL without ssl listeners */
    struct pidfh *pidfile;
    bg_slot slots[BG_MAX_WORKER_SLOTS];
    int stopping; /* 0 running, 1 graceful stop, 2 fast stop */
    int exit_code;
    bg_ev_timer *deadline_timer;
    bg_ev_timer *retire_timer; /* reload: older generations wait for this one */
};

/* cycle.c: a command a worker sent over its channel (admin resync, ready). */
void bg_master_on_command(bg_master *m, int slot, const struct bg_chan_msg *msg);
/* cycle.c: sets up shared memory, control plane and workers, then runs the
 * loop until stopped; returns the process exit code. m->cfg, m->listen and
 * m->pidfile are set by the caller. */
int bg_master_run(bg_master *m);
/* reload.c: SIGHUP. */
void bg_master_reload(bg_master *m);
/* reload.c: a worker reported BG_CHAN_READY. */
void bg_reload_on_ready(bg_master *m, int slot);
/* reload.c: a stop began: no retirement is pending any more. */
void bg_reload_cancel(bg_master *m);
/* Logs each line of a multi-line error text at level. */
void bg_master_log_lines(bg_log_level level, const char *prefix, const char *text);

#endif
