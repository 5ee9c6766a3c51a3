/* http_path.h: split a request target and percent-decode and normalise its path. */
#ifndef BUSGATE_HTTP_PATH_H
#define BUSGATE_HTTP_PATH_H

#include <stddef.h>

#include "busgate/common.h"
#include "http_parser.h"

/* Policy for the path the gateway routes on:
 * - It must start with '/' (empty means "/").
 * - %XX is decoded (hex digits in either case); '%' without two hex digits is 400.
 * - %00 is 400 (BG_HTTP_E_PATH_NUL); other decoded control bytes (%01-%1F, %7F) are 400
 *   too, so they can never reach logs or services' routers.
 * - An encoded slash %2F is 400 (BG_HTTP_E_ENCODED_SLASH): decoding it would move a
 *   segment boundary, so the gateway and a service could see different routes.
 * - Dot segments are resolved after decoding ("%2e%2e" is ".."), "//" collapses into
 *   "/", and ".." at the root stays at the root. A trailing '/' is kept, and a final
 *   "." or ".." leaves one ("/a/b/.." is "/a/").
 * - The query is not decoded: services get it as sent. */

/* Split a request target at the first '?'. query->ptr is NULL when there is no '?'. */
void bg_http_target_split(const char *target, size_t len, bg_bytes *path, bg_bytes *query);

/* Decode and normalise path[0..len) into out (NUL-terminated, *outlen bytes without the
 * NUL). The result is never longer than the input, so outcap >= len + 2 always fits.
 * Returns BG_OK, or BG_ERR with *err set (400, or 414 for a too small out). */
int bg_http_path_normalize(const char *path, size_t len, char *out, size_t outcap, size_t *outlen,
                           bg_http_error *err);

#endif
