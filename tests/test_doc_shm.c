/* test_doc_shm.c: the shared-memory document: round trip, generations, a document over the
 * capacity, a read-only reader, and a forked reader that never sees a torn document while
 * the writer keeps publishing. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/routing/doc_shm.h"

Test(doc_shm, nothing_published_yet)
{
    char err[BG_ERR_LEN] = "", *out = (char *)1;
    bg_doc *d = bg_doc_create(1024, err);
    uint64_t gen = 99;
    size_t len = 99;

    cr_assert_not_null(d, "%s", err);
    cr_assert_eq(bg_doc_generation(d), 0);
    cr_assert_eq(bg_doc_read(d, &out, &len, &gen), BG_DOC_NONE);
    cr_assert_null(out);
    cr_assert_geq(bg_doc_mapping_size(d), 2 * 1024);
    cr_assert_eq(bg_doc_capacity(d), 1024);
    bg_doc_destroy(d);
}

Test(doc_shm, round_trip_and_generations)
{
    char err[BG_ERR_LEN] = "", *out = NULL;
    bg_doc *d = bg_doc_create(64, err);
    uint64_t gen = 0;
    size_t len = 0;

    cr_assert_eq(bg_doc_publish(d, "{\"a\":1}", 7, err), BG_OK, "%s", err);
    cr_assert_eq(bg_doc_generation(d), 1);
    cr_assert_eq(bg_doc_read(d, &out, &len, &gen), BG_DOC_OK);
    cr_assert_eq(len, 7);
    cr_assert_eq(gen, 1);
    cr_assert_str_eq(out, "{\"a\":1}", "NUL-terminated copy");
    free(out);
    cr_assert_eq(bg_doc_publish(d, "", 0, err), BG_OK);
    cr_assert_eq(bg_doc_read(d, &out, &len, &gen), BG_DOC_OK);
    cr_assert_eq(len, 0);
    cr_assert_eq(gen, 2);
    cr_assert_str_eq(out, "");
    free(out);
    bg_doc_destroy(d);
}

Test(doc_shm, a_document_over_the_capacity_is_refused_not_left_stale)
{
    char err[BG_ERR_LEN] = "", big[200], *out = NULL;
    bg_doc *d = bg_doc_create(100, err);
    uint64_t gen = 0;
    size_t len = 0;

    memset(big, 'x', sizeof(big));
    cr_assert_eq(bg_doc_publish(d, "old", 3, err), BG_OK);
    cr_assert_eq(bg_doc_publish(d, big, sizeof(big), err), BG_ERR);
    cr_assert(strstr(err, "200 bytes") != NULL, "%s", err);
    cr_assert_eq(bg_doc_read(d, &out, &len, &gen), BG_DOC_TOO_LARGE);
    cr_assert_null(out);
    cr_assert_eq(len, 200);
    cr_assert_eq(bg_doc_publish(d, big, 100, err), BG_OK, "exactly the capacity fits");
    cr_assert_eq(bg_doc_read(d, &out, &len, &gen), BG_DOC_OK);
    cr_assert_eq(len, 100);
    free(out);
    bg_doc_destroy(d);
}

/* Document number n: its length and every byte follow from n, so a mix of two is seen. */
static size_t doc_fill(char *buf, size_t cap, unsigned long n)
{
    size_t len = 16 + (n * 7919) % (cap - 16);

    memset(buf, 'a' + (int)(n % 26), len);
    snprintf(buf, 16, "%015lu", n);
    buf[15] = ':';
    return len;
}

static int doc_check(const char *p, size_t len, size_t cap)
{
    char want[16];
    unsigned long n;

    if (len < 16 || sscanf(p, "%15lu", &n) != 1)
        return 0;
    snprintf(want, sizeof(want), "%015lu", n);
    if (memcmp(p, want, 15) != 0 || len != 16 + (n * 7919) % (cap - 16))
        return 0;
    for (size_t i = 16; i < len; i++)
        if (p[i] != 'a' + (int)(n % 26))
            return 0;
    return 1;
}

/* The child reads (read-only view) a fixed number of times; exit 0 when every document it
 * got was whole, 1 at the first torn one, 2 when it could not protect its view. */
static void doc_reader(bg_doc *d, size_t cap)
{
    char err[BG_ERR_LEN], *out;
    unsigned long ok = 0;
    uint64_t gen;
    size_t len;

    if (bg_doc_protect_readonly(d, err) != BG_OK)
        _exit(2);
    for (int i = 0; i < 200000; i++) {
        bg_doc_status st = bg_doc_read(d, &out, &len, &gen);
        if (st == BG_DOC_OK) {
            if (!doc_check(out, len, cap))
                _exit(1);
            ok++;
        }
        free(out);
    }
    _exit(ok > 0 ? 0 : 3);
}

Test(doc_shm, a_concurrent_reader_never_sees_a_torn_document, .timeout = 60)
{
    enum { CAP = 8192 };
    char err[BG_ERR_LEN] = "", buf[CAP];
    bg_doc *d = bg_doc_create(CAP, err);
    unsigned long n = 0;
    int status = 0;
    pid_t pid;

    cr_assert_not_null(d, "%s", err);
    bg_doc_publish(d, buf, doc_fill(buf, CAP, n++), err);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        doc_reader(d, CAP);
    /* bounded: the reader does a fixed number of reads */
    while (waitpid(pid, &status, WNOHANG) == 0 && n < 50000000ul)
        cr_assert_eq(bg_doc_publish(d, buf, doc_fill(buf, CAP, n++), err), BG_OK);
    if (n >= 50000000ul) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    cr_assert(WIFEXITED(status), "reader died: status %d", status);
    cr_assert_eq(WEXITSTATUS(status), 0, "reader exit %d (1 = torn document)", WEXITSTATUS(status));
    cr_log_info("%lu publications during the reads", n);
    bg_doc_destroy(d);
}
