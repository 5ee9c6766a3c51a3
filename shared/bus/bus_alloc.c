/* bus_alloc.c: hiredict's allocations through the thread cache. glibc (2.36 here) serves
 * calloc() without its per-thread cache, and hiredict callocs every reply object: in a
 * worker that was ~6% of its CPU in _int_malloc, with malloc_consolidate on top. */
#include <hiredict/alloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/bus/bus.h"

static void *bus_calloc(size_t n, size_t size)
{
    void *p;

    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    p = malloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void bg_bus_alloc_cached(void)
{
    hiredictAllocFuncs ha = {
        .mallocFn = malloc,
        .callocFn = bus_calloc,
        .reallocFn = realloc,
        .strdupFn = strdup,
        .freeFn = free,
    };

    hiredictSetAllocators(&ha);
}
