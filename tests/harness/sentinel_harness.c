/* sentinel_harness.c: a primary, a replica and three sentinels as private processes. */
#include "sentinel_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "proc_harness.h"

static void sh_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* valkey-sentinel (Debian's package), else the server in sentinel mode. */
static const char *sh_binary(char *argv0, size_t len)
{
    if (bgt_in_path("valkey-sentinel"))
        snprintf(argv0, len, "valkey-sentinel");
    else if (bgt_in_path("redis-sentinel"))
        snprintf(argv0, len, "redis-sentinel");
    else if (bgt_in_path("valkey-server") || bgt_in_path("redis-server"))
        snprintf(argv0, len, "%s", bgt_valkey_binary()); /* with --sentinel */
    else
        return NULL;
    return argv0;
}

const char *bgt_sentinel_unavailable(void)
{
    char argv0[64];

    if (sh_binary(argv0, sizeof(argv0)) == NULL)
        return "no valkey-sentinel, redis-sentinel or valkey-server on PATH";
    return NULL;
}

/* The password port wants: the sentinels' own, or the data nodes'. */
static const char *sh_password(const bgt_sentinels *s, int port)
{
    for (int i = 0; i < BGT_SENTINELS; i++)
        if (s->port[i] == port)
            return s->sentinel_password;
    return s->data_password;
}

/* One command on 127.0.0.1:port through hiredis, after AUTH when that port needs it; the
 * reply (caller frees) or NULL. */
static redisReply *sh_cmd(const bgt_sentinels *s, int port, const char *fmt, const char *arg)
{
    struct timeval tv = {.tv_sec = 1};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    const char *pw = sh_password(s, port);
    redisReply *r = NULL;

    if (c != NULL && c->err == 0) {
        redisSetTimeout(c, tv);
        if (pw[0] != '\0' && (r = redisCommand(c, "AUTH %s", pw)) != NULL)
            freeReplyObject(r);
        r = redisCommand(c, fmt, arg);
    }
    if (c != NULL)
        redisFree(c);
    return r;
}

static int sh_write_conf(const bgt_sentinels *s, int i, char *path, size_t len)
{
    FILE *fp;

    snprintf(path, len, "%s/sentinel-%d.conf", s->dir, s->port[i]);
    fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp,
            "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nlogfile %s/sentinel-%d.log\n"
            "sentinel monitor %s 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds %s 1000\n"
            "sentinel failover-timeout %s 2000\n"
            "sentinel parallel-syncs %s 1\n",
            s->port[i], s->dir, s->dir, s->port[i], BGT_SENTINEL_MASTER,
            s->tls ? s->node_tls_port[0] : s->node[0].port, BGT_SENTINEL_MASTER,
            BGT_SENTINEL_MASTER, BGT_SENTINEL_MASTER);
    if (s->tls != NULL)
        fprintf(fp,
                "tls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n"
                "tls-auth-clients no\ntls-replication yes\n",
                s->tls_port[i], s->tls->server_crt, s->tls->server_key, s->tls->ca_crt);
    if (s->data_password[0] != '\0')
        fprintf(fp, "sentinel auth-pass %s %s\n", BGT_SENTINEL_MASTER, s->data_password);
    if (s->sentinel_password[0] != '\0')
        fprintf(fp, "requirepass %s\nsentinel sentinel-pass %s\n", s->sentinel_password,
                s->sentinel_password);
    return fclose(fp) == 0 ? 0 : -1;
}

static pid_t sh_spawn(const bgt_sentinels *s, const char *conf)
{
    int needs_flag = strstr(s->argv0, "sentinel") == NULL; /* the server binary itself */
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (chdir(s->dir) != 0)
        _exit(126);
    if (needs_flag)
        execlp(s->argv0, s->argv0, conf, "--sentinel", (char *)NULL);
    else
        execlp(s->argv0, s->argv0, conf, (char *)NULL);
    _exit(127);
}

static int sh_start_sentinel(bgt_sentinels *s, int i)
{
    char conf[400];
    long long until;

    s->port[i] = bgt_free_port();
    s->tls_port[i] = s->tls != NULL ? bgt_free_port() : 0;
    if (s->port[i] <= 0 || sh_write_conf(s, i, conf, sizeof(conf)) != 0)
        return -1;
    s->pid[i] = sh_spawn(s, conf);
    if (s->pid[i] < 0) {
        s->pid[i] = 0;
        return -1;
    }
    for (until = bgt_now_ms() + 5000; bgt_now_ms() < until; sh_sleep_ms(20)) {
        redisReply *r = sh_cmd(s, s->port[i], "PING", NULL);
        int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL)
            freeReplyObject(r);
        if (ok)
            return 0;
        if (waitpid(s->pid[i], NULL, WNOHANG) == s->pid[i]) {
            s->pid[i] = 0;
            return -1;
        }
    }
    return -1;
}

