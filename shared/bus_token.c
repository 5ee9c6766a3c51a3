/* bus_token.c: atomic token store: SET NX PX, and compare-and-set / compare-and-delete in Lua. */
#include "busgate/bus_token.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "busgate/bus_cache.h"

typedef struct token_script {
    const char *body;
    char sha[41];
} token_script;

/* GET and the write in one script: nothing can slip in between on the server. */
static token_script token_cas_script = {
    .body = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
            "if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') "
            "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end "
            "return 1",
};
static token_script token_cad_script = {
    .body = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
            "redis.call('DEL', KEYS[1]) return 1",
};
static pthread_once_t token_sha_once = PTHREAD_ONCE_INIT;

static void token_sha1_hex(token_script *s)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;

    if (EVP_Digest(s->body, strlen(s->body), md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return; /* sha stays "": EVALSHA fails with NOSCRIPT and EVAL takes over */
    for (i = 0; i < mdlen; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 0xf];
    }
    s->sha[40] = '\0';
}

static void token_init_shas(void)
{
    token_sha1_hex(&token_cas_script);
    token_sha1_hex(&token_cad_script);
}

/* EVALSHA first (saves sending the body); after a restart or SCRIPT FLUSH the
 * server answers NOSCRIPT and EVAL both runs and caches the script again. */
static redisReply *token_eval(bg_bus *bus, const token_script *s, int argc, const char **argv,
                              size_t *argvlen, char *err)
{
    redisReply *r;

    pthread_once(&token_sha_once, token_init_shas);
    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = s->sha;
    argvlen[1] = strlen(s->sha);
    r = bg_bus_command_argv(bus, argc, argv, argvlen, err);
    if (r == NULL || r->type != REDIS_REPLY_ERROR || strncmp(r->str, "NOSCRIPT", 8) != 0)
        return r;
    freeReplyObject(r);
    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = s->body;
    argvlen[1] = strlen(s->body);
    return bg_bus_command_argv(bus, argc, argv, argvlen, err);
}

/* An integer reply becomes *out; anything else is an error naming the call. */
static int token_int_reply(redisReply *r, const char *what, const char *key, int *out, char *err)
{
    int rc = BG_ERR;

    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_ERROR)
        bg_set_error(err, "%s %s: %s", what, key, r->str);
    else if (r->type != REDIS_REPLY_INTEGER)
        bg_set_error(err, "%s %s: unexpected reply type %d", what, key, r->type);
    else {
        *out = r->integer != 0;
        rc = BG_OK;
    }
    freeReplyObject(r);
    return rc;
}

static int token_check_ttl(int64_t ttl_ms, const char *what, const char *key, char *err)
{
    if (ttl_ms >= 0)
        return BG_OK;
    bg_set_error(err, "%s %s: negative TTL %" PRId64 " ms", what, key, ttl_ms);
    return BG_ERR;
}

int bg_token_set_nx(bg_bus *bus, const char *key, bg_bytes value, int64_t ttl_ms, int *won,
                    char *err)
{
    char ttl[24];
    const char *argv[] = {"SET", key, value.ptr, "NX", "PX", ttl};
    size_t argvlen[] = {3, strlen(key), value.len, 2, 2, 0};
    redisReply *r;

    *won = 0;
    if (token_check_ttl(ttl_ms, "token set", key, err) != BG_OK)
        return BG_ERR;
    argvlen[5] = (size_t)snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    r = bg_bus_command_argv(bus, ttl_ms > 0 ? 6 : 4, argv, argvlen, err);
    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "token set %s: %s", key, r->str);
        freeReplyObject(r);
        return BG_ERR;
    }
    /* +OK when stored, a nil reply when the key was already held. */
    *won = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return BG_OK;
}

int bg_token_cas(bg_bus *bus, const char *key, bg_bytes expect, bg_bytes value, int64_t ttl_ms,
                 int *swapped, char *err)
{
    char ttl[24];
    const char *argv[] = {NULL, NULL, "1", key, expect.ptr, value.ptr, ttl};
    size_t argvlen[] = {0, 0, 1, strlen(key), expect.len, value.len, 0};

    *swapped = 0;
    if (token_check_ttl(ttl_ms, "token cas", key, err) != BG_OK)
        return BG_ERR;
    argvlen[6] = (size_t)snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    return token_int_reply(token_eval(bus, &token_cas_script, 7, argv, argvlen, err), "token cas",
                           key, swapped, err);
}

int bg_token_cad(bg_bus *bus, const char *key, bg_bytes expect, int *deleted, char *err)
{
    const char *argv[] = {NULL, NULL, "1", key, expect.ptr};
    size_t argvlen[] = {0, 0, 1, strlen(key), expect.len};

    *deleted = 0;
    return token_int_reply(token_eval(bus, &token_cad_script, 5, argv, argvlen, err), "token cad",
                           key, deleted, err);
}

int bg_token_get(bg_bus *bus, const char *key, char **value, size_t *len, int *found, char *err)
{
    /* A token is a plain string value: reading one is a cache read. */
    return bg_cache_get(bus, key, value, len, found, err);
}
