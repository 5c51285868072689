#include "support/hf_logits.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/model/generate.h"
#include "support/helpers.h"

namespace rlhf::test {

nlohmann::json reference_json(const std::string& script, const std::string& args) {
    std::string printed = run_transformers_reference(script, args);
    while (!printed.empty() && printed.back() == '\n') printed.pop_back();
    return nlohmann::json::parse(printed.substr(printed.rfind('\n') + 1));
}

std::string HfBatch::arg() const { return shell_quote(nlohmann::json{{"ids", ids}, {"mask", mask}}.dump()); }
torch::Tensor HfBatch::ids_tensor() const { return torch::stack({torch::tensor(ids[0]), torch::tensor(ids[1])}); }
torch::Tensor HfBatch::mask_tensor() const {
    return torch::stack({torch::tensor(mask[0]), torch::tensor(mask[1])}).to(torch::kBool);
}

HfBatch left_padded_batch(int64_t vocab) {
    HfBatch b{{{0, 0, 0, 104, 101, 108, 108, 111, 32}, {72, 105, 33, 259, 260, 10, 261, 7, 264}},
              {{0, 0, 0, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1}}};
    for (auto& row : b.ids) {
        for (auto& id : row) id %= vocab;
    }
    return b;
}

torch::Tensor batch_logits(GptImpl& model, const HfBatch& b) {
    torch::NoGradGuard no_grad;
    const auto mask = b.mask_tensor();
    AttentionContext ctx{position_ids_from_mask(mask), mask, nullptr};
    return model.logits(model.forward(b.ids_tensor(), ctx));
}

double worst_logit_gap(const nlohmann::json& reference, const torch::Tensor& logits, const HfBatch& batch, int64_t vocab) {
    double worst = 0;
    for (int b = 0; b < 2; ++b) {
        for (int t = 0; t < 9; ++t) {
            if (!batch.mask[b][t]) continue;
            auto ref = torch::tensor(reference[b][t].get<std::vector<float>>());
            REQUIRE(ref.size(0) >= vocab);
            ref = ref.narrow(0, 0, vocab);
            worst = std::max(worst, max_abs_diff(logits[b][t].narrow(0, 0, vocab), ref));
        }
    }
    return worst;
}

}  // namespace rlhf::test
