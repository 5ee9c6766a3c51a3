/* dispatch_idem.c: Idempotency-Key: claim the key on the bus before the REQUEST goes out,
 * replay a finished answer, refuse a retry of a request still in flight, store the answer.
 * Turns the bus's at-least-once into exactly-once-observed for clients that send a key. */
#include "dispatch_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"
#include "busgate/core/text.h"
#include "busgate/proto/idem_record.h"

/* An in-flight record outlives the request's deadline by this much, so a retry sent just
 * after a 504 still finds it (the service may still be working on the first try). */
#define IDEM_PENDING_GRACE_MS 5000

/* Deletes the record only while it is still the one this request wrote. */
#define IDEM_LUA_RELEASE                                                                           \
    "if redis.call('GET',KEYS[1])==ARGV[1] then return redis.call('DEL',KEYS[1]) end return 0"

/* Fetched and allocated once: an implicit fetch per digest is slow, and one context is
 * initialised again for each digest. */
static EVP_MD *idem_sha256;
static EVP_MD_CTX *idem_ctx;

int bg_dispatch_idem_setup(char *err)
{
    if (idem_sha256 == NULL)
        idem_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (idem_ctx == NULL)
        idem_ctx = EVP_MD_CTX_new();
    if (idem_sha256 == NULL || idem_ctx == NULL) {
        bg_set_error(err, "OpenSSL has no SHA-256");
        return BG_ERR;
    }
    return BG_OK;
}

/* Lowercase hex SHA-256 of the parts, each followed by a NUL so that parts cannot run
 * into each other ("ab"+"c" differs from "a"+"bc"). */
static int idem_digest(const bg_bytes *parts, size_t n, char out[BG_IDEM_FP_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = idem_ctx;
    int ok = ctx != NULL && idem_sha256 != NULL && EVP_DigestInit_ex(ctx, idem_sha256, NULL) == 1;

    for (size_t i = 0; ok && i < n; i++)
        ok = (parts[i].len == 0 || EVP_DigestUpdate(ctx, parts[i].ptr, parts[i].len) == 1) &&
             EVP_DigestUpdate(ctx, "", 1) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen * 2 == BG_IDEM_FP_LEN;
    if (!ok)
        return BG_ERR;
    bg_hex_encode(md, mdlen, out);
    return BG_OK;
}

/* The record's key names the route and the client's key; the fingerprint is the rest of
 * the request, so a key reused for another request is told apart (422). */
static int idem_names(bg_dispatch *d, bg_xchg *x, char *err)
{
    bg_bytes key_parts[] = {
        {x->method, strlen(x->method)}, {x->path, x->path_len}, {x->idem_key, strlen(x->idem_key)}};
    bg_bytes fp_parts[] = {{x->method, strlen(x->method)},
                           {x->path, x->path_len},
                           {x->query, x->query != NULL ? x->query_len : 0},
                           {x->body.p, x->body.len}};
    char digest[BG_IDEM_FP_LEN + 1];

    if (idem_digest(key_parts, BG_ARRAY_LEN(key_parts), digest) != BG_OK ||
        idem_digest(fp_parts, BG_ARRAY_LEN(fp_parts), x->idem_fp) != BG_OK) {
        bg_set_error(err, "SHA-256 failed");
        return BG_ERR;
    }
    return bg_key_idempotency(&d->names, x->match.service, digest, x->idem_vkey,
                              sizeof(x->idem_vkey), err);
}

static void idem_on_settled(bg_abus *b, redisReply *reply, void *arg)
{
    (void)b;
    (void)arg;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        bg_warn("idempotency record not updated: %s", reply != NULL ? reply->str : "bus down");
}

/* The stored answer is in Valkey: only now the client gets it, so a retry it sends at
 * once finds the answer, not the in-flight record (it may reach another worker). */
static void idem_on_stored(bg_abus *b, redisReply *reply, void *arg)
{
    bg_xchg *x = arg;

    idem_on_settled(b, reply, NULL);
    bg_xchg_done(x, x->status);
    bg_xchg_drop_bus(x);
}

/* Gives the key back (the request failed, so a retry may run it again), unless the
 * record is no longer the one this request wrote. */
static void idem_release(bg_dispatch *d, bg_xchg *x)
{
    size_t plen;
    char *pending = bg_idem_encode_pending(x->idem_fp, x->id, &plen);
    const char *argv[] = {"EVAL", IDEM_LUA_RELEASE, "1", x->idem_vkey, pending};
    size_t argvlen[] = {4, strlen(IDEM_LUA_RELEASE), 1, strlen(x->idem_vkey), plen};

    if (pending == NULL ||
        bg_abus_command_argv(d->bus, idem_on_settled, NULL, 5, argv, argvlen) != BG_OK)
        bg_warn("request %s: idempotency record %s not released (bus down or out of memory)", x->id,
                x->idem_vkey);
    free(pending);
}

/* SET XX, not a compare-and-set script: the record is still this request's in-flight one,
 * since it lives IDEM_PENDING_GRACE_MS past the deadline and the answer came before the
 * deadline. Only a lost write (a failover, a flush) can have changed it, and then a retry
 * that ran meanwhile was a second run anyway; XX keeps a flushed key gone. */
static int idem_store(bg_dispatch *d, bg_xchg *x, const char *done, size_t len)
{
    char ttl[32];
    const char *argv[] = {"SET", x->idem_vkey, done, "XX", "PX", ttl};
    size_t argvlen[] = {3, strlen(x->idem_vkey), len, 2, 2, 0};

    argvlen[5] =
        (size_t)snprintf(ttl, sizeof(ttl), "%lld", (long long)d->wk->cfg->idempotency.ttl_ms);
    if (bg_abus_command_argv(d->bus, idem_on_stored, x, 6, argv, argvlen) != BG_OK) {
        bg_warn("request %s: idempotency record %s not stored (bus down)", x->id, x->idem_vkey);
        return BG_ERR;
    }
    bg_xchg_hold_bus(x); /* dropped by idem_on_stored */
    return BG_OK;
}

/* Stores what the service answered, for replays; a failure (5xx, a refused answer) is
 * not stored: the record goes, and a retry runs the request again. */
int bg_dispatch_idem_settle(bg_dispatch *d, bg_xchg *x, const bg_frame *f)
{
    const bg_config *cfg = d->wk->cfg;
    size_t len;
    char *done;
    int rc;

    if (x->idem != BG_IDEM_OWNED)
        return 0;
    x->idem = BG_IDEM_SETTLED;
    if (f == NULL || f->status >= 500 || f->status < 200 ||
        f->meta_json.len + f->body.len > cfg->idempotency.max_response) {
        if (f != NULL && f->status < 500 && f->status >= 200)
            bg_notice("request %s: response of %zu bytes not kept for Idempotency-Key replays "
                      "(max_response)",
                      x->id, f->body.len);
        idem_release(d, x);
        return 0;
    }
    done = bg_idem_encode_done(x->idem_fp, f->status, f->meta_json, f->body, &len);
    if (done == NULL) {
        idem_release(d, x);
        return 0;
    }
    x->status = f->status;
    rc = idem_store(d, x, done, len);
    free(done);
    return rc == BG_OK;
}

/* The record found under the key decides: replay, in flight (409), other request (422). */
static void idem_found(bg_dispatch *d, bg_xchg *x, const redisReply *reply)
{
    char err[BG_ERR_LEN];
    bg_idem_record rec;

    (void)d;
    if (bg_idem_decode(reply->str, reply->len, &rec, err) != BG_OK) {
        bg_warn("request %s: key %s holds no record of ours: %s", x->id, x->idem_vkey, err);
        bg_xchg_problem(x, 409, "the Idempotency-Key is in use by something else", NULL);
        return;
    }
    if (strcmp(rec.fingerprint, x->idem_fp) != 0) {
        bg_xchg_problem(x, 422, "the Idempotency-Key was already used for a different request",
                        NULL);
        return;
    }
    if (!rec.done) {
        bg_xchg_problem(x, 409, "a request with this Idempotency-Key is still in flight",
                        "Retry-After: 1\r\n");
        return;
    }
    bg_dispatch_answer_replay(x, rec.status, rec.meta, rec.body);
}

static void idem_on_claim(bg_abus *b, redisReply *reply, void *arg)
{
    bg_xchg *x = arg;
    bg_dispatch *d = x->wk->dispatch;

    (void)b;
    if (reply != NULL && reply->type == REDIS_REPLY_NIL && x->conn != NULL) {
        x->idem = BG_IDEM_OWNED;
        bg_dispatch_send_now(d, x);
        bg_xchg_drop_bus(x);
        return;
    }
    /* Not sent: a breaker's admission is handed back without a verdict. */
    bg_dispatch_guard_done(d, x, 0);
    if (reply != NULL && reply->type == REDIS_REPLY_NIL) {
        x->idem = BG_IDEM_OWNED; /* the client left while we asked: nothing to run */
        bg_dispatch_idem_settle(d, x, NULL);
    } else if (x->conn == NULL) {
        x->idem = BG_IDEM_SETTLED;
    } else if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
        x->idem = BG_IDEM_SETTLED;
        idem_found(d, x, reply);
    } else {
        bg_warn("request %s: Idempotency-Key not claimed: %s", x->id,
                reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : "bus down");
        x->idem = BG_IDEM_SETTLED;
        bg_xchg_problem(x, 503, "the message bus is unavailable", "Retry-After: 1\r\n");
    }
    bg_xchg_drop_bus(x);
}

