/* bus_cache.h: a binary-safe key/value cache on Valkey: get, set with TTL, delete. */
#ifndef BUSGATE_BUS_CACHE_H
#define BUSGATE_BUS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/bus.h"

/* Store value under key, replacing any old value; ttl_ms 0 = no expiry. */
int bg_cache_set(bg_bus *bus, const char *key, bg_bytes value, int64_t ttl_ms, char *err);
/* *found = 0 when missing or expired; else *value (malloc, NUL-terminated so text
 * can be used as a string, caller frees) and *len. */
int bg_cache_get(bg_bus *bus, const char *key, char **value, size_t *len, int *found, char *err);
/* *deleted (may be NULL) = 1 when the key existed. */
int bg_cache_del(bg_bus *bus, const char *key, int *deleted, char *err);

#endif
