// The score of each sampled response, the reward PPO maximises: the reward model's normalised
// score at the last real token (or the toy reward of the tests), then the penalty for a response
// that never ends and the optional clip.
#pragma once

#include <torch/torch.h>

#include "rlhf/model/generate.h"
#include "rlhf/model/reward_model.h"

namespace rlhf::rl {

struct ScoredResponses {
    torch::Tensor scores;   // (B,) float32, after the penalty and the clip
    torch::Tensor has_eos;  // (B,) bool: the response ended by itself
};

struct ResponseScorer {
    RewardModel reward{nullptr};      // frozen; its scalar head and normalisation stay fp32
    int64_t toy_token = -1;           // without a reward model: ppo.toy_reward count:TEXT scores TEXT's id
    bool frozen_bf16 = false;         // the reward model's trunk runs in bf16 (ppo.frozen_dtype)
    int64_t eos_id = -1;
    bool missing_eos_penalty = true;  // a response that never ends scores missing_eos_score
    double missing_eos_score = -1.0;
    double score_clip = 0.0;          // clip to ±this; 0 = off

    ScoredResponses operator()(const Generation& g) const;
};

}  // namespace rlhf::rl
