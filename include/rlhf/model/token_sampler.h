// One decoding step's choice of token, shared by the static generate() and the rollout engine:
// temperature, top-k and top-p applied to a batch of logits, one uniform per row (each row's own
// stream, model/sampling_streams.h), and the log-probability PPO needs.
#pragma once

#include <torch/types.h>

#include <utility>

namespace rlhf {

struct SamplingOptions;

// Logits (..., V) with the ids at or beyond `vocab_limit` (embedding rows the tokenizer does not
// use: a vocabulary padded to a multiple of 64) at -inf, so that they are never sampled and the
// log-probs are those of the distribution actually sampled from. 0 = every id.
torch::Tensor mask_beyond_vocab(torch::Tensor logits, int64_t vocab_limit);

// Samples one token per row from logits (B, V) fp32 with this step's uniforms u (B,) (unused when
// greedy). Returns (token (B), logprob (B)): log p(token) under the temperature-scaled
// distribution over the tokenizer's vocabulary, which is what a training forward computes (top-k
// and top-p only choose the token). `bad` (B,) becomes true for a row whose logits left nothing to
// sample from (NaN, all -inf); the caller checks it once, not per token (a host sync).
std::pair<torch::Tensor, torch::Tensor> sample_tokens(const torch::Tensor& logits, const SamplingOptions& opts,
                                                      const torch::Tensor& u, torch::Tensor& bad);

}  // namespace rlhf
