/* service_config.c: configure a service from an ini file ([valkey], [messaging]) or from code. */
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Refuse changes while run() uses the settings from other threads. */
static int config_idle(const busgate_service *s, char *err)
{
    if (atomic_load(&s->running)) {
        bg_set_error(err, "service %s: cannot change the configuration while running", s->name);
        return BG_ERR;
    }
    return BG_OK;
}

int busgate_service_load_config(busgate_service *s, const char *path, char *err)
{
    char errors[4096] = "";
    bg_config *c;

    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    c = malloc(sizeof(*c));
    if (c == NULL) {
        bg_set_error(err, "%s: out of memory", path);
        return BG_ERR;
    }
    if (bg_config_load_bus_only(path, c, errors, sizeof(errors)) != BG_OK) {
        /* err holds the first errors; each is "FILE:LINE: ..." on its own line. */
        bg_set_error(err, "%s", errors[0] != '\0' ? errors : "cannot load the configuration");
        free(c);
        return BG_ERR;
    }
    s->cfg = *c;
    free(c);
    s->file_password[0] = '\0';
    if (s->cfg.valkey.password_file[0] != '\0')
        snprintf(s->file_password, sizeof(s->file_password), "%s", s->cfg.valkey.addr.password);
    return BG_OK;
}

int busgate_service_set_url(busgate_service *s, const char *url, char *err)
{
    bg_valkey_addr addr;

    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    if (url == NULL || strlen(url) >= sizeof(s->cfg.valkey.url)) {
        bg_set_error(err, "valkey url: missing or too long");
        return BG_ERR;
    }
    if (bg_valkey_url_parse(url, &addr, err) != BG_OK)
        return BG_ERR;
    /* As in busgate.ini: a password_file beats a password in the URL. */
    if (s->file_password[0] != '\0')
        snprintf(addr.password, sizeof(addr.password), "%s", s->file_password);
    s->cfg.valkey.addr = addr;
    snprintf(s->cfg.valkey.url, sizeof(s->cfg.valkey.url), "%s", url);
    return BG_OK;
}

int busgate_service_set_instance(busgate_service *s, const char *instance, char *err)
{
    if (config_idle(s, err) != BG_OK || bg_name_validate("instance", instance, err) != BG_OK)
        return BG_ERR;
    snprintf(s->instance, sizeof(s->instance), "%s", instance);
    s->instance_set = 1;
    return BG_OK;
}

int busgate_service_set_threads(busgate_service *s, int threads, char *err)
{
    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    if (threads < 1 || threads > BUSGATE_SERVICE_MAX_THREADS) {
        bg_set_error(err, "threads %d: allowed 1..%d", threads, BUSGATE_SERVICE_MAX_THREADS);
        return BG_ERR;
    }
    s->threads = threads;
    return BG_OK;
}

int busgate_service_set_heartbeat_interval(busgate_service *s, int64_t ms, char *err)
{
    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    if (ms < 10 || ms > BG_FRAME_INTERVAL_MAX) {
        bg_set_error(err, "heartbeat interval %lld ms: allowed 10..%d", (long long)ms,
                     BG_FRAME_INTERVAL_MAX);
        return BG_ERR;
    }
    s->cfg.messaging.heartbeat_interval_ms = ms;
    return BG_OK;
}

int busgate_service_set_lease(busgate_service *s, int64_t ms, char *err)
{
    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    if (ms < 100 || ms > BG_FRAME_INTERVAL_MAX) {
        bg_set_error(err, "lease %lld ms: allowed 100..%d", (long long)ms, BG_FRAME_INTERVAL_MAX);
        return BG_ERR;
    }
    s->cfg.messaging.lease_duration_ms = ms;
    return BG_OK;
}

int busgate_service_set_max_deliveries(busgate_service *s, int n, char *err)
{
    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    if (n < 0 || n > 1000000) {
        bg_set_error(err, "max_deliveries %d: allowed 0..1000000", n);
        return BG_ERR;
    }
    s->cfg.messaging.max_deliveries = n;
    return BG_OK;
}

int busgate_service_set_batch_size(busgate_service *s, int n, char *err)
{
    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    if (n < 1 || n > 10000) {
        bg_set_error(err, "batch size %d: allowed 1..10000", n);
        return BG_ERR;
    }
    s->cfg.messaging.batch_size = n;
    return BG_OK;
}

int busgate_service_set_timeouts(busgate_service *s, int64_t connect_ms, int64_t command_ms,
                                 char *err)
{
    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    if (connect_ms < 1 || command_ms < 1 || connect_ms > 3600000 || command_ms > 3600000) {
        bg_set_error(err, "timeouts must be 1 ms..1 h");
        return BG_ERR;
    }
    s->cfg.valkey.connect_timeout_ms = connect_ms;
    s->cfg.valkey.command_timeout_ms = command_ms;
    return BG_OK;
}

void busgate_service_set_inline(busgate_service *s, int on)
{
    s->inline_all = on != 0;
}

void busgate_service_handle_signals(busgate_service *s, int on)
{
    s->handle_signals = on != 0;
}

int busgate_service_set_openapi(busgate_service *s, const char *json, char *err)
{
    json_error_t je;
    json_t *v;

    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    v = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL || !json_is_object(v)) {
        bg_set_error(err, "openapi: %s", v == NULL ? je.text : "not a JSON object");
        json_decref(v);
        return BG_ERR;
    }
    json_decref(s->openapi);
    s->openapi = v;
    return BG_OK;
}

int busgate_service_add_endpoint(busgate_service *s, const char *method, const char *path,
                                 busgate_handler_fn *fn, void *arg,
                                 const busgate_endpoint_opts *opts, char *err)
{
    bg_method m;

    if (config_idle(s, err) != BG_OK)
        return BG_ERR;
    if (method == NULL || bg_method_parse(method, strlen(method), &m) != BG_OK) {
        bg_set_error(err, "endpoint method '%s': allowed GET HEAD POST PUT PATCH DELETE OPTIONS",
                     method != NULL ? method : "(null)");
        return BG_ERR;
    }
    if (fn == NULL || path == NULL) {
        bg_set_error(err, "endpoint %s: a path and a handler are required", method);
        return BG_ERR;
    }
    return bgs_registry_add(s, m, path, fn, arg, opts, err);
}
