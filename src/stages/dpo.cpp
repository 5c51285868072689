// Stage "dpo", Direct Preference Optimization. Top to bottom:
//   1. runtime, run directory; the starting point: init_from, a policy (or our own latest checkpoint)
//   2. the policy, optimizer
//   3. comparisons: read -> train/val split -> each completion rendered ONCE in the chat format,
//      fitted to the window (data/dpo_batches)
//   4. the reference's response log-probs of every completion, computed once, then the reference
//      is gone: a fresh run scores with dpo.reference, or with the policy itself before its first
//      step when the reference is init_from (the same weights); a resume reads the numbers its
//      checkpoint saved (reference_logprobs.safetensors)
//   5. the loop, at the bottom: groups -> one forward per completion -> pair losses against
//      the cached reference (rl/dpo_loss) -> AdamW -> log -> eval (val loss, accuracy, margin,
//      rewards) -> checkpoint
//
//   rlhf train configs/demo/dpo.yaml
#include "rlhf/stages/dpo.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <map>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/load.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"
#include "rlhf/core/seed_streams.h"
#include "rlhf/data/comparisons.h"
#include "rlhf/data/dpo_batches.h"
#include "rlhf/data/epoch_sampler.h"
#include "rlhf/stages/dpo_step.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/lm_step.h"  // kIgnoreIndex
#include "rlhf/train/metrics.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/step_loop.h"

