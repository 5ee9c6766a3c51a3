/* openapi_write.c: the aggregated OpenAPI document written out as text: the small parts
 * dumped by jansson, the operations copied from the text their endpoints keep. */
#include "openapi_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct oa_buf {
    char *p;
    size_t len, cap;
    int failed;
} oa_buf;

static void oa_put(oa_buf *b, const char *s, size_t n)
{
    char *np;

    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        if ((np = realloc(b->p, cap)) == NULL) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void oa_puts(oa_buf *b, const char *s)
{
    oa_put(b, s, strlen(s));
}

/* Any JSON value (a string too, escaped) as compact text. */
static void oa_put_json(oa_buf *b, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    if (text == NULL) {
        b->failed = 1;
        return;
    }
    oa_puts(b, text);
    free(text);
}

static void oa_put_string(oa_buf *b, const char *s)
{
    json_t *v = json_string(s);

    if (v == NULL) {
        b->failed = 1; /* not UTF-8: the frame decoder lets no such name through */
        return;
    }
    oa_put_json(b, v);
    json_decref(v);
}

/* "method":{operation text, then its operationId and security} */
static void oa_put_op(oa_buf *b, const bg_oa_build *ob, const char *method, json_t *meta)
{
    const char *text = ob->texts[json_integer_value(json_object_get(meta, "text"))];
    json_t *claims = json_object_get(meta, "claims");

    oa_put_string(b, method);
    oa_puts(b, ":");
    oa_put(b, text, strlen(text) - 1); /* without its closing brace */
    if (json_is_true(json_object_get(meta, "opid_ok"))) {
        oa_puts(b, ",\"operationId\":");
        oa_put_json(b, json_object_get(meta, "opid"));
    }
    if (json_array_size(claims) > 0) {
        oa_puts(b, ",\"security\":[{\"bearerAuth\":");
        oa_put_json(b, claims);
        oa_puts(b, "}]");
    }
    oa_puts(b, "}");
}

/* "key":{...} with the operations that have a live connection; nothing when none has. */
static void oa_put_item(oa_buf *b, const bg_oa_build *ob, const char *key, json_t *item,
                        int *first_key)
{
    const char *method;
    json_t *meta;
    int first = 1;

    json_object_foreach(item, method, meta)
    {
        if (json_integer_value(json_object_get(meta, "up")) == 0)
            continue;
        if (first) {
            oa_puts(b, *first_key ? "" : ",");
            oa_put_string(b, key);
            oa_puts(b, ":{");
            *first_key = 0;
        } else {
            oa_puts(b, ",");
        }
        first = 0;
        oa_put_op(b, ob, method, meta);
    }
    if (!first)
        oa_puts(b, "}");
}

int bg_oa_write(const bg_oa_build *ob, char **json, size_t *len)
{
    oa_buf b = {0};
    const char *key;
    json_t *item;
    int first_key = 1;

    oa_puts(&b, "{\"openapi\":");
    oa_put_json(&b, json_object_get(ob->doc, "openapi"));
    oa_puts(&b, ",\"info\":");
    oa_put_json(&b, json_object_get(ob->doc, "info"));
    oa_puts(&b, ",\"tags\":");
    oa_put_json(&b, json_object_get(ob->doc, "tags"));
    oa_puts(&b, ",\"paths\":{");
    json_object_foreach(ob->paths, key, item)
    {
        oa_put_item(&b, ob, key, item, &first_key);
    }
    oa_puts(&b, "},\"components\":");
    oa_put_json(&b, json_object_get(ob->doc, "components"));
    if (json_array_size(ob->notes) > 0) {
        oa_puts(&b, ",\"x-busgate-notes\":");
        oa_put_json(&b, ob->notes);
    }
    oa_puts(&b, "}");
    if (b.failed) {
        free(b.p);
        return BG_ERR;
    }
    *json = b.p;
    *len = b.len;
    return BG_OK;
}
