// Comparing our logits with transformers' (tests/reference/hf_*.py) on one left-padded batch.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

#include "rlhf/model/gpt.h"

namespace rlhf::test {

// The JSON a reference script prints on its last line.
nlohmann::json reference_json(const std::string& script, const std::string& args);

// Two rows, the first padded on the left by 3 (id 0 there, masked out): ids of the toy
// vocabulary (262 entries) taken modulo `vocab`, so that any model can read them.
struct HfBatch {
    std::vector<std::vector<int64_t>> ids, mask;
    std::string arg() const;  // the batch as the scripts' shell-quoted JSON argument
    torch::Tensor ids_tensor() const;
    torch::Tensor mask_tensor() const;
};
HfBatch left_padded_batch(int64_t vocab);

// Our logits (2, 9, V) for the batch.
torch::Tensor batch_logits(GptImpl& model, const HfBatch& b);

// Largest |difference| over the real positions, on the first `vocab` logits of both.
double worst_logit_gap(const nlohmann::json& reference, const torch::Tensor& logits, const HfBatch& batch, int64_t vocab);

}  // namespace rlhf::test
