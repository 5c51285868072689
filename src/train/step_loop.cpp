#include "rlhf/train/step_loop.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>

#include "rlhf/core/command_line.h"
#include "rlhf/core/distributed.h"
#include "rlhf/core/runtime.h"
#include "rlhf/core/signals.h"
#include "rlhf/train/lr_schedule.h"

namespace rlhf {

namespace {

// Every rank resumed from its own view of out_dir/checkpoints: they must agree.
void check_ranks_agree(const TrainState& state, const RunConfig& cfg) {
    const Distributed& dist = distributed();
    if (!dist.active()) return;
    torch::Tensor at = torch::tensor({state.step, -state.step, static_cast<int64_t>(state.next_batch_index),
                                      -static_cast<int64_t>(state.next_batch_index)});
    dist.all_reduce_max(at);
    if (at[0].item<int64_t>() != -at[1].item<int64_t>() || at[2].item<int64_t>() != -at[3].item<int64_t>()) {
        throw Error("the ranks start from different steps (rank " + std::to_string(dist.rank()) + " at step " +
                        std::to_string(state.step) + ", the latest of all at step " + std::to_string(at[0].item<int64_t>()) +
                        ")",
                    cfg.out_dir, "every rank must see the same out_dir: put it on a file system all machines share");
    }
}

// A signal may reach one rank only (kill -TERM PID): all ranks stop after the same step.
int agreed_stop_signal() {
    const int signo = stop_requested();
    const Distributed& dist = distributed();
    if (!dist.active()) return signo;
    torch::Tensor flag = torch::tensor({static_cast<int64_t>(signo)});
    dist.all_reduce_max(flag);
    return static_cast<int>(flag.item<int64_t>());
}

}  // namespace

StepLoop::StepLoop(std::string name, const RunConfig& cfg, TrainState& state, MetricsWriter& metrics)
    : name_(std::move(name)), cfg_(cfg), state_(state), metrics_(metrics), governor_(cfg.runtime.adapt_threads && !cfg.runtime.deterministic) {
    install_stop_handlers();
    check_ranks_agree(state_, cfg_);
    if (state_.step >= cfg_.train.max_steps) {
        spdlog::info("{}: already at step {} of {}, nothing to train (raise train.max_steps to continue)", name_,
                     state_.step, cfg_.train.max_steps);
    }
    start_step_ = state_.step;
    started_ = std::chrono::steady_clock::now();
}

StepLoop::~StepLoop() = default;

bool StepLoop::running() {
    if (stepped_) result_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    if (write_failure_) {
        if (progress_) progress_->finish();
        const Error& e = *write_failure_;
        const std::string saved = saved_step_ == state_.step ? "saved a checkpoint of step " + std::to_string(state_.step)
                                                             : "no checkpoint was saved";
        throw Error(e.message() + " at step " + std::to_string(state_.step) + "; " + saved, e.where(), e.hint());
    }
    if (stop_signal_ != 0) {
        if (result_.exit_code == 0) {
            distributed().barrier();  // leave together: a launcher would count an early exit as a failure
            spdlog::warn("stopped by signal {} at step {}; continue with: {}", stop_signal_, state_.step,
                         resume_command("rlhf train " + shell_quote(cfg_.source) + " --resume"));
            result_.exit_code = 128 + stop_signal_;
        }
        return false;
    }
    if (state_.step >= cfg_.train.max_steps) {
        if (progress_) progress_->finish();
        return false;
    }
    if (!progress_) progress_.emplace(name_, cfg_.train.max_steps, state_.step);
    step_started_ = std::chrono::steady_clock::now();
    lr_ = lr_at(state_.step, cfg_.optim, cfg_.train.max_steps);
    return true;
}

void StepLoop::end_step(const StepReport& r) {
    state_.step += 1;
    stepped_ = true;
    governor_.tick();
    const auto now = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - step_started_).count();
    result_.steps_run = state_.step - start_step_;

    nlohmann::json rec = {{"type", "train"}, {"step", state_.step}, {"loss", r.loss}, {"lr", lr_},
                          {"grad_norm", r.grad_norm}};
    rec.update(r.fields);
    rec["ms_per_step"] = ms;
    record(rec);
    progress_->update(state_.step, fmt::format("loss {:.4f}{}", r.loss, r.progress));
    if ((cfg_.train.log_every > 0 && state_.step % cfg_.train.log_every == 0) || last_step()) {
        spdlog::info("step {}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f}{} | {:.1f} ms/step", state_.step,
                     cfg_.train.max_steps, r.loss, lr_, r.grad_norm, r.log, ms);
    }
    if (const int signo = agreed_stop_signal()) {
        progress_->finish();
        stop_signal_ = signo;
    }
}

bool StepLoop::eval_due() const {
    if (write_failure_) return false;
    if (!stepped_) return state_.step == 0 && cfg_.train.eval_every > 0;
    const int64_t every = cfg_.train.eval_every;
    return (every > 0 && state_.step % every == 0) || (last_step() && every >= 0);
}

bool StepLoop::save_due() {
    if (!stepped_ || saved_step_ == state_.step) return false;
    const int64_t every = cfg_.checkpoint.every;
    const bool due = (every > 0 && state_.step % every == 0) || last_step() || stop_signal_ != 0 || write_failure_;
    if (!due) return false;
    saved_step_ = state_.step;  // the caller saves now; a signal at this step must not save it again
    return distributed().is_main();
}

void StepLoop::record(const nlohmann::json& rec) {
    if (write_failure_) return;
    try {
        metrics_.write(rec);
    } catch (const Error& e) {
        // A full disk: stop now, keeping this step if a checkpoint still fits, instead of
        // training on unrecorded and losing it all at the end.
        write_failure_ = e;
    }
}

void log_run_done(const LoopResult& result, const TrainState& state, const std::string& unit, const std::string& details) {
    if (result.steps_run == 0) return;
    spdlog::info("done: {} {} in {} ({}peak RSS {:.0f} MiB){}", result.steps_run, unit, format_duration(result.seconds),
                 details.empty() ? std::string() : details + ", ", peak_rss_mib(),
                 std::isfinite(state.last_val_loss) ? fmt::format(", final val loss {:.4f}", state.last_val_loss)
                                                    : std::string());
}

}  // namespace rlhf
