/* valkey_harness.h: start a private valkey-server (or redis-server) for a test
 * on a free loopback port in a temp dir, and always stop it again. */
#ifndef BUSGATE_TEST_VALKEY_HARNESS_H
#define BUSGATE_TEST_VALKEY_HARNESS_H

#include <sys/types.h>

typedef struct bgt_valkey {
    pid_t pid;
    int port;
    char dir[256];   /* temp dir holding its files; removed by stop */
    char url[128];   /* valkey://127.0.0.1:PORT */
    char *extra[32]; /* extra server arguments kept for restarts */
    int nextra;
} bgt_valkey;

/* The server binary in use: valkey-server when installed, else redis-server. */
const char *bgt_valkey_binary(void);
/* 1 when an executable of that name is on PATH. */
int bgt_in_path(const char *name);
/* A loopback TCP port that was free a moment ago. */
int bgt_free_port(void);

/* Start on a free port. extra: NULL-terminated server arguments, may be NULL.
 * Waits until the server answers PING. The server dies with the test process
 * (PR_SET_PDEATHSIG), so a crashing test never leaks it. Returns 0 or -1. */
int bgt_valkey_start(bgt_valkey *v, const char *const *extra);
/* Start again on v->port with the same arguments (after bgt_valkey_kill). */
int bgt_valkey_restart(bgt_valkey *v);
/* SIGKILL the server and reap it; keeps the dir (data is not persisted). */
void bgt_valkey_kill(bgt_valkey *v);
/* Stop the server and remove its dir. Safe to call twice. */
void bgt_valkey_stop(bgt_valkey *v);
/* Run one command through valkey-cli/redis-cli-free raw RESP; returns the
 * first line of the reply in out (e.g. "+OK", ":3"). For test setup only. */
int bgt_valkey_cmd(const bgt_valkey *v, char *out, size_t outlen, const char *fmt, ...);

#endif
