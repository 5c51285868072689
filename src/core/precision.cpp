#include "rlhf/core/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace rlhf {

// LibTorch 2.4 replaced the per-device setters with ones taking a device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define RLHF_AUTOCAST_BY_DEVICE_TYPE 1
#endif

bool autocast_active(torch::DeviceType device) {
#ifdef RLHF_AUTOCAST_BY_DEVICE_TYPE
    return at::autocast::is_autocast_enabled(device);
#else
    return device == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

AutocastGuard::AutocastGuard(bool enabled, torch::DeviceType device) : enabled_(enabled), device_(device) {
    if (!enabled_) return;
#ifdef RLHF_AUTOCAST_BY_DEVICE_TYPE
    prev_enabled_ = at::autocast::is_autocast_enabled(device_);
    prev_dtype_ = at::autocast::get_autocast_dtype(device_);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, torch::kBFloat16);
#else
    if (device_ == torch::kCUDA) {
        prev_enabled_ = at::autocast::is_enabled();
        prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
        at::autocast::set_enabled(true);
        at::autocast::set_autocast_gpu_dtype(torch::kBFloat16);
    } else {
        prev_enabled_ = at::autocast::is_cpu_enabled();
        prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
        at::autocast::set_cpu_enabled(true);
        at::autocast::set_autocast_cpu_dtype(torch::kBFloat16);
    }
#endif
    at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
    if (!enabled_) return;
    // Leaving the outermost region drops the cached bf16 copies of the weights: they are stale
    // after the next optimizer step.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#ifdef RLHF_AUTOCAST_BY_DEVICE_TYPE
    at::autocast::set_autocast_enabled(device_, prev_enabled_);
    at::autocast::set_autocast_dtype(device_, prev_dtype_);
#else
    if (device_ == torch::kCUDA) {
        at::autocast::set_enabled(prev_enabled_);
        at::autocast::set_autocast_gpu_dtype(prev_dtype_);
    } else {
        at::autocast::set_cpu_enabled(prev_enabled_);
        at::autocast::set_autocast_cpu_dtype(prev_dtype_);
    }
#endif
}

}  // namespace rlhf
