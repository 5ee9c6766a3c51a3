/* log.h: leveled error log written to a file or stderr, reopened on SIGUSR1. */
#ifndef BUSGATE_LOG_H
#define BUSGATE_LOG_H

#include "busgate/common.h"

typedef enum {
    BG_LOG_DEBUG = 0,
    BG_LOG_INFO,
    BG_LOG_NOTICE,
    BG_LOG_WARN,
    BG_LOG_ERROR,
    BG_LOG_CRIT,
} bg_log_level;

/* path NULL, "" or "stderr" logs to standard error. */
int bg_log_open(const char *path, char *err);
/* Opens the same path again onto the same descriptor number (SIGUSR1). */
int bg_log_reopen(char *err);
/* A sandboxed worker cannot open files: the master's freshly reopened log
 * descriptor replaces ours (dup3 onto our number, close-on-exec). fd is closed
 * either way. Logging to stderr there is no file to replace: fd is just closed.
 * BG_OK, or BG_ERR with errno set when dup3 failed (the old file stays). */
int bg_log_adopt_fd(int fd);
void bg_log_close(void);
int bg_log_fd(void);
void bg_log_set_level(bg_log_level level);
bg_log_level bg_log_get_level(void);
int bg_log_parse_level(const char *name, bg_log_level *out);
/* Who is logging: "master", "worker 2", "echo-service". */
void bg_log_set_ident(const char *ident);

void bg_log(bg_log_level level, const char *fmt, ...) BG_PRINTF(2, 3);

#define bg_debug(...) bg_log(BG_LOG_DEBUG, __VA_ARGS__)
#define bg_info(...) bg_log(BG_LOG_INFO, __VA_ARGS__)
#define bg_notice(...) bg_log(BG_LOG_NOTICE, __VA_ARGS__)
#define bg_warn(...) bg_log(BG_LOG_WARN, __VA_ARGS__)
#define bg_error(...) bg_log(BG_LOG_ERROR, __VA_ARGS__)
#define bg_crit(...) bg_log(BG_LOG_CRIT, __VA_ARGS__)

#endif
