/* url_int.h: the URL parsing pieces shared by url.c, url_sentinel.c and url_cluster.c. */
#ifndef BUSGATE_URL_INT_H
#define BUSGATE_URL_INT_H

#include <stddef.h>

#include "busgate/core/url.h"

/* Percent-decodes s[0..len) into out (size bytes); what names the part in errors. */
int bg_url_decode(const char *s, size_t len, char *out, size_t size, const char *what, char *err);
/* "user:password", ":password" or "password" into out->user / out->password. */
int bg_url_userinfo(const char *s, size_t len, bg_valkey_addr *out, char *err);
/* "host", "host:port", "[v6]" or "[v6]:port" into out->host / out->port (default 6379). */
int bg_url_host_port(const char *s, size_t len, bg_valkey_addr *out, char *err);
/* A database number (the whole of s). */
int bg_url_db(const char *s, int *db, char *err);
/* What follows "valkey+sentinel://": sentinels, master name, parameters. */
int bg_url_parse_sentinel(const char *rest, bg_valkey_addr *out, char *err);
/* What follows "valkey+cluster://": seed nodes. */
int bg_url_parse_cluster(const char *rest, bg_valkey_addr *out, char *err);

#endif
