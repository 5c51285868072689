#include "rlhf/rl/dpo_loss.h"

#include <torch/torch.h>

#include <cmath>

namespace rlhf::rl {

DpoPairLosses dpo_pair_losses(const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                              const torch::Tensor& ref_chosen, const torch::Tensor& ref_rejected, const DpoConfig& cfg) {
    const auto chosen = policy_chosen - ref_chosen;  // (P,) log π/π_ref of y_w
    const auto rejected = policy_rejected - ref_rejected;
    const auto h = chosen - rejected;
    DpoPairLosses out;
    if (cfg.loss == DpoLoss::Ipo) {
        out.losses = (h - 1.0 / (2.0 * cfg.beta)).pow(2);
    } else {
        // −log σ(x) = softplus(−x): finite for any |x|, where log(sigmoid(x)) underflows to −inf.
        const double eps = cfg.label_smoothing;
        const auto logits = cfg.beta * h;
        out.losses = (1.0 - eps) * torch::nn::functional::softplus(-logits) + eps * torch::nn::functional::softplus(logits);
    }
    out.chosen_rewards = cfg.beta * chosen.detach();
    out.rejected_rewards = cfg.beta * rejected.detach();
    return out;
}

torch::Tensor dpo_metric_sums(const DpoPairLosses& p) {
    torch::NoGradGuard no_grad;
    const auto c = p.chosen_rewards.to(torch::kFloat64), r = p.rejected_rewards.to(torch::kFloat64);
    const auto correct = c.gt(r).to(torch::kFloat64).sum() + 0.5 * c.eq(r).to(torch::kFloat64).sum();
    const auto pairs = torch::full({}, static_cast<double>(c.size(0)), c.options());
    return torch::stack({p.losses.detach().to(torch::kFloat64).sum(), c.sum(), r.sum(), correct, pairs});
}

DpoMetrics dpo_metrics(const torch::Tensor& sums) {
    const auto s = sums.to(torch::kCPU, torch::kFloat64).contiguous();
    const double* v = s.data_ptr<double>();
    DpoMetrics m;
    m.pairs = static_cast<int64_t>(v[4]);
    const double n = m.pairs > 0 ? v[4] : NAN;
    m.loss = v[0] / n;
    m.chosen_reward = v[1] / n;
    m.rejected_reward = v[2] / n;
    m.accuracy = v[3] / n;
    m.margin = (v[1] - v[2]) / n;
    return m;
}

}  // namespace rlhf::rl
