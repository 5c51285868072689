// An exponential moving average of a model's parameters (InstructGPT keeps one of the PPO policy,
// decay 0.992, and uses it as the model): after every optimizer step
//   ema <- decay · ema + (1 - decay) · θ
// It lives beside the model, in the parameters' registration order, and is saved as tensors
// named like the model's own (checkpoint/checkpoint.h: ema.safetensors), so that anything that
// loads a model's weights loads the EMA in their place.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rlhf {

class EmaWeights {
public:
    // decay in (0, 1); starts equal to the model's parameters.
    EmaWeights(torch::nn::Module& model, double decay);

    // One step toward the model's current parameters.
    void update(torch::nn::Module& model);

    // The averages named as the model names its parameters.
    std::vector<std::pair<std::string, torch::Tensor>> named(torch::nn::Module& model) const;

    // Takes saved averages back (a resume). `where` names the file in the error for a missing one.
    void load(torch::nn::Module& model, const std::map<std::string, torch::Tensor>& saved, const std::string& where);

private:
    double decay_;
    std::vector<torch::Tensor> average_;  // one per parameter, in registration order
};

}  // namespace rlhf
