/* url_cluster.c: the Cluster URL form: a list of seed nodes, no database (a cluster has only 0). */
#include <stdio.h>
#include <string.h>

#include "busgate/common.h"
#include "busgate/core/url.h"

#include "url_int.h"

static int cluster_seed(const char *s, size_t len, bg_valkey_node *node, char *err)
{
    bg_valkey_addr tmp;

    memset(&tmp, 0, sizeof(tmp));
    if (bg_url_host_port(s, len, &tmp, err) != BG_OK)
        return BG_ERR;
    snprintf(node->host, sizeof(node->host), "%s", tmp.host);
    node->port = tmp.port; /* default 6379 */
    return BG_OK;
}

static int cluster_seeds(const char *s, size_t len, bg_valkey_addr *out, char *err)
{
    const char *end = s + len;

    if (len == 0) {
        bg_set_error(err, "missing seed node (valkey+cluster://host:7000,host:7001)");
        return BG_ERR;
    }
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t n = comma ? (size_t)(comma - s) : (size_t)(end - s);
        char why[BG_ERR_LEN];

        if (out->nseeds == BG_CLUSTER_SEEDS_MAX) {
            bg_set_error(err, "more than %d seed nodes", BG_CLUSTER_SEEDS_MAX);
            return BG_ERR;
        }
        if (n == 0) {
            bg_set_error(err, "empty seed node in the list (stray ',')");
            return BG_ERR;
        }
        if (cluster_seed(s, n, &out->seeds[out->nseeds], why) != BG_OK) {
            bg_set_error(err, "seed node %d: %s", out->nseeds + 1, why);
            return BG_ERR;
        }
        out->nseeds++;
        s += n + 1;
    }
    return BG_OK;
}

/* [userinfo@]seeds[/]. The userinfo ends at the last '@' (as in the plain form), the seed
 * list at the first '/', '?' or '#' after it. */
int bg_url_parse_cluster(const char *rest, bg_valkey_addr *out, char *err)
{
    const char *at = strrchr(rest, '@'), *list = at ? at + 1 : rest;
    size_t n = strcspn(list, "/?#");

    if (at && bg_url_userinfo(rest, (size_t)(at - rest), out, err) != BG_OK)
        return BG_ERR;
    if (list[n] == '?' || list[n] == '#') {
        bg_set_error(err, "query or fragment not supported in the cluster form");
        return BG_ERR;
    }
    if (list[n] == '/' && list[n + 1] != '\0') {
        bg_set_error(err, "a cluster has only database 0: no '/db' in the cluster form");
        return BG_ERR;
    }
    if (cluster_seeds(list, n, out, err) != BG_OK)
        return BG_ERR;
    /* host/port name the first seed until a slot map says more (messages, defaults). */
    snprintf(out->host, sizeof(out->host), "%s", out->seeds[0].host);
    out->port = out->seeds[0].port;
    return BG_OK;
}
