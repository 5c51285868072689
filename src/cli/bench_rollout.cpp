// `rlhf bench rollout`: an RL rollout phase alone, as PPO/GRPO run it (each prompt group-size
// times, at most --chunk rows decoding at once), with the rollout engine or the static generate().
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/cli/commands.h"
#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/prompt_set.h"
#include "rlhf/model/rollout_engine.h"
#include "rlhf/model/sampling_streams.h"

namespace rlhf::cli {

namespace {

struct RolloutArgs {
    std::string checkpoint, prompts_file, preset, dtype = "float32", device = "cpu";
    int prompts = 32, group_size = 8, max_new_tokens = 48, chunk = 64, threads = 0, rounds = 3, prompt_tokens = 256;
    double temperature = 1.0;
    bool static_engine = false, no_sharing = false;
};

// One rollout of every row: seconds, the engine's counts (the static engine's by formula), and the
// useful tokens (up to each row's stop).
struct RolloutRound {
    double seconds = 0;
    RolloutCounts counts;
    int64_t useful_tokens = 0;
};

RolloutRound roll_out_once(GptImpl& model, const std::vector<std::vector<int32_t>>& rows, const std::vector<uint64_t>& seeds,
                           const SamplingOptions& o, int64_t pad_id, const RolloutArgs& args, const torch::Device& device) {
    RolloutRound r;
    const auto t0 = std::chrono::steady_clock::now();
    if (!args.static_engine) {
        RolloutEngineOptions engine;
        engine.max_active = args.chunk;
        engine.time_prefill = true;
        engine.share_prefixes = !args.no_sharing;
        const Generation g = generate_rollouts(model, rows, o, pad_id, seeds, engine, &r.counts);
        r.useful_tokens = g.response_mask.sum().item<int64_t>();
    } else {  // ppo.rollout_engine: static — generate() on each chunk
        for (size_t c0 = 0; c0 < rows.size(); c0 += static_cast<size_t>(args.chunk)) {
            const size_t c1 = std::min(rows.size(), c0 + static_cast<size_t>(args.chunk));
            const std::vector<std::vector<int32_t>> part(rows.begin() + static_cast<long>(c0), rows.begin() + static_cast<long>(c1));
            const std::vector<uint64_t> part_seeds(seeds.begin() + static_cast<long>(c0), seeds.begin() + static_cast<long>(c1));
            const Generation g = generate(model, part, o, pad_id, part_seeds);
            r.useful_tokens += g.response_mask.sum().item<int64_t>();
            r.counts.decode_slots += g.decode_slots;
            r.counts.decode_steps += g.response.size(1) - 1;  // the first token comes from the prefill
            r.counts.prefill_rows += g.tokens.size(0);
            r.counts.prefill_tokens += g.tokens.size(0) * g.prompt_len;
        }
    }
    if (device.is_cuda()) torch::cuda::synchronize();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

// The model and its prompts: a checkpoint with a prompt file (its tokenizer's EOS stops rows), or
// a preset's random weights with random prompts of --prompt-tokens (nothing stops them early).
struct BenchSubject {
    Gpt model{nullptr};
    std::vector<std::vector<int32_t>> prompts;  // args.prompts distinct ones
    std::vector<int64_t> stop_ids;
    int64_t pad_id = 0, vocab_limit = 0;
};

BenchSubject bench_subject(const RolloutArgs& args, const torch::Device& device) {
    BenchSubject s;
    if (args.checkpoint.empty()) {
        ModelConfig cfg;
        cfg.preset = args.preset;
        if (!apply_model_preset(cfg, {}) || cfg.preset == "custom") throw Error("unknown preset '" + args.preset + "'", "--preset", "see rlhf bench generate --help");
        if (cfg.arch == ModelArch::Gpt2) cfg.vocab_size = 50257;
        s.model = Gpt(cfg);
        s.model->to(device);
        auto rng = make_generator(1, torch::kCPU);
        const auto ids = torch::randint(0, cfg.vocab_size, {args.prompts, args.prompt_tokens}, rng, torch::kLong);
        for (int p = 0; p < args.prompts; ++p) {
            const auto row = ids[p];
            s.prompts.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + args.prompt_tokens);
        }
        return s;
    }
    if (args.prompts_file.empty()) throw Error("a checkpoint needs its prompts", "--prompts", "a JSONL file of {\"prompt\": ...}");
    LoadedModel loaded = load_model_from_checkpoint(args.checkpoint, device);
    s.model = loaded.model;
    const Tokenizer& tok = loaded.tokenizer;
    PromptSetOptions po;
    po.max_prompt_tokens = s.model->config().block_size - args.max_new_tokens;
    po.room_explained = "the context window less --max-new-tokens";
    const PromptSet set = read_prompt_set({args.prompts_file}, po, tok);
    if (static_cast<int64_t>(set.train.size()) < args.prompts) {
        throw Error("holds " + std::to_string(set.train.size()) + " usable prompts, fewer than --prompt-count " +
                        std::to_string(args.prompts), args.prompts_file, "lower --prompt-count");
    }
    s.prompts.assign(set.train.begin(), set.train.begin() + args.prompts);
    s.stop_ids = {end_of_turn_id(tok)};
    s.pad_id = tok.pad_id();
    s.vocab_limit = tok.vocab_size();
    return s;
}

int bench_rollout(const RolloutArgs& args) {
    if (args.checkpoint.empty() == args.preset.empty()) throw Error("give one of them", "--checkpoint / --preset", "");
    Runtime rt = init_runtime(args.threads, 1337, args.device, "--device");
    BenchSubject subject = bench_subject(args, rt.device);
    GptImpl& model = *subject.model;
    model.eval();
    if (args.max_new_tokens >= model.config().block_size) {
        throw Error(std::to_string(args.max_new_tokens) + " new tokens leave no room for a prompt in the " +
                        std::to_string(model.config().block_size) + "-token context window", "--max-new-tokens", "");
    }
    // PPO's layout: each prompt group-size times in consecutive rows, one stream per row.
    std::vector<std::vector<int32_t>> rows;
    std::vector<uint64_t> seeds;
    for (const auto& prompt : subject.prompts) {
        for (int k = 0; k < args.group_size; ++k) {
            rows.push_back(prompt);
            seeds.push_back(derive_seed(1337, rows.size()));
        }
    }
    SamplingOptions o;
    o.max_new_tokens = args.max_new_tokens;
    o.temperature = args.temperature;
    o.stop_ids = subject.stop_ids;
    o.vocab_limit = subject.vocab_limit;
    o.bf16 = wants_bf16(args.dtype);
    if (rt.device.is_cuda()) roll_out_once(model, rows, seeds, o, subject.pad_id, args, rt.device);  // CUDA's start-up
    std::vector<RolloutRound> rounds;
    for (int i = 0; i < args.rounds; ++i) rounds.push_back(roll_out_once(model, rows, seeds, o, subject.pad_id, args, rt.device));
    std::sort(rounds.begin(), rounds.end(), [](const auto& a, const auto& b) { return a.seconds < b.seconds; });
    const RolloutRound& median = rounds[rounds.size() / 2];
    const auto& c = median.counts;
    const nlohmann::json line = {
        {"engine", args.static_engine ? "static" : (args.no_sharing ? "continuous, no prefix sharing" : "continuous")},
        {"model", args.checkpoint.empty() ? args.preset + " (random weights)" : args.checkpoint},
        {"device", rt.device.str()}, {"dtype", args.dtype}, {"threads", rt.threads},
        {"prompts", args.prompts}, {"group_size", args.group_size}, {"rows", rows.size()},
        {"max_new_tokens", args.max_new_tokens}, {"chunk", args.chunk}, {"rounds", args.rounds},
        {"seconds", median.seconds},
        {"seconds_all", [&] { std::vector<double> s; for (const auto& r : rounds) s.push_back(r.seconds); return s; }()},
        {"useful_tokens", median.useful_tokens}, {"useful_tokens_per_s", median.useful_tokens / median.seconds},
        {"decode_slots", c.decode_slots},
        {"padding_share", 1.0 - static_cast<double>(median.useful_tokens) / std::max<int64_t>(c.decode_slots, 1)},
        {"decode_steps", c.decode_steps}, {"prefill_rows", c.prefill_rows}, {"prefill_tokens", c.prefill_tokens},
        {"prefill_seconds", args.static_engine ? nlohmann::json(nullptr) : nlohmann::json(c.prefill_seconds)},
        {"decode_seconds", args.static_engine ? nlohmann::json(nullptr) : nlohmann::json(median.seconds - c.prefill_seconds)}};
    std::printf("%s\n", line.dump().c_str());
    return 0;
}

}  // namespace

void add_bench_rollout_command(CLI::App& bench, Action& action) {
    auto args = std::make_shared<RolloutArgs>();
    auto* cmd = bench.add_subcommand("rollout",
        "An RL rollout phase alone: useful tokens/s, padding share and the prefill/decode split, as one JSON line");
    cmd->add_option("--checkpoint", args->checkpoint, "Policy checkpoint (a run directory or checkpoint)");
    cmd->add_option("--prompts", args->prompts_file, "With --checkpoint: JSONL prompts ({\"prompt\": ...}, as PPO's data.files)");
    cmd->add_option("--preset", args->preset, "Instead of --checkpoint: random weights of this size, random prompts that never stop early");
    cmd->add_option("--prompt-tokens", args->prompt_tokens, "With --preset: the prompts' length")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--prompt-count", args->prompts, "Distinct prompts, the first of the file")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--group-size", args->group_size, "Answers per prompt (ppo.group_size)")->capture_default_str()->check(CLI::Range(1, 4096));
    cmd->add_option("--max-new-tokens", args->max_new_tokens, "Tokens per answer at most")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--chunk", args->chunk, "Rows decoding at once (ppo.rollout_chunk)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--temperature", args->temperature, "Sampling temperature")->capture_default_str()->check(CLI::Range(0.0, 100.0));
    cmd->add_flag("--static", args->static_engine, "generate() on each chunk instead of the rollout engine (ppo.rollout_engine: static)");
    cmd->add_flag("--no-prefix-sharing", args->no_sharing, "The rollout engine prefilling every row's prompt (to measure what sharing saves)");
    cmd->add_option("--rounds", args->rounds, "Rollouts; the median counts")->capture_default_str()->check(CLI::Range(1, 1000));
    cmd->add_option("--dtype", args->dtype, "float32 | bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
    cmd->add_option("--threads", args->threads, "CPU threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--device", args->device, "cpu | cuda | cuda:N | auto")->capture_default_str();
    cmd->callback([args, &action] { action = [args] { return bench_rollout(*args); }; });
}

}  // namespace rlhf::cli
