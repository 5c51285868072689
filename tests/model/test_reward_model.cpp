// The reward model: head initialisation, the reward read at the last real token under any
// padding, normalisation, and the K-wise loss against the explicit per-pair computation.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "rlhf/data/comparisons.h"
#include "rlhf/data/ranked_batches.h"
#include "rlhf/model/reward_model.h"
#include "rlhf/train/reward_step.h"
#include "support/helpers.h"

using namespace rlhf;

namespace {

RewardModel tiny_reward_model(uint64_t seed = 7) {
    torch::manual_seed(seed);
    RewardModel m(test::tiny_model(50));
    m->eval();
    return m;
}

torch::Tensor ids_of(const std::vector<int32_t>& v) {
    std::vector<int64_t> w(v.begin(), v.end());
    return torch::tensor(w, torch::kLong).unsqueeze(0);
}

}  // namespace

// Scalar head init: N(0, 1/sqrt(d_model + 1)), bias 0, normalisation identity.
TEST_CASE("scalar head init: N(0, 1/sqrt(d + 1)), bias 0, identity norm", "[reward][model]") {
    torch::manual_seed(0);
    ScalarHead head(4096);
    const double expected = 1.0 / std::sqrt(4097.0);
    REQUIRE(head->weight.sizes() == torch::IntArrayRef{1, 4096});
    REQUIRE(head->weight.std().item<double>() == Approx(expected).epsilon(0.05));
    REQUIRE(std::abs(head->weight.mean().item<double>()) < 4 * expected / std::sqrt(4096.0));
    REQUIRE(head->bias.abs().max().item<double>() == 0.0);
    REQUIRE(head->norm_gain.item<double>() == 1.0);
    REQUIRE(head->norm_bias.item<double>() == 0.0);
}

// Reward is read at the last real token under left, right and no padding.
TEST_CASE("reward is read at the last real token, whatever the padding", "[reward][model]") {
    auto model = tiny_reward_model();
    torch::NoGradGuard no_grad;
    const std::vector<int32_t> a = {3, 9, 4, 7, 2}, b = {5, 6, 8};
    const double ra = model->raw_scores(ids_of(a), {}).item<double>();
    const double rb = model->raw_scores(ids_of(b), {}).item<double>();

    // Right padding (the training collation).
    RenderedGroup g{{a, b}, {0, 1}};
    auto right = collate_groups({&g}, /*pad_id=*/1);
    auto r = model->raw_scores(right.ids, right.key_mask);
    REQUIRE(std::abs(r[0].item<double>() - ra) <= 1e-5);
    REQUIRE(std::abs(r[1].item<double>() - rb) <= 1e-5);

    // Left padding (rollouts in PPO): b is padded on the left by two pads.
    auto left_ids = torch::tensor({3, 9, 4, 7, 2, 1, 1, 5, 6, 8}, torch::kLong).view({2, 5});
    auto left_mask = torch::tensor({1, 1, 1, 1, 1, 0, 0, 1, 1, 1}, torch::kBool).view({2, 5});
    auto l = model->raw_scores(left_ids, left_mask);
    REQUIRE(std::abs(l[0].item<double>() - ra) <= 1e-5);
    REQUIRE(std::abs(l[1].item<double>() - rb) <= 1e-5);

    // What the bug in other tools reads instead: the last position of a right-padded row.
    REQUIRE(std::abs(model->values(right.ids)[1][4].item<double>() - rb) > 1e-4);
}

// Folding the normalisation into the head gives normalised values at every position.
TEST_CASE("normalisation folded into the head holds at every position", "[reward][model]") {
    // PPO's critic is a copy of the reward model; its values must be on the scale of the
    // normalised scores the returns are built from, not the raw head's.
    auto model = tiny_reward_model();
    torch::NoGradGuard no_grad;
    auto ids = torch::randint(4, 50, {3, 9}, torch::kLong);
    auto mask = torch::ones({3, 9}, torch::kBool);
    model->set_normalisation(torch::tensor({3.0, -1.0, 7.0, 5.0}), /*with_gain=*/true);
    const auto normalised = model->scores(ids, mask);
    REQUIRE_FALSE(torch::allclose(model->values(ids).select(1, 8), normalised));  // the raw head: another scale
    model->fold_normalisation();
    REQUIRE(torch::allclose(model->values(ids).select(1, 8), normalised, 1e-5, 1e-6));
    REQUIRE(torch::allclose(model->scores(ids, mask), normalised, 1e-5, 1e-6));  // scores() unchanged
    REQUIRE(model->score->norm_gain.item<double>() == 1.0);
    REQUIRE(model->score->norm_bias.item<double>() == 0.0);
}

