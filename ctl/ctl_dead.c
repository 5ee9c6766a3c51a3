/* ctl_dead.c: busgatectl dead: list, show, replay and purge a service's dead letters. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busgate/proto/frame.h"
#include "ctl.h"

#define DEAD_LIST_DEFAULT 100
#define DEAD_LIST_MAX 100000
#define DEAD_REPLAY_CHUNK "100"
#define DEAD_SHOW_VALUE_MAX 4096 /* bytes of a value printed by show */
#define DEAD_PREFIX "dead_"

#define DEAD_USAGE                                                                                 \
    "dead list SERVICE [--count N] [--json] | dead show SERVICE ENTRY_ID | "                       \
    "dead replay SERVICE ENTRY_ID|--all | dead purge SERVICE ENTRY_ID|--all"

/* The keys of one service. */
typedef struct dead_ctx {
    bgctl *x;
    const char *service;
    char stream[BG_KEY_MAX + 1]; /* request stream */
    char dead[BG_KEY_MAX + 1];   /* its dead letters */
} dead_ctx;

/* Moves the entry ARGV[1] of KEYS[2] (the dead letters) to KEYS[1] (the request stream)
 * with the fields ARGV[3..]; ARGV[2] is MAXLEN ("0": no trim). The XDEL comes first, so
 * two replays of one entry never enqueue it twice. */
static const char replay_lua[] =
    "if redis.call('XDEL', KEYS[2], ARGV[1]) == 0 then return false end\n"
    "local f = {}\n"
    "for i = 3, #ARGV do f[#f + 1] = ARGV[i] end\n"
    "if ARGV[2] == '0' then return redis.call('XADD', KEYS[1], '*', unpack(f)) end\n"
    "return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(f))\n";

static int usage_error(const char *what)
{
    bgctl_fail("dead: %s (usage: " DEAD_USAGE ")", what);
    return BGCTL_EXIT_USAGE;
}

/* "1700000000000-0" or "1700000000000": what XADD * makes. */
static int entry_id_ok(const char *id)
{
    const char *p = id;

    while (isdigit((unsigned char)*p))
        p++;
    if (p == id || (*p != '\0' && *p != '-'))
        return 0;
    if (*p == '\0')
        return 1;
    for (id = ++p; isdigit((unsigned char)*p); p++)
        ;
    return p != id && *p == '\0';
}

static long long key_exists(bgctl *x, const char *key, char *err)
{
    redisReply *r = bgctl_command(x, err, "EXISTS %s", key);
    long long n;

    if (r == NULL)
        return -1;
    n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    bg_bus_reply_free(r);
    return n;
}

/* Keys of the service; a service with neither stream is unknown (a typo, most likely). */
static int dead_open(dead_ctx *d, bgctl *x, const char *service, char *err)
{
    long long req, dead;

    d->x = x;
    d->service = service;
    if (bg_name_validate("service", service, err) != BG_OK ||
        bg_key_request_stream(&x->names, service, d->stream, sizeof(d->stream), err) != BG_OK ||
        bg_key_dead_letter(d->stream, d->dead, sizeof(d->dead), err) != BG_OK)
        return BG_ERR;
    if (bgctl_connect(x) != BG_OK)
        return BG_ERR;
    if ((req = key_exists(x, d->stream, err)) < 0 || (dead = key_exists(x, d->dead, err)) < 0)
        return BG_ERR;
    if (req == 0 && dead == 0) {
        bg_set_error(err, "unknown service '%s' (neither %s nor %s exists)", service, d->stream,
                     d->dead);
        return BG_ERR;
    }
    return BG_OK;
}

/* ---- one entry of an XRANGE reply: [id, [field, value, ...]] ---- */

static int entry_ok(const redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
           e->element[0]->type == REDIS_REPLY_STRING && e->element[1]->type == REDIS_REPLY_ARRAY;
}

