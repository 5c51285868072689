// SplitMix64 (Steele et al. 2014), the one generator behind every seeded choice outside LibTorch:
// data order, held-out splits, each rollout row's sampling stream. Tiny, counter-based, and the
// same bits on every machine.
#pragma once

#include <cstdint>

namespace rlhf {

inline constexpr uint64_t kSplitMixIncrement = 0x9E3779B97F4A7C15ULL;  // the golden ratio in 64 bits

// The output function: 64 well-mixed bits of `z`.
inline uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Advances `state` and returns the next 64 random bits.
inline uint64_t splitmix64(uint64_t& state) { return splitmix64_mix(state += kSplitMixIncrement); }

// Output t (0, 1, …) of the stream seeded `seed`, without walking it: the same bits as the
// (t + 1)-th call of splitmix64(state = seed).
inline uint64_t splitmix64(uint64_t seed, uint64_t t) { return splitmix64_mix(seed + (t + 1) * kSplitMixIncrement); }

}  // namespace rlhf
