// Activation checkpointing must change memory and time only: the loss, every gradient and the
// random stream after the step are those of the run without it.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/config/config.h"
#include "rlhf/model/generate.h"
#include "rlhf/model/gpt.h"
#include "support/helpers.h"

using namespace rlhf;
using torch::indexing::None;
using torch::indexing::Slice;

namespace {

// Loss of a left-padded batch (every block input: mask, positions, rotary tables) and its backward.
torch::Tensor padded_batch_loss(GptImpl& model, const torch::Tensor& tokens) {
    auto mask = torch::ones_like(tokens, torch::kBool);
    mask.index_put_({0, Slice(0, 5)}, false);  // row 0: 5 tokens of left padding
    AttentionContext ctx{position_ids_from_mask(mask), mask, nullptr};
    auto logits = model.logits(model.forward(tokens.index({Slice(), Slice(0, -1)}), {ctx.position_ids.index({Slice(), Slice(0, -1)}),
                                                                                   mask.index({Slice(), Slice(0, -1)}), nullptr}));
    return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                tokens.index({Slice(), Slice(1, None)}).reshape({-1}));
}

}  // namespace

TEST_CASE("activation checkpointing keeps loss and gradients", "[model][checkpointing]") {
    const std::string arch = GENERATE("gpt2", "llama");
    const int64_t segment = GENERATE(1, 2);
    INFO(arch << ", segments of " << segment << " blocks");
    torch::manual_seed(3);
    ModelConfig cfg = test::tiny_model_of(arch, 50);
    cfg.n_layer = 3;      // segments of 2: one of 2 blocks, one of 1
    cfg.dropout = 0.1;    // the recomputation must draw the forward's masks again
    Gpt plain(cfg), checkpointed(cfg);
    {
        torch::NoGradGuard no_grad;
        auto source = plain->named_parameters();
        for (auto& p : checkpointed->named_parameters()) p.value().copy_(source[p.key()]);
    }
    checkpointed->set_activation_checkpointing(segment);
    plain->train();
    checkpointed->train();
    const auto tokens = torch::randint(4, 50, {3, 20}, torch::kLong);

    torch::manual_seed(11);
    const auto loss_plain = padded_batch_loss(*plain, tokens);
    loss_plain.backward();
    const auto after_plain = torch::rand({4});
    torch::manual_seed(11);
    const auto loss_checkpointed = padded_batch_loss(*checkpointed, tokens);
    loss_checkpointed.backward();
    const auto after_checkpointed = torch::rand({4});

    REQUIRE(std::abs(loss_plain.item<double>() - loss_checkpointed.item<double>()) < 1e-6);
    auto grads = plain->named_parameters();
    for (const auto& p : checkpointed->named_parameters()) {
        INFO(p.key());
        REQUIRE(p.value().grad().defined());
        REQUIRE(test::max_abs_diff(p.value().grad(), grads[p.key()].grad()) < 1e-6);
    }
    REQUIRE(torch::equal(after_plain, after_checkpointed));  // the step left the generator where it was

    // Without gradients (evaluation, reference models) it does nothing.
    torch::NoGradGuard no_grad;
    plain->eval();
    checkpointed->eval();
    REQUIRE(test::max_abs_diff(padded_batch_loss(*checkpointed, tokens), padded_batch_loss(*plain, tokens)) < 1e-6);
}

TEST_CASE("train.activation_checkpointing values", "[model][checkpointing][config]") {
    TrainConfig t;
    const std::vector<std::pair<std::string, int64_t>> cases = {
        {"none", 0}, {"blocks", 1}, {"every_3", 3}, {"every_12", 12}, {"every_0", -1}, {"every_", -1},
        {"every_x", -1}, {"sometimes", -1}, {"every_1234567890", -1}};
    for (const auto& [text, blocks] : cases) {
        INFO(text);
        t.activation_checkpointing = text;
        REQUIRE(activation_checkpoint_blocks(t) == blocks);
    }
}
