// The score of each sampled response, the reward PPO maximises: the reward model's normalised
// score at the last real token (or the toy reward of the tests), and/or a verifiable checker's
// verdict on the decoded response (data/answer_checkers.h), weighted:
//
//   score = reward_model_weight · RM  +  checker_weight · [correct]  +  format_reward · [formatted]
//
// (each term only when its source is configured), then the penalty for a response that never
// ends and the optional clip.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "rlhf/model/generate.h"
#include "rlhf/model/reward_model.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf::rl {

struct ScoredResponses {
    torch::Tensor scores;   // (B,) float32, after the penalty and the clip
    torch::Tensor has_eos;  // (B,) bool: the response ended by itself
    torch::Tensor correct;  // (B,) float32 1/0: the checker's verdict (undefined without a checker)
};

struct ResponseScorer {
    RewardModel reward{nullptr};      // frozen; its scalar head and normalisation stay fp32
    int64_t toy_token = -1;           // without a reward model: ppo.toy_reward count:TEXT scores TEXT's id
    bool frozen_bf16 = false;         // the reward model's trunk runs in bf16 (ppo.frozen_dtype)
    int64_t eos_id = -1;
    bool missing_eos_penalty = true;  // a response that never ends scores missing_eos_score
    double missing_eos_score = -1.0;
    double score_clip = 0.0;          // clip to ±this; 0 = off
    std::string checker;              // "" = none; else ages | gsm8k (ppo.reward: checker:NAME)
    const Tokenizer* tokenizer = nullptr;  // decodes the responses the checker reads
    double checker_weight = 1.0, reward_model_weight = 1.0, format_reward = 0.0;

    // `answers`: each row's gold answer (a checker needs them, one per row of g).
    ScoredResponses operator()(const Generation& g, const std::vector<double>& answers = {}) const;
};

}  // namespace rlhf::rl
