/* test_config_ratelimit.c: the [limits] rate_* keys: defaults, the rate_limit line syntax,
 * and each bad value reported as file:line with the key. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/config/config.h"

static char path[64];

static void suite_init(void)
{
    int fd;

    snprintf(path, sizeof(path), "/tmp/bgt-rlconf-XXXXXX");
    fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp failed");
    close(fd);
}

static void suite_fini(void)
{
    unlink(path);
}

TestSuite(config_ratelimit, .init = suite_init, .fini = suite_fini);

static int load(const char *text, bg_config *cfg, char *errors, size_t errlen)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
    return bg_config_load(path, cfg, errors, errlen);
}

/* Loading text fails with an error on line `line` holding every needle. */
static void expect_err(const char *text, int line, const char *n1, const char *n2)
{
    static bg_config cfg;
    char errors[8192], prefix[128];

    cr_assert_eq(load(text, &cfg, errors, sizeof(errors)), BG_ERR, "accepted:\n%s", text);
    snprintf(prefix, sizeof(prefix), "%s:%d: [limits] ", path, line);
    cr_assert_not_null(strstr(errors, prefix), "no error on line %d:\n%s", line, errors);
    cr_assert_not_null(strstr(errors, n1), "'%s' not in:\n%s", n1, errors);
    if (n2 != NULL)
        cr_assert_not_null(strstr(errors, n2), "'%s' not in:\n%s", n2, errors);
}

Test(config_ratelimit, defaults)
{
    static bg_config cfg;

    bg_config_defaults(&cfg);
    cr_assert_eq(cfg.ratelimit.mode, BG_RATE_LOCAL);
    cr_assert_eq(cfg.ratelimit.headers, 1);
    cr_assert_eq(cfg.ratelimit.buckets, 65536);
    cr_assert_eq(cfg.ratelimit.nrules, 0);
}

Test(config_ratelimit, rules_and_keys_parsed)
{
    static bg_config cfg;
    char errors[4096];
    const bg_rate_rule *r;

    cr_assert_eq(load("[limits]\n"
                      "rate_mode = cluster\n"
                      "rate_headers = off\n"
                      "rate_buckets = 2048\n"
                      "rate_limit = * / 100/s\n"
                      "rate_limit = GET /orders/ 10/m burst=3 key=header:X-Api-Key\n"
                      "rate_limit = \"POST /orders/{id}  5/h   key=client\"\n",
                      &cfg, errors, sizeof(errors)),
                 BG_OK, "%s", errors);
    cr_assert_eq(cfg.ratelimit.mode, BG_RATE_CLUSTER);
    cr_assert_eq(cfg.ratelimit.headers, 0);
    cr_assert_eq(cfg.ratelimit.buckets, 2048);
    cr_assert_eq(cfg.ratelimit.nrules, 3);
    r = &cfg.ratelimit.rules[0];
    cr_assert_str_eq(r->method, "*");
    cr_assert_str_eq(r->prefix, "/");
    cr_assert_eq(r->spec.interval_us, 10000);
    cr_assert_eq(r->spec.burst, 100, "burst defaults to the count");
    cr_assert_eq(r->spec.key, BG_RATE_KEY_CLIENT);
    cr_assert_eq(r->line, 5);
    r = &cfg.ratelimit.rules[1];
    cr_assert_str_eq(r->method, "GET");
    cr_assert_str_eq(r->prefix, "/orders", "a trailing slash is dropped");
    cr_assert_eq(r->spec.count, 10);
    cr_assert_eq(r->spec.per_ms, 60000);
    cr_assert_eq(r->spec.interval_us, 6000000);
    cr_assert_eq(r->spec.burst, 3);
    cr_assert_eq(r->spec.key, BG_RATE_KEY_HEADER);
    cr_assert_str_eq(r->spec.key_name, "X-Api-Key");
    r = &cfg.ratelimit.rules[2];
    cr_assert_str_eq(r->prefix, "/orders/{id}");
    cr_assert_eq(r->spec.interval_us, 720000000);
    cr_assert_eq(r->spec.key, BG_RATE_KEY_CLIENT);
}

Test(config_ratelimit, bad_rules_name_file_line_and_key)
{
    expect_err("[limits]\nrate_limit = GET orders 1/s\n", 2, "rate_limit = 'GET orders 1/s'",
               "must start with '/'");
    expect_err("[limits]\nrate_limit = GE(T / 1/s\n", 2, "is not a method", NULL);
    expect_err("[limits]\n\nrate_limit = GET / 10\n", 3, "not a rate like 10/s", NULL);
    expect_err("[limits]\nrate_limit = GET / 10/d\n", 2, "not a rate like 10/s", NULL);
    expect_err("[limits]\nrate_limit = GET / 0/s\n", 2, "count must be 1..1000000", NULL);
    expect_err("[limits]\nrate_limit = GET / 2000000/s\n", 2, "count must be 1..1000000", NULL);
    expect_err("[limits]\nrate_limit = GET / 1/s burst=0\n", 2, "burst must be 1..1000000", NULL);
    expect_err("[limits]\nrate_limit = GET / 1/s brust=3\n", 2, "unknown option 'brust=3'",
               "allowed: <METHOD|*>");
    expect_err("[limits]\nrate_limit = GET / 1/s key=header:\n", 2,
               "is not client, header:<Name> or claim:<name>", NULL);
    expect_err("[limits]\nrate_limit = GET / 1/s key=cookie\n", 2,
               "is not client, header:<Name> or claim:<name>", NULL);
    expect_err("[limits]\nrate_limit = GET /\n", 2, "not a rate like", NULL);
}

Test(config_ratelimit, claim_keys_name_a_token_claim)
{
    expect_err("[limits]\nrate_limit = GET / 1/s key=claim:\n", 2,
               "key=claim:", "is not client, header:<Name> or claim:<name>");
}

Test(config_ratelimit, one_rule_per_method_and_prefix)
{
    expect_err("[limits]\nrate_limit = GET /a 1/s\nrate_limit = GET /a/ 2/s\n", 3,
               "same method and prefix as the rule on line 2", NULL);
}

Test(config_ratelimit, at_most_64_rules)
{
    char text[8192] = "[limits]\n";
    size_t used = strlen(text);

    for (int i = 0; i <= BG_RATE_MAX_RULES; i++)
        used +=
            (size_t)snprintf(text + used, sizeof(text) - used, "rate_limit = GET /p%d 1/s\n", i);
    expect_err(text, BG_RATE_MAX_RULES + 2, "more than 64 rate_limit lines", NULL);
}

Test(config_ratelimit, other_keys_checked)
{
    expect_err("[limits]\nrate_mode = global\n", 2, "rate_mode = 'global'", "local or cluster");
    expect_err("[limits]\nrate_buckets = 10\n", 2, "rate_buckets = '10'", "out of range");
    expect_err("[limits]\nrate_headers = maybe\n", 2, "rate_headers = 'maybe'", NULL);
    expect_err("[limits]\nrate_mode = local\nrate_mode = cluster\n", 3, "duplicate key", NULL);
}
