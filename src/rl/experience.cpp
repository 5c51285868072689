#include "rlhf/rl/experience.h"

#include <torch/torch.h>

namespace rlhf::rl {

namespace {

// (b, w) -> (b, left + w + right), the new columns filled with `value`.
torch::Tensor pad_columns(const torch::Tensor& t, int64_t left, int64_t right, double value) {
    std::vector<torch::Tensor> parts;
    if (left > 0) parts.push_back(torch::full({t.size(0), left}, value, t.options()));
    parts.push_back(t);
    if (right > 0) parts.push_back(torch::full({t.size(0), right}, value, t.options()));
    return parts.size() == 1 ? t : torch::cat(parts, 1);
}

// Every rollout tensor of `e` padded to prompt width P and response width N.
Experience pad_to(const Experience& e, int64_t P, int64_t N, int64_t pad_id) {
    const int64_t left = P - e.prompt_len, right = N - e.mask.size(1);
    Experience out = e;
    out.prompt_len = P;
    out.tokens = pad_columns(e.tokens, left, right, static_cast<double>(pad_id));
    out.attention_mask = pad_columns(e.attention_mask, left, right, 0);
    for (auto* t : {&out.mask, &out.old_logprobs, &out.ref_logprobs, &out.old_values, &out.entropy, &out.rollout_logprobs}) {
        *t = pad_columns(*t, 0, right, 0);
    }
    return out;
}

}  // namespace

Experience take_rows(const Experience& e, const torch::Tensor& rows) {
    Experience out = e;
    for (auto* t : {&out.tokens, &out.attention_mask, &out.mask, &out.old_logprobs, &out.ref_logprobs, &out.old_values,
                    &out.entropy, &out.rollout_logprobs, &out.token_weights, &out.advantages, &out.returns, &out.kl, &out.scores, &out.has_eos}) {
        if (t->defined()) *t = t->index_select(0, rows);
    }
    return out;
}

Experience assemble_experience(const std::vector<RolloutChunk>& chunks, int64_t pad_id, const torch::Device& device) {
    if (chunks.empty()) {
        auto opts = torch::TensorOptions().device(device);
        auto empty = [&](torch::ScalarType type, int64_t dims) {
            return dims == 1 ? torch::zeros({0}, opts.dtype(type)) : torch::zeros({0, 0}, opts.dtype(type));
        };
        Experience e;
        e.tokens = empty(torch::kLong, 2);
        e.attention_mask = empty(torch::kBool, 2);
        e.mask = empty(torch::kFloat32, 2);
        e.old_logprobs = empty(torch::kFloat32, 2);
        e.ref_logprobs = empty(torch::kFloat32, 2);
        e.old_values = empty(torch::kFloat32, 2);
        e.entropy = empty(torch::kFloat32, 2);
        e.rollout_logprobs = empty(torch::kFloat32, 2);
        e.scores = empty(torch::kFloat32, 1);
        e.has_eos = empty(torch::kBool, 1);
        return e;
    }
    int64_t P = 0, N = 0;
    for (const auto& c : chunks) {
        P = std::max(P, c.g.prompt_len);
        N = std::max(N, c.g.response.size(1));
    }
    std::vector<Experience> parts;
    for (const auto& c : chunks) {
        Experience e;
        e.prompt_len = c.g.prompt_len;
        e.tokens = c.g.tokens;
        e.attention_mask = c.g.attention_mask;
        e.mask = c.g.response_mask.to(torch::kFloat32);
        e.old_logprobs = c.old_logprobs;
        e.ref_logprobs = c.ref_logprobs;
        e.old_values = c.old_values;
        e.entropy = c.entropy;
        e.rollout_logprobs = c.g.logprobs * e.mask;
        parts.push_back(pad_to(e, P, N, pad_id));
    }
    auto cat = [&](torch::Tensor Experience::*field) {
        std::vector<torch::Tensor> ts;
        for (const auto& p : parts) ts.push_back(p.*field);
        return torch::cat(ts);
    };
    Experience e;
    e.prompt_len = P;
    e.tokens = cat(&Experience::tokens);
    e.attention_mask = cat(&Experience::attention_mask);
    e.mask = cat(&Experience::mask);
    e.old_logprobs = cat(&Experience::old_logprobs);
    e.ref_logprobs = cat(&Experience::ref_logprobs);
    e.old_values = cat(&Experience::old_values);
    e.entropy = cat(&Experience::entropy);
    e.rollout_logprobs = cat(&Experience::rollout_logprobs);
    std::vector<torch::Tensor> scores, has_eos;
    for (const auto& c : chunks) {
        scores.push_back(c.scores);
        has_eos.push_back(c.has_eos);
    }
    e.scores = torch::cat(scores);
    e.has_eos = torch::cat(has_eos);
    return e;
}

Experience gather_experience(const Experience& mine, int64_t global_rows, int64_t first_row, int64_t pad_id,
                             const Distributed& dist) {
    if (dist.world_size() == 1) return mine;
    // The widest prompt and response of any rank.
    auto widths = torch::tensor({mine.prompt_len, mine.mask.size(1)}, torch::kLong);
    dist.all_reduce_max(widths);
    const Experience padded = pad_to(mine, widths[0].item<int64_t>(), widths[1].item<int64_t>(), pad_id);
    // An all-gather as a sum: every rank writes its rows into zeros at its offset (x + 0 = x, so
    // the result is exact). The tensors are a few MB at most, small beside one gradient all-reduce.
    auto gathered = [&](const torch::Tensor& t) {
        auto as_number = t.scalar_type() == torch::kBool ? t.to(torch::kFloat32) : t;
        auto sizes = as_number.sizes().vec();
        sizes[0] = global_rows;
        auto full = torch::zeros(sizes, as_number.options());
        full.narrow(0, first_row, t.size(0)).copy_(as_number);
        dist.all_reduce_sum(full);
        return t.scalar_type() == torch::kBool ? full.gt(0.5) : full;
    };
    Experience e;
    e.prompt_len = padded.prompt_len;
    e.tokens = gathered(padded.tokens);
    e.attention_mask = gathered(padded.attention_mask);
    e.mask = gathered(padded.mask);
    e.old_logprobs = gathered(padded.old_logprobs);
    e.ref_logprobs = gathered(padded.ref_logprobs);
    e.old_values = gathered(padded.old_values);
    e.entropy = gathered(padded.entropy);
    e.rollout_logprobs = gathered(padded.rollout_logprobs);
    e.scores = gathered(padded.scores);
    e.has_eos = gathered(padded.has_eos);
    return e;
}

}  // namespace rlhf::rl
