/* route_check.c: validation of the connections and endpoints handed to bg_rt_publish. */
#include "route_cache.h"

#include <string.h>

#include "busgate/common.h"

static int rt_check_len(const char *what, const char *conn, const char *s, size_t min, size_t max,
                        char *err)
{
    size_t len = strlen(bg_rt_or_empty(s));

    if (len < min || len > max) {
        bg_set_error(err, "connection '%s': %s must be %zu..%zu bytes, got %zu", conn, what, min,
                     max, len);
        return BG_ERR;
    }
    return BG_OK;
}

static int rt_check_rate(const bg_rt_endpoint_in *ep, const char *m, char *err)
{
    const char *rate = bg_rt_or_empty(ep->rate_limit);
    char why[BG_ERR_LEN];
    bg_rate_spec spec;

    if (rate[0] == '\0')
        return BG_OK;
    if (strlen(rate) > BG_RATE_SPEC_TEXT_MAX || bg_rate_spec_parse(rate, &spec, why) != BG_OK) {
        bg_set_error(err, "rate_limit of %s %.64s: %s", m, ep->path_template,
                     strlen(rate) > BG_RATE_SPEC_TEXT_MAX ? "too long" : why);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_rt_endpoint_check(const bg_rt_endpoint_in *ep, char *err)
{
    char why[BG_ERR_LEN];
    const char *m = bg_rt_or_empty(ep->method);

    if (bg_rt_method_bit(m, strlen(m)) == 0) {
        bg_set_error(err, "unknown method '%.16s'", m);
        return BG_ERR;
    }
    if (bg_rt_template_check(ep->path_template, why) != BG_OK) {
        bg_set_error(err, "template '%.64s': %s", bg_rt_or_empty(ep->path_template), why);
        return BG_ERR;
    }
    if (ep->timeout_ms < 0) {
        bg_set_error(err, "negative timeout for %s %s", m, ep->path_template);
        return BG_ERR;
    }
    if (strlen(bg_rt_or_empty(ep->claims)) > BG_RT_CLAIMS_MAX) {
        bg_set_error(err, "claims of %s %s longer than %d bytes", m, ep->path_template,
                     BG_RT_CLAIMS_MAX);
        return BG_ERR;
    }
    return rt_check_rate(ep, m, err);
}

int bg_rt_conn_check(const bg_rt_connection_in *c, char *err)
{
    const char *cid = bg_rt_or_empty(c->connection_id);
    char why[BG_ERR_LEN];

    if (rt_check_len("connection_id", cid, c->connection_id, 1, BG_RT_ID_MAX, err) != BG_OK ||
        rt_check_len("service", cid, c->service, 1, BG_RT_SERVICE_MAX, err) != BG_OK ||
        rt_check_len("instance", cid, c->instance, 0, BG_RT_ID_MAX, err) != BG_OK ||
        rt_check_len("version", cid, c->version, 0, BG_RT_ID_MAX, err) != BG_OK)
        return BG_ERR;
    if (c->nendpoints > 0 && c->endpoints == NULL) {
        bg_set_error(err, "connection '%s': endpoints missing", cid);
        return BG_ERR;
    }
    for (size_t i = 0; i < c->nendpoints; i++) {
        if (bg_rt_endpoint_check(&c->endpoints[i], why) != BG_OK) {
            bg_set_error(err, "connection '%s': %s", cid, why);
            return BG_ERR;
        }
    }
    return BG_OK;
}
