/* service_bus.c: the SDK's connections, key names, instance name and control-stream writes. */
#include "service_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "busgate/core/log.h"

/* Connection attempts at start-up back off like bg_bus reconnects do. */
#define OPEN_BACKOFF_MIN_MS 100
#define OPEN_BACKOFF_MAX_MS 5000

static void bus_opts_from_config(const busgate_service *s, const char *client, bg_bus_opts *o)
{
    bg_bus_opts_from_config(o, &s->cfg, client);
    o->reply_blocks = 1; /* every reply of the SDK's own buses is freed with bg_bus_reply_free */
}

/* A new connection, retried with backoff until it works or the service is
 * stopped: a service started before Valkey simply waits for it. */
bg_bus *bgs_bus_open(busgate_service *s, const char *role, char *err)
{
    char client[BG_NAME_MAX * 2 + 48], why[BG_ERR_LEN];
    int64_t backoff = OPEN_BACKOFF_MIN_MS;
    bg_bus_opts o;
    bg_bus *bus;

    /* CLIENT SETNAME: no spaces; names are [A-Za-z0-9._-] already. */
    snprintf(client, sizeof(client), "busgate-svc:%s:%s:%s", s->name, s->instance, role);
    bus_opts_from_config(s, client, &o);
    while (!bgs_stopping(s)) {
        bus = bg_bus_connect(&o, why);
        if (bus != NULL)
            return bus;
        bg_warn("%s/%s: %s connection: %s (retrying in %" PRId64 " ms)", s->name, s->instance, role,
                why, backoff);
        bgs_sleep_ms(s, backoff);
        backoff = backoff * 2 > OPEN_BACKOFF_MAX_MS ? OPEN_BACKOFF_MAX_MS : backoff * 2;
    }
    bg_set_error(err, "%s/%s: stopped before connecting to Valkey", s->name, s->instance);
    return NULL;
}

bg_bus *bgs_bus_open_once(busgate_service *s, const char *role, char *err)
{
    char client[BG_NAME_MAX * 2 + 48];
    bg_bus_opts o;

    snprintf(client, sizeof(client), "busgate-svc:%s:%s:%s", s->name, s->instance, role);
    bus_opts_from_config(s, client, &o);
    return bg_bus_connect(&o, err);
}

int bgs_keys_derive(busgate_service *s, char *err)
{
    const bg_config *c = &s->cfg;
    bg_messaging_names m;

    bg_messaging_names_default(&m);
    m.key_prefix = c->messaging.key_prefix;
    m.control_stream = c->messaging.control_stream;
    m.request_stream_template = c->messaging.request_stream_template;
    m.response_queue_name = c->messaging.response_queue_name;
    m.consumer_group = c->messaging.consumer_group;
    if (bg_key_request_stream(&m, s->name, s->k_requests, sizeof(s->k_requests), err) != BG_OK ||
        bg_key_cancel_stream(&m, s->name, s->k_cancel, sizeof(s->k_cancel), err) != BG_OK ||
        bg_key_instance_stream(&m, s->name, s->instance, s->k_instance, sizeof(s->k_instance),
                               err) != BG_OK ||
        bg_key_broadcast_stream(&m, s->k_broadcast, sizeof(s->k_broadcast), err) != BG_OK ||
        bg_key_control_stream(&m, s->k_control, sizeof(s->k_control), err) != BG_OK ||
        bg_group_requests(&m, s->group, sizeof(s->group), err) != BG_OK)
        return BG_ERR;
    return BG_OK;
}

/* "<hostname>-<pid>", made a valid name: other bytes become '-', and the host
 * part is cut so that the pid always fits. */
