/* backoff.h: the retry delay every reconnecting client here uses. */
#ifndef BUSGATE_BACKOFF_H
#define BUSGATE_BACKOFF_H

#include <stdint.h>

/* Full jitter above a floor: uniform in [min_ms, min(max_ms, min_ms * 2^failures)]. The
 * floor bounds the attempts per second whatever the dice say. */
int64_t bg_backoff_ms(unsigned failures, int64_t min_ms, int64_t max_ms);

#endif
