#include "rlhf/core/signals.h"

#include <csignal>

namespace rlhf {

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signo) {
    if (g_stop_signal != 0 && signo == SIGINT) {
        std::signal(SIGINT, SIG_DFL);  // second Ctrl-C: the user means it
        std::raise(SIGINT);
        return;
    }
    g_stop_signal = signo;
}
}  // namespace

void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

int stop_requested() { return static_cast<int>(g_stop_signal); }

void reset_stop_request() { g_stop_signal = 0; }

}  // namespace rlhf
