/* test_url.c: Valkey URL parsing: every scheme, credentials, percent-escapes, db, IPv6, and
 * bad URLs rejected with their reason. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "busgate/core/url.h"

static bg_valkey_addr parse_ok(const char *url)
{
    bg_valkey_addr a;
    char err[BG_ERR_LEN] = "";

    cr_assert_eq(bg_valkey_url_parse(url, &a, err), BG_OK, "'%s' rejected: %s", url, err);
    return a;
}

static void parse_bad(const char *url, const char *reason)
{
    bg_valkey_addr a;
    char err[BG_ERR_LEN] = "";

    cr_assert_eq(bg_valkey_url_parse(url, &a, err), BG_ERR, "'%s' accepted", url);
    cr_assert(strstr(err, reason) != NULL, "'%s': reason '%s' lacks '%s'", url, err, reason);
}

Test(url, valkey_host_port)
{
    bg_valkey_addr a = parse_ok("valkey://10.0.0.5:6380");

    cr_assert_eq(a.tls, 0);
    cr_assert_eq(a.is_unix, 0);
    cr_assert_str_eq(a.host, "10.0.0.5");
    cr_assert_eq(a.port, 6380);
    cr_assert_str_eq(a.user, "");
    cr_assert_str_eq(a.password, "");
    cr_assert_eq(a.db, 0);
}

Test(url, default_port_and_trailing_slash)
{
    bg_valkey_addr a = parse_ok("valkey://cache.internal/");

    cr_assert_str_eq(a.host, "cache.internal");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(a.db, 0);
}

Test(url, redis_scheme_is_plain)
{
    bg_valkey_addr a = parse_ok("redis://localhost:7000/3");

    cr_assert_eq(a.tls, 0);
    cr_assert_str_eq(a.host, "localhost");
    cr_assert_eq(a.port, 7000);
    cr_assert_eq(a.db, 3);
}

Test(url, tls_schemes)
{
    bg_valkey_addr a = parse_ok("valkeys://secure.example:6390");
    bg_valkey_addr b = parse_ok("rediss://secure.example");
    bg_valkey_addr c = parse_ok("VALKEYS://Secure.Example");

    cr_assert_eq(a.tls, 1);
    cr_assert_eq(a.port, 6390);
    cr_assert_eq(b.tls, 1);
    cr_assert_eq(b.port, 6379);
    cr_assert_eq(c.tls, 1, "scheme is case-insensitive");
}

Test(url, user_and_password)
{
    bg_valkey_addr a = parse_ok("valkey://gateway:s3cret@db:6379/2");

    cr_assert_str_eq(a.user, "gateway");
    cr_assert_str_eq(a.password, "s3cret");
    cr_assert_str_eq(a.host, "db");
    cr_assert_eq(a.db, 2);
}

Test(url, password_only_forms)
{
    bg_valkey_addr a = parse_ok("redis://:onlypass@db");
    bg_valkey_addr b = parse_ok("redis://legacypass@db");

    cr_assert_str_eq(a.user, "");
    cr_assert_str_eq(a.password, "onlypass");
    cr_assert_str_eq(b.user, "", "no ':' means a password alone, as valkey-cli reads it");
    cr_assert_str_eq(b.password, "legacypass");
}

Test(url, percent_encoding)
{
    bg_valkey_addr a = parse_ok("valkey://us%65r%3Ax:p%40ss%2Fw%3a%25rd@db");

    cr_assert_str_eq(a.user, "user:x");
    cr_assert_str_eq(a.password, "p@ss/w:%rd");
}

Test(url, unescaped_at_and_colon_in_password)
{
    bg_valkey_addr a = parse_ok("valkey://u:pa:ss@word@db:1234");

    cr_assert_str_eq(a.user, "u");
    cr_assert_str_eq(a.password, "pa:ss@word");
    cr_assert_str_eq(a.host, "db");
    cr_assert_eq(a.port, 1234);
}

Test(url, ipv6)
{
    bg_valkey_addr a = parse_ok("valkey://[::1]:6379");
    bg_valkey_addr b = parse_ok("valkeys://u:p@[2001:db8::7]/5");

    cr_assert_str_eq(a.host, "::1");
    cr_assert_eq(a.port, 6379);
    cr_assert_str_eq(b.host, "2001:db8::7");
    cr_assert_eq(b.port, 6379);
    cr_assert_eq(b.db, 5);
    cr_assert_eq(b.tls, 1);
}

Test(url, unix_socket)
{
    bg_valkey_addr a = parse_ok("unix:///run/valkey/valkey.sock");
    bg_valkey_addr b = parse_ok("unix://app:pw%21@/tmp/my%20dir/v.sock?db=4");

    cr_assert_eq(a.is_unix, 1);
    cr_assert_eq(a.tls, 0);
    cr_assert_str_eq(a.unix_path, "/run/valkey/valkey.sock");
    cr_assert_eq(a.db, 0);
    cr_assert_str_eq(b.user, "app");
    cr_assert_str_eq(b.password, "pw!");
    cr_assert_str_eq(b.unix_path, "/tmp/my dir/v.sock");
    cr_assert_eq(b.db, 4);
}

Test(url, bad_scheme)
{
    parse_bad("http://host:6379", "unknown scheme 'http'");
    parse_bad("host:6379", "missing scheme");
    parse_bad("", "missing scheme");
}

Test(url, bad_host_and_port)
{
    parse_bad("valkey://", "missing host");
    parse_bad("valkey://:6379", "missing host");
    parse_bad("valkey://host:", "missing port");
    parse_bad("valkey://host:0", "port '0' is not 1..65535");
    parse_bad("valkey://host:65536", "port '65536' is not 1..65535");
    parse_bad("valkey://host:12ab", "port '12ab'");
    parse_bad("valkey://ho$t:1", "bad host name");
    parse_bad("valkey://::1:6379", "IPv6 address needs brackets");
    parse_bad("valkey://[::1:6379", "missing ']'");
    parse_bad("valkey://[]:6379", "missing host");
    parse_bad("valkey://[::1]x", "unexpected text after the IPv6 address");
    parse_bad("valkey://[zz::1]", "bad IPv6 address");
}

Test(url, bad_db_query_and_spaces)
{
    parse_bad("valkey://host/abc", "database 'abc' is not a number");
    parse_bad("valkey://host/1/2", "is not a number");
    parse_bad("valkey://host/99999999999", "is not a number");
    parse_bad("valkey://host?db=1", "query or fragment not supported");
    parse_bad("valkey://host#x", "query or fragment not supported");
    parse_bad("valkey://ho st", "whitespace");
}

Test(url, bad_escapes)
{
    parse_bad("valkey://u:p%zz@host", "bad percent-escape in password");
    parse_bad("valkey://u%4:p@host", "bad percent-escape in user");
    parse_bad("valkey://u:p%@host", "bad percent-escape in password");
    parse_bad("valkey://u:p%00@host", "password contains a NUL byte");
}

Test(url, bad_unix)
{
    parse_bad("unix://run/valkey.sock", "absolute socket path");
    parse_bad("unix:///", "missing socket path");
    parse_bad("unix:///tmp/v.sock?database=1", "unknown query parameter");
    parse_bad("unix:///tmp/v.sock?db=x", "is not a number");
}

Test(url, too_long_parts)
{
    char url[1200], path[200];

    memset(path, 'a', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    snprintf(url, sizeof(url), "unix:///%s", path);
    parse_bad(url, "socket path is too long");
    memset(path, 'h', 150);
    path[150] = '\0';
    snprintf(url, sizeof(url), "valkey://%s:%s@host", path, "p");
    parse_bad(url, "user is too long");
}

/* ---- the Sentinel form ---- */

