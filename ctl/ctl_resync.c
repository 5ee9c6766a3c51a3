/* ctl_resync.c: busgatectl resync: RESYNC_REQUEST to one connection, one service or the fleet. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "busgate/proto/frame.h"
#include "ctl.h"

/* As the master writes them (protocol section 9). */
#define CTL_INSTANCE_MAXLEN "100"
#define CTL_BROADCAST_MAXLEN "1000"
#define CTL_INSTANCE_TTL_EXPIRIES 10

static int resync_xadd(bgctl *x, const char *key, const char *maxlen, const char *service,
                       const char *instance, char *id, char *err)
{
    const char *head[] = {"XADD", key, "MAXLEN", "~", maxlen, "*"};
    char rnd[33], why[BG_ERR_LEN] = "";
    const char **argv;
    const size_t *lens;
    bg_frame_wire w;
    redisReply *r;
    bg_frame f;
    int argc, rc = BG_ERR;

    bg_frame_init(&f, BG_FRAME_RESYNC_REQUEST);
    bg_random_id(rnd);
    snprintf(f.id, sizeof(f.id), "%s:ctl:%.16s", x->cfg.gateway.instance_id, rnd);
    f.ts = bg_wall_ms();
    snprintf(f.gateway, sizeof(f.gateway), "%s", x->cfg.gateway.instance_id);
    snprintf(f.reason, sizeof(f.reason), "admin");
    snprintf(f.service, sizeof(f.service), "%s", service != NULL ? service : "");
    snprintf(f.instance, sizeof(f.instance), "%s", instance != NULL ? instance : "");
    if (bg_frame_encode(&f, &w, err) != BG_OK ||
        bg_frame_wire_command(&w, head, NULL, 6, &argc, &argv, &lens) != BG_OK)
        goto cleanup;
    r = bg_bus_command_argv(x->bus, argc, argv, lens, why);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "XADD %s: %s", key, r != NULL ? r->str : why);
        if (r != NULL)
            bg_bus_reply_free(r);
        goto cleanup;
    }
    bg_bus_reply_free(r);
    snprintf(id, BG_FRAME_ID_MAX + 1, "%s", f.id);
    rc = BG_OK;
cleanup:
    bg_frame_wire_free(&w);
    bg_frame_free(&f);
    return rc;
}

/* 1 when the document lists a member whose key field equals value. */
static int doc_lists(const json_t *doc, const char *array, const char *field, const char *value)
{
    size_t i;
    json_t *e;

    json_array_foreach(json_object_get(doc, array), i, e)
    {
        const char *s = json_string_value(json_object_get(e, field));
        if (s != NULL && strcmp(s, value) == 0)
            return 1;
    }
    return 0;
}

/* --service and --connection name what the gateway knows: check its state first. */
static int resync_check_known(bgctl *x, const char *what, const char *array, const char *value)
{
    char err[BG_ERR_LEN];
    json_t *doc = bgctl_state_load(x, err);
    int known;

    if (doc == NULL) {
        bgctl_fail("%s", err);
        return BG_ERR;
    }
    known = doc_lists(doc, array, array[0] == 's' ? "name" : "id", value);
    json_decref(doc);
    if (!known) {
        bgctl_fail("unknown %s '%s' (see busgatectl state)", what, value);
        return BG_ERR;
    }
    return BG_OK;
}

static int resync_connection(bgctl *x, const char *id)
{
    char service[BG_NAME_MAX + 1], key[BG_KEY_MAX + 1], err[BG_ERR_LEN], rid[BG_FRAME_ID_MAX + 1];
    const char *slash = strchr(id, '/');
    redisReply *r;

    if (slash == NULL || (size_t)(slash - id) > BG_NAME_MAX) {
        bgctl_fail("--connection %s: expected SERVICE/INSTANCE", id);
        return BGCTL_EXIT_FAIL;
    }
    snprintf(service, sizeof(service), "%.*s", (int)(slash - id), id);
    if (bg_key_instance_stream(&x->names, service, slash + 1, key, sizeof(key), err) != BG_OK) {
        bgctl_fail("--connection %s: %s", id, err);
        return BGCTL_EXIT_FAIL;
    }
    if (resync_check_known(x, "connection", "connections", id) != BG_OK)
        return BGCTL_EXIT_FAIL;
    if (resync_xadd(x, key, CTL_INSTANCE_MAXLEN, service, slash + 1, rid, err) != BG_OK) {
        bgctl_fail("%s", err);
        return BGCTL_EXIT_FAIL;
    }
    r = bgctl_command(x, err, "PEXPIRE %s %" PRId64, key,
                      (int64_t)CTL_INSTANCE_TTL_EXPIRIES * x->cfg.messaging.heartbeat_expiry_ms);
    if (r != NULL)
        bg_bus_reply_free(r);
    printf("resync %s sent to connection %s (%s)\n", rid, id, key);
    return BGCTL_EXIT_OK;
}

/* A broadcast, to every instance or (service) to those of one service. */
static int resync_broadcast(bgctl *x, const char *service)
{
    char key[BG_KEY_MAX + 1], err[BG_ERR_LEN], rid[BG_FRAME_ID_MAX + 1];

    if (service != NULL && bg_name_validate("--service", service, err) != BG_OK) {
        bgctl_fail("%s", err);
        return BGCTL_EXIT_FAIL;
    }
    if (service != NULL && resync_check_known(x, "service", "services", service) != BG_OK)
        return BGCTL_EXIT_FAIL;
    if (bg_key_broadcast_stream(&x->names, key, sizeof(key), err) != BG_OK ||
        resync_xadd(x, key, CTL_BROADCAST_MAXLEN, service, NULL, rid, err) != BG_OK) {
        bgctl_fail("%s", err);
        return BGCTL_EXIT_FAIL;
    }
    if (service != NULL)
        printf("resync %s sent to every instance of service %s (%s)\n", rid, service, key);
    else
        printf("resync %s sent to every instance (%s)\n", rid, key);
    return BGCTL_EXIT_OK;
}

int bgctl_cmd_resync(bgctl *x, int argc, char **argv)
{
    const char *conn = NULL, *service = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--connection") == 0 && i + 1 < argc)
            conn = argv[++i];
        else if (strcmp(argv[i], "--service") == 0 && i + 1 < argc)
            service = argv[++i];
        else
            goto usage;
    }
    if (conn != NULL && service != NULL)
        goto usage;
    if (bgctl_connect(x) != BG_OK)
        return BGCTL_EXIT_FAIL;
    return conn != NULL ? resync_connection(x, conn) : resync_broadcast(x, service);
usage:
    bgctl_fail("usage: resync [--connection SERVICE/INSTANCE | --service NAME]");
    return BGCTL_EXIT_USAGE;
}
