// Stage 2, SFT. Top to bottom:
//   1. runtime, run directory; the starting point: init_from (or our own latest checkpoint)
//   2. tokenizer + chat tokens (the embedding grows when they do not fit), model, optimizer
//   3. demonstrations: read -> render in the chat format -> fit the window -> train/val split
//   4. loop (train/training_loop): batches (padded or packed) -> forward/backward on reply
//      tokens -> AdamW -> log -> eval (val loss, greedy answers to fixed val prompts: EOS rate,
//      samples) -> checkpoint
//
//   rlhf train configs/sft/gsm8k.yaml
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
#include "rlhf/train/training_loop.h"

namespace rlhf {

namespace {

constexpr uint64_t kTrainDataStream = 0x7366742d74726e00ULL;
constexpr uint64_t kSplitStream = 0x7366742d73706c74ULL;

struct SftData {
    std::vector<SftExample> train, val;
    std::vector<std::vector<ChatTurn>> val_prompts;  // the val conversations without their final reply
};

SftData load_sft_data(const RunConfig& cfg, const Tokenizer& tokenizer) {
    SftReadOptions read;
    read.format = cfg.data.format;
    read.prompt_field = cfg.data.fields.prompt;
    read.response_field = cfg.data.fields.response;
    read.messages_field = cfg.data.fields.messages;
    read.skip_bad = cfg.data.on_error == "skip";
    SftReadStats stats;
    auto train_convs = read_sft_examples(cfg.data.files, read, &stats);
    std::vector<Conversation> val_convs;
    if (!cfg.data.val_files.empty()) {
        SftReadStats val_stats;
        val_convs = read_sft_examples(cfg.data.val_files, read, &val_stats);
        stats.skipped += val_stats.skipped;
        if (stats.first_skip.empty()) stats.first_skip = val_stats.first_skip;
    } else if (cfg.data.val_fraction > 0 && train_convs.size() >= 2) {
        const auto is_val = held_out_items(train_convs.size(), cfg.data.val_fraction, cfg.runtime.seed ^ kSplitStream);
        std::vector<Conversation> kept;
        for (size_t i = 0; i < train_convs.size(); ++i) {
            (is_val[i] ? val_convs : kept).push_back(std::move(train_convs[i]));
        }
        train_convs = std::move(kept);
    }
    if (stats.skipped > 0) {
        spdlog::warn("data: skipped {} bad record(s) (data.on_error: skip); the first: {}", stats.skipped, stats.first_skip);
    }

    const int64_t max_ids = int64_t{cfg.model.block_size} + 1;
    int64_t prompt_cut = 0, reply_cut = 0, dropped = 0;
    auto fit = [&](const std::vector<Conversation>& convs, std::vector<SftExample>& out) {
        for (const auto& c : convs) {
            auto r = render_conversation(c.turns, tokenizer);
            std::optional<RenderedExample> fitted;
            if (static_cast<int64_t>(r.ids.size()) <= max_ids) fitted = std::move(r);
            else if (cfg.data.too_long == "truncate") fitted = fit_to_window(std::move(r), max_ids, cfg.data.min_prompt_fraction);
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
    fit(train_convs, data.train);
    fit(val_convs, data.val);
    for (size_t i = 0; i < val_convs.size() && data.val_prompts.size() < static_cast<size_t>(cfg.train.eval_prompts); ++i) {
        auto turns = val_convs[i].turns;
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

std::vector<LmBatch> val_batches(const std::vector<SftExample>& val, const RunConfig& cfg, int64_t pad_id,
                                 const torch::Device& device) {
    std::vector<LmBatch> out;
    for (size_t i = 0; i < val.size() && out.size() < static_cast<size_t>(cfg.train.eval_batches);
         i += static_cast<size_t>(cfg.train.batch_size)) {
        std::vector<const SftExample*> rows;
        for (size_t j = i; j < std::min(val.size(), i + static_cast<size_t>(cfg.train.batch_size)); ++j) rows.push_back(&val[j]);
        auto b = pad_batch(rows, pad_id, kIgnoreIndex);
        out.push_back({rlhf::to_device(b.inputs, device), rlhf::to_device(b.targets, device), {}, {}});
    }
    return out;
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
    const bool was_training = model.is_training();
    model.eval();
    std::vector<std::vector<int32_t>> prompts;
    int64_t longest = 0;
    for (const auto& turns : data.val_prompts) {
        auto ids = render_prompt(turns, tokenizer);
        // A long prompt keeps BOS and its first role marker (what kind of text follows, as in
        // training's fit_to_window) and its end: the question and <|assistant|>.
        const int64_t keep = std::min<int64_t>(static_cast<int64_t>(ids.size()), std::max(cfg.model.block_size / 2, 3));
        if (static_cast<int64_t>(ids.size()) > keep) ids.erase(ids.begin() + 2, ids.end() - (keep - 2));
        longest = std::max(longest, keep);
        prompts.push_back(std::move(ids));
    }
    SamplingOptions opts;
    opts.temperature = temperature;
    opts.top_k = 0;
    opts.max_new_tokens = cfg.model.block_size - longest;
    opts.stop_ids = {tokenizer.eos_id()};
    opts.vocab_limit = tokenizer.vocab_size();
    opts.bf16 = bf16;
    auto gen = make_generator(cfg.runtime.seed, model.transformer->wte->weight.device());
    int64_t stopped = 0;
    for (size_t i = 0; i < prompts.size(); i += static_cast<size_t>(cfg.train.batch_size)) {
        std::vector<std::vector<int32_t>> chunk(prompts.begin() + static_cast<long>(i),
                                                prompts.begin() + static_cast<long>(std::min(prompts.size(), i + static_cast<size_t>(cfg.train.batch_size))));
        auto g = generate(model, chunk, opts, tokenizer.pad_id(), gen);
        auto response = g.response.cpu(), mask = g.response_mask.cpu();
        for (int64_t b = 0; b < response.size(0); ++b) {
            auto ended = response[b].eq(tokenizer.eos_id()).logical_and(mask[b]).any().item<bool>();
            stopped += ended;
            if (static_cast<int>(out.samples.size()) < cfg.train.log_samples) {
                std::vector<int32_t> ids;
                for (int64_t t = 0; t < response.size(1) && mask[b][t].item<bool>(); ++t) {
                    ids.push_back(static_cast<int32_t>(response[b][t].item<int64_t>()));
                }
                const auto& turns = data.val_prompts[i + static_cast<size_t>(b)];
                out.samples.emplace_back(turns.back().content, tokenizer.decode(ids) + (ended ? "" : " [no EOS]"));
            }
        }
    }
    out.eos_rate = static_cast<double>(stopped) / static_cast<double>(prompts.size());
    model.train(was_training);
    return out;
}

std::string one_line(std::string s, size_t max_chars) {
    for (char& c : s) if (c == '\n' || c == '\t') c = ' ';
    return s.size() > max_chars ? s.substr(0, max_chars) + "…" : s;
}

}  // namespace

int run_sft(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and the starting point --------------------------------------------------------
    Runtime rt = init_stage_runtime(cfg);
    const Distributed& dist = distributed();
    const bool bf16 = wants_bf16(cfg.runtime.dtype);
    const auto resume_dir = open_run_dir(cfg, opts.resume);
    const std::filesystem::path out_dir = cfg.out_dir;
    StartPoint start = load_start_point(cfg, resume_dir);

    // 2. Tokenizer, model, optimizer -------------------------------------------------------------
    const Tokenizer tokenizer = start.tokenizer;
    Gpt model = start.trunk;
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
        spdlog::info("starting from {} (step {} of run {})", start.dir.string(), start.info.state.step,
                     start.info.config.out_dir);
    }

    // 3. Demonstrations ----------------------------------------------------------------------------
    const SftData data = load_sft_data(cfg, tokenizer);
    SftBatcher batcher(data.train, cfg.train.batch_size, cfg.model.block_size, cfg.data.packing, tokenizer.pad_id(),
                       kIgnoreIndex);
    const auto eval_val = val_batches(data.val, cfg, tokenizer.pad_id(), rt.device);
    broadcast_module(*model, dist);
    GradientSync grad_sync(dist, optimizer.trained_parameters(), mib_to_bytes(cfg.runtime.dist_bucket_mb));
    if (dist.is_main()) atomic_write(out_dir / "config.yaml", dump_config(cfg));
    MetricsWriter metrics(out_dir / "metrics.jsonl", resume_dir.empty() ? -1 : state.step);
    spdlog::info("model: {} parameters, context {}, vocab {}, {} on {} with {} threads; {} reply tokens per epoch, {}",
                 model->num_parameters(), cfg.model.block_size, cfg.model.vocab_size, cfg.runtime.dtype,
                 rt.device.str(), rt.threads, batcher.loss_tokens(),
                 cfg.data.packing ? "packed (several examples per row)" : "padded (one example per row)");

    auto evaluate = [&]() {
        nlohmann::json rec = {{"type", "eval"}, {"step", state.step}};
        std::string line = fmt::format("eval step {}:", state.step);
        if (!eval_val.empty()) {
            state.last_val_loss = lm_eval_loss(*model, eval_val, bf16);
            rec["val_loss"] = state.last_val_loss;
            line += fmt::format(" val loss {:.4f}", state.last_val_loss);
        }
        auto answers = answer_val_prompts(*model, tokenizer, data, cfg, bf16, /*temperature=*/0.0);
        if (std::isfinite(answers.eos_rate)) {
            const double sampled = answer_val_prompts(*model, tokenizer, data, cfg, bf16, /*temperature=*/1.0).eos_rate;
            rec["eos_rate"] = answers.eos_rate;
            rec["eos_rate_sampled"] = sampled;
            rec["samples"] = nlohmann::json::array();
            for (const auto& [prompt, answer] : answers.samples) rec["samples"].push_back({{"prompt", prompt}, {"answer", answer}});
            line += fmt::format(", EOS rate {:.1f}% greedy / {:.1f}% sampled (T = 1) of {} val prompts",
                                100 * answers.eos_rate, 100 * sampled, data.val_prompts.size());
        }
        metrics.write(rec);
        spdlog::info(line);
        for (const auto& [prompt, answer] : answers.samples) {
            spdlog::info("  Q: {}\n    A: {}", one_line(prompt, 160), one_line(answer, 300));
        }
    };
    auto checkpoint = [&]() {
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
        std::vector<LmBatch> micro_batches;
        uint64_t epoch = 0;
        const uint64_t seed = cfg.runtime.seed ^ kTrainDataStream;
        for (const uint64_t index : my_micro_batches(state.next_batch_index, cfg.train.grad_accum_steps, dist)) {
            micro_batches.push_back(to_device(batcher.batch(seed, index), rt.device));
        }
        state.next_batch_index += static_cast<uint64_t>(cfg.train.grad_accum_steps);
        epoch = batcher.epoch_of(seed, state.next_batch_index - 1);
        StepStats stats = lm_train_step(*model, optimizer, micro_batches, lr, cfg.optim.grad_clip, bf16, &grad_sync);
        state.tokens_seen += stats.targets;
        StepReport r{stats.loss, stats.grad_norm, {{"loss_tokens", stats.targets}, {"epoch", epoch}},
                     fmt::format(" | epoch {}", epoch), fmt::format(" | epoch {}", epoch)};
        return r;
    };
    const LoopResult done = run_training_loop("sft", cfg, state, metrics, hooks);
    if (done.exit_code != 0) return done.exit_code;
    log_run_done(done, state);
    return 0;
}

}  // namespace rlhf
