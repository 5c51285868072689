// The critic's values for PPO: one scalar per response token, read from the critic (a GPT with a
// scalar head, see model/reward_model.h) at the position BEFORE each token — the state in which
// the policy chose it. Left-padded rollouts: positions count real tokens, pads are hidden.
#pragma once

#include <torch/types.h>

#include "rlhf/model/reward_model.h"

namespace rlhf::rl {

// (B, L - start) values for tokens[:, start:] of a (B, L) rollout.
torch::Tensor response_values(RewardModelImpl& critic, const torch::Tensor& tokens, const torch::Tensor& attention_mask,
                              int64_t start, bool bf16);

}  // namespace rlhf::rl
