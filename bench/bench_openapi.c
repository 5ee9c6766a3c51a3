/* bench_openapi.c: time and size of the aggregated OpenAPI build at 10k endpoints over 1k
 * services: the first build (every operation rendered), rebuilds with nothing changed, and
 * with one service's update. Prints figures; never passes or fails. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busgate/control/openapi.h"
#include "busgate/core/log.h"

#define NSERVICES 1000
#define NEP 10
#define NREBUILD 20

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static json_t *service_meta(int s, int gen)
{
    json_t *eps = json_array();
    char path[128], summary[64];

    for (int e = 0; e < NEP; e++) {
        snprintf(path, sizeof(path), "/svc%d/res%d/{id}", s, e);
        snprintf(summary, sizeof(summary), "Operation %d, version %d", e, gen);
        json_array_append_new(eps, json_pack("{s:s, s:s, s:[s], s:{s:s, s:{s:{s:s}}}, s:{s:s}}",
                                             "method", e % 2 ? "PUT" : "GET", "path", path,
                                             "claims", "svc:read", "request_schema", "type",
                                             "object", "properties", "name", "type", "string",
                                             "openapi", "summary", summary));
    }
    return json_pack("{s:o, s:{s:{s:s}}}", "endpoints", eps, "openapi", "info", "title", "svc");
}

static int update(bg_registry *r, int s, int gen)
{
    char err[BG_ERR_LEN] = "";
    bg_reg_conn *c;
    bg_frame fr;
    int created, rc;

    bg_frame_init(&fr, BG_FRAME_ENDPOINTS_UPDATE);
    snprintf(fr.id, sizeof(fr.id), "f%d.%d", s, gen);
    snprintf(fr.service, sizeof(fr.service), "svc%d", s);
    snprintf(fr.instance, sizeof(fr.instance), "i%d", s);
    snprintf(fr.svc_version, sizeof(fr.svc_version), "1.%d", gen);
    fr.meta = service_meta(s, gen);
    rc = bg_endpoints_parse(fr.meta, &fr.endpoints, err) == BG_OK &&
                 bg_reg_endpoints(r, &fr, 0, &created, &c, err) == BG_OK &&
                 bg_reg_publish(r, NULL, NULL, err) == BG_OK
             ? BG_OK
             : BG_ERR;
    if (rc != BG_OK)
        fprintf(stderr, "bench_openapi: %s\n", err);
    bg_frame_free(&fr);
    return rc;
}

/* One build; its time in ms (negative on failure), its size in *len. */
static double build_once(bg_registry *r, size_t *len)
{
    bg_openapi_opts o = {.title = "bench", .path = "/openapi.json"};
    char err[BG_ERR_LEN] = "", *json = NULL;
    double t0 = now_ms(), t;

    if (bg_openapi_build(r, &o, &json, len, err) != BG_OK) {
        fprintf(stderr, "bench_openapi: %s\n", err);
        return -1;
    }
    t = now_ms() - t0;
    free(json);
    return t;
}

static int run(bg_registry *r)
{
    double first, t, same = 0, one = 0;
    size_t len = 0;

    for (int s = 0; s < NSERVICES; s++)
        if (update(r, s, 0) != BG_OK)
            return 1;
    if ((first = build_once(r, &len)) < 0)
        return 1;
    for (int i = 0; i < NREBUILD; i++) {
        if ((t = build_once(r, &len)) < 0)
            return 1;
        same += t;
        if (update(r, i % NSERVICES, i + 1) != BG_OK || (t = build_once(r, &len)) < 0)
            return 1;
        one += t;
    }
    printf("openapi: %d services, %d endpoints, document %zu bytes\n", NSERVICES, NSERVICES * NEP,
           len);
    printf("openapi: first build %.1f ms, rebuild (nothing changed) %.1f ms, rebuild (one "
           "service updated) %.1f ms\n",
           first, same / NREBUILD, one / NREBUILD);
    return 0;
}

int main(void)
{
    bg_rt_limits lim = {.max_services = NSERVICES + 24,
                        .max_connections = NSERVICES + 24,
                        .max_endpoints = (NSERVICES + 24) * NEP};
    bg_reg_opts o = {.max_services = lim.max_services,
                     .max_connections = lim.max_connections,
                     .max_endpoints = lim.max_endpoints,
                     .heartbeat_expiry_ms = 3600000,
                     .connection_remove_ms = 3600000};
    char err[BG_ERR_LEN] = "";
    bg_registry *r;
    bg_rt *rt;
    int rc;

    bg_log_set_level(BG_LOG_CRIT);
    if ((rt = bg_rt_create(&lim, err)) == NULL || (r = bg_reg_new(&o, rt, err)) == NULL) {
        fprintf(stderr, "bench_openapi: %s\n", err);
        return 1;
    }
    rc = run(r);
    bg_reg_free(r);
    bg_rt_destroy(rt);
    return rc;
}
