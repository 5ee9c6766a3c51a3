/* main.c: busgated entry point: command line, -t, -s, then the master process. */
#include <bsd/unistd.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/core/access_log.h"
#include "busgate/config/config.h"
#include "busgate/core/log.h"
#include "busgate/workers/worker.h"
#include "master.h"

/* Exit status: 0 stopped normally, 1 runtime failure (cannot listen, already
 * running, ...), 2 bad command line or invalid configuration at start: as for
 * workers, 2 means "restarting will not help". -t answers 1 on a bad file, as nginx. */
#define EXIT_USAGE 2
#define EXIT_CONFIG 2

typedef struct bg_cli {
    char conf_path[PATH_MAX];
    char signal[16]; /* -s ACTION, "" when absent */
    int test_config; /* -t: check the file and exit */
    int foreground;  /* -g: no daemon (supervisors, tests) */
    int help;
    int version;
} bg_cli;

static void cli_usage(FILE *out)
{
    fprintf(out,
            "Usage: busgated [-c FILE] [-g] [-t] [-s SIGNAL] [-h] [-v]\n"
            "  -c FILE          configuration file (default: %s)\n"
            "  -g, --foreground stay in the foreground (no daemon)\n"
            "  -t               test the configuration file and exit\n"
            "  -s SIGNAL        signal the running master through the pid file:\n"
            "                   stop (SIGTERM, graceful), quit (SIGQUIT, fast),\n"
            "                   reload (SIGHUP), reopen (SIGUSR1, log files)\n"
            "  -h               show this help and exit\n"
            "  -v               show the version and exit\n"
            "Exit status: 0 stopped normally, 1 runtime failure, 2 bad command line or\n"
            "invalid configuration (-t: 1 when the file is invalid)\n",
            BG_CONFIG_DEFAULT_PATH);
}

/* The copy outlives argv, which setproctitle() overwrites. */
static int cli_copy(char *dst, size_t size, const char *src, const char *what)
{
    if (bg_strlcpy_checked(dst, src, size) != BG_OK) {
        fprintf(stderr, "busgated: %s too long\n", what);
        return BG_ERR;
    }
    return BG_OK;
}

static int cli_option(bg_cli *cli, int opt)
{
    switch (opt) {
    case 'c':
        return cli_copy(cli->conf_path, sizeof(cli->conf_path), optarg, "-c path");
    case 's':
        return cli_copy(cli->signal, sizeof(cli->signal), optarg, "-s signal");
    case 'g':
        cli->foreground = 1;
        return BG_OK;
    case 't':
        cli->test_config = 1;
        return BG_OK;
    case 'h':
        cli->help = 1;
        return BG_OK;
    case 'v':
        cli->version = 1;
        return BG_OK;
    case ':':
        fprintf(stderr, "busgated: option -%c needs an argument\n", optopt);
        return BG_ERR;
    default:
        if (optopt != 0)
            fprintf(stderr, "busgated: unknown option -%c\n", optopt);
        else
            fprintf(stderr, "busgated: unknown option\n");
        return BG_ERR;
    }
}

/* Fills cli from argv; returns BG_ERR (after saying why) on a bad command line. */
static int cli_parse(int argc, char **argv, bg_cli *cli)
{
    static const struct option longopts[] = {{"foreground", no_argument, NULL, 'g'},
                                             {NULL, 0, NULL, 0}};
    int opt;

    memset(cli, 0, sizeof(*cli));
    snprintf(cli->conf_path, sizeof(cli->conf_path), "%s", BG_CONFIG_DEFAULT_PATH);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:s:gthv", longopts, NULL)) != -1) {
        if (cli_option(cli, opt) != BG_OK)
            return BG_ERR;
    }
    if (optind < argc) {
        fprintf(stderr, "busgated: unexpected argument '%s'\n", argv[optind]);
        return BG_ERR;
    }
    return BG_OK;
}

/* Loads the file, printing each error as "busgated: FILE:LINE: ..."; errors is scratch space. */
static int load_config(const char *path, bg_config *cfg, char *errors, size_t errlen)
{
    char *line, *next, err[BG_ERR_LEN];

    if (bg_config_load(path, cfg, errors, errlen) == BG_OK) {
        if (bg_worker_auth_check(cfg, err) == BG_OK)
            return BG_OK;
        fprintf(stderr, "busgated: %s: [auth]: %s\n", path, err);
        return BG_ERR;
    }
    for (line = errors; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        fprintf(stderr, "busgated: %s\n", line);
    }
    return BG_ERR;
}

/* -t, as nginx -t: every error, then one verdict line. */
static int cli_test_config(const char *path)
{
    static bg_config cfg;
    static char errors[64 * 1024];

    if (load_config(path, &cfg, errors, sizeof(errors)) != BG_OK) {
        fprintf(stderr, "busgated: configuration file %s test failed\n", path);
        return EXIT_FAILURE;
    }
    fprintf(stderr, "busgated: configuration file %s test is successful\n", path);
    return EXIT_SUCCESS;
}

