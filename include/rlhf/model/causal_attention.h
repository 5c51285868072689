// Fused causal self-attention for CPU training:  y = softmax(q k^T / sqrt(hs) + causal mask) v
//
// Why: LibTorch 1.13 runs fp32 bmm over (B * nh) small matrices as a serial loop of select + mm
// dispatches (~3,400 calls per step for the shakespeare_char model), which made attention 60%
// of an fp32 training step. This kernel walks (batch, head) pairs in one parallel loop, calls
// BLAS sgemm directly on each head's (T, hs) slices, and — like FlashAttention — saves only the
// row log-sum-exp, recomputing the probabilities in backward instead of storing (B, nh, T, T).
// Numbers are computed in fp32 whatever the input dtype; the output has q's dtype.
#pragma once

#include <torch/types.h>

namespace rlhf {

// True when this build has the kernel (it needs a CBLAS; see CMakeLists.txt).
bool fused_causal_attention_available();

// q, k, v: (B, nh, T, hs) on CPU -> (B, nh, T, hs). Differentiable in q, k and v.
torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

}  // namespace rlhf
