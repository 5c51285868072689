#include "rlhf/rl/masked.h"

#include <torch/torch.h>

namespace rlhf::rl {

torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
    auto m = mask.to(x.scalar_type());
    return (x * m).sum() / m.sum().clamp_min(1);
}

torch::Tensor masked_var(const torch::Tensor& x, const torch::Tensor& mask) {
    auto m = mask.to(x.scalar_type());
    auto centred = (x - masked_mean(x, mask)) * m;
    return centred.pow(2).sum() / m.sum().clamp_min(1);
}

torch::Tensor masked_whiten(const torch::Tensor& x, const torch::Tensor& mask, bool shift_mean) {
    auto mean = masked_mean(x, mask);
    auto whitened = (x - mean) * torch::rsqrt(masked_var(x, mask) + 1e-8);
    if (!shift_mean) whitened = whitened + mean;
    return whitened * mask.to(x.scalar_type());
}

}  // namespace rlhf::rl
