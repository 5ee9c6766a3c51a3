/* tls.c: the server TLS context of a worker generation, read by the master before fork. */
#include "busgate/config/tls_server.h"
#include "master.h"

int bg_master_tls_load(const bg_config *cfg, SSL_CTX **out, char *err)
{
    char reason[BG_ERR_LEN];
    bg_tls_key bad;

    *out = NULL;
    if (!bg_tls_listen_any(cfg))
        return BG_OK;
    *out = bg_tls_server_ctx_new(cfg, &bad, reason);
    if (*out != NULL)
        return BG_OK;
    bg_set_error(err, "[tls] %s = '%s': %s", bg_tls_key_name(bad), bg_tls_key_value(cfg, bad),
                 reason);
    return BG_ERR;
}
