/* admin_resync.c: POST .../router/resync: check the target against the routing table, pass the
 * command to the master over the channel, answer 202 with the connections targeted. */
#include "admin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/channel.h"
#include "busgate/core/log.h"

static const char *const resync_kinds[] = {"fleet", "service", "connection"};

static int resync_blank(const bg_buf *b)
{
    size_t i;

    for (i = 0; i < b->len; i++)
        if (b->p[i] != ' ' && b->p[i] != '\t' && b->p[i] != '\r' && b->p[i] != '\n')
            return 0;
    return 1;
}

/* One optional non-empty string member; BG_ERR (detail set) when it has another type. */
static int resync_member(json_t *o, const char *name, const char **out, char *detail, size_t dlen)
{
    json_t *v = json_object_get(o, name);

    *out = NULL;
    if (v == NULL)
        return BG_OK;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= sizeof(((bg_chan_msg *)0)->target)) {
        snprintf(detail, dlen, "'%s' must be a non-empty string shorter than %zu bytes", name,
                 sizeof(((bg_chan_msg *)0)->target));
        return BG_ERR;
    }
    *out = json_string_value(v);
    return BG_OK;
}

/* Empty body: the fleet; {"connectionId": ".."}: one connection; {"service": ".."}. */
static int resync_parse(const bg_xchg *x, bg_chan_msg *m, char *detail, size_t dlen)
{
    const char *conn = NULL, *svc = NULL;
    json_error_t jerr;
    json_t *o;
    int rv = BG_ERR;

    memset(m, 0, sizeof(*m));
    m->cmd = BG_CHAN_RESYNC;
    m->target_kind = BG_CHAN_TARGET_FLEET;
    if (resync_blank(&x->body))
        return BG_OK;
    o = json_loadb(x->body.p, x->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        snprintf(detail, dlen, "malformed JSON: %s", o == NULL ? jerr.text : "not an object");
        goto cleanup;
    }
    if (resync_member(o, "connectionId", &conn, detail, dlen) != BG_OK ||
        resync_member(o, "service", &svc, detail, dlen) != BG_OK)
        goto cleanup;
    if (conn != NULL && svc != NULL) {
        snprintf(detail, dlen, "give either 'connectionId' or 'service', not both");
        goto cleanup;
    }
    if (conn != NULL || svc != NULL) {
        m->target_kind = conn != NULL ? BG_CHAN_TARGET_CONNECTION : BG_CHAN_TARGET_SERVICE;
        snprintf(m->target, sizeof(m->target), "%s", conn != NULL ? conn : svc);
    }
    rv = BG_OK;
cleanup:
    json_decref(o);
    return rv;
}

static int resync_selected(const bg_chan_msg *m, json_t *conn)
{
    const char *field = m->target_kind == BG_CHAN_TARGET_SERVICE ? "service" : "id";
    const char *v = json_string_value(json_object_get(conn, field));

    if (m->target_kind == BG_CHAN_TARGET_FLEET)
        return 1;
    return v != NULL && strcmp(v, m->target) == 0;
}

/* The connections the command reaches, from a snapshot of the routing table. */
static json_t *resync_targets(bg_wk *wk, const bg_chan_msg *m, char *err)
{
    json_t *root, *conns, *c, *out = json_array();
    char *text = NULL;
    size_t i;

    if (out == NULL || bg_rt_snapshot_json(wk->ctx->rt, &text, err) != BG_OK) {
        json_decref(out);
        return NULL;
    }
    root = json_loads(text, 0, NULL);
    free(text);
    conns = json_object_get(root, "connections");
    json_array_foreach(conns, i, c)
    {
        if (!resync_selected(m, c))
            continue;
        json_array_append_new(out, json_pack("{s:O?, s:O?, s:O?}", "connectionId",
                                             json_object_get(c, "id"), "service",
                                             json_object_get(c, "service"), "instance",
                                             json_object_get(c, "instance")));
    }
    json_decref(root);
    return out;
}

static void resync_accept(bg_xchg *x, const bg_chan_msg *m, json_t *targets)
{
    json_t *j = json_pack("{s:s, s:s, s:s?, s:o}", "status", "accepted", "kind",
                          resync_kinds[m->target_kind], "target", m->target[0] ? m->target : NULL,
                          "connections", targets);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    bg_resp_ctx rc;

    json_decref(j);
    bg_xchg_resp_ctx(x, &rc);
    x->out.len = 0;
    if (text == NULL || bg_resp_status(&x->out, 202) != BG_OK ||
        bg_buf_puts(&x->out, "Content-Type: application/json\r\n") != BG_OK ||
        bg_resp_finish_sized(&x->out, &rc, text, strlen(text)) != BG_OK) {
        free(text);
        bg_xchg_problem(x, 503, "out of memory", NULL);
        return;
    }
    free(text);
    bg_xchg_done(x, 202);
}

void bg_admin_resync(bg_wk *wk, bg_xchg *x)
{
    char detail[200], err[BG_ERR_LEN];
    json_t *targets;
    bg_chan_msg m;

    if (x->m != BG_HTTP_M_POST) {
        bg_xchg_problem(x, 405, "only POST is allowed here", "Allow: POST\r\n");
        return;
    }
    if (resync_parse(x, &m, detail, sizeof(detail)) != BG_OK) {
        bg_xchg_problem(x, 400, detail, NULL);
        return;
    }
    if ((targets = resync_targets(wk, &m, err)) == NULL) {
        bg_warn("admin resync: %s", err);
        bg_xchg_problem(x, 503, "the routing table is busy, retry", "Retry-After: 1\r\n");
        return;
    }
    if (m.target_kind != BG_CHAN_TARGET_FLEET && json_array_size(targets) == 0) {
        snprintf(detail, sizeof(detail), "unknown %s '%s'", resync_kinds[m.target_kind], m.target);
        json_decref(targets);
        bg_xchg_problem(x, 400, detail, NULL);
        return;
    }
    if (bg_chan_send(wk->ctx->channel_fd, &m, err) != BG_OK) {
        bg_error("admin resync: cannot tell the master: %s", err);
        json_decref(targets);
        bg_xchg_problem(x, 503, "the master process is not reachable", "Retry-After: 1\r\n");
        return;
    }
    bg_notice("admin resync (%s%s%s) requested by %s, %zu connection(s)",
              resync_kinds[m.target_kind], m.target[0] ? " " : "", m.target, x->client,
              json_array_size(targets));
    resync_accept(x, &m, targets);
}