static const redisReply *entry_value(const redisReply *e, const char *name)
{
    const redisReply *kv = e->element[1];

    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING && strcmp(kv->element[i]->str, name) == 0)
            return kv->element[i + 1];
    return NULL;
}

static const char *entry_str(const redisReply *e, const char *name)
{
    const redisReply *v = entry_value(e, name);

    return v != NULL && v->type == REDIS_REPLY_STRING ? v->str : "";
}

static int64_t entry_int(const redisReply *e, const char *name)
{
    const char *s = entry_str(e, name);

    return *s != '\0' ? strtoll(s, NULL, 10) : -1;
}

/* "2026-12-05T20:32:45.123Z"; "-" when ms is unknown. */
static void format_ms(int64_t ms, char *out, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, len, "-");
        return;
    }
    strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + strlen(out), len - strlen(out), ".%03dZ", (int)(ms % 1000));
}

/* XRANGE dead start end [COUNT n]; the reply is checked to hold well-formed entries. */
static redisReply *dead_range(dead_ctx *d, const char *start, const char *end, const char *count,
                              char *err)
{
    redisReply *r =
        count != NULL
            ? bgctl_command(d->x, err, "XRANGE %s %s %s COUNT %s", d->dead, start, end, count)
            : bgctl_command(d->x, err, "XRANGE %s %s %s", d->dead, start, end);

    if (r == NULL)
        return NULL;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (!entry_ok(r->element[i]))
            goto bad;
    if (r->type == REDIS_REPLY_ARRAY)
        return r;
bad:
    bg_set_error(err, "XRANGE %s: unexpected reply", d->dead);
    bg_bus_reply_free(r);
    return NULL;
}

/* The one entry id, or NULL with "no such entry". */
static redisReply *dead_one(dead_ctx *d, const char *id, char *err)
{
    redisReply *r = dead_range(d, id, id, NULL, err);

    if (r != NULL && r->elements == 0) {
        bg_set_error(err, "no dead letter %s in %s", id, d->dead);
        bg_bus_reply_free(r);
        return NULL;
    }
    return r;
}

/* ---- list ---- */

static json_t *list_json_entry(const redisReply *e)
{
    char at[40];

    format_ms(entry_int(e, "dead_at_ms"), at, sizeof(at));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "entry_id", e->element[0]->str,
                     "request_id", entry_str(e, "id"), "method", entry_str(e, "method"), "path",
                     entry_str(e, "path"), "dead_reason", entry_str(e, "dead_reason"), "deliveries",
                     (json_int_t)entry_int(e, "dead_deliveries"), "dead_at_ms",
                     (json_int_t)entry_int(e, "dead_at_ms"), "dead_at", at);
}

static void list_print_json(const dead_ctx *d, const redisReply *r, long long total)
{
    json_t *entries = json_array(), *doc;

    for (size_t i = 0; i < r->elements; i++)
        json_array_append_new(entries, list_json_entry(r->element[i]));
    doc = json_pack("{s:s, s:s, s:I, s:o}", "service", d->service, "stream", d->dead, "total",
                    (json_int_t)total, "entries", entries);
    json_dumpf(doc, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(doc);
}

static void list_print_text(const dead_ctx *d, const redisReply *r, long long total)
{
    char at[40];

    printf("%s: %lld dead letter(s)%s\n", d->dead, total,
           (long long)r->elements < total ? ", oldest shown" : "");
    if (r->elements == 0)
        return;
    printf("%-20s %-34s %-7s %-24s %5s %-24s %s\n", "ENTRY", "REQUEST", "METHOD", "PATH", "DELIV",
           "DEAD AT", "REASON");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        format_ms(entry_int(e, "dead_at_ms"), at, sizeof(at));
        printf("%-20s %-34s %-7s %-24s %5lld %-24s %s\n", e->element[0]->str, entry_str(e, "id"),
               entry_str(e, "method"), entry_str(e, "path"),
               (long long)entry_int(e, "dead_deliveries"), at, entry_str(e, "dead_reason"));
    }
}

