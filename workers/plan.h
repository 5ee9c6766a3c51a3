/* plan.h: what answers a request whose head just arrived (the gateway's decision, not HTTP's). */
#ifndef BUSGATE_PLAN_H
#define BUSGATE_PLAN_H

#include "exchange.h"
#include "http_parser.h"

/* Normalises the path, then picks an admin endpoint, a route (x->match, x->meta) or an
 * error (x->err_*). The connection calls it through its handler table. */
void bg_plan_request(bg_wk *wk, bg_xchg *x, const bg_http_request *req);

#endif