Test(url, sentinel_list_and_master)
{
    bg_valkey_addr a = parse_ok("valkey+sentinel://s1:26380,10.0.0.2,[::1]:26381/mymaster");

    cr_assert_eq(a.sentinel, 1);
    cr_assert_eq(a.tls, 0);
    cr_assert_eq(a.nsentinels, 3);
    cr_assert_str_eq(a.sentinels[0].host, "s1");
    cr_assert_eq(a.sentinels[0].port, 26380);
    cr_assert_str_eq(a.sentinels[1].host, "10.0.0.2");
    cr_assert_eq(a.sentinels[1].port, 26379, "default sentinel port");
    cr_assert_str_eq(a.sentinels[2].host, "::1");
    cr_assert_eq(a.sentinels[2].port, 26381);
    cr_assert_str_eq(a.master_name, "mymaster");
    cr_assert_str_eq(a.host, "", "the primary is not known before discovery");
    cr_assert_eq(a.port, 0);
    cr_assert_eq(a.db, 0);
}

Test(url, sentinel_tls_and_redis_schemes)
{
    cr_assert_eq(parse_ok("valkeys+sentinel://s1/m").tls, 1);
    cr_assert_eq(parse_ok("rediss+sentinel://s1/m").tls, 1);
    cr_assert_eq(parse_ok("redis+sentinel://s1/m").tls, 0);
    cr_assert_eq(parse_ok("REDIS+SENTINEL://s1/m").sentinel, 1);
}

