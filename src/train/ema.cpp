#include "rlhf/train/ema.h"

#include "rlhf/core/error.h"

namespace rlhf {

EmaWeights::EmaWeights(torch::nn::Module& model, double decay) : decay_(decay) {
    torch::NoGradGuard no_grad;
    for (const auto& p : model.parameters()) average_.push_back(p.detach().clone());
}

void EmaWeights::update(torch::nn::Module& model) {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (const auto& p : model.parameters()) average_[i++].mul_(decay_).add_(p.detach(), 1.0 - decay_);
}

std::vector<std::pair<std::string, torch::Tensor>> EmaWeights::named(torch::nn::Module& model) const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    size_t i = 0;
    for (const auto& item : model.named_parameters()) out.emplace_back(item.key(), average_[i++]);
    return out;
}

void EmaWeights::load(torch::nn::Module& model, const std::map<std::string, torch::Tensor>& saved, const std::string& where) {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (const auto& item : model.named_parameters()) {
        auto it = saved.find(item.key());
        if (it == saved.end()) {
            throw Error("EMA weight '" + item.key() + "' is missing", where, "resume with the ppo.ema_decay the run started with");
        }
        if (!it->second.sizes().equals(average_[i].sizes())) {
            throw Error("EMA weight '" + item.key() + "' has another shape than the model's", where, "");
        }
        average_[i++].copy_(it->second);
    }
}

}  // namespace rlhf
