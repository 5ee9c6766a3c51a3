/* control_int.h: control-plane internals shared by the shared/control*.c files. */
#ifndef BUSGATE_CONTROL_INT_H
#define BUSGATE_CONTROL_INT_H

#include <stdint.h>

#include "busgate/bus/bus.h"
#include "busgate/bus/bus_async.h"
#include "busgate/bus/bus_queue.h"
#include "busgate/routing/breaker.h"
#include "busgate/routing/bus_view.h"
#include "busgate/routing/doc_shm.h"
#include "busgate/control/control.h"
#include "busgate/proto/frame.h"
#include "busgate/proto/keys.h"
#include "busgate/metrics/metrics.h"
#include "busgate/control/registry.h"

/* Entries per XREADGROUP: a batch is applied with one publish, so a burst
 * (a fleet answering a resync) costs few table rebuilds. */
#define BG_CONTROL_READ_COUNT 256
/* Longest BLOCK of the control read: it bounds how long a dead connection goes
 * unnoticed; frames wake the read at once. The read blocks half a heartbeat
 * interval when that is shorter, so a live bus answers at least that often. */
#define BG_CONTROL_BLOCK_MS 2000
/* A read answered this much later than its BLOCK means the bus was not answering. */
#define BG_CONTROL_SILENCE_SLACK_MS 500
/* Heartbeat-only changes reach the table at most this often (a publish
 * rebuilds the whole table: ~7 ms at 10k endpoints). */
#define BG_CONTROL_HB_PUBLISH_MS 1000
/* RESYNC_REQUESTs to one connection without an answer before giving up. */
#define BG_CONTROL_RESYNC_MAX_ATTEMPTS 6
/* Instance streams: trimmed to about this many entries, and expire after
 * this many heartbeat_expiry periods without a write (protocol section 5). */
#define BG_CONTROL_INSTANCE_MAXLEN "100"
#define BG_CONTROL_BROADCAST_MAXLEN "1000"
#define BG_CONTROL_INSTANCE_TTL_EXPIRIES 10
/* Entries a reclaim takes over per run. */
#define BG_CONTROL_RECLAIM_COUNT 64
/* Deliveries of one control entry before it is dead-lettered unapplied. */
#define BG_CONTROL_MAX_DELIVERIES 5
/* The state key is written at most once per this long, or per 20 times
 * what the last write cost, whichever is longer (a snapshot of 10k
 * endpoints takes ~100 ms). */
#define BG_CONTROL_STATE_MIN_MS 200
/* The OpenAPI document is rebuilt at most once per this many times what its last build
 * took (10k endpoints: ~20-45 ms per build on the master's loop, ~0.25 s the first time;
 * bench/bench_openapi). */
#define BG_CONTROL_OPENAPI_GAP 20
/* Backlogs are sampled this often (one script call and one XINFO STREAM per service). */
#define BG_CONTROL_SAMPLE_MS 250
/* After the startup resync, the fleet answers within its random delay (at most 1 s,
 * docs/protocol.md section 5) plus a margin: until then an unknown path may belong to a
 * service not heard yet. */
#define BG_CONTROL_WARM_MS 1500

#define BG_CONTROL_STR_(x) #x
#define BG_CONTROL_STR(x) BG_CONTROL_STR_(x)

typedef struct bg_control_stats {
    unsigned long frames, hello, heartbeat, endpoints, goodbye;
    unsigned long malformed, rejected, dead_lettered, reclaimed;
    unsigned long publishes, publish_errors, resyncs_sent, resyncs_given_up;
    unsigned long state_writes;
} bg_control_stats;

struct bg_control {
    bg_config cfg; /* our copy */
    bg_rt *rt;     /* not owned */
    bg_ev *loop;   /* not owned */
    bg_registry *reg;
    bg_messaging_names names; /* points into cfg */
    const char *gateway;      /* cfg.gateway.instance_id */
    char control_key[BG_KEY_MAX + 1], dead_key[BG_KEY_MAX + 1], group[BG_KEY_MAX + 1];
    char broadcast_key[BG_KEY_MAX + 1], state_key[BG_KEY_MAX + 1];

    /* rd: the blocking XREADGROUP, then XACK and group setup between reads.
     * wr: RESYNC_REQUESTs and the state key. Both async on loop. */
    bg_abus *rd, *wr;
    bg_metrics *metrics;           /* shared counters, may be NULL (tests) */
    unsigned long reconnects_seen; /* rd + wr reconnects already counted */
    int started;                   /* the first group setup was sent: later ones are reconnects */
    int reading;                   /* an XREADGROUP is in flight on rd */
    int need_setup;                /* the group must be made again (NOGROUP) before reading */
    int stopping;                  /* ctl_stop runs: callbacks issue nothing new */
    int64_t backoff_ms;            /* after read errors and NOGROUP */
    int64_t block_ms;              /* BLOCK of the control read */
    int64_t heard_ms;              /* last answer to a control read: expiry is judged as of then */
    int resumed;                   /* rd reconnected: the next answer ends an outage */
    bg_ev_timer *read_retry;

