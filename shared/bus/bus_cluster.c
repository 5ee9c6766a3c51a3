/* bus_cluster.c: the blocking client on a Valkey Cluster: a slot map, one plain bg_bus per
 * primary, commands routed by their key's slot, MOVED and ASK followed (bus_cluster.h). */
#include "bus_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busgate/core/log.h"

/* Redirections and retries one command may take: a slot moves at most once or twice while
 * a command is on its way; more means the cluster is being reshaped faster than we follow. */
#define CLUSTER_HOPS 8
#define CLUSTER_TRYAGAIN_MS 50

typedef struct cluster_conn {
    bg_slot_node at;
    bg_bus *bus;
} cluster_conn;

struct bus_cluster {
    const bg_bus_opts *opts;
    bg_slot_map map;
    cluster_conn *conn; /* every node we opened a connection to, primary or not (any more) */
    size_t nconn;
    int reconnected;
    redisReply **queued; /* replies of "pipelined" commands, run one by one */
    size_t nqueued, next_queued;
};

static void cluster_on_reconnect(bg_bus *bus, void *arg)
{
    bus_cluster *c = arg;

    (void)bus;
    c->reconnected = 1;
}

static cluster_conn *cluster_find(bus_cluster *c, const char *host, int port)
{
    for (size_t i = 0; i < c->nconn; i++)
        if (c->conn[i].at.port == port && strcmp(c->conn[i].at.host, host) == 0)
            return &c->conn[i];
    return NULL;
}

/* The connection to host:port, opened now when there is none yet. */
static bg_bus *cluster_conn_to(bus_cluster *c, const char *host, int port, char *err)
{
    cluster_conn *cc = cluster_find(c, host, port), *grown;
    bg_bus_opts o = *c->opts;
    bg_bus *bus;

    if (cc != NULL)
        return cc->bus;
    o.addr.cluster = 0;
    o.addr.nseeds = 0;
    snprintf(o.addr.host, sizeof(o.addr.host), "%s", host);
    o.addr.port = port;
    if ((bus = bg_bus_connect(&o, err)) == NULL)
        return NULL;
    grown = realloc(c->conn, (c->nconn + 1) * sizeof(*grown));
    if (grown == NULL) {
        bg_bus_free(bus);
        bg_set_error(err, "cluster: out of memory");
        return NULL;
    }
    c->conn = grown;
    cc = &c->conn[c->nconn++];
    snprintf(cc->at.host, sizeof(cc->at.host), "%s", host);
    cc->at.port = port;
    cc->bus = bus;
    bg_bus_set_reconnect_hook(bus, cluster_on_reconnect, c);
    bg_bus_set_fail_fast(bus);
    return bus;
}

/* CLUSTER SLOTS from one node into c->map; BG_ERR leaves the map as it was. */
static int cluster_map_from(bus_cluster *c, const char *host, int port, char *err)
{
    bg_bus *bus = cluster_conn_to(c, host, port, err);
    redisReply *r;
    bg_slot_map m;
    int rc;

    if (bus == NULL)
        return BG_ERR;
    r = bg_bus_run_formatted(bus, "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n", 28, err);
    if (r == NULL)
        return BG_ERR;
    rc = bg_slot_map_from_slots(&m, r, host, err);
    bg_bus_reply_free(r);
    if (rc != BG_OK)
        return BG_ERR;
    if (m.nnodes == 0) {
        bg_slot_map_free(&m);
        bg_set_error(err, "cluster %s:%d: no slot is assigned", host, port);
        return BG_ERR;
    }
    bg_slot_map_free(&c->map);
    c->map = m;
    return BG_OK;
}

/* Asks the primaries we know first (they follow the cluster), then the seeds. */
static int cluster_refresh(bus_cluster *c, char *err)
{
    bg_slot_node *known = NULL;
    size_t nknown = c->map.nnodes;
    int rc = BG_ERR;

    if (nknown > 0 && (known = malloc(nknown * sizeof(*known))) != NULL)
        memcpy(known, c->map.nodes, nknown * sizeof(*known));
    for (size_t i = 0; known != NULL && i < nknown && rc != BG_OK; i++)
        rc = cluster_map_from(c, known[i].host, known[i].port, err);
    for (int i = 0; i < c->opts->addr.nseeds && rc != BG_OK; i++)
        rc = cluster_map_from(c, c->opts->addr.seeds[i].host, c->opts->addr.seeds[i].port, err);
    free(known);
    return rc;
}

