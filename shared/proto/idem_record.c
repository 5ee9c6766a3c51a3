/* idem_record.c: encode and check the values stored under idempotency keys. */
#include "busgate/proto/idem_record.h"

#include "busgate/core/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEM_MAGIC "busgate-idem 1 "
#define IDEM_MAGIC_LEN (sizeof(IDEM_MAGIC) - 1)

char *bg_idem_encode_pending(const char *fingerprint, const char *owner, size_t *len)
{
    size_t cap = IDEM_MAGIC_LEN + 3 + BG_IDEM_FP_LEN + 1 + BG_IDEM_OWNER_MAX + 1;
    char *out = malloc(cap);
    int n;

    if (out == NULL)
        return NULL;
    n = snprintf(out, cap, IDEM_MAGIC "P %.64s %.64s", fingerprint, owner);
    *len = (size_t)n;
    return out;
}

char *bg_idem_encode_done(const char *fingerprint, int status, bg_bytes meta, bg_bytes body,
                          size_t *len)
{
    size_t head_cap = IDEM_MAGIC_LEN + 3 + BG_IDEM_FP_LEN + 32;
    char *out = malloc(head_cap + meta.len + body.len);
    int n;

    if (out == NULL)
        return NULL;
    n = snprintf(out, head_cap, IDEM_MAGIC "D %.64s %d %zu\n", fingerprint, status, meta.len);
    if (meta.len > 0)
        memcpy(out + n, meta.ptr, meta.len);
    if (body.len > 0)
        memcpy(out + n + meta.len, body.ptr, body.len);
    *len = (size_t)n + meta.len + body.len;
    return out;
}

/* The next space-terminated word of [*p, end) into out (at most max bytes). */
static int idem_word(const char **p, const char *end, char *out, size_t max)
{
    const char *s = *p, *sp = memchr(s, ' ', (size_t)(end - s));
    size_t n = sp != NULL ? (size_t)(sp - s) : (size_t)(end - s);

    if (n == 0 || n > max)
        return BG_ERR;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = sp != NULL ? sp + 1 : end;
    return BG_OK;
}

static int idem_fingerprint_ok(const char *fp)
{
    return strlen(fp) == BG_IDEM_FP_LEN && bg_is_lower_hex(fp);
}

/* "<status> <meta length>\n<meta><body>" after the fingerprint of a D record. */
static int idem_decode_done(const char *p, const char *end, bg_idem_record *out, char *err)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    char *stop;
    long status;
    unsigned long long mlen;

    if (nl == NULL) {
        bg_set_error(err, "idempotency record: no end of header line");
        return BG_ERR;
    }
    status = strtol(p, &stop, 10);
    if (stop == p || *stop != ' ' || status < 200 || status > 599) {
        bg_set_error(err, "idempotency record: bad status");
        return BG_ERR;
    }
    mlen = strtoull(stop + 1, &stop, 10);
    if (stop != nl || mlen > (unsigned long long)(end - nl - 1)) {
        bg_set_error(err, "idempotency record: bad meta length");
        return BG_ERR;
    }
    out->done = 1;
    out->status = (int)status;
    out->meta = (bg_bytes){nl + 1, (size_t)mlen};
    out->body = (bg_bytes){nl + 1 + mlen, (size_t)(end - nl - 1 - mlen)};
    return BG_OK;
}

int bg_idem_decode(const char *p, size_t len, bg_idem_record *out, char *err)
{
    const char *end = p + len;
    char kind[2];

    memset(out, 0, sizeof(*out));
    if (len < IDEM_MAGIC_LEN || memcmp(p, IDEM_MAGIC, IDEM_MAGIC_LEN) != 0) {
        bg_set_error(err, "idempotency record: not a busgate version 1 record");
        return BG_ERR;
    }
    p += IDEM_MAGIC_LEN;
    if (idem_word(&p, end, kind, 1) != BG_OK || (kind[0] != 'P' && kind[0] != 'D') ||
        idem_word(&p, end, out->fingerprint, BG_IDEM_FP_LEN) != BG_OK ||
        !idem_fingerprint_ok(out->fingerprint)) {
        bg_set_error(err, "idempotency record: bad kind or fingerprint");
        return BG_ERR;
    }
    if (kind[0] == 'D')
        return idem_decode_done(p, end, out, err);
    if (idem_word(&p, end, out->owner, BG_IDEM_OWNER_MAX) != BG_OK || p != end) {
        bg_set_error(err, "idempotency record: bad owner");
        return BG_ERR;
    }
    return BG_OK;
}
