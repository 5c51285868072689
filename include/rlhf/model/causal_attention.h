// Fused causal self-attention for CPU training, straight from the c_attn output (the row loops
// live in attention_rows.h):
//   qkv (B, T, 3C) -> y (B, T, C),  y_h = softmax(q_h k_h^T / sqrt(hs) + causal mask) v_h per head h
//
// Why: LibTorch 1.13 runs fp32 bmm over (B * nh) small matrices as a serial loop of select + mm
// dispatches (~3,400 calls per step for the shakespeare_char model), which made attention 60% of
// an fp32 training step; and the split / transpose / contiguous / dtype copies around it cost as
// much again under bf16 autocast. This kernel (llm.c's attention layout) walks (batch, head) pairs
// in one parallel loop: it gathers each head's q, k, v rows into small fp32 buffers, calls BLAS
// sgemm, and writes y (and in backward dqkv) in place. Probabilities are kept for backward when
// they fit kProbCacheBytes, else recomputed from the row log-sum-exp (as FlashAttention does).
// Numbers are computed in fp32 whatever the input dtype (fp32 or bf16); outputs have qkv's dtype.
#pragma once

#include <torch/types.h>

namespace rlhf {

// True when this build has the kernel (it needs a CBLAS; see CMakeLists.txt).
bool fused_causal_attention_available();

// qkv: (B, T, 3C) on CPU, contiguous, [q | k | v] along the last dim -> (B, T, C).
// Differentiable in qkv.
torch::Tensor fused_causal_attention(const torch::Tensor& qkv, int64_t n_head);

}  // namespace rlhf
