// Random numbers for sampling, one stream per sequence: row b's t-th sampled token uses the t-th
// output of the splitmix64 stream seeded with seeds[b] (Steele et al. 2014; the generator Java's
// SplittableRandom uses). The number depends on (seed, t) only, so a sequence samples the same
// tokens whatever else shares its batch: PPO's rollout chunks and data-parallel ranks split the
// prompts differently, and every row still gets what one process with one batch gives it.
//
// The stream is computed on the tensors' device with integer ops (no host round trip per token),
// and a token is drawn from its row's distribution by inverse CDF: the first id whose cumulative
// probability reaches u · total.
#pragma once

#include <torch/types.h>

#include <cstdint>

#include "rlhf/core/splitmix64.h"  // splitmix64(seed, t): the stream these tensors compute on the device

namespace rlhf {

// A seed for item `index` of a stream `seed` (rollout row i of iteration k, …): independent
// streams for neighbouring indices.
inline uint64_t derive_seed(uint64_t seed, uint64_t index) { return splitmix64(seed, index); }

// (B,) int64 seeds (uint64 bit patterns) -> (B,) float64 uniforms in (0, 1] for step t, on the seeds' device.
torch::Tensor stream_uniforms(const torch::Tensor& seeds, uint64_t t);
// The same with each row at its own step: steps (B,) int64 (the rollout engine's rows start at
// different times).
torch::Tensor stream_uniforms(const torch::Tensor& seeds, const torch::Tensor& steps);

// probs (B, V) >= 0 (need not sum to 1), u (B,) in (0, 1] -> (B,) int64: the first id whose
// cumulative probability reaches u · total. An id with probability 0 is never drawn (a row with
// no positive probability at all gives an arbitrary id: generate() checks for that).
torch::Tensor inverse_cdf_sample(const torch::Tensor& probs, const torch::Tensor& u);

}  // namespace rlhf
