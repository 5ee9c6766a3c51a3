/* auth.h: bearer-token authentication of routed requests ([auth]): the verified identity,
 * the claims a route requires, and the identity headers passed on to the service. */
#ifndef BUSGATE_AUTH_H
#define BUSGATE_AUTH_H

#include <jansson.h>
#include <stddef.h>

#include "busgate/config/config.h"
#include "http_parser.h"
#include "jwt.h"

/* Room for 'WWW-Authenticate: Bearer realm="...", error="...", scope="..."' with a whole
 * route claims list (BG_RT_CLAIMS_MAX) in it. */
#define BG_AUTH_CHALLENGE_MAX 1024

/* Verified tokens a worker remembers (auth_cache.c); a power of two is not needed. */
#define BG_AUTH_CACHE_SLOTS 512

typedef struct bg_auth_cache_entry {
    char *tok; /* the whole token, NULL = empty slot */
    size_t len;
    json_t *claims;
    char *text;      /* claims as compact JSON, made once (X-User-Claims, meta.claims) */
    double exp, nbf; /* re-checked on every hit */
} bg_auth_cache_entry;

/* A worker's authenticator: the keys, read before the sandbox, the policy, and the tokens
 * it verified lately (the keys and policy never change while a worker lives). */
typedef struct bg_auth {
    const bg_config *cfg;
    bg_jwt_keyset keys;
    bg_jwt_policy policy;
    bg_auth_cache_entry cache[BG_AUTH_CACHE_SLOTS];
} bg_auth;

/* The answer for one request. status 0: go on (claims NULL = anonymous on a public
 * route); 401 or 403: answer with detail and the challenge header line. */
typedef struct bg_auth_result {
    int status;
    json_t *claims; /* the verified token's payload; the caller decrefs */
    /* claims as compact JSON, borrowed from the cache until the next bg_auth_request on
     * the same bg_auth; NULL: make it from claims */
    const char *text;
    char detail[160];
    char challenge[BG_AUTH_CHALLENGE_MAX]; /* "WWW-Authenticate: ...\r\n" */
} bg_auth_result;

/* Reads the key files of cfg->auth into a (which keeps cfg). BG_ERR with the reason. */
int bg_auth_init(bg_auth *a, const bg_config *cfg, char *err);
void bg_auth_free(bg_auth *a);

/* Decides a routed request: route_claims is the route's comma-separated list ("" = none).
 * a NULL means no [auth]: routes with claims are refused (nobody can prove them). A token
 * present is always verified, also on a public route. now_s: Unix seconds. */
void bg_auth_request(bg_auth *a, const bg_config *cfg, const bg_http_request *req,
                     const char *route_claims, int64_t now_s, bg_auth_result *out);

/* A request without an Authorization header on a connection whose client certificate
 * was verified against [tls] client_ca (mTLS): the certificate's subject (RFC 2253) is the
 * identity, as claims {"sub": subject, "amr": ["mtls"]}; a route's claims are checked
 * against those (a "sub=<subject>" claim can name a client whose subject has no comma),
 * so most protected routes still need a token (403 insufficient_scope). */
void bg_auth_from_cert(const bg_config *cfg, const char *subject, const char *route_claims,
                       bg_auth_result *out);

/* auth_cache.c: the claims of tok when it was verified before and its exp/nbf still hold
 * now (a new reference), else NULL; put remembers a verified token (claims referenced). */
json_t *bg_auth_cache_get(bg_auth *a, const char *tok, size_t len, int64_t now_s,
                          const char **text);
const char *bg_auth_cache_put(bg_auth *a, const char *tok, size_t len, json_t *claims);
void bg_auth_cache_clear(bg_auth *a);

/* auth_claims.c: 1 when the verified claims hold the claim c[0..len): in scope/scp, in one
 * of the array claims, or (c = "name=value") claim name equal to value. */
int bg_auth_claim_held(const bg_config *cfg, json_t *claims, const char *c, size_t len);

/* auth_identity.c: the headers a verified token gives (X-User-Id from sub, X-User-Roles,
 * X-User-Claims, [identity] claim_headers), each through emit; stops at its first BG_ERR.
 * Values that could not travel as a header (control bytes) are left out. text: claims as
 * compact JSON when known (NULL: made here). */
typedef int (*bg_auth_emit_fn)(void *arg, const char *name, size_t nlen, const char *value,
                               size_t vlen);
int bg_auth_identity(const bg_config *cfg, json_t *claims, const char *text, bg_auth_emit_fn emit,
                     void *arg);

#endif
