/* http_chunked.c: incremental decoder for chunked request bodies. */
#include "http_chunked.h"

#include <string.h>

#include "busgate/core/text.h"

enum {
    CH_SIZE = 0,   /* chunk-size hex digits */
    CH_SIZE_WS,    /* BWS between the size and ';' */
    CH_EXT,        /* chunk extension up to CR */
    CH_SIZE_LF,    /* LF of the size line */
    CH_DATA,       /* chunk data */
    CH_DATA_CR,    /* CR after the data */
    CH_DATA_LF,    /* LF after the data */
    CH_TRAILER,    /* start of a trailer line, or the final CRLF */
    CH_TRAILER_IN, /* inside a trailer line */
    CH_TRAILER_LF, /* LF of a trailer line */
    CH_END_LF,     /* LF of the final empty line */
    CH_DONE,
    CH_FAILED,
};

void bg_http_chunked_init(bg_http_chunked *c, uint64_t max_body, size_t max_ext, size_t max_trailer)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
    c->max_body = max_body;
    c->max_ext = max_ext != 0 ? max_ext : 1024;
    c->max_trailer = max_trailer != 0 ? max_trailer : 8192;
}

static int chunk_fail(bg_http_chunked *c, bg_http_error e, bg_http_error *err)
{
    c->state = CH_FAILED;
    c->failure = e;
    *err = e;
    return BG_ERR;
}

/* The size line is complete: start the data, or the trailers after the last chunk. */
static int size_line_end(bg_http_chunked *c, bg_http_error *err)
{
    if (c->chunk_left == 0) {
        c->state = CH_TRAILER;
        return BG_OK;
    }
    /* Refuse before accepting any data, so an oversized body costs no buffer space. */
    if (c->chunk_left > c->max_body - c->total)
        return chunk_fail(c, BG_HTTP_E_BODY_TOO_LARGE, err);
    c->state = CH_DATA;
    return BG_OK;
}

static int size_byte(bg_http_chunked *c, unsigned char ch, bg_http_error *err)
{
    int d = bg_hex_value(ch);

    if (d >= 0) {
        if (++c->digits > BG_HTTP_CHUNK_MAX_DIGITS || c->chunk_left > (UINT64_MAX >> 4))
            return chunk_fail(c, BG_HTTP_E_BAD_CHUNK_SIZE, err);
        c->chunk_left = c->chunk_left << 4 | (uint64_t)d;
        return BG_OK;
    }
    if (c->digits == 0)
        return chunk_fail(c, BG_HTTP_E_BAD_CHUNK_SIZE, err);
    if (ch == '\r')
        c->state = CH_SIZE_LF;
    else if (ch == ';')
        c->state = CH_EXT;
    else if (ch == ' ' || ch == '\t')
        c->state = CH_SIZE_WS;
    else
        return chunk_fail(c, BG_HTTP_E_BAD_CHUNK_SIZE, err);
    return BG_OK;
}

/* BWS and extension bytes: bounded, no CTLs but HTAB, ended by CR. */
static int ext_byte(bg_http_chunked *c, unsigned char ch, bg_http_error *err)
{
    if (++c->ext_len > c->max_ext)
        return chunk_fail(c, BG_HTTP_E_BAD_CHUNK_EXT, err);
    if (c->state == CH_SIZE_WS) {
        if (ch == ';')
            c->state = CH_EXT;
        else if (ch != ' ' && ch != '\t')
            return chunk_fail(c, BG_HTTP_E_BAD_CHUNK_EXT, err);
        return BG_OK;
    }
    if (ch == '\r')
        c->state = CH_SIZE_LF;
    else if (ch == '\n')
        return chunk_fail(c, BG_HTTP_E_CHUNK_CRLF, err);
    else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        return chunk_fail(c, BG_HTTP_E_BAD_CHUNK_EXT, err);
    return BG_OK;
}