static int dead_list(dead_ctx *d, long count, int json, char *err)
{
    char n[24];
    redisReply *r, *len;
    long long total;

    snprintf(n, sizeof(n), "%ld", count);
    if ((len = bgctl_command(d->x, err, "XLEN %s", d->dead)) == NULL)
        return BG_ERR;
    total = len->type == REDIS_REPLY_INTEGER ? len->integer : 0;
    bg_bus_reply_free(len);
    if ((r = dead_range(d, "-", "+", n, err)) == NULL)
        return BG_ERR;
    if (json)
        list_print_json(d, r, total);
    else
        list_print_text(d, r, total);
    bg_bus_reply_free(r);
    return BG_OK;
}

/* ---- show ---- */

/* Printable bytes as they are, others as \xNN; long values cut with their length. */
static void show_value(const redisReply *v)
{
    size_t n = v->len < DEAD_SHOW_VALUE_MAX ? v->len : DEAD_SHOW_VALUE_MAX;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v->str[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    if (n < v->len)
        printf("... (%zu bytes)", v->len);
    putchar('\n');
}

static int dead_show(dead_ctx *d, const char *id, char *err)
{
    redisReply *r = dead_one(d, id, err);
    const redisReply *kv;

    if (r == NULL)
        return BG_ERR;
    kv = r->element[0]->element[1];
    printf("%-16s %s\n", "entry", r->element[0]->element[0]->str);
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        printf("%-16s ", kv->element[i]->str);
        show_value(kv->element[i + 1]);
    }
    bg_bus_reply_free(r);
    return BG_OK;
}

/* ---- replay ---- */

typedef struct replay_args {
    const char *argv[4 + 2 * BG_FRAME_FIELDS_MAX + 4];
    size_t lens[4 + 2 * BG_FRAME_FIELDS_MAX + 4];
    char deadline[24], ts[24];
    int argc;
} replay_args;

static void args_push(replay_args *a, const char *s, size_t len)
{
    a->argv[a->argc] = s;
    a->lens[a->argc++] = len;
}

/* The same time budget from now on: deadline - ts of the original, else the gateway's
 * request_timeout (a frame without ts). */
static void replay_times(const bgctl *x, const redisReply *e, replay_args *a)
{
    int64_t now = bg_wall_ms(), deadline = entry_int(e, "deadline"), ts = entry_int(e, "ts");
    int64_t budget = ts > 0 && deadline > ts ? deadline - ts : x->cfg.gateway.request_timeout_ms;

    snprintf(a->deadline, sizeof(a->deadline), "%" PRId64, now + budget);
    snprintf(a->ts, sizeof(a->ts), "%" PRId64, now);
}

/* EVAL script 2 stream dead id maxlen, then the REQUEST's own fields (dead_* dropped,
 * deadline and ts renewed). */
static int replay_build(dead_ctx *d, const redisReply *e, char *maxlen, replay_args *a, char *err)
{
    const redisReply *kv = e->element[1];

    a->argc = 0;
    args_push(a, "EVAL", 4);
    args_push(a, replay_lua, strlen(replay_lua));
    args_push(a, "2", 1);
    args_push(a, d->stream, strlen(d->stream));
    args_push(a, d->dead, strlen(d->dead));
    args_push(a, e->element[0]->str, e->element[0]->len);
    args_push(a, maxlen, strlen(maxlen));
    replay_times(d->x, e, a);
    args_push(a, "ts", 2); /* the original's is dropped below */
    args_push(a, a->ts, strlen(a->ts));
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (strncmp(k->str, DEAD_PREFIX, strlen(DEAD_PREFIX)) == 0 || strcmp(k->str, "ts") == 0)
            continue;
        if ((size_t)a->argc + 2 > BG_ARRAY_LEN(a->argv)) {
            bg_set_error(err, "dead letter %s has too many fields", e->element[0]->str);
            return BG_ERR;
        }
        args_push(a, k->str, k->len);
        if (strcmp(k->str, "deadline") == 0)
            args_push(a, a->deadline, strlen(a->deadline));
        else
            args_push(a, v->str, v->len);
    }
    return BG_OK;
}

