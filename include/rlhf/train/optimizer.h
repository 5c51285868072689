// AdamW with two parameter groups: weight decay on tensors with >= 2 dimensions (matmul weights,
// embeddings), none on biases and LayerNorm gains (GPT-2 / nanoGPT practice).
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <memory>

#include "rlhf/config/config.h"

namespace rlhf {

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimConfig& cfg);

// Sets the learning rate of every parameter group.
void set_lr(torch::optim::Optimizer& optimizer, double lr);

}  // namespace rlhf