    /* sync: a blocking connection for the queue scripts (dead letter,
     * reclaim); used only while rd is up, made on first use */
    bg_bus *sync;
    bg_queue *queue;

    bg_busview *busview;     /* shared with workers, may be NULL (tests) */
    char sample_sha[41];     /* SHA1 of the backlog sample script */
    size_t samples_inflight; /* backlog sample calls not answered yet */
    int64_t warm_due_ms;     /* when the startup resync has had its answers; 0 = not sent */
    bg_breaker *breaker;     /* shared with workers, may be NULL (tests) */
    uint64_t brk_changes;    /* breaker transitions already in the state document */

    bg_doc *openapi;            /* aggregated OpenAPI for workers, may be NULL (tests) */
    bg_ev_timer *openapi_timer; /* a rebuild is due */
    int64_t last_openapi_ms, openapi_cost_ms;

    bg_ev_timer *tick, *reclaim, *state_timer, *sampler;
    int64_t tick_ms;
    int64_t last_publish_ms, last_state_ms, state_cost_ms;
    int64_t started_wall_ms;
    char publish_err[BG_ERR_LEN]; /* last publish failure, logged once */
    unsigned long resync_seq;
    bg_control_stats stats;
};

/* control_read.c: the reader on rd */
void bg_control_on_rd_state(bg_abus *b, int connected, void *arg);
/* Stops reading (reconfigure/free): the in-flight read gets NULL. */
void bg_control_read_stop(bg_control *c);
/* Half a heartbeat interval, 50 ms .. BG_CONTROL_BLOCK_MS. */
int64_t bg_control_block_ms(const bg_config *cfg);

/* control_apply.c: one stream entry, read or reclaimed. Returns 1 when the
 * caller must ack it, 0 when it was dead-lettered (acked by the script), -1
 * when it must stay pending (dead letter failed: a reclaim tries again). */
int bg_control_entry(bg_control *c, const char *id, bg_field *fields, size_t nfields,
                     long deliveries);
/* After a batch: publish if routing changed (heartbeat-only changes at most
 * every BG_CONTROL_HB_PUBLISH_MS unless force), then schedule a state write. */
void bg_control_publish(bg_control *c, int force);
/* The blocking connection and queue, connected on first use. NULL + err. */
bg_queue *bg_control_sync_queue(bg_control *c, char *err);
void bg_control_sync_close(bg_control *c);

/* control_openapi.c: rebuild the OpenAPI document soon (routing changed, or a reload). */
void bg_control_openapi_request(bg_control *c);
void bg_control_openapi_stop(bg_control *c);

/* control_resync.c */
/* Sends RESYNC_REQUEST to one connection's instance stream and arms retries. */
void bg_control_resync_conn(bg_control *c, bg_reg_conn *conn, const char *reason);
/* To the broadcast stream, on b (rd during group setup, so that it follows
 * the group creation; NULL = whichever connection is free); service NULL =
 * every instance. */
int bg_control_resync_broadcast(bg_control *c, bg_abus *b, const char *reason, const char *service,
                                char *err);
/* Retries of unanswered resyncs that are due. */
void bg_control_resync_retry(bg_control *c, int64_t now_ms);
/* An ENDPOINTS_UPDATE answered: no more retries. */
void bg_control_resync_done(bg_reg_conn *conn);

/* control_reclaim.c: entries left pending (a crash between read and ack,
 * a failed dead letter) are taken over and applied. */
int64_t bg_control_on_reclaim(bg_ev *loop, bg_ev_timer *t, void *arg);
int64_t bg_control_reclaim_period_ms(const bg_control *c);

/* control_busview.c: warm-up and backlog samples for workers */
void bg_control_busview_resync_sent(bg_control *c);
int64_t bg_control_on_sample(bg_ev *loop, bg_ev_timer *t, void *arg);

/* control_state.c: the JSON document busgatectl reads */
void bg_control_state_request(bg_control *c);
int64_t bg_control_state_ttl_ms(const bg_control *c);
void bg_control_state_write(bg_control *c);
/* Best effort on shutdown: the gateway is no longer running. */
void bg_control_state_delete(bg_control *c);
/* Builds the document (malloc'd) from the table snapshot and the registry. */
char *bg_control_state_json(bg_control *c, char *err);

/* control.c: options of our connections, named "busgate-master-<role>-<gateway>" in
 * CLIENT LIST (name: BG_CONTROL_CLIENT_NAME_MAX bytes, copied by the connect calls). */
#define BG_CONTROL_CLIENT_NAME_MAX (BG_NAME_MAX + 32)
void bg_control_bus_opts(const bg_control *c, const char *role, char *name, size_t namelen,
                         bg_bus_opts *o);

#endif
