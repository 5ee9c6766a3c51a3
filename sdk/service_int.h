/* service_int.h: SDK internals shared by the sdk/ files: the service object, jobs, pool, threads.
 */
#ifndef BUSGATE_SERVICE_INT_H
#define BUSGATE_SERVICE_INT_H

#include <pthread.h>
#include <signal.h>

#include <jansson.h>

#include "busgate/bus/bus.h"
#include "busgate/bus/bus_queue.h"
#include "busgate/config/config.h"
#include "busgate/proto/frame.h"
#include "busgate/proto/keys.h"
#include "busgate/service.h"

/* Longest blocking read: bounds how long a stop or a timer waits. */
#define BGS_BLOCK_MS 1000
/* Shortest blocking read, so a timer that is due never turns a loop hot. */
#define BGS_BLOCK_MIN_MS 10
/* RESPONSE: XADD <reply_to> NOMKSTREAM MAXLEN ~ this (docs/protocol.md section 9). */
#define BGS_RESPONSE_MAXLEN "10000"
/* Recently cancelled request ids remembered for requests read after their CANCEL. */
#define BGS_CANCEL_RING 256
/* Broadcast resyncs waiting for their random delay (0..1000 ms). */
#define BGS_RESYNC_PENDING 16
#define BGS_RESYNC_SPREAD_MS 1000
/* Pause after a read error that neither backed off nor reconnected (e.g. WRONGTYPE). */
#define BGS_ERROR_PAUSE_MS 200
/* dead_reason of a request whose deadline passed before a handler took it. */
#define BGS_DEAD_DEADLINE "deadline_passed"

typedef struct bgs_endpoint {
    bg_method method;
    char *path;  /* as declared */
    char *shape; /* path with parameter names removed: "/a/{}" "/f/{*}" */
    int64_t timeout_ms;
    char **claims;
    size_t nclaims;
    char *rate_limit;                                   /* declared rate limit text, NULL = none */
    json_t *request_schema, *response_schema, *openapi; /* owned, NULL = absent */
    busgate_handler_fn *fn;
    void *arg;
    int run_inline; /* never blocks: the reader calls it (busgate_endpoint_opts.run_inline) */
} bgs_endpoint;

/* Largest piece one RESPONSE_CHUNK carries: a gateway reads up to a few hundred entries
 * per XREAD, so small pieces keep its memory bounded. Longer writes are split. */
#define BGS_PIECE_MAX (64 * 1024)

/* Where a streamed response is (service_stream.c). */
typedef enum {
    BGS_STREAM_NONE = 0, /* not begun: a whole RESPONSE as usual */
    BGS_STREAM_BUFFER,   /* begun, but the gateway cannot stream: writes fill the body */
    BGS_STREAM_OPEN,     /* head sent; pieces follow */
    BGS_STREAM_ENDED,    /* the last piece was sent */
    BGS_STREAM_BROKEN,   /* cancelled, or the bus refused a piece: nothing more is sent */
} bgs_stream_state;

struct bgs_worker;
struct bgs_job;

/* The response a handler fills: a RESPONSE frame under construction. */
struct busgate_response {
    bg_frame frame;       /* status; meta_json and body set when sending */
    bg_meta_headers meta; /* the headers, as the meta JSON text itself */
    char *body;
    size_t body_len, body_cap;
    int failed;    /* a setter failed: the handler's response becomes a 500 */
    int too_large; /* ... because the body does not fit a RESPONSE frame: a 502 */
    char why[BG_ERR_LEN];
    /* Streaming: the handler thread and job this response belongs to. */
    struct bgs_worker *worker;
    const struct bgs_job *job;
    bgs_stream_state stream;
    int64_t seq; /* pieces sent */
};

/* What the responder does with a job its handler finished. */
typedef enum {
    BGS_JOB_ACK = 0, /* no answer (skipped, cancelled): acknowledge only */
    BGS_JOB_ANSWER,  /* write wire to reply_to, then acknowledge */
    BGS_JOB_DROP,    /* neither: left pending, so it is delivered again after the lease */
    BGS_JOB_DEAD,    /* deadline passed before it ran: to the dead-letter stream (acks it) */
} bgs_job_outcome;

/* One request held by this instance: read (pending on us) until acked. */
typedef struct bgs_job {
    busgate_request req; /* what the handler sees; req.priv_ = &frame */
    bg_frame frame;      /* decoded REQUEST: owns strings, meta and body */
    char entry_id[BG_QUEUE_ID_LEN];
    const bgs_endpoint *ep; /* NULL: no handler for (method, endpoint) -> 404 */
    int64_t lease_start_ms; /* monotonic: read, reclaimed or last extended */
    int running;
    int run_inline; /* handled by the reader itself, not queued for a handler thread */
    int answered;   /* the handler is done: the job waits for the responder */
    bgs_job_outcome outcome;
    busgate_response res; /* the handler's answer; valid when has_res */
    bg_frame_wire wire;   /* res encoded (borrows from res); valid when outcome is ANSWER */
    int has_res;
    struct bgs_job *next; /* FIFO of jobs waiting for a thread, then for the responder */
} bgs_job;

