/* test_bus_queue.c: the stream work queue against a private valkey-server. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "busgate/bus/bus_queue.h"
#include "valkey_harness.h"

#define GROUP "router-gateway"

static bgt_valkey srv;
static bg_bus *bus;
static char err[BG_ERR_LEN];

static bg_bus *connect_bus(void)
{
    bg_bus_opts o;
    char why[BG_ERR_LEN];

    bg_bus_opts_init(&o);
    if (bg_bus_opts_from_url(&o, srv.url, why) != BG_OK)
        return NULL;
    return bg_bus_connect(&o, why);
}

static void setup(void)
{
    cr_assert_eq(bgt_valkey_start(&srv, NULL), 0, "valkey-server did not start");
    bus = connect_bus();
    cr_assert_not_null(bus, "cannot connect to %s", srv.url);
}

static void teardown(void)
{
    bg_bus_free(bus);
    bus = NULL;
    bgt_valkey_stop(&srv);
}

TestSuite(queue, .init = setup, .fini = teardown, .timeout = 60);

static bg_queue *make_queue(bg_bus *b, const char *stream, const char *consumer, int64_t lease_ms,
                            int max_deliveries)
{
    bg_queue_opts o;
    bg_queue *q;

    bg_queue_opts_init(&o);
    o.stream = stream;
    o.group = GROUP;
    o.consumer = consumer;
    o.lease_ms = lease_ms;
    o.max_deliveries = max_deliveries;
    q = bg_queue_new(b, &o, err);
    cr_assert_not_null(q, "bg_queue_new: %s", err);
    return q;
}

Test(queue, opts_defaults_and_validation)
{
    bg_queue_opts o;

    bg_queue_opts_init(&o);
    cr_assert_eq(o.lease_ms, 5 * 60 * 1000);
    cr_assert_eq(o.max_deliveries, 5);
    cr_assert_eq(o.maxlen, 0);
    cr_assert_str_eq(o.start_id, "0");
    o.stream = "s";
    cr_assert_null(bg_queue_new(bus, &o, err), "a queue without a group was accepted");
    cr_assert(strstr(err, "required") != NULL, "%s", err);
    o.group = "g";
    o.lease_ms = 0;
    cr_assert_null(bg_queue_new(bus, &o, err), "a zero lease was accepted");
}

static bg_field fld(const char *name, const char *value, size_t vlen)
{
    bg_field f = {{name, strlen(name)}, {value, vlen}};
    return f;
}

static const bg_bytes *entry_field(const bg_queue_entry *e, const char *name)
{
    size_t i;

    for (i = 0; i < e->nfields; i++)
        if (e->fields[i].name.len == strlen(name) &&
            memcmp(e->fields[i].name.ptr, name, e->fields[i].name.len) == 0)
            return &e->fields[i].value;
    return NULL;
}

static void enqueue_text(bg_queue *q, const char *name, const char *value, char *id_out)
{
    bg_field f = fld(name, value, strlen(value));

    cr_assert_eq(bg_queue_enqueue(q, &f, 1, id_out, err), BG_OK, "enqueue: %s", err);
}

/* Entries the group still waits an ack for (XPENDING summary form). */
static long long pending_count(const char *stream)
{
    redisReply *r = bg_bus_command(bus, err, "XPENDING %s %s", stream, GROUP);
    long long n;

    cr_assert_not_null(r, "XPENDING: %s", err);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "XPENDING: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* Calls of one command since the server started, from INFO commandstats. */
static long long server_calls(const char *cmdstat)
{
    redisReply *r = bg_bus_command(bus, err, "INFO commandstats");
    char key[96];
    const char *p;
    long long n = 0;

    cr_assert_not_null(r, "INFO: %s", err);
    cr_assert_eq(r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_VERB, 1);
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmdstat);
    p = strstr(r->str, key);
    if (p != NULL)
        n = strtoll(p + strlen(key), NULL, 10);
    freeReplyObject(r);
    return n;
}

