#include "rlhf/data/dpo_batches.h"

#include <torch/torch.h>

#include <algorithm>
#include <optional>

#include "rlhf/core/runtime.h"  // to_device
#include "rlhf/data/chat_format.h"

namespace rlhf {

namespace {

// prompt + response + EOS fitted to the window, and where the response starts: after the last
// prompt token, i.e. the last 0 of the loss mask before its trailing 1s (earlier assistant turns
// of a multi-turn prompt are 1s too, but a user turn's 0s follow them).
std::optional<RenderedExample> render_completion(const std::vector<ChatTurn>& prompt, const std::string& response,
                                                 const Tokenizer& tokenizer, const DpoRenderOptions& opts,
                                                 DpoRenderCounts& counts) {
    auto turns = prompt;
    turns.push_back({"assistant", response});
    auto r = render_conversation(turns, tokenizer);
    if (static_cast<int64_t>(r.ids.size()) <= opts.max_ids) return r;
    if (!opts.truncate) return std::nullopt;
    auto fitted = fit_to_window(std::move(r), opts.max_ids, opts.min_prompt_fraction);
    if (!fitted) return std::nullopt;
    counts.prompt_cut += fitted->prompt_truncated;
    counts.reply_cut += fitted->response_truncated;
    return fitted;
}

int64_t reply_start(const RenderedExample& r) {
    auto start = static_cast<int64_t>(r.loss_mask.size());
    while (start > 0 && r.loss_mask[static_cast<size_t>(start - 1)] == 1) --start;
    return start;
}

}  // namespace

std::vector<DpoGroup> render_dpo_groups(const std::vector<RankedGroup>& groups, const Tokenizer& tokenizer,
                                        const DpoRenderOptions& opts, int64_t first_index, DpoRenderCounts& counts) {
    std::vector<DpoGroup> out;
    int64_t next = first_index;
    for (const auto& g : groups) {
        DpoGroup d;
        d.ranks = g.ranks;
        d.first_completion = next;
        for (const auto& response : g.responses) {
            auto r = render_completion(g.prompt, response, tokenizer, opts, counts);
            if (!r) break;
            d.response_start.push_back(reply_start(*r));
            d.completions.push_back(std::move(r->ids));
        }
        if (d.completions.size() != g.responses.size()) {
            ++counts.skipped_groups;
            continue;
        }
        next += static_cast<int64_t>(d.completions.size());
        out.push_back(std::move(d));
    }
    return out;
}

int64_t count_completions(const std::vector<DpoGroup>& groups) {
    int64_t n = 0;
    for (const auto& g : groups) n += static_cast<int64_t>(g.completions.size());
    return n;
}

int64_t count_pairs(const std::vector<DpoGroup>& groups) {
    int64_t n = 0;
    for (const auto& g : groups) n += static_cast<int64_t>(ranked_pairs(g.ranks).size());
    return n;
}

DpoBatch collate_dpo(const std::vector<const DpoGroup*>& groups, int64_t pad_id, int64_t ignore_index) {
    int64_t rows = 0, T = 1;
    for (const auto* g : groups) {
        rows += static_cast<int64_t>(g->completions.size());
        for (const auto& c : g->completions) T = std::max(T, static_cast<int64_t>(c.size()) - 1);
    }
    DpoBatch b;
    b.inputs = torch::full({rows, T}, pad_id, torch::kLong);
    b.targets = torch::full({rows, T}, ignore_index, torch::kLong);
    b.completion = torch::empty({rows}, torch::kLong);
    auto inputs = b.inputs.accessor<int64_t, 2>();
    auto targets = b.targets.accessor<int64_t, 2>();
    auto completion = b.completion.accessor<int64_t, 1>();
    std::vector<int64_t> chosen, rejected;
    int64_t row = 0;
    b.first_target = T - 1;
    for (const auto* g : groups) {
        for (const auto& [a, z] : ranked_pairs(g->ranks)) {
            chosen.push_back(row + a);
            rejected.push_back(row + z);
        }
        for (size_t k = 0; k < g->completions.size(); ++k, ++row) {
            const auto& ids = g->completions[k];
            const auto n = static_cast<int64_t>(ids.size()) - 1;  // inputs; position t predicts ids[t + 1]
            for (int64_t t = 0; t < n; ++t) {
                inputs[row][t] = ids[static_cast<size_t>(t)];
                if (t + 1 >= g->response_start[k]) targets[row][t] = ids[static_cast<size_t>(t + 1)];
            }
            b.first_target = std::min(b.first_target, g->response_start[k] - 1);
            completion[row] = g->first_completion + static_cast<int64_t>(k);
            b.tokens += n;
        }
    }
    b.chosen = torch::tensor(chosen, torch::kLong);
    b.rejected = torch::tensor(rejected, torch::kLong);
    b.groups = static_cast<int64_t>(groups.size());
    b.pairs = static_cast<int64_t>(chosen.size());
    return b;
}

DpoBatch to_device(const DpoBatch& b, const torch::Device& device) {
    DpoBatch out = b;
    out.inputs = to_device(b.inputs, device);
    out.targets = to_device(b.targets, device);
    out.completion = to_device(b.completion, device);
    out.chosen = to_device(b.chosen, device);
    out.rejected = to_device(b.rejected, device);
    return out;
}

}  // namespace rlhf
