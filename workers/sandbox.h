/* sandbox.h: confine a worker process: privilege drop, rlimits, no_new_privs, seccomp allowlist. */
#ifndef BUSGATE_SANDBOX_H
#define BUSGATE_SANDBOX_H

#include "busgate/config/config.h"

/*
 * Call once in the worker, after everything that needs files, DNS or new
 * listening sockets is done (log fds inherited, Valkey address resolved to a
 * numeric address, TLS CA/cert/key loaded) and before the first client byte.
 * Order (as OpenSSH): RLIMIT_NOFILE (raising it may need root), drop to
 * cfg->gateway.user/group, the other rlimits, PR_SET_NO_NEW_PRIVS, then the
 * seccomp filter (skipped with a warning when cfg->sandbox.seccomp is 0).
 * Environment BUSGATE_SECCOMP_TRAP=1 turns the kill into a trap whose SIGSYS
 * handler writes the syscall number to the error log, then dies of SIGSYS.
 * Returns BG_OK; BG_SANDBOX_ERR_CONFIG with err set when the configuration cannot
 * work (unknown user or group, a user configured but not started as root): exit
 * BG_WORKER_EXIT_CONFIG, respawning cannot help; BG_ERR with err set for any other
 * failure: exit BG_WORKER_EXIT_RUNTIME. Never serve after an error. Logs warnings
 * itself (running as root, seccomp off, trap mode, open_files above the hard limit).
 */
#define BG_SANDBOX_ERR_CONFIG (-2)
int bg_sandbox_apply(const bg_config *cfg, char *err);

/* Only no_new_privs + the seccomp filter (trap: SCMP_ACT_TRAP instead of killing);
 * for tests and for bg_sandbox_apply. */
int bg_sandbox_filter_only(int trap, char *err);

/* Internal to the sandbox files: builds and loads the filter (sandbox_filter.c). */
int bg_sandbox_load_filter(int trap, char *err);

#endif
