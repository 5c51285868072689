// Stage 1, pre-training. The whole loop is here, top to bottom:
//   1. runtime, run directory, tokenizer, token shards, model, optimizer
//   2. resume: weights, optimizer moments, RNG streams, data cursor from checkpoints/latest
//   3. the loop, at the bottom: draw this rank's micro-batches -> forward/backward (gradients
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
#include "rlhf/core/seed_streams.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/model/gpt.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/step_loop.h"
#include "rlhf/core/precision.h"

namespace rlhf {

namespace {

// The evaluation's fixed windows of one split: drawn by their own stream, the same at every eval.
std::vector<LmBatch> eval_windows(const TokenShards& split, const RunConfig& cfg, const torch::Device& device) {
    std::vector<LmBatch> out;
    for (int i = 0; i < cfg.train.eval_batches; ++i) {
        const auto windows = split.batch(cfg.train.batch_size, cfg.model.block_size, stream_seed(cfg.runtime.seed, seed_stream::kPretrainEval),
                                         static_cast<uint64_t>(i));
        out.push_back(lm_batch_from_windows(windows, device));
    }
    return out;
}

}  // namespace

int run_pretrain(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and inputs -------------------------------------------------------------------
    const StageStart stage = begin_stage(cfg, opts.resume);
    const Runtime& rt = stage.rt;
    const Distributed& dist = distributed();

    // Rank 0 trains the tokenizer and tokenizes the text (once, cached in out_dir); the others
    // then load what it made.
    Tokenizer tokenizer;
    std::filesystem::path shard_dir;
    dist.main_first("the tokenizer and token shards", [&] {
        tokenizer = stage.resuming() ? load_checkpoint_tokenizer(stage.resume_dir) : resolve_tokenizer(cfg);
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
    if (stage.resuming()) {  // a shape mismatch is reported before a wrong-sized model is allocated
        resume_info = read_checkpoint_info(stage.resume_dir);
        check_same_model_shape(resume_info.config.model, cfg.model, cfg.source);
    }
    Gpt model(cfg.model);
    model->set_activation_checkpointing(activation_checkpoint_blocks(cfg.train));
    if (stage.resuming()) load_model_weights(stage.resume_dir, *model);
    model->to(rt.device);
    model->train();
    AdamW optimizer(*model, cfg.optim);
    TrainState state = resume_or_announce(stage, optimizer, resume_info.state, "starting from fresh weights");
    StageOutputs out(cfg, *model, optimizer, stage, state);
    const int64_t tokens_per_step =
        int64_t{cfg.train.batch_size} * cfg.train.grad_accum_steps * cfg.model.block_size;
    spdlog::info("{}; {} layers, {} heads, {} embd", describe_model(*model, cfg, rt, {cfg.train.batch_size, cfg.model.block_size, false, true}), cfg.model.n_layer,
                 cfg.model.n_head, cfg.model.n_embd);
    spdlog::info("data: {} train tokens{}, {} tokens per step", train_data.total_tokens(),
                 val_data ? fmt::format(", {} val tokens", val_data->total_tokens()) : std::string(), tokens_per_step);

    // 3. The loop ------------------------------------------------------------------------------
    const auto eval_train = eval_windows(train_data, cfg, rt.device);
    const auto eval_val = val_data ? eval_windows(*val_data, cfg, rt.device) : std::vector<LmBatch>();
    StepLoop loop("pretrain", cfg, state, out.metrics);
    auto evaluate = [&]() {
        nlohmann::json rec = {{"type", "eval"}, {"step", state.step}};
        rec["train_loss"] = lm_eval_loss(*model, eval_train, stage.bf16);
        std::string line = fmt::format("eval step {}: train loss {:.4f}", state.step, rec["train_loss"].get<double>());
        if (val_data) {
            state.last_val_loss = lm_eval_loss(*model, eval_val, stage.bf16);
            rec["val_loss"] = state.last_val_loss;
            line += fmt::format(", val loss {:.4f}", state.last_val_loss);
        }
        loop.record(rec);
        spdlog::info(line);
    };
    // One step: this rank's share of the step's windows (all of them in a single process) ->
    // forward/backward, gradients summed over ranks -> clip -> AdamW.
    auto train_step = [&](double lr) {
        const auto t0 = std::chrono::steady_clock::now();
        const uint64_t seed = stream_seed(cfg.runtime.seed, seed_stream::kPretrainData);
        std::vector<LmBatch> micro_batches;
        for (const uint64_t index : next_micro_batches(state, cfg)) {
            const auto windows = cfg.data.sampler == DataSampler::Epoch
                                      ? train_data.epoch_batch(cfg.train.batch_size, cfg.model.block_size, seed, index)
                                      : train_data.batch(cfg.train.batch_size, cfg.model.block_size, seed, index);
            micro_batches.push_back(lm_batch_from_windows(windows, rt.device));
        }
        StepStats stats = lm_train_step(*model, optimizer, micro_batches, lr, cfg.optim.grad_clip, stage.bf16, &out.grad_sync);
        state.tokens_seen += tokens_per_step;
        const double tok_s = static_cast<double>(tokens_per_step) /
                             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const std::string rate = fmt::format(" | {} tok/s", format_rate(tok_s));
        return StepReport{stats.loss, stats.grad_norm, {{"tokens_seen", state.tokens_seen}, {"tokens_per_s", tok_s}}, rate, rate};
    };

    if (loop.eval_due()) evaluate();
    while (loop.running()) {
        loop.end_step(train_step(loop.lr()));
        if (loop.eval_due()) evaluate();
        if (loop.save_due()) save_stage_checkpoint(cfg, state, *model, optimizer, tokenizer);
    }
    if (loop.finish() != 0) return loop.finish();
    const LoopResult& done = loop.result();
    const double steps = static_cast<double>(std::max<int64_t>(done.steps_run, 1));
    log_run_done(done, state, "steps",
                 fmt::format("{} tok/s, {:.1f} ms/step", format_rate(steps * static_cast<double>(tokens_per_step) / done.seconds),
                             done.seconds * 1000 / steps));
    return 0;
}

}  // namespace rlhf
