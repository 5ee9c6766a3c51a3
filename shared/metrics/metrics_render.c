/* metrics_render.c: sums every metrics slot and writes the Prometheus text exposition format. */
#include "busgate/metrics/metrics.h"
#include "metrics_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing output buffer; failed is sticky so callers check once at the end. */
typedef struct render_buf {
    char *data;
    size_t len, cap;
    int failed;
} render_buf;

/* One service's counts from one slot, then merged across slots by name. */
typedef struct render_service {
    char name[BG_METRICS_SERVICE_LEN];
    uint64_t by_class[CODE_CLASSES];
    uint64_t counters[BG_METRIC_SVC_COUNTER_COUNT];
} render_service;

static const char *const class_names[CODE_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static void buf_grow(render_buf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 4096;
    char *p;

    while (cap < need)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return;
    }
    b->data = p;
    b->cap = cap;
}

static void buf_printf(render_buf *b, const char *fmt, ...) BG_PRINTF(2, 3);

static void buf_printf(render_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->data ? b->data + b->len : NULL, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        buf_grow(b, b->len + (size_t)n + 1);
        if (b->failed)
            return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static void buf_header(render_buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Copies one READY entry; the name was published with a release store. */
static int render_copy_entry(const metrics_service *e, render_service *out)
{
    uint64_t total = 0;
    int c;

    if (atomic_load_explicit(&e->state, memory_order_acquire) != ENTRY_READY)
        return 0;
    memcpy(out->name, e->name, sizeof(out->name));
    out->name[sizeof(out->name) - 1] = '\0';
    for (c = 0; c < CODE_CLASSES; c++) {
        out->by_class[c] = atomic_load_explicit(&e->by_class[c], memory_order_relaxed);
        total += out->by_class[c];
    }
    for (c = 0; c < BG_METRIC_SVC_COUNTER_COUNT; c++) {
        out->counters[c] = atomic_load_explicit(&e->counters[c], memory_order_relaxed);
        total += out->counters[c];
    }
    return total > 0;
}

static int render_cmp(const void *a, const void *b)
{
    return strcmp(((const render_service *)a)->name, ((const render_service *)b)->name);
}

static int render_entry_used(const metrics_service *e)
{
    int c;

    if (atomic_load_explicit(&e->state, memory_order_acquire) != ENTRY_READY)
        return 0;
    for (c = 0; c < CODE_CLASSES; c++) {
        if (atomic_load_explicit(&e->by_class[c], memory_order_relaxed) != 0)
            return 1;
    }
    for (c = 0; c < BG_METRIC_SVC_COUNTER_COUNT; c++) {
        if (atomic_load_explicit(&e->counters[c], memory_order_relaxed) != 0)
            return 1;
    }
    return 0;
}

/* Sized by a first pass over the used entries, so a scrape allocates what is in use
 * rather than room for every slot; an entry that appears in between waits for the
 * next scrape. */
static size_t render_count_used(const bg_metrics *m)
{
    size_t n = 0;
    int s, e;

    for (s = 0; s <= m->max_slots; s++) {
        for (e = 0; e < SLOT_ENTRIES; e++)
            n += (size_t)render_entry_used(&m->slots[s].services[e]);
    }
    return n;
}

/* Gathers every used entry of every slot, sorts by name and merges equal names in
 * place. Returns the number of distinct services, or -1 when out of memory. */
static long render_collect(const bg_metrics *m, render_service **out)
{
    size_t cap = render_count_used(m), n = 0, w = 0, i;
    render_service *all = malloc((cap ? cap : 1) * sizeof(*all));
    int s, e, c;

    if (all == NULL)
        return -1;
    for (s = 0; s <= m->max_slots && n < cap; s++) {
        for (e = 0; e < SLOT_ENTRIES && n < cap; e++)
            n += (size_t)render_copy_entry(&m->slots[s].services[e], &all[n]);
    }
    qsort(all, n, sizeof(*all), render_cmp);
    for (i = 0; i < n; i++) {
        if (w > 0 && strcmp(all[w - 1].name, all[i].name) == 0) {
            for (c = 0; c < CODE_CLASSES; c++)
                all[w - 1].by_class[c] += all[i].by_class[c];
            for (c = 0; c < BG_METRIC_SVC_COUNTER_COUNT; c++)
                all[w - 1].counters[c] += all[i].counters[c];
            continue;
        }
        all[w++] = all[i];
    }
    *out = all;
    return (long)w;
}

/* Names are [A-Za-z0-9._-] on the wire, but the label is escaped anyway so a bad
 * name can never break the exposition format. */
static void render_label_value(render_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            buf_printf(b, "\\n");
        else
            buf_printf(b, "%c", *v);
    }
}

static const struct {
    const char *name, *help;
} svc_counters[BG_METRIC_SVC_COUNTER_COUNT] = {
    {"busgate_backpressure_rejected_total",
     "Requests answered 503 because the service's backlog was past stream_maxlen, [limits] "
     "backlog_max or backlog_max_age."},
    {"busgate_breaker_rejected_total",
     "Requests answered 503 because the service's circuit breaker was open or half-open."},
};

/* The per-service refusal counters, every service that has a count of any kind. */
static void render_service_counters(const render_service *svc, long n, render_buf *b)
{
    for (int c = 0; c < BG_METRIC_SVC_COUNTER_COUNT; c++) {
        buf_header(b, svc_counters[c].name, "counter", svc_counters[c].help);
        for (long i = 0; i < n; i++) {
            buf_printf(b, "%s{service=\"", svc_counters[c].name);
            render_label_value(b, svc[i].name);
            buf_printf(b, "\"} %llu\n", (unsigned long long)svc[i].counters[c]);
        }
    }
}

static int render_requests(const bg_metrics *m, render_buf *b)
{
    render_service *svc = NULL;
    long n = render_collect(m, &svc), i;
    int c;

    if (n < 0)
        return BG_ERR;
    buf_header(b, "busgate_requests_total", "counter",
               "HTTP requests answered, by service and status class.");
    for (i = 0; i < n; i++) {
        for (c = 0; c < CODE_CLASSES; c++) {
            buf_printf(b, "busgate_requests_total{service=\"");
            render_label_value(b, svc[i].name);
            buf_printf(b, "\",code_class=\"%s\"} %llu\n", class_names[c],
                       (unsigned long long)svc[i].by_class[c]);
        }
    }
    render_service_counters(svc, n, b);
    free(svc);
    return BG_OK;
}

static void render_histogram(const bg_metrics *m, render_buf *b)
{
    uint64_t buckets[BG_METRICS_BUCKETS + 1] = {0}, sum_us = 0, cumulative = 0;
    int s, i;

    for (s = 0; s <= m->max_slots; s++) {
        for (i = 0; i <= BG_METRICS_BUCKETS; i++)
            buckets[i] += atomic_load_explicit(&m->slots[s].buckets[i], memory_order_relaxed);
        sum_us += atomic_load_explicit(&m->slots[s].duration_sum_us, memory_order_relaxed);
    }
    buf_header(b, "busgate_request_duration_seconds", "histogram",
               "Time from a request's head to its response, at the gateway.");
    for (i = 0; i < BG_METRICS_BUCKETS; i++) {
        cumulative += buckets[i];
        buf_printf(b, "busgate_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                   (double)bg_metrics_bucket_us[i] / 1e6, (unsigned long long)cumulative);
    }
    /* _count is the +Inf bucket as read here, so the two always agree. */
    cumulative += buckets[BG_METRICS_BUCKETS];
    buf_printf(b, "busgate_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
               (unsigned long long)cumulative);
    buf_printf(b, "busgate_request_duration_seconds_sum %.6f\n", (double)sum_us / 1e6);
    buf_printf(b, "busgate_request_duration_seconds_count %llu\n", (unsigned long long)cumulative);
}

static uint64_t render_sum_counter(const bg_metrics *m, bg_metric_counter c)
{
    uint64_t sum = 0;
    int s;

    for (s = 0; s <= m->max_slots; s++)
        sum += atomic_load_explicit(&m->slots[s].counters[c], memory_order_relaxed);
    return sum;
}

static void render_ratelimit(const bg_metrics *m, render_buf *b)
{
    buf_header(b, "busgate_ratelimit_denied_total", "counter",
               "Requests answered 429 by a rate limit.");
    buf_printf(b, "busgate_ratelimit_denied_total %llu\n",
               (unsigned long long)render_sum_counter(m, BG_METRIC_RATELIMIT_DENIED));
    buf_header(b, "busgate_ratelimit_failopen_total", "counter",
               "Requests let through uncounted because Valkey did not answer (cluster mode).");
    buf_printf(b, "busgate_ratelimit_failopen_total %llu\n",
               (unsigned long long)render_sum_counter(m, BG_METRIC_RATELIMIT_FAILOPEN));
    buf_header(b, "busgate_ratelimit_evictions_total", "counter",
               "Rate limit buckets still refilling that were evicted from the full local table.");
    buf_printf(b, "busgate_ratelimit_evictions_total %llu\n",
               (unsigned long long)render_sum_counter(m, BG_METRIC_RATELIMIT_EVICTED));
}

static void render_scalars(const bg_metrics *m, render_buf *b)
{
    int64_t inflight = 0;
    int s;

    for (s = 0; s <= m->max_slots; s++)
        inflight += atomic_load_explicit(&m->slots[s].inflight, memory_order_relaxed);
    /* A reset racing with a decrement can dip below zero for a moment. */
    if (inflight < 0)
        inflight = 0;
    buf_header(b, "busgate_inflight_requests", "gauge",
               "Requests dispatched to a service and not answered yet.");
    buf_printf(b, "busgate_inflight_requests %lld\n", (long long)inflight);
    buf_header(b, "busgate_worker_restarts_total", "counter",
               "Worker processes restarted by the master after they died.");
    buf_printf(b, "busgate_worker_restarts_total %llu\n",
               (unsigned long long)render_sum_counter(m, BG_METRIC_WORKER_RESTARTS));
    buf_header(b, "busgate_bus_reconnects_total", "counter",
               "Reconnections to Valkey after a lost connection.");
    buf_printf(b, "busgate_bus_reconnects_total %llu\n",
               (unsigned long long)render_sum_counter(m, BG_METRIC_BUS_RECONNECTS));
    buf_header(b, "busgate_dead_letters_total", "counter",
               "Bus entries moved to a dead-letter stream.");
    buf_printf(b, "busgate_dead_letters_total %llu\n",
               (unsigned long long)render_sum_counter(m, BG_METRIC_DEAD_LETTERS));
    render_ratelimit(m, b);
}

int bg_metrics_render_prometheus(const bg_metrics *m, char **out, size_t *len)
{
    render_buf b = {0};

    if (render_requests(m, &b) != BG_OK)
        goto fail;
    render_histogram(m, &b);
    render_scalars(m, &b);
    if (b.failed || b.data == NULL)
        goto fail;
    *out = b.data;
    *len = b.len;
    return BG_OK;

fail:
    free(b.data);
    *out = NULL;
    *len = 0;
    return BG_ERR;
}
