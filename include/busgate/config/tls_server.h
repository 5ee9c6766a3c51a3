/* tls_server.h: the [tls] section as an OpenSSL server context for the TLS listeners. */
#ifndef BUSGATE_TLS_SERVER_H
#define BUSGATE_TLS_SERVER_H

#include <openssl/ssl.h>

#include "busgate/config/config.h"

/* Which [tls] key a failure is about. */
typedef enum {
    BG_TLS_KEY_NONE = 0,
    BG_TLS_KEY_CERTIFICATE,
    BG_TLS_KEY_CERTIFICATE_KEY,
    BG_TLS_KEY_CLIENT_CA,
    BG_TLS_KEY_CIPHERS,
    BG_TLS_KEY_CIPHERSUITES,
} bg_tls_key;

/* The key's name in the ini ("certificate", ...) and its value in cfg. */
const char *bg_tls_key_name(bg_tls_key key);
const char *bg_tls_key_value(const bg_config *cfg, bg_tls_key key);

/*
 * A server context from cfg->tls: TLS 1.2/1.3 as `protocols` says, the cipher lists,
 * the certificate chain and its key (checked to match), the client CA and verification
 * mode, ALPN "http/1.1", no renegotiation, partial writes and moving write buffers
 * (the connection code relies on both), session tickets shared by every process that
 * inherits the context. Reads the files now: the master calls it before forking
 * workers, and the config check calls it to validate the files.
 * NULL on failure, with the key at fault in *bad and the reason in err.
 */
SSL_CTX *bg_tls_server_ctx_new(const bg_config *cfg, bg_tls_key *bad, char *err);

/* 1 when some listen line has the ssl option. */
int bg_tls_listen_any(const bg_config *cfg);

#endif
