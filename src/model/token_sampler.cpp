#include "rlhf/model/token_sampler.h"

#include <torch/torch.h>

#include <limits>

#include "rlhf/model/generate.h"
#include "rlhf/model/sampling_streams.h"

namespace rlhf {

using torch::indexing::None;
using torch::indexing::Slice;

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}

torch::Tensor mask_beyond_vocab(torch::Tensor logits, int64_t vocab_limit) {
    if (vocab_limit <= 0 || vocab_limit >= logits.size(-1)) return logits;
    return logits.index_fill(-1, torch::arange(vocab_limit, logits.size(-1), logits.options().dtype(torch::kLong)), kNegInf);
}

std::pair<torch::Tensor, torch::Tensor> sample_tokens(const torch::Tensor& logits, const SamplingOptions& opts,
                                                      const torch::Tensor& u, torch::Tensor& bad) {
    const bool greedy = opts.temperature == 0.0;
    auto scaled = mask_beyond_vocab(greedy ? logits : logits / opts.temperature, opts.vocab_limit);
    auto logp = torch::log_softmax(scaled, -1);  // (B, V)
    auto filtered = scaled.clone();
    torch::Tensor token;
    if (greedy) {
        token = filtered.argmax(-1);
    } else {
        if (opts.top_k > 0 && opts.top_k < filtered.size(-1)) {
            auto kth = std::get<0>(filtered.topk(opts.top_k, -1)).index({Slice(), Slice(-1, None)});  // (B, 1)
            filtered.masked_fill_(filtered < kth, kNegInf);
        }
        if (opts.top_p < 1.0) {
            auto [sorted, order] = filtered.sort(-1, /*descending=*/true);
            auto cum = torch::softmax(sorted, -1).cumsum(-1);
            // Drop a token when the tokens before it already reach top_p (the first always stays).
            auto drop = (cum - torch::softmax(sorted, -1)) >= opts.top_p;
            sorted.masked_fill_(drop, kNegInf);
            filtered = torch::full_like(filtered, kNegInf).scatter(-1, order, sorted);
        }
        auto probs = torch::softmax(filtered, -1);
        token = inverse_cdf_sample(probs, u);
        bad = bad.logical_or(probs.sum(-1).isfinite().logical_not());
    }
    return {token, logp.gather(-1, token.unsqueeze(-1)).squeeze(-1)};
}

}  // namespace rlhf