/* A handler thread: it never talks to Valkey (the responder writes its answers). */
typedef struct bgs_worker {
    struct busgate_service *svc;
    pthread_t thread;
    int started;
    int index;
    /* Streamed responses only: the thread's own connection, opened at the first
     * busgate_response_begin, so pieces go out in order and a slow bus slows the handler. */
    bg_bus *stream_bus;
} bgs_worker;

typedef struct bgs_pool {
    struct busgate_service *svc;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued, or the pool is closing */
    pthread_cond_t idle; /* a slot became free */
    /* Every held job, queued, running or answered, until its answer is written (or it is
     * acked). Reading stops once threads + batch_size jobs are queued or running (active),
     * or every slot is taken. */
    bgs_job **slots;
    int nslots, used, answered, active_max;
    /* The reader waits until this many can be taken (half a batch): fewer, larger reads. */
    int low_water;
    int reader_waiting;
    bgs_job *head, *tail; /* queued for a handler thread */
    int closing;
    /* Answered by a handler, waiting for the responder's next round. */
    bgs_job *ahead, *atail;
    pthread_cond_t answers; /* a job was answered, or answers_closing */
    int responder_waiting, answers_closing;
    char ring[BGS_CANCEL_RING][BG_FRAME_ID_MAX + 1];
    int ring_next;
    bgs_worker *workers;
    int nworkers;
    bgs_worker inline_worker; /* the reader, when it runs inline handlers */
    int ready;                /* mutex and conds initialised */
} bgs_pool;

typedef enum { BGS_SUBMIT_OK = 0, BGS_SUBMIT_DUPLICATE, BGS_SUBMIT_CANCELLED } bgs_submit_rc;

typedef struct bgs_resync {
    char id[BG_FRAME_ID_MAX + 1];
    int64_t due_ms; /* monotonic */
} bgs_resync;

typedef struct bgs_control {
    struct busgate_service *svc;
    bg_bus *bus;
    const char *keys[3]; /* instance stream, broadcast stream, cancel stream */
    char last[3][BG_QUEUE_ID_LEN];
    bgs_resync pending[BGS_RESYNC_PENDING];
    int npending;
    atomic_int need_hello; /* set by the reconnect hook */
    int hello_done;        /* the first HELLO of this run went out */
    int64_t next_heartbeat_ms;
    pthread_t thread;
    int started;
} bgs_control;

/* Most answers written (and acks sent) in one pipelined round trip. */
#define BGS_ROUND_MAX 256
/* Acks with no answer to ride along wait this long for one before they go alone. */
#define BGS_ACK_LINGER_MS 2

/* The responder thread: writes the answers of every handler, pipelined, on its own
 * connection. Each round is one write and one read: the XADDs of the answers finished
 * since the last round, then one XACK of the requests whose RESPONSE Valkey confirmed in
 * the previous round (and of those answered without a response). So an ack always
 * follows its confirmed response, and a RESPONSE that failed is never acked. A job leaves
 * the pool once its RESPONSE is confirmed; its entry id alone waits for the XACK. */
typedef struct bgs_responder {
    struct busgate_service *svc;
    bg_bus *bus;
    bg_queue *queue; /* the request stream on bus: dead letters of late jobs */
    pthread_t thread;
    int started;
    /* Responder thread only. */
    bgs_job **batch;               /* this round's jobs: BGS_ROUND_MAX */
    char (*acks)[BG_QUEUE_ID_LEN]; /* entry ids to ack in the next round: 2 x BGS_ROUND_MAX */
    bgs_job **release;             /* this round's jobs, released at the next take */
    size_t nacks, nrelease;
    int borrowed_bus; /* the reader's own writer: bus is the reader's */
    int *write;       /* per batch job: 1 when its RESPONSE is to be written */
    int *written;     /* per batch job: 1 written (or dropped by NOMKSTREAM), 0 failed */
    /* The reader's own writer only: read_count > 0 appends a read of the next batch (of
     * read_queue) behind the round's XADDs and XACK, so that it shares their round trip;
     * read_pending says its reply is on the connection, for the reader to take. */
    bg_queue *read_queue;
    int read_count, read_pending;
    int64_t read_block_ms;
} bgs_responder;

