// GPT-1's fine-tuning model (Radford et al. 2018, section 3.2): the GPT trunk, and a linear head
// W_y on the final hidden state of each row's extract token, with dropout on the head's input.
//
//   rows (R, T) --trunk--> hidden (R, T, C) --at extract_pos--> h (R, C)
//   classification, entailment   h -> head -> logits (B, N)                 B = R
//   similarity                   h[2i] + h[2i+1] (both orders, added) -> head -> (B, N), or
//                                (B,) with N = 1 (a regression on the score)
//   multiple_choice              h -> head -> one scalar per row -> (B, K) choice scores
//
// The LM head stays the tied embedding, so the auxiliary LM loss (train/task_step.h) reads the same
// hidden states. Parameter names: transformer.* for the trunk (as every checkpoint), task_head.*.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "rlhf/data/task_examples.h"
#include "rlhf/model/gpt.h"

namespace rlhf {

// The head's outputs: N classes (classification, entailment, similarity with N >= 2), 1 for a
// similarity regression, 1 per choice for multiple choice.
int64_t task_head_outputs(TaskType type, int num_classes);

struct TaskModelImpl : torch::nn::Module {
    // Around an existing trunk (its weights kept, shared); a fresh head, weights N(0, 0.02) and bias
    // 0 (GPT-1's init: the task starts from "no opinion" rather than from a large random one).
    TaskModelImpl(Gpt trunk, TaskType type, int num_classes, double head_dropout);

    struct Output {
        torch::Tensor hidden;  // (R, T, C): for the auxiliary LM loss
        torch::Tensor scores;  // (B, N) logits, (B,) regression predictions, or (B, K) choice scores
    };
    // ids (R, T) right-padded; extract_pos (R,); rows_per_example as TaskBatch has it.
    Output forward(const torch::Tensor& ids, const torch::Tensor& extract_pos, int64_t rows_per_example);

    bool regression() const { return type == TaskType::Similarity && outputs == 1; }
    int64_t num_parameters() const;

    Gpt gpt;                              // the trunk's forward; owns `transformer`
    GptTransformer transformer{nullptr};  // registered here so names are transformer.*
    torch::nn::Dropout head_dropout{nullptr};
    torch::nn::Linear task_head{nullptr};  // (C) -> (outputs)
    TaskType type;
    int64_t outputs;
};
TORCH_MODULE(TaskModel);

}  // namespace rlhf