/* Replays one entry of an XRANGE reply; prints the new id. */
static int replay_entry(dead_ctx *d, const redisReply *e, char *err)
{
    char maxlen[24], why[BG_ERR_LEN] = "";
    replay_args *a = malloc(sizeof(*a));
    redisReply *r = NULL;
    int rc = BG_ERR;

    snprintf(maxlen, sizeof(maxlen), "%zu", d->x->cfg.messaging.stream_maxlen);
    if (a == NULL) {
        bg_set_error(err, "out of memory");
        goto cleanup;
    }
    if (replay_build(d, e, maxlen, a, err) != BG_OK)
        goto cleanup;
    r = bg_bus_command_argv(d->x->bus, a->argc, a->argv, a->lens, why);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "replaying %s: %s", e->element[0]->str, r != NULL ? r->str : why);
        goto cleanup;
    }
    if (r->type != REDIS_REPLY_STRING) {
        bg_set_error(err, "no dead letter %s in %s (replayed or purged meanwhile)",
                     e->element[0]->str, d->dead);
        goto cleanup;
    }
    printf("replayed %s as %s on %s\n", e->element[0]->str, r->str, d->stream);
    rc = BG_OK;
cleanup:
    if (r != NULL)
        bg_bus_reply_free(r);
    free(a);
    return rc;
}

static int replay_one(dead_ctx *d, const char *id, char *err)
{
    redisReply *r = dead_one(d, id, err);
    int rc;

    if (r == NULL)
        return BG_ERR;
    rc = replay_entry(d, r->element[0], err);
    bg_bus_reply_free(r);
    return rc;
}

/* In chunks, each after the last id seen: an entry that fails is not tried again. */
static int replay_all(dead_ctx *d, char *err)
{
    char start[BG_KEY_MAX] = "-";
    redisReply *r;
    size_t done = 0;

    for (;;) {
        if ((r = dead_range(d, start, "+", DEAD_REPLAY_CHUNK, err)) == NULL)
            return BG_ERR;
        if (r->elements == 0)
            break;
        for (size_t i = 0; i < r->elements; i++) {
            if (replay_entry(d, r->element[i], err) != BG_OK) {
                bg_bus_reply_free(r);
                return BG_ERR;
            }
            done++;
        }
        snprintf(start, sizeof(start), "(%s", r->element[r->elements - 1]->element[0]->str);
        bg_bus_reply_free(r);
    }
    bg_bus_reply_free(r);
    printf("replayed %zu dead letter(s) to %s\n", done, d->stream);
    return BG_OK;
}

/* ---- purge ---- */

/* An integer command's answer; -1 with err set on failure. */
static long long int_command(dead_ctx *d, char *err, const char *cmd, const char *arg)
{
    redisReply *r = arg != NULL ? bgctl_command(d->x, err, "%s %s %s", cmd, d->dead, arg)
                                : bgctl_command(d->x, err, "%s %s", cmd, d->dead);
    long long n;

    if (r == NULL)
        return -1;
    n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    bg_bus_reply_free(r);
    return n;
}

static int purge_one(dead_ctx *d, const char *id, char *err)
{
    long long n = int_command(d, err, "XDEL", id);

    if (n < 0)
        return BG_ERR;
    if (n == 0) {
        bg_set_error(err, "no dead letter %s in %s", id, d->dead);
        return BG_ERR;
    }
    printf("purged %s from %s\n", id, d->dead);
    return BG_OK;
}

/* The stream goes as a whole (DEL): its length just before is what is reported. */
static int purge_all(dead_ctx *d, char *err)
{
    long long n = int_command(d, err, "XLEN", NULL);

    if (n < 0 || int_command(d, err, "DEL", NULL) < 0)
        return BG_ERR;
    printf("purged %lld dead letter(s) from %s\n", n, d->dead);
    return BG_OK;
}

