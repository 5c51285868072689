#include "rlhf/rl/ppo_loss.h"

#include <torch/torch.h>

#include "rlhf/core/error.h"
#include "rlhf/rl/masked.h"

namespace rlhf::rl {

torch::Tensor aggregate(const torch::Tensor& per_token, const torch::Tensor& mask, const PolicyLossOptions& o) {
    const auto m = mask.to(per_token.scalar_type());
    const double rows = static_cast<double>(std::max<int64_t>(per_token.size(0), 1));
    switch (o.aggregation) {
        case LossAggregation::TokenMean: return masked_mean(per_token, mask);
        case LossAggregation::SequenceMean: return ((per_token * m).sum(1) / m.sum(1).clamp_min(1)).sum() / rows;
        case LossAggregation::TokenSum:
            return (per_token * m).sum() / (rows * static_cast<double>(std::max<int64_t>(o.max_tokens, 1)));
    }
    throw Error("unknown loss aggregation", "ppo.loss_aggregation", "");  // unreachable: the enum has no other value
}

PolicyLoss clipped_policy_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask, double clip) {
    PolicyLossOptions o;
    o.clip_low = o.clip_high = clip;
    return clipped_policy_loss(logprobs, old_logprobs, advantages, mask, o);
}

PolicyLoss clipped_policy_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask, const PolicyLossOptions& o,
                               const torch::Tensor& token_weights) {
    auto log_ratio = logprobs - old_logprobs;
    auto ratio = torch::exp(log_ratio);
    auto unclipped = -advantages * ratio;
    auto clipped = -advantages * torch::clamp(ratio, 1.0 - o.clip_low, 1.0 + o.clip_high);
    PolicyLoss out;
    auto per_token = torch::max(unclipped, clipped);
    if (token_weights.defined()) per_token = per_token * token_weights;
    out.loss = aggregate(per_token, mask, o);
    torch::NoGradGuard no_grad;
    const auto m = mask.to(torch::kBool);
    out.clip_fraction = masked_mean(clipped.gt(unclipped).to(torch::kFloat64), mask).item<double>();
    out.approx_kl = 0.5 * masked_mean(log_ratio.pow(2), mask).item<double>();
    out.ratio_mean = masked_mean(ratio, mask).item<double>();
    if (m.any().item<bool>()) {
        auto real = ratio.masked_select(m);
        out.ratio_min = real.min().item<double>();
        out.ratio_max = real.max().item<double>();
    } else {
        out.ratio_min = out.ratio_max = 1.0;
    }
    return out;
}

ValueLoss clipped_value_loss(const torch::Tensor& values, const torch::Tensor& old_values, const torch::Tensor& returns,
                             const torch::Tensor& mask, double clip) {
    auto clipped_values = old_values + torch::clamp(values - old_values, -clip, clip);
    auto unclipped_error = (values - returns).pow(2);
    auto clipped_error = (clipped_values - returns).pow(2);
    ValueLoss out;
    out.loss = 0.5 * masked_mean(torch::max(unclipped_error, clipped_error), mask);
    torch::NoGradGuard no_grad;
    out.clip_fraction = masked_mean(clipped_error.gt(unclipped_error).to(torch::kFloat64), mask).item<double>();
    return out;
}

}  // namespace rlhf::rl
