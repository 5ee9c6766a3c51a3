/* cluster_harness.c: a private Valkey Cluster for tests (cluster_harness.h). */
#include "cluster_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *cluster_cli(void)
{
    if (system("command -v valkey-cli >/dev/null 2>&1") == 0)
        return "valkey-cli";
    if (system("command -v redis-cli >/dev/null 2>&1") == 0)
        return "redis-cli";
    return NULL;
}

const char *bgt_cluster_unavailable(void)
{
    /* valkey-server and redis-server 7 both have cluster mode; the tool is what may lack. */
    if (cluster_cli() == NULL)
        return "neither valkey-cli nor redis-cli is installed (package valkey-tools)";
    return NULL;
}

/* Node i; with TLS it also listens on c->tls_port[i], and the cluster bus and replication
 * speak TLS (tls-cluster: the nodes then announce their TLS ports to TLS clients). */
static int node_start(bgt_cluster *c, int i)
{
    char bus_port[16];
    const char *args[] = {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                          "--cluster-port", bus_port, "--cluster-node-timeout", "2000",
                          /* as docs/operations.md advises: a node down stops its slots only */
                          "--cluster-require-full-coverage", "no", "--tls-cluster", "yes",
                          "--tls-replication", "yes", NULL};
    int port = bgt_free_port();

    if (port <= 0)
        return -1;
    snprintf(bus_port, sizeof(bus_port), "%d", port);
    if (c->tls != NULL)
        return bgt_valkey_start_tls(&c->node[i], c->tls, &c->tls_port[i], args);
    args[10] = NULL; /* no TLS options on a plain node */
    return bgt_valkey_start(&c->node[i], args);
}

static int cluster_create(bgt_cluster *c)
{
    char cmd[1024];
    size_t used;

    used = (size_t)snprintf(cmd, sizeof(cmd), "%s --cluster create", cluster_cli());
    if (c->tls != NULL)
        used +=
            (size_t)snprintf(cmd + used, sizeof(cmd) - used, " --tls --cacert %s", c->tls->ca_crt);
    for (int i = 0; i < c->n; i++)
        used += (size_t)snprintf(cmd + used, sizeof(cmd) - used, " 127.0.0.1:%d",
                                 c->tls != NULL ? c->tls_port[i] : c->node[i].port);
    snprintf(cmd + used, sizeof(cmd) - used,
             " --cluster-replicas 0 --cluster-yes >%s/create.log 2>&1", c->node[0].dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cluster_harness: '%s' failed (see %s/create.log)\n", cmd, c->node[0].dir);
        return -1;
    }
    return 0;
}

static int cluster_ok(const bgt_valkey *v)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "%s -p %d cluster info 2>/dev/null | grep -q 'cluster_state:ok'",
             cluster_cli(), v->port);
    return system(cmd) == 0;
}

int bgt_cluster_start(bgt_cluster *c, int n)
{
    return bgt_cluster_start_tls(c, n, NULL);
}

int bgt_cluster_start_tls(bgt_cluster *c, int n, const bgt_tls_certs *t)
{
    struct timespec pause = {0, 50 * 1000 * 1000};

    memset(c, 0, sizeof(*c));
    c->tls = t;
    if (n < 3 || n > BGT_CLUSTER_MAX)
        return -1;
    for (c->n = 0; c->n < n; c->n++) {
        if (node_start(c, c->n) != 0) {
            fprintf(stderr, "cluster_harness: node %d did not start\n", c->n);
            return -1;
        }
    }
    if (cluster_create(c) != 0)
        return -1;
    for (int tries = 0; tries < 400; tries++) { /* 20 s at most */
        int ok = 1;
        for (int i = 0; i < c->n && ok; i++)
            ok = cluster_ok(&c->node[i]);
        if (ok)
            return 0;
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "cluster_harness: cluster_state never became ok\n");
    return -1;
}

void bgt_cluster_stop(bgt_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        bgt_valkey_stop(&c->node[i]);
    c->n = 0;
}

int bgt_cluster_protect(bgt_cluster *c, const char *password)
{
    const char *steps[] = {"masterauth", "requirepass"};

    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < c->n; i++) {
            char out[64];
            if (bgt_valkey_cmd(&c->node[i], out, sizeof(out), "CONFIG SET %s %s", steps[k],
                               password) != 0 ||
                strcmp(out, "+OK") != 0) {
                fprintf(stderr, "cluster_harness: %s on node %d: %s\n", steps[k], i, out);
                return -1;
            }
        }
    }
    return 0;
}
