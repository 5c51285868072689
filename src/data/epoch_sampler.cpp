#include "rlhf/data/epoch_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "rlhf/core/error.h"

namespace rlhf {

std::vector<bool> held_out_items(size_t n, double fraction, uint64_t seed) {
    std::vector<bool> held(n, false);
    if (fraction <= 0 || n < 2) return held;
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    seeded_shuffle(order, seed);
    const auto n_val = std::clamp<size_t>(static_cast<size_t>(std::llround(fraction * static_cast<double>(n))), 1, n - 1);
    for (size_t i = 0; i < n_val; ++i) held[order[i]] = true;
    return held;
}

EpochSampler::EpochSampler(int64_t num_items, int64_t batch_size)
    : num_items_(num_items), batch_size_(batch_size),
      batches_per_epoch_(static_cast<uint64_t>((num_items + batch_size - 1) / std::max<int64_t>(batch_size, 1))) {
    RLHF_CHECK(num_items > 0 && batch_size > 0, "data", "nothing to sample from", "");
}

std::vector<int64_t> EpochSampler::batch(uint64_t seed, uint64_t index) {
    const uint64_t epoch = epoch_of(index);
    if (epoch != cached_epoch_ || seed != cached_seed_) {
        order_.resize(static_cast<size_t>(num_items_));
        std::iota(order_.begin(), order_.end(), int64_t{0});
        seeded_shuffle(order_, epoch_seed(seed, epoch));
        cached_epoch_ = epoch;
        cached_seed_ = seed;
    }
    const auto first = static_cast<size_t>((index % batches_per_epoch_) * static_cast<uint64_t>(batch_size_));
    const auto last = std::min(order_.size(), first + static_cast<size_t>(batch_size_));
    return {order_.begin() + static_cast<long>(first), order_.begin() + static_cast<long>(last)};
}

}  // namespace rlhf
