/* bus_resp.h: RESP-encoding a command's argv (bus_resp.c), for bus_conn.c and bus_async.c. */
#ifndef BUSGATE_BUS_RESP_H
#define BUSGATE_BUS_RESP_H

#include <stddef.h>

/* The most bytes bg_bus_resp_encode writes for argv (argvlen NULL = C strings). */
size_t bg_bus_resp_size(int argc, const char **argv, const size_t *argvlen);
/* Encodes argv into out, which holds bg_bus_resp_size bytes; returns the length. */
size_t bg_bus_resp_encode(char *out, int argc, const char **argv, const size_t *argvlen);

#endif