bus_cluster *bg_bus_cluster_new(const bg_bus_opts *opts, char *err)
{
    bus_cluster *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        bg_set_error(err, "cluster: out of memory");
        return NULL;
    }
    c->opts = opts;
    bg_slot_map_free(&c->map); /* every slot unowned */
    if (cluster_refresh(c, err) != BG_OK) {
        bg_bus_cluster_free(c);
        return NULL;
    }
    /* A primary that is down now is not a reason to refuse the others: its commands fail
     * (and try to connect again) until it is back. */
    for (size_t i = 0; i < c->map.nnodes; i++) {
        char why[BG_ERR_LEN];
        if (cluster_conn_to(c, c->map.nodes[i].host, c->map.nodes[i].port, why) == NULL)
            bg_warn("valkey cluster: %s", why);
    }
    c->reconnected = 0;
    return c;
}

/* Replies appended and not read (the caller gave up on them). */
static void cluster_drop_queued(bus_cluster *c)
{
    for (size_t i = c->next_queued; i < c->nqueued; i++)
        bg_bus_reply_free(c->queued[i]);
    free(c->queued);
    c->queued = NULL;
    c->nqueued = c->next_queued = 0;
}

void bg_bus_cluster_free(bus_cluster *c)
{
    if (c == NULL)
        return;
    cluster_drop_queued(c);
    for (size_t i = 0; i < c->nconn; i++)
        bg_bus_free(c->conn[i].bus);
    free(c->conn);
    bg_slot_map_free(&c->map);
    free(c);
}

/* Where a command goes: the slot's owner, or the first primary for a keyless one. */
static const bg_slot_node *cluster_target(const bus_cluster *c, int keyed, uint16_t slot)
{
    if (!keyed)
        return c->map.nnodes > 0 ? &c->map.nodes[0] : NULL;
    return bg_slot_map_node(&c->map, slot);
}

static int cluster_reply_is(const redisReply *r, const char *prefix)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

static void cluster_pause(void)
{
    struct timespec ts = {0, CLUSTER_TRYAGAIN_MS * 1000000L};

    nanosleep(&ts, NULL);
}

/* ASKING then the command, back to back on one connection: the node serves the slot it
 * is importing to this connection's next command only. */
static redisReply *cluster_asking(bg_bus *bus, const char *cmd, size_t len, char *err)
{
    redisReply *r = bg_bus_run_formatted(bus, "*1\r\n$6\r\nASKING\r\n", 16, err);

    if (r == NULL)
        return NULL;
    bg_bus_reply_free(r);
    return bg_bus_run_formatted(bus, cmd, len, err);
}

/* After a failed round trip: 1 when the slot now lives elsewhere, so that a retry has a
 * chance; the node that did not answer keeps its slots otherwise (no replica took over). */
static int cluster_moved_away(bus_cluster *c, int keyed, uint16_t slot, const bg_slot_node *was)
{
    char why[BG_ERR_LEN];
    const bg_slot_node *now;

    if (cluster_refresh(c, why) != BG_OK || (now = cluster_target(c, keyed, slot)) == NULL)
        return 0;
    return now->port != was->port || strcmp(now->host, was->host) != 0;
}

/* One hop: the command on node to (after ASKING when ask). */
static redisReply *cluster_hop(bus_cluster *c, const bg_slot_node *to, int ask, const char *cmd,
                               size_t len, char *err)
{
    bg_bus *bus = cluster_conn_to(c, to->host, to->port, err);

    if (bus == NULL)
        return NULL;
    return ask ? cluster_asking(bus, cmd, len, err) : bg_bus_run_formatted(bus, cmd, len, err);
}

