/* ctl_gateways.c: busgatectl gateways: every gateway whose state document is on the bus. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* SCAN is bounded: a bus with more keys than this many SCAN steps can hold is not one a
 * command-line tool should walk in full. */
#define GATEWAYS_SCAN_STEPS 100000
#define GATEWAYS_SCAN_COUNT "1000"

/* A summary of one gateway's state document: what an operator compares across gateways. */
static json_t *gateway_summary(const char *gateway, const json_t *doc)
{
    return json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I}", "gateway", gateway, "pid",
                     json_integer_value(json_object_get(doc, "pid")), "version",
                     bgctl_jstr(doc, "version"), "started_ms",
                     json_integer_value(json_object_get(doc, "started_ms")), "time_ms",
                     json_integer_value(json_object_get(doc, "time_ms")), "generation",
                     json_integer_value(json_object_get(doc, "generation")), "services",
                     (json_int_t)json_array_size(json_object_get(doc, "services")), "connections",
                     (json_int_t)json_array_size(json_object_get(doc, "connections")));
}

/* Adds the gateway whose state key is key; a key that expired between SCAN and GET, or
 * holds no JSON, is skipped (the gateway is gone or not one of ours). */
static int gateways_add(bgctl *x, const char *key, json_t *out, char *err)
{
    char gateway[BG_NAME_MAX + 1];
    json_error_t jerr;
    redisReply *r;
    json_t *doc, *sum;

    if (bg_key_gateway_of_state(&x->names, key, gateway, sizeof(gateway)) != BG_OK)
        return BG_OK;
    r = bgctl_command(x, err, "GET %s", key);
    if (r == NULL)
        return BG_ERR;
    doc = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, &jerr) : NULL;
    bg_bus_reply_free(r);
    if (doc == NULL)
        return BG_OK;
    sum = gateway_summary(gateway, doc);
    json_decref(doc);
    if (sum == NULL || json_array_append_new(out, sum) != 0) {
        bg_set_error(err, "out of memory listing gateways");
        return BG_ERR;
    }
    return BG_OK;
}

static int gateways_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

    return strcmp(json_string_value(json_object_get(x, "gateway")),
                  json_string_value(json_object_get(y, "gateway")));
}

/* The list sorted by name, so two runs print in the same order. */
static json_t *gateways_sorted(json_t *list)
{
    size_t n = json_array_size(list), i;
    json_t **items = calloc(n + 1, sizeof(*items)), *out = json_array();

    for (i = 0; items != NULL && i < n; i++)
        items[i] = json_array_get(list, i);
    if (items != NULL)
        qsort(items, n, sizeof(*items), gateways_cmp);
    for (i = 0; items != NULL && out != NULL && i < n; i++)
        json_array_append(out, items[i]);
    free(items);
    json_decref(list);
    return out;
}

/* The gateway state keys on one node (every primary of a cluster holds some). */
static int gateways_scan(bgctl *x, bg_bus *node, const char *pattern, json_t *list, char *err)
{
    char cursor[32] = "0";
    redisReply *r;

    for (int step = 0; step < GATEWAYS_SCAN_STEPS; step++) {
        r = bgctl_command_on(x, node, err, "SCAN %s MATCH %s COUNT " GATEWAYS_SCAN_COUNT, cursor,
                             pattern);
        if (r == NULL)
            return BG_ERR;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            bg_set_error(err, "SCAN: unexpected reply");
            bg_bus_reply_free(r);
            return BG_ERR;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            if (k->type == REDIS_REPLY_STRING && gateways_add(x, k->str, list, err) != BG_OK) {
                bg_bus_reply_free(r);
                return BG_ERR;
            }
        }
        bg_bus_reply_free(r);
        if (strcmp(cursor, "0") == 0)
            return BG_OK;
    }
    bg_set_error(err, "SCAN did not finish in %d steps", GATEWAYS_SCAN_STEPS);
    return BG_ERR;
}

json_t *bgctl_gateways_load(bgctl *x, char *err)
{
    char pattern[BG_KEY_MAX * 2 + 32];
    json_t *list = json_array();

    if (list == NULL ||
        bg_key_gateway_state_pattern(&x->names, pattern, sizeof(pattern), err) != BG_OK)
        goto fail;
    for (size_t n = 0; n < bg_bus_node_count(x->bus); n++) {
        bg_bus *node = bg_bus_node(x->bus, n, err);
        if (node == NULL || gateways_scan(x, node, pattern, list, err) != BG_OK)
            goto fail;
    }
    return gateways_sorted(list);
fail:
    json_decref(list);
    return NULL;
}

static void print_gateways(const json_t *list)
{
    size_t i;
    json_t *g;

    if (json_array_size(list) == 0) {
        printf("no gateway on this bus\n");
        return;
    }
    json_array_foreach(list, i, g)
    {
        int64_t up = json_integer_value(json_object_get(g, "time_ms")) -
                     json_integer_value(json_object_get(g, "started_ms"));
        int64_t age = bg_wall_ms() - json_integer_value(json_object_get(g, "time_ms"));
        printf("%-24s pid %-8" PRId64 " busgate %-8s up %" PRId64 "s  generation %" PRId64
               "  services %" PRId64 "  connections %" PRId64 "  (state written %" PRId64
               "s ago)\n",
               json_string_value(json_object_get(g, "gateway")),
               (int64_t)json_integer_value(json_object_get(g, "pid")),
               json_string_value(json_object_get(g, "version")), up / 1000,
               (int64_t)json_integer_value(json_object_get(g, "generation")),
               (int64_t)json_integer_value(json_object_get(g, "services")),
               (int64_t)json_integer_value(json_object_get(g, "connections")), age / 1000);
    }
}

int bgctl_cmd_gateways(bgctl *x, int argc, char **argv)
{
    char err[BG_ERR_LEN];
    int json = 0;
    json_t *list;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            bgctl_fail("gateways: unknown argument '%s' (usage: gateways [--json])", argv[i]);
            return BGCTL_EXIT_USAGE;
        }
        json = 1;
    }
    if (bgctl_connect(x) != BG_OK)
        return BGCTL_EXIT_FAIL;
    list = bgctl_gateways_load(x, err);
    if (list == NULL) {
        bgctl_fail("%s", err);
        return BGCTL_EXIT_FAIL;
    }
    if (json) {
        json_dumpf(list, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else {
        print_gateways(list);
    }
    json_decref(list);
    return fflush(stdout) == 0 ? BGCTL_EXIT_OK : BGCTL_EXIT_FAIL;
}