/* The replica reports master_link_status:up once the first sync is done. */
static int sh_wait_sync(const bgt_sentinels *s, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;

    for (; bgt_now_ms() < until; sh_sleep_ms(20)) {
        redisReply *r = sh_cmd(s, s->node[1].port, "INFO %s", "replication");
        int up = r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_VERB) &&
                 strstr(r->str, "link_status:up") != NULL;
        if (r != NULL)
            freeReplyObject(r);
        if (up)
            return 0;
    }
    return -1;
}

static long sh_count(const bgt_sentinels *s, int port, const char *what)
{
    redisReply *r = sh_cmd(s, port, what, BGT_SENTINEL_MASTER);
    long n = r != NULL && r->type == REDIS_REPLY_ARRAY ? (long)r->elements : -1;

    if (r != NULL)
        freeReplyObject(r);
    return n;
}

/* A failover needs each sentinel to know the replica and a majority of sentinels:
 * they learn both within a few seconds (INFO at connect, hello messages every 2 s). */
static int sh_wait_known(const bgt_sentinels *s, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    int i, ok = 0;

    for (; !ok && bgt_now_ms() < until; sh_sleep_ms(100)) {
        ok = 1;
        for (i = 0; i < BGT_SENTINELS; i++)
            ok &= sh_count(s, s->port[i], "SENTINEL replicas %s") == 1 &&
                  sh_count(s, s->port[i], "SENTINEL sentinels %s") == BGT_SENTINELS - 1;
    }
    return ok ? 0 : -1;
}

/* With a data password: both nodes require it and use it towards their primary (the
 * first one too, for when it comes back as a replica). Set once they are in sync, as
 * the harness's start-up probes do not authenticate. */
static int sh_protect_nodes(bgt_sentinels *s)
{
    const char *steps[] = {"masterauth", "requirepass"};
    char pw[sizeof(s->data_password)];

    if (s->data_password[0] == '\0')
        return 0;
    snprintf(pw, sizeof(pw), "%s", s->data_password);
    s->data_password[0] = '\0'; /* not required until the last step */
    for (int k = 0; k < 2; k++) {
        for (int i = 1; i >= 0; i--) {
            char line[300], out[64];
            snprintf(line, sizeof(line), "CONFIG SET %s %s", steps[k], pw);
            if (bgt_valkey_cmd(&s->node[i], out, sizeof(out), "%s", line) != 0 ||
                strcmp(out, "+OK") != 0) {
                fprintf(stderr, "sentinel_harness: %s on node %d: %s\n", steps[k], i, out);
                return -1;
            }
        }
    }
    snprintf(s->data_password, sizeof(s->data_password), "%s", pw);
    return 0;
}

/* One data node, over TLS as well in a TLS set (then replicating over TLS). */
static int sh_start_node(bgt_sentinels *s, int i, const char *const *extra)
{
    const char *tls[8] = {"--tls-replication", "yes"};
    int n = 2;

    if (s->tls == NULL)
        return bgt_valkey_start(&s->node[i], extra);
    for (; extra != NULL && *extra != NULL && n < 7; extra++)
        tls[n++] = *extra;
    tls[n] = NULL;
    return bgt_valkey_start_tls(&s->node[i], s->tls, &s->node_tls_port[i], tls);
}

static int sh_start_nodes(bgt_sentinels *s)
{
    char port[16];
    const char *replica[] = {"--replicaof", "127.0.0.1", port, NULL};

    if (sh_start_node(s, 0, NULL) != 0) {
        fprintf(stderr, "sentinel_harness: the primary did not start\n");
        return -1;
    }
    snprintf(port, sizeof(port), "%d", s->tls ? s->node_tls_port[0] : s->node[0].port);
    if (sh_start_node(s, 1, replica) != 0 || sh_wait_sync(s, 10000) != 0) {
        fprintf(stderr, "sentinel_harness: the replica did not start or sync\n");
        return -1;
    }
    return sh_protect_nodes(s);
}

static int sh_start(bgt_sentinels *s);

int bgt_sentinels_start(bgt_sentinels *s)
{
    return bgt_sentinels_start_auth(s, NULL, NULL);
}

int bgt_sentinels_start_tls(bgt_sentinels *s, const bgt_tls_certs *t)
{
    memset(s, 0, sizeof(*s));
    s->tls = t;
    return sh_start(s);
}

