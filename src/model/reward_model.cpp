#include "rlhf/model/reward_model.h"

#include <torch/torch.h>

#include <cmath>

#include "rlhf/core/error.h"
#include "rlhf/model/generate.h"  // position_ids_from_mask

namespace rlhf {

ScalarHeadImpl::ScalarHeadImpl(int64_t n_embd) {
    weight = register_parameter("weight", torch::randn({1, n_embd}) / std::sqrt(static_cast<double>(n_embd + 1)));
    bias = register_parameter("bias", torch::zeros({1}));
    norm_gain = register_buffer("norm_gain", torch::ones({}));
    norm_bias = register_buffer("norm_bias", torch::zeros({}));
}

torch::Tensor ScalarHeadImpl::forward(const torch::Tensor& hidden) {
    // In the weights' precision (fp32) even under autocast: a reward difference of 0.01 matters and
    // bf16 keeps ~3 digits.
    return torch::nn::functional::linear(hidden.to(weight.scalar_type()), weight, bias).squeeze(-1);
}

RewardModelImpl::RewardModelImpl(const ModelConfig& cfg) : RewardModelImpl(Gpt(cfg)) {}

RewardModelImpl::RewardModelImpl(Gpt trunk) : gpt(std::move(trunk)) {
    transformer = register_module("transformer", gpt->transformer);
    score = register_module("score", ScalarHead(gpt->config().n_embd));
    score->to(gpt->transformer->wte->weight.device());
}

void RewardModelImpl::fold_normalisation() {
    torch::NoGradGuard no_grad;
    // gain · (w·h + b) + bias = (gain · w)·h + (gain · b + bias)
    score->weight.mul_(score->norm_gain);
    score->bias.mul_(score->norm_gain).add_(score->norm_bias);
    score->norm_gain.fill_(1.0);
    score->norm_bias.fill_(0.0);
}

void RewardModelImpl::trunk_to_bf16() { transformer->to(torch::kBFloat16); }

void RewardModelImpl::zero_head() {
    torch::NoGradGuard no_grad;
    score->weight.zero_();
    score->bias.zero_();
}

torch::Tensor RewardModelImpl::values(const torch::Tensor& idx, const AttentionContext& ctx) {
    return score(gpt->forward(idx, ctx));
}

torch::Tensor last_true_index(const torch::Tensor& mask) {
    const int64_t T = mask.size(1);
    auto positions = torch::arange(T, mask.options().dtype(torch::kLong)).unsqueeze(0);  // (1, T)
    return (positions * mask.to(torch::kLong)).argmax(1);  // the largest index holding a real token
}

torch::Tensor RewardModelImpl::raw_scores(const torch::Tensor& idx, const torch::Tensor& key_mask) {
    const int64_t B = idx.size(0), T = idx.size(1);
    if (!key_mask.defined()) return values(idx).select(1, T - 1);
    RLHF_CHECK(key_mask.sizes() == idx.sizes(), "reward model", "key_mask must have the shape of the ids", "");
    RLHF_CHECK(key_mask.any(1).all().item<bool>(), "reward model", "a row has no real token", "");
    AttentionContext ctx;
    // Right padding (every row a prefix of real tokens) needs no mask: under causal attention no
    // real token sees a later pad, and positions are the usual 0..L-1. Anything else (left
    // padding) gets positions counting real tokens and pads hidden from attention.
    const bool right_padded = T == 1 || key_mask.to(torch::kLong).diff(1, 1).le(0).all().item<bool>();
    if (!right_padded) {
        ctx.position_ids = position_ids_from_mask(key_mask);
        ctx.key_mask = key_mask;
    }
    auto r = values(idx, ctx);                                                   // (B, T)
    return r.gather(1, last_true_index(key_mask).view({B, 1})).squeeze(1);      // (B,)
}

torch::Tensor RewardModelImpl::normalise(const torch::Tensor& raw) const {
    return raw * score->norm_gain + score->norm_bias;
}

torch::Tensor RewardModelImpl::scores(const torch::Tensor& idx, const torch::Tensor& key_mask) {
    return normalise(raw_scores(idx, key_mask));
}

void RewardModelImpl::set_normalisation(const torch::Tensor& reference_raw, bool with_gain) {
    RLHF_CHECK(reference_raw.numel() >= (with_gain ? 2 : 1), "reward.reference_files",
               "too few reference responses to normalise the reward", "");
    torch::NoGradGuard no_grad;
    auto r = reference_raw.detach().to(torch::kFloat64);
    const double mean = r.mean().item<double>();
    double gain = 1.0;
    if (with_gain) {
        const double std = r.std(/*unbiased=*/false).item<double>();
        RLHF_CHECK(std > 0, "reward.normalize", "the reference rewards are all equal; no gain can give them std 1",
                   "use reward.normalize: bias");
        gain = 1.0 / std;
    }
    score->norm_gain.fill_(gain);
    score->norm_bias.fill_(-mean * gain);
}

int64_t RewardModelImpl::num_parameters() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
}

}  // namespace rlhf
