// Eval mode (dropout off) for one scope: an evaluation in the middle of training leaves the model
// in the mode it found it in, even when it throws.
//
//   { EvalModeGuard eval_mode(model); ... forwards ... }   // back to train() if it was training
#pragma once

#include <torch/torch.h>

namespace rlhf {

class EvalModeGuard {
public:
    explicit EvalModeGuard(torch::nn::Module& module) : module_(module), was_training_(module.is_training()) {
        module_.eval();
    }
    ~EvalModeGuard() { module_.train(was_training_); }
    EvalModeGuard(const EvalModeGuard&) = delete;
    EvalModeGuard& operator=(const EvalModeGuard&) = delete;

private:
    torch::nn::Module& module_;
    bool was_training_;
};

}  // namespace rlhf
