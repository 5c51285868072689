// The PPO math of src/rl/ on hand-worked examples (the arithmetic is written next to the inputs).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "rlhf/rl/advantages.h"
#include "rlhf/rl/masked.h"
#include "rlhf/rl/ppo_loss.h"
#include "rlhf/rl/response_scores.h"
#include "rlhf/rl/rewards.h"

using namespace rlhf::rl;
using rlhf::KlEstimator;
using Catch::Matchers::WithinAbs;

namespace {
torch::Tensor row(std::vector<double> v) { return torch::tensor(v, torch::kFloat64).unsqueeze(0); }
}  // namespace

TEST_CASE("GAE on a 3-step hand example", "[rl][advantages]") {
    // r = (0, 0, 1), V = (0.5, 0.6, 0.7), γ = 1, λ = 0.5:
    //   δ_2 = 1 + 0 - 0.7 = 0.3                 A_2 = 0.3
    //   δ_1 = 0 + 0.7 - 0.6 = 0.1               A_1 = 0.1 + 0.5·0.3 = 0.25
    //   δ_0 = 0 + 0.6 - 0.5 = 0.1               A_0 = 0.1 + 0.5·0.25 = 0.225
    // returns = A + V = (0.725, 0.85, 1.0). A 4th, masked position changes nothing.
    auto g = gae(row({0, 0, 1, 5}), row({0.5, 0.6, 0.7, 9}), row({1, 1, 1, 0}), 1.0, 0.5);
    REQUIRE_THAT(g.advantages[0][0].item<double>(), WithinAbs(0.225, 1e-12));
    REQUIRE_THAT(g.advantages[0][1].item<double>(), WithinAbs(0.25, 1e-12));
    REQUIRE_THAT(g.advantages[0][2].item<double>(), WithinAbs(0.3, 1e-12));
    REQUIRE(g.advantages[0][3].item<double>() == 0.0);
    REQUIRE_THAT(g.returns[0][0].item<double>(), WithinAbs(0.725, 1e-12));
    REQUIRE_THAT(g.returns[0][2].item<double>(), WithinAbs(1.0, 1e-12));
    // γ = 0.9, λ = 1: A_1 = (0 + 0.9·0.7 - 0.6) + 0.9·0.3 = 0.03 + 0.27 = 0.3
    auto d = gae(row({0, 0, 1}), row({0.5, 0.6, 0.7}), row({1, 1, 1}), 0.9, 1.0);
    REQUIRE_THAT(d.advantages[0][1].item<double>(), WithinAbs(0.3, 1e-12));
}

TEST_CASE("whitening gives mean 0 and variance 1 under a mask", "[rl][advantages]") {
    auto x = torch::tensor({1.0, 2.0, 3.0, 100.0, 4.0, 5.0, -50.0, 0.0}, torch::kFloat64).view({2, 4});
    auto mask = torch::tensor({1, 1, 1, 0, 1, 1, 0, 0}, torch::kFloat64).view({2, 4});
    auto w = masked_whiten(x, mask);
    REQUIRE_THAT(masked_mean(w, mask).item<double>(), WithinAbs(0.0, 1e-9));
    REQUIRE_THAT(masked_var(w, mask).item<double>(), WithinAbs(1.0, 1e-6));
    REQUIRE(w[0][3].item<double>() == 0.0);  // the masked 100 neither counts nor survives
    // shift_mean = false keeps the mean (3 for 1..5) and scales the spread (biased var 2).
    auto r = masked_whiten(x, mask, /*shift_mean=*/false);
    REQUIRE_THAT(masked_mean(r, mask).item<double>(), WithinAbs(3.0, 1e-9));
    REQUIRE_THAT(r[0][0].item<double>(), WithinAbs((1.0 - 3.0) / std::sqrt(2.0) + 3.0, 1e-6));
}

TEST_CASE("clipped policy loss above 1+eps, below 1-eps and inside", "[rl][ppo_loss]") {
    const auto mask = row({1});
    // log ρ = 1 -> ρ = e; A = 1, ε = 0.2: max(-e, -1.2) = -1.2 (clipped)
    auto above = clipped_policy_loss(row({1.5}), row({0.5}), row({1}), mask, 0.2);
    REQUIRE_THAT(above.loss.item<double>(), WithinAbs(-1.2, 1e-12));
    REQUIRE(above.clip_fraction == 1.0);
    // ρ = e with A = -1: max(e, 1.2) = e (unclipped: the pessimistic term)
    auto above_neg = clipped_policy_loss(row({1.5}), row({0.5}), row({-1}), mask, 0.2);
    REQUIRE_THAT(above_neg.loss.item<double>(), WithinAbs(std::exp(1.0), 1e-12));
    REQUIRE(above_neg.clip_fraction == 0.0);
    // log ρ = -1 -> ρ = 1/e; A = -1: max(1/e, 0.8) = 0.8 (clipped)
    auto below = clipped_policy_loss(row({0.0}), row({1.0}), row({-1}), mask, 0.2);
    REQUIRE_THAT(below.loss.item<double>(), WithinAbs(0.8, 1e-12));
    // ρ = exp(0.1) inside [0.8, 1.2]; A = 2: -2·exp(0.1)
    auto inside = clipped_policy_loss(row({0.1}), row({0.0}), row({2}), mask, 0.2);
    REQUIRE_THAT(inside.loss.item<double>(), WithinAbs(-2.0 * std::exp(0.1), 1e-12));
    REQUIRE_THAT(inside.approx_kl, WithinAbs(0.5 * 0.01, 1e-12));
    // ratio == 1 exactly when the policy has not moved: loss = -mean(A), approx-KL 0.
    auto same = clipped_policy_loss(row({-0.3, -2.0}), row({-0.3, -2.0}), row({1, 3}), row({1, 1}), 0.2);
    REQUIRE(same.ratio_mean == 1.0);
    REQUIRE(same.ratio_min == 1.0);
    REQUIRE(same.ratio_max == 1.0);
    REQUIRE(same.approx_kl == 0.0);
    REQUIRE_THAT(same.loss.item<double>(), WithinAbs(-2.0, 1e-12));
}

