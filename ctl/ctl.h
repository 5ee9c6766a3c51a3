/* ctl.h: busgatectl internals: the shared context and one function per command. */
#ifndef BUSGATE_CTL_H
#define BUSGATE_CTL_H

#include <jansson.h>

#include "busgate/bus/bus.h"
#include "busgate/config/config.h"
#include "busgate/proto/keys.h"

/* Exit codes (busgatectl(1)). */
#define BGCTL_EXIT_OK 0
#define BGCTL_EXIT_FAIL 1
#define BGCTL_EXIT_USAGE 2

typedef struct bgctl {
    bg_config cfg;
    bg_messaging_names names; /* points into cfg */
    bg_bus *bus;              /* connected by bgctl_connect */
} bgctl;

/* The string member key of a state document object, "" when absent or not a string. */
static inline const char *bgctl_jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? s : "";
}

/* Prints "busgatectl: <message>" on stderr (one line). */
void bgctl_fail(const char *fmt, ...) BG_PRINTF(1, 2);

/* One blocking connection to the configured Valkey; on failure the reason
 * is printed ("cannot reach Valkey: ...") and BG_ERR returned. Commands
 * call it after parsing their options. */
int bgctl_connect(bgctl *x);
/* The gateway's state document; NULL with err "no running gateway 'X' found
 * (state key K missing or expired)" when it does not exist. */
json_t *bgctl_state_load(bgctl *x, char *err);
/* Every gateway with a state document on the bus, sorted by name: an array of {gateway,
 * pid, version, started_ms, time_ms, generation, services, connections}; NULL, err set. */
json_t *bgctl_gateways_load(bgctl *x, char *err);
/* One command whose reply must not be an error; NULL with err set. */
redisReply *bgctl_command(bgctl *x, char *err, const char *fmt, ...);
/* The same on one node of the bus (bg_bus_node: SCAN runs on every primary of a cluster). */
redisReply *bgctl_command_on(bgctl *x, bg_bus *node, char *err, const char *fmt, ...);

/* Commands: argv[0] is the command name; they return the exit code. */
int bgctl_cmd_state(bgctl *x, int argc, char **argv);
int bgctl_cmd_resync(bgctl *x, int argc, char **argv);
int bgctl_cmd_queues(bgctl *x, int argc, char **argv);
int bgctl_cmd_dead(bgctl *x, int argc, char **argv);
int bgctl_cmd_gateways(bgctl *x, int argc, char **argv);

#endif
