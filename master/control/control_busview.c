/* control_busview.c: what the master tells workers about the bus: warm-up after the startup
 * resync, and each service's request backlog, sampled with one script call per service (plus
 * an XINFO STREAM of its dead letters) that also trims what was acknowledged (never an unread
 * or pending request). */
#include "control_int.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"
#include "busgate/core/text.h"

/* Samples and trims one request stream. KEYS: the request stream only (its dead-letter
 * stream is read by a command of its own: a script naming both would be refused with
 * TRYAGAIN for as long as a slot migration has moved one and not the other, and the
 * backlog estimate would go stale meanwhile). ARGV: stream_maxlen (0 = never trim), the
 * most unread entries counted when Valkey cannot say a group's lag. Returns {lag,
 * pending, consumers, groups, 0, trimmed, oldest age ms}. MINID keeps every entry at or
 * after the oldest one some group
 * still needs (its oldest pending entry, or its last delivered one): nothing unread or
 * pending goes. The oldest age is that of the oldest request still waiting or pending
 * (the oldest pending id of a group, or the first entry after its last delivered one),
 * from the time in its id (the gateway adds with "*") to the server's TIME: one clock. */
static const char sample_lua[] =
    "local function f(t, k) for i = 1, #t, 2 do if t[i] == k then return t[i + 1] end end end\n"
    "local function lt(a, b)\n"
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "  if am ~= bm then return am < bm end\n"
    "  return as < bs\n"
    "end\n"
    "local function ms(id) return tonumber(string.match(id, '^(%d+)-')) end\n"
    "local oldest = nil\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, 0, 0, 0, 0, 0} end\n"
    "local groups = redis.call('XINFO', 'GROUPS', KEYS[1])\n"
    "local lag, pending, consumers, keep = 0, 0, 0, nil\n"
    "for _, g in ipairs(groups) do\n"
    "  local last, gp, gl = f(g, 'last-delivered-id'), f(g, 'pending'), f(g, 'lag')\n"
    "  pending = pending + gp\n"
    "  consumers = consumers + f(g, 'consumers')\n"
    "  if not gl then\n"
    "    gl = #redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', ARGV[2])\n"
    "  end\n"
    "  if gl > lag then lag = gl end\n"
    "  if gl > 0 then\n"
    "    local u = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)\n"
    "    if #u > 0 and (oldest == nil or ms(u[1][1]) < oldest) then oldest = ms(u[1][1]) end\n"
    "  end\n"
    "  local need = last\n"
    "  if gp > 0 then\n"
    "    local p = redis.call('XPENDING', KEYS[1], f(g, 'name'))\n"
    "    if lt(p[2], need) then need = p[2] end\n"
    "    if oldest == nil or ms(p[2]) < oldest then oldest = ms(p[2]) end\n"
    "  end\n"
    "  if keep == nil or lt(need, keep) then keep = need end\n"
    "end\n"
    "local trimmed, maxlen = 0, tonumber(ARGV[1])\n"
    "if keep ~= nil and maxlen > 0 and redis.call('XLEN', KEYS[1]) > maxlen then\n"
    "  trimmed = redis.call('XTRIM', KEYS[1], 'MINID', '~', keep)\n"
    "end\n"
    "local age = 0\n"
    "if oldest ~= nil then\n"
    "  local t = redis.call('TIME')\n"
    "  age = math.max(0, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - oldest)\n"
    "end\n"
    "return {lag, pending, consumers, #groups, 0, trimmed, age}\n";

typedef struct sample_call {
    bg_control *c;
    int evaled;       /* the body was sent (after NOSCRIPT): no second retry */
    int waiting;      /* replies still to come: the script's and the dead letters' */
    int ok;           /* v holds the script's answer */
    int dead_unknown; /* the dead-letter count was not read: keep the last one */
    int64_t added_at; /* the workers' REQUEST count before the sample */
    bg_bv_sample v;
    char service[BG_NAME_MAX + 1];
    char key[BG_KEY_MAX + 1], dead[BG_KEY_MAX + 1];
} sample_call;

static void ctl_sample_send(sample_call *s);

static void ctl_sample_sha(bg_control *c)
{
    unsigned char md[SHA_DIGEST_LENGTH];

    SHA1((const unsigned char *)sample_lua, sizeof(sample_lua) - 1, md);
    bg_hex_encode(md, sizeof(md), c->sample_sha);
}

/* A dead-letter stream that grew since the last sample counts in busgate_dead_letters_total;
 * the first sample after start is the baseline (what came before was counted before). */
static void ctl_sample_dead(bg_control *c, const char *service, uint64_t dead_added)
{
    bg_bv_sample prev;

    if (c->metrics == NULL || bg_bv_get(c->busview, service, &prev) != BG_OK)
        return;
    if (dead_added > prev.dead_added)
        bg_metrics_count(c->metrics, BG_METRICS_MASTER_SLOT, BG_METRIC_DEAD_LETTERS,
                         dead_added - prev.dead_added);
}

static void ctl_sample_store(sample_call *s, const redisReply *r)
{
    bg_bv_sample *v = &s->v;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 7) {
        bg_warn("control: backlog sample of '%s': unexpected reply", s->service);
        return;
    }
    for (size_t i = 0; i < 7; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return;
    v->lag = r->element[0]->integer;
    v->pending = r->element[1]->integer;
    v->consumers = r->element[2]->integer;
    v->groups = r->element[3]->integer;
    v->oldest_ms = r->element[6]->integer;
    v->sampled_ms = bg_mono_ms();
    v->added_at = s->added_at;
    s->ok = 1;
    if (r->element[5]->integer > 0)
        bg_debug("control: trimmed %lld acknowledged requests from %s",
                 (long long)r->element[5]->integer, s->key);
}

