// Ranked groups as the reward model sees them. InstructGPT trains "on all C(K,2) comparisons
// from each prompt as a single batch element": every completion of a group is ONE row (K
// forwards per group, not 2·C(K,2)), and the pairs index into the rows.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace rlhf {

struct RenderedGroup {
    std::vector<std::vector<int32_t>> completions;  // K rows of ids: prompt + response + EOS, fitted to the window
    std::vector<int> ranks;                         // K; 0 = best; equal = tie
};

struct RankedBatch {
    torch::Tensor ids;          // (N, T) int64, N = sum of K over the groups; right-padded
    torch::Tensor key_mask;     // (N, T) bool, true on real tokens
    torch::Tensor better;       // (P,) int64: row of the better completion of each pair
    torch::Tensor worse;        // (P,) int64: row of the worse one
    torch::Tensor pair_weight;  // (P,) float32: 1 / (pairs in its group), so each group weighs 1
    int64_t groups = 0;
    int64_t pairs = 0;
};

RankedBatch collate_groups(const std::vector<const RenderedGroup*>& groups, int64_t pad_id);

// Consecutive runs of `groups` whose collated batch holds at most `max_tokens` padded tokens
// (rows × the longest row): the activations a backward keeps grow with that product, so this
// bounds a step's memory whatever train.batch_size. A group over the budget on its own is its
// own run (a group is never split: its pairs share rows). 0 = one run.
std::vector<std::vector<const RenderedGroup*>> split_by_tokens(const std::vector<const RenderedGroup*>& groups,
                                                               int64_t max_tokens);

// The same batch on `device`.
RankedBatch to_device(const RankedBatch& batch, const torch::Device& device);

}  // namespace rlhf
