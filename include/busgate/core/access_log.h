/* access_log.h: the access log: one line per request, written with one write() to an inherited fd.
 */
#ifndef BUSGATE_ACCESS_LOG_H
#define BUSGATE_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

/*
 * The master opens the file before forking (bg_access_log_open); the workers
 * inherit the descriptor, so a sandboxed worker never opens a file. On SIGUSR1
 * the master reopens the path (bg_access_log_reopen keeps its descriptor number)
 * and sends the new descriptor to every worker over its channel (SCM_RIGHTS); the
 * worker installs it with bg_access_log_adopt (dup3 onto its own number, allowed
 * by the filter). Until then the worker keeps appending to the renamed file, so
 * no line is lost.
 *
 * Line format (logfmt after a leading UTC timestamp; "-" for an absent value;
 * bytes outside printable ASCII, space, '"' and '\' escaped as \xHH):
 *   2026-01-31T12:00:00.123Z id=<32 hex> client=10.0.0.7:51234 method=GET
 *   path=/orders/42 status=200 bytes=512 service=orders instance=orders-1
 *   total_ms=1.234 bus_ms=0.987
 * (one line). The path is logged without its query: queries often carry secrets.
 */

typedef struct bg_access_entry {
    int64_t start_wall_ms;  /* when the request head arrived (wall clock) */
    const char *request_id; /* NULL = "-" (e.g. a 400 before an id was made) */
    const char *client;     /* peer "ip:port" / "[ip6]:port" */
    const char *method;
    const char *path; /* as received, without the query */
    int status;
    uint64_t bytes; /* response bytes written to the client, head and body */
    const char *service, *instance;
    int64_t total_us; /* request head to last response byte queued */
    int64_t bus_us;   /* REQUEST sent to RESPONSE read; < 0 when not dispatched */
} bg_access_entry;

/* Longest line written; longer paths are cut and end in "..." */
#define BG_ACCESS_LINE_MAX 4096

/* Master, before forking: path "" (off), "stderr", or a file opened for appending. */
int bg_access_log_open(const char *path, char *err);
/* Master on SIGUSR1: reopens the same path onto the same descriptor number. */
int bg_access_log_reopen(char *err);
/* The descriptor to hand to workers; -1 when the access log is off. */
int bg_access_log_fd(void);
int bg_access_log_enabled(void);
/* Worker: the master's fresh descriptor replaces ours (dup3), fd is closed either way. */
int bg_access_log_adopt(int fd, char *err);
void bg_access_log_close(void);

/* Formats one line with its newline into buf; returns its length (< cap), 0 if cap is
 * too small for even the fixed fields. */
size_t bg_access_log_format(const bg_access_entry *e, char *buf, size_t cap);
/* Formats and writes one line (one write()); a failing write is dropped: logging must
 * never stop serving. No-op when the log is off. */
void bg_access_log_write(const bg_access_entry *e);

#endif
