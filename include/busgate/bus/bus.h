/* bus.h: one blocking Valkey connection with TLS, AUTH, timeouts and reconnect with backoff. */
#ifndef BUSGATE_BUS_H
#define BUSGATE_BUS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"
#include "busgate/core/url.h" /* bg_valkey_addr, bg_valkey_url_parse() */

/* Replies appended with bg_bus_append_argv and not yet read: past this many a
 * slow server would make our output buffer grow without bound, so refuse. */
#define BG_BUS_MAX_INFLIGHT 4096

typedef struct bg_bus_opts {
    bg_valkey_addr addr;
    int64_t connect_timeout_ms, command_timeout_ms;
    const char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name; /* NULL/"" = unset */
    int tls_verify;          /* 1 = verify server certificate (default) */
    const char *client_name; /* CLIENT SETNAME, optional */
    int reply_blocks; /* 1 = replies built in blocks (shared/bus/bus_reply.c): cheaper to build
                       * and free, and then only bg_bus_reply_free may free them */
} bg_bus_opts;

/* Defaults: localhost:6379, connect 2 s, command 5 s, verify on, hiredict's replies. */
void bg_bus_opts_init(bg_bus_opts *o);
/* Process-wide: hiredict's calloc becomes malloc + memset, which glibc serves from its
 * per-thread cache (calloc skips it). For a process that owns its hiredict use (a
 * worker); a library must not call it behind its application's back. */
void bg_bus_alloc_cached(void);
/* Options from the [valkey] section of cfg (strings borrowed: cfg must outlive o). */
struct bg_config;
void bg_bus_opts_from_config(bg_bus_opts *o, const struct bg_config *cfg, const char *client_name);
/* Fill o->addr from a valkey:// valkeys:// redis:// rediss:// unix:// URL. */
int bg_bus_opts_from_url(bg_bus_opts *o, const char *url, char *err);

/* Sentinel mode (addr.sentinel): replaces each sentinel's host name with its
 * address, for processes that cannot resolve names later (a sandboxed worker
 * cannot read /etc/hosts). The primary's address comes from the sentinels as
 * an IP unless they announce host names. BG_ERR with the host in err. */
int bg_bus_sentinel_resolve(bg_valkey_addr *a, char *err);

/* Cluster mode (addr.cluster): the same for the seed nodes. The other nodes come from
 * CLUSTER SLOTS as addresses unless the cluster announces host names. */
int bg_bus_cluster_resolve(bg_valkey_addr *a, char *err);

typedef struct bg_bus bg_bus; /* one blocking connection */
/* Runs after every successful re-connect (not after the first connect). */
typedef void bg_bus_reconnect_fn(bg_bus *bus, void *arg);

/* Connect + AUTH + SELECT + SETNAME; NULL with err set on failure. */
bg_bus *bg_bus_connect(const bg_bus_opts *o, char *err);
void bg_bus_free(bg_bus *bus);
void bg_bus_set_reconnect_hook(bg_bus *bus, bg_bus_reconnect_fn *fn, void *arg);
/* E.g. longer than a BLOCK read; applies now and to later reconnects. */
void bg_bus_set_command_timeout(bg_bus *bus, int64_t ms);
int64_t bg_bus_command_timeout(const bg_bus *bus); /* 0 = none */

/* Run one command. On an I/O error (a command timeout is one) or a
 * "-UNBLOCKED"/"-READONLY"/"-LOADING" error it reconnects (exponential backoff
 * with full jitter, 100 ms..5 s, so it may sleep that long) and retries once:
 * delivery is at-least-once, a retried write may have been applied. Returns the reply (caller frees
 * with bg_bus_reply_free; a -ERR reply comes back as REDIS_REPLY_ERROR, not NULL) or NULL with err
 * set when the server is unreachable. */
redisReply *bg_bus_command(bg_bus *bus, char *err, const char *fmt, ...);
redisReply *bg_bus_command_argv(bg_bus *bus, int argc, const char **argv, const size_t *argvlen,
                                char *err);
/* A command already RESP-encoded (redisFormatCommand), same rules. */
redisReply *bg_bus_command_formatted(bg_bus *bus, const char *cmd, size_t len, char *err);

/* Pipelining: append many, then read as many replies. Neither retries: after an
 * I/O error the caller reconnects (bg_bus_reconnect) and resends what it needs. */
int bg_bus_append_argv(bg_bus *bus, int argc, const char **argv, const size_t *argvlen, char *err);
int bg_bus_get_reply(bg_bus *bus, redisReply **reply, char *err);
/* Frees any reply: one built in blocks (reply_blocks) or by hiredict (freeReplyObject). */
void bg_bus_reply_free(redisReply *r);

/* Replace the context with a new one; honours the backoff schedule (sleeps
 * until the next attempt is due; a signal cuts the sleep short and returns
 * BG_ERR) and runs the hook on success. Inside the hook, commands that fail
 * do not reconnect again; the next command after the hook does. */
int bg_bus_reconnect(bg_bus *bus, char *err);
unsigned long bg_bus_reconnect_count(const bg_bus *bus);
/* Connection attempts made so far, successful or not (for tests and metrics). */
unsigned long bg_bus_connect_attempts(const bg_bus *bus);
/* Milliseconds until the backoff schedule allows the next attempt (0 = now). */
int64_t bg_bus_next_attempt_in_ms(const bg_bus *bus);
/* 1 when the connection is down (the next command or bg_bus_reconnect reconnects). */
int bg_bus_is_broken(const bg_bus *bus);
/* "127.0.0.1:6379", "[::1]:6379" or "unix:/path", for messages. */
const char *bg_bus_where(const bg_bus *bus);
/* 1 when TLS holds decrypted bytes that poll() on the socket would not show. */
int bg_bus_tls_pending(bg_bus *bus);
/* The current context; changes on every reconnect, so do not keep it. */
redisContext *bg_bus_context(bg_bus *bus);
/* Cluster mode (valkey+cluster://): a bg_bus holds one connection per primary and routes
 * each command by its key's slot (keyless ones go to the first primary); pipelined commands
 * run one by one as they are appended. For what must run on every primary (SCAN): the
 * primaries' own connections, plain bg_bus owned by bus (NULL with err when one cannot be
 * reached). Otherwise one node: bus itself. bg_bus_context is then the first primary's. */
size_t bg_bus_node_count(bg_bus *bus);
bg_bus *bg_bus_node(bg_bus *bus, size_t i, char *err);
int bg_bus_is_cluster(const bg_bus *bus);
/* hiredis sockets are not FD_CLOEXEC; done on every (re)connect already, this
 * is for callers that want to be explicit before fork+exec. */
void bg_bus_close_on_exec(bg_bus *bus);

#endif
