#include "rlhf/model/sampling_streams.h"

#include <torch/torch.h>

namespace rlhf {

namespace {

constexpr uint64_t kGolden = kSplitMixIncrement;
constexpr uint64_t kMul1 = 0xBF58476D1CE4E5B9ULL, kMul2 = 0x94D049BB133111EBULL;

int64_t as_signed(uint64_t x) { return static_cast<int64_t>(x); }  // the same 64 bits

// x >> k on the uint64 bit pattern held in an int64 tensor (torch's >> on int64 is arithmetic).
torch::Tensor shift_right_logical(const torch::Tensor& x, int k) {
    return torch::bitwise_and(torch::bitwise_right_shift(x, k), as_signed((uint64_t{1} << (64 - k)) - 1));
}

// The stream's output for z = seed + (t + 1) · golden, the uint64 sum held in int64 bits.
torch::Tensor finish_uniforms(torch::Tensor z) {
    z = torch::bitwise_xor(z, shift_right_logical(z, 30)) * as_signed(kMul1);
    z = torch::bitwise_xor(z, shift_right_logical(z, 27)) * as_signed(kMul2);
    z = torch::bitwise_xor(z, shift_right_logical(z, 31));
    // The top 53 bits, + 1: a double in (0, 1], exactly.
    return (shift_right_logical(z, 11) + 1).to(torch::kFloat64) * 0x1.0p-53;
}

}  // namespace

torch::Tensor stream_uniforms(const torch::Tensor& seeds, uint64_t t) {
    // int64 multiplication and addition wrap on every backend, which is uint64 arithmetic on the
    // same bits; tests/model/test_sampling_streams.cpp checks this against splitmix64() above.
    return finish_uniforms(seeds + as_signed((t + 1) * kGolden));
}

torch::Tensor stream_uniforms(const torch::Tensor& seeds, const torch::Tensor& steps) {
    return finish_uniforms(seeds + (steps + 1) * as_signed(kGolden));  // the same wrap-around product
}

torch::Tensor inverse_cdf_sample(const torch::Tensor& probs, const torch::Tensor& u) {
    auto cdf = probs.to(torch::kFloat64).cumsum(-1);                    // (B, V)
    auto threshold = u.to(torch::kFloat64).unsqueeze(1) * cdf.narrow(1, cdf.size(1) - 1, 1);  // (B, 1)
    // The first id with probability > 0 whose cumulative probability reaches the threshold.
    // "probability > 0" is explicit because a parallel scan (CUDA's) need not keep the sum flat
    // across zero-probability ids to the last bit; argmax returns the first maximal index.
    const auto positive = probs.gt(0);
    const auto reaches = cdf.ge(threshold).logical_and(positive);
    auto token = reaches.to(torch::kUInt8).argmax(-1);
    // Rounding could leave no id reaching u = 1 · total: then the last id with probability > 0.
    auto last_positive = (positive.to(torch::kLong) * torch::arange(probs.size(1), token.options())).argmax(-1);
    return torch::where(reaches.any(-1), token, last_positive);
}

}  // namespace rlhf
