/* bus_token.h: atomic token store on Valkey (set-if-absent with TTL, compare-and-set,
 * compare-and-delete). */
#ifndef BUSGATE_BUS_TOKEN_H
#define BUSGATE_BUS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/bus.h"

/* All calls return BG_OK or BG_ERR (err set); the outcome goes to the int out
 * parameter (1 = done, 0 = condition not met). Values are binary-safe. A ttl_ms
 * of 0 means no expiry; idempotency keys should always carry one. */

/* SET key value NX PX ttl: *won = 1 when this caller stored the token. */
int bg_token_set_nx(bg_bus *bus, const char *key, bg_bytes value, int64_t ttl_ms, int *won,
                    char *err);
/* If key holds expect, replace it with value; ttl_ms 0 keeps the current TTL.
 * Atomic on the server (Lua). *swapped = 0 when the key is missing or differs. */
int bg_token_cas(bg_bus *bus, const char *key, bg_bytes expect, bg_bytes value, int64_t ttl_ms,
                 int *swapped, char *err);
/* If key holds expect, delete it (release a token only its owner holds). */
int bg_token_cad(bg_bus *bus, const char *key, bg_bytes expect, int *deleted, char *err);
/* Read a token: *found = 0 when missing; else *value (malloc, NUL-terminated, caller frees). */
int bg_token_get(bg_bus *bus, const char *key, char **value, size_t *len, int *found, char *err);

#endif
