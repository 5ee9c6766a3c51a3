/* frame_decode.c: turns the fields of one stream entry into a validated bg_frame. */
#include "frame_int.h"

#include <stdlib.h>
#include <string.h>

typedef const bg_bytes *slot_table[BG_F_COUNT];

/* Called for every field of every frame: the first byte rules out most names before
 * their length is taken. */
static int known_field(const bg_bytes *name)
{
    if (name->len == 0)
        return -1;
    for (int fid = 0; fid < BG_F_COUNT; fid++) {
        const char *n = bg_field_defs[fid].name;
        if (n[0] == name->ptr[0] && strlen(n) == name->len && memcmp(n, name->ptr, name->len) == 0)
            return fid;
    }
    return -1;
}

static int same_bytes(const bg_bytes *a, const bg_bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

static void duplicate_error(const bg_bytes *name, char *err)
{
    char q[33];
    size_t n = name->len > 32 ? 32 : name->len;

    for (size_t i = 0; i < n; i++)
        q[i] = (name->ptr[i] >= 0x20 && name->ptr[i] < 0x7f) ? name->ptr[i] : '?';
    q[n] = '\0';
    bg_set_error(err, "duplicate field '%s'", q);
}

/* Maps each known field to its value; unknown fields are skipped (forward
 * compatibility) but still may not repeat. */
static int collect_fields(const bg_field *fields, size_t n, slot_table slots, char *err)
{
    if (n > BG_FRAME_FIELDS_MAX) {
        bg_set_error(err, "too many fields (%zu, limit %d)", n, BG_FRAME_FIELDS_MAX);
        return BG_ERR;
    }
    if (n > 0 && fields == NULL) {
        bg_set_error(err, "no field data");
        return BG_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        const bg_bytes *name = &fields[i].name;
        int fid;

        if ((name->ptr == NULL && name->len > 0) ||
            (fields[i].value.ptr == NULL && fields[i].value.len > 0)) {
            bg_set_error(err, "field %zu has no data", i);
            return BG_ERR;
        }
        fid = known_field(name);
        if (fid >= 0 && slots[fid] != NULL)
            goto duplicate;
        if (fid >= 0) {
            slots[fid] = &fields[i].value;
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (same_bytes(&fields[j].name, name))
                goto duplicate;
        }
    }
    return BG_OK;

duplicate:
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (same_bytes(&fields[j].name, &fields[i].name)) {
                duplicate_error(&fields[i].name, err);
                return BG_ERR;
            }
        }
    }
    return BG_ERR;
}

static int decode_version_and_type(slot_table slots, bg_frame *f, char *err)
{
    int64_t v;

    if (slots[BG_F_V] == NULL) {
        bg_set_error(err, "missing field 'v'");
        return BG_ERR;
    }
    if (bg_parse_i64(slots[BG_F_V]->ptr, slots[BG_F_V]->len, &v) != BG_OK) {
        bg_set_error(err, "field 'v' is not an integer");
        return BG_ERR;
    }
    if (v != BG_PROTOCOL_VERSION) {
        bg_set_error(err, "unsupported version %lld", (long long)v);
        return BG_ERR;
    }
    f->version = (int)v;
    if (slots[BG_F_TYPE] == NULL) {
        bg_set_error(err, "missing field 'type'");
        return BG_ERR;
    }
    return bg_field_check(BG_F_TYPE, slots[BG_F_TYPE]->ptr, slots[BG_F_TYPE]->len, err) == BG_OK
               ? bg_frame_type_parse(slots[BG_F_TYPE]->ptr, slots[BG_F_TYPE]->len, &f->type)
               : BG_ERR;
}

static int is_bytes_kind(bg_field_kind k)
{
    return k == BG_K_PATH || k == BG_K_QUERY || k == BG_K_TEMPLATE || k == BG_K_BODY;
}

/* Checks every scalar field the type uses and stores it; variable-length parts are
 * only counted here (total) and stored by store_bytes. */
