#include "rlhf/rl/values.h"

#include <torch/torch.h>

#include "rlhf/core/precision.h"
#include "rlhf/model/generate.h"  // position_ids_from_mask

namespace rlhf::rl {

torch::Tensor response_values(RewardModelImpl& critic, const torch::Tensor& tokens, const torch::Tensor& attention_mask,
                              int64_t start, bool bf16) {
    AutocastGuard autocast(bf16, tokens.device().type());
    AttentionContext ctx{position_ids_from_mask(attention_mask), attention_mask, nullptr};
    auto values = critic.values(tokens, ctx);  // (B, L)
    using torch::indexing::Slice;
    return values.index({Slice(), Slice(start - 1, -1)});
}

}  // namespace rlhf::rl