typedef struct bgs_reader {
    struct busgate_service *svc;
    bg_bus *bus;
    bg_queue *queue;
    /* Answers of inline handlers, written by the reader itself on its connection (no
     * hand-over to the responder thread); acks ride with the next round or go before the
     * next blocking read. */
    bgs_responder writer;
    bg_queue_batch batch;
    int64_t next_reclaim_ms, next_extend_ms, period_ms;
} bgs_reader;

struct busgate_service {
    char name[BG_NAME_MAX + 1];
    char version[BG_FRAME_SVC_VERSION_MAX + 1];
    char instance[BG_NAME_MAX + 1];
    int instance_set; /* chosen by the application; else "<host>-<pid>" at run */
    char host[256];
    bg_config cfg;           /* [valkey] and [messaging]; other sections unused */
    char file_password[256]; /* from [valkey] password_file: beats a URL password */
    int threads;
    int handle_signals;
    int inline_all; /* busgate_service_set_inline: every endpoint runs on the reader */
    bgs_endpoint *eps;
    size_t neps, cap;
    json_t *openapi;
    busgate_ready_fn *ready_fn;
    void *ready_arg;

    /* Derived at run. */
    char k_requests[BG_KEY_MAX + 1], k_cancel[BG_KEY_MAX + 1], k_instance[BG_KEY_MAX + 1];
    char k_broadcast[BG_KEY_MAX + 1], k_control[BG_KEY_MAX + 1], group[BG_KEY_MAX + 1];
    char *endpoints_meta; /* serialised ENDPOINTS_UPDATE meta */
    size_t endpoints_meta_len;
    char maxlen[24]; /* stream_maxlen as text; "0" = no trim */

    atomic_int stop;         /* stop taking work (busgate_service_stop, signals) */
    atomic_int control_stop; /* everything drained: GOODBYE and end the control thread */
    atomic_int running;
    atomic_long inflight;
    bgs_pool pool;
    bgs_control control;
    bgs_reader reader;
    bgs_responder responder;
};

/* service.c */
int bgs_stopping(const busgate_service *s);
void bgs_sleep_ms(const busgate_service *s, int64_t ms); /* cut short by a stop */

/* service_bus.c: connections and key names. */
bg_bus *bgs_bus_open(busgate_service *s, const char *role, char *err);
/* One connection attempt, no retry (a handler thread must not wait for Valkey forever). */
bg_bus *bgs_bus_open_once(busgate_service *s, const char *role, char *err);
int bgs_keys_derive(busgate_service *s, char *err);
void bgs_default_instance(busgate_service *s);
/* XADD to the control stream (MAXLEN ~ stream_maxlen) of a frame with id/ts/service
 * /instance filled in here. */
int bgs_control_send(busgate_service *s, bg_bus *bus, bg_frame *f, char *err);
/* Newest id of a stream, "0-0" when empty or missing. */
int bgs_stream_last_id(bg_bus *bus, const char *key, char *out, char *err);

/* service_registry.c: endpoints. */
int bgs_registry_add(busgate_service *s, bg_method method, const char *path, busgate_handler_fn *fn,
                     void *arg, const busgate_endpoint_opts *o, char *err);
void bgs_registry_free(busgate_service *s);
/* Builds s->endpoints_meta from the endpoints (validated like the gateway does). */
int bgs_registry_build_meta(busgate_service *s, char *err);
/* The handler for (method, template); templates compare by shape. NULL = none. */
const bgs_endpoint *bgs_registry_find(const busgate_service *s, bg_method method, const char *tpl,
                                      size_t len);
int bgs_template_shape(const char *tpl, size_t len, char *out, size_t outlen);

/* service_pool.c: handler threads and the table of held jobs. */
int bgs_pool_init(bgs_pool *p, busgate_service *s, char *err);
/* Starts the handler threads (they hand each finished job to the responder). */
int bgs_pool_start(bgs_pool *p, char *err);
int bgs_pool_free_slots(bgs_pool *p);
/* Waits up to ms (or a stop) until low_water jobs can be taken; returns how many can. */
int bgs_pool_wait_slot(bgs_pool *p, int64_t ms);
/* Waits up to ms for a job to finish; returns the jobs still held. */
int bgs_pool_wait_idle(bgs_pool *p, int64_t ms);
/* Takes each job: queued for a handler thread, or (run_inline) held as running for the
 * reader to run itself; rcs[i] says what became of jobs[i]. */
void bgs_pool_submit_many(bgs_pool *p, bgs_job *const *jobs, size_t n, bgs_submit_rc *rcs);
/* The reader wrote (or failed to write) the answers of these inline jobs: slots freed, jobs
 * freed, under one lock. */
