/* frame.c: the frame field table, per-type rules, names, and scalar field validation. */
#include "frame_int.h"

#include <stdlib.h>
#include <string.h>

#define STR(m) BG_K_NAME, offsetof(bg_frame, m), sizeof(((bg_frame *)0)->m), 0, 0
#define BYTES(k, m, lim) k, offsetof(bg_frame, m), lim, 0, 0
#define INT(lo, hi) BG_K_INT, 0, 0, lo, hi

const bg_field_def bg_field_defs[BG_F_COUNT] = {
    [BG_F_V] = {"v", INT(0, INT64_MAX)},
    [BG_F_TYPE] = {"type", BG_K_TYPE, 0, 0, 0, 0},
    [BG_F_ID] = {"id", BG_K_IDENT, offsetof(bg_frame, id), sizeof(((bg_frame *)0)->id), 0, 0},
    [BG_F_TS] = {"ts", INT(0, INT64_MAX)},
    [BG_F_SERVICE] = {"service", STR(service)},
    [BG_F_INSTANCE] = {"instance", STR(instance)},
    [BG_F_VERSION] = {"version", BG_K_TOKEN, offsetof(bg_frame, svc_version),
                      sizeof(((bg_frame *)0)->svc_version), 0, 0},
    [BG_F_GATEWAY] = {"gateway", STR(gateway)},
    [BG_F_REASON] = {"reason", BG_K_TEXT, offsetof(bg_frame, reason),
                     sizeof(((bg_frame *)0)->reason), 0, 0},
    [BG_F_RESYNC_ID] = {"resync_id", BG_K_IDENT, offsetof(bg_frame, resync_id),
                        sizeof(((bg_frame *)0)->resync_id), 0, 0},
    [BG_F_INTERVAL_MS] = {"interval_ms", INT(1, BG_FRAME_INTERVAL_MAX)},
    [BG_F_INFLIGHT] = {"inflight", INT(0, INT32_MAX)},
    [BG_F_METHOD] = {"method", BG_K_METHOD, offsetof(bg_frame, method),
                     sizeof(((bg_frame *)0)->method), 0, 0},
    [BG_F_PATH] = {"path", BYTES(BG_K_PATH, path, BG_FRAME_PATH_MAX)},
    [BG_F_QUERY] = {"query", BYTES(BG_K_QUERY, query, BG_FRAME_QUERY_MAX)},
    [BG_F_ENDPOINT] = {"endpoint", BYTES(BG_K_TEMPLATE, endpoint, BG_FRAME_PATH_MAX)},
    [BG_F_REPLY_TO] = {"reply_to", BG_K_TOKEN, offsetof(bg_frame, reply_to),
                       sizeof(((bg_frame *)0)->reply_to), 0, 0},
    [BG_F_DEADLINE] = {"deadline", INT(1, INT64_MAX)},
    [BG_F_STATUS] = {"status", INT(100, 599)},
    [BG_F_STREAM] = {"stream", INT(0, 1)},
    [BG_F_SEQ] = {"seq", INT(1, INT64_MAX)},
    [BG_F_FINAL] = {"final", INT(0, 1)},
    [BG_F_META] = {"meta", BG_K_META, 0, BG_FRAME_META_MAX, 0, 0},
    [BG_F_BODY] = {"body", BYTES(BG_K_BODY, body, BG_FRAME_BODY_MAX)},
};

#define COMMON_REQ (BG_BIT(BG_F_V) | BG_BIT(BG_F_TYPE) | BG_BIT(BG_F_ID))
#define COMMON_OPT (BG_BIT(BG_F_TS) | BG_BIT(BG_F_META))
#define SVC_REQ (COMMON_REQ | BG_BIT(BG_F_SERVICE) | BG_BIT(BG_F_INSTANCE))

const bg_type_spec bg_type_specs[BG_FRAME_TYPE_LAST + 1] = {
    [BG_FRAME_HELLO] = {"HELLO", SVC_REQ | BG_BIT(BG_F_VERSION), COMMON_OPT},
    [BG_FRAME_HEARTBEAT] = {"HEARTBEAT", SVC_REQ | BG_BIT(BG_F_VERSION) | BG_BIT(BG_F_INTERVAL_MS),
                            COMMON_OPT | BG_BIT(BG_F_INFLIGHT)},
    [BG_FRAME_ENDPOINTS_UPDATE] = {"ENDPOINTS_UPDATE",
                                   SVC_REQ | BG_BIT(BG_F_VERSION) | BG_BIT(BG_F_META),
                                   BG_BIT(BG_F_TS) | BG_BIT(BG_F_RESYNC_ID)},
    [BG_FRAME_GOODBYE] = {"GOODBYE", SVC_REQ, COMMON_OPT | BG_BIT(BG_F_REASON)},
    [BG_FRAME_RESYNC_REQUEST] = {"RESYNC_REQUEST",
                                 COMMON_REQ | BG_BIT(BG_F_GATEWAY) | BG_BIT(BG_F_REASON),
                                 COMMON_OPT | BG_BIT(BG_F_SERVICE) | BG_BIT(BG_F_INSTANCE)},
    [BG_FRAME_REQUEST] = {"REQUEST",
                          COMMON_REQ | BG_BIT(BG_F_SERVICE) | BG_BIT(BG_F_METHOD) |
                              BG_BIT(BG_F_PATH) | BG_BIT(BG_F_ENDPOINT) | BG_BIT(BG_F_REPLY_TO) |
                              BG_BIT(BG_F_DEADLINE) | BG_BIT(BG_F_GATEWAY),
                          COMMON_OPT | BG_BIT(BG_F_QUERY) | BG_BIT(BG_F_BODY)},
    [BG_FRAME_CANCEL] = {"CANCEL", COMMON_REQ | BG_BIT(BG_F_REASON),
                         COMMON_OPT | BG_BIT(BG_F_SERVICE) | BG_BIT(BG_F_GATEWAY)},
    [BG_FRAME_RESPONSE] = {"RESPONSE", COMMON_REQ | BG_BIT(BG_F_INSTANCE) | BG_BIT(BG_F_STATUS),
                           COMMON_OPT | BG_BIT(BG_F_BODY) | BG_BIT(BG_F_STREAM)},
    /* No meta: a piece carries bytes only; reason marks a stream the service broke off. */
    [BG_FRAME_RESPONSE_CHUNK] = {"RESPONSE_CHUNK", COMMON_REQ | BG_BIT(BG_F_SEQ),
                                 BG_BIT(BG_F_TS) | BG_BIT(BG_F_INSTANCE) | BG_BIT(BG_F_BODY) |
                                     BG_BIT(BG_F_FINAL) | BG_BIT(BG_F_REASON)},
};

