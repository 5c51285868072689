// Stage 3, the reward model. Top to bottom:
//   1. runtime, run directory; the starting point: init_from (or our own latest checkpoint)
//   2. the trunk + a scalar head (dropout off), optimizer
//   3. comparisons: read -> train/val split -> render each completion in the chat format ->
//      fit the window; the reference responses for normalisation
//   4. loop (train/training_loop): groups -> one forward per completion -> K-wise pair loss ->
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
#include "rlhf/train/training_loop.h"

namespace rlhf {

namespace {

constexpr uint64_t kTrainDataStream = 0x726d2d7472616e00ULL;
constexpr uint64_t kSplitStream = 0x726d2d73706c7400ULL;
constexpr uint64_t kReferenceStream = 0x726d2d7265660000ULL;

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
    if (cfg.data.too_long != "truncate") return std::nullopt;
    auto fitted = fit_to_window(std::move(r), cfg.model.block_size, cfg.data.min_prompt_fraction);
    if (!fitted) return std::nullopt;
    counts.prompt_cut += fitted->prompt_truncated;
    counts.reply_cut += fitted->response_truncated;
    return std::move(fitted->ids);
}

RewardData load_reward_data(const RunConfig& cfg, const Tokenizer& tokenizer) {
    ComparisonReadOptions read;
    read.format = cfg.data.format;
    read.prompt_field = cfg.data.fields.prompt;
    read.skip_bad = cfg.data.on_error == "skip";
    ComparisonReadStats stats, val_stats;
    auto train_groups = read_comparisons(cfg.data.files, read, &stats);
    std::vector<RankedGroup> val_groups;
    if (!cfg.data.val_files.empty()) {
        val_groups = read_comparisons(cfg.data.val_files, read, &val_stats);
    } else {
        const auto is_val = held_out_items(train_groups.size(), cfg.data.val_fraction, cfg.runtime.seed ^ kSplitStream);
        std::vector<RankedGroup> kept;
        for (size_t i = 0; i < train_groups.size(); ++i) (is_val[i] ? val_groups : kept).push_back(std::move(train_groups[i]));
        train_groups = std::move(kept);
    }
    if (stats.skipped + val_stats.skipped > 0) {
        spdlog::warn("data: skipped {} bad record(s) (data.on_error: skip); the first: {}", stats.skipped + val_stats.skipped,
                     stats.first_skip.empty() ? val_stats.first_skip : stats.first_skip);
    }
    if (stats.tied_records + val_stats.tied_records > 0) {
        spdlog::info("data: {} record(s) judged a tie give no pair and were left out", stats.tied_records + val_stats.tied_records);
    }
    std::map<size_t, int64_t> k_counts;
    for (const auto& g : train_groups) ++k_counts[g.responses.size()];
    std::string k_text;
    for (const auto& [k, n] : k_counts) k_text += fmt::format("{}K={}: {}", k_text.empty() ? "" : ", ", k, n);

    FitCounts counts;
    int64_t dropped = 0;
    auto render = [&](const std::vector<RankedGroup>& groups, std::vector<RenderedGroup>& out) {
        for (const auto& g : groups) {
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
    render(train_groups, data.train);
    render(val_groups, data.val);
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
        sft_read.skip_bad = read.skip_bad;
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
    seeded_shuffle(reference, cfg.runtime.seed ^ kReferenceStream);
    if (reference.size() > static_cast<size_t>(cfg.reward.reference_count)) reference.resize(static_cast<size_t>(cfg.reward.reference_count));
    data.reference = std::move(reference);
    return data;
}

std::vector<RankedBatch> val_batches(const std::vector<RenderedGroup>& val, const RunConfig& cfg, int64_t pad_id,
                                     const torch::Device& device) {
    std::vector<RankedBatch> out;
    for (size_t i = 0; i < val.size() && out.size() < static_cast<size_t>(cfg.train.eval_batches);
         i += static_cast<size_t>(cfg.train.batch_size)) {
        std::vector<const RenderedGroup*> groups;
        for (size_t j = i; j < std::min(val.size(), i + static_cast<size_t>(cfg.train.batch_size)); ++j) groups.push_back(&val[j]);
        out.push_back(to_device(collate_groups(groups, pad_id), device));
    }
    return out;
}

}  // namespace

int run_reward(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and the starting point --------------------------------------------------------
    Runtime rt = init_stage_runtime(cfg);
    const Distributed& dist = distributed();
    const bool bf16 = wants_bf16(cfg.runtime.dtype);
    if (cfg.model.dropout > 0) {
        throw Error("the reward model trains without dropout (a noisy reward would be learned against)",
                    cfg.source + ": model.dropout", "remove the key");
    }
    const auto resume_dir = open_run_dir(cfg, opts.resume);
    const std::filesystem::path out_dir = cfg.out_dir;
    StartPoint start = load_start_point(cfg, resume_dir);
    cfg.model.dropout = 0.0;

    // 2. Model, optimizer ------------------------------------------------------------------------
    const Tokenizer tokenizer = start.tokenizer;
    RewardModel model(start.trunk);
    if (!resume_dir.empty()) load_model_weights(resume_dir, *model);  // the trained head and its normalisation too
    model->to(rt.device);
    model->train();
    AdamW optimizer(*model, cfg.optim);
    TrainState state;
    if (!resume_dir.empty()) {
        OptimizerState saved = load_optimizer_state(resume_dir);
        optimizer.load_state(saved.tensors, saved.step, (resume_dir / "optimizer.safetensors").string());
        restore_rng_states(resume_dir);
        state = start.info.state;
        spdlog::info("resumed from {} (step {})", resume_dir.string(), state.step);
    } else {
        spdlog::info("starting from {} (step {} of run {}, stage {}); a new scalar head", start.dir.string(),
                     start.info.state.step, start.info.config.out_dir, start.info.config.stage);
    }

    // 3. Comparisons ------------------------------------------------------------------------------
    const RewardData data = load_reward_data(cfg, tokenizer);
    EpochSampler sampler(static_cast<int64_t>(data.train.size()), cfg.train.batch_size);
    const auto eval_val = val_batches(data.val, cfg, tokenizer.pad_id(), rt.device);
    broadcast_module(*model, dist);
    GradientSync grad_sync(dist, optimizer.trained_parameters(), mib_to_bytes(cfg.runtime.dist_bucket_mb));
    if (dist.is_main()) atomic_write(out_dir / "config.yaml", dump_config(cfg));
    MetricsWriter metrics(out_dir / "metrics.jsonl", resume_dir.empty() ? -1 : state.step);
    spdlog::info("model: {} parameters, context {}, vocab {}, {} on {} with {} threads; {} groups per step, {} steps per epoch",
                 model->num_parameters(), cfg.model.block_size, cfg.model.vocab_size, cfg.runtime.dtype,
                 rt.device.str(), rt.threads, int64_t{cfg.train.batch_size} * cfg.train.grad_accum_steps,
                 (sampler.batches_per_epoch() + cfg.train.grad_accum_steps - 1) / cfg.train.grad_accum_steps);

    auto evaluate = [&]() {
        if (eval_val.empty()) return;
        const PairStats s = reward_eval(*model, eval_val, bf16, cfg.reward.margin);
        state.last_val_loss = s.loss;
        metrics.write({{"type", "eval"}, {"step", state.step}, {"val_loss", s.loss}, {"val_accuracy", s.accuracy},
                       {"val_margin", s.margin}, {"better_mean", s.better_mean}, {"better_std", s.better_std},
                       {"worse_mean", s.worse_mean}, {"worse_std", s.worse_std}, {"groups", s.groups}, {"pairs", s.pairs}});
        spdlog::info("eval step {}: val loss {:.4f}, pairwise accuracy {:.1f}% of {} pairs, margin {:.3f}, reward better "
                     "{:.3f} ± {:.3f} / worse {:.3f} ± {:.3f}",
                     state.step, s.loss, 100 * s.accuracy, s.pairs, s.margin, s.better_mean, s.better_std,
                     s.worse_mean, s.worse_std);
    };
    auto normalise = [&]() {
        if (cfg.reward.normalize == "none") return;
        auto raw = raw_rewards_of(*model, data.reference, tokenizer.pad_id(), cfg.train.batch_size, bf16);
        model->set_normalisation(raw.to(rt.device), cfg.reward.normalize == "gain_bias");
        const double gain = model->score->norm_gain.item<double>(), bias = model->score->norm_bias.item<double>();
        metrics.write({{"type", "normalisation"}, {"step", state.step}, {"gain", gain}, {"bias", bias},
                       {"reference_raw_mean", raw.mean().item<double>()},
                       {"reference_raw_std", raw.std(false).item<double>()}, {"reference_count", raw.size(0)}});
        spdlog::info("normalised: reward = {:.4f} * raw + {:.4f} gives the {} reference responses ({}) mean 0{}", gain,
                     bias, raw.size(0), data.reference_source, cfg.reward.normalize == "gain_bias" ? ", std 1" : "");
    };
    auto checkpoint = [&]() {
        normalise();  // every saved reward model is ready to use
        auto dir = save_checkpoint(out_dir / "checkpoints", cfg, state, *model,
                                   {optimizer.state_tensors(), optimizer.steps_taken()}, tokenizer,
                                   cfg.checkpoint.keep_last, {{}, {{"lineage", start.lineage}}});
        spdlog::info("checkpoint saved: {}", dir.string());
    };

    // 4. The loop --------------------------------------------------------------------------------
    TrainingLoopHooks hooks;
    hooks.evaluate = evaluate;
    hooks.checkpoint = checkpoint;
    hooks.step = [&](double lr) {
        std::vector<RankedBatch> micro_batches;
        uint64_t epoch = 0;
        // This rank's share of the step's ranked groups (all of them in a single process).
        for (const uint64_t index : my_micro_batches(state.next_batch_index, cfg.train.grad_accum_steps, dist)) {
            std::vector<const RenderedGroup*> groups;
            for (int64_t i : sampler.batch(cfg.runtime.seed ^ kTrainDataStream, index)) groups.push_back(&data.train[static_cast<size_t>(i)]);
            // In runs of at most reward.micro_batch_tokens: the same gradient, bounded activations.
            for (const auto& run : split_by_tokens(groups, cfg.reward.micro_batch_tokens)) {
                micro_batches.push_back(to_device(collate_groups(run, tokenizer.pad_id()), rt.device));
            }
        }
        state.next_batch_index += static_cast<uint64_t>(cfg.train.grad_accum_steps);
        epoch = sampler.epoch_of(state.next_batch_index - 1);
        const RewardStepStats s = reward_train_step(*model, optimizer, micro_batches, lr, cfg.optim.grad_clip, bf16,
                                                    cfg.reward.margin, &grad_sync);
        state.tokens_seen += s.tokens;
        StepReport r{s.loss, s.grad_norm,
                     {{"accuracy", s.accuracy}, {"groups", s.groups}, {"pairs", s.pairs}, {"completions", s.rows}, {"epoch", epoch}},
                     fmt::format(" | acc {:.2f} | epoch {}", s.accuracy, epoch),
                     fmt::format(" | batch acc {:.2f} | {} groups, {} pairs, {} forwards | epoch {}", s.accuracy, s.groups,
                                 s.pairs, s.rows, epoch)};
        return r;
    };
    const LoopResult done = run_training_loop("reward", cfg, state, metrics, hooks);
    if (done.exit_code != 0) return done.exit_code;
    log_run_done(done, state);
    return 0;
}

}  // namespace rlhf