/* Both replies are in: the workers see the sample. */
static void ctl_sample_done(sample_call *s)
{
    if (--s->waiting > 0)
        return;
    if (s->ok) {
        bg_bv_sample prev;
        if (s->dead_unknown && bg_bv_get(s->c->busview, s->service, &prev) == BG_OK)
            s->v.dead_added = prev.dead_added;
        ctl_sample_dead(s->c, s->service, s->v.dead_added);
        if (bg_bv_put(s->c->busview, s->service, &s->v) != BG_OK)
            bg_debug("control: no room to show the backlog of '%s' to workers", s->service);
    }
    s->c->samples_inflight--;
    free(s);
}

/* XINFO STREAM of the dead-letter stream: its entries-added ("no such key": none yet). */
static void ctl_on_dead(bg_abus *b, redisReply *r, void *arg)
{
    sample_call *s = arg;

    (void)b;
    if (r == NULL || (r->type == REDIS_REPLY_ERROR && strstr(r->str, "no such key") == NULL))
        s->dead_unknown = 1;
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[i]->str, "entries-added") == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_INTEGER)
            s->v.dead_added = (uint64_t)r->element[i + 1]->integer;
    ctl_sample_done(s);
}

static void ctl_on_sample(bg_abus *b, redisReply *r, void *arg)
{
    sample_call *s = arg;

    (void)b;
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
        !s->evaled && !s->c->stopping) {
        s->evaled = 1;
        ctl_sample_send(s); /* the script cache is gone (restart, SCRIPT FLUSH) */
        return;
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        bg_warn("control: backlog sample of %s failed: %s", s->key, r->str);
    else if (r != NULL)
        ctl_sample_store(s, r);
    ctl_sample_done(s);
}

static void ctl_sample_send(sample_call *s)
{
    bg_control *c = s->c;
    char maxlen[24], count[24];
    const char *argv[] = {s->evaled ? "EVAL" : "EVALSHA",
                          s->evaled ? sample_lua : c->sample_sha,
                          "1",
                          s->key,
                          maxlen,
                          count};

    snprintf(maxlen, sizeof(maxlen), "%zu", c->cfg.messaging.stream_maxlen);
    snprintf(count, sizeof(count), "%zu",
             c->cfg.messaging.stream_maxlen > 0 ? c->cfg.messaging.stream_maxlen + 1 : 100001);
    if (bg_abus_command_argv(c->wr, ctl_on_sample, s, 6, argv, NULL) != BG_OK)
        ctl_sample_done(s);
}

static void ctl_sample_service(bg_control *c, const char *service)
{
    sample_call *s = calloc(1, sizeof(*s));
    char err[BG_ERR_LEN];

    if (s == NULL)
        return;
    s->c = c;
    s->added_at = bg_bv_added(c->busview, service);
    snprintf(s->service, sizeof(s->service), "%s", service);
    if (bg_key_request_stream(&c->names, service, s->key, sizeof(s->key), err) != BG_OK ||
        bg_key_dead_letter(s->key, s->dead, sizeof(s->dead), err) != BG_OK) {
        bg_warn("control: no backlog sample of '%s': %s", service, err);
        free(s);
        return;
    }
    c->samples_inflight++;
    s->waiting = 2;
    if (bg_abus_command(c->wr, ctl_on_dead, s, "XINFO STREAM %s", s->dead) != BG_OK)
        ctl_sample_done(s);
    ctl_sample_send(s);
    if (c->breaker != NULL && bg_brk_ensure(c->breaker, service) != BG_OK)
        bg_debug("control: no room for a circuit breaker of '%s'", service);
}

static int ctl_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One call per distinct service of the registry. */
static void ctl_sample_all(bg_control *c)
{
    size_t n = bg_reg_count(c->reg), k = 0;
    const char **names = calloc(n > 0 ? n : 1, sizeof(*names));

    if (names == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        names[i] = bg_reg_at(c->reg, i)->service;
    qsort(names, n, sizeof(*names), ctl_name_cmp);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0) {
            ctl_sample_service(c, names[i]);
            k++;
        }
    free(names);
    (void)k;
}

/* The startup resync was sent: once its answers had their time, unknown paths are 404. */
void bg_control_busview_resync_sent(bg_control *c)
{
    if (c->warm_due_ms == 0)
        c->warm_due_ms = bg_mono_ms() + BG_CONTROL_WARM_MS;
}

int64_t bg_control_on_sample(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_control *c = arg;

    (void)loop;
    (void)t;
    if (c->busview == NULL)
        return BG_CONTROL_SAMPLE_MS;
    if (c->warm_due_ms != 0 && bg_mono_ms() >= c->warm_due_ms && !bg_bv_warm(c->busview)) {
        bg_bv_set_warm(c->busview);
        bg_info("control: startup resync answered; routing table complete");
    }
    /* A breaker moved: busgatectl state shows it soon, not at the next heartbeat. */
    if (bg_brk_changes(c->breaker) != c->brk_changes) {
        c->brk_changes = bg_brk_changes(c->breaker);
        bg_control_state_request(c);
    }
    /* A round still unanswered (a slow server) is not stacked up on. */
    if (c->wr != NULL && bg_abus_connected(c->wr) && c->samples_inflight == 0)
        ctl_sample_all(c);
    return BG_CONTROL_SAMPLE_MS;
}

void bg_control_set_busview(bg_control *c, bg_busview *v)
{
    c->busview = v;
    if (c->sample_sha[0] == '\0')
        ctl_sample_sha(c);
}

void bg_control_set_breaker(bg_control *c, bg_breaker *b)
{
    c->breaker = b;
}