namespace rlhf {

namespace {

constexpr const char* kReferenceFile = "reference_logprobs.safetensors";

struct DpoData {
    std::vector<DpoGroup> train, val;  // completions numbered 0.. over train, then val
    int64_t completions = 0;
    std::string fingerprint;  // of every rendered completion and rank: a resume must see the same data
};

std::string data_fingerprint(const DpoData& d) {
    uint64_t h = fnv1a64(nullptr, 0);
    for (const auto* groups : {&d.train, &d.val}) {
        for (const auto& g : *groups) {
            for (const auto& c : g.completions) {
                const uint64_t n = c.size();
                h = fnv1a64(&n, sizeof n, h);
                h = fnv1a64(c.data(), c.size() * sizeof(int32_t), h);
            }
            h = fnv1a64(g.ranks.data(), g.ranks.size() * sizeof(int), h);
        }
    }
    return hex64(h);
}

DpoData load_dpo_data(const RunConfig& cfg, const Tokenizer& tokenizer) {
    const auto groups = read_comparison_groups(cfg, seed_stream::kDpoSplit);

    DpoRenderOptions render;
    render.max_ids = int64_t{cfg.model.block_size} + 1;
    render.truncate = cfg.data.too_long == TooLong::Truncate;
    render.min_prompt_fraction = cfg.data.min_prompt_fraction;
    DpoRenderCounts counts;
    DpoData data;
    data.train = render_dpo_groups(groups.train, tokenizer, render, 0, counts);
    data.val = render_dpo_groups(groups.val, tokenizer, render, count_completions(data.train), counts);
    data.completions = count_completions(data.train) + count_completions(data.val);
    spdlog::info("data: {} train groups ({} pairs), {} val groups ({} pairs), {} completions; longer than the window "
                 "({} tokens): {} prompts cut from the left, {} responses cut from the right, {} groups skipped "
                 "(data.too_long: {})",
                 data.train.size(), count_pairs(data.train), data.val.size(), count_pairs(data.val), data.completions,
                 cfg.model.block_size, counts.prompt_cut, counts.reply_cut, counts.skipped_groups, cfg.data.too_long);
    if (count_pairs(data.train) == 0) {
        throw Error(fmt::format("no usable comparison pair for training: all {} training group(s) have a completion "
                                "that does not fit the context window of {} tokens (data.too_long: {})",
                                groups.train.size(), cfg.model.block_size, cfg.data.too_long),
                    fmt::format("{}", fmt::join(cfg.data.files, ", ")),
                    render.truncate ? "shorten the prompts or lower data.min_prompt_fraction"
                                    : "use data.too_long: truncate, or shorter examples");
    }
    data.fingerprint = data_fingerprint(data);
    return data;
}

// dpo.reference as a frozen model on `device`: a policy checkpoint with the policy's vocabulary.
Gpt load_reference(const RunConfig& cfg, const Tokenizer& tokenizer, const torch::Device& device,
                   std::filesystem::path* dir) {
    const std::string where = cfg.source + ": dpo.reference";
    if (!std::filesystem::exists(cfg.dpo.reference)) {
        throw Error("dpo.reference '" + cfg.dpo.reference + "' does not exist", where,
                    "point it at an SFT run directory or one of its checkpoints (or remove it: init_from)");
    }
    *dir = resolve_checkpoint(cfg.dpo.reference);
    if (model_kind(read_checkpoint_info(*dir)) == ModelKind::RewardModel) {
        throw Error("dpo.reference is a reward model (" + dir->string() + ", stage: reward), not a policy", where,
                    "point it at the SFT run");
    }
    LoadedModel ref = load_model_from_checkpoint(*dir, device);
    if (!ref.tokenizer.same_vocabulary(tokenizer)) {
        throw Error("the reference's tokenizer is not the policy's (" + dir->string() + ")", where,
                    "use a checkpoint of the same lineage as init_from, with the chat tokens (an SFT run)");
    }
    if (ref.info.config.model.block_size < cfg.model.block_size) {
        throw Error("the reference's context (" + std::to_string(ref.info.config.model.block_size) +
                        " tokens) is shorter than the policy's (" + std::to_string(cfg.model.block_size) + ")",
                    where, "use a reference with at least the policy's block_size");
    }
    return ref.model;
}

// A resume: the reference log-probs the run computed at its start, for the very same data.
torch::Tensor saved_reference(const std::filesystem::path& resume_dir, const CheckpointInfo& info, const DpoData& data,
                              const RunConfig& cfg, const torch::Device& device) {
    const auto file = resume_dir / kReferenceFile;
    if (!std::filesystem::exists(file)) {
        throw Error("the checkpoint has no " + std::string(kReferenceFile), resume_dir.string(),
                    "it is damaged or not a dpo run's: start a new run");
    }
    const std::string saved_data = info.stage_state.value("data_fnv1a64", std::string());
    auto tensors = load_safetensors(file).tensors;
    if (saved_data != data.fingerprint || !tensors.count("logprobs") || tensors.at("logprobs").numel() != data.completions) {
        throw Error("the comparisons differ from those the run started with (" + std::to_string(data.completions) +
                        " completions now)",
                    cfg.source + ": data.files",
                    "resume with the data files, data.val_fraction and model window the run started with, or start a new run");
    }
    return tensors.at("logprobs").to(device, torch::kFloat32);
}

// The response log-probs of every completion, train and val, under `model` (the reference).
torch::Tensor reference_logprobs_of(GptImpl& model, const DpoData& data, const RunConfig& cfg, int64_t pad_id, bool bf16) {
    // Each call fills its own completions' entries and leaves the others 0.
    return reference_logprobs(model, data.train, data.completions, cfg.train.batch_size, pad_id, bf16) +
           reference_logprobs(model, data.val, data.completions, cfg.train.batch_size, pad_id, bf16);
}

// One micro-batch as the policy sees it: batch_size groups of K completions, padded to the
// longest (whose last id is only a target).
ActivationShape dpo_micro_batch(const std::vector<DpoGroup>& train, const RunConfig& cfg) {
    const GroupExtent e = group_extent(train);
    return {cfg.train.batch_size * e.rows, std::max<int64_t>(1, e.longest - 1), true, true};
}

}  // namespace

int run_dpo(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and the starting point --------------------------------------------------------
    const StageStart stage = begin_stage(cfg, opts.resume);
    const Runtime& rt = stage.rt;
    StartPoint start = load_start_point(cfg, stage.resume_dir);
    if (!stage.resuming() && model_kind(start.info) == ModelKind::RewardModel) {  // its trunk would silently become the policy
        throw Error("init_from is a reward model (" + start.dir.string() + ", stage: reward), not a policy",
                    cfg.source + ": init_from", "point init_from at the SFT run");
    }

    // 2. Policy, optimizer -----------------------------------------------------------------------
    const Tokenizer tokenizer = start.tokenizer;
    Gpt policy = start.trunk;
    policy->to(rt.device);
    policy->train();
    AdamW optimizer(*policy, cfg.optim);
    TrainState state = resume_or_announce(stage, optimizer, start.info.state, describe_start(start));

    // 3. Comparisons ------------------------------------------------------------------------------
    const DpoData data = load_dpo_data(cfg, tokenizer);

    // 4. The reference's log-probs, once -----------------------------------------------------------
    nlohmann::json lineage = start.lineage;
    torch::Tensor reference;  // (completions,) float32 on the device, by global completion index
    if (stage.resuming()) {
        reference = saved_reference(stage.resume_dir, start.info, data, cfg, rt.device);
    } else if (cfg.dpo.reference.empty()) {
        reference = reference_logprobs_of(*policy, data, cfg, tokenizer.pad_id(), stage.bf16);
        lineage["reference"] = lineage["checkpoint"];
        lineage["reference_weights_fnv1a64"] = lineage["weights_fnv1a64"];
    } else {
        std::filesystem::path ref_dir;
        Gpt ref = load_reference(cfg, tokenizer, rt.device, &ref_dir);
        reference = reference_logprobs_of(*ref, data, cfg, tokenizer.pad_id(), stage.bf16);
        lineage["reference"] = std::filesystem::absolute(ref_dir).string();
        lineage["reference_weights_fnv1a64"] = hex64(file_fnv1a64(model_weights_file(ref_dir)));
    }  // the reference model, if one was loaded, is freed here
    spdlog::info("reference: log-probs of {} completions {} {} (mean {:.3f} per response)", data.completions,
                 stage.resuming() ? "as computed at the start from" : "from", lineage["reference"].get<std::string>(),
                 reference.mean().item<double>());

    EpochSampler sampler(static_cast<int64_t>(data.train.size()), cfg.train.batch_size);
    const auto eval_val = fixed_batches(data.val, cfg, [&](const std::vector<const DpoGroup*>& groups) {
        return to_device(collate_dpo(groups, tokenizer.pad_id(), kIgnoreIndex), rt.device);
    });
    StageOutputs out(cfg, *policy, optimizer, stage, state);
    spdlog::info("{}; {} groups per step, {} steps per epoch; dpo.loss {}, beta {}{}",
                 describe_model(*policy, cfg, rt, dpo_micro_batch(data.train, cfg)), int64_t{cfg.train.batch_size} * cfg.train.grad_accum_steps,
                 steps_per_epoch(sampler, cfg), cfg.dpo.loss, cfg.dpo.beta,
                 cfg.dpo.label_smoothing > 0 ? fmt::format(", label smoothing {}", cfg.dpo.label_smoothing) : "");

    // 5. The loop --------------------------------------------------------------------------------
    StepLoop loop("dpo", cfg, state, out.metrics);
    auto evaluate = [&]() {
        if (eval_val.empty()) return;
        const rl::DpoMetrics m = dpo_eval(*policy, eval_val, reference, cfg.dpo, stage.bf16);
        state.last_val_loss = m.loss;
        loop.record({{"type", "eval"}, {"step", state.step}, {"val_loss", m.loss}, {"val_accuracy", m.accuracy},
                     {"val_margin", m.margin}, {"val_chosen_reward", m.chosen_reward},
                     {"val_rejected_reward", m.rejected_reward}, {"pairs", m.pairs}});
        spdlog::info("eval step {}: val loss {:.4f}, accuracy {:.1f}% of {} pairs, margin {:.3f}, reward chosen {:.3f} / "
                     "rejected {:.3f}",
                     state.step, m.loss, 100 * m.accuracy, m.pairs, m.margin, m.chosen_reward, m.rejected_reward);
    };
    // One step: this rank's groups -> one forward per completion -> pair losses against the
    // cached reference -> AdamW.
    auto train_step = [&](double lr) {
        std::vector<DpoBatch> micro_batches;
        for (const uint64_t index : next_micro_batches(state, cfg)) {
            std::vector<const DpoGroup*> groups;
            for (int64_t i : sampler.batch(stream_seed(cfg.runtime.seed, seed_stream::kDpoData), index)) groups.push_back(&data.train[static_cast<size_t>(i)]);
            micro_batches.push_back(to_device(collate_dpo(groups, tokenizer.pad_id(), kIgnoreIndex), rt.device));
        }
        const uint64_t epoch = sampler.epoch_of(state.next_batch_index - 1);
        const DpoStepStats s = dpo_train_step(*policy, optimizer, micro_batches, reference, cfg.dpo, lr,
                                              cfg.optim.grad_clip, stage.bf16, &out.grad_sync);
        state.tokens_seen += s.tokens;
        const rl::DpoMetrics& m = s.metrics;
        return StepReport{m.loss, s.grad_norm,
                          {{"accuracy", m.accuracy}, {"margin", m.margin}, {"chosen_reward", m.chosen_reward},
                           {"rejected_reward", m.rejected_reward}, {"groups", s.groups}, {"pairs", m.pairs},
                           {"completions", s.rows}, {"epoch", epoch}},
                          fmt::format(" | acc {:.2f} | margin {:.3f} | epoch {}", m.accuracy, m.margin, epoch),
                          fmt::format(" | acc {:.2f} | margin {:.3f} | reward chosen {:.3f} / rejected {:.3f} | {} groups, "
                                      "{} pairs, {} forwards | epoch {}",
                                      m.accuracy, m.margin, m.chosen_reward, m.rejected_reward, s.groups, m.pairs, s.rows,
                                      epoch)};
    };
    // The checkpoint keeps the reference's log-probs: a resume goes on against the same numbers.
    auto save = [&]() {
        CheckpointExtras extras;
        extras.tensor_files.push_back({kReferenceFile, {{"logprobs", reference}}});
        extras.stage_state = {{"lineage", lineage}, {"data_fnv1a64", data.fingerprint}, {"completions", data.completions}};
        extras.lora_base = start.lora_base;
        save_stage_checkpoint(cfg, state, *policy, optimizer, tokenizer, extras);
    };

    if (loop.eval_due()) evaluate();
    while (loop.running()) {
        loop.end_step(train_step(loop.lr()));
        if (loop.eval_due()) evaluate();
        if (loop.save_due()) save();
    }
    if (loop.finish() != 0) return loop.finish();
    log_run_done(loop.result(), state);
    return 0;
}

}  // namespace rlhf
