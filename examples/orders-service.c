/* orders-service.c: example busgate service: an in-memory key-value store of orders.
 *
 * Endpoints (service "orders"); the gateway lets a caller through only with the claim
 * orders:read (GET) or orders:write (PUT, DELETE) in its bearer token ([auth]):
 *   GET    /orders        200 {"orders":[{"id":"42", ...}, ...]}
 *   GET    /orders/{id}   200 the order, 404 when there is none
 *   PUT    /orders/{id}   body: a JSON object; 201 created (with Location) or 200
 *                         replaced, 400 when the body is not a JSON object; the
 *                         token's sub is stored as "owner"
 *   DELETE /orders/{id}   204, 404 when there is none
 * An id is 1..64 bytes of [A-Za-z0-9_-] (else 400). The store lives in this
 * process only: run one instance, or accept that instances differ. Handlers
 * run on several threads, so the store is behind a mutex.
 *
 * Usage: orders-service [-c busgate.ini] [-u valkey://host:port] [-n instance] [-w threads]
 * It prints one line on stdout once it has registered with the bus.
 */
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/service.h"

#define ORDER_ID_MAX 64
#define ORDERS_MAX 100000

typedef struct order {
    char id[ORDER_ID_MAX + 1];
    char *json; /* the stored object as compact JSON text, "id" included */
} order;

/* Text, not json_t, is stored: nothing from the store is shared between threads
 * outside the mutex. */
typedef struct store {
    pthread_mutex_t mu;
    order *items;
    size_t count, cap;
} store;

static store orders = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Called with the mutex held. */
static order *store_find(const char *id)
{
    for (size_t i = 0; i < orders.count; i++)
        if (strcmp(orders.items[i].id, id) == 0)
            return &orders.items[i];
    return NULL;
}

