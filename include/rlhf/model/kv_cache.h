// Per-layer key/value buffers for incremental decoding: the prompt is run once (prefill), then
// each new token attends to the cached keys and values instead of recomputing the whole prefix.
#pragma once

#include <torch/types.h>

#include <vector>

namespace rlhf {

struct KvCache {
    // Buffers of shape (B, nh, capacity, hs) per layer, filled in [0, length). They are allocated
    // at the first append, on the device and in the dtype of those keys (bf16 under autocast), so
    // the cached keys always match the queries they meet.
    KvCache(int64_t n_layer, int64_t batch, int64_t n_head, int64_t capacity, int64_t head_dim);

    std::vector<torch::Tensor> k, v;  // per layer; undefined until the first append
    int64_t length = 0;    // columns filled so far (shared by the batch: prompts are left-padded)
    int64_t capacity = 0;  // = the model's block_size at most

    // Called by each attention layer: writes k_new/v_new (B, nh, T, hs) at [length, length+T) and
    // returns the keys and values (B, nh, length+T, hs) to attend to. `length` itself advances in
    // advance(), once all layers have written.
    std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& k_new,
                                                   const torch::Tensor& v_new);
    void advance(int64_t t) { length += t; }
    // Keeps the rows `index` (R,) int64, in that order, of every layer's buffers: (B, …) -> (R, …).
    void select_rows(const torch::Tensor& index);
};

}  // namespace rlhf
