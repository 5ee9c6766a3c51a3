/* idem_record.h: the value stored under an idempotency key (docs/protocol.md, section
 * "Idempotency keys"): a request in flight, or the response it got. */
#ifndef BUSGATE_IDEM_RECORD_H
#define BUSGATE_IDEM_RECORD_H

#include <stddef.h>

#include "busgate/common.h"

#define BG_IDEM_FP_LEN 64    /* request fingerprint: SHA-256, lowercase hex */
#define BG_IDEM_OWNER_MAX 64 /* owner token of an in-flight record: the request id */

typedef struct bg_idem_record {
    int done; /* 0: "P" in flight; 1: "D" finished, status/meta/body set */
    char fingerprint[BG_IDEM_FP_LEN + 1];
    char owner[BG_IDEM_OWNER_MAX + 1]; /* P only */
    int status;                        /* D only: 200..599 */
    bg_bytes meta;                     /* D only: RESPONSE meta JSON, borrowed from the input */
    bg_bytes body;                     /* D only: borrowed from the input */
} bg_idem_record;

/* "busgate-idem 1 P <fingerprint> <owner>", malloc'd and NUL-terminated; NULL on no memory. */
char *bg_idem_encode_pending(const char *fingerprint, const char *owner, size_t *len);
/* "busgate-idem 1 D <fingerprint> <status> <meta length>\n<meta><body>", malloc'd. */
char *bg_idem_encode_done(const char *fingerprint, int status, bg_bytes meta, bg_bytes body,
                          size_t *len);
/* Parses a stored value; meta and body point into p. BG_ERR with the reason in err for
 * anything else (another program's value under the key, a newer version, truncation). */
int bg_idem_decode(const char *p, size_t len, bg_idem_record *out, char *err);

#endif
