/* route_service.c: the service behind bench/curves.sh's routes curve. Announces N endpoints
 * through the bus, over ceil(N / 1000) services "rt0", "rt1", ... (an ENDPOINTS_UPDATE carries at
 * most 1024): "GET /rtK/eJ/{id}" for J in 0..999 (fewer in the last one). Every endpoint answers
 * the same small JSON body, so each point of the curve differs only in the size of the table.
 * wrk hits rt0 (4 handler threads, as echo-service); the others have one handler thread each.
 *
 * Each service runs busgate_service_run() in its own thread; SIGTERM or SIGINT (waited for by
 * main, blocked in every thread) stops them all. Prints "route_service: ready, K services,
 * N endpoints" once every service has registered (sent HELLO and its endpoints).
 * Usage: route_service -u valkey://host:port -n N [-c busgate.ini]
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/service.h"

#define PER_SERVICE 1000
#define MAX_ENDPOINTS 1000000

static atomic_int ready;
static int nservices;
static long nendpoints;

static int answer(const busgate_request *req, busgate_response *res, void *arg)
{
    static const char body[] = "{\"ok\":true,\"bench\":\"routes\"}";

    (void)req;
    (void)arg;
    return busgate_response_set(res, 200, "application/json", body, sizeof(body) - 1);
}

static void on_ready(busgate_service *s, void *arg)
{
    (void)s;
    (void)arg;
    if (atomic_fetch_add(&ready, 1) + 1 == nservices) {
        printf("route_service: ready, %d services, %ld endpoints\n", nservices, nendpoints);
        fflush(stdout);
    }
}

/* Service k: rtK with endpoints [first, first + n). */
static busgate_service *make_service(int k, long n, const char *url, const char *ini, char *err)
{
    char name[32], path[64];
    busgate_service *s;

    snprintf(name, sizeof(name), "rt%d", k);
    if ((s = busgate_service_new(name, "1.0.0", err)) == NULL)
        return NULL;
    if ((ini != NULL && busgate_service_load_config(s, ini, err) != BG_OK) ||
        busgate_service_set_url(s, url, err) != BG_OK ||
        busgate_service_set_threads(s, k == 0 ? BUSGATE_SERVICE_DEFAULT_THREADS : 1, err) != BG_OK)
        goto fail;
    for (long j = 0; j < n; j++) {
        snprintf(path, sizeof(path), "/rt%d/e%ld/{id}", k, j);
        if (busgate_service_add_endpoint(s, "GET", path, answer, NULL, NULL, err) != BG_OK)
            goto fail;
    }
    busgate_service_handle_signals(s, 0);
    busgate_service_on_ready(s, on_ready, NULL);
    return s;
fail:
    busgate_service_free(s);
    return NULL;
}

static void *serve(void *arg)
{
    char err[BG_ERR_LEN];

    if (busgate_service_run(arg, err) != BG_OK) {
        fprintf(stderr, "route_service: %s: %s\n", busgate_service_name(arg), err);
        kill(getpid(), SIGTERM); /* one failed: stop the rest, the bench reports it */
    }
    return NULL;
}

static int parse_args(int argc, char **argv, const char **url, const char **ini)
{
    int opt;

    while ((opt = getopt(argc, argv, "u:n:c:")) != -1) {
        if (opt == 'u')
            *url = optarg;
        else if (opt == 'n')
            nendpoints = strtol(optarg, NULL, 10);
        else if (opt == 'c')
            *ini = optarg;
        else
            return -1;
    }
    return *url != NULL && nendpoints >= 1 && nendpoints <= MAX_ENDPOINTS ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *ini = NULL;
    char err[BG_ERR_LEN];
    busgate_service **svc;
    pthread_t *th;
    sigset_t set;
    int sig, started = 0, rc = 1;

    if (parse_args(argc, argv, &url, &ini) != 0) {
        fprintf(stderr, "usage: route_service -u valkey-url -n N (1..%d) [-c busgate.ini]\n",
                MAX_ENDPOINTS);
        return 2;
    }
    nservices = (int)((nendpoints + PER_SERVICE - 1) / PER_SERVICE);
    svc = calloc((size_t)nservices, sizeof(*svc));
    th = calloc((size_t)nservices, sizeof(*th));
    if (svc == NULL || th == NULL)
        goto cleanup;
    /* Blocked before the threads start, so they inherit the mask and main gets the signal. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (int k = 0; k < nservices; k++) {
        long first = (long)k * PER_SERVICE;
        long n = nendpoints - first < PER_SERVICE ? nendpoints - first : PER_SERVICE;
        if ((svc[k] = make_service(k, n, url, ini, err)) == NULL) {
            fprintf(stderr, "route_service: rt%d: %s\n", k, err);
            goto stop;
        }
        if (pthread_create(&th[started], NULL, serve, svc[k]) != 0)
            goto stop;
        started++;
    }
    sigwait(&set, &sig);
    rc = 0;
stop:
    for (int k = 0; k < started; k++)
        busgate_service_stop(svc[k]);
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
cleanup:
    for (int k = 0; svc != NULL && k < nservices; k++)
        busgate_service_free(svc[k]);
    free(svc);
    free(th);
    return rc;
}
