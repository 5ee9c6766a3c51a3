/* fuzz_frame.c: libFuzzer target for the frame decoder (fields from the bus are untrusted).
 *
 * Input layout: a sequence of fields, each [name length: 1 byte][name][value length:
 * 3 bytes little-endian][value]; lengths are clipped to what is left. A frame that
 * decodes must encode again and decode to the same frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/proto/frame.h"

#define MAX_FIELDS 80

static size_t take(const uint8_t **p, size_t *left, size_t want)
{
    size_t n = want < *left ? want : *left;

    *p += n;
    *left -= n;
    return n;
}

static size_t split_fields(const uint8_t *data, size_t size, bg_field *fields)
{
    size_t n = 0, left = size;
    const uint8_t *p = data;

    while (left > 0 && n < MAX_FIELDS) {
        size_t nlen = *p, vlen;
        take(&p, &left, 1);
        fields[n].name.ptr = (const char *)p;
        fields[n].name.len = take(&p, &left, nlen);
        vlen = left >= 3 ? (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 : 0;
        take(&p, &left, 3);
        fields[n].value.ptr = (const char *)p;
        fields[n].value.len = take(&p, &left, vlen);
        n++;
    }
    return n;
}

static int bytes_equal(bg_bytes a, bg_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void touch_helpers(const bg_frame *f)
{
    bg_pair pair;
    size_t n = bg_frame_header_count(f);

    for (size_t i = 0; i < n; i++) {
        if (bg_frame_header_at(f, i, &pair) != BG_OK)
            abort();
    }
    n = bg_frame_param_count(f);
    for (size_t i = 0; i < n; i++) {
        if (bg_frame_param_at(f, i, &pair) != BG_OK)
            abort();
    }
    (void)bg_frame_header_get(f, "content-type", NULL);
    (void)bg_frame_client(f);
    (void)bg_frame_has_feature(f, BG_FEATURE_STREAM);
}

static int pair_equal(const bg_pair *a, const bg_pair *b)
{
    return a->name_len == b->name_len && a->value_len == b->value_len &&
           memcmp(a->name, b->name, a->name_len) == 0 &&
           memcmp(a->value, b->value, a->value_len) == 0;
}

/* The same meta as the accessors see it: a REQUEST/RESPONSE meta may be decoded flat on one
 * side (meta NULL) and by jansson on the other (e.g. "\u0069" re-encoded as "i"). */
static int meta_equal(const bg_frame *f, const bg_frame *g)
{
    size_t n = bg_frame_header_count(f);
    const char *cf = bg_frame_client(f), *cg = bg_frame_client(g);
    bg_pair a, b;

    if (f->meta != NULL && g->meta != NULL)
        return json_equal(g->meta, f->meta);
    if (n != bg_frame_header_count(g) || bg_frame_param_count(f) != bg_frame_param_count(g))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (bg_frame_header_at(f, i, &a) != BG_OK || bg_frame_header_at(g, i, &b) != BG_OK ||
            !pair_equal(&a, &b))
            return 0;
    for (size_t i = 0; i < bg_frame_param_count(f); i++)
        if (bg_frame_param_at(f, i, &a) != BG_OK || bg_frame_param_at(g, i, &b) != BG_OK ||
            !pair_equal(&a, &b))
            return 0;
    return (cf == NULL) == (cg == NULL) && (cf == NULL || strcmp(cf, cg) == 0) &&
           bg_frame_has_feature(f, BG_FEATURE_STREAM) == bg_frame_has_feature(g, BG_FEATURE_STREAM);
}

/* Whatever decodes must survive encode + decode unchanged. */
static void check_round_trip(const bg_frame *f)
{
    bg_frame_wire w;
    bg_field fields[MAX_FIELDS];
    bg_frame g;
    char err[BG_ERR_LEN];
    size_t n = 0;

    if (bg_frame_encode(f, &w, err) != BG_OK)
        abort();
    for (int i = 0; i + 1 < w.argc && n < MAX_FIELDS; i += 2, n++) {
        fields[n].name = (bg_bytes){w.argv[i], w.argvlen[i]};
        fields[n].value = (bg_bytes){w.argv[i + 1], w.argvlen[i + 1]};
    }
    if (bg_frame_decode(fields, n, &g, err) != BG_OK)
        abort();
    if (g.type != f->type || strcmp(g.id, f->id) != 0 || g.ts != f->ts ||
        !bytes_equal(g.body, f->body) || !bytes_equal(g.path, f->path) || g.status != f->status ||
        g.deadline_ms != f->deadline_ms || g.endpoints.count != f->endpoints.count ||
        g.stream != f->stream || g.seq != f->seq || g.final != f->final || !meta_equal(f, &g))
        abort();
    bg_frame_free(&g);
    bg_frame_wire_free(&w);
}

/* Whatever bg_json_quote accepts must parse back to the same bytes. */
static void check_quote(const uint8_t *data, size_t size)
{
    size_t cap = 6 * size + 4, n;
    char *out = malloc(cap + 2);
    json_t *j;

    if (out == NULL)
        return;
    out[0] = '[';
    n = bg_json_quote(out + 1, cap, (const char *)data, size);
    if (n != (size_t)-1) {
        out[1 + n] = ']';
        j = json_loadb(out, n + 2, 0, NULL);
        if (j == NULL || json_string_length(json_array_get(j, 0)) != size ||
            memcmp(json_string_value(json_array_get(j, 0)), data, size) != 0)
            abort();
        json_decref(j);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bg_field fields[MAX_FIELDS];
    size_t n = split_fields(data, size, fields);
    char err[BG_ERR_LEN];
    bg_frame f;

    if (bg_frame_decode(fields, n, &f, err) == BG_OK) {
        touch_helpers(&f);
        check_round_trip(&f);
    } else if (memchr(err, '\0', BG_ERR_LEN) == NULL || err[0] == '\0') {
        abort(); /* every failure must explain itself */
    }
    bg_frame_free(&f);
    if (bg_frame_decode_borrow(fields, n, &f, err) == BG_OK)
        touch_helpers(&f);
    bg_frame_free(&f);
    check_quote(data, size);
    return 0;
}
