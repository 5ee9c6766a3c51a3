/* ctl_state.c: busgatectl state: services, connections and endpoints, as text or JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* "850ms", "12.3s", "4m05s", "2h03m" */
static void fmt_duration(char *buf, size_t n, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000)
        snprintf(buf, n, "%" PRId64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, n, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, n, "%" PRId64 "m%02" PRId64 "s", ms / 60000, ms / 1000 % 60);
    else
        snprintf(buf, n, "%" PRId64 "h%02" PRId64 "m", ms / 3600000, ms / 60000 % 60);
}

static int64_t jint(const json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static int same_route(const json_t *a, const json_t *b)
{
    return strcmp(bgctl_jstr(a, "path"), bgctl_jstr(b, "path")) == 0 &&
           jint(a, "timeout_ms") == jint(b, "timeout_ms") &&
           strcmp(bgctl_jstr(a, "claims"), bgctl_jstr(b, "claims")) == 0 &&
           strcmp(bgctl_jstr(a, "rate_limit"), bgctl_jstr(b, "rate_limit")) == 0;
}

/* One line per path: "GET, HEAD, POST  /echo/{id}  timeout 5000ms  claims a,b  rate 2/m". */
static void print_endpoints(const json_t *eps)
{
    size_t n = json_array_size(eps);
    char *done = calloc(n + 1, 1);

    for (size_t i = 0; done != NULL && i < n; i++) {
        const json_t *e = json_array_get(eps, i);
        if (done[i])
            continue;
        printf("      %s", bgctl_jstr(e, "method"));
        for (size_t j = i + 1; j < n; j++) {
            if (!done[j] && same_route(e, json_array_get(eps, j))) {
                printf(", %s", bgctl_jstr(json_array_get(eps, j), "method"));
                done[j] = 1;
            }
        }
        printf("  %s", bgctl_jstr(e, "path"));
        if (jint(e, "timeout_ms") > 0)
            printf("  timeout %" PRId64 "ms", jint(e, "timeout_ms"));
        if (bgctl_jstr(e, "claims")[0] != '\0')
            printf("  claims %s", bgctl_jstr(e, "claims"));
        if (bgctl_jstr(e, "rate_limit")[0] != '\0')
            printf("  rate %s", bgctl_jstr(e, "rate_limit"));
        putchar('\n');
    }
    free(done);
}

/* The registry entry of a connection (resync state), NULL when absent. */
static const json_t *registry_of(const json_t *doc, const char *id)
{
    size_t i;
    json_t *r;

    json_array_foreach(json_object_get(doc, "registry"), i, r)
    {
        if (strcmp(bgctl_jstr(r, "id"), id) == 0)
            return r;
    }
    return NULL;
}

static void print_connection(const json_t *doc, const json_t *c)
{
    const json_t *reg = registry_of(doc, bgctl_jstr(c, "id"));
    char age[32];

    /* ages against the document's own clock: right even if ours is skewed */
    fmt_duration(age, sizeof(age), jint(doc, "time_ms") - jint(c, "last_heartbeat_ms"));
    printf("  %-32s version %-10s %-4s  last heartbeat %s ago\n", bgctl_jstr(c, "id"),
           bgctl_jstr(c, "version"), json_is_true(json_object_get(c, "up")) ? "up" : "down", age);
    if (reg != NULL && !json_is_true(json_object_get(reg, "endpoints_received")))
        printf("      (no endpoints received yet%s)\n",
               json_is_true(json_object_get(json_object_get(reg, "resync"), "gave_up"))
                   ? "; it did not answer RESYNC_REQUESTs"
                   : "; resync pending");
    print_endpoints(json_object_get(c, "endpoints"));
}

/* "  backlog 12 waiting, 3 pending, oldest 850ms; breaker open (retry in 4.2s, opened 2
 * times)": what the gateway last sampled of the service's queue and its breaker's state. */
static void print_traffic(const json_t *doc, const char *name)
{
    const json_t *b = json_object_get(json_object_get(doc, "backlogs"), name);
    const json_t *k = json_object_get(json_object_get(doc, "breakers"), name);
    char age[32];

    if (b != NULL) {
        fmt_duration(age, sizeof(age), jint(b, "oldest_ms"));
        printf("  backlog %" PRId64 " waiting, %" PRId64 " pending, oldest %s\n",
               jint(b, "waiting"), jint(b, "pending"), age);
    }
    if (k == NULL)
        return;
    printf("  breaker %s", bgctl_jstr(k, "state"));
    if (strcmp(bgctl_jstr(k, "state"), "open") == 0) {
        fmt_duration(age, sizeof(age), jint(k, "retry_in_ms"));
        printf(" (probes in %s)", age);
    } else if (strcmp(bgctl_jstr(k, "state"), "closed") == 0 && jint(k, "failures") > 0) {
        printf(" (%" PRId64 " failures in a row)", jint(k, "failures"));
    }
    printf(", opened %" PRId64 " times\n", jint(k, "opens"));
}

static void print_service(const json_t *doc, const json_t *svc)
{
    const char *name = bgctl_jstr(svc, "name");
    size_t i;
    json_t *v, *c;

    printf("\n%s: %" PRId64 " of %" PRId64 " connections up, versions", name, jint(svc, "up"),
           jint(svc, "connections"));
    json_array_foreach(json_object_get(svc, "versions"), i, v)
    {
        printf("%s %s", i ? "," : "", json_string_value(v));
    }
    putchar('\n');
    /* What the gateway enforces: per route, the union of every instance's claims. */
    if (json_array_size(json_object_get(svc, "endpoints")) > 0) {
        printf("  routes (effective claims: the union over its instances; rate: the strictest "
               "declared, unless an ini rule covers the route)\n");
        print_endpoints(json_object_get(svc, "endpoints"));
    }
    print_traffic(doc, name);
    json_array_foreach(json_object_get(doc, "connections"), i, c)
    {
        if (strcmp(bgctl_jstr(c, "service"), name) == 0)
            print_connection(doc, c);
    }
}

/* "other gateways on this bus: gw2, gw3": state shows one gateway, the bus may carry many. */
static void print_other_gateways(bgctl *x, const json_t *doc)
{
    char err[BG_ERR_LEN];
    json_t *list = bgctl_gateways_load(x, err), *g;
    int n = 0;
    size_t i;

    json_array_foreach(list, i, g)
    {
        const char *name = json_string_value(json_object_get(g, "gateway"));
        if (strcmp(name, bgctl_jstr(doc, "gateway")) == 0)
            continue;
        printf("%s%s", n++ ? ", " : "other gateways on this bus: ", name);
    }
    if (n > 0)
        putchar('\n');
    json_decref(list);
}

static void print_state(const json_t *doc)
{
    const json_t *services = json_object_get(doc, "services");
    char up[32], age[32];
    size_t i;
    json_t *s;

    fmt_duration(up, sizeof(up), jint(doc, "time_ms") - jint(doc, "started_ms"));
    fmt_duration(age, sizeof(age), bg_wall_ms() - jint(doc, "time_ms"));
    printf("gateway %s: pid %" PRId64 ", busgate %s, running %s, routing generation %" PRId64
           " (state written %s ago)\n",
           bgctl_jstr(doc, "gateway"), jint(doc, "pid"), bgctl_jstr(doc, "version"), up,
           jint(doc, "generation"), age);
    if (json_array_size(services) == 0)
        printf("\nno services registered\n");
    json_array_foreach(services, i, s)
    {
        print_service(doc, s);
    }
}

int bgctl_cmd_state(bgctl *x, int argc, char **argv)
{
    char err[BG_ERR_LEN];
    int json = 0;
    json_t *doc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            bgctl_fail("state: unknown argument '%s' (usage: state [--json])", argv[i]);
            return BGCTL_EXIT_USAGE;
        }
        json = 1;
    }
    if (bgctl_connect(x) != BG_OK)
        return BGCTL_EXIT_FAIL;
    doc = bgctl_state_load(x, err);
    if (doc == NULL) {
        bgctl_fail("%s", err);
        return BGCTL_EXIT_FAIL;
    }
    if (json) {
        json_dumpf(doc, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else {
        print_state(doc);
        print_other_gateways(x, doc);
    }
    json_decref(doc);
    return fflush(stdout) == 0 ? BGCTL_EXIT_OK : BGCTL_EXIT_FAIL;
}
