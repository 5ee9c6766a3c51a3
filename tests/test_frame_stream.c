/* test_frame_stream.c: the streaming additions of the codec from raw fields: RESPONSE's
 * stream flag, RESPONSE_CHUNK, REQUEST meta.features. */
#include <criterion/criterion.h>
#include <string.h>

#include "busgate/proto/frame.h"

typedef struct fieldset {
    bg_field f[16];
    size_t n;
} fieldset;

static void fs_addn(fieldset *s, const char *name, const char *value, size_t len)
{
    cr_assert_lt(s->n, BG_ARRAY_LEN(s->f));
    s->f[s->n].name = (bg_bytes){name, strlen(name)};
    s->f[s->n].value = (bg_bytes){value, len};
    s->n++;
}

static void fs_add(fieldset *s, const char *name, const char *value)
{
    fs_addn(s, name, value, strlen(value));
}

static void base_chunk(fieldset *s, const char *seq)
{
    s->n = 0;
    fs_add(s, "v", "1");
    fs_add(s, "type", "RESPONSE_CHUNK");
    fs_add(s, "id", "0123456789abcdef0123456789abcdef");
    fs_add(s, "seq", seq);
}

static int decode(const fieldset *s, bg_frame *f, char *err)
{
    err[0] = '\0';
    return bg_frame_decode(s->f, s->n, f, err);
}

static void expect_reject(const fieldset *s, const char *substr)
{
    char err[BG_ERR_LEN];
    bg_frame f;
    int rc = decode(s, &f, err);

    bg_frame_free(&f);
    cr_assert_eq(rc, BG_ERR, "accepted, expected '%s'", substr);
    cr_assert(strstr(err, substr) != NULL, "error '%s' lacks '%s'", err, substr);
}

Test(frame_stream, chunk_from_raw_fields)
{
    static const char body[] = "piece\0with NUL";
    char err[BG_ERR_LEN];
    fieldset s;
    bg_frame f;

    base_chunk(&s, "7");
    fs_add(&s, "ts", "1700000020013");
    fs_add(&s, "instance", "echo-1");
    fs_addn(&s, "body", body, sizeof(body) - 1);
    fs_add(&s, "final", "1");
    cr_assert_eq(decode(&s, &f, err), BG_OK, "%s", err);
    cr_assert_eq(f.type, BG_FRAME_RESPONSE_CHUNK);
    cr_assert_eq(f.seq, 7);
    cr_assert_eq(f.final, 1);
    cr_assert_str_eq(f.instance, "echo-1");
    cr_assert_eq(f.body.len, sizeof(body) - 1);
    cr_assert(memcmp(f.body.ptr, body, f.body.len) == 0);
    cr_assert_str_eq(f.reason, "");
    bg_frame_free(&f);
}

Test(frame_stream, chunk_defaults_and_reason)
{
    char err[BG_ERR_LEN];
    fieldset s;
    bg_frame f;

    base_chunk(&s, "1");
    cr_assert_eq(decode(&s, &f, err), BG_OK, "%s", err);
    cr_assert_eq(f.final, 0);
    cr_assert_null(f.body.ptr);
    bg_frame_free(&f);
    fs_add(&s, "final", "1");
    fs_add(&s, "reason", "handler failed");
    cr_assert_eq(decode(&s, &f, err), BG_OK, "%s", err);
    cr_assert_str_eq(f.reason, "handler failed");
    bg_frame_free(&f);
}

Test(frame_stream, chunk_rejects)
{
    fieldset s;

    base_chunk(&s, "0");
    expect_reject(&s, "RESPONSE_CHUNK: field 'seq' value 0 is outside 1..");
    base_chunk(&s, "-1");
    expect_reject(&s, "field 'seq' is not an integer");
    base_chunk(&s, "1");
    fs_add(&s, "final", "2");
    expect_reject(&s, "field 'final' value 2 is outside 0..1");
    s.n = 0;
    fs_add(&s, "v", "1");
    fs_add(&s, "type", "RESPONSE_CHUNK");
    fs_add(&s, "id", "x");
    expect_reject(&s, "RESPONSE_CHUNK: missing field 'seq'");
}

