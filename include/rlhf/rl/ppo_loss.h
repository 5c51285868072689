// PPO's clipped objectives (Schulman et al. 2017) over response tokens:
//
//   ρ_t = exp(log π_θ(a_t) - log π_old(a_t))
//   ℓ_t = max(-A_t ρ_t, -A_t clip(ρ_t, 1 - ε_low, 1 + ε_high))      (ε_low = ε_high = ε: PPO; DAPO
//                                                                    raises ε_high, "clip-higher")
//   policy loss = agg(ℓ), where agg over a batch of B sequences is
//     token_mean     Σ_bt ℓ m / Σ_bt m              every token weighs the same (PPO, DAPO)
//     sequence_mean  mean_b (Σ_t ℓ m / Σ_t m)       every sequence weighs the same (GRPO's paper)
//     token_sum      Σ_bt ℓ m / (B · max_tokens)    no length normalisation (Dr.GRPO): a long
//                                                   wrong answer is not penalised less per token
//   value loss  = ½ mean_t max((V_t - R_t)², (clip(V_t, V_old_t ± ε_v) - R_t)²)
//
// The stats are what a run logs to see PPO going wrong: clip fractions, approx-KL
// (½ mean (log ρ)², as TRL and OpenAI's code log it), ratio mean/min/max.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

#include "rlhf/config/enums.h"

namespace rlhf::rl {

struct PolicyLoss {
    torch::Tensor loss;      // () with gradient
    double clip_fraction = 0;  // share of tokens where the clipped term was taken
    double approx_kl = 0;      // ½ mean (log ρ)²
    double ratio_mean = 0, ratio_min = 0, ratio_max = 0;
};

struct PolicyLossOptions {
    double clip_low = 0.2, clip_high = 0.2;  // ρ is clipped to [1 - clip_low, 1 + clip_high]
    LossAggregation aggregation = LossAggregation::TokenMean;
    int64_t max_tokens = 0;                  // token_sum's length (ppo.max_new_tokens)
};

// agg(x) of a per-token (B, T) quantity, as above.
torch::Tensor aggregate(const torch::Tensor& per_token, const torch::Tensor& mask, const PolicyLossOptions& o);

// token_weights (B, N), when defined: each token's ℓ_t times its weight before agg (the
// sampler/trainer correction, rl/rollout_correction.h).
PolicyLoss clipped_policy_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask, const PolicyLossOptions& o,
                               const torch::Tensor& token_weights = {});
// Symmetric clip ε, token mean.
PolicyLoss clipped_policy_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask, double clip);

struct ValueLoss {
    torch::Tensor loss;        // () with gradient
    double clip_fraction = 0;  // share of tokens where the clipped value gave the larger error
};

ValueLoss clipped_value_loss(const torch::Tensor& values, const torch::Tensor& old_values, const torch::Tensor& returns,
                             const torch::Tensor& mask, double clip);

}  // namespace rlhf::rl
