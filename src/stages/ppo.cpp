// Stage 4, PPO (InstructGPT step 3), and its critic-free variants GRPO and RLOO. Top to bottom:
//   1. runtime, run directory
//   2. up to four models of the one GPT type: policy (from SFT), reference (a separate copy of the
//      SFT weights, frozen; none with kl_coef 0), reward model (frozen, normalised; none with a
//      checker alone), critic (gae only: a copy of the reward model with its normalisation folded
//      into its head, or the SFT trunk with a zero head); dropout off in all of them; an AdamW for
//      each of policy and critic; EMA weights; PPO-ptx windows (built by stages/ppo_setup.h)
//   3. prompts (data/prompt_set), rendered in the chat format, left-padded at rollout time; with
//      a checker reward, each with its gold answer
//   4. the loop, at the bottom, one PPO iteration per step (stages/ppo_iteration.h):
//        share = this rank's prompts of the iteration (each ppo.group_size times)
//        experience = collect_experience(share, β)   rollouts -> scores -> log-probs, values ->
//                                                     -β·KL + score -> GAE, or group advantages
//        update = ppo_update(experience)             epochs x minibatches of clipped losses -> AdamW -> EMA
//        check the invariants; adapt β; log
//      eval: greedy answers to fixed prompts -> mean score, EOS rate, samples; checkpoint.
//
//   rlhf train configs/demo/ppo.yaml
#include "rlhf/stages/ppo.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/load.h"
#include "rlhf/core/distributed.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/logging.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"
#include "rlhf/core/seed_streams.h"
#include "rlhf/data/epoch_sampler.h"
#include "rlhf/data/prompt_set.h"
#include "rlhf/model/sampling_streams.h"
#include "rlhf/rl/invariants.h"
#include "rlhf/rl/masked.h"
#include "rlhf/rl/rewards.h"
#include "rlhf/rl/silent_failures.h"
#include "rlhf/stages/ppo_iteration.h"
#include "rlhf/stages/ppo_setup.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/step_loop.h"