redisReply *bg_bus_cluster_run(bus_cluster *c, const char *cmd, size_t len, char *err)
{
    uint16_t slot = 0;
    int keyed = bg_slot_of_command(cmd, len, &slot) > 0, ask = 0, direct = 0;
    bg_slot_node to;
    bg_slot_redirect rd;
    redisReply *r;

    for (int hop = 0; hop < CLUSTER_HOPS; hop++) {
        if (!ask && !direct) {
            const bg_slot_node *t = cluster_target(c, keyed, slot);
            if (t == NULL) {
                bg_set_error(err, "cluster: no node serves slot %u", slot);
                if (cluster_refresh(c, err) != BG_OK)
                    return NULL;
                continue;
            }
            to = *t;
        }
        r = cluster_hop(c, &to, ask, cmd, len, err);
        ask = direct = 0;
        if (r == NULL) {
            if (!cluster_moved_away(c, keyed, slot, &to))
                return NULL;
            continue;
        }
        if (r->type != REDIS_REPLY_ERROR)
            return r;
        if (bg_slot_redirect_parse(r->str, r->len, &rd) == BG_OK) {
            to = rd.to; /* go where it says, even when a map read now still lags behind */
            ask = rd.ask;
            direct = !rd.ask;
            if (!rd.ask)
                (void)cluster_refresh(c, err); /* MOVED: our map is stale */
            bg_bus_reply_free(r);
            continue;
        }
        if ((cluster_reply_is(r, "TRYAGAIN") || cluster_reply_is(r, "CLUSTERDOWN")) &&
            hop + 1 < CLUSTER_HOPS) {
            bg_bus_reply_free(r); /* a multi-key command mid-migration, or a node failing */
            cluster_pause();
            (void)cluster_refresh(c, err);
            continue;
        }
        return r;
    }
    bg_set_error(err, "cluster: slot %u still redirected after %d hops", slot, CLUSTER_HOPS);
    return NULL;
}

int bg_bus_cluster_reconnect(bus_cluster *c, char *err)
{
    int rc;

    cluster_drop_queued(c);
    rc = cluster_refresh(c, err);

    for (size_t i = 0; rc == BG_OK && i < c->map.nnodes; i++) {
        bg_bus *bus = cluster_conn_to(c, c->map.nodes[i].host, c->map.nodes[i].port, err);
        if (bus == NULL || (bg_bus_is_broken(bus) && bg_bus_reconnect(bus, err) != BG_OK))
            rc = BG_ERR;
    }
    return rc;
}

int bg_bus_cluster_take_reconnected(bus_cluster *c)
{
    int was = c->reconnected;

    c->reconnected = 0;
    return was;
}

int bg_bus_cluster_broken(const bus_cluster *c)
{
    for (size_t i = 0; i < c->map.nnodes; i++) {
        const bg_slot_node *n = &c->map.nodes[i];
        cluster_conn *cc = cluster_find((bus_cluster *)c, n->host, n->port);
        if (cc == NULL || bg_bus_is_broken(cc->bus))
            return 1;
    }
    return c->map.nnodes == 0;
}

size_t bg_bus_cluster_node_count(const bus_cluster *c)
{
    return c->map.nnodes;
}

bg_bus *bg_bus_cluster_node(bus_cluster *c, size_t i, char *err)
{
    if (i >= c->map.nnodes) {
        bg_set_error(err, "cluster: no primary %zu", i);
        return NULL;
    }
    return cluster_conn_to(c, c->map.nodes[i].host, c->map.nodes[i].port, err);
}

void bg_bus_cluster_set_command_timeout(bus_cluster *c, int64_t ms)
{
    for (size_t i = 0; i < c->nconn; i++)
        bg_bus_set_command_timeout(c->conn[i].bus, ms);
}

void bg_bus_cluster_close_on_exec(bus_cluster *c)
{
    for (size_t i = 0; i < c->nconn; i++)
        bg_bus_close_on_exec(c->conn[i].bus);
}

