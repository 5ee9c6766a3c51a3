/* url.h: parse a Valkey connection URL (valkey://, valkeys://, redis://, rediss://, unix://,
 * the Sentinel forms valkey+sentinel://, valkeys+sentinel:// and the Cluster forms
 * valkey+cluster://, valkeys+cluster://). */
#ifndef BUSGATE_URL_H
#define BUSGATE_URL_H

#include "busgate/common.h"

#define BG_VALKEY_DEFAULT_PORT 6379
#define BG_SENTINEL_DEFAULT_PORT 26379
#define BG_SENTINEL_MAX 8
#define BG_CLUSTER_SEEDS_MAX 16

/* One sentinel of a valkey+sentinel:// URL, or one seed node of a valkey+cluster:// URL. */
typedef struct bg_valkey_node {
    char host[256];
    int port; /* default 26379 */
} bg_valkey_node;

typedef struct bg_valkey_addr {
    int tls;        /* valkeys:// or rediss:// (or their +sentinel forms: TLS everywhere) */
    int is_unix;    /* unix:///path */
    int sentinel;   /* +sentinel: host/port are found by asking the sentinels below */
    int cluster;    /* +cluster: a Valkey Cluster reached through the seeds below */
    char host[256]; /* sentinel: "" until discovery fills in the primary's address */
    int port;       /* default port 6379; sentinel: 0 until discovered */
    char unix_path[108];
    char user[128];
    char password[256]; /* from the URL userinfo (percent-decoded) */
    int db;             /* /N path (or ?db=N for unix:// and sentinel), default 0 */
    /* Sentinel form only: */
    char master_name[128]; /* the name the sentinels monitor the primary under */
    int nsentinels;
    bg_valkey_node sentinels[BG_SENTINEL_MAX];
    char sentinel_user[128], sentinel_password[256]; /* ?sentinel_user=&sentinel_password= */
    /* Cluster form only (host/port also name the first seed): */
    int nseeds;
    bg_valkey_node seeds[BG_CLUSTER_SEEDS_MAX];
} bg_valkey_addr;

/* Accepted forms:
 *   valkey://[user[:password]@]host[:port][/db]     (also redis://)
 *   valkeys://[user[:password]@]host[:port][/db]    (TLS; also rediss://)
 *   unix://[user[:password]@]/path/to/socket[?db=N]
 *   valkey+sentinel://[user[:password]@]host[:port][,host[:port]...]/master_name[?params]
 *   valkeys+sentinel://... (TLS to sentinels and data nodes; also redis+, rediss+sentinel)
 *     params, '&'-separated: db=N, sentinel_user=NAME, sentinel_password=SECRET.
 *     The userinfo is the data nodes' credentials, as in the other forms; the sentinels'
 *     own come from the parameters. Sentinel port default 26379, at most BG_SENTINEL_MAX.
 *   valkey+cluster://[user[:password]@]host[:port][,host[:port]...][/]
 *   valkeys+cluster://... (TLS to every node; also redis+cluster, rediss+cluster)
 *     Seed nodes (port default 6379, at most BG_CLUSTER_SEEDS_MAX): any of them answers
 *     CLUSTER SLOTS; the primaries it names are the ones used. The userinfo is every
 *     node's credentials. No database (a cluster has only 0), no parameters.
 * host may be a bracketed IPv6 literal ("[::1]"). A userinfo without ':' is a
 * password alone (legacy "redis://:secret@host" and "redis://secret@host" both
 * mean password auth as the default user). Percent-escapes are decoded in user,
 * password and unix path. Returns BG_OK, or BG_ERR with the reason in err. */
int bg_valkey_url_parse(const char *url, bg_valkey_addr *out, char *err);

#endif
