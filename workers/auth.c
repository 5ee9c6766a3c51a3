/* auth.c: the worker's authenticator: key files read before the sandbox, the bearer token
 * of a request found and verified, and the 401/403 answers of RFC 6750. */
#include "auth.h"

#include "busgate/workers/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define AUTH_FILE_MAX (1024 * 1024)

/* The whole file into a malloc'd buffer (NUL-terminated). */
static char *auth_read_file(const char *path, size_t *len, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    ssize_t n = 0;

    *len = 0;
    if (fd < 0 || (buf = malloc(AUTH_FILE_MAX + 1)) == NULL) {
        bg_set_error(err, "%s: %s", path, fd < 0 ? strerror(errno) : "out of memory");
        goto fail;
    }
    while (*len < AUTH_FILE_MAX && (n = read(fd, buf + *len, AUTH_FILE_MAX - *len)) > 0)
        *len += (size_t)n;
    if (n < 0 || *len == AUTH_FILE_MAX) {
        bg_set_error(err, "%s: %s", path, n < 0 ? strerror(errno) : "larger than 1 MiB");
        goto fail;
    }
    buf[*len] = '\0';
    close(fd);
    return buf;
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* An HMAC secret file holds the raw secret; a trailing newline is an editor's, not the key's. */
static int auth_add_file(bg_auth *a, int kind, const char *path, char *err)
{
    const char *alg = a->cfg->auth.algorithm;
    char inner[BG_ERR_LEN];
    size_t len;
    char *buf = auth_read_file(path, &len, err);
    int rc;

    if (buf == NULL)
        return BG_ERR;
    if (kind == 'j') {
        rc = bg_jwt_keyset_add_jwks(&a->keys, buf, len, alg, inner);
    } else if (kind == 'p') {
        rc = bg_jwt_keyset_add_pem(&a->keys, buf, len, alg, inner);
    } else {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        rc = bg_jwt_keyset_add_secret(&a->keys, buf, len, alg, inner);
    }
    if (rc != BG_OK)
        bg_set_error(err, "%s: %s", path, inner);
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

int bg_auth_init(bg_auth *a, const bg_config *cfg, char *err)
{
    memset(a, 0, sizeof(*a));
    a->cfg = cfg;
    a->policy.issuer = cfg->auth.issuer;
    a->policy.audience = cfg->auth.audience;
    a->policy.leeway_s = cfg->auth.leeway_ms / 1000;
    a->policy.max_size = cfg->auth.max_token_size;
    if ((cfg->auth.jwks_file[0] && auth_add_file(a, 'j', cfg->auth.jwks_file, err) != BG_OK) ||
        (cfg->auth.public_key_file[0] &&
         auth_add_file(a, 'p', cfg->auth.public_key_file, err) != BG_OK) ||
        (cfg->auth.hmac_secret_file[0] &&
         auth_add_file(a, 's', cfg->auth.hmac_secret_file, err) != BG_OK))
        goto fail;
    if (a->keys.n == 0) {
        bg_set_error(err, "[auth] has no signing key (a JWKS with only encryption keys?)");
        goto fail;
    }
    if (bg_jwt_keyset_warm(&a->keys, err) == BG_OK)
        return BG_OK;
fail:
    bg_jwt_keyset_free(&a->keys);
    return BG_ERR;
}

int bg_worker_auth_check(const bg_config *cfg, char *err)
{
    static bg_auth a; /* the cache makes it large; the master's one thread only */

    if (!cfg->auth.enabled)
        return BG_OK;
    if (bg_auth_init(&a, cfg, err) != BG_OK)
        return BG_ERR;
    bg_auth_free(&a);
    return BG_OK;
}

void bg_auth_free(bg_auth *a)
{
    if (a == NULL)
        return;
    bg_auth_cache_clear(a);
    bg_jwt_keyset_free(&a->keys);
}

/* 1: one "Bearer <token>"; 0: none (no Authorization, or another scheme); -1: malformed. */
static int auth_bearer(const bg_http_request *req, const char **tok, size_t *len)
{
    const bg_http_header *h = NULL;
    const char *p;
    size_t n;

    for (size_t i = 0; i < req->nheaders; i++) {
        const bg_http_header *c = &req->headers[i];
        if (!bg_http_token_eq(c->name.ptr, c->name.len, "authorization"))
            continue;
        if (h != NULL)
            return -1; /* two credentials: which one would the service trust? */
        h = c;
    }
    if (h == NULL || h->value.len < 6 || strncasecmp(h->value.ptr, "bearer", 6) != 0)
        return 0;
    p = h->value.ptr + 6;
    n = h->value.len - 6;
    if (n > 0 && p[0] != ' ' && p[0] != '\t')
        return 0; /* "Bearerx": another scheme */
    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0 || memchr(p, ' ', n) != NULL)
        return -1;
    *tok = p;
    *len = n;
    return 1;
}

/* scope="a b": the route's claims, space-separated, without what a quoted-string cannot hold. */
static void auth_scope(const char *claims, char *out, size_t size)
{
    size_t o = 0;

    for (const char *p = claims; *p != '\0' && o + 1 < size; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            continue;
        out[o++] = *p == ',' ? ' ' : *p;
    }
    out[o] = '\0';
}

static void auth_refuse(bg_auth_result *out, const bg_config *cfg, int status, const char *error,
                        const char *route_claims, const char *detail)
{
    /* realm (127) + scope (511) + the fixed text stay well inside the challenge buffer; the
     * CRLF is written last and always fits, so a cut could never split the header line. */
    char scope[BG_AUTH_CHALLENGE_MAX / 2] = "", params[BG_AUTH_CHALLENGE_MAX] = "";

    out->status = status;
    snprintf(out->detail, sizeof(out->detail), "%s", detail);
    if (error != NULL && status == 401)
        snprintf(params, sizeof(params), ", error=\"%s\", error_description=\"%s\"", error, detail);
    if (error != NULL && status == 403) {
        auth_scope(route_claims, scope, sizeof(scope));
        snprintf(params, sizeof(params), ", error=\"%s\", scope=\"%s\"", error, scope);
    }
    snprintf(out->challenge, sizeof(out->challenge) - 2, "WWW-Authenticate: Bearer realm=\"%s\"%s",
             cfg->auth.realm, params);
    strcat(out->challenge, "\r\n");
}

/* The first claim of the comma-separated list that the token does not hold, or NULL. */
static const char *auth_missing(const bg_config *cfg, json_t *claims, const char *list, size_t *len)
{
    const char *p = list;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        *len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (*len > 0 && !bg_auth_claim_held(cfg, claims, p, *len))
            return p;
        p += *len + (end != NULL);
    }
    return NULL;
}

