/* bus_view.h: what the master learns of the bus, shared with workers: whether the gateway
 * has heard the fleet since it started, and each service's request backlog. */
#ifndef BUSGATE_BUS_VIEW_H
#define BUSGATE_BUS_VIEW_H

#include <stdint.h>

#include "busgate/common.h"

/*
 * An anonymous MAP_SHARED mapping made by the master before the first fork. The master
 * writes the samples; workers read them without locks and only add to a counter of the
 * requests they sent. Each service entry is a seqlock: a
 * reader that sees the sequence change retries, a few times, then goes without.
 * Services get an entry on their first sample and keep it while the master lives;
 * past BG_BV_MAX_SERVICES services a new one is not sampled (its backlog is unchecked).
 */
typedef struct bg_busview bg_busview;

#define BG_BV_MAX_SERVICES 1024

/* One sample of a service's request stream (XINFO GROUPS, XPENDING, XRANGE, XINFO STREAM). */
typedef struct bg_bv_sample {
    int64_t lag;         /* entries no group has been given yet (the largest group lag) */
    int64_t pending;     /* entries given to an instance and not acked (all groups) */
    int64_t consumers;   /* consumers in the service's groups */
    int64_t groups;      /* consumer groups on the stream; 0: nobody reads it */
    uint64_t dead_added; /* entries ever added to its dead-letter stream */
    int64_t oldest_ms;   /* age of the oldest request waiting or pending; 0: none */
    int64_t sampled_ms;  /* monotonic time of the sample */
    int64_t added_at;    /* bg_bv_added just before the sample was taken */
} bg_bv_sample;

bg_busview *bg_bv_create(char *err);
void bg_bv_destroy(bg_busview *v);

/* The master has heard the fleet since it started (the startup resync had its time). */
void bg_bv_set_warm(bg_busview *v);
int bg_bv_warm(const bg_busview *v);

/* Master: stores the newest sample of service. BG_ERR when the table is full. */
int bg_bv_put(bg_busview *v, const char *service, const bg_bv_sample *s);
/* Workers: the newest sample, or BG_ERR when there is none (or it was being written). */
int bg_bv_get(const bg_busview *v, const char *service, bg_bv_sample *out);
/* Workers: n REQUESTs were added to service's stream (counted only once the service has
 * an entry). The master reads the running total before each sample, so a worker knows
 * what came after it: lag + pending + (bg_bv_added now - added_at). */
void bg_bv_add(bg_busview *v, const char *service, int64_t n);
int64_t bg_bv_added(const bg_busview *v, const char *service);
/* Visits every sampled service (metrics). */
typedef void bg_bv_visit_fn(void *ud, const char *service, const bg_bv_sample *s);
void bg_bv_each(const bg_busview *v, bg_bv_visit_fn *fn, void *ud);

#endif
