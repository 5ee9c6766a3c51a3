/* test_breaker.c: the shared circuit-breaker table as a state machine, from raw inputs
 * (admissions and verdicts at chosen times), and one breaker seen by two processes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/routing/breaker.h"

static bg_breaker *tbl;
static int64_t t0;
static const bg_brk_params P = {
    .failures = 3, .window_ms = 10000, .cooldown_ms = 5000, .probes = 2, .probe_timeout_ms = 30000};

static void setup(void)
{
    char err[BG_ERR_LEN];

    tbl = bg_brk_create(err);
    cr_assert_not_null(tbl, "%s", err);
    cr_assert_eq(bg_brk_ensure(tbl, "svc"), BG_OK);
    t0 = bg_mono_ms();
}

static void teardown(void)
{
    bg_brk_destroy(tbl);
}

TestSuite(breaker, .init = setup, .fini = teardown);

static bg_brk_state state(void)
{
    bg_brk_info i;

    cr_assert_eq(bg_brk_get(tbl, "svc", &i), BG_OK);
    return i.state;
}

static uint64_t opens(void)
{
    bg_brk_info i;

    cr_assert_eq(bg_brk_get(tbl, "svc", &i), BG_OK);
    return i.opens;
}

/* Admits one request at t0 + at; returns 1 when it passed (ticket in *t). */
static int admit(int64_t at, bg_brk_ticket *t, int64_t *retry)
{
    int64_t r = 0;
    int ok = bg_brk_admit(tbl, "svc", &P, t0 + at, t, &r);

    if (retry != NULL)
        *retry = r;
    return ok;
}

/* One request admitted and answered at t0 + at. */
static void call(int64_t at, int failed)
{
    bg_brk_ticket t;

    cr_assert_eq(admit(at, &t, NULL), 1, "refused at +%lld", (long long)at);
    bg_brk_result(tbl, "svc", &P, &t, failed, t0 + at);
}

static void trip(int64_t at)
{
    for (int i = 0; i < P.failures; i++)
        call(at, 1);
    cr_assert_eq(state(), BG_BRK_OPEN);
}

Test(breaker, off_or_unknown_service_always_passes)
{
    bg_brk_params off = P;
    bg_brk_ticket t;
    int64_t r;

    off.failures = 0;
    cr_assert_eq(bg_brk_admit(tbl, "svc", &off, t0, &t, &r), 1);
    cr_assert_eq(t.kind, BG_BRK_T_NONE, "nothing to report when off");
    cr_assert_eq(bg_brk_admit(tbl, "never-seen", &P, t0, &t, &r), 1);
    cr_assert_eq(t.kind, BG_BRK_T_NONE);
    cr_assert_eq(bg_brk_admit(NULL, "svc", &P, t0, &t, &r), 1);
}

Test(breaker, consecutive_failures_open_it_and_a_success_resets_the_run)
{
    call(0, 1);
    call(1, 1);
    call(2, 0); /* the run is broken */
    call(3, 1);
    call(4, 1);
    cr_assert_eq(state(), BG_BRK_CLOSED, "two in a row are not three");
    call(5, 1);
    cr_assert_eq(state(), BG_BRK_OPEN);
    cr_assert_eq(opens(), 1);
}

Test(breaker, failures_spread_beyond_the_window_start_a_new_run)
{
    call(0, 1);
    call(6000, 1);
    call(10001, 1); /* the run began at 0: more than window ago, so this one starts anew */
    cr_assert_eq(state(), BG_BRK_CLOSED);
    call(12000, 1);
    call(13000, 1);
    cr_assert_eq(state(), BG_BRK_OPEN, "10001, 12000, 13000 fall in one window");
}

Test(breaker, open_refuses_with_what_is_left_of_the_cooldown)
{
    bg_brk_ticket t;
    int64_t retry;

    trip(100);
    cr_assert_eq(admit(100, &t, &retry), 0);
    cr_assert_eq(retry, 5000);
    cr_assert_eq(admit(4700, &t, &retry), 0);
    cr_assert_eq(retry, 1000, "never less than a second");
    cr_assert_eq(state(), BG_BRK_OPEN);
}

Test(breaker, half_open_lets_probes_through_and_their_successes_close_it)
{
    bg_brk_ticket a, b, c;
    int64_t retry;

    trip(0);
    cr_assert_eq(admit(5000, &a, NULL), 1, "the cool-down is over");
    cr_assert_eq(a.kind, BG_BRK_T_PROBE);
    cr_assert_eq(state(), BG_BRK_HALF_OPEN);
    cr_assert_eq(admit(5001, &b, NULL), 1);
    cr_assert_eq(b.kind, BG_BRK_T_PROBE);
    cr_assert_eq(admit(5002, &c, &retry), 0, "only two probes");
    cr_assert_eq(retry, 1000);
    bg_brk_result(tbl, "svc", &P, &a, 0, t0 + 5010);
    cr_assert_eq(state(), BG_BRK_HALF_OPEN, "one success of two");
    bg_brk_result(tbl, "svc", &P, &b, 0, t0 + 5020);
    cr_assert_eq(state(), BG_BRK_CLOSED);
    call(5030, 0);
    cr_assert_eq(opens(), 1);
}