static const char *const method_names[] = {
    [BG_METHOD_GET] = "GET",         [BG_METHOD_HEAD] = "HEAD",   [BG_METHOD_POST] = "POST",
    [BG_METHOD_PUT] = "PUT",         [BG_METHOD_PATCH] = "PATCH", [BG_METHOD_DELETE] = "DELETE",
    [BG_METHOD_OPTIONS] = "OPTIONS",
};

const char *bg_frame_type_name(bg_frame_type t)
{
    if (t < BG_FRAME_HELLO || t > BG_FRAME_TYPE_LAST)
        return "UNKNOWN";
    return bg_type_specs[t].name;
}

int bg_frame_type_parse(const char *name, size_t len, bg_frame_type *out)
{
    for (int t = BG_FRAME_HELLO; t <= BG_FRAME_TYPE_LAST; t++) {
        const char *n = bg_type_specs[t].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            *out = (bg_frame_type)t;
            return BG_OK;
        }
    }
    return BG_ERR;
}

const char *bg_method_name(bg_method m)
{
    if (m < BG_METHOD_GET || m > BG_METHOD_OPTIONS)
        return "UNKNOWN";
    return method_names[m];
}

int bg_method_parse(const char *name, size_t len, bg_method *out)
{
    for (int m = BG_METHOD_GET; m <= BG_METHOD_OPTIONS; m++) {
        if (strlen(method_names[m]) == len && memcmp(method_names[m], name, len) == 0) {
            *out = (bg_method)m;
            return BG_OK;
        }
    }
    return BG_ERR;
}

void bg_frame_init(bg_frame *f, bg_frame_type type)
{
    memset(f, 0, sizeof(*f));
    f->version = BG_PROTOCOL_VERSION;
    f->type = type;
    f->inflight = -1;
}

void bg_frame_free(bg_frame *f)
{
    bg_frame_type type = f->type;

    json_decref(f->meta);
    free(f->owned_);
    bg_meta_flat_free(f->flat_);
    bg_endpoints_free(&f->endpoints);
    bg_frame_init(f, type);
}

int bg_parse_i64(const char *p, size_t len, int64_t *out)
{
    int64_t v = 0;

    if (len == 0 || len > 19)
        return BG_ERR;
    for (size_t i = 0; i < len; i++) {
        int d = p[i] - '0';
        if (d < 0 || d > 9)
            return BG_ERR;
        if (v > (INT64_MAX - d) / 10)
            return BG_ERR;
        v = v * 10 + d;
    }
    *out = v;
    return BG_OK;
}

int64_t bg_frame_int_get(const bg_frame *f, bg_field_id fid, int *present)
{
    int64_t v = 0;

    switch (fid) {
    case BG_F_V:
        v = f->version;
        break;
    case BG_F_TS:
        v = f->ts;
        break;
    case BG_F_INTERVAL_MS:
        v = f->interval_ms;
        break;
    case BG_F_INFLIGHT:
        v = f->inflight;
        break;
    case BG_F_DEADLINE:
        v = f->deadline_ms;
        break;
    case BG_F_STATUS:
        v = f->status;
        break;
    case BG_F_STREAM:
        v = f->stream;
        break;
    case BG_F_SEQ:
        v = f->seq;
        break;
    case BG_F_FINAL:
        v = f->final;
        break;
    default:
        break;
    }
    /* ts 0, inflight -1 and 0 for the optional flags and seq are how a C caller says
     * "leave it out" (seq is required, so the encoder then names it missing). */
    *present = !((fid == BG_F_TS && v == 0) || (fid == BG_F_INFLIGHT && v < 0) ||
                 ((fid == BG_F_STREAM || fid == BG_F_SEQ || fid == BG_F_FINAL) && v == 0));
    return v;
}

void bg_frame_int_set(bg_frame *f, bg_field_id fid, int64_t v)
{
    switch (fid) {
    case BG_F_V:
        f->version = v > INT32_MAX ? INT32_MAX : (int)v;
        break;
    case BG_F_TS:
        f->ts = v;
        break;
    case BG_F_INTERVAL_MS:
        f->interval_ms = v;
        break;
    case BG_F_INFLIGHT:
        f->inflight = v;
        break;
    case BG_F_DEADLINE:
        f->deadline_ms = v;
        break;
    case BG_F_STATUS:
        f->status = (int)v;
        break;
    case BG_F_STREAM:
        f->stream = (int)v;
        break;
    case BG_F_SEQ:
        f->seq = v;
        break;
    case BG_F_FINAL:
        f->final = (int)v;
        break;
    default:
        break;
    }
}