// A bf16 frozen reward model keeps its head fp32: scores are not rounded to bf16 steps.
TEST_CASE("a bf16 frozen reward model keeps its head and scores fp32", "[reward][model]") {
    auto model = tiny_reward_model();
    torch::NoGradGuard no_grad;
    model->score->bias.fill_(30.0f);  // a raw reward around 30, where bf16's step is 0.125
    model->trunk_to_bf16();
    REQUIRE(model->transformer->wte->weight.scalar_type() == torch::kBFloat16);
    REQUIRE(model->score->weight.scalar_type() == torch::kFloat32);
    REQUIRE(model->score->norm_gain.scalar_type() == torch::kFloat32);
    auto ids = torch::randint(4, 50, {16, 9}, torch::kLong);
    const auto s = model->scores(ids, torch::ones({16, 9}, torch::kBool));
    REQUIRE(s.scalar_type() == torch::kFloat32);
    // On a 0.125 grid every score would be a multiple of 1/8; fp32 scores are not.
    REQUIRE((s * 8 - (s * 8).round()).abs().max().item<double>() > 1e-3);
}

TEST_CASE("a zeroed head predicts 0 everywhere", "[reward][model]") {
    auto model = tiny_reward_model();
    model->zero_head();
    torch::NoGradGuard no_grad;
    REQUIRE(model->values(torch::randint(4, 50, {2, 5}, torch::kLong)).abs().max().item<double>() == 0.0);
}

// Normalisation gives the reference set mean 0 (and std 1 with the gain).
TEST_CASE("normalisation: reference set mean 0, std 1 with the gain", "[reward][model]") {
    auto model = tiny_reward_model();
    torch::NoGradGuard no_grad;
    auto raw = torch::tensor({0.3, -0.1, 0.7, 0.2}, torch::kFloat32);
    model->set_normalisation(raw, /*with_gain=*/false);
    REQUIRE(std::abs(model->normalise(raw).mean().item<double>()) < 1e-6);
    REQUIRE(model->score->norm_gain.item<double>() == 1.0);
    model->set_normalisation(raw, /*with_gain=*/true);
    auto n = model->normalise(raw);
    REQUIRE(std::abs(n.mean().item<double>()) < 1e-6);
    REQUIRE(n.std(false).item<double>() == Approx(1.0).epsilon(1e-5));
    // The ordering of rewards never changes.
    REQUIRE(torch::equal(n.argsort(), raw.argsort()));
}

// K-wise loss and gradient equal the explicit per-pair computation with K forwards.
TEST_CASE("K-wise loss and gradient equal explicit per-pair forwards", "[reward][model][loss]") {
    // Two prompts: K = 4 with a tie (5 pairs), K = 3 (3 pairs); rows of different lengths.
    RenderedGroup g1{{{2, 5, 9, 4}, {2, 5, 7}, {2, 5, 8, 8, 3}, {2, 6}}, {0, 1, 1, 2}};
    RenderedGroup g2{{{4, 4, 1, 3}, {4, 9}, {4, 2, 2}}, {2, 0, 1}};
    const std::vector<const RenderedGroup*> groups = {&g1, &g2};
    const double margin = 0.25;

    auto model = tiny_reward_model(11);
    model->to(torch::kFloat64);  // fp64, so 1e-6 measures the method and not fp32 rounding
    model->train();              // dropout is 0: train mode must not change the numbers
    auto batch = collate_groups(groups, /*pad_id=*/0);
    REQUIRE(batch.ids.size(0) == 7);  // K forwards per group ...
    REQUIRE(batch.pairs == 8);        // ... serving every ranked pair (ties dropped)
    auto loss = ranked_pair_loss(model->raw_scores(batch.ids, batch.key_mask), batch, margin) / 2.0;
    loss.backward();
    std::vector<torch::Tensor> kwise_grads;
    for (auto& p : model->parameters()) {
        kwise_grads.push_back(p.grad().clone());
        p.grad().zero_();
    }

    // Explicit: every pair on its own, both sequences forwarded separately (2 forwards per pair).
    torch::Tensor explicit_loss = torch::zeros({}, torch::kFloat64);
    for (const auto* g : groups) {
        const auto pairs = ranked_pairs(g->ranks);
        for (const auto& [w, l] : pairs) {
            auto rw = model->raw_scores(ids_of(g->completions[static_cast<size_t>(w)]), {});
            auto rl = model->raw_scores(ids_of(g->completions[static_cast<size_t>(l)]), {});
            explicit_loss = explicit_loss - torch::log_sigmoid(rw - rl - margin).sum() / static_cast<double>(pairs.size());
        }
    }
    explicit_loss = explicit_loss / 2.0;
    explicit_loss.backward();
    REQUIRE(std::abs(loss.item<double>() - explicit_loss.item<double>()) <= 1e-6);
    size_t i = 0;
    for (auto& p : model->parameters()) {
        INFO("parameter " << i);
        REQUIRE(test::max_abs_diff(p.grad(), kwise_grads[i++]) <= 1e-6);
    }
}

