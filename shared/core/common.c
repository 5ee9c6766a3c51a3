/* common.c: error buffers, clocks, bounded copies and randomness. */
#include "busgate/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "busgate/core/text.h"

void bg_set_error(char *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(err, BG_ERR_LEN, fmt, ap);
    va_end(ap);
}

static int64_t clock_us(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t bg_mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

int64_t bg_mono_ms(void)
{
    return clock_us(CLOCK_MONOTONIC) / 1000;
}

int64_t bg_wall_ms(void)
{
    return clock_us(CLOCK_REALTIME) / 1000;
}

int bg_strlcpy_checked(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);

    if (size == 0)
        return BG_ERR;
    if (len >= size) {
        memcpy(dst, src, size - 1);
        dst[size - 1] = '\0';
        return BG_ERR;
    }
    memcpy(dst, src, len + 1);
    return BG_OK;
}

int bg_consttime_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *pa = a, *pb = b;
    unsigned char diff = alen != blen;
    size_t i;

    /* Walk the longer input fully so timing does not depend on where they differ. */
    for (i = 0; i < alen; i++)
        diff |= pa[i] ^ (blen ? pb[i % blen] : 0);
    return diff == 0;
}

int bg_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return BG_ERR;
        }
        p += n;
        len -= (size_t)n;
    }
    return BG_OK;
}

int bg_random_id(char out[33])
{
    unsigned char raw[16];

    if (bg_random_bytes(raw, sizeof(raw)) != BG_OK)
        return BG_ERR;
    bg_hex_encode(raw, sizeof(raw), out);
    return BG_OK;
}
