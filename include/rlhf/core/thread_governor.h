// Intra-op threads that yield the CPU to other busy processes.
//
// LibTorch's OpenMP threads spin in barriers between parallel regions. Alone on the machine that
// is what makes small ops fast; beside another busy process they fight it for the cores, and a
// step became 10-100x slower, not the ~2x that sharing explains. Sleeping instead of spinning
// (OMP_WAIT_POLICY=PASSIVE) cures that but costs ~40% alone (docs/benchmarks.md). So the
// governor measures: while this process's threads spend a large share of their time waiting for
// a CPU (run_delay in /proc/self/task/*/schedstat), it runs on one intra-op thread, which has no
// barriers to spin in, and now and then tries all of them again.
//
//   ThreadGovernor governor(cfg.runtime.adapt_threads);
//   for (...) { step(); governor.tick(); }
#pragma once

#include <cstdint>
#include <functional>

namespace rlhf {

// The decision rule alone, fed with readings (seconds), so it can be tested without a busy machine.
class ThreadPolicy {
public:
    struct Options {
        double window_s = 0.5;        // readings are judged over at least this much wall time
        double busy_share = 0.15;     // run-queue wait per thread and wall second above which we yield
        double first_probe_s = 10;    // on one thread, try all of them again after this long ...
        double max_probe_s = 80;      // ... doubling after each probe that finds the CPU still busy
    };
    ThreadPolicy(int threads, Options options);
    ThreadPolicy(int threads) : ThreadPolicy(threads, Options()) {}

    // The thread count to use from now on, given the wall clock and this process's total
    // run-queue wait so far.
    int update(double now_s, double run_delay_s);
    int threads() const { return current_; }
    bool probing() const { return mode_ == Mode::probing; }

private:
    enum class Mode { full, reduced, probing };
    Options options_;
    int full_, current_;
    Mode mode_ = Mode::full;
    double window_start_ = -1, delay_at_start_ = 0, next_probe_ = 0, probe_interval_;
};

class ThreadGovernor {
public:
    // Off when !enabled, when LibTorch runs one thread anyway, or when the kernel gives no schedstat.
    explicit ThreadGovernor(bool enabled);
    ~ThreadGovernor();  // leaves LibTorch with the thread count it found
    ThreadGovernor(const ThreadGovernor&) = delete;
    ThreadGovernor& operator=(const ThreadGovernor&) = delete;
    // Call once per step: a clock read, and a few small /proc reads 4 times a second at most.
    void tick();
    bool active() const { return active_; }

private:
    bool active_ = false;
    int initial_threads_ = 1;
    ThreadPolicy policy_{1};
    double last_read_ = -1e9;
};

// This process's total time spent runnable but waiting for a CPU, summed over its threads, in
// seconds; -1 when /proc/self/task/*/schedstat is not readable.
double process_run_delay_s();

}  // namespace rlhf
