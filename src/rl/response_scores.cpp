#include "rlhf/rl/response_scores.h"

#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/data/answer_checkers.h"

namespace rlhf::rl {

namespace {
// The checker's verdicts (B,) as 1/0 floats: correct, formatted.
std::pair<torch::Tensor, torch::Tensor> check(const ResponseScorer& s, const Generation& g, const std::vector<double>& answers) {
    const int64_t B = g.response.size(0);
    if (static_cast<int64_t>(answers.size()) != B) {
        throw Error(std::to_string(B) + " responses but " + std::to_string(answers.size()) + " gold answers", "ppo.reward",
                    "a bug: every checked response needs its prompt's answer");
    }
    const auto responses = response_ids(g);
    auto correct = torch::zeros({B}, torch::kFloat32), formatted = torch::zeros({B}, torch::kFloat32);
    for (int64_t b = 0; b < B; ++b) {
        std::vector<int32_t> ids;
        for (const int32_t id : responses[static_cast<size_t>(b)]) if (id != s.eos_id) ids.push_back(id);
        const CheckerVerdict v = check_answer(s.checker, s.tokenizer->decode(ids), answers[static_cast<size_t>(b)]);
        correct[b] = v.correct ? 1.0f : 0.0f;
        formatted[b] = v.formatted ? 1.0f : 0.0f;
    }
    return {correct.to(g.response.device()), formatted.to(g.response.device())};
}
}  // namespace

ScoredResponses ResponseScorer::operator()(const Generation& g, const std::vector<double>& answers) const {
    torch::NoGradGuard no_grad;
    torch::Tensor scores = torch::zeros({g.response.size(0)}, torch::TensorOptions().device(g.response.device()));
    torch::Tensor correct;
    if (toy_token >= 0) {
        scores = g.response.eq(toy_token).logical_and(g.response_mask).sum(1).to(torch::kFloat32);
    } else if (reward) {
        AutocastGuard autocast(frozen_bf16, g.tokens.device().type());
        scores = reward.ptr()->scores(g.tokens, g.attention_mask).to(torch::kFloat32);
        if (!checker.empty()) scores = reward_model_weight * scores;
    }
    if (!checker.empty()) {
        auto [right, formatted] = check(*this, g, answers);
        scores = scores + checker_weight * right + format_reward * formatted;
        correct = right;
    }
    auto has_eos = g.response.eq(eos_id).logical_and(g.response_mask).any(1);
    if (missing_eos_penalty) scores = torch::where(has_eos, scores, torch::full_like(scores, missing_eos_score));
    if (score_clip > 0) scores = scores.clamp(-score_clip, score_clip);
    return {scores, has_eos, correct};
}

}  // namespace rlhf::rl
