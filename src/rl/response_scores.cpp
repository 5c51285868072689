#include "rlhf/rl/response_scores.h"

#include "rlhf/core/precision.h"

namespace rlhf::rl {

ScoredResponses ResponseScorer::operator()(const Generation& g) const {
    torch::NoGradGuard no_grad;
    torch::Tensor scores;
    if (toy_token >= 0) {
        scores = g.response.eq(toy_token).logical_and(g.response_mask).sum(1).to(torch::kFloat32);
    } else {
        AutocastGuard autocast(frozen_bf16, g.tokens.device().type());
        scores = reward.ptr()->scores(g.tokens, g.attention_mask).to(torch::kFloat32);
    }
    auto has_eos = g.response.eq(eos_id).logical_and(g.response_mask).any(1);
    if (missing_eos_penalty) scores = torch::where(has_eos, scores, torch::full_like(scores, missing_eos_score));
    if (score_clip > 0) scores = scores.clamp(-score_clip, score_clip);
    return {scores, has_eos};
}

}  // namespace rlhf::rl
