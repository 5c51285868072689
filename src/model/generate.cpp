#include "rlhf/model/generate.h"

#include <spdlog/fmt/fmt.h>
#include <torch/torch.h>

#include <limits>

#include "rlhf/core/error.h"
#include "rlhf/core/eval_mode.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"
#include "rlhf/model/sampling_streams.h"
#include "rlhf/model/token_sampler.h"

namespace rlhf {

using torch::indexing::None;
using torch::indexing::Slice;

Error nonfinite_logits_error() {
    return Error("the model produced non-finite logits, so there is nothing to sample from", "generate",
                 "the checkpoint has diverged (NaN weights?); use an earlier one");
}

void validate_sampling(const SamplingOptions& o, int64_t block_size) {
    if (o.max_new_tokens < 1) throw Error("must be at least 1", "max_new_tokens", "");
    if (o.max_new_tokens >= block_size) {
        throw Error(std::to_string(o.max_new_tokens) + " new tokens leave no room for a prompt in the " +
                        std::to_string(block_size) + "-token context window",
                    "max_new_tokens", "use at most block_size - 1 = " + std::to_string(block_size - 1));
    }
    if (!(o.temperature >= 0.0) || !std::isfinite(o.temperature)) {
        throw Error("must be >= 0 (got " + fmt::format("{}", o.temperature) + ")", "temperature",
                    "0 = greedy, 1 = the model's distribution");
    }
    if (!(o.top_p > 0.0 && o.top_p <= 1.0)) {
        throw Error("must be in (0, 1] (got " + fmt::format("{}", o.top_p) + ")", "top_p", "1 disables it");
    }
    if (o.top_k < 0) throw Error("must be >= 0 (got " + std::to_string(o.top_k) + ")", "top_k", "0 disables it");
}

torch::Generator make_generator(uint64_t seed, const torch::Device& device) {
    auto gen = at::globalContext().defaultGenerator(device).clone();
    gen.set_current_seed(seed);
    return gen;
}

std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int32_t>>& prompts, int64_t pad_id,
                                                  const torch::Device& device) {
    size_t max_len = 0;
    for (const auto& p : prompts) max_len = std::max(max_len, p.size());
    const auto B = static_cast<int64_t>(prompts.size()), P = static_cast<int64_t>(max_len);
    auto ids = torch::full({B, P}, pad_id, torch::kLong);
    auto mask = torch::zeros({B, P}, torch::kBool);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<bool, 2>();
    for (int64_t b = 0; b < B; ++b) {
        const auto& p = prompts[static_cast<size_t>(b)];
        const int64_t off = P - static_cast<int64_t>(p.size());
        for (size_t i = 0; i < p.size(); ++i) {
            ids_a[b][off + static_cast<int64_t>(i)] = p[i];
            mask_a[b][off + static_cast<int64_t>(i)] = true;
        }
    }
    return {to_device(ids, device), to_device(mask, device)};
}

