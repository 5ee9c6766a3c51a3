/* sentinel_harness.h: a primary, a replica and three sentinels for failover tests, on free
 * loopback ports in temp dirs, always stopped again (PR_SET_PDEATHSIG like valkey_harness). */
#ifndef BUSGATE_TEST_SENTINEL_HARNESS_H
#define BUSGATE_TEST_SENTINEL_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include "tls_certs.h"
#include "valkey_harness.h"

#define BGT_SENTINELS 3
#define BGT_SENTINEL_MASTER "mymaster"

typedef struct bgt_sentinels {
    bgt_valkey node[2]; /* node[0] starts as the primary, node[1] as its replica */
    pid_t pid[BGT_SENTINELS];
    int port[BGT_SENTINELS];
    char dir[256];          /* the sentinels' configs and logs */
    char url[512];          /* valkey+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/mymaster */
    char argv0[64];         /* how sentinels are started: "valkey-sentinel" or "valkey-server" */
    char data_password[64]; /* requirepass of the data nodes, "" for none */
    char sentinel_password[64]; /* requirepass of the sentinels, "" for none */
    const bgt_tls_certs *tls;   /* TLS set: everyone also listens for TLS (NULL: plain only) */
    int node_tls_port[2];       /* the data nodes' TLS ports (what the sentinels report) */
    int tls_port[BGT_SENTINELS];
} bgt_sentinels;

/* Why sentinel cannot run here (no sentinel binary), or NULL when it can. */
const char *bgt_sentinel_unavailable(void);

/* Starts the primary, the replica (waits until it is in sync) and three sentinels
 * (down-after-milliseconds 1000, failover-timeout 2000, quorum 2), and waits until every
 * sentinel knows the replica and the other two sentinels. 0, or -1 with the reason on
 * stderr (everything started is stopped again). */
int bgt_sentinels_start(bgt_sentinels *s);
/* The same with passwords (NULL for none): the data nodes require data_password (set once
 * they are in sync; the sentinels get it as auth-pass), the sentinels sentinel_password. The
 * url carries neither: the test adds the credentials it means to test. */
int bgt_sentinels_start_auth(bgt_sentinels *s, const char *data_password,
                             const char *sentinel_password);
/* The same over TLS as well (t's certificates): the data nodes replicate over TLS, the
 * sentinels monitor them and talk to each other over TLS, and s->url is a
 * valkeys+sentinel:// url of the sentinels' TLS ports. The plain ports stay open for the
 * harness's own probes. */
int bgt_sentinels_start_tls(bgt_sentinels *s, const bgt_tls_certs *t);
/* Stops everything and removes the dirs. Safe to call twice. */
void bgt_sentinels_stop(bgt_sentinels *s);

/* The primary's port as sentinel i reports it (its TLS port in a TLS set), or -1. */
int bgt_sentinels_primary_port(const bgt_sentinels *s, int i);
/* Waits until every live sentinel reports port as the primary's; 0 or -1. */
int bgt_sentinels_wait_primary(const bgt_sentinels *s, int port, int timeout_ms);
/* Index (0 or 1) of the node whose port the sentinels report, or -1. */
int bgt_sentinels_primary_index(const bgt_sentinels *s);
/* SENTINEL FAILOVER mymaster on sentinel 0; 0 when it was accepted. */
int bgt_sentinels_failover(const bgt_sentinels *s);
/* Waits until node i answers ROLE "master" and its link state is settled; 0 or -1. */
int bgt_sentinels_wait_role(const bgt_sentinels *s, int i, const char *role, int timeout_ms);

#endif
