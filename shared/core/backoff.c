/* backoff.c: exponential backoff with full jitter for reconnects. */
#include "busgate/core/backoff.h"

#include "busgate/common.h"

int64_t bg_backoff_ms(unsigned failures, int64_t min_ms, int64_t max_ms)
{
    int64_t ceiling = min_ms;
    uint32_t dice = 0;

    while (failures-- > 0 && ceiling < max_ms)
        ceiling *= 2;
    if (ceiling > max_ms)
        ceiling = max_ms;
    if (bg_random_bytes(&dice, sizeof(dice)) != BG_OK)
        dice = 0;
    return min_ms + (int64_t)(dice % (uint32_t)(ceiling - min_ms + 1));
}
