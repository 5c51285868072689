#include "rlhf/rl/rewards.h"

#include <torch/torch.h>

#include <algorithm>

#include "rlhf/core/error.h"
#include "rlhf/model/reward_model.h"  // last_true_index

namespace rlhf::rl {

torch::Tensor kl_estimate(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs, KlEstimator kind) {
    auto log_ratio = logprobs - ref_logprobs;  // log π/π_ref
    switch (kind) {
        case KlEstimator::K1: return log_ratio;
        case KlEstimator::K2: return 0.5 * log_ratio.pow(2);
        case KlEstimator::K3: return (torch::exp(-log_ratio) - 1) + log_ratio;  // ρ = π_ref/π: (ρ - 1) - log ρ
    }
    throw Error("unknown KL estimator", "ppo.kl_estimator", "");  // unreachable: the enum has no other value
}

torch::Tensor per_token_rewards(const torch::Tensor& kl, const torch::Tensor& score, const torch::Tensor& mask,
                                double beta) {
    auto m = mask.to(kl.scalar_type());
    auto rewards = -beta * kl * m;
    auto last = last_true_index(mask.to(torch::kBool)).unsqueeze(1);  // (B, 1)
    return rewards.scatter_add(1, last, score.to(kl.scalar_type()).unsqueeze(1));
}

void KlController::update(double kl, int64_t episodes) {
    if (!adaptive()) return;
    const double error = std::clamp(kl / target_ - 1.0, -0.2, 0.2);
    beta_ *= 1.0 + error * static_cast<double>(episodes) / horizon_;
}

}  // namespace rlhf::rl