torch::Tensor position_ids_from_mask(const torch::Tensor& mask) {
    return (mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
}

Generation generate(GptImpl& model, const std::vector<std::vector<int32_t>>& prompts, const SamplingOptions& opts,
                    int64_t pad_id, torch::Generator& gen) {
    // One seed per row from `gen` (a generator draws only onto tensors on its own device).
    auto drawn = torch::empty({static_cast<int64_t>(prompts.size())}, torch::TensorOptions().dtype(torch::kLong).device(gen.device()));
    drawn.random_(gen);
    drawn = drawn.cpu();
    std::vector<uint64_t> row_seeds;
    for (int64_t i = 0; i < drawn.size(0); ++i) row_seeds.push_back(static_cast<uint64_t>(drawn[i].item<int64_t>()));
    return generate(model, prompts, opts, pad_id, row_seeds);
}

std::vector<std::vector<int32_t>> fit_prompts(const std::vector<std::vector<int32_t>>& prompts_in, size_t seeds,
                                              const SamplingOptions& opts, int64_t block) {
    validate_sampling(opts, block);
    if (prompts_in.empty()) throw Error("no prompts to generate from", "generate", "");
    if (seeds != prompts_in.size()) {
        throw Error(std::to_string(seeds) + " seeds for " + std::to_string(prompts_in.size()) + " prompts",
                    "generate", "one seed per prompt");
    }
    const int64_t room = block - opts.max_new_tokens;  // prompt tokens that fit beside the response
    std::vector<std::vector<int32_t>> prompts = prompts_in;
    for (size_t i = 0; i < prompts.size(); ++i) {
        auto& p = prompts[i];
        if (p.empty()) throw Error("prompt " + std::to_string(i) + " is empty", "generate", "start it with EOS or BOS");
        if (static_cast<int64_t>(p.size()) > room) {
            if (!opts.truncate_left) {
                throw Error("prompt " + std::to_string(i) + " has " + std::to_string(p.size()) + " tokens; with " +
                                std::to_string(opts.max_new_tokens) + " new tokens it exceeds the context window of " +
                                std::to_string(block),
                            "generate", "shorten it, lower max_new_tokens, or truncate from the left");
            }
            p.erase(p.begin(), p.end() - room);  // keep the most recent tokens
        }
    }
    return prompts;
}

Generation generate(GptImpl& model, const std::vector<std::vector<int32_t>>& prompts_in, const SamplingOptions& opts,
                    int64_t pad_id, const std::vector<uint64_t>& row_seeds) {
    const std::vector<std::vector<int32_t>> prompts = fit_prompts(prompts_in, row_seeds.size(), opts, model.config().block_size);
    torch::NoGradGuard no_grad;
    EvalModeGuard eval_mode(model);
    const torch::Device device = model.transformer->wte->weight.device();
    auto [prompt_ids, prompt_mask] = left_pad(prompts, pad_id, device);  // (B, P)
    const int64_t B = prompt_ids.size(0), P = prompt_ids.size(1), N = opts.max_new_tokens;

    auto tokens = torch::cat({prompt_ids, torch::full({B, N}, pad_id, prompt_ids.options())}, 1);  // (B, P+N)
    auto key_mask = torch::cat({prompt_mask, torch::zeros({B, N}, prompt_mask.options())}, 1);     // (B, P+N)
    auto logprobs = torch::zeros({B, N}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    auto response_mask = torch::zeros({B, N}, torch::TensorOptions().dtype(torch::kBool).device(device));
    auto finished = torch::zeros({B}, response_mask.options());
    auto stop_ids = torch::tensor(opts.stop_ids.empty() ? std::vector<int64_t>{-1} : opts.stop_ids,
                                  torch::TensorOptions().dtype(torch::kLong)).to(device);
    auto next_pos = prompt_mask.to(torch::kLong).sum(1, /*keepdim=*/true);  // (B, 1): real tokens so far
    std::vector<int64_t> seed_bits(row_seeds.begin(), row_seeds.end());
    const auto seeds = torch::tensor(seed_bits, torch::kLong).to(device);  // (B,) one stream per row
    auto bad = torch::zeros({B}, response_mask.options());                 // (B,) nothing to sample from
    const bool greedy = opts.temperature == 0.0;

    AutocastGuard autocast(opts.bf16, device.type());
    std::unique_ptr<KvCache> cache;
    torch::Tensor logits;  // (B, V) for the position being sampled
    if (opts.use_cache) {
        cache = std::make_unique<KvCache>(model.make_cache(B, P + N));
        AttentionContext ctx{position_ids_from_mask(prompt_mask), prompt_mask, cache.get()};
        logits = model.logits(model.forward(prompt_ids, ctx).index({Slice(), -1}));  // prefill
    }
    int64_t produced = 0;
    for (int64_t t = 0; t < N; ++t) {
        const int64_t L = P + t;  // sequence length before this token
        if (!opts.use_cache) {
            auto seq = tokens.index({Slice(), Slice(0, L)});
            auto mask = key_mask.index({Slice(), Slice(0, L)});
            AttentionContext ctx{position_ids_from_mask(mask), mask, nullptr};
            logits = model.logits(model.forward(seq, ctx).index({Slice(), -1}));
        }
        auto u = greedy ? torch::Tensor() : stream_uniforms(seeds, static_cast<uint64_t>(t));
        auto [token, logprob] = sample_tokens(logits.to(torch::kFloat32), opts, u, bad);
        token = token.masked_fill(finished, pad_id);
        logprobs.index_put_({Slice(), t}, logprob.masked_fill(finished, 0.0f));
        response_mask.index_put_({Slice(), t}, finished.logical_not());
        key_mask.index_put_({Slice(), L}, finished.logical_not());
        tokens.index_put_({Slice(), L}, token);
        finished = finished.logical_or(torch::isin(token, stop_ids));
        produced = t + 1;
        if (t + 1 == N || finished.all().item<bool>()) break;  // one host sync per token
        if (opts.use_cache) {
            // A stopped row keeps decoding padding (its outputs are masked); the batch stays aligned.
            AttentionContext ctx{next_pos, key_mask.index({Slice(), Slice(0, L + 1)}), cache.get()};
            logits = model.logits(model.forward(token.view({B, 1}), ctx).index({Slice(), -1}));
        }
        next_pos = next_pos + 1;
    }
    Generation out;
    out.nonfinite = !greedy && bad.any().item<bool>();
    if (out.nonfinite && opts.throw_on_nonfinite) throw nonfinite_logits_error();
    out.prompt_len = P;
    out.tokens = tokens.index({Slice(), Slice(0, P + produced)});
    out.attention_mask = key_mask.index({Slice(), Slice(0, P + produced)});
    out.response = out.tokens.index({Slice(), Slice(P, None)});
    out.response_mask = response_mask.index({Slice(), Slice(0, produced)});
    out.logprobs = logprobs.index({Slice(), Slice(0, produced)});
    out.decode_slots = B * produced;  // every row takes every step, stopped or not
    return out;
}

torch::Tensor sequence_logprobs(GptImpl& model, const torch::Tensor& tokens, const torch::Tensor& attention_mask,
                                int64_t start, double temperature, bool bf16, torch::Tensor* entropy,
                                int64_t vocab_limit) {
    const torch::Device device = tokens.device();
    AutocastGuard autocast(bf16, device.type());
    AttentionContext ctx{position_ids_from_mask(attention_mask), attention_mask, nullptr};
    auto hidden = model.forward(tokens, ctx);                                          // (B, L, C)
    // Position t-1 predicts token t.
    auto logits = model.logits(hidden.index({Slice(), Slice(start - 1, -1)})).to(torch::kFloat32);  // (B, L-start, V)
    if (temperature > 0.0) logits = logits / temperature;
    logits = mask_beyond_vocab(logits, vocab_limit);
    auto targets = tokens.index({Slice(), Slice(start, None)}).unsqueeze(-1);          // (B, L-start, 1)
    auto log_p = torch::log_softmax(logits, -1);
    if (entropy) {
        torch::NoGradGuard no_grad;
        // Ids left out by vocab_limit have p = 0 and log p = -inf: 0 · -inf would be NaN.
        *entropy = -(log_p.exp() * log_p.clamp_min(std::numeric_limits<float>::lowest())).sum(-1);
    }
    return log_p.gather(-1, targets).squeeze(-1);
}

std::vector<std::vector<int32_t>> response_ids(const Generation& g) {
    const torch::Tensor response = g.response.to(torch::kCPU, torch::kInt64).contiguous();  // (B, N)
    const torch::Tensor mask = g.response_mask.to(torch::kCPU, torch::kBool).contiguous();  // (B, N)
    const int64_t rows = response.size(0), n = response.size(1);
    const int64_t* ids = response.data_ptr<int64_t>();
    const bool* kept = mask.data_ptr<bool>();
    std::vector<std::vector<int32_t>> out(static_cast<size_t>(rows));
    for (int64_t b = 0; b < rows; ++b) {
        for (int64_t t = 0; t < n && kept[b * n + t]; ++t) out[static_cast<size_t>(b)].push_back(static_cast<int32_t>(ids[b * n + t]));
    }
    return out;
}

}  // namespace rlhf
