// Statistics over the real tokens of a padded (B, T) batch: mask is 1 (true) on tokens that count.
// Whitening uses the BIASED variance, as OpenAI's lm-human-preferences (TF) did; torch.var's
// unbiased default gives different results ("N implementation details", detail 18).
#pragma once

#include <torch/types.h>

namespace rlhf::rl {

torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask);
torch::Tensor masked_var(const torch::Tensor& x, const torch::Tensor& mask);  // biased
// (x - mean) * rsqrt(var + 1e-8) on masked entries; shift_mean = false adds the mean back (used
// for rewards: scaled, not centred). Entries outside the mask are 0.
torch::Tensor masked_whiten(const torch::Tensor& x, const torch::Tensor& mask, bool shift_mean = true);

}  // namespace rlhf::rl