int bgt_sentinels_start_auth(bgt_sentinels *s, const char *data_password,
                             const char *sentinel_password)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->data_password, sizeof(s->data_password), "%s", data_password ? data_password : "");
    snprintf(s->sentinel_password, sizeof(s->sentinel_password), "%s",
             sentinel_password ? sentinel_password : "");
    return sh_start(s);
}

/* Everything, from a struct whose options are set. */
static int sh_start(bgt_sentinels *s)
{
    int i;

    if (sh_binary(s->argv0, sizeof(s->argv0)) == NULL) {
        fprintf(stderr, "sentinel_harness: %s\n", bgt_sentinel_unavailable());
        return -1;
    }
    snprintf(s->dir, sizeof(s->dir), "/tmp/busgate-test-XXXXXX");
    if (mkdtemp(s->dir) == NULL || sh_start_nodes(s) != 0)
        goto fail;
    for (i = 0; i < BGT_SENTINELS; i++) {
        if (sh_start_sentinel(s, i) != 0) {
            fprintf(stderr, "sentinel_harness: sentinel %d did not start (%s, see %s)\n", i,
                    s->argv0, s->dir);
            goto fail;
        }
    }
    if (s->tls != NULL)
        snprintf(s->url, sizeof(s->url),
                 "valkeys+sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/%s", s->tls_port[0],
                 s->tls_port[1], s->tls_port[2], BGT_SENTINEL_MASTER);
    else
        snprintf(s->url, sizeof(s->url),
                 "valkey+sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/%s", s->port[0],
                 s->port[1], s->port[2], BGT_SENTINEL_MASTER);
    if (sh_wait_known(s, 15000) != 0) {
        fprintf(stderr,
                "sentinel_harness: the sentinels did not learn the replica and each other\n");
        goto fail;
    }
    return 0;
fail:
    bgt_sentinels_stop(s);
    return -1;
}

void bgt_sentinels_stop(bgt_sentinels *s)
{
    char cmd[400];
    int i;

    for (i = 0; i < BGT_SENTINELS; i++) {
        if (s->pid[i] > 0) {
            kill(s->pid[i], SIGKILL);
            waitpid(s->pid[i], NULL, 0);
            s->pid[i] = 0;
        }
    }
    bgt_valkey_stop(&s->node[0]);
    bgt_valkey_stop(&s->node[1]);
    if (strncmp(s->dir, "/tmp/busgate-test-", 18) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0) {
            /* a leftover temp dir is harmless */
        }
    }
    s->dir[0] = '\0';
}

int bgt_sentinels_primary_port(const bgt_sentinels *s, int i)
{
    redisReply *r =
        sh_cmd(s, s->port[i], "SENTINEL get-master-addr-by-name %s", BGT_SENTINEL_MASTER);
    int port = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(r->element[1]->str);
    if (r != NULL)
        freeReplyObject(r);
    return port;
}

int bgt_sentinels_wait_primary(const bgt_sentinels *s, int port, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    int i, ok = 0;

    for (; !ok && bgt_now_ms() < until; sh_sleep_ms(10)) {
        ok = 1;
        for (i = 0; i < BGT_SENTINELS; i++)
            ok &= s->pid[i] <= 0 || bgt_sentinels_primary_port(s, i) == port;
    }
    return ok ? 0 : -1;
}

int bgt_sentinels_primary_index(const bgt_sentinels *s)
{
    int port = bgt_sentinels_primary_port(s, 0);
    int p0 = s->tls ? s->node_tls_port[0] : s->node[0].port;
    int p1 = s->tls ? s->node_tls_port[1] : s->node[1].port;

    return port == p0 ? 0 : port == p1 ? 1 : -1;
}

int bgt_sentinels_failover(const bgt_sentinels *s)
{
    redisReply *r = sh_cmd(s, s->port[0], "SENTINEL failover %s", BGT_SENTINEL_MASTER);
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;

    if (r != NULL && !ok)
        fprintf(stderr, "sentinel_harness: SENTINEL FAILOVER: %s\n",
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r != NULL)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

int bgt_sentinels_wait_role(const bgt_sentinels *s, int i, const char *role, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;

    for (; bgt_now_ms() < until; sh_sleep_ms(20)) {
        redisReply *r = sh_cmd(s, s->node[i].port, "ROLE", NULL);
        int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                 r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, role) == 0;
        if (r != NULL)
            freeReplyObject(r);
        if (ok)
            return 0;
    }
    return -1;
}
