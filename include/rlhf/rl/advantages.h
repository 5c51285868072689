// Generalised advantage estimation (Schulman et al. 2016) over response tokens:
//
//   δ_t = r_t + γ V_{t+1} - V_t          (V = 0 after the last real token)
//   A_t = δ_t + γ λ A_{t+1}
//   returns R_t = A_t + V_t
//
// Computed backwards over T; masked positions (after the end) have A = 0 and do not feed
// earlier ones.
#pragma once

#include <torch/types.h>

namespace rlhf::rl {

struct Advantages {
    torch::Tensor advantages;  // (B, T)
    torch::Tensor returns;     // (B, T)
};

Advantages gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& mask, double gamma,
               double lambda);

}  // namespace rlhf::rl
