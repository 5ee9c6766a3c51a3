/* main.c: busgated entry point: command-line options, config test (-t), then the master. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/config.h"

#ifndef BUSGATE_VERSION
#define BUSGATE_VERSION "0.1.0"
#endif

#define EXIT_USAGE 2

typedef struct bg_cli {
    const char *conf_path;
    int test_config; /* -t: check the file and exit */
    int help;
    int version;
} bg_cli;

static void cli_usage(FILE *out)
{
    fprintf(out,
            "Usage: busgated [-c FILE] [-t] [-h] [-v]\n"
            "  -c FILE  configuration file (default: %s)\n"
            "  -t       test the configuration file and exit\n"
            "  -h       show this help and exit\n"
            "  -v       show the version and exit\n",
            BG_CONFIG_DEFAULT_PATH);
}

/* Fills cli from argv; returns BG_ERR (after saying why) on a bad command line. */
static int cli_parse(int argc, char **argv, bg_cli *cli)
{
    int opt;

    memset(cli, 0, sizeof(*cli));
    cli->conf_path = BG_CONFIG_DEFAULT_PATH;
    opterr = 0;
    while ((opt = getopt(argc, argv, ":c:thv")) != -1) {
        switch (opt) {
        case 'c':
            cli->conf_path = optarg;
            break;
        case 't':
            cli->test_config = 1;
            break;
        case 'h':
            cli->help = 1;
            break;
        case 'v':
            cli->version = 1;
            break;
        case ':':
            fprintf(stderr, "busgated: option -%c needs an argument\n", optopt);
            return BG_ERR;
        default:
            fprintf(stderr, "busgated: unknown option -%c\n", optopt);
            return BG_ERR;
        }
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
    char *line, *next;

    if (bg_config_load(path, cfg, errors, errlen) == BG_OK)
        return BG_OK;
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

static int run_master(const char *path)
{
    static bg_config cfg;
    static char errors[64 * 1024];

    if (load_config(path, &cfg, errors, sizeof(errors)) != BG_OK) {
        fprintf(stderr, "busgated: configuration file %s is invalid, not starting\n", path);
        return EXIT_FAILURE;
    }
    fprintf(stderr, "busgated: master not built yet\n");
    return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
    bg_cli cli;

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
    return run_master(cli.conf_path);
}