void bgs_default_instance(busgate_service *s)
{
    char host[256] = "", pid[24];
    size_t keep, i;

    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    snprintf(s->host, sizeof(s->host), "%s", host);
    snprintf(pid, sizeof(pid), "-%ld", (long)getpid());
    keep = BG_NAME_MAX - strlen(pid);
    if (strlen(host) < keep)
        keep = strlen(host);
    for (i = 0; i < keep; i++) {
        char ch = host[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        host[i] = ok ? ch : '-';
    }
    host[keep] = '\0';
    if (!((host[0] >= 'a' && host[0] <= 'z') || (host[0] >= 'A' && host[0] <= 'Z') ||
          (host[0] >= '0' && host[0] <= '9')))
        host[0] = 'h';
    snprintf(s->instance, sizeof(s->instance), "%s%s", host, pid);
}

static int control_xadd(busgate_service *s, bg_bus *bus, bg_frame_wire *w, char *err)
{
    const char *head[] = {"XADD", s->k_control, "MAXLEN", "~", s->maxlen, "*"};
    const char *plain[] = {"XADD", s->k_control, "*"};
    int trim = strcmp(s->maxlen, "0") != 0, argc;
    const char **argv;
    const size_t *lens;
    redisReply *r;

    if (bg_frame_wire_command(w, trim ? head : plain, NULL, trim ? 6 : 3, &argc, &argv, &lens) !=
        BG_OK) {
        bg_set_error(err, "XADD %s: cannot build the command", s->k_control);
        return BG_ERR;
    }
    r = bg_bus_command_argv(bus, argc, argv, lens, err);
    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "XADD %s: %s", s->k_control, r->str);
        bg_bus_reply_free(r);
        return BG_ERR;
    }
    bg_bus_reply_free(r);
    return BG_OK;
}

int bgs_control_send(busgate_service *s, bg_bus *bus, bg_frame *f, char *err)
{
    char id[33], why[BG_ERR_LEN];
    bg_frame_wire w;
    int rc = BG_ERR;

    if (bg_random_id(id) != BG_OK) {
        bg_set_error(err, "%s: no random bytes for a frame id", bg_frame_type_name(f->type));
        return BG_ERR;
    }
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->ts = bg_wall_ms();
    snprintf(f->service, sizeof(f->service), "%s", s->name);
    snprintf(f->instance, sizeof(f->instance), "%s", s->instance);
    if (f->type != BG_FRAME_GOODBYE)
        snprintf(f->svc_version, sizeof(f->svc_version), "%s", s->version);
    if (bg_frame_encode(f, &w, why) != BG_OK) {
        bg_set_error(err, "%s: %s", bg_frame_type_name(f->type), why);
        goto cleanup;
    }
    rc = control_xadd(s, bus, &w, err);
cleanup:
    bg_frame_wire_free(&w);
    return rc;
}

int bgs_stream_last_id(bg_bus *bus, const char *key, char *out, char *err)
{
    redisReply *r = bg_bus_command(bus, err, "XREVRANGE %s + - COUNT 1", key);
    int rc = BG_ERR;

    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        snprintf(out, BG_QUEUE_ID_LEN, "0-0");
        rc = BG_OK;
    } else if (r->type == REDIS_REPLY_ARRAY && r->element[0]->type == REDIS_REPLY_ARRAY &&
               r->element[0]->elements == 2 &&
               r->element[0]->element[0]->type == REDIS_REPLY_STRING &&
               r->element[0]->element[0]->len < BG_QUEUE_ID_LEN) {
        memcpy(out, r->element[0]->element[0]->str, r->element[0]->element[0]->len + 1);
        rc = BG_OK;
    } else {
        bg_set_error(err, "XREVRANGE %s: %s", key,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    bg_bus_reply_free(r);
    return rc;
}

int bgs_entry_fields(const redisReply *entry, bg_field *fields, size_t max, size_t *n,
                     const char **id)
{
    const redisReply *kv;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING || entry->element[0]->len >= BG_QUEUE_ID_LEN)
        return BG_ERR;
    *id = entry->element[0]->str;
    kv = entry->element[1];
    if (kv->type != REDIS_REPLY_ARRAY || kv->elements % 2 != 0 || kv->elements / 2 > max)
        return BG_ERR;
    for (size_t i = 0; i < kv->elements; i += 2) {
        if (kv->element[i]->type != REDIS_REPLY_STRING ||
            kv->element[i + 1]->type != REDIS_REPLY_STRING)
            return BG_ERR;
        fields[i / 2].name.ptr = kv->element[i]->str;
        fields[i / 2].name.len = kv->element[i]->len;
        fields[i / 2].value.ptr = kv->element[i + 1]->str;
        fields[i / 2].value.len = kv->element[i + 1]->len;
    }
    *n = kv->elements / 2;
    return BG_OK;
}
