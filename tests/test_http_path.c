/* test_http_path.c: request-target split, percent-decoding and path normalisation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../workers/http_path.h"

/* Normalises s; on success returns the output (static), else NULL with *err set. */
static const char *norm(const char *s, bg_http_error *err)
{
    static char out[512];
    size_t outlen = 0;

    *err = BG_HTTP_E_NONE;
    if (bg_http_path_normalize(s, strlen(s), out, sizeof(out), &outlen, err) != BG_OK)
        return NULL;
    cr_assert_eq(outlen, strlen(out), "outlen disagrees with the NUL for %s", s);
    return out;
}

static void expect_path(const char *in, const char *want)
{
    bg_http_error err;
    const char *got = norm(in, &err);

    cr_assert_not_null(got, "%s rejected: %s", in, bg_http_error_str(err));
    cr_assert_str_eq(got, want, "normalising %s", in);
}

static void expect_reject(const char *in, bg_http_error want)
{
    bg_http_error err;

    cr_assert_null(norm(in, &err), "%s accepted", in);
    cr_assert_eq(err, want, "%s: error %s", in, bg_http_error_str(err));
    cr_assert_eq(bg_http_error_status(err, NULL), 400);
}

Test(http_path, plain_paths_unchanged)
{
    expect_path("/", "/");
    expect_path("/api/v1/users", "/api/v1/users");
    expect_path("/api/v1/users/", "/api/v1/users/");
    expect_path("/a.b/.c/..d/...", "/a.b/.c/..d/...");
    expect_path("", "/");
}

Test(http_path, percent_decoding)
{
    expect_path("/a%20b", "/a b");
    expect_path("/%41%62%63", "/Abc");
    expect_path("/caf%C3%A9", "/caf\xc3\xa9");
    expect_path("/caf%c3%a9", "/caf\xc3\xa9");
    expect_path("/100%25", "/100%");
    expect_path("/%3F%23", "/?#");
}

Test(http_path, dot_segments)
{
    expect_path("/a/./b", "/a/b");
    expect_path("/./a", "/a");
    expect_path("/a/.", "/a/");
    expect_path("/a/b/../c", "/a/c");
    expect_path("/a/b/..", "/a/");
    expect_path("/a/..", "/");
    expect_path("/a/b/../../c/", "/c/");
    expect_path("/a/%2e%2E/b", "/b");
    expect_path("/a/.%2e/b", "/b");
    expect_path("/a/%2e/b", "/a/b");
}

Test(http_path, never_above_root)
{
    expect_path("/..", "/");
    expect_path("/../..", "/");
    expect_path("/../../etc/passwd", "/etc/passwd");
    expect_path("/a/../../../b", "/b");
    expect_path("/%2e%2e/%2e%2e/x", "/x");
    expect_path("/./../.", "/");
}

Test(http_path, double_slashes_collapse)
{
    expect_path("//", "/");
    expect_path("//a//b", "/a/b");
    expect_path("/a///b//", "/a/b/");
    expect_path("/a//../b", "/b");
}

Test(http_path, rejected_inputs)
{
    expect_reject("/a%2Fb", BG_HTTP_E_ENCODED_SLASH);
    expect_reject("/a%2fb", BG_HTTP_E_ENCODED_SLASH);
    expect_reject("/a%00b", BG_HTTP_E_PATH_NUL);
    expect_reject("/a%0a", BG_HTTP_E_PATH_CTL);
    expect_reject("/a%7F", BG_HTTP_E_PATH_CTL);
    expect_reject("/a%", BG_HTTP_E_BAD_PERCENT);
    expect_reject("/a%4", BG_HTTP_E_BAD_PERCENT);
    expect_reject("/a%zz", BG_HTTP_E_BAD_PERCENT);
    expect_reject("/a%g1", BG_HTTP_E_BAD_PERCENT);
    expect_reject("/%%41", BG_HTTP_E_BAD_PERCENT);
    expect_reject("a/b", BG_HTTP_E_BAD_PATH);
    expect_reject("*", BG_HTTP_E_BAD_PATH);
}

Test(http_path, raw_nul_and_ctl_rejected)
{
    char out[16];
    bg_http_error err;

    cr_assert_eq(bg_http_path_normalize("/a\0b", 4, out, sizeof(out), NULL, &err), BG_ERR);
    cr_assert_eq(err, BG_HTTP_E_PATH_NUL);
    cr_assert_eq(bg_http_path_normalize("/a\tb", 4, out, sizeof(out), NULL, &err), BG_ERR);
    cr_assert_eq(err, BG_HTTP_E_PATH_CTL);
}

Test(http_path, output_capacity)
{
    char out[8];
    size_t n = 0;
    bg_http_error err = BG_HTTP_E_NONE;

    /* len + 1 always fits, even when nothing shrinks */
    cr_assert_eq(bg_http_path_normalize("/abcdef", 7, out, 8, &n, &err), BG_OK);
    cr_assert_str_eq(out, "/abcdef");
    cr_assert_eq(bg_http_path_normalize("/abcdefg", 8, out, 8, &n, &err), BG_ERR);
    cr_assert_eq(err, BG_HTTP_E_PATH_TOO_LONG);
    cr_assert_eq(bg_http_error_status(err, NULL), 414);
    cr_assert_eq(bg_http_path_normalize("", 0, out, 2, &n, &err), BG_OK);
    cr_assert_str_eq(out, "/");
    cr_assert_eq(bg_http_path_normalize("", 0, out, 1, &n, &err), BG_ERR);
}

Test(http_path, input_is_not_read_past_len)
{
    /* an exactly sized heap copy: ASan reports any read beyond it */
    const char *src = "/a/b%4";
    char *p = malloc(strlen(src));
    char out[16];
    bg_http_error err;

    cr_assert_not_null(p);
    memcpy(p, src, strlen(src));
    cr_assert_eq(bg_http_path_normalize(p, strlen(src), out, sizeof(out), NULL, &err), BG_ERR);
    cr_assert_eq(err, BG_HTTP_E_BAD_PERCENT);
    cr_assert_eq(bg_http_path_normalize(p, 4, out, sizeof(out), NULL, &err), BG_OK);
    cr_assert_str_eq(out, "/a/b");
    free(p);
}

Test(http_path, target_split)
{
    bg_bytes path, query;
    const char *t = "/search?q=a%2Fb&x=/../y?z";

    bg_http_target_split(t, strlen(t), &path, &query);
    cr_assert_eq(path.ptr, t);
    cr_assert_eq(path.len, 7);
    cr_assert_eq(query.ptr, t + 8);
    cr_assert_eq(query.len, strlen("q=a%2Fb&x=/../y?z"));
    bg_http_target_split("/plain", 6, &path, &query);
    cr_assert_eq(path.len, 6);
    cr_assert_null(query.ptr);
    cr_assert_eq(query.len, 0);
    bg_http_target_split("/x?", 3, &path, &query);
    cr_assert_eq(path.len, 2);
    cr_assert_not_null(query.ptr);
    cr_assert_eq(query.len, 0);
    bg_http_target_split("", 0, &path, &query);
    cr_assert_eq(path.len, 0);
    cr_assert_null(query.ptr);
}
