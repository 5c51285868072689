// The bookkeeping of every training stage's loop. The driver writes the loop itself, so reading
// order is running order:
//
//   StepLoop loop("sft", cfg, state, metrics);
//   if (loop.eval_due()) evaluate();                 // step 0 of a fresh run
//   while (loop.running()) {
//       loop.end_step(train_step(loop.lr()));        // one optimizer step; then the record, bar, log line
//       if (loop.eval_due()) evaluate();
//       if (loop.save_due()) save_checkpoint();
//   }
//   return loop.finish();                            // 0, or 128 + the signal that stopped it
//
// What it keeps out of the drivers: SIGINT/SIGTERM stop every rank after the same step and save
// it (once, also when it was a checkpoint step anyway); the ranks must start from the same step;
// a metrics.jsonl that cannot be written (a full disk) stops the run at once, saving the step;
// the intra-op threads yield to other busy processes (runtime.adapt_threads).
// In a distributed run (core/distributed.h) every rank runs the loop and evaluates; save_due()
// is true on rank 0 alone.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/config.h"
#include "rlhf/core/error.h"
#include "rlhf/core/progress.h"
#include "rlhf/core/thread_governor.h"
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

struct LoopResult {
    int exit_code = 0;      // 0, or 128 + signal after a stop
    int64_t steps_run = 0;  // steps this process took
    double seconds = 0.0;   // wall time of those steps (evaluations and saves included)
};

class StepLoop {
public:
    // Runs from state.step to cfg.train.max_steps.
    StepLoop(std::string name, const RunConfig& cfg, TrainState& state, MetricsWriter& metrics);
    ~StepLoop();
    StepLoop(const StepLoop&) = delete;
    StepLoop& operator=(const StepLoop&) = delete;

    // True while steps remain and no stop was agreed; starts timing the step. After a stop it
    // returns false (every rank together); after a failed metrics write it throws that error,
    // saying whether the step was saved.
    bool running();
    // The learning rate of the step now running (optim's warmup and cosine schedule).
    double lr() const { return lr_; }
    // state.step + 1; the train record (step, loss, lr, grad_norm, the report's fields,
    // ms_per_step), the progress bar, every train.log_every steps a log line; then whether a
    // signal reached any rank.
    void end_step(const StepReport& report);
    // Evaluate now: at step 0 of a fresh run (before the first step), every train.eval_every
    // steps, and after the last step (unless eval_every < 0).
    bool eval_due() const;
    // Save now (rank 0 only): every checkpoint.every steps, after the last step, after a signal or
    // a failed metrics write — at most once per step.
    bool save_due();
    // Writes a record to metrics.jsonl (evaluations, the reward model's normalisation): a failed
    // write stops the run as a failed train record does.
    void record(const nlohmann::json& rec);
    // The exit code: 0, or 128 + the signal.
    int finish() const { return result_.exit_code; }
    const LoopResult& result() const { return result_; }

private:
    bool last_step() const { return state_.step == cfg_.train.max_steps; }

    std::string name_;
    const RunConfig& cfg_;
    TrainState& state_;
    MetricsWriter& metrics_;
    ThreadGovernor governor_;
    std::optional<Progress> progress_;  // made at the first step, after the step-0 evaluation's lines
    std::chrono::steady_clock::time_point started_, step_started_;
    int64_t start_step_ = 0;
    int64_t saved_step_ = -1;
    int stop_signal_ = 0;
    std::optional<Error> write_failure_;  // a failed metrics.jsonl write, rethrown by running()
    double lr_ = 0.0;
    bool stepped_ = false;  // a step ended in this process
    LoopResult result_;
};

// The run's last log line: "done: N <unit> in T (<details>, peak RSS M MiB), final val loss L"
// (nothing when no step ran; the val loss when there is one). `details` may be empty.
void log_run_done(const LoopResult& result, const TrainState& state, const std::string& unit = "steps",
                  const std::string& details = "");

}  // namespace rlhf