/* SET key <in-flight record> NX GET PX: one round trip both claims a free key and reads
 * the record of a taken one. (One script that also added the REQUEST would save the
 * round trip but costs Valkey more CPU than the two plain commands: measured.) */
void bg_dispatch_idem_begin(bg_dispatch *d, bg_xchg *x, int64_t timeout_ms)
{
    char err[BG_ERR_LEN] = "out of memory", ttl[32];
    size_t plen;
    char *pending = NULL;

    if (idem_names(d, x, err) != BG_OK ||
        (pending = bg_idem_encode_pending(x->idem_fp, x->id, &plen)) == NULL) {
        bg_error("request %s: idempotency: %s", x->id, err);
        bg_dispatch_guard_done(d, x, 0);
        bg_xchg_problem(x, 503, "the gateway cannot check the Idempotency-Key", NULL);
        return;
    }
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(timeout_ms + IDEM_PENDING_GRACE_MS));
    const char *argv[] = {"SET", x->idem_vkey, pending, "NX", "GET", "PX", ttl};
    size_t argvlen[] = {3, strlen(x->idem_vkey), plen, 2, 3, 2, strlen(ttl)};
    if (bg_abus_command_argv(d->bus, idem_on_claim, x, 7, argv, argvlen) != BG_OK) {
        bg_dispatch_guard_done(d, x, 0);
        bg_xchg_problem(x, 503, "the message bus is unavailable", "Retry-After: 1\r\n");
    } else {
        x->idem = BG_IDEM_CLAIMING;
        bg_xchg_hold_bus(x); /* dropped by idem_on_claim, which always runs */
    }
    free(pending);
}
