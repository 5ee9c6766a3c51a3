/* bus_resp.c: a command's argv as RESP, the way Valkey reads it. Ours rather than hiredict's
 * redisFormatCommandArgv (a sprintf per argument) or redisFormatSdsCommandArgv (sdscatfmt):
 * those were a quarter of the client's CPU in bench_bus and ~7% of an echo service's. */
#include <string.h>

#include "busgate/core/text.h"
#include "bus_resp.h"

static char *put_header(char *p, char kind, size_t n)
{
    *p++ = kind;
    p += bg_u64_decimal(n, p);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static size_t arg_len(const char **argv, const size_t *argvlen, int i)
{
    return argvlen != NULL ? argvlen[i] : strlen(argv[i]);
}

size_t bg_bus_resp_size(int argc, const char **argv, const size_t *argvlen)
{
    size_t need = 16; /* "*<argc>\r\n" */

    for (int i = 0; i < argc; i++)
        need += 26 + arg_len(argv, argvlen, i); /* "$<len>\r\n" <arg> "\r\n" */
    return need;
}

size_t bg_bus_resp_encode(char *out, int argc, const char **argv, const size_t *argvlen)
{
    char *p = put_header(out, '*', (size_t)argc);

    for (int i = 0; i < argc; i++) {
        size_t n = arg_len(argv, argvlen, i);
        p = put_header(p, '$', n);
        memcpy(p, argv[i], n);
        p += n;
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - out);
}