namespace rlhf {

namespace {

NamedTensors named(torch::nn::Module& m) {
    NamedTensors out;
    for (const auto& item : m.named_parameters()) out.emplace_back(item.key(), item.value());
    for (const auto& item : m.named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
}

// This rank's contiguous share of the iteration's rollouts — every prompt ppo.group_size times,
// in consecutive rows — each row with the random stream of its place in the whole batch
// (model/sampling_streams.h), so that N ranks sample what one process samples. (An epoch's last
// batch may be smaller than ppo.rollout_batch; shares may differ by one.)
RolloutShare rollout_share(EpochSampler& sampler, const PromptSet& prompts, const RunConfig& cfg,
                           const Distributed& dist, uint64_t iteration) {
    const auto batch_prompts = sampler.batch(stream_seed(cfg.runtime.seed, seed_stream::kPpoPrompts), iteration);
    const int64_t group = cfg.ppo.group_size;
    RolloutShare share;
    share.total_rows = static_cast<int64_t>(batch_prompts.size()) * group;
    share.first_row = share.total_rows * dist.rank() / dist.world_size();
    const int64_t end_row = share.total_rows * (dist.rank() + 1) / dist.world_size();
    const uint64_t iteration_seed = derive_seed(stream_seed(cfg.runtime.seed, seed_stream::kPpoSamples), iteration);
    for (int64_t r = share.first_row; r < end_row; ++r) {
        const auto prompt = static_cast<size_t>(batch_prompts[static_cast<size_t>(r / group)]);
        share.prompts.push_back(prompts.train[prompt]);
        share.row_seeds.push_back(derive_seed(iteration_seed, static_cast<uint64_t>(r)));
        if (!prompts.train_answers.empty()) share.answers.push_back(prompts.train_answers[prompt]);
    }
    return share;
}

// rl/invariants.h: an error (or a warning, ppo.check_invariants: warn) naming the iteration.
void check_invariants(const PpoRun& run, uint64_t iteration, double sampling_gap, double first_ratio_deviation) {
    rl::InvariantGaps gaps;
    gaps.sampling_logprob = sampling_gap;
    gaps.first_ratio = first_ratio_deviation;
    const std::string broken = rl::invariant_violation(iteration, gaps, /*reduced_precision=*/run.settings.bf16 || run.device.is_cuda());
    if (broken.empty()) return;
    if (run.cfg.ppo.check_invariants == CheckInvariants::Error) {
        throw Error(broken, "ppo.check_invariants", "a bug to report with the config; ppo.check_invariants: warn lets the run go on");
    }
    spdlog::warn("{}", broken);
}

// The iteration's metrics record, progress and log line.
StepReport iteration_report(const PpoRun& run, const CollectedExperience& collected, const PpoUpdateStats& u,
                            double beta, double kl_per_seq, double step_seconds, int64_t epoch) {
    const rl::Experience& e = collected.experience;
    const bool checked = run.settings.check_invariants, critic = static_cast<bool>(run.models.critic);
    const double nu = static_cast<double>(std::max<int64_t>(u.updates, 1));
    const auto returns_var = rl::masked_var(e.returns, e.mask).item<double>();
    const double explained_var = critic && returns_var > 0
        ? 1.0 - rl::masked_var(e.returns - e.old_values, e.mask).item<double>() / returns_var : NAN;
    const double score_mean = e.scores.mean().item<double>();
    StepReport r;
    r.loss = u.policy_loss_sum / nu;
    r.grad_norm = u.grad_norm_sum / nu;
    r.fields = {{"score_mean", score_mean},
                {"score_std", e.scores.std(false).item<double>()},
                {"kl", kl_per_seq},
                {"beta", beta},
                {"entropy", rl::masked_mean(e.entropy, e.mask).item<double>()},
                {"policy_loss", u.policy_loss_sum / nu},
                {"value_loss", critic ? u.value_loss_sum / nu : NAN},
                {"clip_fraction", u.clip_fraction_sum / nu},
                {"value_clip_fraction", critic ? u.value_clip_fraction_sum / nu : NAN},
                {"approx_kl", u.approx_kl_sum / nu},
                {"ratio_mean", u.ratio_mean_sum / nu},
                {"ratio_max", u.ratio_max},
                {"first_minibatch_ratio_deviation", u.first_ratio_deviation},
                {"first_minibatch_approx_kl", u.first_approx_kl},
                {"sampling_logprob_gap", checked ? collected.sampling_logprob_gap : NAN},
                {"sampling_logprob_gap_max", collected.sampling_logprob_gap_max},
                {"sampling_kl", collected.sampling_kl},
                {"explained_variance", explained_var},
                {"rollouts", e.tokens.size(0)},  // ppo.rollout_batch, or fewer at an epoch's end
                {"response_length", e.mask.sum(1).mean().item<double>()},
                {"eos_rate", e.has_eos.to(torch::kFloat32).mean().item<double>()},
                {"generation_share", collected.seconds.generation / step_seconds},
                {"epoch", epoch}};
    // Where the iteration's time went (this rank's), and what decoding produced.
    const PhaseSeconds& t = collected.seconds;
    const double generated_per_s = collected.generated_tokens / std::max(t.generation, 1e-9);
    const double padding_share = 1.0 - static_cast<double>(collected.generated_tokens) / std::max<int64_t>(collected.decode_slots, 1);
    r.fields.update({{"time_iteration", step_seconds}, {"time_generation", t.generation}, {"time_reward", t.reward},
                     {"time_policy", t.policy}, {"time_reference", t.reference}, {"time_critic", t.critic},
                     {"time_advantages", t.advantages}, {"time_update", u.update_seconds}, {"time_ptx", u.ptx_seconds},
                     {"generated_tokens_per_s", generated_per_s}, {"decode_padding_share", padding_share}});
    if (run.ptx) r.fields["ptx_loss"] = u.ptx_loss_sum / nu;
    if (run.cfg.ppo.kl_penalty == KlPenalty::Loss) r.fields["kl_loss"] = u.kl_loss_sum / nu;
    if (run.settings.critic_free) r.fields["uniform_groups"] = collected.uniform_groups;
    if (run.cfg.ppo.rollout_correction != RolloutCorrection::None) {
        r.fields["rollout_corrected_share"] = collected.rollout_corrected_share;
        r.fields["rollout_weight_mean"] = collected.rollout_weight_mean;
    }
    std::string checker_text;
    if (!run.models.scorer.checker.empty()) {
        r.fields["checker_accuracy"] = collected.checker_accuracy;
        checker_text = fmt::format(" | right {:.1f}%", 100 * collected.checker_accuracy);
    }
    r.progress = fmt::format(" | score {:.3f}{} | kl {:.3f}", score_mean, checker_text, kl_per_seq);
    r.log = fmt::format(" | score {:.3f} ± {:.3f}{} | kl {:.3f} | beta {:.4f} | clip {:.3f} | len {:.1f} | EOS {:.0f}% | "
                        "gen {:.0f}% ({:.0f} tok/s, {:.0f}% padding) | update {:.0f}%",
                        score_mean, r.fields["score_std"].get<double>(), checker_text, kl_per_seq, beta, u.clip_fraction_sum / nu,
                        r.fields["response_length"].get<double>(), 100 * r.fields["eos_rate"].get<double>(),
                        100 * t.generation / step_seconds, generated_per_s, 100 * padding_share, 100 * u.update_seconds / step_seconds);
    return r;
}

rl::AlarmThresholds alarm_thresholds(const RunConfig& cfg) {
    rl::AlarmThresholds t;
    t.window = cfg.ppo.alarm_window;
    t.truncated_share = cfg.ppo.alarm_truncated_share;
    t.reward_std = cfg.ppo.alarm_reward_std;
    t.uniform_groups = cfg.ppo.alarm_uniform_groups;
    t.max_new_tokens = cfg.ppo.max_new_tokens;
    return t;
}

// The silent-failure alarms (rl/silent_failures.h) after an iteration: alarm_* metrics (1 = on),
// and a warning when one starts.
void sound_alarms(rl::SilentFailureAlarms& alarms, const CollectedExperience& collected, StepReport& report, int64_t step) {
    const rl::Experience& e = collected.experience;
    rl::IterationSignals s;
    s.truncated_share = 1.0 - e.has_eos.to(torch::kFloat64).mean().item<double>();
    s.score_std = report.fields["score_std"].get<double>();
    s.uniform_groups = collected.uniform_groups;
    const rl::AlarmState a = alarms.observe(s);
    report.fields["alarm_truncated"] = a.truncated ? 1 : 0;
    report.fields["alarm_reward_flat"] = a.reward_flat ? 1 : 0;
    if (!std::isnan(collected.uniform_groups)) report.fields["alarm_uniform_groups"] = a.uniform_groups ? 1 : 0;
    for (const auto& warning : a.warnings) spdlog::warn("iteration {}: {}", step, warning);
}

}  // namespace

int run_ppo(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and run directory ----------------------------------------------------------------
    const StageStart stage = begin_stage(cfg, opts.resume);
    const Runtime& rt = stage.rt;
    const Distributed& dist = distributed();
    const std::filesystem::path& resume_dir = stage.resume_dir;

    // 2. Models -------------------------------------------------------------------------------------
    // The reference is loaded from init_from on its own, never a second handle to the policy. On
    // resume the frozen models are the very checkpoints the run started from (init_from and
    // ppo.reward_model name runs that may have trained on since), checked against their hashes.
    const nlohmann::json started_from =
        resume_dir.empty() ? nlohmann::json() : read_checkpoint_info(resume_dir).stage_state.value("lineage", nlohmann::json());
    RunConfig sft_cfg = cfg;
    StartPoint sft = load_sft(cfg, started_from, &sft_cfg);
    // kl_coef 0: no KL, so no reference model is kept at all (the memory and a forward per rollout).
    // model.lora: the policy's base is the SFT model, so the reference is the policy with its
    // adapters off (and the SFT copy is let go before the policy loads).
    const bool lora = cfg.model.lora.rank > 0;
    const Gpt reference = cfg.ppo.kl_coef > 0 && !lora ? sft.trunk : Gpt{nullptr};
    sft.trunk = Gpt{nullptr};
    StartPoint start = load_start_point(cfg, resume_dir);  // the policy: the SFT weights again, or our own checkpoint
    const Tokenizer tokenizer = start.tokenizer;
    std::filesystem::path reward_dir;
    PpoModels models{start.trunk, reference, nullptr, make_scorer(cfg, started_from, tokenizer, start, rt.device, &reward_dir)};
    models.reference_is_base = lora && cfg.ppo.kl_coef > 0;
    if (cfg.ppo.advantage == Advantage::Gae) {  // grpo, rloo: no critic, not even allocated
        models.critic = make_critic(cfg, sft_cfg, models.scorer, reward_dir);
        if (!resume_dir.empty()) load_weights_file(resume_dir / "critic.safetensors", *models.critic);
    }
    const PpoSettings settings = ppo_settings(cfg, tokenizer);
    place_ppo_models(models, settings, rt.device, dist);
    PpoRun run{cfg, dist, rt.device, std::move(models), settings, {}, nullptr};
    run.optim = make_ppo_optimizers(cfg, run.models, dist);
    if (cfg.ppo.ptx_coef > 0) run.ptx = std::make_unique<TokenShards>(cfg.ppo.ptx_shards, "train", tokenizer.fingerprint());
    rl::KlController kl_ctl(cfg.ppo.kl_coef, cfg.ppo.kl_target, cfg.ppo.kl_horizon);
    TrainState state;
    nlohmann::json lineage = start.lineage;  // the SFT checkpoint (and what it came from), plus the reward model
    if (!resume_dir.empty()) {
        state = restore_ppo_state(run, resume_dir, start, kl_ctl);
    } else {
        const std::string rm = reward_dir.empty() ? cfg.ppo.toy_reward : "reward model " + reward_dir.string();
        const std::string checker = name_of(cfg.ppo.reward);
        const std::string score = cfg.ppo.reward == RewardSource::Model ? rm : rm.empty() ? checker : checker + " + " + rm;
        const char* reference_text = run.models.reference           ? "and reference "
                                     : run.models.reference_is_base ? "(reference: its base, adapters off) "
                                                                    : "";
        const bool frozen_in_bf16 = settings.frozen_bf16 && (run.models.reference || !reward_dir.empty());
        spdlog::info("policy {}from {} (step {} of run {}); score: {}{}; {}", reference_text,
                     start.dir.string(), start.info.state.step, start.info.config.out_dir, score,
                     frozen_in_bf16 ? " (frozen weights in bf16)" : "",
                     run.models.critic ? "critic from the " + name_of(cfg.ppo.critic_from)
                                : fmt::format("no critic: {} advantages over groups of {}", cfg.ppo.advantage, cfg.ppo.group_size));
        if (cfg.ppo.reward != RewardSource::Model) lineage["checker"] = checker;
        lineage["reward_model"] = reward_dir.empty() ? nlohmann::json(cfg.ppo.toy_reward)
                                                     : nlohmann::json(std::filesystem::absolute(reward_dir).string());
        if (!reward_dir.empty()) {
            lineage["reward_model_weights_fnv1a64"] = hex64(file_fnv1a64(model_weights_file(reward_dir, "raw")));
        }
    }

    // 3. Prompts ------------------------------------------------------------------------------------
    const PromptSet prompts = load_prompts(cfg, tokenizer);
    // The sampler's cursor indexes the training prompts: a resume must see the same ones.
    if (const int64_t saved = start.info.stage_state.value("train_prompts", int64_t{-1});
        !resume_dir.empty() && saved >= 0 && saved != static_cast<int64_t>(prompts.train.size())) {
        throw Error("the run trained on " + std::to_string(saved) + " prompts, the data now gives " +
                        std::to_string(prompts.train.size()),
                    cfg.source + ": data.files", "resume with the prompt files, data.val_fraction and train.eval_prompts "
                                                 "the run started with");
    }
    EpochSampler sampler(static_cast<int64_t>(prompts.train.size()), cfg.ppo.rollout_batch);
    if (dist.is_main()) atomic_write(std::filesystem::path(cfg.out_dir) / "config.yaml", dump_config(cfg));
    MetricsWriter metrics(std::filesystem::path(cfg.out_dir) / "metrics.jsonl", stage.resuming() ? state.step : -1);
    // An update's micro-batch: train.batch_size sequences of a prompt and its reply; the critic
    // (a scalar head) runs beside the policy on the same rows.
    size_t longest_prompt = 1;
    for (const auto& p : prompts.train) longest_prompt = std::max(longest_prompt, p.size());
    const ActivationShape micro_batch{cfg.train.batch_size,
                                      std::min<int64_t>(cfg.model.block_size, static_cast<int64_t>(longest_prompt) + cfg.ppo.max_new_tokens),
                                      true, true};
    const std::string critic_activations = run.models.critic
        ? "; the critic " + describe_activations(run.models.critic->config(), cfg, {micro_batch.rows, micro_batch.tokens, true, false})
        : std::string();
    spdlog::info("policy {}{}; {} prompts x {} samples per iteration, minibatch {}, {} epoch(s), beta {} ({}), {} KL{}",
                 describe_model(*run.models.policy, cfg, rt, micro_batch), critic_activations,
                 cfg.ppo.rollout_batch, cfg.ppo.group_size, cfg.ppo.minibatch, cfg.ppo.epochs, cfg.ppo.kl_coef,
                 kl_ctl.adaptive() ? fmt::format("adaptive, target {}", cfg.ppo.kl_target) : "fixed", cfg.ppo.kl_estimator,
                 dist.world_size() > 1 ? fmt::format("; {} ranks share the rollouts", dist.world_size()) : std::string());

    // 4. The loop: one PPO iteration per step -------------------------------------------------------
    StepLoop loop("ppo", cfg, state, metrics);
    rl::SilentFailureAlarms alarms(alarm_thresholds(cfg));
    // Greedy answers to the fixed eval prompts: mean score, EOS rate (and the checker's accuracy).
    auto evaluate = [&]() {
        if (prompts.eval.empty()) return;
        const PolicyEvaluation ev = evaluate_policy(run, prompts.eval, prompts.eval_text, prompts.eval_answers, tokenizer);
        nlohmann::json rec = {{"type", "eval"}, {"step", state.step}, {"eval_score", ev.score_mean},
                              {"eval_eos_rate", ev.eos_rate}, {"samples", nlohmann::json::array()}};
        if (!std::isnan(ev.accuracy)) rec["eval_accuracy"] = ev.accuracy;
        for (const auto& [q, a] : ev.samples) rec["samples"].push_back({{"prompt", q}, {"answer", a}});
        loop.record(rec);
        spdlog::info("eval step {}: greedy score {:.4f}{}, EOS rate {:.1f}% of {} prompts", state.step, ev.score_mean,
                     std::isnan(ev.accuracy) ? "" : fmt::format(", right {:.1f}%", 100 * ev.accuracy), 100 * ev.eos_rate,
                     prompts.eval.size());
        log_samples(ev.samples);
    };
    // One iteration: this rank's prompts -> rollouts, scores, advantages -> PPO epochs over
    // minibatches -> the invariants -> β adapted to the KL.
    auto iterate = [&](double lr) {
        const auto t0 = std::chrono::steady_clock::now();
        const uint64_t iteration = state.next_batch_index++;
        const double beta = kl_ctl.beta();
        const RolloutShare share = rollout_share(sampler, prompts, cfg, dist, iteration);
        const CollectedExperience collected = collect_experience(run, share, beta);
        const rl::Experience& e = collected.experience;
        const PpoUpdateStats update = ppo_update(run, e, iteration, lr, beta);
        if (!std::isfinite(update.policy_loss_sum) || !std::isfinite(update.value_loss_sum)) {
            throw Error("PPO loss became non-finite", "training", "lower optim.lr, raise ppo.kl_coef, keep optim.grad_clip > 0");
        }
        if (run.settings.check_invariants) check_invariants(run, iteration, collected.sampling_logprob_gap, update.first_ratio_deviation);
        const double kl_per_seq = (e.kl * e.mask).sum(1).mean().item<double>();
        kl_ctl.update(kl_per_seq, e.tokens.size(0));
        state.tokens_seen += e.mask.sum().item<int64_t>();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        StepReport report = iteration_report(run, collected, update, beta, kl_per_seq, seconds, sampler.epoch_of(iteration));
        sound_alarms(alarms, collected, report, state.step + 1);
        return report;
    };
    // The checkpoint: the policy and its optimizer, the critic and its optimizer, the EMA, β, and
    // the lineage that pins the frozen models.
    auto save = [&]() {
        CheckpointExtras extras;
        if (run.models.critic) {
            extras.tensor_files.emplace_back("critic.safetensors", named(*run.models.critic));
            extras.tensor_files.emplace_back("critic_optimizer.safetensors", run.optim.critic->state_tensors());
        }
        if (run.optim.ema) extras.tensor_files.emplace_back(kEmaFile, run.optim.ema->named(*run.models.policy));
        extras.stage_state = {{"lineage", lineage}, {"kl_beta", kl_ctl.beta()},
                              {"critic_optimizer_step", run.models.critic ? run.optim.critic->steps_taken() : 0},
                              {"train_prompts", prompts.train.size()}};
        extras.lora_base = start.lora_base;
        save_stage_checkpoint(cfg, state, *run.models.policy, *run.optim.policy, tokenizer, extras);
    };

    if (loop.eval_due()) evaluate();
    while (loop.running()) {
        loop.end_step(iterate(loop.lr()));
        if (loop.eval_due()) evaluate();
        if (loop.save_due()) save();
    }
    if (loop.finish() != 0) return loop.finish();
    log_run_done(loop.result(), state, "iterations");
    return 0;
}

}  // namespace rlhf
