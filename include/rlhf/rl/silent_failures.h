// Alarms for RL runs that learn nothing without an error: every answer cut at max_new_tokens,
// a reward that gives every answer the same score, GRPO/RLOO groups whose answers all score alike
// (advantage 0, so no gradient). Users lose days to these; the run itself cannot tell that a
// reward of 0 is wrong, so each alarm is a warning and a metric, judged over a window of
// iterations so that one unlucky batch does not raise it.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace rlhf::rl {

// ppo.alarm_*: the window, and what counts as a silent failure over it.
struct AlarmThresholds {
    int64_t window = 10;            // iterations looked back over; 0 = no alarms
    double truncated_share = 0.5;   // mean share of responses without a stop token above this
    double reward_std = 1e-6;       // every iteration's score spread at or below this
    double uniform_groups = 0.9;    // mean share of uniform groups above this (grpo, rloo)
    int64_t max_new_tokens = 0;     // named in the warning
};

// What one iteration showed.
struct IterationSignals {
    double truncated_share = 0;     // responses that reached max_new_tokens without a stop token
    double score_std = 0;           // the batch's scores
    double uniform_groups = NAN;    // grpo, rloo: groups whose scores are all equal; NaN = no groups
};

struct AlarmState {
    bool truncated = false, reward_flat = false, uniform_groups = false;
    std::vector<std::string> warnings;  // new this iteration: when an alarm starts, and every window while it lasts
};

class SilentFailureAlarms {
public:
    explicit SilentFailureAlarms(const AlarmThresholds& t) : t_(t) {}
    // The alarms after this iteration. None before the window has filled.
    AlarmState observe(const IterationSignals& s);

private:
    // Whether the alarm is on now, and the warning when it starts or has lasted another window.
    void raise(size_t which, bool on, const std::string& message, AlarmState& out);

    AlarmThresholds t_;
    std::deque<IterationSignals> recent_;  // the last `window` iterations
    int64_t on_for_[3] = {0, 0, 0};       // iterations each alarm has been on
};

}  // namespace rlhf::rl
