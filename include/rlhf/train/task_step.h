// GPT-1's fine-tuning objective and its optimizer step (Radford et al. 2018, eq. 5):
//
//   L3 = L2 + λ·L1
//   L2  the task loss, a mean over the step's examples:
//       cross-entropy over N classes (classification, entailment, similarity with N >= 2),
//       cross-entropy over the K choice scores (multiple choice: softmax over the answers),
//       squared error (similarity with N = 1: a regression on the score)
//   L1  the LM loss on the input rows, a mean over the step's target tokens (every real token
//       predicts the next; padding and the extract token predict nothing)
//   λ   task.lm_coef (0.5); 0 skips the LM head's forward altogether
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "rlhf/data/task_inputs.h"
#include "rlhf/model/task_model.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/optimizer.h"

namespace rlhf {

// Sums over one batch (divide by the step's examples and LM targets for the means).
struct TaskLossSums {
    torch::Tensor task;  // 0-dim: the task loss summed over examples
    torch::Tensor lm;    // 0-dim: -log p summed over target tokens (0 when lm_coef is 0)
    torch::Tensor scores;  // the head's output (detached), as TaskModel::Output has it
    int64_t lm_targets = 0;
};
TaskLossSums task_loss_sums(TaskModelImpl& model, const TaskBatch& batch, double lm_coef, bool bf16);

struct TaskStepStats {
    double loss = 0.0;       // L3 of the step
    double task_loss = 0.0;  // L2
    double lm_loss = 0.0;    // L1 (NaN when lm_coef is 0)
    double accuracy = NAN;   // on the step's own examples before the update (NaN for regression)
    double grad_norm = 0.0;
    int64_t examples = 0, tokens = 0;
};

// Forward + backward over every micro-batch, then one AdamW step at `lr` with clipping; gradients
// end zeroed. With `sync` the micro-batches are this rank's share and every count, loss and
// gradient is summed over ranks.
TaskStepStats task_train_step(TaskModelImpl& model, AdamW& optimizer, const std::vector<TaskBatch>& micro_batches,
                              double lr, double grad_clip, double lm_coef, bool bf16, GradientSync* sync = nullptr);

// Predictions of a set: the class / choice (argmax) or the regression score (clamped to
// [score_min, score_max]), in input order. Eval mode, no gradients; restores train mode.
struct TaskPredictions {
    std::vector<int64_t> labels, predicted;  // classes or choices
    std::vector<double> scores, predicted_scores;  // regression
    double task_loss = 0.0;  // mean L2 over the set
};
TaskPredictions predict_task(TaskModelImpl& model, const std::vector<TaskInput>& inputs, int64_t batch_size,
                             int64_t pad_id, bool bf16, double score_min, double score_max);

// The metrics GPT-1 reports, and the baseline each must beat: accuracy against always answering
// the set's most common class (the best constant guess); Pearson and Spearman correlation for a
// regression, with its MSE against that of always predicting the set's mean score.
struct TaskMetrics {
    int64_t count = 0;
    double accuracy = NAN, majority_accuracy = NAN;
    double pearson = NAN, spearman = NAN, mse = NAN, mean_mse = NAN;
};
TaskMetrics task_metrics(const TaskPredictions& p);

// Pearson's r, and Spearman's rho (Pearson on ranks, ties given their mean rank).
double pearson_correlation(const std::vector<double>& x, const std::vector<double>& y);
double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace rlhf
