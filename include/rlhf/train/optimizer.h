// AdamW (Loshchilov & Hutter 2019), as torch.optim.AdamW computes it, with weight decay on
// tensors of >= 2 dimensions only (matmul weights, embeddings; not biases or LayerNorm gains).
//
// On CPU each parameter is updated in ONE fused pass: read p, g, m, v once, write p, m, v and
// zero g, with global-norm clipping folded in as a scale on g. LibTorch's AdamW makes ~8 passes
// over each tensor plus 2 for clipping and 1 for zero_grad; the optimizer is memory-bound, so
// the passes are the cost (docs/benchmarks.md). Other devices use the equivalent tensor ops.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

#include "rlhf/config/config.h"

namespace rlhf {

class AdamW {
public:
    struct Param {
        std::string name;
        torch::Tensor tensor;
        bool decay;  // weight decay applies
    };

    // Every trainable parameter of `model`, under its registered name.
    AdamW(torch::nn::Module& model, const OptimConfig& cfg);

    // Clips the global gradient norm to max_grad_norm (0 = no clipping), applies one update at
    // `lr`, and zeroes the gradients. Returns the gradient norm before clipping.
    double step(double lr, double max_grad_norm);

    // Zeroes every gradient in place (views into the gradients stay valid).
    void zero_grad();

    // Global L2 norm of the current gradients.
    double grad_norm() const;

    int64_t steps_taken() const { return step_; }
    const std::vector<Param>& params() const { return params_; }

    // State for checkpoints: "exp_avg.<name>", "exp_avg_sq.<name>" and metadata {"step": N}.
    std::vector<std::pair<std::string, torch::Tensor>> state_tensors() const;
    std::string state_step() const { return std::to_string(step_); }
    // Restores it; a missing or differently-shaped tensor is an rlhf::Error naming it and `where`.
    void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t step,
                    const std::string& where);

private:
    OptimConfig cfg_;
    std::vector<Param> params_;
    std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
    int64_t step_ = 0;
};

}  // namespace rlhf
