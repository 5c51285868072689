#include "rlhf/train/optimizer.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <map>

#include "rlhf/core/error.h"

namespace rlhf {

namespace {

constexpr int64_t kGrain = 16384;  // elements per parallel chunk: small tensors stay on one thread

bool fused_ok(const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous();
}

// The inner loops are compiled for AVX-512, AVX2 and baseline x86-64; the loader picks the best
// the CPU has (GCC function multiversioning), so the binary still runs everywhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RLHF_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RLHF_MULTIVERSION
#endif

// Sixteen independent accumulators: a single running sum cannot be vectorised without
// reassociating floating-point adds, which we do not allow the compiler to do globally.
RLHF_MULTIVERSION double sum_squares_span(const float* __restrict x, int64_t n) {
    constexpr int kLanes = 16;
    double lanes[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (int k = 0; k < kLanes; ++k) lanes[k] += static_cast<double>(x[i + k]) * x[i + k];
    }
    double acc = 0.0;
    for (; i < n; ++i) acc += static_cast<double>(x[i]) * x[i];
    for (double lane : lanes) acc += lane;
    return acc;
}

// Sum of squares of a CPU fp32 tensor, accumulated in double.
double sum_squares(const torch::Tensor& g) {
    const float* x = g.data_ptr<float>();
    return at::parallel_reduce(
        int64_t{0}, g.numel(), kGrain, 0.0,
        [&](int64_t begin, int64_t end, double acc) { return acc + sum_squares_span(x + begin, end - begin); },
        std::plus<double>());
}

struct AdamWScalars {
    float scale, b1, b2, one_minus_b1, one_minus_b2, sqrt_bias2, eps, decay, step_size;
};

// One pass of AdamW over n elements, in torch.optim.AdamW's order of operations; zeroes g.
RLHF_MULTIVERSION void adamw_span(float* __restrict p, float* __restrict g, float* __restrict m,
                                  float* __restrict v, int64_t n, AdamWScalars s) {
    for (int64_t j = 0; j < n; ++j) {
        const float gj = g[j] * s.scale;
        m[j] = m[j] * s.b1 + gj * s.one_minus_b1;
        v[j] = v[j] * s.b2 + gj * gj * s.one_minus_b2;
        const float denom = std::sqrt(v[j]) / s.sqrt_bias2 + s.eps;
        p[j] = p[j] * s.decay - s.step_size * (m[j] / denom);
        g[j] = 0.0f;
    }
}

}  // namespace

AdamW::AdamW(torch::nn::Module& model, const OptimConfig& cfg) : cfg_(cfg) {
    for (const auto& item : model.named_parameters()) {
        const auto& p = item.value();
        if (!p.requires_grad()) continue;
        params_.push_back({item.key(), p, p.dim() >= 2});
        exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
        exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    }
}

bool AdamW::has_torch_fused() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    return true;  // _fused_adamw_ has CUDA kernels since 2.0 and CPU ones since 2.4
#else
    return false;
#endif
}

AdamW::Kernel AdamW::kernel_for(const torch::Tensor& p, const torch::Tensor& g) const {
    const bool cpu_fp32 = fused_ok(p) && fused_ok(g);
    const bool torch_fused = has_torch_fused() && p.scalar_type() == g.scalar_type() && p.device() == g.device() &&
                             (p.is_cuda() || p.is_cpu()) && torch::isFloatingType(p.scalar_type());
    switch (kernel_) {
        case Kernel::cpu_loop: return cpu_fp32 ? Kernel::cpu_loop : Kernel::tensor_ops;
        case Kernel::torch_fused: return torch_fused ? Kernel::torch_fused : Kernel::tensor_ops;
        case Kernel::tensor_ops: return Kernel::tensor_ops;
        case Kernel::automatic: break;
    }
    if (cpu_fp32) return Kernel::cpu_loop;
    return torch_fused ? Kernel::torch_fused : Kernel::tensor_ops;
}

bool AdamW::all_grads_cpu_fp32() const {
    for (const auto& p : params_) {
        const auto& g = p.tensor.grad();
        if (g.defined() && !fused_ok(g)) return false;
    }
    return true;
}

double AdamW::grad_norm() const {
    if (!all_grads_cpu_fp32()) return grad_norm_tensor().item<double>();
    double total = 0.0;  // accumulated in double on the CPU: exact enough to compare with PyTorch
    for (const auto& p : params_) {
        const auto& g = p.tensor.grad();
        if (g.defined()) total += sum_squares(g);
    }
    return std::sqrt(total);
}

