// Learning rate as a pure function of the step (so there is no scheduler state to checkpoint):
// linear warmup lr * (step + 1) / (warmup + 1) for step < warmup, then cosine from lr at
// step = warmup down to min_lr at lr_decay_steps, then flat at min_lr — nanoGPT's get_lr exactly.
#pragma once

#include <cmath>
#include <cstdint>

#include "rlhf/config/config.h"

namespace rlhf {

// `step` is 0-based: the step about to be taken. decay_end = optim.lr_decay_steps, or max_steps if 0.
inline double lr_at(int64_t step, const OptimConfig& o, int64_t max_steps) {
    const int64_t warmup = o.lr_warmup_steps;
    const int64_t decay_end = o.lr_decay_steps > 0 ? o.lr_decay_steps : max_steps;
    if (step < warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(warmup + 1);
    if (step >= decay_end) return o.min_lr;
    const double ratio = static_cast<double>(step - warmup) / static_cast<double>(decay_end - warmup);
    const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));  // 1 -> 0
    return o.min_lr + coeff * (o.lr - o.min_lr);
}

}  // namespace rlhf
