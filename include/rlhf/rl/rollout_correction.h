// The sampler/trainer gap, corrected (ppo.rollout_correction; as verl and OpenRLHF do). A rollout
// is sampled by generate() (π_sampler: a KV-cache decode, perhaps in bf16 or on another kernel),
// but PPO's ratio is taken against the trainer's forward of the same tokens (π_old). Where the two
// differ, the samples are slightly off-policy for the trainer; each token's policy loss is weighed
// by the importance weight
//
//   w_t = π_old(a_t) / π_sampler(a_t)
//   tis:   min(w_t, cap)                        truncated importance sampling (bounded variance)
//   mask:  1 where 1/cap <= w_t <= cap, else 0  tokens the two disagree on are left out
//   none:  no weights
//
// The weights are constants (no gradient) and fixed for the iteration: both log-probs are.
#pragma once

#include <torch/types.h>

#include "rlhf/config/enums.h"

namespace rlhf::rl {

struct RolloutWeights {
    torch::Tensor weights;       // (B, N) float, 0 on padding; undefined for none
    double corrected_share = 0;  // share of response tokens whose weight tis or mask changed from w_t
    double weight_mean = 1;      // mean weight over response tokens
};

// old_logprobs, rollout_logprobs, mask: (B, N), the log-probs masked to 0 outside the response.
RolloutWeights rollout_correction_weights(const torch::Tensor& old_logprobs, const torch::Tensor& rollout_logprobs,
                                          const torch::Tensor& mask, RolloutCorrection mode, double cap);

}  // namespace rlhf::rl
