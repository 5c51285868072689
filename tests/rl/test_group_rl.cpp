// Critic-free RL's math (src/rl/group_advantages.cpp, the loss aggregations and asymmetric clip of
// src/rl/ppo_loss.cpp) and the verifiable checkers (src/data/answer_checkers.cpp), on hand-worked
// examples: the arithmetic is written next to the inputs.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>

#include "rlhf/data/answer_checkers.h"
#include "rlhf/rl/group_advantages.h"
#include "rlhf/rl/ppo_loss.h"
#include "rlhf/rl/rollout_correction.h"

using namespace rlhf;
using Catch::Matchers::WithinAbs;

namespace {
torch::Tensor f64(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }
}  // namespace

TEST_CASE("GRPO, Dr.GRPO and RLOO advantages on 2 prompts x 3 samples", "[rl][group]") {
    // Prompt 1: rewards 1, 0, 0 (mean 1/3); prompt 2: 2, 2, 5 (mean 3).
    const auto r = f64({1, 0, 0, 2, 2, 5});
    // Dr.GRPO: R - mean.
    auto dr = rl::grpo_advantages(r, 3, /*scale_by_std=*/false);
    const std::vector<double> centred = {2.0 / 3, -1.0 / 3, -1.0 / 3, -1, -1, 2};
    for (int i = 0; i < 6; ++i) REQUIRE_THAT(dr[i].item<double>(), WithinAbs(centred[i], 1e-12));
    // GRPO: / (unbiased std + 1e-4). Prompt 1: var = (4/9 + 1/9 + 1/9) / 2 = 1/3; prompt 2: (1 + 1 + 4) / 2 = 3.
    auto grpo = rl::grpo_advantages(r, 3, /*scale_by_std=*/true);
    const double s1 = std::sqrt(1.0 / 3) + 1e-4, s2 = std::sqrt(3.0) + 1e-4;
    for (int i = 0; i < 3; ++i) REQUIRE_THAT(grpo[i].item<double>(), WithinAbs(centred[i] / s1, 1e-12));
    for (int i = 3; i < 6; ++i) REQUIRE_THAT(grpo[i].item<double>(), WithinAbs(centred[i] / s2, 1e-12));
    // RLOO: R_i - mean of the other two. Prompt 1: 1 - 0 = 1, 0 - 1/2, 0 - 1/2; prompt 2: 2 - 3.5, 2 - 3.5, 5 - 2.
    auto rloo = rl::rloo_advantages(r, 3);
    const std::vector<double> loo = {1, -0.5, -0.5, -1.5, -1.5, 3};
    for (int i = 0; i < 6; ++i) REQUIRE_THAT(rloo[i].item<double>(), WithinAbs(loo[i], 1e-12));
    // ... which is G/(G-1) times the centred reward.
    for (int i = 0; i < 6; ++i) REQUIRE_THAT(rloo[i].item<double>(), WithinAbs(1.5 * centred[i], 1e-12));
    // A group with one reward for all: advantage 0 (no division by a zero std), and it is counted.
    auto flat = rl::grpo_advantages(f64({1, 1, 1, 0, 1, 0}), 3, true);
    for (int i = 0; i < 3; ++i) REQUIRE(flat[i].item<double>() == 0.0);
    REQUIRE_THAT(rl::uniform_group_share(f64({1, 1, 1, 0, 1, 0}), 3), WithinAbs(0.5, 1e-12));
    // Rows that are not whole groups are a bug, reported as one.
    REQUIRE_THROWS_WITH(rl::grpo_advantages(f64({1, 2, 3, 4, 5}), 3, true), Catch::Contains("not whole groups of 3"));
}

