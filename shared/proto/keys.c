/* keys.c: derives Valkey key and consumer-group names from the [messaging] settings. */
#include "busgate/proto/keys.h"

#include "busgate/core/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SERVICE_WORD "{service}"

void bg_messaging_names_default(bg_messaging_names *m)
{
    m->key_prefix = BG_DEFAULT_KEY_PREFIX;
    m->control_stream = BG_DEFAULT_CONTROL_STREAM;
    m->request_stream_template = BG_DEFAULT_REQUEST_STREAM_TEMPLATE;
    m->response_queue_name = BG_DEFAULT_RESPONSE_QUEUE_NAME;
    m->consumer_group = BG_DEFAULT_CONSUMER_GROUP;
    m->instance_id = NULL;
}

static int name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static int alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int bg_name_validate_bytes(const char *what, const char *name, size_t len, char *err)
{
    if (name == NULL || len == 0) {
        bg_set_error(err, "%s name is empty", what);
        return BG_ERR;
    }
    if (len > BG_NAME_MAX) {
        bg_set_error(err, "%s name is %zu bytes, longer than %d", what, len, BG_NAME_MAX);
        return BG_ERR;
    }
    if (!alnum((unsigned char)name[0])) {
        bg_set_error(err, "%s name must start with a letter or digit", what);
        return BG_ERR;
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char_ok((unsigned char)name[i])) {
            bg_set_error(err, "%s name has a byte 0x%02x at offset %zu outside [A-Za-z0-9._-]",
                         what, (unsigned char)name[i], i);
            return BG_ERR;
        }
    }
    return BG_OK;
}

int bg_name_validate(const char *what, const char *name, char *err)
{
    if (name == NULL) {
        bg_set_error(err, "%s name is missing", what);
        return BG_ERR;
    }
    return bg_name_validate_bytes(what, name, strlen(name), err);
}

/* snprintf into out with the length checks every key needs. */
BG_PRINTF(4, 5)
static int key_format(char *out, size_t outlen, char *err, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (out == NULL || outlen == 0) {
        bg_set_error(err, "key buffer is empty");
        return BG_ERR;
    }
    va_start(ap, fmt);
    n = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen || n > BG_KEY_MAX) {
        bg_set_error(err, "key is longer than %zu bytes",
                     outlen - 1 < BG_KEY_MAX ? outlen - 1 : (size_t)BG_KEY_MAX);
        out[0] = '\0';
        return BG_ERR;
    }
    return BG_OK;
}

/* key_format without printf, for keys made on every request: the parts end to end. */
static int key_join(char *out, size_t outlen, char *err, const char *const *parts, size_t n)
{
    size_t cap, len = 0;

    if (out == NULL || outlen == 0) {
        bg_set_error(err, "key buffer is empty");
        return BG_ERR;
    }
    cap = outlen - 1 < BG_KEY_MAX ? outlen - 1 : (size_t)BG_KEY_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(parts[i]);

        if (k > cap - len) {
            bg_set_error(err, "key is longer than %zu bytes", cap);
            out[0] = '\0';
            return BG_ERR;
        }
        memcpy(out + len, parts[i], k);
        len += k;
    }
    out[len] = '\0';
    return BG_OK;
}

static const char *or_default(const char *v, const char *def)
{
    return v != NULL && v[0] != '\0' ? v : def;
}

static const char *prefix_of(const bg_messaging_names *m)
{
    return or_default(m != NULL ? m->key_prefix : NULL, BG_DEFAULT_KEY_PREFIX);
}

int bg_key_request_stream(const bg_messaging_names *m, const char *service, char *out,
                          size_t outlen, char *err)
{
    const char *tpl = or_default(m != NULL ? m->request_stream_template : NULL,
                                 BG_DEFAULT_REQUEST_STREAM_TEMPLATE);
    const char *at;
    int before;

    if (bg_name_validate("service", service, err) != BG_OK)
        return BG_ERR;
    at = strstr(tpl, SERVICE_WORD);
    if (at == NULL) {
        bg_set_error(err, "request_stream_template '%s' does not contain {service}", tpl);
        return BG_ERR;
    }
    /* Only the word is replaced; the braces stay and make the name a hash tag. */
    before = (int)(at - tpl);
    return key_format(out, outlen, err, "%.*s{%s}%s", before, tpl, service,
                      at + strlen(SERVICE_WORD));
}

int bg_key_cancel_stream(const bg_messaging_names *m, const char *service, char *out, size_t outlen,
                         char *err)
{
    if (bg_name_validate("service", service, err) != BG_OK)
        return BG_ERR;
    return key_format(out, outlen, err, "%s:cancel:{%s}", prefix_of(m), service);
}

int bg_key_instance_stream(const bg_messaging_names *m, const char *service, const char *instance,
                           char *out, size_t outlen, char *err)
{
    if (bg_name_validate("service", service, err) != BG_OK)
        return BG_ERR;
    if (bg_name_validate("instance", instance, err) != BG_OK)
        return BG_ERR;
    return key_format(out, outlen, err, "%s:instance:{%s}:%s", prefix_of(m), service, instance);
}

