#include "rlhf/train/training_loop.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "rlhf/core/command_line.h"
#include "rlhf/core/distributed.h"
#include "rlhf/core/error.h"
#include "rlhf/core/progress.h"
#include "rlhf/core/runtime.h"
#include "rlhf/core/signals.h"
#include "rlhf/core/thread_governor.h"
#include "rlhf/train/lr_schedule.h"

namespace rlhf {

LoopResult run_training_loop(const std::string& name, const RunConfig& cfg, TrainState& state, MetricsWriter& metrics,
                             const TrainingLoopHooks& hooks) {
    using clock = std::chrono::steady_clock;
    const Distributed& dist = distributed();
    // Rank 0 writes the run's checkpoints; the others hold the same weights.
    // Once per step: a signal at a step that was just saved must not save (and log) it again.
    int64_t saved_step = -1;
    auto save = [&]() {
        if (saved_step == state.step) return;
        if (dist.is_main()) hooks.checkpoint();
        saved_step = state.step;
    };
    // A signal may reach one rank only (kill -TERM PID): all ranks stop after the same step.
    auto agreed_stop = [&]() {
        int signo = stop_requested();
        if (!dist.active()) return signo;
        torch::Tensor flag = torch::tensor({static_cast<int64_t>(signo)});
        dist.all_reduce_max(flag);
        return static_cast<int>(flag.item<int64_t>());
    };
    auto due = [&](int64_t every) { return every > 0 && state.step % every == 0; };
    install_stop_handlers();
    if (dist.active()) {
        // Every rank resumed from its own view of out_dir/checkpoints: they must agree.
        torch::Tensor at = torch::tensor({state.step, -state.step, static_cast<int64_t>(state.next_batch_index),
                                          -static_cast<int64_t>(state.next_batch_index)});
        dist.all_reduce_max(at);
        if (at[0].item<int64_t>() != -at[1].item<int64_t>() || at[2].item<int64_t>() != -at[3].item<int64_t>()) {
            throw Error("the ranks start from different steps (rank " + std::to_string(dist.rank()) + " at step " +
                            std::to_string(state.step) + ", the latest of all at step " +
                            std::to_string(at[0].item<int64_t>()) + ")",
                        cfg.out_dir, "every rank must see the same out_dir: put it on a file system all machines share");
        }
    }
    if (state.step >= cfg.train.max_steps) {
        spdlog::info("{}: already at step {} of {}, nothing to train (raise train.max_steps to continue)", name, state.step,
                     cfg.train.max_steps);
    }
    if (state.step == 0 && cfg.train.eval_every > 0) hooks.evaluate();
    Progress progress(name, cfg.train.max_steps, state.step);
    const auto t_start = clock::now();
    const int64_t start_step = state.step;
    LoopResult result;
    ThreadGovernor governor(cfg.runtime.adapt_threads);
    while (state.step < cfg.train.max_steps) try {
        const auto t0 = clock::now();
        const double lr = lr_at(state.step, cfg.optim, cfg.train.max_steps);
        StepReport r = hooks.step(lr);
        state.step += 1;
        governor.tick();
        const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();

        nlohmann::json record = {{"type", "train"}, {"step", state.step}, {"loss", r.loss}, {"lr", lr},
                                 {"grad_norm", r.grad_norm}};
        record.update(r.fields);
        record["ms_per_step"] = ms;
        metrics.write(record);
        progress.update(state.step, fmt::format("loss {:.4f}{}", r.loss, r.progress));
        if (due(cfg.train.log_every) || state.step == cfg.train.max_steps) {
            spdlog::info("step {}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f}{} | {:.1f} ms/step", state.step,
                         cfg.train.max_steps, r.loss, lr, r.grad_norm, r.log, ms);
        }
        const bool last = state.step == cfg.train.max_steps;
        if (due(cfg.train.eval_every) || (last && cfg.train.eval_every >= 0)) hooks.evaluate();
        if (due(cfg.checkpoint.every) || last) save();
        if (int signo = agreed_stop()) {
            progress.finish();
            save();
            dist.barrier();  // leave together: a launcher would count an early exit as a failure
            spdlog::warn("stopped by signal {} at step {}; continue with: {}", signo, state.step,
                         resume_command("rlhf train " + shell_quote(cfg.source) + " --resume"));
            result.exit_code = 128 + signo;
            break;
        }
    } catch (const Error& e) {
        if (!metrics.failed()) throw;
        // metrics.jsonl could not be written (a full disk): stop now, keeping this step if a
        // checkpoint still fits, instead of training on unrecorded and losing it all at the end.
        progress.finish();
        std::string saved;
        try {
            save();
            saved = "saved a checkpoint of step " + std::to_string(state.step);
        } catch (const std::exception& save_error) {
            saved = "no checkpoint could be saved either (" + std::string(save_error.what()) + ")";
        }
        throw Error(e.message() + " at step " + std::to_string(state.step) + "; " + saved, e.where(), e.hint());
    }
    if (result.exit_code == 0) progress.finish();
    result.steps_run = state.step - start_step;
    result.seconds = std::chrono::duration<double>(clock::now() - t_start).count();
    return result;
}

void log_run_done(const LoopResult& result, const TrainState& state, const std::string& unit, const std::string& details) {
    if (result.steps_run == 0) return;
    spdlog::info("done: {} {} in {} ({}peak RSS {:.0f} MiB){}", result.steps_run, unit, format_duration(result.seconds),
                 details.empty() ? std::string() : details + ", ", peak_rss_mib(),
                 std::isfinite(state.last_val_loss) ? fmt::format(", final val loss {:.4f}", state.last_val_loss)
                                                    : std::string());
}

}  // namespace rlhf
