// Seeded shuffling that is a pure function of (seed, position), so a checkpoint's one cursor
// (the next batch index) restores the data stream exactly, on every platform (our own PRNG, not
// std::shuffle, whose algorithm is unspecified).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "rlhf/core/splitmix64.h"

namespace rlhf {

// Fisher-Yates driven by splitmix64(seed).
template <typename T>
void seeded_shuffle(std::vector<T>& v, uint64_t seed) {
    uint64_t state = seed;
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[splitmix64(state) % i]);
}

// The seed of epoch `epoch` of a stream seeded `seed`.
inline uint64_t epoch_seed(uint64_t seed, uint64_t epoch) {
    uint64_t mix = seed ^ (0xA0761D6478BD642FULL * (epoch + 1));
    return splitmix64(mix);
}

// Which of `n` items are held out for validation: round(fraction * n) of them (at least 1 and
// at most n - 1 when fraction > 0 and n >= 2), drawn by `seed` — not the file's tail, since
// files are often sorted by source or difficulty.
std::vector<bool> held_out_items(size_t n, double fraction, uint64_t seed);

// Batches of item indices: each epoch visits all `num_items` once in a seeded order, cut into
// batches of `batch_size` (the epoch's last batch may be smaller).
class EpochSampler {
public:
    EpochSampler(int64_t num_items, int64_t batch_size);
    // The items of global batch `index` of the stream for `seed`.
    std::vector<int64_t> batch(uint64_t seed, uint64_t index);
    uint64_t epoch_of(uint64_t index) const { return index / batches_per_epoch_; }
    int64_t batches_per_epoch() const { return static_cast<int64_t>(batches_per_epoch_); }

private:
    int64_t num_items_, batch_size_;
    uint64_t batches_per_epoch_;
    uint64_t cached_seed_ = 0, cached_epoch_ = UINT64_MAX;
    std::vector<int64_t> order_;  // the cached epoch's order
};

}  // namespace rlhf
