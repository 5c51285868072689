#include "rlhf/core/thread_governor.h"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

namespace rlhf {

ThreadPolicy::ThreadPolicy(int threads, Options options)
    : options_(options), full_(std::max(1, threads)), current_(full_), probe_interval_(options.first_probe_s) {}

int ThreadPolicy::update(double now_s, double run_delay_s) {
    if (full_ == 1) return current_;
    if (mode_ == Mode::reduced) {
        if (now_s < next_probe_) return current_;
        mode_ = Mode::probing;  // the other process may be gone: measure all threads again
        current_ = full_;
        window_start_ = -1;
    }
    if (window_start_ < 0) {
        window_start_ = now_s;
        delay_at_start_ = run_delay_s;
        return current_;
    }
    const double wall = now_s - window_start_;
    if (wall < options_.window_s) return current_;
    // Threads that exit take their counts with them, so the sum can fall: that reads as no wait.
    const double share = std::max(0.0, run_delay_s - delay_at_start_) / (wall * current_);
    window_start_ = now_s;
    delay_at_start_ = run_delay_s;
    if (share > options_.busy_share) {
        if (mode_ == Mode::probing) probe_interval_ = std::min(2 * probe_interval_, options_.max_probe_s);
        mode_ = Mode::reduced;
        current_ = 1;
        next_probe_ = now_s + probe_interval_;
    } else if (mode_ == Mode::probing) {
        mode_ = Mode::full;
        probe_interval_ = options_.first_probe_s;
    }
    return current_;
}

double process_run_delay_s() {
    std::error_code ec;
    std::filesystem::directory_iterator tasks("/proc/self/task", ec);
    if (ec) return -1;
    double total_ns = 0;
    bool any = false;
    for (const auto& task : tasks) {
        std::ifstream in(task.path() / "schedstat");
        double run_ns = 0, wait_ns = 0;
        if (in >> run_ns >> wait_ns) {  // "<on-cpu ns> <waiting-for-cpu ns> <timeslices>"
            total_ns += wait_ns;
            any = true;
        }
    }
    return any ? total_ns * 1e-9 : -1;
}

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ThreadGovernor::ThreadGovernor(bool enabled) {
    initial_threads_ = at::get_num_threads();
    active_ = enabled && initial_threads_ > 1 && process_run_delay_s() >= 0;
    if (active_) policy_ = ThreadPolicy(initial_threads_);
}

ThreadGovernor::~ThreadGovernor() {
    if (active_ && policy_.threads() != initial_threads_) at::set_num_threads(initial_threads_);
}

void ThreadGovernor::tick() {
    if (!active_) return;
    // The clock is cheap; /proc is read a few times a second at most (a step may take 1 ms).
    const double now = now_s();
    if (now - last_read_ < 0.25) return;
    last_read_ = now;
    const int before = policy_.threads();
    const bool was_probing = policy_.probing();
    const int after = policy_.update(now, process_run_delay_s());
    if (after != before) at::set_num_threads(after);
    if (after < before && !was_probing) {
        spdlog::info("the CPUs are busy with other work: {} intra-op threads -> {} while they are "
                     "(runtime.adapt_threads)", before, after);
    } else if (was_probing && !policy_.probing() && after > 1) {
        spdlog::info("the CPUs are free again: back to {} intra-op threads", after);
    }
}

}  // namespace rlhf
