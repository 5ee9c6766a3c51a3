/* bus_async_cluster.c: the async client on a Valkey Cluster: one plain bg_abus per primary
 * (each pipelines on its own), commands routed by their key's slot, MOVED and ASK re-issued
 * here so that the caller's callback still runs exactly once (bus_async_cluster.h). */
#include "bus_async_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_cluster.h"
#include "busgate/bus/bus_slot.h"
#include "busgate/core/backoff.h"
#include "busgate/core/log.h"

#define ACL_HOPS 8 /* redirections one command may take */
#define ACL_REFRESH_MIN_MS 100
#define ACL_REFRESH_MAX_MS 5000

typedef struct acl_conn {
    bg_slot_node at;
    bg_abus *bus;
    int used; /* has carried a command of ours */
} acl_conn;

struct abus_cluster {
    bg_abus *owner;
    bg_ev *loop;
    const bg_bus_opts *opts; /* the owner's */
    bg_slot_map map;
    acl_conn *conn;
    size_t nconn;
    size_t inflight, max_inflight;
    int freeing, in_cb;
    unsigned refresh_failures;
    bg_ev_timer *refresh;
    bg_abus_state_fn *state_fn;
    void *state_arg;
    char last_error[BG_ERR_LEN];
    int last_ask_slot; /* logged once per slot in a row, not per command */
};

/* One caller's command, kept until its final reply. */
typedef struct acl_cmd {
    abus_cluster *c;
    bg_abus_reply_fn *fn;
    void *privdata;
    int keyed, hops;
    uint16_t slot;
    size_t len;
    char wire[]; /* the RESP-encoded command */
} acl_cmd;

static int acl_dispatch(abus_cluster *c, acl_cmd *k, const bg_slot_node *to, int ask);
static void acl_schedule_refresh(abus_cluster *c, int64_t ms);

static void acl_maybe_destroy(abus_cluster *c)
{
    if (!c->freeing || c->inflight > 0 || c->in_cb > 0)
        return;
    bg_slot_map_free(&c->map);
    free(c->conn);
    bg_abus_owner_destroy(c->owner);
    free(c);
}

static int acl_any_up(const abus_cluster *c)
{
    for (size_t i = 0; i < c->nconn; i++)
        if (bg_abus_connected(c->conn[i].bus))
            return 1;
    return 0;
}

static acl_conn *acl_find(abus_cluster *c, const bg_abus *b)
{
    for (size_t i = 0; i < c->nconn; i++)
        if (c->conn[i].bus == b)
            return &c->conn[i];
    return NULL;
}

/* A node's connection coming up reaches the owner's hook as 1 (consumers re-create their
 * groups and restart their reads), one going down as 0 only when it carried our commands:
 * a blocking reader learns that its own node went away, not that some other did.
 * bg_abus_connected stays 1 while any primary is up: a request for a service on a node
 * that is down fails alone (its send is refused), the others' keep being served. */
static void acl_on_child_state(bg_abus *b, int connected, void *arg)
{
    abus_cluster *c = arg;
    acl_conn *cc = acl_find(c, b);

    if (!connected) {
        snprintf(c->last_error, sizeof(c->last_error), "%s", bg_abus_last_error(b));
        acl_schedule_refresh(c, 0); /* its slots may have gone to another node */
    }
    if (c->state_fn == NULL || c->freeing || (!connected && (cc == NULL || !cc->used)))
        return;
    c->in_cb++;
    c->state_fn(c->owner, connected, c->state_arg);
    c->in_cb--;
    acl_maybe_destroy(c);
}

