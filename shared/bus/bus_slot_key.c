/* bus_slot_key.c: which argument of a command is its key, read from the RESP-encoded command
 * (bus_slot.h): what a cluster client routes by. */
#include "busgate/bus/bus_slot.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_SCAN_ARGS 40 /* XREAD ... STREAMS is within the first few; EVAL's key is the 4th */

typedef struct resp_arg {
    const char *p;
    size_t n;
} resp_arg;

/* "<kind><number>\r\n" at *pos; advances past it. -1 when malformed. */
static long resp_header(const char *cmd, size_t len, size_t *pos, char kind)
{
    char *end;
    long v;

    if (*pos >= len || cmd[*pos] != kind)
        return -1;
    v = strtol(cmd + *pos + 1, &end, 10);
    if (end == cmd + *pos + 1 || v < 0 || (size_t)(end - cmd) + 2 > len || end[0] != '\r' ||
        end[1] != '\n')
        return -1;
    *pos = (size_t)(end - cmd) + 2;
    return v;
}

/* The first max arguments of a RESP array of bulk strings; how many, or -1. */
static int resp_args(const char *cmd, size_t len, resp_arg *out, int max)
{
    size_t pos = 0;
    long argc = resp_header(cmd, len, &pos, '*');
    int n = 0;

    if (argc < 1)
        return -1;
    while (n < argc && n < max) {
        long l = resp_header(cmd, len, &pos, '$');
        if (l < 0 || pos + (size_t)l + 2 > len)
            return -1;
        out[n].p = cmd + pos;
        out[n].n = (size_t)l;
        pos += (size_t)l + 2;
        n++;
    }
    return n;
}

static int arg_is(const resp_arg *a, const char *word)
{
    return a->n == strlen(word) && strncasecmp(a->p, word, a->n) == 0;
}

/* Commands without a key: any node answers them (or each must: the caller decides). */
static int cmd_keyless(const resp_arg *name)
{
    static const char *const names[] = {
        "PING",    "SCRIPT", "CLUSTER", "INFO",     "CLIENT",  "SCAN", "DBSIZE",   "TIME",
        "ROLE",    "HELLO",  "AUTH",    "SELECT",   "CONFIG",  "WAIT", "ASKING",   "READONLY",
        "PUBLISH", "ECHO",   "COMMAND", "FLUSHALL", "FLUSHDB", "KEYS", "FUNCTION", "LATENCY"};

    for (size_t i = 0; i < BG_ARRAY_LEN(names); i++)
        if (arg_is(name, names[i]))
            return 1;
    return 0;
}

/* The index of the key among a[0..n), or -1 when there is none (or it lies past a[n-1]). */
static int cmd_key_index(const resp_arg *a, int n)
{
    if (cmd_keyless(&a[0]))
        return -1;
    if (arg_is(&a[0], "XREAD") || arg_is(&a[0], "XREADGROUP")) {
        for (int i = 1; i + 1 < n; i++)
            if (arg_is(&a[i], "STREAMS"))
                return i + 1;
        return -1;
    }
    if (arg_is(&a[0], "XGROUP") || arg_is(&a[0], "XINFO") || arg_is(&a[0], "OBJECT") ||
        arg_is(&a[0], "MEMORY"))
        return 2;
    if (arg_is(&a[0], "EVAL") || arg_is(&a[0], "EVALSHA") || arg_is(&a[0], "EVAL_RO") ||
        arg_is(&a[0], "EVALSHA_RO") || arg_is(&a[0], "FCALL") || arg_is(&a[0], "FCALL_RO")) {
        if (n < 3 || a[2].n == 0 || (a[2].n == 1 && a[2].p[0] == '0'))
            return -1;
        return 3;
    }
    return 1; /* XADD, XACK, XAUTOCLAIM, XPENDING, XTRIM, XLEN, XRANGE, SET, GET, DEL, ... */
}

int bg_slot_of_command(const char *cmd, size_t len, uint16_t *slot)
{
    resp_arg a[KEY_SCAN_ARGS];
    int n = resp_args(cmd, len, a, KEY_SCAN_ARGS), k;

    if (n < 1)
        return -1;
    k = cmd_key_index(a, n);
    if (k < 0 || k >= n)
        return 0;
    *slot = bg_slot_of(a[k].p, a[k].n);
    return 1;
}
