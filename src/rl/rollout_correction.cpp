#include "rlhf/rl/rollout_correction.h"

#include <torch/torch.h>

#include <cmath>

#include "rlhf/rl/masked.h"

namespace rlhf::rl {

RolloutWeights rollout_correction_weights(const torch::Tensor& old_logprobs, const torch::Tensor& rollout_logprobs,
                                          const torch::Tensor& mask, RolloutCorrection mode, double cap) {
    RolloutWeights out;
    if (mode == RolloutCorrection::None) return out;
    torch::NoGradGuard no_grad;
    const auto m = mask.to(torch::kFloat32);
    const auto w = torch::exp(old_logprobs - rollout_logprobs) * m;  // (B, N) π_old / π_sampler
    torch::Tensor changed;
    if (mode == RolloutCorrection::Tis) {
        out.weights = torch::clamp_max(w, cap);
        changed = w.gt(cap);
    } else {  // mask
        const auto keep = w.ge(1.0 / cap).logical_and(w.le(cap));
        out.weights = keep.to(torch::kFloat32) * m;
        changed = keep.logical_not();
    }
    out.corrected_share = masked_mean(changed.to(torch::kFloat32), m).item<double>();
    out.weight_mean = masked_mean(out.weights, m).item<double>();
    return out;
}

}  // namespace rlhf::rl
