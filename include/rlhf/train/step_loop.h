// The loop every training stage runs, written once: learning rate -> one optimizer step (the
// stage's) -> metrics record, progress bar, log line -> evaluation and checkpoint when due -> a
// SIGINT/SIGTERM saves a checkpoint and stops. Stages supply the step, the evaluation and the save.
// In a distributed run (core/distributed.h) every rank runs the loop and evaluates; rank 0 alone
// saves, and a signal to any rank stops all of them after the same step.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/config.h"
#include "rlhf/train/metrics.h"

namespace rlhf {

// What one step reports; the loop adds step, lr and ms_per_step to the metrics record.
struct StepReport {
    double loss = 0.0;
    double grad_norm = 0.0;
    nlohmann::json fields = nlohmann::json::object();  // stage-specific metrics (tokens/s, epoch, …)
    std::string progress;  // after "loss X" on the progress bar
    std::string log;       // after "grad norm X" on the periodic log line
};

struct TrainingLoopHooks {
    // One optimizer step at learning rate `lr`; the loop increments state.step afterwards and
    // times the call for ms_per_step.
    std::function<StepReport(double lr)> step;
    std::function<void()> evaluate;    // writes its own eval record and log line
    std::function<void()> checkpoint;  // saves state as it is now
};

struct LoopResult {
    int exit_code = 0;      // 0, or 128 + signal after a stop
    int64_t steps_run = 0;  // steps this process took
    double seconds = 0.0;   // wall time of those steps (evaluations and saves included)
};

// Runs from state.step to cfg.train.max_steps. Evaluates at step 0 of a fresh run and every
// train.eval_every steps (and at the end unless eval_every < 0); saves every checkpoint.every
// steps and at the end.
LoopResult run_training_loop(const std::string& name, const RunConfig& cfg, TrainState& state, MetricsWriter& metrics,
                             const TrainingLoopHooks& hooks);

// The run's last log line: "done: N <unit> in T (<details>, peak RSS M MiB), final val loss L"
// (nothing when no step ran; the val loss when there is one). `details` may be empty.
void log_run_done(const LoopResult& result, const TrainState& state, const std::string& unit = "steps",
                  const std::string& details = "");

}  // namespace rlhf
