#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/cli/commands.h"
#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/runtime.h"
#include "rlhf/model/generate.h"
#include "rlhf/tokenizer/tokenizer.h"
#include "rlhf/core/precision.h"

namespace rlhf::cli {

void add_bench_command(CLI::App& app, Action& action) {
    struct Args {
        std::string preset = "gpt2";
        std::string checkpoint;
        int batch_size = 1;
        int new_tokens = 256;
        int prompt_tokens = 16;
        bool no_cache = false;
        std::string dtype = "float32";
        int threads = 0;
        std::string device = "cpu";
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("bench", "Measure speed");
    cmd->require_subcommand(1);
    auto* gen = cmd->add_subcommand(
        "generate", "Generation tokens/s: random prompts, fixed length (no early stop), one line of results");
    gen->add_option("--preset", args->preset, "Random-weight model of this size (gpt2 … gpt2-xl, smollm2-135m, smollm2-360m, qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b)")
        ->capture_default_str();
    gen->add_option("--checkpoint", args->checkpoint, "Use a trained checkpoint instead of --preset");
    gen->add_option("--batch-size", args->batch_size, "Sequences decoded together")->capture_default_str()->check(CLI::Range(1, 4096));
    gen->add_option("--new-tokens", args->new_tokens, "Tokens generated per sequence")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    gen->add_option("--prompt-tokens", args->prompt_tokens, "Prompt length")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    gen->add_flag("--no-cache", args->no_cache, "Recompute the whole prefix per token");
    gen->add_option("--dtype", args->dtype, "float32 | bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
    gen->add_option("--threads", args->threads, "CPU threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
    gen->add_option("--device", args->device, "cpu | cuda | cuda:N | auto")->capture_default_str();
    gen->callback([args, &action] {
        action = [args] {
            Runtime rt = init_runtime(args->threads, 1337, args->device, "--device");
            Gpt model{nullptr};
            std::string what;
            if (!args->checkpoint.empty()) {
                model = load_model_from_checkpoint(args->checkpoint, rt.device).model;
                what = args->checkpoint;
            } else {
                ModelConfig cfg;
                cfg.preset = args->preset;
                if (!apply_model_preset(cfg, {}) || cfg.preset == "custom") {
                    const auto names = preset_names();  // "custom" first
                    throw Error("unknown preset '" + args->preset + "'", "--preset",
                                "one of " + fmt::format("{}", fmt::join(names.begin() + 1, names.end(), ", ")));
                }
                if (cfg.arch == ModelArch::Gpt2) cfg.vocab_size = 50257;  // the released models' (and docs/benchmarks.md's) count
                model = Gpt(cfg);
                model->to(rt.device);
                what = args->preset + " (random weights)";
            }
            model->eval();
            const auto& mc = model->config();
            if (args->prompt_tokens + args->new_tokens > mc.block_size) {
                throw Error("prompt + new tokens = " + std::to_string(args->prompt_tokens + args->new_tokens) +
                                " exceeds the context window " + std::to_string(mc.block_size),
                            "--new-tokens", "lower --new-tokens or --prompt-tokens");
            }
            auto prompt_rng = make_generator(1, torch::kCPU);
            auto ids = torch::randint(0, mc.vocab_size, {args->batch_size, args->prompt_tokens}, prompt_rng, torch::kLong);
            std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(args->batch_size));
            for (int b = 0; b < args->batch_size; ++b) {
                for (int t = 0; t < args->prompt_tokens; ++t) prompts[static_cast<size_t>(b)].push_back(static_cast<int32_t>(ids[b][t].item<int64_t>()));
            }
            SamplingOptions o;
            o.max_new_tokens = args->new_tokens;
            o.temperature = 1.0;
            o.use_cache = !args->no_cache;
            o.bf16 = wants_bf16(args->dtype);
            auto gen_rng = make_generator(1, rt.device);
            if (rt.device.is_cuda()) {  // the first kernels pay for CUDA's and cuBLAS's start-up: not measured
                SamplingOptions warm = o;
                warm.max_new_tokens = std::min(o.max_new_tokens, int64_t{8});
                generate(*model, prompts, warm, /*pad_id=*/0, gen_rng).response.cpu();
            }
            const auto t0 = std::chrono::steady_clock::now();
            Generation g = generate(*model, prompts, o, /*pad_id=*/0, gen_rng);
            g.response = g.response.cpu();  // the tokens on the host: on a GPU this waits for the last kernel
            const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const double tokens = static_cast<double>(g.response.numel());
            std::printf("generate: %s | %s | batch %d | prompt %d + %d new tokens | %s | %s | %.1f tok/s | %.2f s | %.1f ms/step\n",
                        what.c_str(), rt.device.str().c_str(), args->batch_size, args->prompt_tokens, args->new_tokens,
                        o.use_cache ? "KV cache" : "no cache", args->dtype.c_str(), tokens / dt, dt,
                        dt * 1000 / args->new_tokens);
            return 0;
        };
    });

    add_bench_rollout_command(*cmd, action);

    // Tokenizer encoding speed: the file encoded whole, in this one thread, best of --rounds.
    struct TokArgs {
        std::string tokenizer, input;
        int rounds = 3;
    };
    auto tok_args = std::make_shared<TokArgs>();
    auto* tok_cmd = cmd->add_subcommand("tokenize", "Encoding MB/s of a tokenizer on a text file, one thread");
    tok_cmd->add_option("--tokenizer", tok_args->tokenizer, "Tokenizer directory (either kind)")->required();
    tok_cmd->add_option("--input", tok_args->input, "Text file, encoded whole")->required();
    tok_cmd->add_option("--rounds", tok_args->rounds, "Encodings; the fastest counts")->capture_default_str()->check(CLI::Range(1, 1000));
    tok_cmd->callback([tok_args, &action] {
        action = [tok_args] {
            const Tokenizer tok = Tokenizer::load(tok_args->tokenizer);
            if (!std::filesystem::is_regular_file(tok_args->input)) throw Error("file not found", tok_args->input, "");
            const std::string text = read_file(tok_args->input);
            double best = 1e30;
            size_t count = 0;
            for (int r = 0; r < tok_args->rounds; ++r) {
                const auto t0 = std::chrono::steady_clock::now();
                count = tok.encode(text).size();
                best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            std::printf("tokenize: %s | %s | %.2f MB | %zu tokens | %.2f MB/s | %.3f s\n", tok_args->tokenizer.c_str(),
                        tok_args->input.c_str(), static_cast<double>(text.size()) / 1e6, count,
                        static_cast<double>(text.size()) / 1e6 / best, best);
            return 0;
        };
    });
}

}  // namespace rlhf::cli
