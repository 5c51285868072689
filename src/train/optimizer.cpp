#include "rlhf/train/optimizer.h"

#include <torch/torch.h>

namespace rlhf {

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimConfig& cfg) {
    std::vector<torch::Tensor> decay, no_decay;
    for (const auto& p : model.parameters()) {
        if (!p.requires_grad()) continue;
        (p.dim() >= 2 ? decay : no_decay).push_back(p);
    }
    auto options = [&](double wd) {
        return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(cfg.lr)
                                                                .betas({cfg.beta1, cfg.beta2})
                                                                .eps(cfg.eps)
                                                                .weight_decay(wd));
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, options(cfg.weight_decay));
    groups.emplace_back(no_decay, options(0.0));
    return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(cfg.lr));
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
    for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
}

}  // namespace rlhf
