// Critic-free advantages (docs/grpo.md): each prompt is sampled G times, in consecutive rows, and
// every response is judged against the other answers to the same prompt instead of against a
// critic's value estimate. One number per response, the same for all of its tokens.
//
//   GRPO (Shao et al. 2024)        A_i = (R_i - mean_g R) / (std_g R + 1e-4)   std as torch.std (unbiased)
//   Dr.GRPO (Liu et al. 2025)      A_i =  R_i - mean_g R                        (scale_by_std = false)
//   RLOO (Ahmadian et al. 2024)    A_i =  R_i - mean_{j != i} R_j  =  G/(G-1) · (R_i - mean_g R)
//
// A group whose G rewards are all equal gives every member A = 0: nothing to learn from it.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace rlhf::rl {

// rewards (B,), B = prompts x group_size, each prompt's samples consecutive -> (B,)
torch::Tensor grpo_advantages(const torch::Tensor& rewards, int64_t group_size, bool scale_by_std);
torch::Tensor rloo_advantages(const torch::Tensor& rewards, int64_t group_size);

// Share of groups whose rewards are all equal (their advantages are 0).
double uniform_group_share(const torch::Tensor& rewards, int64_t group_size);

}  // namespace rlhf::rl
