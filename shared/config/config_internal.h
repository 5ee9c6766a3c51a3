/* config_internal.h: private interface shared by the config_*.c files (not installed). */
#ifndef BUSGATE_CONFIG_INTERNAL_H
#define BUSGATE_CONFIG_INTERNAL_H

#include <stdio.h>

#include "busgate/config/config.h"

#define BG_CONFIG_MAX_KEYS 128
#define BG_CONFIG_LINE_MAX 1024 /* one formatted error line */

typedef enum {
    BG_CONFIG_STRING,   /* printable text without spaces, length min..max */
    BG_CONFIG_IDENT,    /* [A-Za-z0-9._:-], length min..max */
    BG_CONFIG_KEYNAME,  /* a Valkey key: printable, no whitespace, length min..max */
    BG_CONFIG_PATH,     /* a file path; relative paths are taken from the config file's dir */
    BG_CONFIG_INT,      /* decimal integer min..max */
    BG_CONFIG_DURATION, /* duration in ms, min..max */
    BG_CONFIG_SIZE,     /* size in bytes, min..max */
    BG_CONFIG_BOOL,     /* on/off */
    BG_CONFIG_CUSTOM,   /* key->parse */
} bg_config_kind;

#define BG_CONFIG_REPEAT 0x01     /* the key may appear more than once (listen) */
#define BG_CONFIG_SECRET 0x02     /* never echo the value in an error */
#define BG_CONFIG_URL_SECRET 0x04 /* echo the value with the URL password masked */
#define BG_CONFIG_OFF_OK 0x08     /* path: "off" means unset (empty string) */
#define BG_CONFIG_STDERR_OK 0x10  /* path: "stderr" is kept as is */

typedef struct bg_config_ctx bg_config_ctx;
typedef struct bg_config_key bg_config_key;

/* Parses value into ctx->cfg; on failure writes why into reason (BG_ERR_LEN) and
 * leaves the config untouched. */
typedef int (*bg_config_parse_fn)(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                  char *reason);

struct bg_config_key {
    const char *section;
    const char *name;
    bg_config_kind kind;
    size_t offset; /* of the field in bg_config */
    size_t size;   /* of the field */
    int64_t min, max;
    unsigned flags;
    bg_config_parse_fn parse; /* BG_CONFIG_CUSTOM only */
    const char *allowed;      /* for custom kinds: what the error says is allowed */
    const char *over_max;     /* numbers: the reason given above max (NULL: "out of range") */
};

struct bg_config_ctx {
    bg_config *cfg;
    const char *file; /* as given, for messages */
    char dir[4096];   /* directory of the file, for relative paths */
    int bus_only;

    char *errors;
    size_t errlen, used;
    int nerrors, dropped;

    FILE *fp;
    char *line; /* the whole physical line being parsed (getline buffer) */
    char *text; /* that line without leading/trailing blanks and BOM */
    size_t linecap;
    int lineno;
    int truncated; /* the line was longer than inih's buffer */
    int bad_line;  /* line already reported by the scanner */

    char section[64];
    int section_ok;                   /* keys of the current section are to be read */
    int listen_seen;                  /* the first listen key replaces the default */
    int listen_line[BG_MAX_LISTEN];   /* line of each gateway.listen entry */
    int key_line[BG_CONFIG_MAX_KEYS]; /* line a key was set on, 0 = not set */
    int key_bad[BG_CONFIG_MAX_KEYS];  /* the key had an invalid value */
};

/* config_errors.c: error collection */
void bg_config_error(bg_config_ctx *ctx, int line, const char *fmt, ...) BG_PRINTF(3, 4);
/* "[section] key = 'value': reason (allowed: ...)"; allowed NULL = the key's usual range. */
void bg_config_key_error(bg_config_ctx *ctx, const bg_config_key *key, int line, const char *value,
                         const char *reason, const char *allowed);
void bg_config_errors_finish(bg_config_ctx *ctx);

/* config_reader.c: the line reader handed to inih; it also reports syntax errors */
char *bg_config_read_line(char *str, int num, void *stream);
/* The value of the current line, for lines too long for inih's buffer. */
const char *bg_config_line_value(bg_config_ctx *ctx);

/* config_keys.c: the key table */
const bg_config_key *bg_config_key_find(const char *section, const char *name);
const bg_config_key *bg_config_key_at(size_t index);
size_t bg_config_key_index(const bg_config_key *key);
size_t bg_config_key_count(void);
int bg_config_section_known(const char *section);
int bg_config_section_bus(const char *section);
void bg_config_section_list(char *buf, size_t len);
void bg_config_key_list(const char *section, char *buf, size_t len);
void bg_config_key_allowed(const bg_config_key *key, char *buf, size_t len);

/* config_values.c: value parsers for the generic kinds */
int bg_config_parse_value(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                          char *reason);
int bg_config_valid_chars(const bg_config_key *key, const char *value, char *reason);
/* Copies value into key's string field; BG_ERR "too long (N characters)" when it does not fit. */
int bg_config_store_text(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                         char *reason);
int bg_config_resolve_path(const bg_config_ctx *ctx, const char *value, char *out, size_t size,
                           char *reason);

/* config_custom.c: parsers for the keys with their own syntax */
int bg_config_parse_listen(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                           char *reason);
int bg_config_parse_affinity(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                             char *reason);
int bg_config_parse_workers(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason);
/* A list of HTTP methods (the seven a route may have), normalised to "A B C". */
int bg_config_parse_methods(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason);
int bg_config_parse_log_level(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                              char *reason);
int bg_config_parse_url(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                        char *reason);
int bg_config_parse_template(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                             char *reason);
int bg_config_parse_maxlen(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                           char *reason);
int bg_config_parse_headers(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason);
int bg_config_parse_openapi_path(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                 char *reason);
int bg_config_parse_openapi_access(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                   char *reason);
int bg_config_parse_text(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                         char *reason);
int bg_config_parse_header_prefix(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                  char *reason);
/* config_ratelimit.c: [limits] rate_mode and rate_limit */
int bg_config_parse_rate_mode(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                              char *reason);
int bg_config_parse_rate_limit(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                               char *reason);

/* config_tls.c: the [tls] values and the rules between them and ssl listeners */
int bg_config_parse_verify_client(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                  char *reason);
int bg_config_parse_protocols(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                              char *reason);
int bg_config_parse_cipher_list(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                char *reason);
void bg_config_check_tls(bg_config_ctx *ctx);

/* config_auth.c: [auth] and [identity] claim_headers */
int bg_config_parse_realm(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                          char *reason);
int bg_config_parse_jwt_alg(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason);
int bg_config_parse_require(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason);
int bg_config_parse_claim_list(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                               char *reason);
int bg_config_parse_claim_headers(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                  char *reason);

/* config_units.c: units */
int bg_config_parse_int(const char *s, int64_t *out, char *reason);
int bg_config_parse_duration(const char *s, int64_t *out, char *reason);
int bg_config_parse_size(const char *s, size_t *out, char *reason);
int bg_config_parse_bool(const char *s, int *out);
void bg_config_format_duration(int64_t ms, char *buf, size_t len);
void bg_config_format_size(uint64_t n, char *buf, size_t len);

/* config_check.c: derived values, secret files and cross-field rules after parsing */
void bg_config_finish(bg_config_ctx *ctx);

#endif
