/* service_message.c: what a handler reads from a request and writes into a response. */
#include "service_int.h"

#include <stdlib.h>
#include <string.h>

#include "busgate/core/text.h"

static const bg_frame *request_frame(const busgate_request *req)
{
    return req->priv_;
}

const char *busgate_request_param(const busgate_request *req, const char *name)
{
    return bg_frame_param_get(request_frame(req), name, NULL);
}

size_t busgate_request_param_count(const busgate_request *req)
{
    return bg_frame_param_count(request_frame(req));
}

int busgate_request_param_at(const busgate_request *req, size_t i, const char **name,
                             const char **value)
{
    bg_pair p;

    if (bg_frame_param_at(request_frame(req), i, &p) != BG_OK)
        return BG_ERR;
    *name = p.name;
    *value = p.value;
    return BG_OK;
}

const char *busgate_request_header(const busgate_request *req, const char *name)
{
    return bg_frame_header_get(request_frame(req), name, NULL);
}

const char *busgate_request_claim(const busgate_request *req, const char *name)
{
    return bg_frame_claim_get(request_frame(req), name);
}

size_t busgate_request_header_count(const busgate_request *req)
{
    return bg_frame_header_count(request_frame(req));
}

int busgate_request_header_at(const busgate_request *req, size_t i, const char **name,
                              const char **value)
{
    bg_pair p;

    if (bg_frame_header_at(request_frame(req), i, &p) != BG_OK)
        return BG_ERR;
    *name = p.name;
    *value = p.value;
    return BG_OK;
}

/* Decodes src[0..len) (%XX, '+' = space) into out; BG_ERR when bad or too long. */
static int query_decode(const char *src, size_t len, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int byte = bg_pct_byte(src, len, i);
            if (byte < 0)
                return BG_ERR;
            c = (char)byte;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= outlen)
            return BG_ERR;
        out[o++] = c;
    }
    out[o] = '\0';
    return BG_OK;
}

int busgate_request_query_param(const busgate_request *req, const char *name, char *out,
                                size_t outlen)
{
    const char *q = req->query, *end;
    char key[256];

    if (q == NULL || outlen == 0)
        return BG_ERR;
    for (; *q != '\0'; q = *end != '\0' ? end + 1 : end) {
        const char *eq;
        end = strchr(q, '&');
        if (end == NULL)
            end = q + strlen(q);
        eq = memchr(q, '=', (size_t)(end - q));
        if (query_decode(q, (size_t)((eq != NULL ? eq : end) - q), key, sizeof(key)) != BG_OK ||
            strcmp(key, name) != 0)
            continue;
        if (eq == NULL) {
            out[0] = '\0';
            return BG_OK;
        }
        return query_decode(eq + 1, (size_t)(end - eq - 1), out, outlen);
    }
    return BG_ERR;
}

int busgate_request_cancelled(const busgate_request *req)
{
    return atomic_load(&req->cancelled);
}

int64_t busgate_request_remaining_ms(const busgate_request *req)
{
    return req->deadline_ms - bg_wall_ms();
}

void busgate_response_set_status(busgate_response *res, int status)
{
    if (status < 100 || status > 599) {
        res->failed = 1;
        bg_set_error(res->why, "status %d is outside 100..599", status);
        return;
    }
    res->frame.status = status;
}

int busgate_response_add_header(busgate_response *res, const char *name, const char *value)
{
    char why[BG_ERR_LEN];

    if (name == NULL || value == NULL ||
        bg_meta_headers_add(&res->meta, name, strlen(name), value, strlen(value), why) != BG_OK) {
        res->failed = 1;
        bg_set_error(res->why, "header %s: %s", name != NULL ? name : "(null)",
                     name == NULL || value == NULL ? "NULL name or value" : why);
        return BG_ERR;
    }
    return BG_OK;
}

int busgate_response_set_body(busgate_response *res, const void *body, size_t len)
{
    char *copy = NULL;

    if (len > BG_FRAME_BODY_MAX) {
        res->failed = 1;
        res->too_large = 1;
        bg_set_error(res->why, "body of %zu bytes exceeds %d", len, BG_FRAME_BODY_MAX);
        return BG_ERR;
    }
    if (len > 0 && (copy = malloc(len)) == NULL) {
        res->failed = 1;
        bg_set_error(res->why, "body of %zu bytes: out of memory", len);
        return BG_ERR;
    }
    if (len > 0)
        memcpy(copy, body, len);
    free(res->body);
    res->body = copy;
    res->body_len = res->body_cap = len;
    return BG_OK;
}

int busgate_response_set(busgate_response *res, int status, const char *content_type,
                         const void *body, size_t len)
{
    busgate_response_set_status(res, status);
    if (res->failed)
        return BG_ERR;
    if (content_type != NULL && busgate_response_add_header(res, "Content-Type", content_type))
        return BG_ERR;
    return busgate_response_set_body(res, body, len);
}
