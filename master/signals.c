/* signals.c: the master's signal handlers: they only set a flag and wake the loop. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "master.h"

bg_sigflags bg_sig;

static bg_ev *sig_loop;

static void sig_handler(int signo)
{
    switch (signo) {
    case SIGHUP:
        bg_sig.reload = 1;
        break;
    case SIGTERM:
        bg_sig.terminate = 1;
        break;
    case SIGINT:
    case SIGQUIT:
        bg_sig.quit_fast = 1;
        break;
    case SIGUSR1:
        bg_sig.reopen = 1;
        break;
    case SIGCHLD:
        bg_sig.child = 1;
        break;
    default:
        return;
    }
    /* Async-signal-safe: one write to the loop's eventfd, so a flag set just
     * before epoll_wait is never left unseen until the next event. */
    if (sig_loop != NULL)
        bg_ev_wakeup(sig_loop);
}

static const int sig_handled[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGCHLD};

int bg_signals_install(bg_ev *loop, char *err)
{
    struct sigaction sa;

    sig_loop = loop;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sig_handler;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < BG_ARRAY_LEN(sig_handled); i++) {
        if (sigaction(sig_handled[i], &sa, NULL) != 0) {
            bg_set_error(err, "sigaction(%s): %s", strsignal(sig_handled[i]), strerror(errno));
            return BG_ERR;
        }
    }
    /* A worker that died mid-write must not kill the master through a channel. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        bg_set_error(err, "sigaction(SIGPIPE): %s", strerror(errno));
        return BG_ERR;
    }
    return BG_OK;
}

void bg_signals_reset(void)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < BG_ARRAY_LEN(sig_handled); i++)
        sigaction(sig_handled[i], &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    sig_loop = NULL;
}
