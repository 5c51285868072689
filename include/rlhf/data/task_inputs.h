// GPT-1's task-aware input transformations (Radford et al. 2018, section 3.3, figure 1): every
// task becomes one or more token sequences for the one GPT, each ending in the extract token whose
// final hidden state the task head reads.
//
//   classification   [start] text [extract]                                  1 row
//   entailment       [start] premise [delim] hypothesis [extract]            1 row
//   similarity       [start] a [delim] b [extract], [start] b [delim] a [extract]
//                                                                            2 rows (no order is
//                                                                            the natural one)
//   multiple_choice  [start] context [delim] answer_k [extract], k = 1..K    K rows
//
// start, delim and extract are added tokens (like the chat roles): no text encodes to them.
// Batches are right-padded: under causal attention no real token sees a pad, positions stay
// 0..L-1, and each row's extract token sits at its own index (extract_pos).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rlhf/data/task_examples.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

inline const std::vector<std::string> kTaskTokens = {"<|start|>", "<|delim|>", "<|extract|>"};

struct TaskTokenIds {
    int32_t start = -1, delim = -1, extract = -1;
};
// The ids of kTaskTokens in `tokenizer`; an rlhf::Error when it lacks them.
TaskTokenIds task_token_ids(const Tokenizer& tokenizer);

// One example as the rows the model reads, with its target.
struct TaskInput {
    std::vector<std::vector<int32_t>> rows;  // 1, 2 (similarity) or K (multiple choice); each <= block_size
    int64_t label = -1;                      // class or right choice; -1 for regression
    double score = 0.0;                      // regression target
};

// Renders `example` in the layout of `type`. Texts longer than the window are cut from their
// ends, the longer of a pair first (for multiple choice, against the longest answer), so every
// row fits `block_size`; `truncated` counts examples that were cut. Both orders of a similarity
// pair hold the same (cut) texts.
TaskInput render_task_input(const TaskExample& example, TaskType type, const Tokenizer& tokenizer,
                            const TaskTokenIds& tokens, int64_t block_size, int64_t* truncated = nullptr);

struct TaskBatch {
    torch::Tensor ids;          // (R, T) int64, right-padded with the tokenizer's PAD
    torch::Tensor extract_pos;  // (R,) int64: the index of each row's extract token (its last real one)
    torch::Tensor lm_targets;   // (R, T) int64: the next token of each input position, -1 where none
                                //   (the extract token and padding): the auxiliary LM loss's targets
    torch::Tensor labels;       // (B,) int64 classes or right choices; regression: (B,) float32 scores
    int64_t examples = 0;       // B
    int64_t rows_per_example = 1;  // R = B · this: 1, 2 (similarity) or K (multiple choice)
};

// Collates examples (all with the same number of rows) into one batch on the CPU. An
// rlhf::Error when multiple-choice examples in one batch have different K.
TaskBatch collate_task_inputs(const std::vector<const TaskInput*>& inputs, bool regression, int64_t pad_id);
TaskBatch to_device(const TaskBatch& batch, const torch::Device& device);

}  // namespace rlhf