static int decode_scalars(slot_table slots, bg_frame *f, size_t *total, char *err)
{
    const bg_type_spec *spec = &bg_type_specs[f->type];
    uint32_t used = spec->required | spec->optional;
    char why[BG_ERR_LEN];

    for (int fid = 0; fid < BG_F_COUNT; fid++) {
        if ((spec->required & BG_BIT(fid)) && slots[fid] == NULL) {
            bg_set_error(err, "%s: missing field '%s'", spec->name, bg_field_defs[fid].name);
            return BG_ERR;
        }
    }
    for (int fid = BG_F_ID; fid < BG_F_COUNT; fid++) {
        const bg_field_def *d = &bg_field_defs[fid];
        const bg_bytes *v = slots[fid];
        int64_t n;

        if (v == NULL || !(used & BG_BIT(fid)))
            continue;
        if (bg_field_check((bg_field_id)fid, v->ptr, v->len, why) != BG_OK) {
            bg_set_error(err, "%s: %s", spec->name, why);
            return BG_ERR;
        }
        if (d->kind == BG_K_INT && bg_parse_i64(v->ptr, v->len, &n) == BG_OK)
            bg_frame_int_set(f, (bg_field_id)fid, n);
        else if (is_bytes_kind(d->kind))
            *total += v->len + 1;
        else if (d->kind != BG_K_META) {
            memcpy((char *)f + d->offset, v->ptr, v->len);
            ((char *)f + d->offset)[v->len] = '\0';
        }
    }
    if (f->type == BG_FRAME_RESYNC_REQUEST && f->instance[0] != '\0' && f->service[0] == '\0') {
        bg_set_error(err, "%s: field 'instance' needs field 'service'", spec->name);
        return BG_ERR;
    }
    return BG_OK;
}

/* Copies (one allocation, each part NUL-terminated) or borrows the variable parts. */
static int store_bytes(slot_table slots, bg_frame *f, size_t total, int borrow, char *err)
{
    const bg_type_spec *spec = &bg_type_specs[f->type];
    char *at = NULL;

    if (!borrow && total > 0) {
        f->owned_ = malloc(total);
        if (f->owned_ == NULL) {
            bg_set_error(err, "%s: out of memory for %zu bytes", spec->name, total);
            return BG_ERR;
        }
        at = f->owned_;
    }
    for (int fid = BG_F_ID; fid < BG_F_COUNT; fid++) {
        const bg_field_def *d = &bg_field_defs[fid];
        const bg_bytes *v = slots[fid];
        bg_bytes *dst = (bg_bytes *)((char *)f + d->offset);

        if (v == NULL || !is_bytes_kind(d->kind) ||
            !((spec->required | spec->optional) & BG_BIT(fid)))
            continue;
        dst->len = v->len;
        if (borrow) {
            dst->ptr = v->ptr != NULL ? v->ptr : "";
            continue;
        }
        if (v->len > 0)
            memcpy(at, v->ptr, v->len);
        at[v->len] = '\0';
        dst->ptr = at;
        at += v->len + 1;
    }
    return BG_OK;
}

static int decode_meta(slot_table slots, bg_frame *f, char *err)
{
    const bg_type_spec *spec = &bg_type_specs[f->type];
    const bg_bytes *v = slots[BG_F_META];
    json_error_t jerr;
    char why[BG_ERR_LEN];

    if (v == NULL || !((spec->required | spec->optional) & BG_BIT(BG_F_META)))
        return BG_OK;
    if ((f->flat_ = bg_meta_flat_parse(f->type, v->ptr, v->len)) != NULL)
        return BG_OK; /* the common shape, checked: no json_t needed */
    f->meta = json_loadb(v->len > 0 ? v->ptr : "", v->len, JSON_REJECT_DUPLICATES, &jerr);
    if (f->meta == NULL) {
        bg_set_error(err, "%s: meta: invalid JSON at line %d column %d: %s", spec->name, jerr.line,
                     jerr.column, jerr.text);
        return BG_ERR;
    }
    if (!json_is_object(f->meta)) {
        bg_set_error(err, "%s: meta: not a JSON object", spec->name);
        return BG_ERR;
    }
    if (bg_meta_check(f->type, f->meta, f, why) != BG_OK) {
        bg_set_error(err, "%s: %s", spec->name, why);
        return BG_ERR;
    }
    return BG_OK;
}

static int frame_decode(const bg_field *fields, size_t nfields, bg_frame *out, int borrow,
                        char *err)
{
    slot_table slots = {0};
    size_t total = 0;

    bg_frame_init(out, 0);
    if (collect_fields(fields, nfields, slots, err) != BG_OK)
        return BG_ERR;
    if (decode_version_and_type(slots, out, err) != BG_OK)
        return BG_ERR;
    if (decode_scalars(slots, out, &total, err) != BG_OK)
        return BG_ERR;
    if (store_bytes(slots, out, total, borrow, err) != BG_OK)
        return BG_ERR;
    return decode_meta(slots, out, err);
}

int bg_frame_decode(const bg_field *fields, size_t nfields, bg_frame *out, char *err)
{
    return frame_decode(fields, nfields, out, 0, err);
}

int bg_frame_decode_borrow(const bg_field *fields, size_t nfields, bg_frame *out, char *err)
{
    return frame_decode(fields, nfields, out, 1, err);
}
