/* test_cpu_affinity.c: [gateway] worker_cpu_affinity = auto pins worker i of a generation to
 * the i-th CPU the master may use; off (the default) leaves them free. */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proc_harness.h"
#include "valkey_harness.h"

static bgt_valkey vk;
static bgt_gw gw;

static void start(const char *extra)
{
    bgt_gw_opts o;

    cr_assert_eq(bgt_valkey_start(&vk, NULL), 0, "valkey-server did not start");
    o = (bgt_gw_opts){.valkey_url = vk.url, .workers = 2, .extra_gateway = extra};
    cr_assert_eq(bgt_gw_init(&gw, &o), 0);
    cr_assert_eq(bgt_gw_start(&gw), 0, "busgated did not start (see %s)", gw.log);
    cr_assert_eq(bgt_gw_wait_workers(&gw, 2, 10000), 2, "2 workers expected");
}

static void down(void)
{
    bgt_gw_stop(&gw);
    bgt_valkey_stop(&vk);
}

/* The CPUs pid may run on, as /proc prints them ("0-1", "3"). */
static void cpus_of(pid_t pid, char *out, size_t len)
{
    char path[64], line[256];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    out[0] = '\0';
    f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
            snprintf(out, len, "%s", line + 18 + strspn(line + 18, " \t"));
            out[strcspn(out, "\n")] = '\0';
        }
    }
    fclose(f);
}

static int ncpus(void)
{
    cpu_set_t s;

    return sched_getaffinity(0, sizeof(s), &s) == 0 ? CPU_COUNT(&s) : 1;
}

Test(cpu_affinity, auto_pins_each_worker_to_its_own_cpu, .fini = down, .timeout = 60)
{
    pid_t w[BGT_GW_MAX_WORKERS];
    char a[64], b[64];

    start("worker_cpu_affinity = auto\n");
    cr_assert_eq(bgt_gw_workers(&gw, w, BGT_GW_MAX_WORKERS), 2);
    cpus_of(w[0], a, sizeof(a));
    cpus_of(w[1], b, sizeof(b));
    cr_assert(strpbrk(a, "-,") == NULL && a[0] != '\0', "worker 1 on one CPU, not '%s'", a);
    cr_assert(strpbrk(b, "-,") == NULL && b[0] != '\0', "worker 2 on one CPU, not '%s'", b);
    if (ncpus() >= 2)
        cr_assert_str_neq(a, b, "two CPUs, two workers: one each");
    cr_assert_eq(bgt_gw_wait_log(&gw, "bound to CPU", 2, 5000), 0);
}

Test(cpu_affinity, off_by_default, .fini = down, .timeout = 60)
{
    pid_t w[BGT_GW_MAX_WORKERS];
    char self[64], a[64];

    start(NULL);
    cr_assert_eq(bgt_gw_workers(&gw, w, BGT_GW_MAX_WORKERS), 2);
    cpus_of(getpid(), self, sizeof(self));
    cpus_of(w[0], a, sizeof(a));
    cr_assert_str_eq(a, self, "an unpinned worker may run where its master may");
    cr_assert_eq(bgt_gw_log_count(&gw, "bound to CPU"), 0);
}
