/* bus_slot.c: hash slots, the cluster's slot map and redirections (bus_slot.h). */
#include "busgate/bus/bus_slot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the function the cluster
 * specification names; bitwise, since a key is short and this runs once per command. */
static uint16_t slot_crc16(const unsigned char *p, size_t len)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t bg_slot_of(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len), *close;

    if (open != NULL) {
        close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close != NULL && close > open + 1)
            return slot_crc16((const unsigned char *)open + 1, (size_t)(close - open - 1)) &
                   (BG_SLOTS - 1);
    }
    return slot_crc16((const unsigned char *)key, len) & (BG_SLOTS - 1);
}

void bg_slot_map_free(bg_slot_map *m)
{
    free(m->nodes);
    m->nodes = NULL;
    m->nnodes = 0;
    for (size_t i = 0; i < BG_SLOTS; i++)
        m->owner[i] = BG_SLOT_NONE;
}

/* The index of host:port among m's nodes, added when new; -1 when out of memory. */
static int slot_node_index(bg_slot_map *m, const char *host, size_t hlen, int port)
{
    bg_slot_node *grown;

    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i].port == port && strlen(m->nodes[i].host) == hlen &&
            memcmp(m->nodes[i].host, host, hlen) == 0)
            return (int)i;
    grown = realloc(m->nodes, (m->nnodes + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    m->nodes = grown;
    memcpy(grown[m->nnodes].host, host, hlen);
    grown[m->nnodes].host[hlen] = '\0';
    grown[m->nnodes].port = port;
    return (int)m->nnodes++;
}

/* One range [start, end, [host, port, ...], ...] of a CLUSTER SLOTS reply. */
static int slot_range(bg_slot_map *m, const redisReply *r, const char *seed_host, char *err)
{
    const redisReply *primary;
    const char *host;
    size_t hlen;
    int idx;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements < 2 ||
        r->element[2]->element[0]->type != REDIS_REPLY_STRING ||
        r->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
        goto bad;
    if (r->element[0]->integer < 0 || r->element[1]->integer >= BG_SLOTS ||
        r->element[0]->integer > r->element[1]->integer)
        goto bad;
    primary = r->element[2];
    host = primary->element[0]->str;
    hlen = primary->element[0]->len;
    if (hlen == 0 || (hlen == 1 && host[0] == '?')) {
        host = seed_host;
        hlen = strlen(seed_host);
    }
    if (hlen > BG_SLOT_HOST_MAX || primary->element[1]->integer < 1 ||
        primary->element[1]->integer > 65535)
        goto bad;
    idx = slot_node_index(m, host, hlen, (int)primary->element[1]->integer);
    if (idx < 0) {
        bg_set_error(err, "cluster slot map: out of memory");
        return BG_ERR;
    }
    for (long long s = r->element[0]->integer; s <= r->element[1]->integer; s++)
        m->owner[s] = (uint16_t)idx;
    return BG_OK;
bad:
    bg_set_error(err, "CLUSTER SLOTS: malformed slot range");
    return BG_ERR;
}

int bg_slot_map_from_slots(bg_slot_map *m, const redisReply *r, const char *seed_host, char *err)
{
    m->nodes = NULL;
    bg_slot_map_free(m);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        bg_set_error(err, "CLUSTER SLOTS: %s",
                     r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
        return BG_ERR;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (slot_range(m, r->element[i], seed_host, err) != BG_OK) {
            bg_slot_map_free(m);
            return BG_ERR;
        }
    }
    return BG_OK;
}

const bg_slot_node *bg_slot_map_node(const bg_slot_map *m, uint16_t slot)
{
    if (slot >= BG_SLOTS || m->owner[slot] == BG_SLOT_NONE)
        return NULL;
    return &m->nodes[m->owner[slot]];
}

size_t bg_slot_map_uncovered(const bg_slot_map *m)
{
    size_t n = 0;

    for (size_t i = 0; i < BG_SLOTS; i++)
        n += m->owner[i] == BG_SLOT_NONE;
    return n;
}

int bg_slot_redirect_parse(const char *err_reply, size_t len, bg_slot_redirect *out)
{
    char buf[BG_SLOT_HOST_MAX + 64], *colon, *end;
    unsigned long slot;
    long port;
    int skip;

    if (len >= sizeof(buf))
        return BG_ERR;
    memcpy(buf, err_reply, len);
    buf[len] = '\0';
    if (strncmp(buf, "MOVED ", 6) == 0)
        skip = 6, out->ask = 0;
    else if (strncmp(buf, "ASK ", 4) == 0)
        skip = 4, out->ask = 1;
    else
        return BG_ERR;
    slot = strtoul(buf + skip, &end, 10);
    if (end == buf + skip || *end != ' ' || slot >= BG_SLOTS)
        return BG_ERR;
    colon = strrchr(end + 1, ':'); /* the last one: an IPv6 address has its own */
    if (colon == NULL || colon == end + 1 || (size_t)(colon - end - 1) > BG_SLOT_HOST_MAX)
        return BG_ERR;
    port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        return BG_ERR;
    *colon = '\0';
    snprintf(out->to.host, sizeof(out->to.host), "%s", buf + skip + strcspn(buf + skip, " ") + 1);
    out->slot = (uint16_t)slot;
    out->to.port = (int)port;
    return BG_OK;
}

int bg_slot_map_set(bg_slot_map *m, uint16_t slot, const char *host, int port)
{
    int idx;

    if (slot >= BG_SLOTS || strlen(host) > BG_SLOT_HOST_MAX)
        return BG_ERR;
    idx = slot_node_index(m, host, strlen(host), port);
    if (idx < 0)
        return BG_ERR;
    m->owner[slot] = (uint16_t)idx;
    return BG_OK;
}
