// What must hold in every PPO iteration, checked while the run goes rather than only in tests
// (ppo.check_invariants):
//   1. the rollout's sampling log-probs (generate(), KV cache, one token at a time) equal the
//      training-style forward's on the same tokens — else the ratio is taken against a policy
//      that did not sample the data (a masking, temperature or padding bug);
//   2. the policy ratio is 1 on the first minibatch of every iteration, before any update — else
//      the "old" log-probs are not the current policy's (stale weights, a mode switch).
// bf16 matmuls (and CUDA's fp32 ones, which run as TF32) round differently for different batch
// shapes, so reduced precision gets wider tolerances. The
// sampling gap is a mean over tokens: a bug moves every token, bf16 rounding moves a few far.
#pragma once

#include <cstdint>
#include <string>

namespace rlhf::rl {

struct InvariantGaps {
    double sampling_logprob = 0;  // mean |generate()'s log-prob - the training forward's| over response tokens
    double first_ratio = 0;       // max |ratio - 1| on the first minibatch (NaN: no tokens there)
};

struct InvariantTolerances {
    double sampling_logprob, first_ratio;
};
InvariantTolerances invariant_tolerances(bool reduced_precision);

// "" when both gaps are within tolerance; else one line naming the iteration, the invariant and the gap.
std::string invariant_violation(uint64_t iteration, const InvariantGaps& gaps, bool reduced_precision);

}  // namespace rlhf::rl
