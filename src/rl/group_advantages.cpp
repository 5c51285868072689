#include "rlhf/rl/group_advantages.h"

#include <torch/torch.h>

#include "rlhf/core/error.h"

namespace rlhf::rl {

namespace {
// (B,) -> (B / G, G), checking that the rows are whole groups.
torch::Tensor as_groups(const torch::Tensor& rewards, int64_t group_size) {
    if (group_size < 2 || rewards.size(0) % group_size != 0) {
        throw Error(std::to_string(rewards.size(0)) + " rewards are not whole groups of " + std::to_string(group_size),
                    "ppo.group_size", "a group baseline needs >= 2 samples of every prompt");
    }
    return rewards.view({-1, group_size});
}
}  // namespace

torch::Tensor grpo_advantages(const torch::Tensor& rewards, int64_t group_size, bool scale_by_std) {
    auto groups = as_groups(rewards, group_size);  // (P, G)
    auto centred = groups - groups.mean(1, /*keepdim=*/true);
    if (scale_by_std) centred = centred / (groups.std(1, /*unbiased=*/true, /*keepdim=*/true) + 1e-4);
    return centred.reshape({-1});
}

torch::Tensor rloo_advantages(const torch::Tensor& rewards, int64_t group_size) {
    auto groups = as_groups(rewards, group_size);  // (P, G)
    // The baseline of sample i is the mean of the G - 1 others: (sum - R_i) / (G - 1).
    auto others_mean = (groups.sum(1, /*keepdim=*/true) - groups) / static_cast<double>(group_size - 1);
    return (groups - others_mean).reshape({-1});
}

double uniform_group_share(const torch::Tensor& rewards, int64_t group_size) {
    auto groups = as_groups(rewards, group_size);
    auto spread = std::get<0>(groups.max(1)) - std::get<0>(groups.min(1));
    return spread.eq(0).to(torch::kFloat64).mean().item<double>();
}

}  // namespace rlhf::rl
