/* doc_shm.h: one generated document (the aggregated OpenAPI), written by the master into
 * shared memory and copied out by workers without locks. */
#ifndef BUSGATE_DOC_SHM_H
#define BUSGATE_DOC_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

/*
 * An anonymous MAP_SHARED mapping made by the master before the first fork:
 * a header (active copy index, generation) and two copies of at most
 * max_bytes each, every copy under its own sequence number, the scheme of
 * the routing table (docs/routing.md): the writer fills the inactive copy
 * (sequence odd while it writes), then flips `active`; a reader copies the
 * active one into private memory and keeps it only if the sequence did not
 * change meanwhile. Lengths are bounds-checked against the capacity kept in
 * the reader's private handle, so a torn read can fail, never fault. Workers
 * never wait for the master: after BG_DOC_READ_RETRIES attempts they give up.
 */

#define BG_DOC_READ_RETRIES 16

typedef struct bg_doc bg_doc;

typedef enum {
    BG_DOC_OK = 0,
    BG_DOC_NONE,      /* nothing published yet */
    BG_DOC_TOO_LARGE, /* the last document did not fit: *len says how large it was */
    BG_DOC_BUSY,      /* rewritten during every attempt (or out of memory): retry later */
} bg_doc_status;

/* Creates the mapping (call before fork). max_bytes: capacity of one copy. */
bg_doc *bg_doc_create(size_t max_bytes, char *err);
void bg_doc_destroy(bg_doc *d);
/* In a worker, before its seccomp filter: its view becomes read-only. */
int bg_doc_protect_readonly(bg_doc *d, char *err);
size_t bg_doc_capacity(const bg_doc *d);
/* Bytes of address space of the mapping (for logs). */
size_t bg_doc_mapping_size(const bg_doc *d);

/* Writer (one thread of the master). Replaces the document with data[0..len). A
 * document larger than the capacity is not stored: readers get BG_DOC_TOO_LARGE
 * (a stale document would still list services that are gone); BG_ERR with err. */
int bg_doc_publish(bg_doc *d, const char *data, size_t len, char *err);

/* Generation of the last publication, 0 = none. A reader that cached a copy compares
 * this first and copies again only when it changed. */
uint64_t bg_doc_generation(const bg_doc *d);
/* Copies the current document into *out (malloc'd, NUL-terminated, caller frees) with
 * its length and generation. For BG_DOC_TOO_LARGE *len is the size refused; for the
 * other statuses *out is NULL. */
bg_doc_status bg_doc_read(const bg_doc *d, char **out, size_t *len, uint64_t *generation);

#endif
