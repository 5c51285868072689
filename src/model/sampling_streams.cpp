#include "rlhf/model/sampling_streams.h"

#include <torch/torch.h>

namespace rlhf {

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;  // splitmix64's increment
constexpr uint64_t kMul1 = 0xBF58476D1CE4E5B9ULL, kMul2 = 0x94D049BB133111EBULL;

int64_t as_signed(uint64_t x) { return static_cast<int64_t>(x); }  // the same 64 bits

// x >> k on the uint64 bit pattern held in an int64 tensor (torch's >> on int64 is arithmetic).
torch::Tensor shift_right_logical(const torch::Tensor& x, int k) {
    return torch::bitwise_and(torch::bitwise_right_shift(x, k), as_signed((uint64_t{1} << (64 - k)) - 1));
}

}  // namespace

uint64_t splitmix64(uint64_t seed, uint64_t t) {
    uint64_t z = seed + (t + 1) * kGolden;
    z = (z ^ (z >> 30)) * kMul1;
    z = (z ^ (z >> 27)) * kMul2;
    return z ^ (z >> 31);
}

torch::Tensor stream_uniforms(const torch::Tensor& seeds, uint64_t t) {
    // int64 multiplication and addition wrap on every backend, which is uint64 arithmetic on the
    // same bits; tests/model/test_sampling_streams.cpp checks this against splitmix64() above.
    auto z = seeds + as_signed((t + 1) * kGolden);
    z = torch::bitwise_xor(z, shift_right_logical(z, 30)) * as_signed(kMul1);
    z = torch::bitwise_xor(z, shift_right_logical(z, 27)) * as_signed(kMul2);
    z = torch::bitwise_xor(z, shift_right_logical(z, 31));
    // The top 53 bits, + 1: a double in (0, 1], exactly.
    return (shift_right_logical(z, 11) + 1).to(torch::kFloat64) * 0x1.0p-53;
}

torch::Tensor inverse_cdf_sample(const torch::Tensor& probs, const torch::Tensor& u) {
    auto cdf = probs.to(torch::kFloat64).cumsum(-1);                    // (B, V)
    auto threshold = u.to(torch::kFloat64).unsqueeze(1) * cdf.narrow(1, cdf.size(1) - 1, 1);  // (B, 1)
    // The number of ids whose cumulative probability is still below the threshold is the index of
    // the first that reaches it; u ≤ 1 keeps it inside the vocabulary, u > 0 off zero-probability ids.
    return cdf.lt(threshold).sum(-1).clamp_max(probs.size(1) - 1);
}

}  // namespace rlhf
