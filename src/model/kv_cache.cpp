#include "rlhf/model/kv_cache.h"

#include <torch/torch.h>

#include "rlhf/core/error.h"

namespace rlhf {

using torch::indexing::Slice;

KvCache::KvCache(int64_t n_layer, int64_t batch, int64_t n_head, int64_t capacity_, int64_t head_dim)
    : k(static_cast<size_t>(n_layer)), v(static_cast<size_t>(n_layer)), capacity(capacity_) {
    (void)batch, (void)n_head, (void)head_dim;  // taken from the first keys appended
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
    if (!kl.defined()) {
        kl = torch::empty({k_new.size(0), k_new.size(1), capacity, k_new.size(3)}, k_new.options());
        vl = torch::empty({v_new.size(0), v_new.size(1), capacity, v_new.size(3)}, v_new.options());
    }
    kl.index({Slice(), Slice(), Slice(length, length + t)}).copy_(k_new);
    vl.index({Slice(), Slice(), Slice(length, length + t)}).copy_(v_new);
    return {kl.index({Slice(), Slice(), Slice(0, length + t)}), vl.index({Slice(), Slice(), Slice(0, length + t)})};
}

void KvCache::select_rows(const torch::Tensor& index) {
    for (auto* layers : {&k, &v}) {
        for (auto& buffer : *layers) {
            if (buffer.defined()) buffer = buffer.index_select(0, index);
        }
    }
}

}  // namespace rlhf
