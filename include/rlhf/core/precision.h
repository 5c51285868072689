// Mixed precision: `runtime.dtype: bfloat16` runs matmuls in bf16 under LibTorch's autocast while
// weights, gradients and optimizer state stay fp32 (no loss scaling is needed for bf16).
// LibTorch has no public RAII autocast guard (PyTorch #46649), hence this one.
#pragma once

#include <torch/types.h>
#include <c10/core/DispatchKeySet.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <string>

namespace rlhf {

class AutocastGuard {
public:
    // enabled=false makes the guard a no-op, so call sites need no branch.
    AutocastGuard(bool enabled, torch::DeviceType device);
    ~AutocastGuard();
    AutocastGuard(const AutocastGuard&) = delete;
    AutocastGuard& operator=(const AutocastGuard&) = delete;

private:
    bool enabled_;
    torch::DeviceType device_;
    bool prev_enabled_ = false;
    torch::ScalarType prev_dtype_ = torch::kFloat;
};

// Inside an autocast region, runs ops in the precision of their inputs again (a small head whose
// outputs need fp32's digits): autocast's dispatch keys are skipped while it lives.
class NoAutocastGuard {
public:
    NoAutocastGuard() : guard_(c10::autocast_dispatch_keyset) {}

private:
    c10::impl::ExcludeDispatchKeyGuard guard_;
};

// True inside an enabled AutocastGuard (or any autocast region) for `device`.
bool autocast_active(torch::DeviceType device);

// "float32" -> false, "bfloat16" -> true.
inline bool wants_bf16(const std::string& dtype) { return dtype == "bfloat16"; }

}  // namespace rlhf
