#include "rlhf/cli/sampling_flags.h"

#include <spdlog/spdlog.h>

#include "rlhf/core/runtime.h"
#include "rlhf/core/precision.h"
#include "rlhf/data/chat_format.h"

namespace rlhf::cli {

void add_sampling_flags(CLI::App& cmd, SamplingFlags& f) {
    cmd.add_option("--checkpoint", f.checkpoint, "Run directory, its checkpoints/ dir, or a step-NNNNNN dir")->required();
    add_weights_flag(cmd, f.weights);
    cmd.add_option("--max-new-tokens", f.max_new_tokens,
                   "Tokens to generate per sample, < block_size (default: min(256, block_size / 2))")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
    cmd.add_option("--temperature", f.temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
    cmd.add_option("--top-k", f.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
    cmd.add_option("--top-p", f.top_p, "Nucleus sampling mass in (0, 1] (1 = off)")->capture_default_str();
    cmd.add_option("--seed", f.seed, "Sampling seed: the same seed gives the same text")->capture_default_str();
    cmd.add_flag("--no-cache", f.no_cache, "Recompute the whole prefix per token (slow; for comparison)");
    cmd.add_flag("--truncate-left", f.truncate_left,
                 "Drop a too-long prompt's oldest tokens instead of failing");
    cmd.add_option("--device", f.device, "cpu | cuda | cuda:N | auto")->capture_default_str();
    cmd.add_option("--dtype", f.dtype, "float32 | bfloat16")
        ->check(CLI::IsMember({"float32", "bfloat16"}))
        ->capture_default_str();
    cmd.add_option("--threads", f.threads, "CPU threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
}

void add_weights_flag(CLI::App& cmd, std::string& weights) {
    cmd.add_option("--weights", weights,
                   "auto: a PPO run's EMA of the policy (ppo.ema_decay > 0, as InstructGPT) when the checkpoint has one, "
                   "else its weights; ema: the EMA or an error; raw: the trained weights")
        ->check(CLI::IsMember({"auto", "ema", "raw"}))
        ->capture_default_str();
}

SamplingSession open_sampling_session(const SamplingFlags& f) {
    Runtime rt = init_runtime(f.threads, f.seed, f.device, "--device");
    SamplingSession s{load_model_from_checkpoint(f.checkpoint, rt.device, f.weights), {}, make_generator(f.seed, rt.device)};
    auto& o = s.options;
    const int64_t block = s.loaded.model->config().block_size;
    o.max_new_tokens = f.max_new_tokens > 0 ? f.max_new_tokens : std::min<int64_t>(256, block / 2);
    o.temperature = f.temperature;
    o.top_k = f.top_k;
    o.top_p = f.top_p;
    o.use_cache = !f.no_cache;
    o.truncate_left = f.truncate_left;
    const Tokenizer& tok = s.loaded.tokenizer;
    o.stop_ids = {tok.eos_id()};
    // A chat model ends its reply with its own end-of-turn token (<|im_end|>, <|eot_id|>).
    if (has_chat_format(tok) && end_of_turn_id(tok) != tok.eos_id()) o.stop_ids.push_back(end_of_turn_id(tok));
    o.vocab_limit = s.loaded.tokenizer.vocab_size();
    o.bf16 = wants_bf16(f.dtype);
    validate_sampling(o, block);
    spdlog::debug("loaded {} (step {})", s.loaded.info.dir.string(), s.loaded.info.state.step);
    return s;
}

}  // namespace rlhf::cli