torch::Tensor AdamW::grad_norm_tensor() const {
    std::vector<torch::Tensor> grads;
    for (const auto& p : params_) {
        if (p.tensor.grad().defined()) grads.push_back(p.tensor.grad());
    }
    const auto device = params_.empty() ? torch::Device(torch::kCPU) : params_.front().tensor.device();
    if (grads.empty()) return torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    if (all_grads_cpu_fp32()) return torch::tensor(static_cast<float>(grad_norm()));
    // One multi-tensor kernel for the per-tensor norms (torch.nn.utils.clip_grad_norm_'s way).
    auto norms = at::_foreach_norm(grads, 2);
    for (auto& n : norms) n = n.to(torch::kFloat32);
    return torch::stack(norms).norm();
}

void AdamW::zero_grad() {
    for (auto& p : params_) {
        if (p.tensor.grad().defined()) p.tensor.mutable_grad().zero_();
    }
}

double AdamW::step(double lr, double max_grad_norm) { return update(lr, max_grad_norm).item<double>(); }

torch::Tensor AdamW::update(double lr, double max_grad_norm) {
    torch::NoGradGuard no_grad;
    ++step_;
    const double b1 = cfg_.beta1, b2 = cfg_.beta2;
    const double bias1 = 1.0 - std::pow(b1, static_cast<double>(step_));
    const double bias2 = 1.0 - std::pow(b2, static_cast<double>(step_));
    const float step_size = static_cast<float>(lr / bias1);
    const float sqrt_bias2 = static_cast<float>(std::sqrt(bias2));
    // PyTorch adds eps to sqrt(v_hat) = sqrt(v)/sqrt(bias2); TF1's Adam adds it to sqrt(v), which in
    // this form is eps/sqrt(bias2): much larger early on, so the first updates are gentler (the
    // "N implementation details" blog measured 6x lower approx-KL in PPO with it).
    const double eps = cfg_.eps_style == EpsStyle::Tf ? cfg_.eps / std::sqrt(bias2) : cfg_.eps;
    auto decay_of = [&](const Param& p) { return p.decay ? 1.0 - lr * cfg_.weight_decay : 1.0; };

    // Tensor ops with the clipping scale as a tensor (it may live on a GPU).
    auto tensor_ops = [&](size_t i, const torch::Tensor& clip) {
        auto& p = params_[i].tensor;
        auto g = p.mutable_grad();
        auto& m = exp_avg_[i];
        auto& v = exp_avg_sq_[i];
        g.mul_(clip);
        if (params_[i].decay) p.mul_(decay_of(params_[i]));
        m.mul_(b1).add_(g, 1.0 - b1);
        v.mul_(b2).addcmul_(g, g, 1.0 - b2);
        p.addcdiv_(m, v.sqrt().div_(sqrt_bias2).add_(eps), -step_size);
        g.zero_();
    };

    if (all_grads_cpu_fp32() && (kernel_ == Kernel::automatic || kernel_ == Kernel::cpu_loop)) {
        // The CPU: the norm is a double right away, so clipping and the skip are host decisions.
        const double norm = grad_norm();
        if (!std::isfinite(norm)) {
            zero_grad();  // skip the step: weights and moments stay as they were
        } else {
            // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
            const double clip = max_grad_norm > 0 ? max_grad_norm / (norm + 1e-6) : 1.0;
            const float scale = clip < 1.0 ? static_cast<float>(clip) : 1.0f;
            const float b1f = static_cast<float>(b1), b2f = static_cast<float>(b2);
            const float one_minus_b1 = static_cast<float>(1.0 - b1), one_minus_b2 = static_cast<float>(1.0 - b2);
            for (size_t i = 0; i < params_.size(); ++i) {
                auto& p = params_[i].tensor;
                auto g = p.mutable_grad();
                if (!g.defined()) continue;
                if (kernel_for(p, g) != Kernel::cpu_loop) {
                    tensor_ops(i, torch::tensor(scale));
                    continue;
                }
                float *pp = p.data_ptr<float>(), *gp = g.data_ptr<float>();
                float *mp = exp_avg_[i].data_ptr<float>(), *vp = exp_avg_sq_[i].data_ptr<float>();
                const AdamWScalars sc{scale, b1f, b2f, one_minus_b1, one_minus_b2, sqrt_bias2, static_cast<float>(eps),
                                      static_cast<float>(decay_of(params_[i])), step_size};
                at::parallel_for(0, p.numel(), kGrain, [&](int64_t begin, int64_t end) {
                    adamw_span(pp + begin, gp + begin, mp + begin, vp + begin, end - begin, sc);
                });
            }
        }
        return torch::tensor(static_cast<float>(norm));  // every gradient is zeroed by now
    }

    // A device: norm, clipping scale and the non-finite skip stay tensors on it.
    const torch::Tensor norm = grad_norm_tensor();
    const torch::Tensor finite = torch::isfinite(norm);
    const torch::Tensor clip = max_grad_norm > 0 ? (max_grad_norm / (norm + 1e-6)).clamp_max(1.0) : torch::ones_like(norm);
    std::vector<torch::Tensor> fused[2][4];  // [decay][p, g, m, v]
    bool slow_path_checked = false, slow_path_finite = true;
    for (size_t i = 0; i < params_.size(); ++i) {
        auto& p = params_[i].tensor;
        const auto& g = p.grad();
        if (!g.defined()) continue;
        if (kernel_for(p, g) == Kernel::torch_fused) {
            auto& group = fused[params_[i].decay ? 1 : 0];
            group[0].push_back(p);
            group[1].push_back(g);
            group[2].push_back(exp_avg_[i]);
            group[3].push_back(exp_avg_sq_[i]);
            continue;
        }
        if (!slow_path_checked) {  // the tensor-ops path decides the skip on the host: one sync
            slow_path_finite = finite.item<bool>();
            slow_path_checked = true;
        }
        if (slow_path_finite) tensor_ops(i, clip);
    }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    if (!fused[0][0].empty() || !fused[1][0].empty()) {
        const auto device = norm.device();
        if (!step_count_.defined() || step_count_.device() != device) {
            step_count_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
        }
        step_count_.fill_(static_cast<double>(step_));  // the kernel's bias corrections read it
        // The kernel divides each gradient by grad_scale (1 / clip) and skips everything when
        // found_inf is non-zero: torch.amp.GradScaler's contract, used here for clipping and the skip.
        const torch::Tensor grad_scale = clip.reciprocal();
        const torch::Tensor found_inf = finite.logical_not().to(torch::kFloat32);
        for (int decay = 0; decay < 2; ++decay) {
            auto& group = fused[decay];
            if (group[0].empty()) continue;
            const std::vector<torch::Tensor> steps(group[0].size(), step_count_);
            at::_fused_adamw_(group[0], group[1], group[2], group[3], {}, steps, lr, b1, b2,
                              decay ? cfg_.weight_decay : 0.0, eps, /*amsgrad=*/false, /*maximize=*/false, grad_scale,
                              found_inf);
        }
    }
#endif
    zero_grad();
    return norm;
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state_tensors() const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (size_t i = 0; i < params_.size(); ++i) {
        out.emplace_back("exp_avg." + params_[i].name, exp_avg_[i]);
        out.emplace_back("exp_avg_sq." + params_[i].name, exp_avg_sq_[i]);
    }
    return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t step,
                       const std::string& where) {
    std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
    torch::NoGradGuard no_grad;
    auto restore = [&](const std::string& name, torch::Tensor& dst) {
        auto it = by_name.find(name);
        if (it == by_name.end()) {
            throw Error("optimizer state '" + name + "' is missing", where, "the checkpoint is from a different model");
        }
        if (it->second.sizes() != dst.sizes()) {
            throw Error("optimizer state '" + name + "' has shape " + c10::str(it->second.sizes()) + ", the model needs " +
                            c10::str(dst.sizes()),
                        where, "the checkpoint is from a different model shape");
        }
        dst.copy_(it->second);
    };
    for (size_t i = 0; i < params_.size(); ++i) {
        restore("exp_avg." + params_[i].name, exp_avg_[i]);
        restore("exp_avg_sq." + params_[i].name, exp_avg_sq_[i]);
    }
    if (by_name.size() != 2 * params_.size()) {
        throw Error("optimizer state holds " + std::to_string(by_name.size()) + " tensors, the model needs " +
                        std::to_string(2 * params_.size()),
                    where, "the checkpoint is from a different model");
    }
    step_ = step;
}

}  // namespace rlhf