static void auth_verified(const bg_config *cfg, const char *route_claims, bg_auth_result *out)
{
    char detail[sizeof(out->detail)];
    const char *miss;
    size_t len;

    miss = auth_missing(cfg, out->claims, route_claims, &len);
    if (miss == NULL)
        return;
    json_decref(out->claims);
    out->claims = NULL;
    out->text = NULL;
    snprintf(detail, sizeof(detail), "the token does not hold the claim '%.*s'",
             (int)(len > 100 ? 100 : len), miss);
    auth_refuse(out, cfg, 403, "insufficient_scope", route_claims, detail);
}

void bg_auth_from_cert(const bg_config *cfg, const char *subject, const char *route_claims,
                       bg_auth_result *out)
{
    out->status = 0;
    out->text = NULL;
    out->detail[0] = out->challenge[0] = '\0';
    out->claims = json_pack("{s:s, s:[s]}", "sub", subject, "amr", "mtls");
    if (out->claims == NULL) {
        auth_refuse(out, cfg, 401, NULL, NULL, "the client certificate's subject is not usable");
        return;
    }
    auth_verified(cfg, route_claims, out);
}

void bg_auth_request(bg_auth *a, const bg_config *cfg, const bg_http_request *req,
                     const char *route_claims, int64_t now_s, bg_auth_result *out)
{
    int protect = route_claims[0] != '\0' || cfg->auth.require_all, has;
    const char *tok = NULL;
    size_t len = 0;
    bg_jwt_status st;

    out->status = 0;
    out->claims = NULL;
    out->text = NULL;
    out->detail[0] = out->challenge[0] = '\0';
    if (a == NULL) {
        /* Fail closed: a service asked for claims, and nothing here can establish them. */
        if (route_claims[0] != '\0')
            auth_refuse(out, cfg, 401, NULL, NULL,
                        "this endpoint requires claims and the gateway verifies no tokens");
        return;
    }
    has = auth_bearer(req, &tok, &len);
    if (has == 0) {
        if (protect)
            auth_refuse(out, cfg, 401, NULL, NULL, "this endpoint requires a bearer token");
        return;
    }
    if (has < 0) {
        auth_refuse(out, cfg, 401, "invalid_token", NULL,
                    "the request does not carry exactly one bearer token");
        return;
    }
    if ((out->claims = bg_auth_cache_get(a, tok, len, now_s, &out->text)) == NULL) {
        st = bg_jwt_verify(&a->keys, &a->policy, tok, len, now_s, &out->claims);
        if (st != BG_JWT_OK) {
            auth_refuse(out, cfg, 401, "invalid_token", NULL, bg_jwt_status_str(st));
            return;
        }
        out->text = bg_auth_cache_put(a, tok, len, out->claims);
    }
    auth_verified(cfg, route_claims, out);
}
