/* bus_config.c: connection options taken from a loaded configuration's [valkey] section. */
#include "busgate/bus/bus.h"
#include "busgate/config/config.h"

void bg_bus_opts_from_config(bg_bus_opts *o, const bg_config *cfg, const char *client_name)
{
    bg_bus_opts_init(o);
    o->addr = cfg->valkey.addr;
    o->connect_timeout_ms = cfg->valkey.connect_timeout_ms;
    o->command_timeout_ms = cfg->valkey.command_timeout_ms;
    o->tls_ca_file = cfg->valkey.tls_ca_file;
    o->tls_cert_file = cfg->valkey.tls_cert_file;
    o->tls_key_file = cfg->valkey.tls_key_file;
    o->tls_server_name = cfg->valkey.tls_server_name;
    o->tls_verify = cfg->valkey.tls_verify;
    o->client_name = client_name;
}