int bg_key_broadcast_stream(const bg_messaging_names *m, char *out, size_t outlen, char *err)
{
    return key_format(out, outlen, err, "%s:broadcast", prefix_of(m));
}

int bg_key_control_stream(const bg_messaging_names *m, char *out, size_t outlen, char *err)
{
    return key_format(out, outlen, err, "%s",
                      or_default(m != NULL ? m->control_stream : NULL, BG_DEFAULT_CONTROL_STREAM));
}

int bg_key_reply_stream(const bg_messaging_names *m, const char *gateway, int worker, char *out,
                        size_t outlen, char *err)
{
    const char *base =
        or_default(m != NULL ? m->response_queue_name : NULL, BG_DEFAULT_RESPONSE_QUEUE_NAME);

    if (bg_name_validate("gateway", gateway, err) != BG_OK)
        return BG_ERR;
    if (worker < 0) {
        bg_set_error(err, "worker number %d is negative", worker);
        return BG_ERR;
    }
    return key_format(out, outlen, err, "%s:%s:%d", base, gateway, worker);
}

int bg_key_idempotency(const bg_messaging_names *m, const char *service, const char *digest,
                       char *out, size_t outlen, char *err)
{
    if (bg_name_validate("service", service, err) != BG_OK)
        return BG_ERR;
    if (!bg_is_lower_hex(digest)) {
        bg_set_error(err, "idempotency digest is empty or not lowercase hex");
        return BG_ERR;
    }
    const char *parts[] = {prefix_of(m), ":idem:{", service, "}:", digest};

    return key_join(out, outlen, err, parts, BG_ARRAY_LEN(parts));
}

int bg_key_dead_letter(const char *stream, char *out, size_t outlen, char *err)
{
    if (stream == NULL || stream[0] == '\0') {
        bg_set_error(err, "stream name is empty");
        return BG_ERR;
    }
    return key_format(out, outlen, err, "%s:dead", stream);
}

int bg_group_control(const bg_messaging_names *m, char *out, size_t outlen, char *err)
{
    const char *gateway = m != NULL ? m->instance_id : NULL;

    if (bg_name_validate("gateway", gateway, err) != BG_OK)
        return BG_ERR;
    return key_format(out, outlen, err, "%s:%s",
                      or_default(m->consumer_group, BG_DEFAULT_CONSUMER_GROUP), gateway);
}

int bg_group_requests(const bg_messaging_names *m, char *out, size_t outlen, char *err)
{
    return key_format(out, outlen, err, "%s",
                      or_default(m != NULL ? m->consumer_group : NULL, BG_DEFAULT_CONSUMER_GROUP));
}

int bg_key_gateway_state(const bg_messaging_names *m, char *out, size_t outlen, char *err)
{
    const char *prefix = m->key_prefix != NULL ? m->key_prefix : BG_DEFAULT_KEY_PREFIX;
    int n;

    if (bg_name_validate("gateway instance_id", m->instance_id, err) != BG_OK)
        return BG_ERR;
    n = snprintf(out, outlen, "%s:gateway:%s:state", prefix, m->instance_id);
    if (n < 0 || (size_t)n >= outlen || n > BG_KEY_MAX) {
        bg_set_error(err, "state key for gateway '%s' is too long", m->instance_id);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_key_gateway_state_pattern(const bg_messaging_names *m, char *out, size_t outlen, char *err)
{
    const char *prefix = m->key_prefix != NULL ? m->key_prefix : BG_DEFAULT_KEY_PREFIX;
    size_t o = 0;

    for (const char *p = prefix; *p != '\0'; p++) {
        if (o + 2 >= outlen)
            goto too_long;
        if (strchr("*?[]\\", *p) != NULL) /* SCAN's glob would read them as patterns */
            out[o++] = '\\';
        out[o++] = *p;
    }
    if ((size_t)snprintf(out + o, outlen - o, ":gateway:*:state") >= outlen - o)
        goto too_long;
    return BG_OK;
too_long:
    bg_set_error(err, "gateway state pattern for prefix '%s' is too long", prefix);
    return BG_ERR;
}

int bg_key_gateway_of_state(const bg_messaging_names *m, const char *key, char *gateway,
                            size_t glen)
{
    const char *prefix = m->key_prefix != NULL ? m->key_prefix : BG_DEFAULT_KEY_PREFIX;
    size_t plen = strlen(prefix), klen = strlen(key), nlen;
    static const char head[] = ":gateway:", tail[] = ":state";
    char err[BG_ERR_LEN];

    if (klen < plen + sizeof(head) - 1 + sizeof(tail) || strncmp(key, prefix, plen) != 0 ||
        strncmp(key + plen, head, sizeof(head) - 1) != 0 ||
        strcmp(key + klen - (sizeof(tail) - 1), tail) != 0)
        return BG_ERR;
    nlen = klen - plen - (sizeof(head) - 1) - (sizeof(tail) - 1);
    if (nlen + 1 > glen)
        return BG_ERR;
    memcpy(gateway, key + plen + sizeof(head) - 1, nlen);
    gateway[nlen] = '\0';
    return bg_name_validate("gateway", gateway, err);
}
