/* common.h: error-buffer convention, clocks and small helpers used everywhere. */
#ifndef BUSGATE_COMMON_H
#define BUSGATE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define BUSGATE_VERSION "0.1.0"

#define BG_OK 0
#define BG_ERR -1

/* Low-level functions return BG_OK/BG_ERR and describe a failure in a
 * caller-supplied buffer of BG_ERR_LEN bytes ("connect: Connection refused");
 * only the caller logs. err may be NULL. */
#define BG_ERR_LEN 256

#define BG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BG_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* A byte string that is not NUL-terminated (bus fields are binary-safe). */
typedef struct bg_bytes {
    const char *ptr;
    size_t len;
} bg_bytes;

/* One field of a stream entry: a name and a value, both binary-safe. */
typedef struct bg_field {
    bg_bytes name;
    bg_bytes value;
} bg_field;

void bg_set_error(char *err, const char *fmt, ...) BG_PRINTF(2, 3);

/* Monotonic clock: all timers and durations. */
int64_t bg_mono_ms(void);
int64_t bg_mono_us(void);
/* Wall clock in Unix milliseconds: only for values that cross the bus (deadlines). */
int64_t bg_wall_ms(void);

/* Bounded copy that always terminates; returns BG_ERR if src did not fit. */
int bg_strlcpy_checked(char *dst, const char *src, size_t size);

/* Constant-time comparison of two byte strings (admin tokens). */
int bg_consttime_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Random bytes from getrandom(); used for ids and jitter. */
int bg_random_bytes(void *buf, size_t len);
/* A random identifier of 32 hex digits, NUL-terminated into out[33]. */
int bg_random_id(char out[33]);

#endif