/* One node's CLUSTER SLOTS on a connection of its own. */
static int cluster_fetch_one(const bg_bus_opts *opts, const char *host, int port, bg_slot_map *out,
                             char *err)
{
    bg_bus_opts o = *opts;
    bg_bus *bus;
    redisReply *r;
    int rc = BG_ERR;

    o.addr.cluster = 0;
    o.addr.nseeds = 0;
    o.client_name = NULL;
    snprintf(o.addr.host, sizeof(o.addr.host), "%s", host);
    o.addr.port = port;
    if ((bus = bg_bus_connect(&o, err)) == NULL)
        return BG_ERR;
    r = bg_bus_run_formatted(bus, "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n", 28, err);
    if (r != NULL && (rc = bg_slot_map_from_slots(out, r, host, err)) == BG_OK &&
        out->nnodes == 0) {
        bg_slot_map_free(out);
        bg_set_error(err, "cluster %s:%d: no slot is assigned", host, port);
        rc = BG_ERR;
    }
    if (r != NULL)
        bg_bus_reply_free(r);
    bg_bus_free(bus);
    return rc;
}

int bg_bus_cluster_fetch_map(const bg_bus_opts *opts, const bg_slot_map *known, bg_slot_map *out,
                             char *err)
{
    for (size_t i = 0; known != NULL && i < known->nnodes; i++)
        if (cluster_fetch_one(opts, known->nodes[i].host, known->nodes[i].port, out, err) == BG_OK)
            return BG_OK;
    for (int i = 0; i < opts->addr.nseeds; i++)
        if (cluster_fetch_one(opts, opts->addr.seeds[i].host, opts->addr.seeds[i].port, out, err) ==
            BG_OK)
            return BG_OK;
    return BG_ERR;
}

/* An error reply made here: "-<text>" as if the server had said it. */
static redisReply *cluster_error_reply(const char *text)
{
    char line[BG_ERR_LEN + 48];
    redisReader *rd = redisReaderCreate();
    void *r = NULL;
    int n = snprintf(line, sizeof(line), "-%.*s\r\n", BG_ERR_LEN + 40, text);

    for (char *p = line + 1; p < line + n - 2; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    if (rd == NULL)
        return NULL;
    if (redisReaderFeed(rd, line, (size_t)n) != REDIS_OK || redisReaderGetReply(rd, &r) != REDIS_OK)
        r = NULL;
    redisReaderFree(rd);
    return r;
}

int bg_bus_cluster_append(bus_cluster *c, int argc, const char **argv, const size_t *argvlen,
                          char *err)
{
    char *cmd = NULL, text[BG_ERR_LEN + 32];
    long long len;
    redisReply *r, **grown;

    if (c->nqueued - c->next_queued >= BG_BUS_MAX_INFLIGHT) {
        bg_set_error(err, "cluster pipeline: %d replies in flight, read some first",
                     BG_BUS_MAX_INFLIGHT);
        return BG_ERR;
    }
    if (c->next_queued == c->nqueued)
        c->next_queued = c->nqueued = 0;
    grown = realloc(c->queued, (c->nqueued + 1) * sizeof(*grown));
    if (grown == NULL || (len = redisFormatCommandArgv(&cmd, argc, argv, argvlen)) < 0) {
        if (grown != NULL)
            c->queued = grown;
        bg_set_error(err, "cluster pipeline: out of memory");
        return BG_ERR;
    }
    c->queued = grown;
    r = bg_bus_cluster_run(c, cmd, (size_t)len, err);
    redisFreeCommand(cmd);
    if (r == NULL) { /* this command's node is out of reach: its own answer says so */
        snprintf(text, sizeof(text), "CLUSTERDOWN %s", err);
        if ((r = cluster_error_reply(text)) == NULL)
            return BG_ERR;
    }
    c->queued[c->nqueued++] = r;
    return BG_OK;
}

int bg_bus_cluster_get_reply(bus_cluster *c, redisReply **reply, char *err)
{
    *reply = NULL;
    if (c->next_queued == c->nqueued) {
        bg_set_error(err, "cluster pipeline: no reply pending");
        return BG_ERR;
    }
    *reply = c->queued[c->next_queued++];
    return BG_OK;
}

size_t bg_bus_cluster_queued(const bus_cluster *c)
{
    return c->nqueued - c->next_queued;
}
