/* breaker.h: one circuit breaker per service in shared memory, driven by every worker. */
#ifndef BUSGATE_BREAKER_H
#define BUSGATE_BREAKER_H

#include <stdint.h>

#include "busgate/common.h"

/*
 * An anonymous MAP_SHARED mapping made by the master before the first fork, like the bus
 * view. The master gives each service its entry (bg_brk_ensure, when it samples backlogs),
 * so names have one writer; workers then move the state with compare-and-swap on one
 * 64-bit word per service (state, counts, epoch and the time of the last transition), so
 * every worker sees one breaker and none ever waits for another or for the master.
 *
 *   closed    requests pass; `failures` failures in a row, the first no longer than
 *             `window` ago (0: any age), open it; a success resets the count.
 *   open      requests are refused (the caller answers 503, Retry-After: what is left of
 *             `cooldown`); once the cool-down is over the next request half-opens it.
 *   half-open `probes` requests pass as probes; a failed probe opens it again, `probes`
 *             successful ones close it. Others are refused until then. Probes whose
 *             verdict never came (their worker died) are given again after probe_timeout.
 *
 * Results of requests admitted before a transition are ignored (only probes of the
 * current half-open epoch count there), so a burst of late failures cannot re-open a
 * breaker that just closed, nor a late success close one that is open.
 */
typedef struct bg_breaker bg_breaker;

#define BG_BRK_MAX_SERVICES 1024

typedef enum { BG_BRK_CLOSED = 0, BG_BRK_OPEN = 1, BG_BRK_HALF_OPEN = 2 } bg_brk_state;

typedef struct bg_brk_params {
    int failures;             /* 0: the breaker is off, every call allows */
    int64_t window_ms;        /* 0: failures in a row count whatever their age */
    int64_t cooldown_ms;      /* open this long */
    int probes;               /* 1..100 */
    int64_t probe_timeout_ms; /* a probe without a verdict this long is given again */
} bg_brk_params;

/* What an admitted request must report back (kept in the exchange). */
typedef struct bg_brk_ticket {
    uint8_t kind; /* BG_BRK_T_* */
    uint8_t epoch;
} bg_brk_ticket;

#define BG_BRK_T_NONE 0  /* not admitted through a breaker: nothing to report */
#define BG_BRK_T_PASS 1  /* admitted while closed */
#define BG_BRK_T_PROBE 2 /* admitted as a half-open probe */

/* A snapshot of one breaker (state document, metrics). */
typedef struct bg_brk_info {
    bg_brk_state state;
    int failures;     /* closed: failures in a row; half-open: probes given */
    int successes;    /* half-open: probes that succeeded */
    int64_t since_ms; /* monotonic time of the last transition (closed: of the first failure) */
    uint64_t opens;   /* times it opened, ever */
} bg_brk_info;

bg_breaker *bg_brk_create(char *err);
void bg_brk_destroy(bg_breaker *b);

/* Master: gives service an entry (closed). BG_ERR when the table is full or the name too
 * long; that service then has no breaker (every request allowed). */
int bg_brk_ensure(bg_breaker *b, const char *service);

/* Workers, before a REQUEST goes out: 1 when it may (t says what to report), 0 when it is
 * refused (*retry_ms: when to try again, at least 1000). */
int bg_brk_admit(bg_breaker *b, const char *service, const bg_brk_params *p, int64_t now_ms,
                 bg_brk_ticket *t, int64_t *retry_ms);
/* The verdict on an admitted request: failed (5xx from the service, 504) or not. Returns
 * the state it moved the breaker to, or -1 when the state stayed (for the log). */
int bg_brk_result(bg_breaker *b, const char *service, const bg_brk_params *p,
                  const bg_brk_ticket *t, int failed, int64_t now_ms);
/* An admitted request ended without a verdict (client gone, bus error): a probe's slot
 * is given back. */
void bg_brk_release(bg_breaker *b, const char *service, const bg_brk_ticket *t);

/* BG_ERR when service has no entry. */
int bg_brk_get(const bg_breaker *b, const char *service, bg_brk_info *out);
typedef void bg_brk_visit_fn(void *ud, const char *service, const bg_brk_info *info);
void bg_brk_each(const bg_breaker *b, bg_brk_visit_fn *fn, void *ud);
/* Transitions so far, all services: the master rewrites its state document when it moves. */
uint64_t bg_brk_changes(const bg_breaker *b);
const char *bg_brk_state_name(bg_brk_state s);

#endif
