#include "rlhf/rl/advantages.h"

#include <torch/torch.h>

namespace rlhf::rl {

Advantages gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& mask, double gamma,
               double lambda) {
    const int64_t T = rewards.size(1);
    auto m = mask.to(rewards.scalar_type());
    auto v = values * m;
    std::vector<torch::Tensor> adv(static_cast<size_t>(T));
    auto next_adv = torch::zeros_like(rewards.select(1, 0));
    auto next_value = torch::zeros_like(next_adv);
    for (int64_t t = T - 1; t >= 0; --t) {
        auto mt = m.select(1, t);
        auto delta = rewards.select(1, t) + gamma * next_value - v.select(1, t);
        auto a = (delta + gamma * lambda * next_adv) * mt;
        adv[static_cast<size_t>(t)] = a;
        // A masked position passes nothing back: the sequence ended before it.
        next_adv = a;
        next_value = v.select(1, t);
    }
    auto advantages = torch::stack(adv, 1);
    return {advantages, (advantages + v) * m};
}

}  // namespace rlhf::rl
