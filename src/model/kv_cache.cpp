#include "rlhf/model/kv_cache.h"

#include <torch/torch.h>

#include "rlhf/core/error.h"

namespace rlhf {

using torch::indexing::Slice;

KvCache::KvCache(int64_t n_layer, int64_t batch, int64_t n_head, int64_t capacity_, int64_t head_dim,
                 torch::TensorOptions options)
    : capacity(capacity_) {
    for (int64_t l = 0; l < n_layer; ++l) {
        k.push_back(torch::empty({batch, n_head, capacity, head_dim}, options));
        v.push_back(torch::empty({batch, n_head, capacity, head_dim}, options));
    }
}

std::pair<torch::Tensor, torch::Tensor> KvCache::append(int64_t layer, const torch::Tensor& k_new,
                                                        const torch::Tensor& v_new) {
    const int64_t t = k_new.size(2);
    if (length + t > capacity) {
        throw Error("KV cache overflow: " + std::to_string(length + t) + " positions > capacity " +
                        std::to_string(capacity),
                    "generate", "keep prompt + new tokens within model.block_size");
    }
    auto& kl = k[static_cast<size_t>(layer)];
    auto& vl = v[static_cast<size_t>(layer)];
    kl.index({Slice(), Slice(), Slice(length, length + t)}).copy_(k_new);
    vl.index({Slice(), Slice(), Slice(length, length + t)}).copy_(v_new);
    return {kl.index({Slice(), Slice(), Slice(0, length + t)}), vl.index({Slice(), Slice(), Slice(0, length + t)})};
}

}  // namespace rlhf