Test(breaker, a_failed_probe_opens_it_again)
{
    bg_brk_ticket a, b;
    int64_t retry;

    trip(0);
    cr_assert_eq(admit(6000, &a, NULL), 1);
    cr_assert_eq(admit(6000, &b, NULL), 1);
    bg_brk_result(tbl, "svc", &P, &a, 1, t0 + 6100);
    cr_assert_eq(state(), BG_BRK_OPEN);
    cr_assert_eq(opens(), 2);
    cr_assert_eq(admit(6200, &a, &retry), 0);
    cr_assert_eq(retry, 4900, "a new cool-down from the failed probe");
    bg_brk_result(tbl, "svc", &P, &b, 0, t0 + 6300);
    cr_assert_eq(state(), BG_BRK_OPEN, "the other probe's late success does not close it");
}

Test(breaker, results_of_requests_admitted_before_a_transition_are_ignored)
{
    bg_brk_ticket old[5], p1, p2;

    for (int i = 0; i < 5; i++)
        cr_assert_eq(admit(0, &old[i], NULL), 1);
    for (int i = 0; i < 3; i++)
        bg_brk_result(tbl, "svc", &P, &old[i], 1, t0 + 10);
    cr_assert_eq(state(), BG_BRK_OPEN);
    bg_brk_result(tbl, "svc", &P, &old[3], 0, t0 + 20);
    cr_assert_eq(state(), BG_BRK_OPEN, "a success while open changes nothing");
    cr_assert_eq(admit(5010, &p1, NULL), 1);
    cr_assert_eq(admit(5010, &p2, NULL), 1);
    bg_brk_result(tbl, "svc", &P, &old[4], 1, t0 + 5020);
    cr_assert_eq(state(), BG_BRK_HALF_OPEN, "a pre-open failure is no probe");
    bg_brk_result(tbl, "svc", &P, &p1, 0, t0 + 5030);
    bg_brk_result(tbl, "svc", &P, &p2, 0, t0 + 5030);
    cr_assert_eq(state(), BG_BRK_CLOSED);
    for (int i = 0; i < 3; i++)
        bg_brk_result(tbl, "svc", &P, &old[4], 1, t0 + 5040);
    cr_assert_eq(state(), BG_BRK_CLOSED, "failures from before the half-open do not count");
}

Test(breaker, a_released_probe_gives_its_slot_back)
{
    bg_brk_ticket a, b, c;

    trip(0);
    cr_assert_eq(admit(5000, &a, NULL), 1);
    cr_assert_eq(admit(5000, &b, NULL), 1);
    cr_assert_eq(admit(5000, &c, NULL), 0);
    bg_brk_release(tbl, "svc", &a); /* its client went away */
    cr_assert_eq(admit(5001, &c, NULL), 1);
    cr_assert_eq(c.kind, BG_BRK_T_PROBE);
}

Test(breaker, probes_that_never_answer_are_given_again_after_the_probe_timeout)
{
    bg_brk_ticket a, b, c;

    trip(0);
    cr_assert_eq(admit(5000, &a, NULL), 1);
    cr_assert_eq(admit(5000, &b, NULL), 1); /* both held by a worker that died */
    cr_assert_eq(admit(5000 + P.probe_timeout_ms - 1, &c, NULL), 0);
    cr_assert_eq(admit(5000 + P.probe_timeout_ms, &c, NULL), 1);
    cr_assert_eq(c.kind, BG_BRK_T_PROBE);
    bg_brk_result(tbl, "svc", &P, &a, 1, t0 + 5000 + P.probe_timeout_ms);
    cr_assert_eq(state(), BG_BRK_HALF_OPEN, "the dead worker's probes are of the old epoch");
}

Test(breaker, one_failure_opens_it_when_failures_is_one)
{
    bg_brk_params one = P;
    bg_brk_ticket t;
    int64_t r;

    one.failures = 1;
    cr_assert_eq(bg_brk_admit(tbl, "svc", &one, t0, &t, &r), 1);
    bg_brk_result(tbl, "svc", &one, &t, 1, t0);
    cr_assert_eq(state(), BG_BRK_OPEN);
}

Test(breaker, the_table_keeps_names_and_counts_transitions)
{
    char name[32];
    uint64_t c0 = bg_brk_changes(tbl);

    trip(0);
    cr_assert_eq(bg_brk_changes(tbl), c0 + 1);
    cr_assert_eq(bg_brk_ensure(tbl, "svc"), BG_OK, "a known name again");
    for (int i = 1; i < BG_BRK_MAX_SERVICES; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        cr_assert_eq(bg_brk_ensure(tbl, name), BG_OK);
    }
    cr_assert_eq(bg_brk_ensure(tbl, "one-too-many"), BG_ERR);
    cr_assert_eq(state(), BG_BRK_OPEN, "the state of svc survived");
    cr_assert_str_eq(bg_brk_state_name(BG_BRK_HALF_OPEN), "half_open");
}

/* Workers map the table after fork: what one process trips, the other refuses. */
Test(breaker, one_breaker_across_processes)
{
    bg_brk_ticket t;
    int status;
    pid_t pid = fork();

    cr_assert_neq(pid, -1);
    if (pid == 0) {
        for (int i = 0; i < P.failures; i++) {
            if (!bg_brk_admit(tbl, "svc", &P, t0, &t, &(int64_t){0}))
                _exit(2);
            bg_brk_result(tbl, "svc", &P, &t, 1, t0);
        }
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(admit(1, &t, NULL), 0, "the parent sees the child's open breaker");
}