Test(url, sentinel_credentials_and_params)
{
    bg_valkey_addr a = parse_ok("valkey+sentinel://app:p%40ss@s1,s2/cache-1.a_b?db=3&"
                                "sentinel_user=sen&sentinel_password=s%26cret");

    cr_assert_str_eq(a.user, "app", "userinfo is for the data nodes");
    cr_assert_str_eq(a.password, "p@ss");
    cr_assert_str_eq(a.sentinel_user, "sen");
    cr_assert_str_eq(a.sentinel_password, "s&cret");
    cr_assert_str_eq(a.master_name, "cache-1.a_b");
    cr_assert_eq(a.db, 3);
    cr_assert_eq(a.nsentinels, 2);
}

Test(url, sentinel_password_alone)
{
    bg_valkey_addr a = parse_ok("valkey+sentinel://:secret@s1/m?sentinel_password=x");

    cr_assert_str_eq(a.user, "");
    cr_assert_str_eq(a.password, "secret");
    cr_assert_str_eq(a.sentinel_user, "");
    cr_assert_str_eq(a.sentinel_password, "x");
}

Test(url, sentinel_bad_forms)
{
    parse_bad("valkey+sentinel://s1:26379", "missing '/master_name'");
    parse_bad("valkey+sentinel://s1:26379/", "missing master name");
    parse_bad("valkey+sentinel:///m", "missing sentinel address");
    parse_bad("valkey+sentinel://s1,,s2/m", "empty sentinel address");
    parse_bad("valkey+sentinel://s1,/m", "empty sentinel address");
    parse_bad("valkey+sentinel://s1:0/m", "sentinel 1: port");
    parse_bad("valkey+sentinel://s1,s 2/m", "whitespace");
    parse_bad("valkey+sentinel://s1,b!d/m", "sentinel 2: bad host name");
    parse_bad("valkey+sentinel://s1/my/master", "bad master name");
    parse_bad("valkey+sentinel://s1/m?db=x", "not a number");
    parse_bad("valkey+sentinel://s1/m?timeout=1", "unknown query parameter 'timeout'");
    parse_bad("valkey+sentinel://s1/m?sentinel_user=u", "sentinel_user needs a sentinel_password");
    parse_bad("valkey+sentinel://s1/m?sentinel_password=%zz", "bad percent-escape");
    parse_bad("valkey+sentinel://s1/m#frag", "fragment");
    parse_bad("valkey+clustre://s1/m", "unknown scheme");
    parse_bad("valkey+sentinel://1,2,3,4,5,6,7,8,9/m", "more than 8 sentinels");
}

/* ---- the Cluster form ---- */

Test(url, cluster_seeds)
{
    bg_valkey_addr a = parse_ok("valkey+cluster://n1:7000,10.0.0.2,[::1]:7002");

    cr_assert_eq(a.cluster, 1);
    cr_assert_eq(a.sentinel, 0);
    cr_assert_eq(a.tls, 0);
    cr_assert_eq(a.nseeds, 3);
    cr_assert_str_eq(a.seeds[0].host, "n1");
    cr_assert_eq(a.seeds[0].port, 7000);
    cr_assert_str_eq(a.seeds[1].host, "10.0.0.2");
    cr_assert_eq(a.seeds[1].port, 6379, "default port");
    cr_assert_str_eq(a.seeds[2].host, "::1");
    cr_assert_eq(a.seeds[2].port, 7002);
    cr_assert_str_eq(a.host, "n1", "host names the first seed");
    cr_assert_eq(a.port, 7000);
}

Test(url, cluster_tls_auth_and_schemes)
{
    bg_valkey_addr a = parse_ok("valkeys+cluster://app:p%40ss@n1:7000,n2:7001/");

    cr_assert_eq(a.tls, 1);
    cr_assert_str_eq(a.user, "app");
    cr_assert_str_eq(a.password, "p@ss");
    cr_assert_eq(a.nseeds, 2);
    cr_assert_eq(parse_ok("rediss+cluster://n1").tls, 1);
    cr_assert_eq(parse_ok("REDIS+CLUSTER://n1").cluster, 1);
    cr_assert_str_eq(parse_ok("valkey+cluster://:secret@n1").password, "secret");
}

Test(url, cluster_bad_forms)
{
    parse_bad("valkey+cluster://", "missing seed node");
    parse_bad("valkey+cluster://n1,,n2", "empty seed node");
    parse_bad("valkey+cluster://n1/3", "only database 0");
    parse_bad("valkey+cluster://n1?db=1", "query or fragment");
    parse_bad("valkey+cluster://n1:99999", "seed node 1: port");
    parse_bad("valkey+cluster://n1,n2,n3,n4,n5,n6,n7,n8,n9,n10,n11,n12,n13,n14,n15,n16,n17",
              "more than 16 seed nodes");
}
