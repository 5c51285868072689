// Per-row random streams for sampling: splitmix64 computed with torch's int64 ops must be the
// reference generator bit for bit, and the inverse-CDF draw must follow the distribution.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/model/sampling_streams.h"

using namespace rlhf;

TEST_CASE("splitmix64 is the published generator", "[model][sampling]") {
    // The first two outputs of SplitMix64 seeded with 0 (Steele, Lea & Flood 2014; Vigna's
    // splitmix64.c): the values every implementation is checked against.
    CHECK(splitmix64(0, 0) == 0xE220A8397B1DCDAFULL);
    CHECK(splitmix64(0, 1) == 0x6E789E6AA1B965F4ULL);
    CHECK(derive_seed(7, 0) != derive_seed(7, 1));
}

// Tensor streams equal splitmix64 bit for bit, as uniforms in (0, 1].
TEST_CASE("tensor streams equal splitmix64 bit for bit, as uniforms", "[model][sampling]") {
    // Seeds with the top bit set exercise the wrap-around of int64 arithmetic and the logical shift.
    const std::vector<uint64_t> seeds = {0, 1, 0x9E3779B97F4A7C15ULL, 0xFFFFFFFFFFFFFFFFULL, 0x8000000000000000ULL,
                                         1234567};
    std::vector<int64_t> bits(seeds.begin(), seeds.end());
    const auto seed_tensor = torch::tensor(bits, torch::kLong);
    for (uint64_t t : {0ULL, 1ULL, 2ULL, 1000ULL, 0xFFFFFFFFULL}) {
        auto u = stream_uniforms(seed_tensor, t);
        REQUIRE(u.scalar_type() == torch::kFloat64);
        for (size_t b = 0; b < seeds.size(); ++b) {
            INFO("seed " << seeds[b] << ", step " << t);
            const double expected = static_cast<double>((splitmix64(seeds[b], t) >> 11) + 1) * 0x1.0p-53;
            REQUIRE(u[static_cast<int64_t>(b)].item<double>() == expected);
            REQUIRE(expected > 0.0);
            REQUIRE(expected <= 1.0);
        }
    }
    // Each row at its own step (the rollout engine): the same numbers.
    const std::vector<int64_t> steps = {0, 5, 1000, 0xFFFFFFFFLL, 3, 77};
    const auto per_row = stream_uniforms(seed_tensor, torch::tensor(steps, torch::kLong));
    for (size_t b = 0; b < seeds.size(); ++b) {
        INFO("seed " << seeds[b] << ", step " << steps[b]);
        const double expected = static_cast<double>((splitmix64(seeds[b], static_cast<uint64_t>(steps[b])) >> 11) + 1) * 0x1.0p-53;
        REQUIRE(per_row[static_cast<int64_t>(b)].item<double>() == expected);
    }
}

// Inverse-CDF sampling follows the distribution and never draws a zero-probability id.
TEST_CASE("inverse-CDF sampling follows p and never draws a p = 0 id", "[model][sampling]") {
    const auto probs_row = torch::tensor({0.0, 0.1, 0.0, 0.6, 0.3, 0.0}, torch::kFloat32);
    const int64_t draws = 200000;
    auto probs = probs_row.unsqueeze(0).expand({draws, 6}).contiguous() * 3.0f;  // need not sum to 1
    std::vector<int64_t> seeds(static_cast<size_t>(draws));
    for (int64_t i = 0; i < draws; ++i) seeds[static_cast<size_t>(i)] = static_cast<int64_t>(derive_seed(99, static_cast<uint64_t>(i)));
    auto tokens = inverse_cdf_sample(probs, stream_uniforms(torch::tensor(seeds, torch::kLong), 0));
    auto counts = torch::bincount(tokens, {}, 6).to(torch::kFloat64) / static_cast<double>(draws);
    for (int64_t v = 0; v < 6; ++v) {
        const double p = probs_row[v].item<double>();
        INFO("id " << v << ": frequency " << counts[v].item<double>() << ", probability " << p);
        if (p == 0.0) {
            REQUIRE(counts[v].item<double>() == 0.0);
        } else {  // 5 standard errors
            REQUIRE(std::abs(counts[v].item<double>() - p) < 5 * std::sqrt(p * (1 - p) / static_cast<double>(draws)));
        }
    }
    // The ends of (0, 1]: the first and the last id with probability > 0.
    auto edge = inverse_cdf_sample(probs_row.unsqueeze(0).expand({2, 6}), torch::tensor({0x1.0p-53, 1.0}, torch::kFloat64));
    CHECK(edge[0].item<int64_t>() == 1);
    CHECK(edge[1].item<int64_t>() == 4);
}
