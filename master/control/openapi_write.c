/* openapi_write.c: the aggregated OpenAPI document written out as text: the small parts
 * dumped by jansson, the operations copied from the text their endpoints keep. */
#include "openapi_int.h"

#include <ctype.h>
#include <stdio.h>
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

/* A JSON string: the bytes are UTF-8 already (they came from JSON or from names the
 * frame decoder checked); quote, backslash and control bytes are escaped. */
static void oa_put_string(oa_buf *b, const char *s, size_t n)
{
    char esc[8];

    oa_puts(b, "\"");
    for (size_t i = 0, from = 0; i <= n; i++) {
        unsigned char ch = i < n ? (unsigned char)s[i] : 0;
        if (i < n && ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        oa_put(b, s + from, i - from);
        from = i + 1;
        if (i == n)
            break;
        snprintf(esc, sizeof(esc), ch == '"' || ch == '\\' ? "\\%c" : "\\u%04x", ch);
        oa_puts(b, esc);
    }
    oa_puts(b, "\"");
}

static void oa_put_claims(oa_buf *b, const bg_oa_op *op)
{
    oa_puts(b, ",\"security\":[{\"bearerAuth\":[");
    for (size_t i = 0; i < op->nclaims; i++) {
        oa_puts(b, i > 0 ? "," : "");
        oa_put_string(b, op->claims[i].p, op->claims[i].len);
    }
    oa_puts(b, "]}]");
}

/* "method":{operation text, then its operationId and security} */
static void oa_put_op(oa_buf *b, const bg_oa_op *op)
{
    char method[16];
    size_t i;

    for (i = 0; op->method[i] != '\0' && i + 1 < sizeof(method); i++)
        method[i] = (char)tolower((unsigned char)op->method[i]);
    method[i] = '\0';
    oa_put_string(b, method, i);
    oa_puts(b, ":");
    oa_put(b, op->text, strlen(op->text) - 1); /* without its closing brace */
    if (op->opid_ok) {
        oa_puts(b, ",\"operationId\":");
        oa_put_string(b, op->opid, strlen(op->opid));
    }
    if (op->nclaims > 0)
        oa_put_claims(b, op);
    oa_puts(b, "}");
}

/* "key":{...} with the operations that have a live connection; nothing when none has. */
static void oa_put_path(oa_buf *b, const bg_oa_path *p, int *first_path)
{
    int first = 1;

    for (const bg_oa_op *op = p->first; op != NULL; op = op->next) {
        if (op->up == 0)
            continue;
        if (first) {
            oa_puts(b, *first_path ? "" : ",");
            oa_put_string(b, p->key, strlen(p->key));
            oa_puts(b, ":{");
            *first_path = 0;
        } else {
            oa_puts(b, ",");
        }
        first = 0;
        oa_put_op(b, op);
    }
    if (!first)
        oa_puts(b, "}");
}

int bg_oa_write(const bg_oa_build *ob, char **json, size_t *len)
{
    oa_buf b = {0};
    int first_path = 1;

    oa_puts(&b, "{\"openapi\":");
    oa_put_json(&b, json_object_get(ob->doc, "openapi"));
    oa_puts(&b, ",\"info\":");
    oa_put_json(&b, json_object_get(ob->doc, "info"));
    oa_puts(&b, ",\"tags\":");
    oa_put_json(&b, json_object_get(ob->doc, "tags"));
    oa_puts(&b, ",\"paths\":{");
    for (size_t i = 0; i < ob->npaths; i++)
        oa_put_path(&b, ob->paths[i], &first_path);
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
