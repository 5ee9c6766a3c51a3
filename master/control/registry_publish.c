/* registry_publish.c: copying the registry into the shared routing table; route conflict log. */
#include "registry_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"

static int reg_reserve(void **p, size_t *cap, size_t need, size_t size, char *err)
{
    void *np;

    if (need <= *cap)
        return BG_OK;
    np = realloc(*p, need * size);
    if (np == NULL) {
        bg_set_error(err, "registry: out of memory");
        return BG_ERR;
    }
    *p = np;
    *cap = need;
    return BG_OK;
}

static void reg_fill_conn(const bg_reg_conn *c, bg_rt_endpoint_in *ein, bg_rt_connection_in *out)
{
    for (size_t j = 0; j < c->nendpoints; j++)
        ein[j] = (bg_rt_endpoint_in){.method = c->endpoints[j].method,
                                     .path_template = c->endpoints[j].path,
                                     .timeout_ms = c->endpoints[j].timeout_ms,
                                     .claims = c->endpoints[j].claims,
                                     .rate_limit = c->endpoints[j].rate_limit};
    *out = (bg_rt_connection_in){.connection_id = c->id,
                                 .service = c->service,
                                 .instance = c->instance,
                                 .version = c->version,
                                 .up = c->up,
                                 .last_heartbeat_wall_ms = c->last_heartbeat_wall_ms,
                                 .endpoints = ein,
                                 .nendpoints = c->nendpoints};
}

/* One bg_rt_publish of the whole registry, in registration order. */
static int reg_publish_once(bg_registry *r, char *err)
{
    size_t off = 0;

    if (reg_reserve((void **)&r->cin, &r->cin_cap, r->n + 1, sizeof(*r->cin), err) != BG_OK ||
        reg_reserve((void **)&r->ein, &r->ein_cap, r->nendpoints + 1, sizeof(*r->ein), err) !=
            BG_OK)
        return BG_ERR;
    for (size_t i = 0; i < r->n; i++) {
        reg_fill_conn(r->conns[i], r->ein + off, &r->cin[i]);
        off += r->conns[i]->nendpoints;
    }
    for (size_t i = 0; i < r->nbuilding; i++)
        free(r->building[i]); /* reports of a failed attempt */
    r->nbuilding = 0;
    return bg_rt_publish(r->rt, r->cin, r->n, err);
}

static bg_reg_conn *reg_newest_undo(const bg_registry *r)
{
    bg_reg_conn *best = NULL;

    for (size_t i = 0; i < r->n; i++)
        if (r->conns[i]->undo_seq_ != 0 &&
            (best == NULL || r->conns[i]->undo_seq_ > best->undo_seq_))
            best = r->conns[i];
    return best;
}

static void reg_conflicts_commit(bg_registry *r);

int bg_reg_publish(bg_registry *r, bg_reg_reject_fn *fn, void *ud, char *err)
{
    char why[BG_ERR_LEN];
    bg_reg_conn *c;

    if (!r->dirty && !r->hb_dirty)
        return BG_OK;
    while (reg_publish_once(r, why) != BG_OK) {
        c = reg_newest_undo(r);
        if (c == NULL) {
            bg_set_error(err, "%s", why);
            return BG_ERR; /* still dirty: the next publish tries again */
        }
        if (fn != NULL)
            fn(ud, c, why);
        bg_reg_undo_endpoints(r, c);
    }
    bg_reg_undo_forget(r);
    reg_conflicts_commit(r);
    r->dirty = 0;
    r->hb_dirty = 0;
    r->publishes++;
    return BG_OK;
}

/* ---- route conflicts: the table reports every one on every publish ---- */

static void reg_strings_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void bg_reg_conflicts_free(bg_registry *r)
{
    reg_strings_free(r->conflicts, r->nconflicts);
    reg_strings_free(r->building, r->nbuilding);
    r->conflicts = r->building = NULL;
    r->nconflicts = r->nbuilding = r->cap_building = 0;
}

static int reg_conflict_known(const bg_registry *r, const char *key)
{
    for (size_t i = 0; i < r->nconflicts; i++)
        if (strcmp(r->conflicts[i], key) == 0)
            return 1;
    return 0;
}

void bg_reg_on_conflict(void *ud, const char *method, const char *path_template,
                        const char *winner_service, const char *loser_service,
                        const char *loser_connection_id)
{
    bg_registry *r = ud;
    char *key;

    if (asprintf(&key, "%s %s %s", method, path_template, loser_connection_id) < 0)
        return;
    if (!reg_conflict_known(r, key))
        bg_warn("route conflict: %s %s of service '%s' (connection %s) is already served by "
                "service '%s'; the first to register keeps it",
                method, path_template, loser_service, loser_connection_id, winner_service);
    if (reg_reserve((void **)&r->building, &r->cap_building, r->nbuilding + 1, sizeof(char *),
                    NULL) != BG_OK) {
        free(key);
        return;
    }
    r->building[r->nbuilding++] = key;
}

/* The conflicts of the publish that took effect become the known ones. A
 * failed attempt's reports were logged already if new; they are not kept. */
static void reg_conflicts_commit(bg_registry *r)
{
    reg_strings_free(r->conflicts, r->nconflicts);
    r->conflicts = r->building;
    r->nconflicts = r->nbuilding;
    r->building = NULL;
    r->nbuilding = r->cap_building = 0;
}