TEST_CASE("pair statistics: accuracy, margin, better and worse reward", "[reward][loss]") {
    RenderedGroup g{{{1}, {2}, {3}}, {0, 1, 2}};
    auto batch = collate_groups({&g}, 0);
    PairStatsAccumulator acc;
    acc.add(torch::tensor({1.0f, 0.0f, 2.0f}), batch, 0.0);  // pairs (0,1) right, (0,2) wrong, (1,2) wrong
    auto s = acc.result();
    REQUIRE(s.pairs == 3);
    REQUIRE(s.accuracy == Approx(1.0 / 3.0));
    REQUIRE(s.margin == Approx((1.0 - 1.0 - 2.0) / 3.0));
    REQUIRE(s.better_mean == Approx((1.0 + 1.0 + 0.0) / 3.0));
    REQUIRE(s.worse_mean == Approx((0.0 + 2.0 + 2.0) / 3.0));
    const double expected_loss = (std::log1p(std::exp(-1.0)) + std::log1p(std::exp(1.0)) + std::log1p(std::exp(2.0))) / 3.0;
    REQUIRE(s.loss == Approx(expected_loss));
}

// A reward step split into token-bounded runs takes the same step as one forward.
TEST_CASE("a reward step in token-bounded runs equals one forward", "[reward][loss]") {
    RenderedGroup g1{{{2, 5, 9, 4}, {2, 5, 7}, {2, 5, 8, 8, 3}, {2, 6}}, {0, 1, 1, 2}};  // 4 rows, longest 5: 20 tokens
    RenderedGroup g2{{{4, 4, 1, 3}, {4, 9}, {4, 2, 2}}, {2, 0, 1}};                       // 3 rows, longest 4: 12
    RenderedGroup g3{{{7, 1}, {7, 3, 3}}, {1, 0}};                                        // 2 rows, longest 3: 6
    const std::vector<const RenderedGroup*> groups = {&g1, &g2, &g3};
    // Runs never split a group; a group over the budget is a run on its own; 0 = one run.
    auto runs = split_by_tokens(groups, 20);  // g1 + g2 would be 7 × 5 = 35; g2 + g3 is 5 × 4 = 20
    REQUIRE(runs.size() == 2);
    REQUIRE(runs[1].size() == 2);
    REQUIRE(split_by_tokens(groups, 19).size() == 3);  // g1 alone although over the budget (20 > 19)
    REQUIRE(split_by_tokens(groups, 0).size() == 1);

    auto step_with = [&](const std::vector<std::vector<const RenderedGroup*>>& parts) {
        auto model = tiny_reward_model(11);
        model->to(torch::kFloat64);
        AdamW opt(*model, OptimConfig{});
        std::vector<RankedBatch> micro;
        for (const auto& p : parts) micro.push_back(collate_groups(p, 0));
        const RewardStepStats s = reward_train_step(*model, opt, micro, 1e-2, 1.0, false, 0.0, nullptr);
        std::vector<torch::Tensor> params;
        for (const auto& p : model->parameters()) params.push_back(p.detach().clone());
        return std::make_pair(s, params);
    };
    const auto [whole, whole_params] = step_with({groups});
    const auto [split, split_params] = step_with(split_by_tokens(groups, 19));
    REQUIRE(split.groups == 3);
    REQUIRE(split.pairs == whole.pairs);
    REQUIRE(std::abs(split.loss - whole.loss) < 1e-12);
    REQUIRE(std::abs(split.grad_norm - whole.grad_norm) < 1e-12);
    for (size_t i = 0; i < whole_params.size(); ++i) REQUIRE(test::max_abs_diff(split_params[i], whole_params[i]) < 1e-12);
}
