/* ctl_queues.c: busgatectl queues: length, pending, consumers and dead letters of each stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* SCAN rounds at most: a keyspace of 100 million keys at COUNT 1000. */
#define CTL_SCAN_MAX_ROUNDS 100000

typedef struct qrow {
    char service[BG_NAME_MAX + 1]; /* "" for the control stream */
    char stream[BG_KEY_MAX + 1];
    char group[BG_KEY_MAX + 1];
    long long length, pending, consumers, dead;
    int has_group;
} qrow;

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static long long key_xlen(bgctl *x, const char *key, char *err)
{
    redisReply *r = bgctl_command(x, err, "XLEN %s", key);
    long long n;

    if (r == NULL)
        return -1;
    n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    bg_bus_reply_free(r);
    return n;
}

/* A field of one XINFO GROUPS entry (RESP2 flat array or RESP3 map). */
static const redisReply *info_field(const redisReply *g, const char *name)
{
    for (size_t i = 0; i + 1 < g->elements; i += 2)
        if (g->element[i]->type == REDIS_REPLY_STRING && strcmp(g->element[i]->str, name) == 0)
            return g->element[i + 1];
    return NULL;
}

static void row_group(bgctl *x, qrow *row)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(x->bus, err, "XINFO GROUPS %s", row->stream);
    const redisReply *name, *pending, *consumers;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) /* no such key: no group either */
        goto cleanup;
    for (size_t i = 0; i < r->elements; i++) {
        name = info_field(r->element[i], "name");
        if (name == NULL || name->type != REDIS_REPLY_STRING || strcmp(name->str, row->group) != 0)
            continue;
        pending = info_field(r->element[i], "pending");
        consumers = info_field(r->element[i], "consumers");
        row->has_group = 1;
        row->pending = pending != NULL ? pending->integer : 0;
        row->consumers = consumers != NULL ? consumers->integer : 0;
    }
cleanup:
    if (r != NULL)
        bg_bus_reply_free(r);
}

static int row_fill(bgctl *x, qrow *row, char *err)
{
    char dead[BG_KEY_MAX + 1];

    if (bg_key_dead_letter(row->stream, dead, sizeof(dead), err) != BG_OK)
        return BG_ERR;
    row->length = key_xlen(x, row->stream, err);
    row->dead = key_xlen(x, dead, err);
    if (row->length < 0 || row->dead < 0)
        return BG_ERR;
    row_group(x, row);
    return BG_OK;
}

static int names_add(names *ns, const char *s)
{
    char **v;

    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], s) == 0)
            return BG_OK;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? 2 * ns->cap : 16;
        v = realloc(ns->v, cap * sizeof(*v));
        if (v == NULL)
            return BG_ERR;
        ns->v = v;
        ns->cap = cap;
    }
    ns->v[ns->n] = strdup(s);
    return ns->v[ns->n++] != NULL ? BG_OK : BG_ERR;
}

static void names_free(names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Glob-escaped copy of n bytes of s appended to out. */
static void glob_escape(char *out, size_t outlen, const char *s, size_t n)
{
    size_t o = strlen(out);

    for (size_t i = 0; i < n && o + 2 < outlen; i++) {
        if (strchr("*?[]\\", s[i]) != NULL)
            out[o++] = '\\';
        out[o++] = s[i];
    }
    out[o] = '\0';
}

/* The service of a request stream key, if key is one. */
static int service_of_key(bgctl *x, const char *key, size_t plen, size_t slen, char *svc)
{
    char again[BG_KEY_MAX + 1];
    size_t len = strlen(key);

    if (len <= plen + slen || len - plen - slen > BG_NAME_MAX)
        return 0;
    snprintf(svc, BG_NAME_MAX + 1, "%.*s", (int)(len - plen - slen), key + plen);
    return bg_key_request_stream(&x->names, svc, again, sizeof(again), NULL) == BG_OK &&
           strcmp(again, key) == 0;
}

static int scan_round(bgctl *x, bg_bus *node, const char *pattern, size_t plen, size_t slen,
                      char *cursor, names *ns, char *err)
{
    redisReply *r =
        bgctl_command_on(x, node, err, "SCAN %s MATCH %s COUNT 1000 TYPE stream", cursor, pattern);
    char svc[BG_NAME_MAX + 1];
    int rc = BG_OK;

    if (r == NULL)
        return BG_ERR;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        bg_set_error(err, "SCAN: unexpected reply");
        bg_bus_reply_free(r);
        return BG_ERR;
    }
    snprintf(cursor, 32, "%s", r->element[0]->str);
    for (size_t i = 0; i < r->element[1]->elements && rc == BG_OK; i++)
        if (service_of_key(x, r->element[1]->element[i]->str, plen, slen, svc))
            rc = names_add(ns, svc);
    bg_bus_reply_free(r);
    return rc;
}