// Loss aggregation: token mean, sequence mean and Dr.GRPO's token sum.
TEST_CASE("loss aggregation: token mean, sequence mean, token sum", "[rl][group]") {
    // Two sequences at ratio 1 (the loss is -A per token): row 0 one token with A = 2, row 1 three
    // tokens with A = -1 (the fourth column is padding).
    const auto lp = torch::zeros({2, 4}, torch::kFloat64);
    const auto adv = f64({2, 0, 0, 0, -1, -1, -1, 0}).view({2, 4});
    const auto mask = f64({1, 0, 0, 0, 1, 1, 1, 0}).view({2, 4});
    rl::PolicyLossOptions o;
    o.clip_low = o.clip_high = 0.2;
    o.aggregation = LossAggregation::TokenMean;  // (-2 + 1 + 1 + 1) / 4 tokens
    REQUIRE_THAT(rl::clipped_policy_loss(lp, lp, adv, mask, o).loss.item<double>(), WithinAbs(0.25, 1e-12));
    o.aggregation = LossAggregation::SequenceMean;  // mean(-2 / 1, 3 / 3): the short sequence weighs as much as the long one
    REQUIRE_THAT(rl::clipped_policy_loss(lp, lp, adv, mask, o).loss.item<double>(), WithinAbs(-0.5, 1e-12));
    o.aggregation = LossAggregation::TokenSum;  // (-2 + 3) / (2 sequences x 4 max tokens)
    o.max_tokens = 4;
    REQUIRE_THAT(rl::clipped_policy_loss(lp, lp, adv, mask, o).loss.item<double>(), WithinAbs(0.125, 1e-12));
}

// Asymmetric clip: clip-higher lets a good token's ratio rise further.
TEST_CASE("asymmetric clip: clip-higher lets a good ratio rise further", "[rl][group]") {
    const auto mask = f64({1}).view({1, 1});
    auto one = [](double v) { return f64({v}).view({1, 1}); };
    rl::PolicyLossOptions o;
    o.clip_low = 0.2;
    o.clip_high = 0.28;
    // ρ = e^0.2 = 1.2214, A = 1: inside [0.8, 1.28], so -ρ (symmetric 0.2 would clip it to -1.2).
    REQUIRE_THAT(rl::clipped_policy_loss(one(0.2), one(0), one(1), mask, o).loss.item<double>(),
                 WithinAbs(-std::exp(0.2), 1e-12));
    REQUIRE_THAT(rl::clipped_policy_loss(one(0.2), one(0), one(1), mask, 0.2).loss.item<double>(), WithinAbs(-1.2, 1e-12));
    // ρ = e^0.3 = 1.35, A = 1: clipped at 1 + 0.28.
    auto high = rl::clipped_policy_loss(one(0.3), one(0), one(1), mask, o);
    REQUIRE_THAT(high.loss.item<double>(), WithinAbs(-1.28, 1e-12));
    REQUIRE(high.clip_fraction == 1.0);
    // ρ = e^-0.5 = 0.61, A = -1: clipped at 1 - 0.2: max(0.61, 0.8) = 0.8.
    REQUIRE_THAT(rl::clipped_policy_loss(one(-0.5), one(0), one(-1), mask, o).loss.item<double>(), WithinAbs(0.8, 1e-12));
}

// Answer checkers: ages and gsm8k read the final number; gold answers from the prompt file.
TEST_CASE("answer checkers: ages, gsm8k read the last number, and gold", "[rl][checker]") {
    using nlohmann::json;
    // ages: the last whole number.
    REQUIRE(check_answer("ages", "My brother will be 16.", 16).correct);
    REQUIRE_FALSE(check_answer("ages", "My brother will be 16. No, 17.", 16).correct);
    REQUIRE_FALSE(check_answer("ages", "I do not know.", 16).correct);
    REQUIRE_FALSE(check_answer("ages", "I do not know.", 16).formatted);
    REQUIRE(check_answer("ages", "He is 3", 3).formatted);
    REQUIRE(*gold_answer("ages", json(11)) == 11);
    REQUIRE(*gold_answer("ages", json("11")) == 11);
    REQUIRE_FALSE(gold_answer("ages", json("eleven")));
    REQUIRE_FALSE(gold_answer("ages", json(2.5)));
    // gsm8k: the number after "####" when there is one, commas dropped; else the last number.
    REQUIRE(check_answer("gsm8k", "She pays 3 * 4 = 12 dollars.\n#### 12", 12).correct);
    REQUIRE(check_answer("gsm8k", "She pays 3 * 4 = 12 dollars.\n#### 12", 12).formatted);
    REQUIRE(check_answer("gsm8k", "In all 1,250 apples", 1250).correct);
    REQUIRE_FALSE(check_answer("gsm8k", "In all 1,250 apples", 1250).formatted);
    REQUIRE_FALSE(check_answer("gsm8k", "#### 7 and then 12", 12).correct);  // the "####" answer counts
    REQUIRE(check_answer("gsm8k", "The change is -3.5", -3.5).correct);
    REQUIRE(*gold_answer("gsm8k", json("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72")) == 72);
    REQUIRE(*gold_answer("gsm8k", json("1,000")) == 1000);
    REQUIRE(*gold_answer("gsm8k", json(5)) == 5);
    REQUIRE_FALSE(gold_answer("gsm8k", json("She sold 5 clips")));  // a solution without "####"
    REQUIRE_THROWS_WITH(gold_answer("nope", json(1)), Catch::Contains("unknown checker 'nope'"));
}

