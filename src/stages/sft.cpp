// Stage 2, SFT. Top to bottom:
//   1. runtime, run directory; the starting point: init_from (or our own latest checkpoint)
//   2. tokenizer + chat tokens (the embedding grows when they do not fit), model, optimizer
//   3. demonstrations: read -> render in the chat format -> fit the window -> train/val split
//   4. the loop, at the bottom: batches (padded or packed) -> forward/backward on reply
//      tokens -> AdamW -> log -> eval (val loss, greedy answers to fixed val prompts: EOS rate,
//      samples) -> checkpoint
//
//   rlhf train configs/sft/gsm8k.yaml
#include "rlhf/core/eval_mode.h"
#include "rlhf/core/seed_streams.h"
#include "rlhf/stages/sft.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <numeric>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/logging.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/progress.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/epoch_sampler.h"
#include "rlhf/data/sft_batches.h"
#include "rlhf/data/sft_examples.h"
#include "rlhf/model/generate.h"
#include "rlhf/model/gpt.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/step_loop.h"

namespace rlhf {

namespace {

struct SftData {
    std::vector<SftExample> train, val;
    std::vector<std::vector<ChatTurn>> val_prompts;  // the val conversations without their final reply
};

SftData load_sft_data(const RunConfig& cfg, const Tokenizer& tokenizer) {
    SftReadOptions read;
    read.format = name_of(cfg.data.format);
    read.prompt_field = cfg.data.fields.prompt;
    read.response_field = cfg.data.fields.response;
    read.messages_field = cfg.data.fields.messages;
    read.skip_bad = cfg.data.on_error == OnError::Skip;
    const auto convs = read_train_val<SftReadStats>(
        cfg, seed_stream::kSftSplit, [&](const auto& files, SftReadStats* stats) { return read_sft_examples(files, read, stats); });

    const int64_t max_ids = int64_t{cfg.model.block_size} + 1;
    int64_t prompt_cut = 0, reply_cut = 0, dropped = 0;
    auto fit = [&](const std::vector<Conversation>& split, std::vector<SftExample>& out) {
        for (const auto& c : split) {
            auto r = render_conversation(c.turns, tokenizer);
            std::optional<RenderedExample> fitted;
            if (static_cast<int64_t>(r.ids.size()) <= max_ids) fitted = std::move(r);
            else if (cfg.data.too_long == TooLong::Truncate) fitted = fit_to_window(std::move(r), max_ids, cfg.data.min_prompt_fraction);
            if (!fitted) {
                ++dropped;
                continue;
            }
            prompt_cut += fitted->prompt_truncated;
            reply_cut += fitted->response_truncated;
            out.push_back({std::move(fitted->ids), std::move(fitted->loss_mask)});
        }
    };
    SftData data;
    fit(convs.train, data.train);
    fit(convs.val, data.val);
    for (size_t i = 0; i < convs.val.size() && data.val_prompts.size() < static_cast<size_t>(cfg.train.eval_prompts); ++i) {
        auto turns = convs.val[i].turns;
        turns.pop_back();
        data.val_prompts.push_back(std::move(turns));
    }
    spdlog::info("data: {} train / {} val examples; longer than the window ({} tokens): {} prompts cut from the left, "
                 "{} replies cut from the right (no EOS), {} skipped (data.too_long: {})",
                 data.train.size(), data.val.size(), cfg.model.block_size, prompt_cut, reply_cut, dropped,
                 cfg.data.too_long);
    if (data.train.empty()) {
        throw Error("no training example fits the context window of " + std::to_string(cfg.model.block_size) + " tokens",
                    cfg.data.files.front(), "use data.too_long: truncate or shorter examples");
    }
    return data;
}

LmBatch to_device(const SftBatch& b, const torch::Device& device) {
    auto copy = [&](const torch::Tensor& t) { return t.defined() ? rlhf::to_device(t, device) : torch::Tensor(); };
    return {copy(b.inputs), copy(b.targets), copy(b.position_ids), copy(b.segment_ids)};
}

struct AnswerStats {
    double eos_rate = NAN;
    std::vector<std::pair<std::string, std::string>> samples;  // (last user turn, answer)
};

// Greedy answers to the fixed validation prompts: how often the model stops by itself.
// temperature 0 = greedy: a small model's greedy decoding can fall into a loop ("100000…") that
// sampling from the learned distribution leaves, so both are reported.
AnswerStats answer_val_prompts(GptImpl& model, const Tokenizer& tokenizer, const SftData& data, const RunConfig& cfg,
                               bool bf16, double temperature) {
    AnswerStats out;
    if (data.val_prompts.empty()) return out;
    EvalModeGuard eval_mode(model);
    std::vector<std::vector<int32_t>> prompts;
    int64_t longest = 0;
    for (const auto& turns : data.val_prompts) {
        auto ids = render_prompt_within(turns, tokenizer, cfg.model.block_size / 2);
        longest = std::max(longest, static_cast<int64_t>(ids.size()));
        prompts.push_back(std::move(ids));
    }
    SamplingOptions opts;
    opts.temperature = temperature;
    opts.top_k = 0;
    opts.max_new_tokens = cfg.model.block_size - longest;
    opts.stop_ids = {end_of_turn_id(tokenizer)};
    opts.vocab_limit = tokenizer.vocab_size();
    opts.bf16 = bf16;
    auto gen = make_generator(cfg.runtime.seed, model.transformer->wte->weight.device());
    int64_t stopped = 0;
    for (size_t i = 0; i < prompts.size(); i += static_cast<size_t>(cfg.train.batch_size)) {
        std::vector<std::vector<int32_t>> chunk(prompts.begin() + static_cast<long>(i),
                                                prompts.begin() + static_cast<long>(std::min(prompts.size(), i + static_cast<size_t>(cfg.train.batch_size))));
        auto g = generate(model, chunk, opts, tokenizer.pad_id(), gen);
        const auto answers = response_ids(g);
        for (size_t b = 0; b < answers.size(); ++b) {
            const bool ended = !answers[b].empty() && answers[b].back() == opts.stop_ids.front();
            stopped += ended;
            if (static_cast<int>(out.samples.size()) < cfg.train.log_samples) {
                const auto& turns = data.val_prompts[i + b];
                out.samples.emplace_back(turns.back().content, tokenizer.decode(answers[b]) + (ended ? "" : " [no EOS]"));
            }
        }
    }
    out.eos_rate = static_cast<double>(stopped) / static_cast<double>(prompts.size());
    return out;
}

}  // namespace

int run_sft(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and the starting point --------------------------------------------------------
    const StageStart stage = begin_stage(cfg, opts.resume);
    const Runtime& rt = stage.rt;
    StartPoint start = load_start_point(cfg, stage.resume_dir);

    // 2. Tokenizer, model, optimizer -------------------------------------------------------------
    const Tokenizer tokenizer = start.tokenizer;
    Gpt model = start.trunk;
    model->to(rt.device);
    model->train();
    AdamW optimizer(*model, cfg.optim);
    TrainState state = resume_or_announce(stage, optimizer, start.info.state, describe_start(start));

    // 3. Demonstrations ----------------------------------------------------------------------------
    const SftData data = load_sft_data(cfg, tokenizer);
    SftBatcher batcher(data.train, cfg.train.batch_size, cfg.model.block_size, cfg.data.packing, tokenizer.pad_id(),
                       kIgnoreIndex);
    const auto eval_val = fixed_batches(data.val, cfg, [&](const std::vector<const SftExample*>& rows) {
        return to_device(pad_batch(rows, tokenizer.pad_id(), kIgnoreIndex), rt.device);
    });
    StageOutputs out(cfg, *model, optimizer, stage, state);
    spdlog::info("{}; {} reply tokens per epoch, {}", describe_model(*model, cfg, rt, {cfg.train.batch_size, cfg.model.block_size, true, true}),
                 batcher.loss_tokens(), cfg.data.packing ? "packed (several examples per row)" : "padded (one example per row)");

    // 4. The loop --------------------------------------------------------------------------------
    StepLoop loop("sft", cfg, state, out.metrics);
    // Val loss, and the EOS rate of greedy and sampled answers to the val prompts.
    auto evaluate = [&]() {
        nlohmann::json rec = {{"type", "eval"}, {"step", state.step}};
        std::string line = fmt::format("eval step {}:", state.step);
        if (!eval_val.empty()) {
            state.last_val_loss = lm_eval_loss(*model, eval_val, stage.bf16);
            rec["val_loss"] = state.last_val_loss;
            line += fmt::format(" val loss {:.4f}", state.last_val_loss);
        }
        auto answers = answer_val_prompts(*model, tokenizer, data, cfg, stage.bf16, /*temperature=*/0.0);
        if (std::isfinite(answers.eos_rate)) {
            const double sampled = answer_val_prompts(*model, tokenizer, data, cfg, stage.bf16, /*temperature=*/1.0).eos_rate;
            rec["eos_rate"] = answers.eos_rate;
            rec["eos_rate_sampled"] = sampled;
            rec["samples"] = nlohmann::json::array();
            for (const auto& [prompt, answer] : answers.samples) rec["samples"].push_back({{"prompt", prompt}, {"answer", answer}});
            line += fmt::format(", EOS rate {:.1f}% greedy / {:.1f}% sampled (T = 1) of {} val prompts",
                                100 * answers.eos_rate, 100 * sampled, data.val_prompts.size());
        }
        loop.record(rec);
        spdlog::info(line);
        log_samples(answers.samples);
    };
    // One step: this rank's batches (padded or packed) -> forward/backward on the reply tokens -> AdamW.
    auto train_step = [&](double lr) {
        const uint64_t seed = stream_seed(cfg.runtime.seed, seed_stream::kSftData);
        std::vector<LmBatch> micro_batches;
        for (const uint64_t index : next_micro_batches(state, cfg)) {
            micro_batches.push_back(to_device(batcher.batch(seed, index), rt.device));
        }
        const uint64_t epoch = batcher.epoch_of(seed, state.next_batch_index - 1);
        StepStats stats = lm_train_step(*model, optimizer, micro_batches, lr, cfg.optim.grad_clip, stage.bf16, &out.grad_sync);
        state.tokens_seen += stats.targets;
        const std::string line = fmt::format(" | epoch {}", epoch);
        return StepReport{stats.loss, stats.grad_norm, {{"loss_tokens", stats.targets}, {"epoch", epoch}}, line, line};
    };

    if (loop.eval_due()) evaluate();
    while (loop.running()) {
        loop.end_step(train_step(loop.lr()));
        if (loop.eval_due()) evaluate();
        if (loop.save_due()) {
            save_stage_checkpoint(cfg, state, *model, optimizer, tokenizer, lineage_extras(start));
        }
    }
    if (loop.finish() != 0) return loop.finish();
    log_run_done(loop.result(), state);
    return 0;
}

}  // namespace rlhf