/* Services that have a request stream: SCAN for the template's keys. */
static int scan_services(bgctl *x, names *ns, char *err)
{
    const char *tpl = x->cfg.messaging.request_stream_template;
    const char *at = strstr(tpl, "{service}");
    char pattern[2 * BG_KEY_MAX + 8] = "", cursor[32] = "0";
    size_t plen, slen;

    if (at == NULL) {
        bg_set_error(err, "request_stream_template '%s' has no {service}", tpl);
        return BG_ERR;
    }
    plen = (size_t)(at - tpl) + 1; /* the brace stays in the key */
    slen = strlen(at + 8);
    glob_escape(pattern, sizeof(pattern), tpl, plen);
    strcat(pattern, "*");
    glob_escape(pattern, sizeof(pattern), at + 8, slen);
    for (size_t n = 0; n < bg_bus_node_count(x->bus); n++) { /* every primary of a cluster */
        bg_bus *node = bg_bus_node(x->bus, n, err);
        if (node == NULL)
            return BG_ERR;
        strcpy(cursor, "0");
        for (int i = 0; i < CTL_SCAN_MAX_ROUNDS; i++) {
            if (scan_round(x, node, pattern, plen, slen, cursor, ns, err) != BG_OK)
                return BG_ERR;
            if (strcmp(cursor, "0") == 0)
                break;
        }
    }
    return BG_OK;
}

/* Services the gateway knows, even before their first request. */
static void state_services(bgctl *x, names *ns)
{
    char err[BG_ERR_LEN];
    json_t *doc = bgctl_state_load(x, err), *s;
    size_t i;

    if (doc == NULL)
        return;
    json_array_foreach(json_object_get(doc, "services"), i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (name != NULL)
            names_add(ns, name);
    }
    json_decref(doc);
}

static void row_print(const qrow *r, const char *label)
{
    char pending[24] = "-", consumers[24] = "-";

    if (r->has_group) {
        snprintf(pending, sizeof(pending), "%lld", r->pending);
        snprintf(consumers, sizeof(consumers), "%lld", r->consumers);
    }
    printf("%-14s %-34s %-24s %8lld %8s %9s %8lld\n", label, r->stream,
           r->has_group ? r->group : "(no group)", r->length, pending, consumers, r->dead);
}

static json_t *row_json(const qrow *r)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "stream", r->stream, "group", r->group, "length",
                          (json_int_t)r->length, "dead", (json_int_t)r->dead);

    if (r->service[0] != '\0')
        json_object_set_new(o, "service", json_string(r->service));
    json_object_set_new(o, "pending", r->has_group ? json_integer(r->pending) : json_null());
    json_object_set_new(o, "consumers", r->has_group ? json_integer(r->consumers) : json_null());
    return o;
}

static int queues_rows(bgctl *x, const names *ns, qrow *rows, char *err)
{
    if (bg_key_control_stream(&x->names, rows[0].stream, sizeof(rows[0].stream), err) != BG_OK ||
        bg_group_control(&x->names, rows[0].group, sizeof(rows[0].group), err) != BG_OK ||
        row_fill(x, &rows[0], err) != BG_OK)
        return BG_ERR;
    for (size_t i = 0; i < ns->n; i++) {
        qrow *r = &rows[i + 1];
        snprintf(r->service, sizeof(r->service), "%s", ns->v[i]);
        if (bg_key_request_stream(&x->names, r->service, r->stream, sizeof(r->stream), err) !=
                BG_OK ||
            bg_group_requests(&x->names, r->group, sizeof(r->group), err) != BG_OK ||
            row_fill(x, r, err) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

static void queues_print(const qrow *rows, size_t n, int json)
{
    json_t *doc, *svcs;

    if (!json) {
        printf("%-14s %-34s %-24s %8s %8s %9s %8s\n", "", "STREAM", "GROUP", "LENGTH", "PENDING",
               "CONSUMERS", "DEAD");
        row_print(&rows[0], "control");
        for (size_t i = 1; i < n; i++)
            row_print(&rows[i], rows[i].service);
        return;
    }
    svcs = json_array();
    for (size_t i = 1; i < n; i++)
        json_array_append_new(svcs, row_json(&rows[i]));
    doc = json_pack("{s:o, s:o}", "control", row_json(&rows[0]), "services", svcs);
    json_dumpf(doc, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(doc);
}

int bgctl_cmd_queues(bgctl *x, int argc, char **argv)
{
    char err[BG_ERR_LEN];
    names ns = {0};
    qrow *rows = NULL;
    int json = 0, rc = BGCTL_EXIT_FAIL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            bgctl_fail("queues: unknown argument '%s' (usage: queues [--json])", argv[i]);
            return BGCTL_EXIT_USAGE;
        }
        json = 1;
    }
    if (bgctl_connect(x) != BG_OK)
        return BGCTL_EXIT_FAIL;
    if (scan_services(x, &ns, err) != BG_OK)
        goto fail;
    state_services(x, &ns);
    qsort(ns.v, ns.n, sizeof(*ns.v), names_cmp);
    rows = calloc(ns.n + 1, sizeof(*rows));
    if (rows == NULL) {
        bg_set_error(err, "out of memory");
        goto fail;
    }
    if (queues_rows(x, &ns, rows, err) != BG_OK)
        goto fail;
    queues_print(rows, ns.n + 1, json);
    rc = fflush(stdout) == 0 ? BGCTL_EXIT_OK : BGCTL_EXIT_FAIL;
    goto cleanup;
fail:
    bgctl_fail("queues: %s", err);
cleanup:
    names_free(&ns);
    free(rows);
    return rc;
}