/* Trailer lines are skipped; only their line endings, bytes and total size are checked. */
static int trailer_byte(bg_http_chunked *c, unsigned char ch, bg_http_error *err)
{
    if (++c->trailer_len > c->max_trailer)
        return chunk_fail(c, BG_HTTP_E_BAD_TRAILER, err);
    switch (c->state) {
    case CH_TRAILER:
        c->state = ch == '\r' ? CH_END_LF : CH_TRAILER_IN;
        if (ch == ' ' || ch == '\t' || ch == ':')
            return chunk_fail(c, BG_HTTP_E_BAD_TRAILER, err);
        break;
    case CH_TRAILER_IN:
        if (ch == '\r')
            c->state = CH_TRAILER_LF;
        break;
    default: /* CH_TRAILER_LF */
        if (ch != '\n')
            return chunk_fail(c, BG_HTTP_E_BAD_TRAILER, err);
        c->state = CH_TRAILER;
        return BG_OK;
    }
    if (ch == '\n' || (ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f)
        return chunk_fail(c, BG_HTTP_E_BAD_TRAILER, err);
    return BG_OK;
}

/* Every state but CH_DATA consumes exactly one byte. */
static int control_byte(bg_http_chunked *c, unsigned char ch, bg_http_error *err)
{
    switch (c->state) {
    case CH_SIZE:
        return size_byte(c, ch, err);
    case CH_SIZE_WS:
    case CH_EXT:
        return ext_byte(c, ch, err);
    case CH_SIZE_LF:
        if (ch != '\n')
            return chunk_fail(c, BG_HTTP_E_CHUNK_CRLF, err);
        return size_line_end(c, err);
    case CH_DATA_CR:
        if (ch != '\r')
            return chunk_fail(c, BG_HTTP_E_CHUNK_CRLF, err);
        c->state = CH_DATA_LF;
        return BG_OK;
    case CH_DATA_LF:
        if (ch != '\n')
            return chunk_fail(c, BG_HTTP_E_CHUNK_CRLF, err);
        c->state = CH_SIZE;
        c->digits = c->ext_len = 0;
        return BG_OK;
    case CH_END_LF:
        if (ch != '\n')
            return chunk_fail(c, BG_HTTP_E_BAD_TRAILER, err);
        c->state = CH_DONE;
        return BG_OK;
    default:
        return trailer_byte(c, ch, err);
    }
}

/* Copies what is available of the current chunk's data; memmove because out may be in. */
static size_t data_copy(bg_http_chunked *c, const char *in, size_t avail, char *out, size_t space)
{
    size_t n = avail < space ? avail : space;

    if (c->chunk_left < n)
        n = (size_t)c->chunk_left;
    if (n > 0)
        memmove(out, in, n);
    c->chunk_left -= n;
    c->total += n;
    if (c->chunk_left == 0)
        c->state = CH_DATA_CR;
    return n;
}

bg_http_chunked_result bg_http_chunked_decode(bg_http_chunked *c, const char *in, size_t inlen,
                                              size_t *consumed, char *out, size_t outcap,
                                              size_t *produced, bg_http_error *err)
{
    bg_http_error e = BG_HTTP_E_NONE;
    size_t i = 0, o = 0;

    if (out == NULL)
        outcap = 0;
    while (i < inlen && c->state != CH_DONE && c->state != CH_FAILED) {
        if (c->state == CH_DATA) {
            size_t n;
            if (o == outcap)
                break; /* out is full */
            n = data_copy(c, in + i, inlen - i, out + o, outcap - o);
            i += n;
            o += n;
            continue;
        }
        if (control_byte(c, (unsigned char)in[i++], &e) != BG_OK)
            break;
    }
    *consumed = i;
    *produced = o;
    if (c->state == CH_FAILED) {
        if (err != NULL)
            *err = c->failure;
        return BG_HTTP_CHUNKED_ERROR;
    }
    return c->state == CH_DONE ? BG_HTTP_CHUNKED_DONE : BG_HTTP_CHUNKED_AGAIN;
}
