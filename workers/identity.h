/* identity.h: the reserved identity header policy: which client headers never reach a service. */
#ifndef BUSGATE_IDENTITY_H
#define BUSGATE_IDENTITY_H

#include <stddef.h>

#include "busgate/common.h"

#define BG_IDENTITY_MAX_NAMES 128
#define BG_IDENTITY_NAME_MAX 127

/* Header the gateway sets on every REQUEST (inside the reserved prefix when it is the
 * default "X-Gateway-"): the request id, so a service can log it with its own lines. */
#define BG_IDENTITY_REQUEST_ID_HEADER "X-Gateway-Request-Id"

/* Reserved names (cfg->identity.reserved_headers, "A, B, C") and the reserved prefix
 * (cfg->identity.reserved_prefix). Client headers matching either (case-insensitive)
 * are removed before dispatch; only the gateway sets such headers. */
typedef struct bg_identity {
    size_t n;
    struct {
        char name[BG_IDENTITY_NAME_MAX + 1];
        size_t len;
    } names[BG_IDENTITY_MAX_NAMES];
    char prefix[64];
    size_t prefix_len;
} bg_identity;

int bg_identity_init(bg_identity *id, const char *list, const char *prefix, char *err);
/* One more reserved name (the [identity] claim_headers the gateway sets from a token). */
int bg_identity_add(bg_identity *id, const char *name, size_t len, char *err);
/* 1 when a client header with this name must be removed. */
int bg_identity_reserved(const bg_identity *id, const char *name, size_t len);

#endif
