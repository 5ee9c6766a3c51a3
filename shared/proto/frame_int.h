/* frame_int.h: internals shared by the frame codec files (field table, validators). */
#ifndef BUSGATE_FRAME_INT_H
#define BUSGATE_FRAME_INT_H

#include <jansson.h>
#include <stdint.h>

#include "busgate/proto/frame.h"

/* Every field the protocol knows, in wire order (the encoder emits them this way). */
typedef enum {
    BG_F_V,
    BG_F_TYPE,
    BG_F_ID,
    BG_F_TS,
    BG_F_SERVICE,
    BG_F_INSTANCE,
    BG_F_VERSION,
    BG_F_GATEWAY,
    BG_F_REASON,
    BG_F_RESYNC_ID,
    BG_F_INTERVAL_MS,
    BG_F_INFLIGHT,
    BG_F_METHOD,
    BG_F_PATH,
    BG_F_QUERY,
    BG_F_ENDPOINT,
    BG_F_REPLY_TO,
    BG_F_DEADLINE,
    BG_F_STATUS,
    BG_F_STREAM,
    BG_F_SEQ,
    BG_F_FINAL,
    BG_F_META,
    BG_F_BODY,
    BG_F_COUNT,
} bg_field_id;

#define BG_BIT(f) (1u << (f))

/* How a field's value is checked and where it lives in bg_frame. */
typedef enum {
    BG_K_INT,      /* ASCII decimal within [min, max] */
    BG_K_TYPE,     /* frame type name */
    BG_K_IDENT,    /* [A-Za-z0-9._:-]{1,128} */
    BG_K_NAME,     /* service/instance/gateway name */
    BG_K_TOKEN,    /* printable ASCII without space, 1..size-1 */
    BG_K_TEXT,     /* no control bytes, 1..size-1 */
    BG_K_METHOD,   /* one of the method set */
    BG_K_PATH,     /* decoded, normalised request path */
    BG_K_QUERY,    /* raw query string */
    BG_K_TEMPLATE, /* path template */
    BG_K_META,     /* JSON object */
    BG_K_BODY,     /* raw bytes */
} bg_field_kind;

typedef struct bg_field_def {
    const char *name;
    bg_field_kind kind;
    size_t offset; /* char array, bg_bytes or integer member of bg_frame */
    size_t size;   /* char array size (incl. NUL) or byte limit */
    int64_t min, max;
} bg_field_def;

typedef struct bg_type_spec {
    const char *name;
    uint32_t required;
    uint32_t optional;
} bg_type_spec;

extern const bg_field_def bg_field_defs[BG_F_COUNT];
/* Indexed by bg_frame_type; entry 0 unused. */
extern const bg_type_spec bg_type_specs[BG_FRAME_TYPE_LAST + 1];

/* Checks a value of field fid; on failure writes "field 'x' ..." or "body: ..." into why. */
int bg_field_check(bg_field_id fid, const char *p, size_t len, char *why);
/* Strict unsigned ASCII decimal that fits in int64_t. */
int bg_parse_i64(const char *p, size_t len, int64_t *out);

/* Integer members: read (present = 0 when the member holds its "absent" value) and write. */
int64_t bg_frame_int_get(const bg_frame *f, bg_field_id fid, int *present);
void bg_frame_int_set(bg_frame *f, bg_field_id fid, int64_t v);

/* REQUEST/RESPONSE meta decoded flat (frame_meta_flat.c): one allocation holding the
 * struct, the pair arrays, the unescaped strings and the raw text. */
typedef struct bg_meta_flat {
    bg_pair *headers, *params; /* NULL when the member is absent */
    size_t nheaders, nparams;
    const char **features;
    size_t nfeatures;
    const char *client; /* NULL when absent */
    json_t *claims;     /* REQUEST claims, the one member parsed by jansson; NULL: absent */
    bg_bytes raw;       /* the meta text as decoded, for a re-encode */
} bg_meta_flat;

/* The meta text parsed flat when it has the common shape and passes bg_meta_check; NULL
 * otherwise (the caller then parses it with jansson, which decides and says why). Free
 * with bg_meta_flat_free. */
bg_meta_flat *bg_meta_flat_parse(bg_frame_type t, const char *text, size_t len);
void bg_meta_flat_free(bg_meta_flat *m);

/* Per-type checks of a parsed meta object; fills f->endpoints for ENDPOINTS_UPDATE
 * when f is not NULL. why gets "meta: ...". */
int bg_meta_check(bg_frame_type t, json_t *meta, bg_frame *f, char *why);

/* HTTP token (RFC 9110 tchar), for header names. */
int bg_http_token_ok(const char *p, size_t len);
/* Header value: no control bytes except HTAB. */
int bg_header_value_ok(const char *v, size_t len);
/* Parameter name: [A-Za-z_][A-Za-z0-9_]{0,63}. */
int bg_param_name_ok(const char *p, size_t len);

#endif
