/* busgatectl.c: busgatectl, the admin tool: options, configuration, Valkey, commands. */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/core/log.h"
#include "ctl.h"

static void usage(FILE *to)
{
    fprintf(to, "usage: busgatectl [-c FILE] [-u URL] [-g GATEWAY] COMMAND\n"
                "  state [--json]                          services, connections, endpoints\n"
                "  gateways [--json]                       every gateway on this bus\n"
                "  resync [--connection ID | --service NAME]  ask instances for their endpoints\n"
                "  queues [--json]                         stream lengths, pending, dead letters\n"
                "  dead list SERVICE [--count N] [--json]  a service's dead letters, oldest first\n"
                "  dead show SERVICE ENTRY_ID              every field of one dead letter\n"
                "  dead replay SERVICE ENTRY_ID|--all      back onto the request stream, fresh "
                "deadline\n"
                "  dead purge SERVICE ENTRY_ID|--all       delete dead letters\n"
                "options:\n"
                "  -c FILE     configuration (default " BG_CONFIG_DEFAULT_PATH ")\n"
                "  -u URL      Valkey URL, overrides [valkey] url\n"
                "  -g GATEWAY  gateway instance_id, overrides [gateway] instance_id\n"
                "  -h          this help; -v version\n");
}

void bgctl_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("busgatectl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int bgctl_connect(bgctl *x)
{
    const bg_config *c = &x->cfg;
    char err[BG_ERR_LEN];
    bg_bus_opts o;

    bg_bus_opts_from_config(&o, c, "busgatectl");
    x->bus = bg_bus_connect(&o, err);
    if (x->bus == NULL) {
        bgctl_fail("cannot reach Valkey: %s", err);
        return BG_ERR;
    }
    return BG_OK;
}

/* Routed by the bus (to the key's node on a cluster); an error reply becomes NULL + err. */
static redisReply *bgctl_vcommand(bgctl *x, bg_bus *bus, char *err, const char *fmt, va_list ap)
{
    char *cmd = NULL, why[BG_ERR_LEN] = "";
    int len = redisvFormatCommand(&cmd, fmt, ap);
    redisReply *r;

    if (len < 0) {
        bg_set_error(err, "command: out of memory");
        return NULL;
    }
    r = bg_bus_command_formatted(bus, cmd, (size_t)len, why);
    redisFreeCommand(cmd);
    if (r == NULL) {
        bg_set_error(err, "Valkey %s: %s", bg_bus_where(x->bus), why);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "Valkey %s: %s", bg_bus_where(x->bus), r->str);
        bg_bus_reply_free(r);
        return NULL;
    }
    return r;
}

redisReply *bgctl_command(bgctl *x, char *err, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = bgctl_vcommand(x, x->bus, err, fmt, ap);
    va_end(ap);
    return r;
}

redisReply *bgctl_command_on(bgctl *x, bg_bus *node, char *err, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = bgctl_vcommand(x, node, err, fmt, ap);
    va_end(ap);
    return r;
}

json_t *bgctl_state_load(bgctl *x, char *err)
{
    char key[BG_KEY_MAX + 1];
    json_error_t jerr;
    redisReply *r;
    json_t *doc;

    if (bg_key_gateway_state(&x->names, key, sizeof(key), err) != BG_OK)
        return NULL;
    r = bgctl_command(x, err, "GET %s", key);
    if (r == NULL)
        return NULL;
    if (r->type != REDIS_REPLY_STRING) {
        bg_set_error(err, "no running gateway '%s' found (state key %s missing or expired)",
                     x->cfg.gateway.instance_id, key);
        bg_bus_reply_free(r);
        return NULL;
    }
    doc = json_loadb(r->str, r->len, 0, &jerr);
    if (doc == NULL)
        bg_set_error(err, "state key %s: invalid JSON: %s", key, jerr.text);
    bg_bus_reply_free(r);
    return doc;
}

/* The first line of a multi-line configuration error text. */
static const char *first_line(char *text)
{
    char *nl = strchr(text, '\n');

    if (nl != NULL)
        *nl = '\0';
    return text;
}

/* -c given: it must load. Not given: the default file if it exists, else defaults. */
static int load_config(bgctl *x, const char *path, const char *url, const char *gateway)
{
    char errors[4096], err[BG_ERR_LEN];

    bg_config_defaults(&x->cfg);
    if (path == NULL && access(BG_CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = BG_CONFIG_DEFAULT_PATH;
    if (path != NULL && bg_config_load(path, &x->cfg, errors, sizeof(errors)) != BG_OK) {
        bgctl_fail("%s", first_line(errors));
        return BG_ERR;
    }
    if (url != NULL) {
        if (bg_valkey_url_parse(url, &x->cfg.valkey.addr, err) != BG_OK) {
            bgctl_fail("-u %s: %s", url, err);
            return BG_ERR;
        }
        snprintf(x->cfg.valkey.url, sizeof(x->cfg.valkey.url), "%s", url);
    }
    if (gateway != NULL)
        snprintf(x->cfg.gateway.instance_id, sizeof(x->cfg.gateway.instance_id), "%s", gateway);
    if (bg_name_validate("gateway instance_id", x->cfg.gateway.instance_id, err) != BG_OK) {
        bgctl_fail("%s", err);
        return BG_ERR;
    }
    bg_messaging_names_from_config(&x->names, &x->cfg);
    return BG_OK;
}

static int run_command(bgctl *x, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(bgctl *, int, char **);
    } cmds[] = {{"state", bgctl_cmd_state},
                {"resync", bgctl_cmd_resync},
                {"queues", bgctl_cmd_queues},
                {"dead", bgctl_cmd_dead},
                {"gateways", bgctl_cmd_gateways}};

    for (size_t i = 0; i < BG_ARRAY_LEN(cmds); i++)
        if (strcmp(argv[0], cmds[i].name) == 0)
            return cmds[i].fn(x, argc, argv);
    bgctl_fail("unknown command '%s' (state, resync, queues, dead, gateways)", argv[0]);
    return BGCTL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *url = NULL, *gateway = NULL;
    bgctl x;
    int opt, rc;

    memset(&x, 0, sizeof(x));
    signal(SIGPIPE, SIG_IGN);
    bg_log_set_level(BG_LOG_CRIT); /* the library's reconnect warnings: our errors say it */
    while ((opt = getopt(argc, argv, "+c:u:g:hv")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'g':
            gateway = optarg;
            break;
        case 'h':
            usage(stdout);
            return BGCTL_EXIT_OK;
        case 'v':
            printf("busgatectl %s\n", BUSGATE_VERSION);
            return BGCTL_EXIT_OK;
        default:
            usage(stderr);
            return BGCTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return BGCTL_EXIT_USAGE;
    }
    if (load_config(&x, path, url, gateway) != BG_OK)
        return BGCTL_EXIT_FAIL;
    rc = run_command(&x, argc - optind, argv + optind);
    bg_bus_free(x.bus);
    return rc;
}
