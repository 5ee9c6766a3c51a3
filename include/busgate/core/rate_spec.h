/* rate_spec.h: a rate limit as "<n>/<s|m|h> [burst=<n>] [key=<src>]": the part an ini
 * rate_limit line and an endpoint's declared rate_limit (ENDPOINTS_UPDATE) share. */
#ifndef BUSGATE_RATE_SPEC_H
#define BUSGATE_RATE_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define BG_RATE_COUNT_MAX 1000000
#define BG_RATE_BURST_MAX 1000000
#define BG_RATE_KEY_NAME_MAX 63
#define BG_RATE_SPEC_TEXT_MAX 128 /* bytes of a declared rate_limit; more than the longest */

/* Who a request is counted as. */
typedef enum {
    BG_RATE_KEY_CLIENT = 0, /* the client's address */
    BG_RATE_KEY_HEADER,     /* a request header's value (the address when it is absent) */
    BG_RATE_KEY_CLAIM,      /* a claim of the verified token (the address when absent) */
} bg_rate_key_kind;

/* count == 0: no limit (a route that declares none). */
typedef struct bg_rate_spec {
    int64_t count, per_ms; /* as written: count requests per per_ms */
    int64_t interval_us;   /* one token every interval_us */
    int64_t burst;         /* bucket size; default count */
    bg_rate_key_kind key;
    char key_name[BG_RATE_KEY_NAME_MAX + 1]; /* the header's or the claim's name */
} bg_rate_spec;

/* The next blank-separated word of *p into out (size bytes), *p moved past it; "" at the
 * end. A word too long for out comes back as "\x01", which no valid word starts with. */
void bg_rate_word(const char **p, char *out, size_t size);

/* Parses "<n>/<s|m|h> [burst=<n>] [key=client|header:<Name>|claim:<name>]" (blank-separated, in
 * any order after the rate) into out. BG_OK, or BG_ERR with the reason in reason
 * (BG_ERR_LEN bytes), e.g. "'10/d' is not a rate like 10/s, 100/m or 1000/h". */
int bg_rate_spec_parse(const char *text, bg_rate_spec *out, char *reason);

/* Fills the derived fields from count, per_ms and burst as stored: interval_us. count
 * must be 1..BG_RATE_COUNT_MAX and per_ms one of 1000, 60000, 3600000; else the spec
 * becomes "no limit" (count 0) and BG_ERR is returned. */
int bg_rate_spec_finish(bg_rate_spec *s);

/* The canonical text: "100/s", "2/m burst=5 key=header:X-Api-Key" (burst and key only
 * when they are not the defaults). "" for no limit. */
void bg_rate_spec_format(const bg_rate_spec *s, char *out, size_t size);

/* < 0 when a is stricter than b, > 0 when b is, 0 when they are the same limit. Any
 * limit is stricter than none; then the lower sustained rate; then the smaller burst;
 * then a fixed order of the keys, so that the choice never depends on input order. */
int bg_rate_spec_cmp(const bg_rate_spec *a, const bg_rate_spec *b);

#endif