static acl_conn *acl_conn_to(abus_cluster *c, const char *host, int port)
{
    bg_bus_opts o = *c->opts;
    char err[BG_ERR_LEN];
    acl_conn *grown;
    bg_abus *bus;

    for (size_t i = 0; i < c->nconn; i++)
        if (c->conn[i].at.port == port && strcmp(c->conn[i].at.host, host) == 0)
            return &c->conn[i];
    o.addr.cluster = 0;
    o.addr.nseeds = 0;
    snprintf(o.addr.host, sizeof(o.addr.host), "%s", host);
    o.addr.port = port;
    grown = realloc(c->conn, (c->nconn + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    c->conn = grown;
    if ((bus = bg_abus_new(c->loop, &o, err)) == NULL) {
        bg_error("valkey cluster node %s:%d: %s", host, port, err);
        return NULL;
    }
    if (c->max_inflight > 0)
        bg_abus_set_max_inflight(bus, c->max_inflight);
    bg_abus_set_state_hook(bus, acl_on_child_state, c);
    snprintf(c->conn[c->nconn].at.host, sizeof(c->conn[c->nconn].at.host), "%s", host);
    c->conn[c->nconn].at.port = port;
    c->conn[c->nconn].used = 0;
    c->conn[c->nconn].bus = bus;
    return &c->conn[c->nconn++];
}

/* A new map, and a connection to every primary it names. */
static int acl_refresh(abus_cluster *c)
{
    bg_slot_map m;

    if (bg_bus_cluster_fetch_map(c->opts, c->map.nnodes ? &c->map : NULL, &m, c->last_error) !=
        BG_OK) {
        bg_warn("valkey cluster: no slot map: %s", c->last_error);
        return BG_ERR;
    }
    bg_slot_map_free(&c->map);
    c->map = m;
    for (size_t i = 0; i < c->map.nnodes; i++)
        (void)acl_conn_to(c, c->map.nodes[i].host, c->map.nodes[i].port);
    return BG_OK;
}

static int64_t acl_on_refresh(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    abus_cluster *c = arg;

    (void)loop;
    (void)t;
    c->refresh = NULL;
    if (c->freeing)
        return BG_EV_NOMORE;
    if (acl_refresh(c) == BG_OK)
        c->refresh_failures = 0;
    else
        acl_schedule_refresh(
            c, bg_backoff_ms(++c->refresh_failures, ACL_REFRESH_MIN_MS, ACL_REFRESH_MAX_MS));
    return BG_EV_NOMORE;
}

/* Coalesced: one refresh pending at a time. */
static void acl_schedule_refresh(abus_cluster *c, int64_t ms)
{
    char err[BG_ERR_LEN];

    if (c->refresh != NULL || c->freeing)
        return;
    c->refresh = bg_ev_timer_add(c->loop, ms, acl_on_refresh, c, err);
    if (c->refresh == NULL)
        bg_crit("valkey cluster: cannot schedule a slot map refresh: %s", err);
}

abus_cluster *bg_abus_cluster_new(bg_abus *owner, bg_ev *loop, const bg_bus_opts *o, char *err)
{
    abus_cluster *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        bg_set_error(err, "cluster: out of memory");
        return NULL;
    }
    c->owner = owner;
    c->loop = loop;
    c->opts = o;
    c->last_ask_slot = -1;
    bg_slot_map_free(&c->map);
    if (acl_refresh(c) != BG_OK)
        acl_schedule_refresh(c, ACL_REFRESH_MIN_MS); /* like a plain bg_abus: keep trying */
    return c;
}

void bg_abus_cluster_free(abus_cluster *c)
{
    c->freeing = 1;
    bg_ev_timer_del(c->loop, c->refresh);
    c->refresh = NULL;
    c->in_cb++; /* the frees below may call back into us */
    for (size_t i = 0; i < c->nconn; i++) {
        bg_abus_set_state_hook(c->conn[i].bus, NULL, NULL);
        bg_abus_free(c->conn[i].bus);
    }
    c->nconn = 0;
    c->in_cb--;
    acl_maybe_destroy(c);
}

void bg_abus_cluster_set_state_hook(abus_cluster *c, bg_abus_state_fn *fn, void *arg)
{
    c->state_fn = fn;
    c->state_arg = arg;
}

static void acl_ignore(bg_abus *b, redisReply *reply, void *privdata)
{
    (void)b;
    (void)reply;
    (void)privdata;
}

static void acl_finish(abus_cluster *c, acl_cmd *k, redisReply *reply)
{
    c->inflight--;
    if (k->fn != NULL) {
        c->in_cb++;
        k->fn(c->owner, reply, k->privdata);
        c->in_cb--;
    }
    free(k);
    acl_maybe_destroy(c);
}

/* MOVED: the slot lives at rd->to now (a full map follows soon); ASK: this once. */
static int acl_redirect(abus_cluster *c, acl_cmd *k, const bg_slot_redirect *rd)
{
    if (++k->hops > ACL_HOPS || c->freeing)
        return BG_ERR;
    if (!rd->ask) {
        const bg_slot_node *was = bg_slot_map_node(&c->map, rd->slot);
        if (was == NULL || was->port != rd->to.port || strcmp(was->host, rd->to.host) != 0)
            bg_notice("valkey cluster: slot %u MOVED to %s:%d", rd->slot, rd->to.host, rd->to.port);
        (void)bg_slot_map_set(&c->map, rd->slot, rd->to.host, rd->to.port);
        acl_schedule_refresh(c, 0);
    } else if (c->last_ask_slot != rd->slot) {
        c->last_ask_slot = rd->slot;
        bg_notice("valkey cluster: slot %u migrating: ASK %s:%d", rd->slot, rd->to.host,
                  rd->to.port);
    }
    return acl_dispatch(c, k, &rd->to, rd->ask);
}

static void acl_on_reply(bg_abus *b, redisReply *reply, void *privdata)
{
    acl_cmd *k = privdata;
    abus_cluster *c = k->c;
    bg_slot_redirect rd;

    (void)b;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        bg_slot_redirect_parse(reply->str, reply->len, &rd) == BG_OK) {
        c->inflight--; /* acl_dispatch counts it again */
        if (acl_redirect(c, k, &rd) == BG_OK)
            return;
        c->inflight++;
        acl_finish(c, k, reply); /* hands the redirection itself over: nowhere else to go */
        return;
    }
    acl_finish(c, k, reply);
}

