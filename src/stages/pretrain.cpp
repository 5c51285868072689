// Stage 1, pre-training. The whole loop is here, top to bottom:
//   1. runtime, run directory, tokenizer, token shards, model, optimizer
//   2. resume: weights, optimizer moments, RNG streams, data cursor from checkpoints/latest
//   3. loop (train/training_loop): draw this rank's micro-batches -> forward/backward (gradients
//      summed over ranks in a distributed run) -> clip -> AdamW step -> log -> eval -> checkpoint
//
//   rlhf train configs/pretrain/shakespeare_char.yaml      (nanoGPT's baby GPT, ~2 min on 2 cores)
#include "rlhf/stages/pretrain.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/logging.h"
#include "rlhf/core/progress.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/model/gpt.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/training_loop.h"
#include "rlhf/core/precision.h"

namespace rlhf {

namespace {

// Independent random streams derived from runtime.seed: the training sampler and the fixed
// evaluation batches never share draws with each other or with weight init / dropout.
constexpr uint64_t kTrainDataStream = 0x7472616e2d646174ULL;
constexpr uint64_t kEvalDataStream = 0x6576616c2d646174ULL;

std::vector<LmBatch> fixed_batches(const TokenShards& shards, const RunConfig& cfg, const torch::Device& device) {
    std::vector<LmBatch> out;
    for (int i = 0; i < cfg.train.eval_batches; ++i) {
        out.push_back(lm_batch_from_windows(shards.batch(cfg.train.batch_size, cfg.model.block_size,
                                               cfg.runtime.seed ^ kEvalDataStream, static_cast<uint64_t>(i)),
                                  device));
    }
    return out;
}

}  // namespace

int run_pretrain(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and inputs -------------------------------------------------------------------
    Runtime rt = init_stage_runtime(cfg);
    const Distributed& dist = distributed();
    const bool bf16 = wants_bf16(cfg.runtime.dtype);
    const auto resume_dir = open_run_dir(cfg, opts.resume);
    const std::filesystem::path out_dir = cfg.out_dir;

    // Rank 0 trains the tokenizer and tokenizes the text (once, cached in out_dir); the others
    // then load what it made.
    Tokenizer tokenizer;
    std::filesystem::path shard_dir;
    dist.main_first("the tokenizer and token shards", [&] {
        tokenizer = resume_dir.empty() ? resolve_tokenizer(cfg) : load_checkpoint_tokenizer(resume_dir);
        shard_dir = resolve_token_shards(cfg, tokenizer);
    });
    TokenShards train_data(shard_dir, "train", tokenizer.fingerprint());
    std::unique_ptr<TokenShards> val_data;
    // meta.json's count decides, so a deleted val shard is an error rather than a run without validation.
    if (std::filesystem::exists(shard_dir / "val_000000.bin") || shards_listed_tokens(shard_dir, "val") > 0) {
        val_data = std::make_unique<TokenShards>(shard_dir, "val", tokenizer.fingerprint());
    }
    resolve_vocab_size(cfg, tokenizer);
    if (train_data.vocab_size() > static_cast<uint32_t>(cfg.model.vocab_size)) {
        throw Error("shards hold token ids up to " + std::to_string(train_data.vocab_size()) +
                        " but the model's vocabulary is " + std::to_string(cfg.model.vocab_size),
                    shard_dir.string(), "prepare the data with the tokenizer the model uses");
    }
    for (const TokenShards* split : {&train_data, val_data.get()}) {  // fail now, not at step 250
        if (split && split->num_windows(cfg.model.block_size + 1) <= 0) {
            throw Error((split == &train_data ? std::string("train") : std::string("val")) + " split has only " +
                            std::to_string(split->total_tokens()) + " tokens, fewer than block_size + 1 = " +
                            std::to_string(cfg.model.block_size + 1),
                        shard_dir.string(), "use more text, a smaller data.val_fraction, or a smaller model.block_size");
        }
    }

    // 2. Model and optimizer (seeded above, so initial weights depend on runtime.seed only) -----
    CheckpointInfo resume_info;
    if (!resume_dir.empty()) {  // a shape mismatch is reported before a wrong-sized model is allocated
        resume_info = read_checkpoint_info(resume_dir);
        check_same_model_shape(resume_info.config.model, cfg.model, cfg.source);
    }
    Gpt model(cfg.model);
    model->to(rt.device);
    model->train();
    AdamW optimizer(*model, cfg.optim);
    TrainState state;
    if (!resume_dir.empty()) {
        load_model_weights(resume_dir, *model);
        OptimizerState saved = load_optimizer_state(resume_dir);
        optimizer.load_state(saved.tensors, saved.step, (resume_dir / "optimizer.safetensors").string());
        restore_rng_states(resume_dir);
        state = resume_info.state;
        spdlog::info("resumed from {} (step {})", resume_dir.string(), state.step);
    }
    broadcast_module(*model, dist);
    GradientSync grad_sync(dist, optimizer.trained_parameters(), mib_to_bytes(cfg.runtime.dist_bucket_mb));
    if (dist.is_main()) atomic_write(out_dir / "config.yaml", dump_config(cfg));
    MetricsWriter metrics(out_dir / "metrics.jsonl", resume_dir.empty() ? -1 : state.step);
    const int64_t tokens_per_step =
        int64_t{cfg.train.batch_size} * cfg.train.grad_accum_steps * cfg.model.block_size;
    spdlog::info("model: {} parameters ({} layers, {} heads, {} embd, context {}, vocab {}) on {} with {} threads, {}",
                 model->num_parameters(), cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd, cfg.model.block_size,
                 cfg.model.vocab_size, rt.device.str(), rt.threads, cfg.runtime.dtype);
    spdlog::info("data: {} train tokens{}, {} tokens per step", train_data.total_tokens(),
                 val_data ? fmt::format(", {} val tokens", val_data->total_tokens()) : std::string(), tokens_per_step);

    const auto eval_train = fixed_batches(train_data, cfg, rt.device);
    const auto eval_val = val_data ? fixed_batches(*val_data, cfg, rt.device) : std::vector<LmBatch>();
    auto evaluate = [&]() {
        nlohmann::json rec = {{"type", "eval"}, {"step", state.step}};
        rec["train_loss"] = lm_eval_loss(*model, eval_train, bf16);
        std::string line = fmt::format("eval step {}: train loss {:.4f}", state.step, rec["train_loss"].get<double>());
        if (val_data) {
            state.last_val_loss = lm_eval_loss(*model, eval_val, bf16);
            rec["val_loss"] = state.last_val_loss;
            line += fmt::format(", val loss {:.4f}", state.last_val_loss);
        }
        metrics.write(rec);
        spdlog::info(line);
    };
    auto checkpoint = [&]() {
        auto dir = save_checkpoint(out_dir / "checkpoints", cfg, state, *model,
                                   {optimizer.state_tensors(), optimizer.steps_taken()}, tokenizer,
                                   cfg.checkpoint.keep_last);
        spdlog::info("checkpoint saved: {}", dir.string());
    };
    // 3. The loop ------------------------------------------------------------------------------
    TrainingLoopHooks hooks;
    hooks.evaluate = evaluate;
    hooks.checkpoint = checkpoint;
    hooks.step = [&](double lr) {
        const auto t0 = std::chrono::steady_clock::now();
        // This rank's share of the step's micro-batches (all of them in a single process).
        std::vector<LmBatch> micro_batches;
        const uint64_t seed = cfg.runtime.seed ^ kTrainDataStream;
        for (const uint64_t index : my_micro_batches(state.next_batch_index, cfg.train.grad_accum_steps, dist)) {
            micro_batches.push_back(lm_batch_from_windows(
                cfg.data.sampler == "epoch"
                    ? train_data.epoch_batch(cfg.train.batch_size, cfg.model.block_size, seed, index)
                    : train_data.batch(cfg.train.batch_size, cfg.model.block_size, seed, index),
                rt.device));
        }
        state.next_batch_index += static_cast<uint64_t>(cfg.train.grad_accum_steps);
        StepStats stats = lm_train_step(*model, optimizer, micro_batches, lr, cfg.optim.grad_clip, bf16, &grad_sync);
        state.tokens_seen += tokens_per_step;
        const double tok_s = static_cast<double>(tokens_per_step) /
                             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        StepReport r{stats.loss, stats.grad_norm, {{"tokens_seen", state.tokens_seen}, {"tokens_per_s", tok_s}},
                     fmt::format(" | {} tok/s", format_rate(tok_s)), fmt::format(" | {} tok/s", format_rate(tok_s))};
        return r;
    };
    const LoopResult done = run_training_loop("pretrain", cfg, state, metrics, hooks);
    if (done.exit_code != 0) return done.exit_code;
    const double steps = static_cast<double>(std::max<int64_t>(done.steps_run, 1));
    log_run_done(done, state, "steps",
                 fmt::format("{} tok/s, {:.1f} ms/step", format_rate(steps * static_cast<double>(tokens_per_step) / done.seconds),
                             done.seconds * 1000 / steps));
    return 0;
}

}  // namespace rlhf
