/* server.h: accepting clients on the inherited listen sockets, with the connection cap. */
#ifndef BUSGATE_SERVER_H
#define BUSGATE_SERVER_H

#include "worker_int.h"

/* Takes the listen fds (non-blocking, owned from now on) with their TLS flags (tls[i]:
 * served with wk->ctx->tls; tls may be NULL); accepts nothing yet. */
bg_server *bg_server_new(bg_wk *wk, const int *fds, const int *tls, int n, char *err);
/* Starts accepting (the worker is ready to serve); idempotent, a no-op once stopped. */
void bg_server_start(bg_server *s);
/* Stops accepting and closes the listen fds (graceful quit); idempotent. */
/* Stops accepting and closes this worker's listen fds. take_backlog: accept what
 * already waits in the backlog first (the master is gone, so no later worker will). */
void bg_server_stop(bg_server *s, int take_backlog);
void bg_server_free(bg_server *s);

#endif