/* ---- arguments ---- */

typedef struct dead_args {
    const char *sub, *service, *id;
    int all, json;
    long count;
} dead_args;

static int parse_count(const char *s, long *out)
{
    char *end;
    long n = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || n < 1 || n > DEAD_LIST_MAX)
        return BG_ERR;
    *out = n;
    return BG_OK;
}

/* Options after SERVICE; which ones a subcommand takes is checked by dead_args_check. */
static int dead_args_parse(int argc, char **argv, dead_args *a)
{
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            a->json = 1;
        else if (strcmp(argv[i], "--all") == 0)
            a->all = 1;
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            if (parse_count(argv[++i], &a->count) != BG_OK)
                return usage_error("--count takes 1..100000");
        } else if (argv[i][0] != '-' && a->id == NULL) {
            a->id = argv[i];
        } else {
            bgctl_fail("dead %s: unknown argument '%s' (usage: " DEAD_USAGE ")", a->sub, argv[i]);
            return BGCTL_EXIT_USAGE;
        }
    }
    return BGCTL_EXIT_OK;
}

static int dead_args_check(const dead_args *a)
{
    int is_list = strcmp(a->sub, "list") == 0, is_show = strcmp(a->sub, "show") == 0;

    if (!is_list && (a->json || a->count))
        return usage_error("--json and --count are for dead list");
    if (is_list && (a->id != NULL || a->all))
        return usage_error("dead list takes no ENTRY_ID or --all");
    if (is_show && (a->id == NULL || a->all))
        return usage_error("dead show takes one ENTRY_ID");
    if (!is_list && !is_show && (a->id != NULL) == (a->all != 0))
        return usage_error("give ENTRY_ID or --all");
    if (a->id != NULL && !entry_id_ok(a->id)) {
        bgctl_fail("dead %s: '%s' is not a stream entry id (like 1700000000000-0)", a->sub, a->id);
        return BGCTL_EXIT_USAGE;
    }
    return BGCTL_EXIT_OK;
}

static int dead_run(dead_ctx *d, const dead_args *a, char *err)
{
    if (strcmp(a->sub, "list") == 0)
        return dead_list(d, a->count ? a->count : DEAD_LIST_DEFAULT, a->json, err);
    if (strcmp(a->sub, "show") == 0)
        return dead_show(d, a->id, err);
    if (strcmp(a->sub, "replay") == 0)
        return a->all ? replay_all(d, err) : replay_one(d, a->id, err);
    return a->all ? purge_all(d, err) : purge_one(d, a->id, err);
}

int bgctl_cmd_dead(bgctl *x, int argc, char **argv)
{
    static const char *const subs[] = {"list", "show", "replay", "purge"};
    dead_args a = {0};
    char err[BG_ERR_LEN] = "";
    dead_ctx d;
    int rc, known = 0;

    if (argc < 3)
        return usage_error(argc < 2 ? "missing subcommand" : "missing SERVICE");
    a.sub = argv[1];
    a.service = argv[2];
    for (size_t i = 0; i < BG_ARRAY_LEN(subs); i++)
        known |= strcmp(a.sub, subs[i]) == 0;
    if (!known)
        return usage_error("unknown subcommand");
    if ((rc = dead_args_parse(argc, argv, &a)) != BGCTL_EXIT_OK ||
        (rc = dead_args_check(&a)) != BGCTL_EXIT_OK)
        return rc;
    memset(&d, 0, sizeof(d));
    if (dead_open(&d, x, a.service, err) != BG_OK || dead_run(&d, &a, err) != BG_OK) {
        if (err[0] != '\0') /* bgctl_connect printed its own */
            bgctl_fail("dead %s: %s", a.sub, err);
        return BGCTL_EXIT_FAIL;
    }
    return fflush(stdout) == 0 ? BGCTL_EXIT_OK : BGCTL_EXIT_FAIL;
}
