/* bus_cache.c: binary-safe get / set with TTL / delete on Valkey strings. */
#include "busgate/bus_cache.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NULL (already described in err) or an error reply become BG_ERR. */
static int cache_check(redisReply *r, const char *what, const char *key, char *err)
{
    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "%s %s: %s", what, key, r->str);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_cache_set(bg_bus *bus, const char *key, bg_bytes value, int64_t ttl_ms, char *err)
{
    char ttl[24];
    const char *argv[] = {"SET", key, value.ptr, "PX", ttl};
    size_t argvlen[] = {3, strlen(key), value.len, 2, 0};
    redisReply *r;
    int rc;

    if (ttl_ms < 0) {
        bg_set_error(err, "cache set %s: negative TTL %" PRId64 " ms", key, ttl_ms);
        return BG_ERR;
    }
    argvlen[4] = (size_t)snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    r = bg_bus_command_argv(bus, ttl_ms > 0 ? 5 : 3, argv, argvlen, err);
    rc = cache_check(r, "cache set", key, err);
    freeReplyObject(r);
    return rc;
}

/* Copy a bulk string out of the reply, which hiredis frees with itself. */
static int cache_copy(const redisReply *r, char **value, size_t *len, const char *key, char *err)
{
    char *copy = malloc(r->len + 1);

    if (copy == NULL) {
        bg_set_error(err, "cache get %s: out of memory for %zu bytes", key, r->len);
        return BG_ERR;
    }
    memcpy(copy, r->str, r->len);
    copy[r->len] = '\0';
    *value = copy;
    *len = r->len;
    return BG_OK;
}

int bg_cache_get(bg_bus *bus, const char *key, char **value, size_t *len, int *found, char *err)
{
    const char *argv[] = {"GET", key};
    size_t argvlen[] = {3, strlen(key)};
    redisReply *r = bg_bus_command_argv(bus, 2, argv, argvlen, err);
    int rc = cache_check(r, "cache get", key, err);

    *value = NULL;
    *len = 0;
    *found = 0;
    if (rc != BG_OK)
        goto cleanup;
    if (r->type == REDIS_REPLY_NIL)
        goto cleanup;
    if (r->type != REDIS_REPLY_STRING) {
        bg_set_error(err, "cache get %s: unexpected reply type %d", key, r->type);
        rc = BG_ERR;
        goto cleanup;
    }
    rc = cache_copy(r, value, len, key, err);
    *found = rc == BG_OK;
cleanup:
    freeReplyObject(r);
    return rc;
}

int bg_cache_del(bg_bus *bus, const char *key, int *deleted, char *err)
{
    const char *argv[] = {"DEL", key};
    size_t argvlen[] = {3, strlen(key)};
    redisReply *r = bg_bus_command_argv(bus, 2, argv, argvlen, err);
    int rc = cache_check(r, "cache del", key, err);

    if (rc == BG_OK && deleted != NULL)
        *deleted = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    return rc;
}
