/* url.h: parse a Valkey connection URL (valkey://, valkeys://, redis://, rediss://, unix://). */
#ifndef BUSGATE_URL_H
#define BUSGATE_URL_H

#include "busgate/common.h"

#define BG_VALKEY_DEFAULT_PORT 6379

typedef struct bg_valkey_addr {
    int tls;     /* valkeys:// or rediss:// */
    int is_unix; /* unix:///path */
    char host[256];
    int port; /* default port 6379 */
    char unix_path[108];
    char user[128];
    char password[256]; /* from the URL userinfo (percent-decoded) */
    int db;             /* /N path (or ?db=N for unix://), default 0 */
} bg_valkey_addr;

/* Accepted forms:
 *   valkey://[user[:password]@]host[:port][/db]     (also redis://)
 *   valkeys://[user[:password]@]host[:port][/db]    (TLS; also rediss://)
 *   unix://[user[:password]@]/path/to/socket[?db=N]
 * host may be a bracketed IPv6 literal ("[::1]"). A userinfo without ':' is a
 * password alone (legacy "redis://:secret@host" and "redis://secret@host" both
 * mean password auth as the default user). Percent-escapes are decoded in user,
 * password and unix path. Returns BG_OK, or BG_ERR with the reason in err. */
int bg_valkey_url_parse(const char *url, bg_valkey_addr *out, char *err);

#endif
