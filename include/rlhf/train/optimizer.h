// AdamW (Loshchilov & Hutter 2019), as torch.optim.AdamW computes it, with weight decay on
// tensors of >= 2 dimensions only (matmul weights, embeddings; not biases or LayerNorm gains).
//
// On CPU each parameter is updated in ONE fused pass: read p, g, m, v once, write p, m, v and
// zero g, with global-norm clipping folded in as a scale on g. LibTorch's AdamW makes ~8 passes
// over each tensor plus 2 for clipping and 1 for zero_grad; the optimizer is memory-bound, so
// the passes are the cost (docs/benchmarks.md). On a GPU (LibTorch >= 2.4) the update is PyTorch's
// own fused AdamW kernel (`torch.optim.AdamW(fused=True)`), with the gradient norm, the clipping
// scale and the skip of a non-finite step all computed on the device: a step never waits for the
// GPU. Other cases (LibTorch 1.13 off the CPU, other dtypes) use the same arithmetic as tensor ops.
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

    // Which code updates a parameter: chosen per tensor (cpu_loop for contiguous fp32 CPU
    // tensors, torch_fused elsewhere where LibTorch has it, tensor_ops otherwise); tests force one.
    enum class Kernel { automatic, cpu_loop, torch_fused, tensor_ops };
    void use_kernel(Kernel kernel) { kernel_ = kernel; }
    static bool has_torch_fused();  // LibTorch >= 2.4

    // Clips the global gradient norm to max_grad_norm (0 = no clipping), applies one update at
    // `lr`, and zeroes the gradients. A step whose gradient norm is not finite changes no weight
    // or moment. Returns the gradient norm before clipping as a 0-dim fp32 tensor on the
    // parameters' device: reading it is the caller's host sync, so a training step can read its
    // loss and this norm together, once.
    torch::Tensor update(double lr, double max_grad_norm);
    // update(), read back at once (a host sync on a GPU).
    double step(double lr, double max_grad_norm);

    // Zeroes every gradient in place (views into the gradients stay valid).
    void zero_grad();

    // Global L2 norm of the current gradients.
    double grad_norm() const;
    // The same as a 0-dim fp32 tensor on the parameters' device, computed there (no host sync).
    torch::Tensor grad_norm_tensor() const;

    int64_t steps_taken() const { return step_; }
    const std::vector<Param>& params() const { return params_; }
    // The tensors it updates, in registration order (what a distributed run all-reduces).
    std::vector<torch::Tensor> trained_parameters() const {
        std::vector<torch::Tensor> out;
        for (const auto& p : params_) out.push_back(p.tensor);
        return out;
    }

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
    Kernel kernel_ = Kernel::automatic;
    torch::Tensor step_count_;  // step_ as a 0-dim fp32 tensor on the device (the fused kernel reads it)

    Kernel kernel_for(const torch::Tensor& p, const torch::Tensor& g) const;
    bool all_grads_cpu_fp32() const;
};

}  // namespace rlhf