TEST_CASE("clipped value loss above, below and inside the clip range", "[rl][ppo_loss]") {
    const auto mask = row({1});
    // V_old = 0, V = 1, R = 1, ε_v = 0.2: unclipped error 0, clipped V 0.2 -> error 0.64; ½·max = 0.32
    auto above = clipped_value_loss(row({1.0}), row({0.0}), row({1.0}), mask, 0.2);
    REQUIRE_THAT(above.loss.item<double>(), WithinAbs(0.32, 1e-12));
    REQUIRE(above.clip_fraction == 1.0);
    // V_old = 0, V = -1, R = 0: unclipped 1, clipped (-0.2)² = 0.04; ½·1 = 0.5
    auto below = clipped_value_loss(row({-1.0}), row({0.0}), row({0.0}), mask, 0.2);
    REQUIRE_THAT(below.loss.item<double>(), WithinAbs(0.5, 1e-12));
    REQUIRE(below.clip_fraction == 0.0);
    // V - V_old = 0.1 inside: both errors equal (0.1 - 1)² = 0.81 -> 0.405
    auto inside = clipped_value_loss(row({0.1}), row({0.0}), row({1.0}), mask, 0.2);
    REQUIRE_THAT(inside.loss.item<double>(), WithinAbs(0.405, 1e-12));
}

TEST_CASE("KL estimators, per-token rewards and the adaptive controller", "[rl][rewards]") {
    auto lp = row({-1.0, -2.0}), ref = row({-1.5, -2.0});
    REQUIRE_THAT(kl_estimate(lp, ref, KlEstimator::K1)[0][0].item<double>(), WithinAbs(0.5, 1e-12));
    REQUIRE_THAT(kl_estimate(lp, ref, KlEstimator::K2)[0][0].item<double>(), WithinAbs(0.125, 1e-12));
    REQUIRE_THAT(kl_estimate(lp, ref, KlEstimator::K3)[0][0].item<double>(), WithinAbs(std::exp(-0.5) - 1 + 0.5, 1e-12));
    for (const auto k : {KlEstimator::K1, KlEstimator::K2, KlEstimator::K3}) REQUIRE(kl_estimate(lp, lp, k).abs().max().item<double>() == 0.0);

    // β = 0.1, kl = (0.5, 0.2, 0.3 masked), score 2 at the last real token (index 1).
    auto r = per_token_rewards(row({0.5, 0.2, 0.3}), torch::tensor({2.0}, torch::kFloat64), row({1, 1, 0}), 0.1);
    REQUIRE_THAT(r[0][0].item<double>(), WithinAbs(-0.05, 1e-12));
    REQUIRE_THAT(r[0][1].item<double>(), WithinAbs(2.0 - 0.02, 1e-12));
    REQUIRE(r[0][2].item<double>() == 0.0);

    KlController fixed(0.1, 0.0, 10000);
    fixed.update(100.0, 512);
    REQUIRE(fixed.beta() == 0.1);
    KlController up(0.1, 6.0, 10000), down(0.1, 6.0, 10000);
    up.update(12.0, 512);   // KL above target: error clipped to +0.2 -> β·(1 + 0.2·512/10000)
    REQUIRE_THAT(up.beta(), WithinAbs(0.1 * (1 + 0.2 * 0.0512), 1e-12));
    down.update(3.0, 512);  // below: error -0.5 clipped to -0.2
    REQUIRE(down.beta() < 0.1);
}

// Response scores: the toy reward, the missing-EOS penalty and the clip.
TEST_CASE("response scores: toy reward, missing-EOS penalty and clip", "[rl][scores]") {
    // Two responses of 3 tokens (ids), EOS = 9, toy token 5: row 0 "5 5 9" ended, row 1 "5 1 5"
    // was cut off; masks cover what was generated.
    rlhf::Generation g;
    g.response = torch::tensor({5, 5, 9, 5, 1, 5}, torch::kLong).view({2, 3});
    g.response_mask = torch::ones({2, 3}, torch::kBool);
    g.tokens = g.response;
    g.attention_mask = g.response_mask;
    ResponseScorer scorer;
    scorer.toy_token = 5;
    scorer.eos_id = 9;
    scorer.missing_eos_score = -1.5;
    auto s = scorer(g);
    REQUIRE(s.scores[0].item<float>() == 2.0f);   // two 5s, ended
    REQUIRE(s.scores[1].item<float>() == -1.5f);  // never ended: the penalty, not its two 5s
    REQUIRE(s.has_eos[0].item<bool>());
    REQUIRE_FALSE(s.has_eos[1].item<bool>());
    scorer.missing_eos_penalty = false;
    scorer.score_clip = 1.0;
    s = scorer(g);
    REQUIRE(s.scores[0].item<float>() == 1.0f);  // clipped to ±1
    REQUIRE(s.scores[1].item<float>() == 1.0f);
}