static int valid_id(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;

    if (n < 1 || n > ORDER_ID_MAX)
        return 0;
    return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static int send_text(busgate_response *res, int status, char *text)
{
    int rc;

    if (text == NULL)
        return BG_ERR;
    rc = busgate_response_set(res, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

static int send_error(busgate_response *res, int status, const char *message)
{
    json_t *o = json_pack("{s:s}", "error", message);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return send_text(res, status, text);
}

/* {"orders":[<text>,<text>,...]} built from the stored texts under the lock. */
static char *store_list(void)
{
    static const char head[] = "{\"orders\":[", tail[] = "]}";
    size_t len = sizeof(head) + sizeof(tail), at;
    char *out;

    pthread_mutex_lock(&orders.mu);
    for (size_t i = 0; i < orders.count; i++)
        len += strlen(orders.items[i].json) + 1;
    if ((out = malloc(len)) != NULL) {
        at = (size_t)snprintf(out, len, "%s", head);
        for (size_t i = 0; i < orders.count; i++)
            at += (size_t)snprintf(out + at, len - at, "%s%s", i ? "," : "", orders.items[i].json);
        snprintf(out + at, len - at, "%s", tail);
    }
    pthread_mutex_unlock(&orders.mu);
    return out;
}

static int handle_list(const busgate_request *req, busgate_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return send_text(res, 200, store_list());
}

static int handle_get(const busgate_request *req, busgate_response *res, void *arg)
{
    const char *id = busgate_request_param(req, "id");
    char *text = NULL;
    order *o;
    int found;

    (void)arg;
    if (!valid_id(id))
        return send_error(res, 400, "an order id is 1..64 bytes of [A-Za-z0-9_-]");
    pthread_mutex_lock(&orders.mu);
    found = (o = store_find(id)) != NULL;
    if (found)
        text = strdup(o->json);
    pthread_mutex_unlock(&orders.mu);
    if (!found)
        return send_error(res, 404, "no such order");
    return send_text(res, 200, text);
}

/* Takes text. Returns 201 for a new order, 200 for a replaced one, 507 when full. */
static int store_put(const char *id, char *text)
{
    order *o, *grown;

    pthread_mutex_lock(&orders.mu);
    if ((o = store_find(id)) != NULL) {
        free(o->json);
        o->json = text;
        pthread_mutex_unlock(&orders.mu);
        return 200;
    }
    if (orders.count == orders.cap) {
        size_t cap = orders.cap ? orders.cap * 2 : 16;
        grown = orders.count < ORDERS_MAX ? realloc(orders.items, cap * sizeof(order)) : NULL;
        if (grown == NULL) {
            pthread_mutex_unlock(&orders.mu);
            free(text);
            return 507;
        }
        orders.items = grown;
        orders.cap = cap;
    }
    o = &orders.items[orders.count++];
    snprintf(o->id, sizeof(o->id), "%s", id);
    o->json = text;
    pthread_mutex_unlock(&orders.mu);
    return 201;
}

/* The body as stored: a JSON object with "id" set from the path and "owner" from the
 * caller's verified identity (the token's sub), when there is one; NULL when not an object. */
static char *order_text(const busgate_request *req, const char *id)
{
    json_t *doc =
        json_loadb(req->body != NULL ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *owner = busgate_request_claim(req, "sub");
    char *text = NULL;

    if (json_is_object(doc) && json_object_set_new(doc, "id", json_string(id)) == 0 &&
        (owner == NULL || json_object_set_new(doc, "owner", json_string(owner)) == 0))
        text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static int handle_put(const busgate_request *req, busgate_response *res, void *arg)
{
    const char *id = busgate_request_param(req, "id");
    char location[ORDER_ID_MAX + 16];
    char *text, *answer;
    int status;

    (void)arg;
    if (!valid_id(id))
        return send_error(res, 400, "an order id is 1..64 bytes of [A-Za-z0-9_-]");
    if ((text = order_text(req, id)) == NULL)
        return send_error(res, 400, "the body must be a JSON object");
    if ((answer = strdup(text)) == NULL) {
        free(text);
        return BG_ERR;
    }
    status = store_put(id, text);
    if (status == 507) {
        free(answer);
        return send_error(res, 507, "the store is full");
    }
    snprintf(location, sizeof(location), "/orders/%s", id);
    if (status == 201 && busgate_response_add_header(res, "Location", location) != BG_OK) {
        free(answer);
        return BG_ERR;
    }
    return send_text(res, status, answer);
}

static int handle_delete(const busgate_request *req, busgate_response *res, void *arg)
{
    const char *id = busgate_request_param(req, "id");
    order *o;
    int found = 0;

    (void)arg;
    if (!valid_id(id))
        return send_error(res, 400, "an order id is 1..64 bytes of [A-Za-z0-9_-]");
    pthread_mutex_lock(&orders.mu);
    if ((o = store_find(id)) != NULL) {
        free(o->json);
        *o = orders.items[--orders.count]; /* the list order is not kept */
        found = 1;
    }
    pthread_mutex_unlock(&orders.mu);
    if (!found)
        return send_error(res, 404, "no such order");
    busgate_response_set_status(res, 204);
    return BG_OK;
}

static int add_endpoints(busgate_service *s, char *err)
{
    /* The gateway enforces these: without [auth] nobody can call these endpoints. */
    static const char *const read[] = {"orders:read"}, *const write[] = {"orders:write"};
    busgate_endpoint_opts put = {
        .claims = write,
        .nclaims = 1,
        .request_schema = "{\"type\":\"object\"}",
        .openapi = "{\"summary\":\"Create or replace an order\"}",
    };
    busgate_endpoint_opts get = {
        .claims = read, .nclaims = 1, .openapi = "{\"summary\":\"Read one order\"}"};
    busgate_endpoint_opts del = {
        .claims = write, .nclaims = 1, .openapi = "{\"summary\":\"Delete an order\"}"};
    busgate_endpoint_opts list = {
        .claims = read, .nclaims = 1, .openapi = "{\"summary\":\"List all orders\"}"};

    if (busgate_service_add_endpoint(s, "GET", "/orders", handle_list, NULL, &list, err) ||
        busgate_service_add_endpoint(s, "GET", "/orders/{id}", handle_get, NULL, &get, err) ||
        busgate_service_add_endpoint(s, "PUT", "/orders/{id}", handle_put, NULL, &put, err) ||
        busgate_service_add_endpoint(s, "DELETE", "/orders/{id}", handle_delete, NULL, &del, err))
        return BG_ERR;
    return busgate_service_set_openapi(s, "{\"info\":{\"title\":\"orders\",\"version\":\"1.0.0\"}}",
                                       err);
}

static void on_ready(busgate_service *s, void *arg)
{
    (void)arg;
    printf("orders-service: registered as %s/%s with %zu endpoints on %s\n",
           busgate_service_name(s), busgate_service_instance(s), busgate_service_endpoint_count(s),
           busgate_service_request_stream(s));
    fflush(stdout);
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: orders-service [-c busgate.ini] [-u valkey-url] [-n instance] [-w threads]\n");
}

/* Options apply in a fixed order: the ini first, then what the command line overrides. */
static int configure(busgate_service *s, int argc, char **argv, char *err)
{
    const char *ini = NULL, *url = NULL, *inst = NULL, *threads = NULL;
    int opt;

    while ((opt = getopt(argc, argv, "c:u:n:w:h")) != -1) {
        switch (opt) {
        case 'c':
            ini = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'n':
            inst = optarg;
            break;
        case 'w':
            threads = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if ((ini != NULL && busgate_service_load_config(s, ini, err) != BG_OK) ||
        (url != NULL && busgate_service_set_url(s, url, err) != BG_OK) ||
        (inst != NULL && busgate_service_set_instance(s, inst, err) != BG_OK) ||
        (threads != NULL && busgate_service_set_threads(s, atoi(threads), err) != BG_OK))
        return BG_ERR;
    return BG_OK;
}

static void store_free(void)
{
    for (size_t i = 0; i < orders.count; i++)
        free(orders.items[i].json);
    free(orders.items);
}

int main(int argc, char **argv)
{
    char err[BG_ERR_LEN];
    busgate_service *s;
    int rc;

    s = busgate_service_new("orders", "1.0.0", err);
    if (s == NULL || configure(s, argc, argv, err) != BG_OK || add_endpoints(s, err) != BG_OK) {
        fprintf(stderr, "orders-service: %s\n", err);
        busgate_service_free(s);
        return 2;
    }
    busgate_service_on_ready(s, on_ready, NULL);
    rc = busgate_service_run(s, err);
    if (rc != BG_OK)
        fprintf(stderr, "orders-service: %s\n", err);
    busgate_service_free(s);
    store_free();
    return rc == BG_OK ? 0 : 1;
}
