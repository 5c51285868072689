// PPO's run-time invariants (rl/invariants.h): gaps within tolerance pass, a gap beyond it is one
// line naming the iteration and its size; bf16 gets wider tolerances.
#include <catch2/catch.hpp>

#include <cmath>

#include "rlhf/rl/invariants.h"

using namespace rlhf::rl;
using Catch::Contains;

// PPO invariants: small gaps pass, a sampling or first-ratio gap names the iteration and its size.
TEST_CASE("PPO invariants: small gaps pass, a big one names itself", "[rl]") {
    CHECK(invariant_violation(7, {1e-6, 0.0}, false).empty());
    CHECK(invariant_violation(7, {1e-6, NAN}, false).empty());  // a first minibatch without tokens
    const std::string sampling = invariant_violation(7, {0.02, 0.0}, false);
    CHECK_THAT(sampling, Contains("iteration 7") && Contains("sampling log-probs") && Contains("0.02"));
    const std::string ratio = invariant_violation(12, {0.0, 0.3}, false);
    CHECK_THAT(ratio, Contains("iteration 12") && Contains("ratio") && Contains("0.3"));
    CHECK_THAT(invariant_violation(3, {NAN, 0.0}, false), Contains("sampling"));  // NaN is never within tolerance
    // bf16 rounds differently per batch shape: a gap fp32 rejects is fine there, a large one is not.
    CHECK_FALSE(invariant_violation(1, {0.01, 0.1}, false).empty());
    CHECK(invariant_violation(1, {0.01, 0.1}, true).empty());
    CHECK_FALSE(invariant_violation(1, {0.0, 0.5}, true).empty());
    CHECK_FALSE(invariant_violation(1, {0.1, 0.0}, true).empty());
    CHECK(invariant_tolerances(false).first_ratio <= 1e-4);
}