// The sampler/trainer correction's weights by hand: w = π_old / π_sampler = 3, 0.6, 1, 0.2 on four
// response tokens and a padding column, cap 2.
TEST_CASE("rollout correction weights: tis truncates, mask drops", "[rl][group]") {
    const auto rollout = torch::log(torch::tensor({0.1, 0.4, 0.5, 0.5, 1.0}, torch::kFloat32)).view({1, 5});
    const auto old = torch::log(torch::tensor({0.3, 0.24, 0.5, 0.1, 1.0}, torch::kFloat32)).view({1, 5});
    const auto mask = torch::tensor({1, 1, 1, 1, 0}, torch::kFloat32).view({1, 5});
    auto at = [](const torch::Tensor& w) {
        std::vector<double> v;
        for (int64_t i = 0; i < w.size(1); ++i) v.push_back(w[0][i].item<double>());
        return v;
    };
    REQUIRE_FALSE(rl::rollout_correction_weights(old, rollout, mask, RolloutCorrection::None, 2.0).weights.defined());
    const auto tis = rl::rollout_correction_weights(old, rollout, mask, RolloutCorrection::Tis, 2.0);
    const std::vector<double> tis_want = {2.0, 0.6, 1.0, 0.2, 0.0};
    for (size_t i = 0; i < tis_want.size(); ++i) REQUIRE_THAT(at(tis.weights)[i], WithinAbs(tis_want[i], 1e-6));
    REQUIRE_THAT(tis.corrected_share, WithinAbs(0.25, 1e-12));  // only the 3 was cut
    REQUIRE_THAT(tis.weight_mean, WithinAbs(3.8 / 4, 1e-6));
    const auto masked = rl::rollout_correction_weights(old, rollout, mask, RolloutCorrection::Mask, 2.0);
    const std::vector<double> mask_want = {0.0, 1.0, 1.0, 0.0, 0.0};  // 3 > 2 and 0.2 < 1/2 are left out
    for (size_t i = 0; i < mask_want.size(); ++i) REQUIRE(at(masked.weights)[i] == mask_want[i]);
    REQUIRE_THAT(masked.corrected_share, WithinAbs(0.5, 1e-12));
    // In the policy loss at ratio 1 and advantage 1, each token's -1 is weighed: token mean -(Σw)/4.
    rl::PolicyLossOptions o;
    const auto adv = torch::ones({1, 5});
    REQUIRE_THAT(rl::clipped_policy_loss(old, old, adv, mask, o, tis.weights).loss.item<double>(), WithinAbs(-3.8 / 4, 1e-6));
    REQUIRE_THAT(rl::clipped_policy_loss(old, old, adv, mask, o, masked.weights).loss.item<double>(), WithinAbs(-0.5, 1e-6));
    REQUIRE_THAT(rl::clipped_policy_loss(old, old, adv, mask, o).loss.item<double>(), WithinAbs(-1.0, 1e-6));
}
