/* chaos_load.h: the fault suite's load driver: keep-alive HTTP clients on loopback, each
 * request carrying a unique id, every answer recorded (status, transport error kind,
 * latency, whether the body belongs to the request), so a scenario can account for
 * every request it sent. */
#ifndef BUSGATE_TEST_CHAOS_LOAD_H
#define BUSGATE_TEST_CHAOS_LOAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* What became of one request. */
typedef enum chaos_kind {
    CHAOS_ANSWERED,   /* a whole HTTP response: see status */
    CHAOS_CONNECT,    /* connect() refused or failed: the request was never sent */
    CHAOS_RESET,      /* ECONNRESET / EPIPE while sending or reading */
    CHAOS_EOF,        /* the server closed before a whole response */
    CHAOS_HUNG,       /* no whole response within the hang limit */
    CHAOS_BAD_HTTP,   /* not parseable as an HTTP/1.1 response */
    CHAOS_WRONG_BODY, /* a 200 whose body is not the echo of this request */
    CHAOS_EXTRA,      /* bytes after the response: a second answer to one request */
    CHAOS_KINDS
} chaos_kind;

typedef struct chaos_rec {
    int64_t start_ms, end_ms; /* relative to the run's start */
    int16_t status;           /* HTTP status when kind == CHAOS_ANSWERED (or WRONG_BODY) */
    uint8_t kind;
    uint8_t retry_after; /* the response carried Retry-After */
    uint8_t reused;      /* sent on a connection that had served a request before */
} chaos_rec;

typedef struct chaos_client {
    struct chaos_load *load;
    int index;
    pthread_t thread;
    chaos_rec *recs;
    size_t nrecs, cap;
} chaos_client;

typedef struct chaos_load {
    int port;
    int nclients;
    int duration_ms;
    int hang_ms; /* a request unanswered this long counts as hung */
    int64_t t0_ms;
    chaos_client *clients;
} chaos_load;

/* Summary of a run, or of the requests started in [from_ms, to_ms). */
typedef struct chaos_sum {
    long total;
    long kind[CHAOS_KINDS];
    long ok;        /* 2xx with the right body */
    long status[6]; /* by class: [2] 2xx ... [5] 5xx */
    long s404, s503, s503_retry, s504, s502;
    long max_clients_failed; /* the most failures any one client saw */
    int64_t lat_max_ms, lat_p99_ms;
} chaos_sum;

/* Starts nclients threads sending GET /echo/<unique id> on keep-alive connections
 * until duration_ms has passed. Returns 0 or -1. */
int chaos_load_start(chaos_load *l, int port, int nclients, int duration_ms, int hang_ms);
/* Waits for every client to finish (bounded by duration plus the hang limit). */
void chaos_load_join(chaos_load *l);
void chaos_load_free(chaos_load *l);
/* Milliseconds since the run started. */
int64_t chaos_load_now(const chaos_load *l);
void chaos_load_sum(const chaos_load *l, int64_t from_ms, int64_t to_ms, chaos_sum *s);
/* The start of the first request started at or after from_ms that got a good 200, and
 * its end; -1 when none did. */
int64_t chaos_load_first_ok_after(const chaos_load *l, int64_t from_ms, int64_t *end_ms);
/* A failure is anything but a 2xx with the right body. */
int chaos_rec_failed(const chaos_rec *r);
const char *chaos_kind_name(int kind);
/* One line per summary on stdout, prefixed with the scenario name. */
void chaos_sum_print(const char *scenario, const chaos_sum *s);

#endif
