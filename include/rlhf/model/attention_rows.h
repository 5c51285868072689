// The per-row loops of the fused CPU attention (model/causal_attention.cpp), kept in a file of
// their own so that it alone is compiled with -ffast-math (which lets GCC vectorise expf through
// glibc's libmvec, ~5x faster here). That file includes no LibTorch headers: -ffast-math in a
// file that instantiates LibTorch's inline functions (NaN checks in float->bf16 rounding, say)
// could hand the linker fast-math copies of them for the whole program.
//
// Row i of a (T, T) score matrix is causal: entries j <= i count, j > i are set to 0.
#pragma once

namespace rlhf::attention_rows {

// row[0..i] <- softmax(row[0..i]); row[i+1..T) <- 0. Returns the log-sum-exp of row[0..i].
float causal_softmax(float* row, int i, int T);

// row[0..i] <- exp(row[0..i] - lse); row[i+1..T) <- 0 (probabilities recomputed from scores).
void causal_exp(float* row, int i, int T, float lse);

// Softmax backward with the score scale folded in, in place on dp:
// dp[j] <- p[j] * (dp[j] - sum_k p[k] dp[k]) * scale for j <= i; dp[i+1..T) <- 0.
void causal_softmax_backward(const float* p, float* dp, int i, int T, float scale);

}  // namespace rlhf::attention_rows
