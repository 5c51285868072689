// Stage 3, the reward model. Top to bottom:
//   1. runtime, run directory; the starting point: init_from (or our own latest checkpoint)
//   2. the trunk + a scalar head (no dropout: config validation refuses it), optimizer
//   3. comparisons: read -> train/val split -> render each completion in the chat format ->
//      fit the window; the reference responses for normalisation
//   4. the loop, at the bottom: groups -> one forward per completion -> K-wise pair loss ->
//      AdamW -> log -> eval (val pairwise accuracy, margin, reward mean/std of better and worse)
//      -> normalise on the reference set -> checkpoint
//
//   rlhf train configs/reward/oasst_ranked.yaml
#include "rlhf/stages/reward.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <map>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/logging.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/progress.h"
#include "rlhf/core/runtime.h"
#include "rlhf/core/seed_streams.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/comparisons.h"
#include "rlhf/data/epoch_sampler.h"
#include "rlhf/data/ranked_batches.h"
#include "rlhf/data/sft_examples.h"
#include "rlhf/model/reward_model.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/reward_step.h"
#include "rlhf/train/step_loop.h"

namespace rlhf {

namespace {

struct RewardData {
    std::vector<RenderedGroup> train, val;
    std::vector<std::vector<int32_t>> reference;  // prompt + response ids the normalisation is fitted on
    std::string reference_source;
};

// Renders prompt + response and fits it to the window (prompt cut from the left, response from
// the right); nullopt when nothing of the response would remain.
struct FitCounts {
    int64_t prompt_cut = 0, reply_cut = 0;
};
std::optional<std::vector<int32_t>> render_completion(const std::vector<ChatTurn>& prompt, const std::string& response,
                                                      const Tokenizer& tokenizer, const RunConfig& cfg, FitCounts& counts) {
    auto turns = prompt;
    turns.push_back({"assistant", response});
    auto r = render_conversation(turns, tokenizer);
    if (static_cast<int64_t>(r.ids.size()) <= cfg.model.block_size) return std::move(r.ids);
    if (cfg.data.too_long != TooLong::Truncate) return std::nullopt;
    auto fitted = fit_to_window(std::move(r), cfg.model.block_size, cfg.data.min_prompt_fraction);
    if (!fitted) return std::nullopt;
    counts.prompt_cut += fitted->prompt_truncated;
    counts.reply_cut += fitted->response_truncated;
    return std::move(fitted->ids);
}

RewardData load_reward_data(const RunConfig& cfg, const Tokenizer& tokenizer) {
    const auto groups = read_comparison_groups(cfg, seed_stream::kRewardSplit);
    std::map<size_t, int64_t> k_counts;
    for (const auto& g : groups.train) ++k_counts[g.responses.size()];
    std::string k_text;
    for (const auto& [k, n] : k_counts) k_text += fmt::format("{}K={}: {}", k_text.empty() ? "" : ", ", k, n);

    FitCounts counts;
    int64_t dropped = 0;
    auto render = [&](const std::vector<RankedGroup>& split, std::vector<RenderedGroup>& out) {
        for (const auto& g : split) {
            RenderedGroup r;
            r.ranks = g.ranks;
            bool ok = true;
            for (const auto& resp : g.responses) {
                auto ids = render_completion(g.prompt, resp, tokenizer, cfg, counts);
                if (!ids) {
                    ok = false;
                    break;
                }
                r.completions.push_back(std::move(*ids));
            }
            if (ok) out.push_back(std::move(r));
            else ++dropped;
        }
    };
    RewardData data;
    render(groups.train, data.train);
    render(groups.val, data.val);
    int64_t pairs = 0;
    for (const auto& g : data.train) pairs += static_cast<int64_t>(ranked_pairs(g.ranks).size());
    spdlog::info("data: {} train groups ({}; {} pairs), {} val groups; longer than the window ({} tokens): {} prompts cut "
                 "from the left, {} responses cut from the right, {} groups skipped (data.too_long: {})",
                 data.train.size(), k_text, pairs, data.val.size(), cfg.model.block_size, counts.prompt_cut,
                 counts.reply_cut, dropped, cfg.data.too_long);
    if (data.train.empty()) {
        throw Error("no comparison group fits the context window of " + std::to_string(cfg.model.block_size) + " tokens",
                    cfg.data.files.front(), "use data.too_long: truncate or shorter examples");
    }

    // The reference set: labeler demonstrations if given, else the best response of each
    // training group (the closest thing to a demonstration the comparisons hold).
    std::vector<std::vector<int32_t>> reference;
    FitCounts ref_counts;
    if (!cfg.reward.reference_files.empty()) {
        SftReadOptions sft_read;
        sft_read.skip_bad = cfg.data.on_error == OnError::Skip;
        for (const auto& conv : read_sft_examples(cfg.reward.reference_files, sft_read)) {
            std::vector<ChatTurn> prompt(conv.turns.begin(), conv.turns.end() - 1);
            if (auto ids = render_completion(prompt, conv.turns.back().content, tokenizer, cfg, ref_counts)) {
                reference.push_back(std::move(*ids));
            }
        }
        data.reference_source = fmt::format("{}", fmt::join(cfg.reward.reference_files, ", "));
    } else {
        for (const auto& g : data.train) {
            const auto best = std::min_element(g.ranks.begin(), g.ranks.end()) - g.ranks.begin();
            reference.push_back(g.completions[static_cast<size_t>(best)]);
        }
        data.reference_source = "the best response of each training group";
    }
    seeded_shuffle(reference, stream_seed(cfg.runtime.seed, seed_stream::kRewardReference));
    if (reference.size() > static_cast<size_t>(cfg.reward.reference_count)) reference.resize(static_cast<size_t>(cfg.reward.reference_count));
    data.reference = std::move(reference);
    return data;
}

// One forward of the reward model: runs of whole groups of at most reward.micro_batch_tokens
// padded tokens (a group longer than that alone), or all of a micro-batch's groups.
ActivationShape reward_micro_batch(const std::vector<RenderedGroup>& train, const RunConfig& cfg) {
    const GroupExtent e = group_extent(train);
    const int64_t all = cfg.train.batch_size * e.rows, budget = cfg.reward.micro_batch_tokens / e.longest;
    const int64_t rows = cfg.reward.micro_batch_tokens > 0 ? std::min(all, std::max(e.rows, budget)) : all;
    return {rows, e.longest, true, /*lm_head=*/false};
}

}  // namespace

int run_reward(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and the starting point --------------------------------------------------------
    const StageStart stage = begin_stage(cfg, opts.resume);
    const Runtime& rt = stage.rt;
    StartPoint start = load_start_point(cfg, stage.resume_dir);

    // 2. Model, optimizer ------------------------------------------------------------------------
    const Tokenizer tokenizer = start.tokenizer;
    RewardModel model(start.trunk);
    if (stage.resuming()) load_model_weights(stage.resume_dir, *model);  // the trained head and its normalisation too
    model->to(rt.device);
    model->train();
    AdamW optimizer(*model, cfg.optim);
    TrainState state = resume_or_announce(stage, optimizer, start.info.state, describe_start(start) + "; a new scalar head");

    // 3. Comparisons ------------------------------------------------------------------------------
    const RewardData data = load_reward_data(cfg, tokenizer);
    EpochSampler sampler(static_cast<int64_t>(data.train.size()), cfg.train.batch_size);
    const auto eval_val = fixed_batches(data.val, cfg, [&](const std::vector<const RenderedGroup*>& groups) {
        return to_device(collate_groups(groups, tokenizer.pad_id()), rt.device);
    });
    StageOutputs out(cfg, *model, optimizer, stage, state);
    spdlog::info("{}; {} groups per step, {} steps per epoch", describe_model(*model, cfg, rt, reward_micro_batch(data.train, cfg)),
                 int64_t{cfg.train.batch_size} * cfg.train.grad_accum_steps, steps_per_epoch(sampler, cfg));

    // 4. The loop --------------------------------------------------------------------------------
    StepLoop loop("reward", cfg, state, out.metrics);
    auto evaluate = [&]() {
        if (eval_val.empty()) return;
        const PairStats s = reward_eval(*model, eval_val, stage.bf16, cfg.reward.margin);
        state.last_val_loss = s.loss;
        loop.record({{"type", "eval"}, {"step", state.step}, {"val_loss", s.loss}, {"val_accuracy", s.accuracy},
                     {"val_margin", s.margin}, {"better_mean", s.better_mean}, {"better_std", s.better_std},
                     {"worse_mean", s.worse_mean}, {"worse_std", s.worse_std}, {"groups", s.groups}, {"pairs", s.pairs}});
        spdlog::info("eval step {}: val loss {:.4f}, pairwise accuracy {:.1f}% of {} pairs, margin {:.3f}, reward better "
                     "{:.3f} ± {:.3f} / worse {:.3f} ± {:.3f}",
                     state.step, s.loss, 100 * s.accuracy, s.pairs, s.margin, s.better_mean, s.better_std,
                     s.worse_mean, s.worse_std);
    };
    // Every saved reward model is ready to use: its scores are shifted (and scaled) so that the
    // reference responses score mean 0 (std 1).
    auto normalise = [&]() {
        if (cfg.reward.normalize == RewardNormalize::None) return;
        auto raw = raw_rewards_of(*model, data.reference, tokenizer.pad_id(), cfg.train.batch_size, stage.bf16);
        model->set_normalisation(raw.to(rt.device), cfg.reward.normalize == RewardNormalize::GainBias);
        const double gain = model->score->norm_gain.item<double>(), bias = model->score->norm_bias.item<double>();
        loop.record({{"type", "normalisation"}, {"step", state.step}, {"gain", gain}, {"bias", bias},
                     {"reference_raw_mean", raw.mean().item<double>()},
                     {"reference_raw_std", raw.std(false).item<double>()}, {"reference_count", raw.size(0)}});
        spdlog::info("normalised: reward = {:.4f} * raw + {:.4f} gives the {} reference responses ({}) mean 0{}", gain,
                     bias, raw.size(0), data.reference_source, cfg.reward.normalize == RewardNormalize::GainBias ? ", std 1" : "");
    };
    // One step: this rank's ranked groups -> one forward per completion -> K-wise pair loss -> AdamW.
    auto train_step = [&](double lr) {
        std::vector<RankedBatch> micro_batches;
        for (const uint64_t index : next_micro_batches(state, cfg)) {
            std::vector<const RenderedGroup*> groups;
            for (int64_t i : sampler.batch(stream_seed(cfg.runtime.seed, seed_stream::kRewardData), index)) groups.push_back(&data.train[static_cast<size_t>(i)]);
            // In runs of at most reward.micro_batch_tokens: the same gradient, bounded activations.
            for (const auto& run : split_by_tokens(groups, cfg.reward.micro_batch_tokens)) {
                micro_batches.push_back(to_device(collate_groups(run, tokenizer.pad_id()), rt.device));
            }
        }
        const uint64_t epoch = sampler.epoch_of(state.next_batch_index - 1);
        const RewardStepStats s = reward_train_step(*model, optimizer, micro_batches, lr, cfg.optim.grad_clip, stage.bf16,
                                                    cfg.reward.margin, &out.grad_sync);
        state.tokens_seen += s.tokens;
        return StepReport{s.loss, s.grad_norm,
                          {{"accuracy", s.accuracy}, {"groups", s.groups}, {"pairs", s.pairs}, {"completions", s.rows}, {"epoch", epoch}},
                          fmt::format(" | acc {:.2f} | epoch {}", s.accuracy, epoch),
                          fmt::format(" | batch acc {:.2f} | {} groups, {} pairs, {} forwards | epoch {}", s.accuracy, s.groups,
                                      s.pairs, s.rows, epoch)};
    };

    if (loop.eval_due()) evaluate();
    while (loop.running()) {
        loop.end_step(train_step(loop.lr()));
        if (loop.eval_due()) evaluate();
        if (loop.save_due()) {
            normalise();
            save_stage_checkpoint(cfg, state, *model, optimizer, tokenizer, lineage_extras(start));
        }
    }
    if (loop.finish() != 0) return loop.finish();
    log_run_done(loop.result(), state);
    return 0;
}

}  // namespace rlhf
