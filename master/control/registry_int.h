/* registry_int.h: registry internals shared by the shared/registry*.c files. */
#ifndef BUSGATE_REGISTRY_INT_H
#define BUSGATE_REGISTRY_INT_H

#include "busgate/control/registry.h"

struct bg_registry {
    bg_reg_opts o;
    bg_rt *rt;           /* not owned */
    bg_reg_conn **conns; /* registration order */
    size_t n, cap;
    size_t nservices;    /* distinct service names among conns */
    size_t nendpoints;   /* endpoint declarations over all conns */
    uint64_t next_order; /* registration sequence */
    uint64_t next_undo;  /* order of endpoint updates since the last publish */
    int dirty, hb_dirty; /* routing changed / only heartbeat times changed */
    unsigned long publishes;
    /* publish input, reused */
    bg_rt_connection_in *cin;
    size_t cin_cap;
    bg_rt_endpoint_in *ein;
    size_t ein_cap;
    /* route conflicts of the last good publish and of the one being built,
     * as "METHOD TEMPLATE CONNECTION": each is logged once while it lasts */
    char **conflicts, **building;
    size_t nconflicts, nbuilding, cap_building;
};

/* registry_endpoints.c */
void bg_reg_endpoints_free(bg_reg_endpoint *eps, size_t n);
void bg_reg_conn_free(bg_reg_conn *c);
/* Checks every endpoint of an ENDPOINTS_UPDATE as the table will and
 * converts them; known is the connection it replaces (NULL when new), for the
 * capacity check. */
int bg_reg_endpoints_convert(const bg_registry *r, const bg_frame *f, const bg_reg_conn *known,
                             bg_reg_endpoint **out, size_t *nout, char *err);
/* Installs eps (taken over) as c's endpoints, keeping the old ones for undo. */
void bg_reg_replace_endpoints(bg_registry *r, bg_reg_conn *c, bg_reg_endpoint *eps, size_t n,
                              json_t *openapi);

/* Puts back the endpoints c had at the last publish. */
void bg_reg_undo_endpoints(bg_registry *r, bg_reg_conn *c);
/* After a good publish the saved lists are history. */
void bg_reg_undo_forget(bg_registry *r);

/* registry_publish.c */
void bg_reg_on_conflict(void *ud, const char *method, const char *path_template,
                        const char *winner_service, const char *loser_service,
                        const char *loser_connection_id);
void bg_reg_conflicts_free(bg_registry *r);

#endif
