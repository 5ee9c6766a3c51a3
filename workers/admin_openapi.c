/* admin_openapi.c: GET [openapi] path: the aggregated OpenAPI document the master keeps in
 * shared memory, served from this worker's copy, renewed once per document generation. */
#include "admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"
#include "busgate/routing/doc_shm.h"

int bg_admin_is_openapi(const bg_wk *wk, const char *path, size_t len)
{
    const char *p = wk->cfg->openapi.path;

    return wk->ctx->openapi != NULL && p[0] != '\0' && strlen(p) == len &&
           memcmp(p, path, len) == 0;
}

/* Copies the document out when the master published a new one since the last copy. The
 * copy never waits: a document rewritten during every attempt is a 503 this time. */
static int openapi_refresh(bg_wk *wk, bg_xchg *x)
{
    uint64_t gen = bg_doc_generation(wk->ctx->openapi);
    char *body = NULL, detail[160];
    size_t len = 0;

    if (wk->openapi_body != NULL && gen == wk->openapi_gen)
        return BG_OK;
    switch (bg_doc_read(wk->ctx->openapi, &body, &len, &gen)) {
    case BG_DOC_OK:
        free(wk->openapi_body);
        wk->openapi_body = body;
        wk->openapi_len = len;
        wk->openapi_gen = gen;
        return BG_OK;
    case BG_DOC_TOO_LARGE:
        snprintf(detail, sizeof(detail),
                 "the OpenAPI document is %zu bytes, more than [openapi] max_size", len);
        bg_xchg_problem(x, 503, detail, NULL);
        return BG_ERR;
    case BG_DOC_NONE:
    case BG_DOC_BUSY:
    default:
        bg_xchg_problem(x, 503, "the OpenAPI document is being built, retry", "Retry-After: 1\r\n");
        return BG_ERR;
    }
}

void bg_admin_openapi(bg_wk *wk, bg_xchg *x)
{
    if (wk->cfg->openapi.access == BG_OPENAPI_ADMIN && !bg_admin_authorized(wk, x))
        return;
    if (openapi_refresh(wk, x) != BG_OK)
        return;
    bg_admin_reply(x, 200, "application/json", wk->openapi_body, wk->openapi_len, 0);
}