void bgs_pool_release_many(bgs_pool *p, bgs_job *const *jobs, size_t n);
/* Sets the cancelled flag of the held request with this id, else remembers the id. */
int bgs_pool_cancel(bgs_pool *p, const char *request_id);
/* Copies up to max entry ids held longer than min_age_ms into ids. */
size_t bgs_pool_lease_due(bgs_pool *p, int64_t min_age_ms, char (*ids)[BG_QUEUE_ID_LEN],
                          size_t max);
void bgs_pool_lease_renewed(bgs_pool *p, const char *entry_id, int64_t now_ms);
int bgs_pool_held(bgs_pool *p);
/* The responder's one lock per round: releases the slots of (and frees) the jobs of its
 * last round, then takes up to max answered jobs, waiting for one up to wait_ms (< 0:
 * without limit, 0: not at all). 0 after an unlimited wait means the answers are closed
 * and none is left. */
size_t bgs_pool_take_answered(bgs_pool *p, bgs_job *const *release, size_t nrelease, bgs_job **out,
                              size_t max, int64_t wait_ms);
/* No more answers will come (after bgs_pool_shutdown): the responder ends when done. */
void bgs_pool_close_answers(bgs_pool *p);
/* Closes the pool: threads finish every queued job, then exit; joined here. */
void bgs_pool_shutdown(bgs_pool *p);
void bgs_pool_destroy(bgs_pool *p);
void bgs_job_free(bgs_job *job);

/* service_respond.c: run one job on a handler thread; sets its outcome for the responder. */
void bgs_job_run(bgs_worker *w, bgs_job *job);
/* Releases what the job's answer holds (response, wire). */
void bgs_job_clear_answer(bgs_job *job);

/* service_stream.c: streamed responses written by the handler thread itself. */
/* After the handler returned: ends a stream it left open (the last piece, or one that
 * says the handler failed). 1 when the response was streamed (or broke off): the job is
 * then only acknowledged. */
int bgs_stream_finish(bgs_worker *w, bgs_job *job, int handler_ok);
/* Closes the thread's stream connection. */
void bgs_stream_thread_end(bgs_worker *w);

/* service_responder.c: the thread that writes answers and acks, pipelined. */
int bgs_responder_init(bgs_responder *r, busgate_service *s, bg_bus *bus, char *err);
int bgs_responder_start(bgs_responder *r, char *err);
/* On the reader's thread, for jobs it ran inline: the same rounds (answers, then the acks
 * of the previous round), then their slots are released. read_count > 0: the last round
 * also carries a read of that many requests (r->read_pending when it went out). */
void bgs_responder_write_now(bgs_responder *r, bgs_job *const *jobs, size_t n, int read_count);
/* Sends the acks still waiting for a round. */
void bgs_responder_flush_acks(bgs_responder *r);
/* The same with a read of count requests behind the XACK, which may block block_ms
 * (r->read_pending when it went out). */
void bgs_responder_flush_acks_read(bgs_responder *r, int count, int64_t block_ms);
/* Writes everything answered, acks it, and joins the thread. Call after bgs_pool_shutdown. */
void bgs_responder_finish(bgs_responder *r);
void bgs_responder_destroy(bgs_responder *r);

/* service_requests.c: the request reader (calling thread of run). */
int bgs_reader_init(bgs_reader *r, busgate_service *s, bg_bus *bus, char *err);
void bgs_reader_loop(bgs_reader *r);
/* Keeps leases of held jobs alive until the pool is empty. */
void bgs_reader_drain(bgs_reader *r);
void bgs_reader_destroy(bgs_reader *r);

/* service_dead.c: dead letters of requests whose deadline passed. */
/* The request queue's options (stream, group, consumer, lease, deliveries, trim). */
void bgs_queue_opts(const busgate_service *s, bg_queue_opts *o);
/* The notice line for a request moved to the dead-letter stream of q, late_ms late. */
void bgs_dead_late_logged(const busgate_service *s, const bg_queue *q, const busgate_request *req,
                          int64_t late_ms);
/* Moves a held job, re-encoded from its decoded frame, to the dead-letter stream with
 * dead_reason BGS_DEAD_DEADLINE (which acks it); logs either way. */
int bgs_dead_letter_job(const busgate_service *s, bg_queue *q, const bgs_job *job);

/* service_control.c: HELLO, HEARTBEAT, RESYNC, CANCEL, GOODBYE on their own thread. */
int bgs_control_init(bgs_control *c, busgate_service *s, bg_bus *bus, char *err);
int bgs_control_start(bgs_control *c, char *err);
/* Tells the thread to send GOODBYE and end, and joins it. */
void bgs_control_finish(bgs_control *c);

/* Converts entries of an XREAD/XRANGE reply entry [id, [f, v, ...]] to fields:
 * BG_ERR when the shape is wrong or there are more than max fields. */
int bgs_entry_fields(const struct redisReply *entry, bg_field *fields, size_t max, size_t *n,
                     const char **id);

#endif
