// Batches of rendered SFT examples, drawn as a pure function of (seed, batch index) so the
// checkpoint's one cursor restores the stream exactly (as for token shards).
//
// Each epoch visits every example once, in a seeded order:
//   padded  chunks of 32 batches are sorted by length and cut into batches (little padding),
//           then the batches are shuffled; right padding, so positions are the usual 0..L-1.
//   packed  examples are laid end to end into windows of block_size tokens (an example that
//           does not fit starts the next window); each token attends only within its own
//           example (segment ids -> block-diagonal causal mask) and positions restart at 0.
// Inputs are ids[:-1], targets ids[1:] where the loss mask of the target is 1, else ignored.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace rlhf {

struct SftExample {
    std::vector<int32_t> ids;        // at most block_size + 1
    std::vector<uint8_t> loss_mask;  // same length
};

struct SftBatch {
    torch::Tensor inputs;        // (B, T) int64
    torch::Tensor targets;       // (B, T) int64, ignore_index where no loss
    torch::Tensor position_ids;  // (B, T) int64 when packed; undefined when padded
    torch::Tensor segment_ids;   // (B, T) int64 when packed; undefined when padded
};

// Pads (never packs) `examples` into one batch; the evaluation and packing-equivalence paths.
SftBatch pad_batch(const std::vector<const SftExample*>& examples, int64_t pad_id, int64_t ignore_index);

class SftBatcher {
public:
    SftBatcher(std::vector<SftExample> examples, int64_t batch_size, int64_t block_size, bool packing,
               int64_t pad_id, int64_t ignore_index);

    // The batch at global position `index` of the stream for `seed` (epochs follow each other).
    SftBatch batch(uint64_t seed, uint64_t index);
    // Which epoch global batch `index` falls in (for logging).
    uint64_t epoch_of(uint64_t seed, uint64_t index);
    int64_t num_examples() const { return static_cast<int64_t>(examples_.size()); }
    // Target tokens the loss covers, summed over all examples (one epoch's worth).
    int64_t loss_tokens() const;

private:
    using Plan = std::vector<std::vector<std::vector<int32_t>>>;  // batches -> rows -> example indices
    Plan plan_epoch(uint64_t seed, uint64_t epoch) const;
    const Plan& plan_for(uint64_t seed, uint64_t index, uint64_t* index_in_epoch);
    SftBatch make_packed(const std::vector<std::vector<int32_t>>& rows) const;

    std::vector<SftExample> examples_;
    int64_t batch_size_, block_size_, pad_id_, ignore_index_;
    bool packing_;
    // Cache of one epoch's plan and where it starts in the global stream.
    uint64_t cached_seed_ = 0, cached_epoch_ = UINT64_MAX, cached_start_ = 0;
    Plan cached_plan_;
};

}  // namespace rlhf
