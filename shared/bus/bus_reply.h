/* bus_reply.h: replies built in blocks (bus_reply.c), for bus_conn.c and bus_async.c. */
#ifndef BUSGATE_BUS_REPLY_H
#define BUSGATE_BUS_REPLY_H

#include <hiredict/hiredict.h>

/* From now on the context's replies are built in blocks: whoever frees one must use
 * bg_bus_reply_free (an async context does, through the reader's freeObject). */
void bg_bus_reply_blocks(redictContext *c);

#endif
