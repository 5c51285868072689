#include "rlhf/rl/invariants.h"

#include <spdlog/fmt/fmt.h>

#include <cmath>

namespace rlhf::rl {

InvariantTolerances invariant_tolerances(bool reduced_precision) {
    // fp32: both are below 1e-6 in practice (the first ratio is exactly 1 in the demo). bf16
    // keeps ~3 significant digits: the tiny test model's mean sampling gap is 0.0002-0.0015 there, and
    // one token's ratio can move by a few percent when the batch shape changes.
    if (reduced_precision) return {0.02, 0.25};
    return {1e-4, 1e-4};
}

std::string invariant_violation(uint64_t iteration, const InvariantGaps& gaps, bool reduced_precision) {
    const InvariantTolerances tol = invariant_tolerances(reduced_precision);
    std::string out;
    if (!(gaps.sampling_logprob <= tol.sampling_logprob)) {
        out = fmt::format("iteration {}: the rollout's sampling log-probs differ from the training forward's by {:.3g} on average "
                          "(tolerance {:.3g}): the policy that sampled is not the one being trained",
                          iteration, gaps.sampling_logprob, tol.sampling_logprob);
    }
    if (std::isfinite(gaps.first_ratio) && !(gaps.first_ratio <= tol.first_ratio)) {
        out += fmt::format("{}iteration {}: the policy ratio on the first minibatch is 1 ± {:.3g} before any update "
                           "(tolerance {:.3g}): the old log-probs are not the current policy's",
                           out.empty() ? "" : "; ", iteration, gaps.first_ratio, tol.first_ratio);
    }
    return out;
}

}  // namespace rlhf::rl
