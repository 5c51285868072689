#include "rlhf/data/ranked_batches.h"

#include <algorithm>

#include <torch/torch.h>

#include "rlhf/core/runtime.h"      // to_device
#include "rlhf/data/comparisons.h"  // ranked_pairs

namespace rlhf {

std::vector<std::vector<const RenderedGroup*>> split_by_tokens(const std::vector<const RenderedGroup*>& groups,
                                                               int64_t max_tokens) {
    std::vector<std::vector<const RenderedGroup*>> runs;
    int64_t rows = 0, longest = 0;
    for (const auto* g : groups) {
        int64_t g_longest = 0;
        for (const auto& c : g->completions) g_longest = std::max(g_longest, static_cast<int64_t>(c.size()));
        const int64_t g_rows = static_cast<int64_t>(g->completions.size());
        const bool fits = (rows + g_rows) * std::max(longest, g_longest) <= max_tokens;
        if (runs.empty() || (max_tokens > 0 && !fits)) {
            runs.emplace_back();
            rows = 0;
            longest = 0;
        }
        runs.back().push_back(g);
        rows += g_rows;
        longest = std::max(longest, g_longest);
    }
    return runs;
}

RankedBatch collate_groups(const std::vector<const RenderedGroup*>& groups, int64_t pad_id) {
    int64_t rows = 0, T = 1;
    for (const auto* g : groups) {
        rows += static_cast<int64_t>(g->completions.size());
        for (const auto& c : g->completions) T = std::max(T, static_cast<int64_t>(c.size()));
    }
    RankedBatch b;
    b.ids = torch::full({rows, T}, pad_id, torch::kLong);
    b.key_mask = torch::zeros({rows, T}, torch::kBool);
    auto ids = b.ids.accessor<int64_t, 2>();
    auto mask = b.key_mask.accessor<bool, 2>();
    std::vector<int64_t> better, worse;
    std::vector<float> weight;
    int64_t row = 0;
    for (const auto* g : groups) {
        const auto pairs = ranked_pairs(g->ranks);
        for (const auto& [a, z] : pairs) {
            better.push_back(row + a);
            worse.push_back(row + z);
            weight.push_back(1.0f / static_cast<float>(pairs.size()));
        }
        for (const auto& c : g->completions) {
            for (size_t t = 0; t < c.size(); ++t) {
                ids[row][static_cast<int64_t>(t)] = c[t];
                mask[row][static_cast<int64_t>(t)] = true;
            }
            ++row;
        }
    }
    b.better = torch::tensor(better, torch::kLong);
    b.worse = torch::tensor(worse, torch::kLong);
    b.pair_weight = torch::tensor(weight, torch::kFloat32);
    b.groups = static_cast<int64_t>(groups.size());
    b.pairs = static_cast<int64_t>(better.size());
    return b;
}

RankedBatch to_device(const RankedBatch& b, const torch::Device& device) {
    RankedBatch out = b;
    out.ids = to_device(b.ids, device);
    out.key_mask = to_device(b.key_mask, device);
    out.better = to_device(b.better, device);
    out.worse = to_device(b.worse, device);
    out.pair_weight = to_device(b.pair_weight, device);
    return out;
}

}  // namespace rlhf
