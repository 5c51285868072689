// Batched sampling from the GPT: prompts of different lengths are left-padded, position ids
// count real tokens only, and padding is masked out of attention, so each row produces the
// logits it would produce alone. With the KV cache the prompt runs once (prefill) and each new
// token costs one single-position forward.
//
// The result carries what PPO needs: the sampled ids, a mask that is 1 up to and including the
// stop token, and log p(token) under the temperature-scaled distribution — the same number a
// training-style forward over prompt+response gives (see sequence_logprobs).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rlhf/core/error.h"
#include "rlhf/model/gpt.h"

namespace rlhf {

struct SamplingOptions {
    int64_t max_new_tokens = 256;
    double temperature = 1.0;         // 0 = greedy (argmax)
    int64_t top_k = 0;                // keep the k most likely tokens; 0 = off
    double top_p = 1.0;               // keep the smallest set with probability >= p; in (0, 1], 1 = off
    std::vector<int64_t> stop_ids;    // a sequence ends after emitting one of these (usually EOS)
    bool use_cache = true;            // false recomputes the whole prefix each step (for checks and benchmarks)
    bool truncate_left = false;       // a prompt too long for the window: drop its oldest tokens (else error)
    int64_t vocab_limit = 0;          // sample only ids < this (the tokenizer's size); 0 = every logit
    bool bf16 = false;                // forward under bf16 autocast
    // Non-finite logits (a diverged model) are an rlhf::Error; false sets Generation::nonfinite
    // instead, for callers that must fail together with other ranks.
    bool throw_on_nonfinite = true;
};

// The error for non-finite logits (see SamplingOptions::throw_on_nonfinite).
Error nonfinite_logits_error();

// Throws rlhf::Error naming the option (e.g. "top_p") for values outside their range.
void validate_sampling(const SamplingOptions& opts, int64_t block_size);

// N below is the number of tokens actually produced: max_new_tokens, or fewer when every
// sequence stopped early.
struct Generation {
    torch::Tensor tokens;         // (B, P + N) int64: left-padded prompts followed by the responses
    torch::Tensor attention_mask; // (B, P + N) bool: real prompt tokens and response tokens up to the stop
    torch::Tensor response;       // (B, N) int64 sampled ids; pad_id after a sequence stopped
    torch::Tensor response_mask;  // (B, N) bool: true up to and including the stop token
    torch::Tensor logprobs;       // (B, N) float32: log p(token | prefix) at temperature T; 0 where masked
    int64_t prompt_len = 0;       // P, the padded prompt length
    bool nonfinite = false;       // some row had nothing to sample from (with throw_on_nonfinite off)
    int64_t decode_slots = 0;     // rows x decoding steps computed: B x N for the static engine, fewer
                                  // when stopped rows leave the batch (model/rollout_engine.h)
};

// Each row's response ids up to and including its stop token (where response_mask is true), read
// back to the host in one copy.
std::vector<std::vector<int32_t>> response_ids(const Generation& g);

// The prompts as generate() runs them: checked (non-empty, one seed each, `opts` valid) and, with
// opts.truncate_left, cut to the tokens that fit beside max_new_tokens in a `block`-token window.
std::vector<std::vector<int32_t>> fit_prompts(const std::vector<std::vector<int32_t>>& prompts, size_t seeds,
                                              const SamplingOptions& opts, int64_t block);

// prompts: token ids (each non-empty). Row b samples from its own random stream, seeded with
// row_seeds[b] (model/sampling_streams.h): its tokens do not depend on the other rows.
Generation generate(GptImpl& model, const std::vector<std::vector<int32_t>>& prompts, const SamplingOptions& opts,
                    int64_t pad_id, const std::vector<uint64_t>& row_seeds);

// The same with the row seeds drawn from `gen` (on any device): one generator state, one result.
Generation generate(GptImpl& model, const std::vector<std::vector<int32_t>>& prompts, const SamplingOptions& opts,
                    int64_t pad_id, torch::Generator& gen);

// A seeded generator on `device` (the same seed gives the same samples).
torch::Generator make_generator(uint64_t seed, const torch::Device& device);

// Left-pads prompts: ids (B, P) and mask (B, P) bool, true on real tokens.
std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int32_t>>& prompts, int64_t pad_id,
                                                  const torch::Device& device);

// Position of each token counting real tokens only: (B, L) mask -> (B, L) int64 (0 on padding).
torch::Tensor position_ids_from_mask(const torch::Tensor& mask);

// Training-style forward over tokens (B, L) with attention_mask (B, L): log p(tokens[:, t] |
// tokens[:, <t]) / temperature-scaled for t >= start, as (B, L - start) float32. With `entropy`,
// also the entropy of each of those distributions (no gradient) — PPO's policy forward. Ids at or
// beyond `vocab_limit` (a padded embedding's unused rows) are left out of the softmax, as
// generate() leaves them out of sampling; 0 = every id.
torch::Tensor sequence_logprobs(GptImpl& model, const torch::Tensor& tokens, const torch::Tensor& attention_mask,
                                int64_t start, double temperature, bool bf16 = false, torch::Tensor* entropy = nullptr,
                                int64_t vocab_limit = 0);

}  // namespace rlhf
