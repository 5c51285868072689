// Pieces every stage driver needs around its loop: the runtime and run directory, the tokenizer
// and (for pre-training) the token shards — each made once and reused by later runs and resumes —
// the resume of the optimizer and RNG streams, the gradient sync and metrics, the held-out split,
// the fixed evaluation batches, this rank's micro-batches, and the checkpoint save.
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "rlhf/config/config.h"
#include "rlhf/core/distributed.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/comparisons.h"
#include "rlhf/data/epoch_sampler.h"
#include "rlhf/model/activation_memory.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/tokenizer/tokenizer.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/optimizer.h"

namespace rlhf {

// This process's runtime: logging, threads, seed and device, and the process group when torchrun
// or `rlhf launch` started it (RANK, WORLD_SIZE, …): then "cuda" means cuda:LOCAL_RANK, threads 0
// shares the cores among the node's ranks, and train.grad_accum_steps must divide by the world size.
// The process group is distributed() from then on.
Runtime init_stage_runtime(const RunConfig& cfg);

// Creates out_dir, starts its train.log, and refuses to overwrite a run that has checkpoints
// unless resuming. Returns the newest checkpoint when resuming (empty path if none).
std::filesystem::path open_run_dir(const RunConfig& cfg, bool resume);

// tokenizer.path if set; else the tokenizer stored with data.shards; else one trained from
// data.text into <out_dir>/tokenizer (reused while the settings and each input's path, size
// and modification time are unchanged).
Tokenizer resolve_tokenizer(const RunConfig& cfg);

// data.shards if set; else data.text tokenized into <out_dir>/data (reused while the inputs
// (path, size, modification time), val_fraction and tokenizer are unchanged). Returns the
// shard directory.
std::filesystem::path resolve_token_shards(const RunConfig& cfg, const Tokenizer& tokenizer);

// model.vocab_size = 0 becomes the tokenizer's size; a smaller explicit size is an error.
void resolve_vocab_size(RunConfig& cfg, const Tokenizer& tokenizer);

// What every stage opens first: the runtime (init_stage_runtime), the run directory
// (open_run_dir) and, with --resume, the checkpoint the run goes on from.
struct StageStart {
    Runtime rt;
    std::filesystem::path resume_dir;  // empty: a fresh run
    bool bf16 = false;                 // runtime.dtype asks for bf16 autocast
    bool resuming() const { return !resume_dir.empty(); }
};
StageStart begin_stage(const RunConfig& cfg, bool resume);

// A resume: the optimizer's moments and update count, the RNG streams and `saved` (the
// checkpoint's TrainState), with a log line. A fresh run: logs `fresh_line` (where the weights
// come from) and returns a new TrainState.
TrainState resume_or_announce(const StageStart& stage, AdamW& optimizer, const TrainState& saved,
                              const std::string& fresh_line);

// "starting from DIR (step N of run R, stage S)": a fine-tuning stage's fresh start.
std::string describe_start(const StartPoint& start);

// "model: N parameters (W MiB of weights; G MiB of gradients and AdamW moments; ~A MiB of
// activations per micro-batch of R x T tokens), context C, vocab V, DTYPE on DEVICE with T threads"
// — the start of the line every stage logs before its loop; with model.lora, how many of the
// parameters train. `micro_batch`: what one forward + backward of the stage holds (model/activation_memory).
std::string describe_model(const torch::nn::Module& model, const RunConfig& cfg, const Runtime& rt,
                           const ActivationShape& micro_batch);

// "~A MiB of activations per micro-batch of R x [up to ]T tokens" for `model` (with checkpointing:
// the peak, one segment rebuilt).
std::string describe_activations(const ModelConfig& model, const RunConfig& cfg, const ActivationShape& micro_batch);

// The most completions in a group and the longest completion (in ids) over `groups` (DPO's and
// the reward stage's groups of K completions): the size of what a micro-batch pads to.
struct GroupExtent {
    int64_t rows = 1, longest = 1;
};
template <class Group>
GroupExtent group_extent(const std::vector<Group>& groups) {
    GroupExtent e;
    for (const auto& g : groups) {
        e.rows = std::max(e.rows, static_cast<int64_t>(g.completions.size()));
        for (const auto& c : g.completions) e.longest = std::max(e.longest, static_cast<int64_t>(c.size()));
    }
    return e;
}

// Optimizer steps per pass over a sampler's items.
int64_t steps_per_epoch(const EpochSampler& sampler, const RunConfig& cfg);

// The run's outputs while it trains. Made after the model is on its device (and resumed): every
// rank starts from rank 0's weights, the optimizer's parameters get their gradients summed over
// ranks, config.yaml is written (rank 0) and metrics.jsonl opened, keeping a resumed run's
// records through its step.
struct StageOutputs {
    StageOutputs(const RunConfig& cfg, torch::nn::Module& model, AdamW& optimizer, const StageStart& stage,
                 const TrainState& state);
    GradientSync grad_sync;
    MetricsWriter metrics;
};

// What sft, reward and classify save beside the model: the lineage (and a LoRA run's base).
CheckpointExtras lineage_extras(const StartPoint& start);

// Saves the model, the optimizer's state and `extras` as checkpoints/step_N (keeping
// checkpoint.keep_last) and logs where.
void save_stage_checkpoint(const RunConfig& cfg, const TrainState& state, torch::nn::Module& model,
                           const AdamW& optimizer, const Tokenizer& tokenizer, const CheckpointExtras& extras = {});

// The global indices of this rank's micro-batches of the next step, advancing
// state.next_batch_index past the step's train.grad_accum_steps (all ranks' together).
std::vector<uint64_t> next_micro_batches(TrainState& state, const RunConfig& cfg);

// Moves a share data.val_fraction of `train` (drawn by the seed stream, not the file's tail) into
// `val`; nothing when data.val_files are given, the fraction is 0 or there are fewer than 2 items.
template <class Item>
void split_held_out(std::vector<Item>& train, std::vector<Item>& val, const RunConfig& cfg, uint64_t stream) {
    if (!cfg.data.val_files.empty() || cfg.data.val_fraction <= 0 || train.size() < 2) return;
    const auto is_val = held_out_items(train.size(), cfg.data.val_fraction, cfg.runtime.seed ^ stream);
    std::vector<Item> kept;
    for (size_t i = 0; i < train.size(); ++i) (is_val[i] ? val : kept).push_back(std::move(train[i]));
    train = std::move(kept);
}

// data.files as training items and data.val_files (or else a held-out share of data.files) as
// validation items, with `read(files, &stats)` — one of data/'s readers. Warns once of the bad
// records data.on_error: skip left out of either.
template <class Item, class Stats>
struct TrainValItems {
    std::vector<Item> train, val;
    Stats train_stats, val_stats;
};
template <class Stats, class Read>
auto read_train_val(const RunConfig& cfg, uint64_t split_stream, Read read) {
    using Items = decltype(read(cfg.data.files, static_cast<Stats*>(nullptr)));
    TrainValItems<typename Items::value_type, Stats> out;
    out.train = read(cfg.data.files, &out.train_stats);
    if (!cfg.data.val_files.empty()) out.val = read(cfg.data.val_files, &out.val_stats);
    split_held_out(out.train, out.val, cfg, split_stream);
    if (const int64_t skipped = out.train_stats.skipped + out.val_stats.skipped; skipped > 0) {
        spdlog::warn("data: skipped {} bad record(s) (data.on_error: skip); the first: {}", skipped,
                     out.train_stats.first_skip.empty() ? out.val_stats.first_skip : out.train_stats.first_skip);
    }
    return out;
}

// The ranked groups of data.files (train) and data.val_files or a held-out share (val), in
// data.format; says how many records were ties (no pair).
TrainValItems<RankedGroup, ComparisonReadStats> read_comparison_groups(const RunConfig& cfg, uint64_t split_stream);

// The evaluation's fixed batches: the first train.eval_batches · train.batch_size items, in
// batches of train.batch_size, each made by `collate(std::vector<const Item*>)`.
template <class Item, class Collate>
auto fixed_batches(const std::vector<Item>& items, const RunConfig& cfg, Collate collate) {
    using Batch = decltype(collate(std::vector<const Item*>()));
    std::vector<Batch> out;
    const size_t batch_size = static_cast<size_t>(cfg.train.batch_size);
    for (size_t i = 0; i < items.size() && out.size() < static_cast<size_t>(cfg.train.eval_batches); i += batch_size) {
        std::vector<const Item*> rows;
        for (size_t j = i; j < std::min(items.size(), i + batch_size); ++j) rows.push_back(&items[j]);
        out.push_back(collate(rows));
    }
    return out;
}

// Logs sampled answers as "  Q: <prompt>\n    A: <answer>", each on one line and clipped.
void log_samples(const std::vector<std::pair<std::string, std::string>>& samples);

}  // namespace rlhf
