/* http_chunked.h: incremental decoder for chunked request bodies, with limits. */
#ifndef BUSGATE_HTTP_CHUNKED_H
#define BUSGATE_HTTP_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "http_parser.h"

/* Policy: chunk-size is 1..BG_HTTP_CHUNK_MAX_DIGITS hex digits (leading zeros count),
 * a value past 64 bits or a bad digit is 400; extensions (";name=value", after optional
 * SP/HTAB) are accepted and ignored, at most max_ext bytes per chunk line; CRLF is
 * required after the size line and after each chunk's data (bare LF/CR: 400); trailer
 * fields are checked for line endings and skipped, at most max_trailer bytes in all.
 * A chunk whose size would take the decoded total past max_body is 413 before any of
 * its data is accepted. */

#define BG_HTTP_CHUNK_MAX_DIGITS 32

typedef struct bg_http_chunked {
    int state;
    uint64_t chunk_left; /* data bytes still to come in this chunk */
    uint64_t total;      /* decoded bytes so far */
    uint64_t max_body;
    size_t max_ext, max_trailer;
    size_t digits;         /* hex digits of the current size line */
    size_t ext_len;        /* extension bytes of the current size line */
    size_t trailer_len;    /* bytes of the trailer section so far */
    bg_http_error failure; /* why the decoder stopped, once it failed */
} bg_http_chunked;

typedef enum bg_http_chunked_result {
    BG_HTTP_CHUNKED_DONE = 0, /* last chunk and trailers consumed; the body is complete */
    BG_HTTP_CHUNKED_AGAIN,    /* all input consumed or out full: call again */
    BG_HTTP_CHUNKED_ERROR,    /* *err says why (400 or 413) */
} bg_http_chunked_result;

/* max_body: limit on decoded bytes; max_ext/max_trailer 0 = defaults (1024, 8192). */
void bg_http_chunked_init(bg_http_chunked *c, uint64_t max_body, size_t max_ext,
                          size_t max_trailer);

/* Decode from in[0..inlen) into out[0..outcap). *consumed: input bytes used (on DONE the
 * next request starts at in + *consumed); *produced: body bytes written. out may equal
 * in (in-place): the decoder never writes past what it has read. With out == NULL or
 * outcap == 0 the decoder stops at the next data byte. */
bg_http_chunked_result bg_http_chunked_decode(bg_http_chunked *c, const char *in, size_t inlen,
                                              size_t *consumed, char *out, size_t outcap,
                                              size_t *produced, bg_http_error *err);

#endif