/* Whether an INFO section mentions needle. */
static int server_info_has(const char *section, const char *needle)
{
    redisReply *r = bg_bus_command(bus, err, "INFO %s", section);
    int found;

    cr_assert_not_null(r, "INFO: %s", err);
    cr_assert_eq(r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_VERB, 1);
    found = strstr(r->str, needle) != NULL;
    freeReplyObject(r);
    return found;
}

Test(queue, fifo_order_10k)
{
    enum { N = 10000 };
    bg_queue *q = make_queue(bus, "router:requests:{fifo}", "c1", 60000, 5);
    bg_queue_batch b = {0};
    const char *ids[512];
    char seq[16], body[16];
    int i, next = 0, rounds;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    for (i = 0; i < N; i++) {
        bg_field f[2];
        snprintf(seq, sizeof(seq), "%d", i);
        snprintf(body, sizeof(body), "v%05d", i);
        f[0] = fld("seq", seq, strlen(seq));
        f[1] = fld("body", body, 8); /* with two NUL bytes: binary-safe */
        cr_assert_eq(bg_queue_enqueue(q, f, 2, NULL, err), BG_OK, "enqueue %d: %s", i, err);
    }
    for (rounds = 0; next < N && rounds < 1000; rounds++) {
        size_t k;
        cr_assert_eq(bg_queue_read(q, 256, 100, &b, err), BG_OK, "read: %s", err);
        for (k = 0; k < b.count; k++, next++) {
            const bg_queue_entry *e = &b.entries[k];
            const bg_bytes *s = entry_field(e, "seq"), *v = entry_field(e, "body");
            snprintf(seq, sizeof(seq), "%d", next);
            memset(body, 0, sizeof(body));
            snprintf(body, sizeof(body), "v%05d", next);
            cr_assert_eq(e->nfields, 2);
            cr_assert_eq(e->deliveries, 1);
            cr_assert(s != NULL && s->len == strlen(seq) && memcmp(s->ptr, seq, s->len) == 0,
                      "entry %d out of order", next);
            cr_assert(v != NULL && v->len == 8 && memcmp(v->ptr, body, 8) == 0,
                      "entry %d body differs", next);
            ids[k] = e->id;
        }
        cr_assert_eq(bg_queue_ack_ids(q, ids, b.count, err), BG_OK, "ack: %s", err);
    }
    cr_assert_eq(next, N, "consumed %d of %d", next, N);
    cr_assert_eq(bg_queue_read(q, 10, 0, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 0, "entries left after consuming all");
    cr_assert_eq(pending_count("router:requests:{fifo}"), 0);
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

/* The doomed consumer: reads every entry, reports how many, never acks. */
static void child_read_and_hang(const char *stream, int n, int fd)
{
    bg_bus *cb = connect_bus(); /* never the parent's connection across fork() */
    bg_queue_opts o;
    bg_queue_batch b = {0};
    bg_queue *q;
    int got = 0, tries;

    bg_queue_opts_init(&o);
    o.stream = stream;
    o.group = GROUP;
    o.consumer = "doomed";
    q = cb != NULL ? bg_queue_new(cb, &o, NULL) : NULL;
    for (tries = 0; q != NULL && got < n && tries < 100; tries++) {
        if (bg_queue_read(q, n, 100, &b, NULL) != BG_OK)
            break;
        got += (int)b.count;
    }
    bg_queue_batch_free(&b);
    if (write(fd, &got, sizeof(got)) != sizeof(got))
        _exit(2);
    for (;;)
        pause(); /* SIGKILL ends this */
}

/* Fork a consumer that reads n entries, then SIGKILL it before it acks. */
static int run_doomed_consumer(const char *stream, int n)
{
    int pfd[2], got = -1, status;
    pid_t pid;

    cr_assert_eq(pipe(pfd), 0);
    pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0)
        child_read_and_hang(stream, n, pfd[1]);
    cr_assert_eq(read(pfd[0], &got, sizeof(got)), (ssize_t)sizeof(got));
    close(pfd[0]);
    close(pfd[1]);
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return got;
}

static int id_index(char ids[][BG_QUEUE_ID_LEN], int n, const char *id)
{
    int i;

    for (i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return i;
    return -1;
}

Test(queue, killed_consumer_loses_nothing)
{
    enum { N = 50 };
    const char *stream = "router:requests:{crash}";
    bg_queue *q = make_queue(bus, stream, "survivor", 200, 5);
    bg_queue_batch b = {0};
    char ids[N][BG_QUEUE_ID_LEN], num[16];
    int seen[N] = {0}, got, total = 0, i;
    int64_t deadline;
    size_t dead = 0, k;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    for (i = 0; i < N; i++) {
        snprintf(num, sizeof(num), "%d", i);
        enqueue_text(q, "n", num, ids[i]);
    }
    got = run_doomed_consumer(stream, N);
    cr_assert_eq(got, N, "the doomed consumer read %d of %d", got, N);

    cr_assert_eq(bg_queue_read(q, N, 0, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 0, "read-but-unacked entries were handed out as new");
    deadline = bg_mono_ms() + 10000;
    while (total < N && bg_mono_ms() < deadline) {
        cr_assert_eq(bg_queue_reclaim(q, 100, &b, &dead, err), BG_OK, "reclaim: %s", err);
        cr_assert_eq(dead, 0);
        for (k = 0; k < b.count; k++, total++) {
            int idx = id_index(ids, N, b.entries[k].id);
            cr_assert_geq(idx, 0, "reclaimed an unknown id %s", b.entries[k].id);
            cr_assert_eq(b.entries[k].deliveries, 2, "id %s", b.entries[k].id);
            seen[idx]++;
            cr_assert_eq(bg_queue_ack(q, b.entries[k].id, err), BG_OK, "%s", err);
        }
        if (b.count == 0)
            usleep(50000);
    }
    for (i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "entry %d processed %d times after the crash", i, seen[i]);
    usleep(300000); /* past another lease: nothing may come back */
    cr_assert_eq(bg_queue_reclaim(q, 100, &b, &dead, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 0);
    cr_assert_eq(pending_count(stream), 0);
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

/* The fields of the only entry of a stream, read back with XRANGE. */
static redisReply *only_entry(const char *stream)
{
    redisReply *r = bg_bus_command(bus, err, "XRANGE %s - +", stream);

    cr_assert_not_null(r, "XRANGE: %s", err);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1, "%s holds %zu entries", stream, r->elements);
    return r;
}

static const redisReply *xfield(const redisReply *range, const char *name)
{
    const redisReply *f = range->element[0]->element[1];
    size_t i;

    for (i = 0; i + 1 < f->elements; i += 2)
        if (strcmp(f->element[i]->str, name) == 0)
            return f->element[i + 1];
    cr_assert_fail("field %s missing", name);
    return NULL;
}

/* Reclaim until an entry comes back or is dead-lettered (the lease must pass
 * first). */
static void reclaim_wait(bg_queue *q, bg_queue_batch *b, size_t *dead)
{
    int64_t deadline = bg_mono_ms() + 5000;

    do {
        usleep(20000);
        cr_assert_eq(bg_queue_reclaim(q, 10, b, dead, err), BG_OK, "reclaim: %s", err);
    } while (b->count == 0 && *dead == 0 && bg_mono_ms() < deadline);
}

Test(queue, dead_letter_after_max_deliveries)
{
    const char *stream = "router:requests:{dlq}";
    bg_queue *q = make_queue(bus, stream, "c1", 100, 2);
    bg_queue_batch b = {0};
    bg_field f[2] = {fld("type", "REQUEST", 7), fld("body", "a\0b", 3)};
    char id[BG_QUEUE_ID_LEN];
    size_t dead = 0;
    redisReply *r;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    cr_assert_eq(bg_queue_enqueue(q, f, 2, id, err), BG_OK, "%s", err);
    cr_assert_eq(bg_queue_read(q, 10, 100, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(b.entries[0].deliveries, 1);
    reclaim_wait(q, &b, &dead);
    cr_assert_eq(b.count, 1, "second delivery missing");
    cr_assert_eq(dead, 0);
    cr_assert_eq(b.entries[0].deliveries, 2);
    reclaim_wait(q, &b, &dead);
    cr_assert_eq(b.count, 0, "delivered a third time despite max_deliveries 2");
    cr_assert_eq(dead, 1);
    cr_assert_eq(pending_count(stream), 0, "dead letter not acked on the source");

    r = only_entry("router:requests:{dlq}:dead");
    cr_assert_str_eq(xfield(r, "type")->str, "REQUEST");
    cr_assert_eq(xfield(r, "body")->len, 3);
    cr_assert_eq(memcmp(xfield(r, "body")->str, "a\0b", 3), 0);
    cr_assert(strstr(xfield(r, "dead_reason")->str, "max_deliveries") != NULL);
    cr_assert_str_eq(xfield(r, "dead_from_id")->str, id);
    cr_assert_str_eq(xfield(r, "dead_deliveries")->str, "3");
    cr_assert_str_eq(xfield(r, "dead_group")->str, GROUP);
    cr_assert_str_eq(xfield(r, "dead_consumer")->str, "c1");
    freeReplyObject(r);
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

Test(queue, explicit_dead_letter_with_reason)
{
    const char *stream = "router:requests:{bad}";
    bg_queue *q = make_queue(bus, stream, "c1", 60000, 5);
    bg_queue_batch b = {0};
    redisReply *r;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    enqueue_text(q, "garbage", "xyz", NULL);
    cr_assert_eq(bg_queue_read(q, 10, 100, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(bg_queue_dead_letter(q, &b.entries[0], "malformed frame", err), BG_OK, "%s", err);
    cr_assert_eq(pending_count(stream), 0);
    r = only_entry(bg_queue_dead_stream(q));
    cr_assert_str_eq(xfield(r, "dead_reason")->str, "malformed frame");
    cr_assert_str_eq(xfield(r, "garbage")->str, "xyz");
    cr_assert_str_eq(xfield(r, "dead_deliveries")->str, "1");
    freeReplyObject(r);
    /* Once acked it is not moved again: no duplicate dead letters. */
    cr_assert_eq(bg_queue_dead_letter(q, &b.entries[0], "again", err), BG_ERR);
    cr_assert(strstr(err, "no longer pending") != NULL, "%s", err);
    r = only_entry(bg_queue_dead_stream(q));
    freeReplyObject(r);
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

/* Read in a loop for about window_ms; returns the entries received. */
static size_t read_for(bg_queue *q, int64_t window_ms, int64_t block_ms, int *errors)
{
    int64_t end = bg_mono_ms() + window_ms;
    bg_queue_batch b = {0};
    size_t got = 0;
    int loops;

    *errors = 0;
    for (loops = 0; bg_mono_ms() < end && loops < 100000; loops++) {
        if (bg_queue_read(q, 10, block_ms, &b, err) != BG_OK)
            (*errors)++;
        else
            got += b.count;
    }
    bg_queue_batch_free(&b);
    return got;
}

Test(queue, group_recreated_after_empty_restart)
{
    const char *stream = "router:requests:{restart}";
    bg_queue *q = make_queue(bus, stream, "c1", 60000, 5);
    bg_queue_batch b = {0};
    unsigned long before;
    char reply[64];
    int errors;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    enqueue_text(q, "when", "before", NULL);
    cr_assert_eq(bg_queue_read(q, 10, 100, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(bg_queue_ack(q, b.entries[0].id, err), BG_OK, "%s", err);

    bgt_valkey_kill(&srv);
    cr_assert_eq(bgt_valkey_restart(&srv), 0, "restart failed");
    cr_assert_eq(bgt_valkey_cmd(&srv, reply, sizeof(reply), "EXISTS %s", stream), 0);
    cr_assert_str_eq(reply, ":0", "the server was not restarted empty");

    /* The first read meets NOGROUP, re-creates the group and blocks as usual. */
    cr_assert_eq(bg_queue_read(q, 10, 100, &b, err), BG_OK, "read after restart: %s", err);
    cr_assert_eq(b.count, 0);
    enqueue_text(q, "when", "after", NULL);
    cr_assert_eq(bg_queue_read(q, 10, 100, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 1, "reading did not resume");
    cr_assert_eq(bg_queue_ack(q, b.entries[0].id, err), BG_OK, "%s", err);

    before = bg_queue_command_count(q);
    cr_assert_eq(read_for(q, 1000, 100, &errors), 0);
    cr_assert_eq(errors, 0, "last error: %s", err);
    cr_assert_leq(bg_queue_command_count(q) - before, 50, "%lu commands in 1 s",
                  bg_queue_command_count(q) - before);
    cr_assert_leq(server_calls("xgroup|create"), 2, "group created again and again");
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

Test(queue, no_hot_loop_while_the_group_cannot_be_created)
{
    const char *stream = "router:requests:{nogroup}";
    bg_queue *q = make_queue(bus, stream, "c1", 60000, 5);
    unsigned long before;
    int errors;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    /* Restarted empty and with XGROUP disabled: every read meets NOGROUP and
     * every re-create fails, the worst case for a spinning consumer. */
    bgt_valkey_kill(&srv);
    srv.extra[srv.nextra++] = strdup("--rename-command");
    srv.extra[srv.nextra++] = strdup("XGROUP");
    srv.extra[srv.nextra++] = strdup("");
    cr_assert_eq(bgt_valkey_restart(&srv), 0, "restart failed");

    before = bg_queue_command_count(q);
    cr_assert_eq(read_for(q, 1000, 0, &errors), 0);
    cr_assert_gt(errors, 0, "a read without a group succeeded");
    cr_assert(strstr(err, "NOGROUP") != NULL || strstr(err, "XGROUP") != NULL, "%s", err);
    cr_assert_leq(bg_queue_command_count(q) - before, 50, "%lu commands in 1 s",
                  bg_queue_command_count(q) - before);
    cr_assert_leq(server_calls("xreadgroup"), 50, "XREADGROUP hot loop on the server");
    bg_queue_free(q);
}

Test(queue, reconnect_hook_recreates_group_before_reading)
{
    const char *stream = "router:requests:{hook}";
    bg_queue *q = make_queue(bus, stream, "c1", 60000, 5);
    bg_queue_batch b = {0};
    char reply[64];

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    cr_assert_eq(bgt_valkey_cmd(&srv, reply, sizeof(reply), "XGROUP DESTROY %s %s", stream, GROUP),
                 0);
    cr_assert_str_eq(reply, ":1");
    usleep((BG_QUEUE_GROUP_RETRY_MS + 50) * 1000);
    bg_queue_reconnect_hook(bus, q);
    cr_assert_eq(bg_queue_read(q, 10, 50, &b, err), BG_OK, "%s", err);
    cr_assert_eq(server_calls("xgroup|create"), 2);
    cr_assert_eq(server_info_has("errorstats", "NOGROUP"), 0,
                 "the read met NOGROUP: the hook did nothing");
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

Test(queue, ack_is_final_and_idempotent)
{
    const char *stream = "router:requests:{ack}";
    bg_queue *q = make_queue(bus, stream, "c1", 100, 5);
    bg_queue_batch b = {0};
    size_t dead;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    enqueue_text(q, "k", "v", NULL);
    cr_assert_eq(bg_queue_read(q, 10, 100, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(pending_count(stream), 1);
    cr_assert_eq(bg_queue_ack(q, b.entries[0].id, err), BG_OK, "%s", err);
    cr_assert_eq(pending_count(stream), 0);
    cr_assert_eq(bg_queue_ack(q, b.entries[0].id, err), BG_OK, "a second ack failed: %s", err);
    usleep(200000);
    cr_assert_eq(bg_queue_reclaim(q, 10, &b, &dead, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 0, "an acked entry came back");
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

/* Owner and delivery count of one pending entry (XPENDING extended form). */
static void pending_entry(const char *stream, const char *id, char *owner, long long *count)
{
    redisReply *r = bg_bus_command(bus, err, "XPENDING %s %s %s %s 1", stream, GROUP, id, id);

    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1, "%s is not pending", id);
    snprintf(owner, 64, "%s", r->element[0]->element[1]->str);
    *count = r->element[0]->element[3]->integer;
    freeReplyObject(r);
}

Test(queue, extend_keeps_the_lease_without_counting_a_delivery)
{
    const char *stream = "router:requests:{extend}";
    bg_queue *a = make_queue(bus, stream, "a", 1000, 5);
    bg_queue *other = make_queue(bus, stream, "b", 1000, 5);
    bg_queue_batch b = {0}, rb = {0};
    char id[BG_QUEUE_ID_LEN], owner[64];
    long long count;
    size_t dead;
    int i;

    cr_assert_eq(bg_queue_ensure_group(a, err), BG_OK, "%s", err);
    enqueue_text(a, "k", "v", NULL);
    cr_assert_eq(bg_queue_read(a, 10, 100, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 1);
    snprintf(id, sizeof(id), "%s", b.entries[0].id);
    /* 20 x 150 ms = 3 leases: without the extensions b would have taken it. */
    for (i = 0; i < 20; i++) {
        usleep(150000);
        cr_assert_eq(bg_queue_extend(a, id, err), BG_OK, "extend: %s", err);
        cr_assert_eq(bg_queue_reclaim(other, 10, &rb, &dead, err), BG_OK, "%s", err);
        cr_assert_eq(rb.count, 0, "an extended lease was reclaimed");
    }
    pending_entry(stream, id, owner, &count);
    cr_assert_str_eq(owner, "a");
    cr_assert_eq(count, 1, "extend counted a delivery");

    reclaim_wait(other, &rb, &dead);
    cr_assert_eq(rb.count, 1, "the lapsed lease was not reclaimed");
    cr_assert_eq(rb.entries[0].deliveries, 2);
    cr_assert_eq(bg_queue_extend(a, id, err), BG_ERR, "a lost lease was extended");
    cr_assert(strstr(err, "lease lost") != NULL && strstr(err, "consumer b") != NULL, "%s", err);
    pending_entry(stream, id, owner, &count);
    cr_assert_str_eq(owner, "b", "extend stole the entry back");
    cr_assert_eq(bg_queue_ack(other, id, err), BG_OK, "%s", err);
    cr_assert_eq(bg_queue_extend(other, id, err), BG_ERR);
    cr_assert(strstr(err, "not pending") != NULL, "%s", err);
    bg_queue_batch_free(&b);
    bg_queue_batch_free(&rb);
    bg_queue_free(a);
    bg_queue_free(other);
}

/* Names of the group's consumers, comma separated, with pending counts. */
static void consumer_list(const char *stream, char *out, size_t outlen)
{
    redisReply *r = bg_bus_command(bus, err, "XINFO CONSUMERS %s %s", stream, GROUP);
    size_t i, j, used = 0;

    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    out[0] = '\0';
    for (i = 0; i < r->elements; i++) {
        const redisReply *c = r->element[i];
        const char *name = "?";
        long long pending = -1;
        for (j = 0; j + 1 < c->elements; j += 2) {
            if (strcmp(c->element[j]->str, "name") == 0)
                name = c->element[j + 1]->str;
            if (strcmp(c->element[j]->str, "pending") == 0)
                pending = c->element[j + 1]->integer;
        }
        used +=
            (size_t)snprintf(out + used, outlen - used, "%s%s=%lld", i ? "," : "", name, pending);
        cr_assert_lt(used, outlen);
    }
    freeReplyObject(r);
}

Test(queue, delete_idle_consumers_keeps_those_with_pending_entries)
{
    const char *stream = "router:requests:{consumers}";
    bg_queue *busy = make_queue(bus, stream, "busy", 60000, 5);
    bg_queue *idle = make_queue(bus, stream, "idle", 60000, 5);
    bg_queue *self = make_queue(bus, stream, "self", 60000, 5);
    bg_queue_batch b = {0};
    char list[256];
    size_t deleted = 99;

    cr_assert_eq(bg_queue_ensure_group(busy, err), BG_OK, "%s", err);
    enqueue_text(busy, "k", "v", NULL);
    cr_assert_eq(bg_queue_read(busy, 10, 100, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(bg_queue_read(idle, 10, 0, &b, err), BG_OK, "%s", err);
    cr_assert_eq(bg_queue_read(self, 10, 0, &b, err), BG_OK, "%s", err);
    consumer_list(stream, list, sizeof(list));
    cr_assert_str_eq(list, "busy=1,idle=0,self=0");

    cr_assert_eq(bg_queue_delete_idle_consumers(self, 3600000, &deleted, err), BG_OK, "%s", err);
    cr_assert_eq(deleted, 0, "deleted a consumer that was not idle long enough");
    usleep(300000);
    cr_assert_eq(bg_queue_delete_idle_consumers(self, 200, &deleted, err), BG_OK, "%s", err);
    cr_assert_eq(deleted, 1);
    consumer_list(stream, list, sizeof(list));
    cr_assert_str_eq(list, "busy=1,self=0", "busy or self deleted, or idle kept");
    bg_queue_batch_free(&b);
    bg_queue_free(busy);
    bg_queue_free(idle);
    bg_queue_free(self);
}

Test(queue, reclaim_acks_and_counts_trimmed_entries)
{
    const char *stream = "router:requests:{trim}";
    bg_queue *q = make_queue(bus, stream, "c1", 100, 5);
    bg_queue_batch b = {0};
    size_t dead = 0, gone = 0;
    int64_t deadline;
    redisReply *r;
    int i;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    for (i = 0; i < 5; i++)
        enqueue_text(q, "k", "v", NULL);
    cr_assert_eq(bg_queue_read(q, 10, 100, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 5);
    r = bg_bus_command(bus, err, "XTRIM %s MAXLEN 0", stream);
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 5);
    freeReplyObject(r);
    deadline = bg_mono_ms() + 5000;
    while (gone < 5 && bg_mono_ms() < deadline) {
        usleep(20000);
        cr_assert_eq(bg_queue_reclaim(q, 10, &b, &dead, err), BG_OK, "%s", err);
        cr_assert_eq(b.count, 0);
        gone += b.deleted;
    }
    cr_assert_eq(gone, 5, "trimmed pending entries not reported");
    cr_assert_eq(pending_count(stream), 0);
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

Test(queue, start_id_and_maxlen)
{
    bg_queue_opts o;
    bg_queue *skip, *replay;
    bg_queue_batch b = {0};
    bg_field f = fld("k", "v", 1);
    redisReply *r;
    int i;

    for (i = 0; i < 3; i++)
        cr_assert_eq(bg_queue_enqueue_to(bus, "router:requests:{start}", 0, &f, 1, NULL, err),
                     BG_OK, "%s", err);
    bg_queue_opts_init(&o);
    o.stream = "router:requests:{start}";
    o.group = "skip";
    o.consumer = "c";
    o.start_id = "$";
    skip = bg_queue_new(bus, &o, err);
    o.group = "replay";
    o.start_id = "0";
    replay = bg_queue_new(bus, &o, err);
    cr_assert(skip != NULL && replay != NULL, "%s", err);
    cr_assert_eq(bg_queue_read(skip, 10, 0, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 0, "\"$\" replayed old entries");
    cr_assert_eq(bg_queue_read(replay, 10, 0, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 3, "\"0\" did not replay old entries");

    for (i = 0; i < 1000; i++)
        cr_assert_eq(bg_queue_enqueue_to(bus, "trimmed", 100, &f, 1, NULL, err), BG_OK, "%s", err);
    r = bg_bus_command(bus, err, "XLEN trimmed");
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    cr_assert(r->integer >= 100 && r->integer < 1000, "XLEN %lld", r->integer);
    freeReplyObject(r);
    bg_queue_batch_free(&b);
    bg_queue_free(skip);
    bg_queue_free(replay);
}

Test(queue, blocking_read_outlasts_a_short_command_timeout)
{
    bg_queue *q = make_queue(bus, "router:requests:{quiet}", "c1", 60000, 5);
    bg_queue_batch b = {0};
    const struct timeval *tv;
    int64_t t0;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    bg_bus_set_command_timeout(bus, 300);
    t0 = bg_mono_ms();
    cr_assert_eq(bg_queue_read(q, 10, 800, &b, err), BG_OK, "a quiet stream timed out: %s", err);
    cr_assert_eq(b.count, 0);
    cr_assert_geq(bg_mono_ms() - t0, 700, "the read did not block");
    cr_assert_eq(bg_bus_reconnect_count(bus), 0, "the read reconnected");
    tv = bg_bus_context(bus)->command_timeout;
    cr_assert(tv != NULL && tv->tv_sec == 0 && tv->tv_usec == 300000,
              "the command timeout was not restored");
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}

/* A read appended behind other commands shares their round trip: its reply comes after
 * theirs; one that blocks outlasts a shorter command timeout; after NOGROUP the batch is
 * empty and the next plain read makes the group again. */
Test(queue, pipelined_read_behind_other_commands)
{
    const char *stream = "router:requests:{piped}";
    const char *ping[] = {"PING"};
    bg_queue *q = make_queue(bus, stream, "c1", 60000, 5);
    bg_queue_batch b = {0};
    redisReply *r;
    char reply[64];
    int64_t t0;

    cr_assert_eq(bg_queue_ensure_group(q, err), BG_OK, "%s", err);
    enqueue_text(q, "n", "1", NULL);
    enqueue_text(q, "n", "2", NULL);
    cr_assert_eq(bg_bus_append_argv(bus, 1, ping, NULL, err), BG_OK, "%s", err);
    cr_assert_eq(bg_queue_read_append(q, 10, 0, err), BG_OK, "%s", err);
    cr_assert_eq(bg_bus_get_reply(bus, &r, err), BG_OK, "%s", err);
    cr_assert_str_eq(r->str, "PONG", "the read's reply came before the PING's");
    bg_bus_reply_free(r);
    cr_assert_eq(bg_queue_read_reply(q, &b, err), BG_OK, "%s", err);
    cr_assert_eq(b.count, 2);
    cr_assert_eq(bg_queue_ack(q, b.entries[0].id, err), BG_OK, "%s", err);
    cr_assert_eq(bg_queue_ack(q, b.entries[1].id, err), BG_OK, "%s", err);

    /* Blocking: 800 ms against a 300 ms command timeout. */
    bg_bus_set_command_timeout(bus, 300);
    t0 = bg_mono_ms();
    cr_assert_eq(bg_queue_read_append(q, 10, 800, err), BG_OK, "%s", err);
    cr_assert_eq(bg_queue_read_reply(q, &b, err), BG_OK, "a quiet stream timed out: %s", err);
    cr_assert_eq(b.count, 0);
    cr_assert_geq(bg_mono_ms() - t0, 700, "the read did not block");
    cr_assert_eq(bg_bus_reconnect_count(bus), 0, "the read reconnected");
    bg_bus_set_command_timeout(bus, 5000);

    cr_assert_eq(bgt_valkey_cmd(&srv, reply, sizeof(reply), "XGROUP DESTROY %s %s", stream, GROUP),
                 0);
    cr_assert_eq(bg_queue_read_append(q, 10, 0, err), BG_OK, "%s", err);
    cr_assert_eq(bg_queue_read_reply(q, &b, err), BG_OK, "NOGROUP is no error here: %s", err);
    cr_assert_eq(b.count, 0);
    cr_assert_eq(bg_queue_read_append(q, 10, 0, err), BG_ERR, "appended without a group");
    usleep((BG_QUEUE_GROUP_RETRY_MS + 50) * 1000);
    enqueue_text(q, "n", "3", NULL);
    cr_assert_eq(bg_queue_read(q, 10, 100, &b, err), BG_OK, "%s", err);
    /* Made again from start_id 0: the new group sees the whole stream. */
    cr_assert_eq(b.count, 3, "the group was not made again: %zu entries", b.count);
    bg_queue_batch_free(&b);
    bg_queue_free(q);
}
