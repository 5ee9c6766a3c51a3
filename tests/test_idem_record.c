/* test_idem_record.c: the idempotency record codec from raw bytes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/proto/idem_record.h"
#include "busgate/proto/keys.h"

static const char fp[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

Test(idem_record, pending_round_trip)
{
    char err[BG_ERR_LEN] = "";
    bg_idem_record r;
    size_t len;
    char *p = bg_idem_encode_pending(fp, "4286c450b78896f00000000000000001", &len);

    cr_assert_not_null(p);
    cr_assert_eq(bg_idem_decode(p, len, &r, err), BG_OK, "%s", err);
    cr_assert_eq(r.done, 0);
    cr_assert_str_eq(r.fingerprint, fp);
    cr_assert_str_eq(r.owner, "4286c450b78896f00000000000000001");
    free(p);
}

Test(idem_record, done_round_trip_keeps_binary_bodies)
{
    const char body[] = {'a', 0, '\n', 'b'};
    const char meta[] = "{\"headers\":[[\"X\",\"1\"]]}";
    char err[BG_ERR_LEN] = "";
    bg_idem_record r;
    size_t len;
    char *p = bg_idem_encode_done(fp, 201, (bg_bytes){meta, strlen(meta)},
                                  (bg_bytes){body, sizeof(body)}, &len);

    cr_assert_not_null(p);
    cr_assert_eq(bg_idem_decode(p, len, &r, err), BG_OK, "%s", err);
    cr_assert_eq(r.done, 1);
    cr_assert_eq(r.status, 201);
    cr_assert_eq(r.meta.len, strlen(meta));
    cr_assert_eq(memcmp(r.meta.ptr, meta, r.meta.len), 0);
    cr_assert_eq(r.body.len, sizeof(body));
    cr_assert_eq(memcmp(r.body.ptr, body, sizeof(body)), 0);
    /* an empty meta and body */
    free(p);
    p = bg_idem_encode_done(fp, 204, (bg_bytes){NULL, 0}, (bg_bytes){NULL, 0}, &len);
    cr_assert_eq(bg_idem_decode(p, len, &r, err), BG_OK, "%s", err);
    cr_assert_eq(r.status, 204);
    cr_assert_eq(r.meta.len + r.body.len, 0u);
    free(p);
}

static void refused(const char *raw, const char *why)
{
    char err[BG_ERR_LEN] = "";
    bg_idem_record r;

    cr_assert_eq(bg_idem_decode(raw, strlen(raw), &r, err), BG_ERR, "accepted: %s", raw);
    cr_assert(strstr(err, why) != NULL, "'%s' lacks '%s'", err, why);
}

Test(idem_record, foreign_and_broken_values_are_refused)
{
    char buf[512];

    refused("hello", "not a busgate version 1 record");
    refused("busgate-idem 2 P x y", "not a busgate version 1 record");
    refused("busgate-idem 1 X 0123 y", "bad kind or fingerprint");
    refused("busgate-idem 1 P 0123 owner", "bad kind or fingerprint");
    snprintf(buf, sizeof(buf), "busgate-idem 1 P %s", fp);
    refused(buf, "bad owner");
    snprintf(buf, sizeof(buf), "busgate-idem 1 D %s 700 0\n", fp);
    refused(buf, "bad status");
    snprintf(buf, sizeof(buf), "busgate-idem 1 D %s 200 99\nshort", fp);
    refused(buf, "bad meta length");
    snprintf(buf, sizeof(buf), "busgate-idem 1 D %s 200 0", fp);
    refused(buf, "no end of header line");
}

Test(idem_record, key_keeps_the_service_hash_tag)
{
    bg_messaging_names m;
    char out[BG_KEY_MAX + 1], err[BG_ERR_LEN] = "";

    bg_messaging_names_default(&m);
    cr_assert_eq(bg_key_idempotency(&m, "orders", "ab12", out, sizeof(out), err), BG_OK, "%s", err);
    cr_assert_str_eq(out, "router:idem:{orders}:ab12");
    cr_assert_eq(bg_key_idempotency(&m, "orders", "AB12", out, sizeof(out), err), BG_ERR);
    cr_assert_eq(bg_key_idempotency(&m, "orders", "", out, sizeof(out), err), BG_ERR);
    cr_assert_eq(bg_key_idempotency(&m, "a b", "ab", out, sizeof(out), err), BG_ERR);
}