/* -s: the pid file named in the configuration leads to the master. */
static int cli_signal(const char *path, const char *action)
{
    static bg_config cfg;
    static char errors[64 * 1024];
    char err[BG_ERR_LEN];

    if (load_config(path, &cfg, errors, sizeof(errors)) != BG_OK) {
        fprintf(stderr, "busgated: configuration file %s is invalid\n", path);
        return EXIT_FAILURE;
    }
    if (bg_signal_running(cfg.gateway.pid_file, action, err) != BG_OK) {
        fprintf(stderr, "busgated: -s %s: %s\n", action, err);
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}

/* A failure before the master runs: on stderr, and in the log file if there is one. */
static int start_failed(const char *what, const char *err)
{
    fprintf(stderr, "busgated: %s: %s\n", what, err);
    if (bg_log_fd() != STDERR_FILENO)
        bg_crit("%s: %s", what, err);
    return EXIT_FAILURE;
}

static int start_log(const bg_config *cfg, int foreground)
{
    char err[BG_ERR_LEN];

    bg_log_set_ident("master");
    bg_log_set_level(cfg->gateway.log_level);
    if (bg_log_open(cfg->gateway.error_log, err) != BG_OK)
        return start_failed("cannot open the error log", err);
    if (!foreground && bg_log_fd() == STDERR_FILENO)
        fprintf(stderr, "busgated: error_log is stderr: in daemon mode the log is discarded "
                        "(set error_log or use -g)\n");
    return EXIT_SUCCESS;
}

/* Everything that can fail with the terminal still attached, then detach. */
static int start_master(bg_master *m, int foreground)
{
    char err[BG_ERR_LEN];

    if (start_log(m->cfg, foreground) != EXIT_SUCCESS)
        return EXIT_FAILURE;
    /* Opened once here and inherited: a sandboxed worker cannot open files. */
    if (bg_access_log_open(m->cfg->gateway.access_log, err) != BG_OK)
        return start_failed("cannot open the access log", err);
    if (bg_pidfile_open(m->cfg->gateway.pid_file, &m->pidfile, err) != BG_OK)
        return start_failed("cannot start", err);
    /* Read now, as root if started so: workers inherit the context, never the files. */
    if (bg_master_tls_load(m->cfg, &m->tls, err) != BG_OK)
        return start_failed("cannot load TLS", err);
    if (bg_listen_open(&m->listen, m->cfg, err) != BG_OK)
        return start_failed("cannot listen", err);
    if (!foreground && bg_daemonize(bg_log_fd() == STDERR_FILENO, err) != BG_OK)
        return start_failed("cannot become a daemon", err);
    if (bg_pidfile_write(m->pidfile, err) != BG_OK)
        return start_failed("cannot write the pid file", err);
    bg_notice("busgated %s started (pid %ld, %d workers, config %s)", BUSGATE_VERSION,
              (long)getpid(), m->cfg->gateway.workers, m->cfg->path);
    return EXIT_SUCCESS;
}

static int run_master(const char *path, int foreground)
{
    static bg_master m;
    static char errors[64 * 1024];
    int code;

    m.cfg = malloc(sizeof(*m.cfg)); /* replaced by each reload */
    if (m.cfg == NULL)
        return start_failed("cannot start", "out of memory");
    if (load_config(path, m.cfg, errors, sizeof(errors)) != BG_OK) {
        fprintf(stderr, "busgated: configuration file %s is invalid, not starting\n", path);
        free(m.cfg);
        return EXIT_CONFIG;
    }
    code = start_master(&m, foreground);
    if (code == EXIT_SUCCESS)
        code = bg_master_run(&m);
    bg_listen_close(&m.listen);
    SSL_CTX_free(m.tls);
    bg_access_log_close();
    bg_pidfile_remove(m.pidfile);
    free(m.cfg);
    return code;
}

/* Reloads and daemon mode's chdir("/") need the file by its absolute name. */
static void cli_absolute_path(bg_cli *cli)
{
    char abs[PATH_MAX];

    if (realpath(cli->conf_path, abs) != NULL)
        snprintf(cli->conf_path, sizeof(cli->conf_path), "%s", abs);
}

int main(int argc, char **argv, char **envp)
{
    bg_cli cli;

    setproctitle_init(argc, argv, envp);
    if (cli_parse(argc, argv, &cli) != BG_OK) {
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    if (cli.help) {
        cli_usage(stdout);
        return EXIT_SUCCESS;
    }
    if (cli.version) {
        printf("busgated %s\n", BUSGATE_VERSION);
        return EXIT_SUCCESS;
    }
    if (cli.test_config)
        return cli_test_config(cli.conf_path);
    if (cli.signal[0] != '\0')
        return cli_signal(cli.conf_path, cli.signal);
    cli_absolute_path(&cli);
    return run_master(cli.conf_path, cli.foreground);
}
