/* frame_encode.c: validates a bg_frame and lays it out as XADD field/value strings. */
#include "frame_int.h"

#include <stdlib.h>
#include <string.h>

#include "busgate/core/text.h"

_Static_assert(BG_F_COUNT <= BG_WIRE_ARGV_MAX / 2, "a wire must hold every field");

static void wire_init(bg_frame_wire *w)
{
    memset(w, 0, sizeof(*w));
    w->argv = w->argv_ + BG_WIRE_HEAD_MAX;
    w->argvlen = w->len_ + BG_WIRE_HEAD_MAX;
}

void bg_frame_wire_free(bg_frame_wire *w)
{
    free(w->meta_);
    wire_init(w);
}

static void wire_push(bg_frame_wire *w, const char *name, const char *value, size_t len)
{
    int at = BG_WIRE_HEAD_MAX + w->argc;

    /* The field table has fewer than BG_WIRE_ARGV_MAX / 2 entries: no overflow. */
    w->argv_[at] = name;
    w->len_[at] = strlen(name);
    w->argv_[at + 1] = value != NULL ? value : "";
    w->len_[at + 1] = len;
    w->argc += 2;
}

/* v in decimal into out (24 bytes), as "%lld" writes it, without printf: every frame
 * carries a few integers (ts, deadline, status). Returns the length. */
static size_t put_i64(char *out, int64_t v)
{
    size_t len = 0;

    if (v < 0)
        out[len++] = '-';
    len += bg_u64_decimal(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, out + len);
    out[len] = '\0';
    return len;
}

/* Where the value of field fid lives in f; *present = 0 when the caller left it out. */
static void field_value(const bg_frame *f, bg_field_id fid, bg_frame_wire *w, const char **p,
                        size_t *len, int *present)
{
    const bg_field_def *d = &bg_field_defs[fid];
    const char *base = (const char *)f + d->offset;

    *p = NULL;
    *len = 0;
    if (fid == BG_F_TYPE) {
        *p = bg_frame_type_name(f->type);
        *len = strlen(*p);
        *present = 1;
    } else if (d->kind == BG_K_INT) {
        int64_t v = bg_frame_int_get(f, fid, present);
        char *num = w->num_[w->nnum_];
        if (!*present)
            return;
        *len = put_i64(num, v);
        *p = num;
        w->nnum_++;
    } else if (d->kind == BG_K_META) {
        *present = f->meta != NULL || f->meta_json.ptr != NULL || f->flat_ != NULL;
    } else if (d->kind == BG_K_PATH || d->kind == BG_K_QUERY || d->kind == BG_K_TEMPLATE ||
               d->kind == BG_K_BODY) {
        const bg_bytes *b = (const bg_bytes *)base;
        *present = b->ptr != NULL;
        *p = b->ptr;
        *len = b->len;
    } else {
        *p = base;
        *len = strnlen(base, d->size);
        *present = *len > 0;
    }
}

static int encode_meta(const bg_frame *f, bg_frame_wire *w, const char **p, size_t *len, char *why)
{
    const bg_field_def *d = &bg_field_defs[BG_F_META];

    if (f->meta == NULL && f->meta_json.ptr == NULL && f->flat_ != NULL) {
        *p = f->flat_->raw.ptr; /* a decoded frame sent on: the text it came with */
        *len = f->flat_->raw.len;
        return BG_OK;
    }
    if (f->meta == NULL) {
        *p = f->meta_json.ptr;
        *len = f->meta_json.len;
        return bg_field_check(BG_F_META, *p, *len, why);
    }
    if (!json_is_object(f->meta)) {
        bg_set_error(why, "meta: not a JSON object");
        return BG_ERR;
    }
    if (bg_meta_check(f->type, f->meta, NULL, why) != BG_OK)
        return BG_ERR;
    w->meta_ = json_dumps(f->meta, JSON_COMPACT);
    if (w->meta_ == NULL) {
        bg_set_error(why, "meta: cannot serialise (out of memory or invalid string)");
        return BG_ERR;
    }
    *p = w->meta_;
    *len = strlen(w->meta_);
    if (*len > d->size)
        return bg_field_check(BG_F_META, *p, *len, why);
    return BG_OK;
}

int bg_frame_encode(const bg_frame *f, bg_frame_wire *w, char *err)
{
    const bg_type_spec *spec;
    char why[BG_ERR_LEN];

    wire_init(w);
    if (f->version != BG_PROTOCOL_VERSION) {
        bg_set_error(err, "unsupported version %d", f->version);
        return BG_ERR;
    }
    if (f->type < BG_FRAME_HELLO || f->type > BG_FRAME_TYPE_LAST) {
        bg_set_error(err, "unknown type %d", (int)f->type);
        return BG_ERR;
    }
    spec = &bg_type_specs[f->type];
    if (f->type == BG_FRAME_RESYNC_REQUEST && f->instance[0] != '\0' && f->service[0] == '\0') {
        bg_set_error(err, "%s: field 'instance' needs field 'service'", spec->name);
        return BG_ERR;
    }
    for (int fid = 0; fid < BG_F_COUNT; fid++) {
        const char *p;
        size_t len;
        int present, rc;

        if (!((spec->required | spec->optional) & BG_BIT(fid)))
            continue;
        field_value(f, (bg_field_id)fid, w, &p, &len, &present);
        if (!present && (spec->required & BG_BIT(fid))) {
            bg_set_error(err, "%s: missing field '%s'", spec->name, bg_field_defs[fid].name);
            return BG_ERR;
        }
        if (!present)
            continue;
        if (fid == BG_F_META)
            rc = encode_meta(f, w, &p, &len, why);
        else
            rc = fid == BG_F_V ? BG_OK : bg_field_check((bg_field_id)fid, p, len, why);
        if (rc != BG_OK) {
            bg_set_error(err, "%s: %s", spec->name, why);
            return BG_ERR;
        }
        wire_push(w, bg_field_defs[fid].name, p, len);
    }
    return BG_OK;
}

int bg_frame_wire_command(bg_frame_wire *w, const char *const *head, const size_t *headlen,
                          int nhead, int *argc, const char ***argv, const size_t **argvlen)
{
    int start = BG_WIRE_HEAD_MAX - nhead;

    if (nhead < 0 || nhead > BG_WIRE_HEAD_MAX)
        return BG_ERR;
    for (int i = 0; i < nhead; i++) {
        w->argv_[start + i] = head[i];
        w->len_[start + i] = headlen != NULL ? headlen[i] : strlen(head[i]);
    }
    *argc = nhead + w->argc;
    *argv = w->argv_ + start;
    *argvlen = w->len_ + start;
    return BG_OK;
}
