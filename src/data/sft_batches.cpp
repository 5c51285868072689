#include "rlhf/data/sft_batches.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "rlhf/core/error.h"
#include "rlhf/data/epoch_sampler.h"

namespace rlhf {

namespace {

constexpr int64_t kSortChunkBatches = 32;  // batches per length-sorted chunk

int64_t input_len(const SftExample& e) { return static_cast<int64_t>(e.ids.size()) - 1; }

}  // namespace

SftBatch pad_batch(const std::vector<const SftExample*>& examples, int64_t pad_id, int64_t ignore_index) {
    int64_t T = 1;
    for (const auto* e : examples) T = std::max(T, input_len(*e));
    const auto B = static_cast<int64_t>(examples.size());
    auto inputs = torch::full({B, T}, pad_id, torch::kLong);
    auto targets = torch::full({B, T}, ignore_index, torch::kLong);
    auto in = inputs.accessor<int64_t, 2>();
    auto tg = targets.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
        const auto& e = *examples[static_cast<size_t>(b)];
        for (int64_t t = 0; t < input_len(e); ++t) {
            in[b][t] = e.ids[static_cast<size_t>(t)];
            if (e.loss_mask[static_cast<size_t>(t + 1)]) tg[b][t] = e.ids[static_cast<size_t>(t + 1)];
        }
    }
    return {inputs, targets, {}, {}};
}

SftBatcher::SftBatcher(std::vector<SftExample> examples, int64_t batch_size, int64_t block_size, bool packing,
                       int64_t pad_id, int64_t ignore_index)
    : examples_(std::move(examples)), batch_size_(batch_size), block_size_(block_size), pad_id_(pad_id),
      ignore_index_(ignore_index), packing_(packing) {
    RLHF_CHECK(!examples_.empty(), "data.files", "no training examples", "");
    for (const auto& e : examples_) {
        RLHF_CHECK(e.ids.size() >= 2 && e.ids.size() == e.loss_mask.size() && input_len(e) <= block_size_, "sft data",
                   "an example does not fit the window", "this is a bug: examples are fitted before batching");
    }
}

int64_t SftBatcher::loss_tokens() const {
    int64_t n = 0;
    for (const auto& e : examples_) n += std::accumulate(e.loss_mask.begin() + 1, e.loss_mask.end(), int64_t{0});
    return n;
}

SftBatcher::Plan SftBatcher::plan_epoch(uint64_t seed, uint64_t epoch) const {
    std::vector<int32_t> order(examples_.size());
    std::iota(order.begin(), order.end(), 0);
    uint64_t mix = epoch_seed(seed, epoch);
    seeded_shuffle(order, mix);
    Plan plan;
    if (packing_) {
        std::vector<std::vector<int32_t>> rows;
        int64_t fill = block_size_;  // forces a first row
        for (int32_t i : order) {
            const int64_t n = input_len(examples_[static_cast<size_t>(i)]);
            if (fill + n > block_size_) {
                rows.emplace_back();
                fill = 0;
            }
            rows.back().push_back(i);
            fill += n;
        }
        for (size_t r = 0; r < rows.size(); r += static_cast<size_t>(batch_size_)) {
            plan.emplace_back(rows.begin() + static_cast<long>(r),
                              rows.begin() + static_cast<long>(std::min(rows.size(), r + static_cast<size_t>(batch_size_))));
        }
        return plan;
    }
    const auto chunk = static_cast<size_t>(batch_size_ * kSortChunkBatches);
    for (size_t c = 0; c < order.size(); c += chunk) {
        auto first = order.begin() + static_cast<long>(c);
        auto last = order.begin() + static_cast<long>(std::min(order.size(), c + chunk));
        std::stable_sort(first, last, [&](int32_t a, int32_t b) {
            return examples_[static_cast<size_t>(a)].ids.size() < examples_[static_cast<size_t>(b)].ids.size();
        });
        const size_t end = std::min(order.size(), c + chunk);
        for (size_t b = c; b < end; b += static_cast<size_t>(batch_size_)) {
            std::vector<std::vector<int32_t>> rows;
            for (size_t j = b; j < std::min(end, b + static_cast<size_t>(batch_size_)); ++j) rows.push_back({order[j]});
            plan.push_back(std::move(rows));
        }
    }
    seeded_shuffle(plan, splitmix64(mix));  // sorted chunks, but batches of every length throughout the epoch
    return plan;
}

const SftBatcher::Plan& SftBatcher::plan_for(uint64_t seed, uint64_t index, uint64_t* index_in_epoch) {
    if (seed != cached_seed_ || cached_epoch_ == UINT64_MAX || index < cached_start_) {
        cached_seed_ = seed;
        cached_epoch_ = 0;
        cached_start_ = 0;
        cached_plan_ = plan_epoch(seed, 0);
    }
    while (index >= cached_start_ + cached_plan_.size()) {
        cached_start_ += cached_plan_.size();
        cached_plan_ = plan_epoch(seed, ++cached_epoch_);
    }
    *index_in_epoch = index - cached_start_;
    return cached_plan_;
}

uint64_t SftBatcher::epoch_of(uint64_t seed, uint64_t index) {
    uint64_t in_epoch = 0;
    plan_for(seed, index, &in_epoch);
    return cached_epoch_;
}

SftBatch SftBatcher::make_packed(const std::vector<std::vector<int32_t>>& rows) const {
    int64_t T = 1;
    for (const auto& row : rows) {
        int64_t n = 0;
        for (int32_t i : row) n += input_len(examples_[static_cast<size_t>(i)]);
        T = std::max(T, n);
    }
    const auto B = static_cast<int64_t>(rows.size());
    auto inputs = torch::full({B, T}, pad_id_, torch::kLong);
    auto targets = torch::full({B, T}, ignore_index_, torch::kLong);
    auto positions = torch::zeros({B, T}, torch::kLong);
    auto segments = torch::full({B, T}, -1, torch::kLong);  // the padding tail is a segment of its own
    auto in = inputs.accessor<int64_t, 2>();
    auto tg = targets.accessor<int64_t, 2>();
    auto ps = positions.accessor<int64_t, 2>();
    auto sg = segments.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
        int64_t t = 0, segment = 0;
        for (int32_t i : rows[static_cast<size_t>(b)]) {
            const auto& e = examples_[static_cast<size_t>(i)];
            for (int64_t k = 0; k < input_len(e); ++k, ++t) {
                in[b][t] = e.ids[static_cast<size_t>(k)];
                if (e.loss_mask[static_cast<size_t>(k + 1)]) tg[b][t] = e.ids[static_cast<size_t>(k + 1)];
                ps[b][t] = k;
                sg[b][t] = segment;
            }
            ++segment;
        }
    }
    return {inputs, targets, positions, segments};
}

SftBatch SftBatcher::batch(uint64_t seed, uint64_t index) {
    uint64_t in_epoch = 0;
    const auto& rows = plan_for(seed, index, &in_epoch)[in_epoch];
    if (packing_) return make_packed(rows);
    std::vector<const SftExample*> examples;
    for (const auto& row : rows) examples.push_back(&examples_[static_cast<size_t>(row.front())]);
    return pad_batch(examples, pad_id_, ignore_index_);
}

}  // namespace rlhf