/* Sends k to `to` (its slot's owner when NULL), after ASKING when ask. */
static int acl_dispatch(abus_cluster *c, acl_cmd *k, const bg_slot_node *to, int ask)
{
    acl_conn *cc;

    if (to == NULL)
        to = k->keyed ? bg_slot_map_node(&c->map, k->slot)
                      : (c->map.nnodes > 0 ? &c->map.nodes[0] : NULL);
    if (to == NULL || (cc = acl_conn_to(c, to->host, to->port)) == NULL)
        return BG_ERR;
    if (ask &&
        bg_abus_send_formatted(cc->bus, acl_ignore, NULL, "*1\r\n$6\r\nASKING\r\n", 16) != BG_OK)
        return BG_ERR;
    if (bg_abus_send_formatted(cc->bus, acl_on_reply, k, k->wire, k->len) != BG_OK)
        return BG_ERR;
    cc->used = 1;
    c->inflight++;
    return BG_OK;
}

int bg_abus_cluster_send(abus_cluster *c, bg_abus_reply_fn *fn, void *privdata, const char *cmd,
                         size_t len)
{
    acl_cmd *k;

    if (c->freeing || c->inflight >= (c->max_inflight ? c->max_inflight : BG_ABUS_MAX_INFLIGHT))
        return BG_ERR;
    if ((k = malloc(sizeof(*k) + len)) == NULL)
        return BG_ERR;
    k->c = c;
    k->fn = fn;
    k->privdata = privdata;
    k->hops = 0;
    k->keyed = bg_slot_of_command(cmd, len, &k->slot) > 0;
    k->len = len;
    memcpy(k->wire, cmd, len);
    if (acl_dispatch(c, k, NULL, 0) != BG_OK) {
        free(k);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_abus_cluster_connected(const abus_cluster *c)
{
    return !c->freeing && acl_any_up(c);
}

size_t bg_abus_cluster_inflight(const abus_cluster *c)
{
    return c->inflight;
}

void bg_abus_cluster_set_max_inflight(abus_cluster *c, size_t cap)
{
    c->max_inflight = cap;
    for (size_t i = 0; i < c->nconn; i++)
        bg_abus_set_max_inflight(c->conn[i].bus, cap);
}

unsigned long bg_abus_cluster_reconnects(const abus_cluster *c)
{
    unsigned long n = 0;

    for (size_t i = 0; i < c->nconn; i++)
        n += bg_abus_reconnects(c->conn[i].bus);
    return n;
}

const char *bg_abus_cluster_last_error(const abus_cluster *c)
{
    return c->last_error;
}

void bg_abus_cluster_io_counts(const abus_cluster *c, unsigned long *writes, unsigned long *reads)
{
    *writes = *reads = 0;
    for (size_t i = 0; i < c->nconn; i++) {
        unsigned long w, r;
        bg_abus_io_counts(c->conn[i].bus, &w, &r);
        *writes += w;
        *reads += r;
    }
}
