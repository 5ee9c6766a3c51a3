/* cluster_harness.h: a private Valkey Cluster for a test: N primaries on free loopback
 * ports (each with a free cluster bus port), created with valkey-cli --cluster create. */
#ifndef BUSGATE_TEST_CLUSTER_HARNESS_H
#define BUSGATE_TEST_CLUSTER_HARNESS_H

#include "tls_certs.h"
#include "valkey_harness.h"

#define BGT_CLUSTER_MAX 6

typedef struct bgt_cluster {
    bgt_valkey node[BGT_CLUSTER_MAX];
    int n;
    const bgt_tls_certs *tls;      /* bgt_cluster_start_tls: the certificates, else NULL */
    int tls_port[BGT_CLUSTER_MAX]; /* TLS: each node's TLS port (the plain one stays open) */
} bgt_cluster;

/* NULL when this machine can make a cluster, else why not (for cr_skip_test): the
 * server must know cluster mode and valkey-cli (or redis-cli) must be installed. */
const char *bgt_cluster_unavailable(void);
/* n (3..BGT_CLUSTER_MAX) primaries, no replicas, every slot assigned; returns once every
 * node reports cluster_state:ok. 0, or -1 with the reason printed to stderr. */
int bgt_cluster_start(bgt_cluster *c, int n);
/* The same over TLS as well (t's server certificate, clients not asked for one): the
 * cluster is created through the TLS ports, and TLS clients are told the TLS ports. */
int bgt_cluster_start_tls(bgt_cluster *c, int n, const bgt_tls_certs *t);
void bgt_cluster_stop(bgt_cluster *c);
/* After start: every node requires password (requirepass, and masterauth for replicas);
 * set at run time, so a restarted node does not keep it. 0 or -1. */
int bgt_cluster_protect(bgt_cluster *c, const char *password);

#endif
