// PPO's clipped objectives (Schulman et al. 2017), averaged over response tokens:
//
//   ρ_t = exp(log π_θ(a_t) - log π_old(a_t))
//   policy loss = mean_t max(-A_t ρ_t, -A_t clip(ρ_t, 1 - ε, 1 + ε))
//   value loss  = ½ mean_t max((V_t - R_t)², (clip(V_t, V_old_t ± ε_v) - R_t)²)
//
// The stats are what a run logs to see PPO going wrong: clip fractions, approx-KL
// (½ mean (log ρ)², as TRL and OpenAI's code log it), ratio mean/min/max.
#pragma once

#include <torch/types.h>

namespace rlhf::rl {

struct PolicyLoss {
    torch::Tensor loss;      // () with gradient
    double clip_fraction = 0;  // share of tokens where the clipped term was taken
    double approx_kl = 0;      // ½ mean (log ρ)²
    double ratio_mean = 0, ratio_min = 0, ratio_max = 0;
};

PolicyLoss clipped_policy_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask, double clip);

struct ValueLoss {
    torch::Tensor loss;        // () with gradient
    double clip_fraction = 0;  // share of tokens where the clipped value gave the larger error
};

ValueLoss clipped_value_loss(const torch::Tensor& values, const torch::Tensor& old_values, const torch::Tensor& returns,
                             const torch::Tensor& mask, double clip);

}  // namespace rlhf::rl