Test(frame_stream, chunk_round_trip_and_encoder_checks)
{
    char err[BG_ERR_LEN];
    bg_frame f, g;
    bg_frame_wire w;
    fieldset s = {0};

    bg_frame_init(&f, BG_FRAME_RESPONSE_CHUNK);
    strcpy(f.id, "abc");
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_ERR);
    cr_assert(strstr(err, "missing field 'seq'") != NULL, "%s", err);
    bg_frame_wire_free(&w);
    f.seq = 3;
    f.body = (bg_bytes){"xyz", 3};
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_OK, "%s", err);
    /* final 0 is left out on the wire: v type id seq body */
    cr_assert_eq(w.argc, 10);
    for (int i = 0; i + 1 < w.argc; i += 2)
        fs_addn(&s, w.argv[i], w.argv[i + 1], w.argvlen[i + 1]);
    cr_assert_eq(decode(&s, &g, err), BG_OK, "%s", err);
    cr_assert_eq(g.seq, 3);
    cr_assert_eq(g.final, 0);
    cr_assert_eq(g.body.len, 3);
    bg_frame_free(&g);
    bg_frame_wire_free(&w);
}

Test(frame_stream, response_stream_flag)
{
    char err[BG_ERR_LEN];
    fieldset s = {0};
    bg_frame f;

    fs_add(&s, "v", "1");
    fs_add(&s, "type", "RESPONSE");
    fs_add(&s, "id", "r1");
    fs_add(&s, "instance", "echo-1");
    fs_add(&s, "status", "200");
    cr_assert_eq(decode(&s, &f, err), BG_OK, "%s", err);
    cr_assert_eq(f.stream, 0, "an old-style RESPONSE is whole");
    bg_frame_free(&f);
    fs_add(&s, "stream", "1");
    cr_assert_eq(decode(&s, &f, err), BG_OK, "%s", err);
    cr_assert_eq(f.stream, 1);
    bg_frame_free(&f);
    s.f[s.n - 1].value = (bg_bytes){"yes", 3};
    expect_reject(&s, "field 'stream' is not an integer");
}

Test(frame_stream, request_features)
{
    char err[BG_ERR_LEN];
    fieldset s = {0};
    bg_frame f;

    fs_add(&s, "v", "1");
    fs_add(&s, "type", "REQUEST");
    fs_add(&s, "id", "r1");
    fs_add(&s, "service", "echo");
    fs_add(&s, "method", "GET");
    fs_add(&s, "path", "/echo");
    fs_add(&s, "endpoint", "/echo");
    fs_add(&s, "reply_to", "router:responses:gw1:0");
    fs_add(&s, "deadline", "1700000030000");
    fs_add(&s, "gateway", "gw1");
    fs_add(&s, "meta", "{\"features\":[\"later\",\"stream\"]}");
    cr_assert_eq(decode(&s, &f, err), BG_OK, "%s", err);
    cr_assert(bg_frame_has_feature(&f, BG_FEATURE_STREAM));
    cr_assert(!bg_frame_has_feature(&f, "strea"));
    bg_frame_free(&f);
    s.f[s.n - 1].value = (bg_bytes){"{}", 2};
    cr_assert_eq(decode(&s, &f, err), BG_OK, "%s", err);
    cr_assert(!bg_frame_has_feature(&f, BG_FEATURE_STREAM), "absent = an old gateway");
    bg_frame_free(&f);
    s.f[s.n - 1].value = (bg_bytes){"{\"features\":\"stream\"}", 21};
    expect_reject(&s, "meta: features is not an array");
    s.f[s.n - 1].value = (bg_bytes){"{\"features\":[1]}", 16};
    expect_reject(&s, "meta: features[0] is not a string");
}

Test(frame_stream, type_names)
{
    bg_frame_type t;

    cr_assert_str_eq(bg_frame_type_name(BG_FRAME_RESPONSE_CHUNK), "RESPONSE_CHUNK");
    cr_assert_eq(bg_frame_type_parse("RESPONSE_CHUNK", 14, &t), BG_OK);
    cr_assert_eq(t, BG_FRAME_RESPONSE_CHUNK);
    cr_assert_str_eq(bg_frame_type_name(BG_FRAME_TYPE_LAST + 1), "UNKNOWN");
}
