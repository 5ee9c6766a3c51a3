/* test_config_openapi.c: the [openapi] section: defaults, each key, and what is refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/config/config.h"

static char path[64];

static void write_ini(const char *text)
{
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/busgate-cfg-openapi-%d.ini", (int)getpid());
    f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
}

static int load(const char *text, bg_config *cfg, char *errors, size_t len)
{
    int rc;

    write_ini(text);
    rc = bg_config_load(path, cfg, errors, len);
    unlink(path);
    return rc;
}

static void expect_ok(const char *text, bg_config *cfg)
{
    char errors[4096] = "";

    cr_assert_eq(load(text, cfg, errors, sizeof(errors)), BG_OK, "%s\n---\n%s", text, errors);
}

static void expect_error(const char *text, const char *needle)
{
    char errors[4096] = "";
    bg_config cfg;

    cr_assert_eq(load(text, &cfg, errors, sizeof(errors)), BG_ERR, "accepted:\n%s", text);
    cr_assert(strstr(errors, needle) != NULL, "'%s' not in:\n%s", needle, errors);
}

Test(config_openapi, defaults)
{
    bg_config cfg;

    expect_ok("[gateway]\n", &cfg);
    cr_assert_str_eq(cfg.openapi.path, "/openapi.json");
    cr_assert_eq(cfg.openapi.access, BG_OPENAPI_PUBLIC);
    cr_assert_eq(cfg.openapi.max_size, 4 * 1024 * 1024);
    cr_assert_str_eq(cfg.openapi.title, "busgate");
}

Test(config_openapi, every_key)
{
    bg_config cfg;

    expect_ok("[admin]\ntoken = 0123456789abcdef\n[openapi]\npath = /docs/v1/api.json\n"
              "access = admin\nmax_size = 1m\ntitle = \"Orders & more API\"\n",
              &cfg);
    cr_assert_str_eq(cfg.openapi.path, "/docs/v1/api.json");
    cr_assert_eq(cfg.openapi.access, BG_OPENAPI_ADMIN);
    cr_assert_eq(cfg.openapi.max_size, 1024 * 1024);
    cr_assert_str_eq(cfg.openapi.title, "Orders & more API");
    expect_ok("[openapi]\npath = off\n", &cfg);
    cr_assert_str_eq(cfg.openapi.path, "");
}

Test(config_openapi, refused_values)
{
    expect_error("[openapi]\npath = openapi.json\n", "[openapi] path");
    expect_error("[openapi]\npath = /\n", "[openapi] path");
    expect_error("[openapi]\npath = /a//b\n", "[openapi] path");
    expect_error("[openapi]\npath = /a/../b\n", "[openapi] path");
    expect_error("[openapi]\npath = /a/./b\n", "[openapi] path");
    expect_error("[openapi]\npath = /a%20b\n", "[openapi] path");
    expect_error("[openapi]\npath = /spec.json?x=1\n", "[openapi] path");
    expect_error("[openapi]\naccess = everyone\n", "public or admin");
    expect_error("[openapi]\nmax_size = 1k\n", "[openapi] max_size");
    expect_error("[openapi]\ntitle = \"\"\n", "[openapi] title");
}

Test(config_openapi, admin_access_needs_the_admin_token)
{
    expect_error("[openapi]\naccess = admin\n", "no admin token is configured");
}
