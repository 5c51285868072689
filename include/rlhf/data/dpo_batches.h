// Ranked comparisons as DPO sees them. As for the reward model (data/ranked_batches.h), every
// completion of a group is ONE row — rendered once however many pairs it is in — and the pairs
// index into the rows. DPO scores a row by the log-probability of its response, so each row also
// knows where its response starts (the targets outside it are ignored) and which completion of
// the run it is: the index of the reference model's log-prob, computed once at the start.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "rlhf/data/comparisons.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

struct DpoGroup {
    std::vector<std::vector<int32_t>> completions;  // K rows of ids: prompt + response + EOS, fitted to the window
    std::vector<int64_t> response_start;            // K: index of each row's first response token
    std::vector<int> ranks;                         // K; 0 = best; equal = tie
    int64_t first_completion = 0;                   // global index of row 0; a group's rows are consecutive
};

struct DpoRenderOptions {
    int64_t max_ids = 0;               // block_size + 1: the last id is only ever a target
    bool truncate = true;              // data.too_long: truncate | skip (the whole group)
    double min_prompt_fraction = 0.5;  // data.min_prompt_fraction
};

struct DpoRenderCounts {
    int64_t prompt_cut = 0;      // completions whose prompt lost tokens from the left
    int64_t reply_cut = 0;       // completions whose response lost tokens from the right (and its EOS)
    int64_t skipped_groups = 0;  // groups with a completion that could not fit
};

// Each group's completions in the chat format (prompt turns, <|assistant|>, response, EOS),
// fitted to opts.max_ids as SFT fits its examples (chat_format.h). A group one of whose
// completions cannot fit is left out and counted. Completions are numbered in order from
// `first_index` on.
std::vector<DpoGroup> render_dpo_groups(const std::vector<RankedGroup>& groups, const Tokenizer& tokenizer,
                                        const DpoRenderOptions& opts, int64_t first_index, DpoRenderCounts& counts);

// Completions and ranked pairs of a set of groups.
int64_t count_completions(const std::vector<DpoGroup>& groups);
int64_t count_pairs(const std::vector<DpoGroup>& groups);

struct DpoBatch {
    torch::Tensor inputs;      // (N, T) int64, N = sum of K: each row's ids but the last; right-padded
    torch::Tensor targets;     // (N, T) int64: the ids one ahead; ignore_index except on the final response
    torch::Tensor completion;  // (N,) int64: each row's global completion index
    torch::Tensor chosen;      // (P,) int64: row of the better completion of each pair
    torch::Tensor rejected;    // (P,) int64: row of the worse one
    int64_t first_target = 0;  // the first column holding a response target in any row: the log-probs
                               // need logits from there on only (a long prompt costs no (N, T, V) logits)
    int64_t groups = 0, pairs = 0;
    int64_t tokens = 0;        // real (unpadded) input tokens
};

DpoBatch collate_dpo(const std::vector<const DpoGroup*>& groups, int64_t pad_id, int64_t ignore_index);

// The same batch on `device`.
DpoBatch to_device(const DpoBatch& batch, const torch::Device& device);

}  // namespace rlhf
