// One optimizer step of language-model training over several micro-batches (gradient
// accumulation), shared by every stage that trains with next-token cross-entropy.
//
// The loss is normalised over ALL target tokens of the accumulated batch: each micro-batch adds
// sum(CE) / total_targets to the gradient. So 1 x 8 and 8 x 1 give the same gradient, and a
// micro-batch with few targets (SFT with masked prompts) weighs what its tokens weigh.
#pragma once

#include <torch/types.h>

#include <vector>

#include "rlhf/model/gpt.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/optimizer.h"

namespace rlhf {

inline constexpr int64_t kIgnoreIndex = -1;  // a target that contributes no loss

struct LmBatch {
    torch::Tensor inputs;   // (B, T) int64
    torch::Tensor targets;  // (B, T) int64, kIgnoreIndex where no loss is wanted
    torch::Tensor position_ids;  // (B, T) int64, packed SFT examples; undefined = 0..T-1
    torch::Tensor segment_ids;   // (B, T) int64, packed SFT examples; undefined = one sequence per row
};

// Sum over tokens of -log p(target); logits (N, V), targets (N).
torch::Tensor lm_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets);

// The forward of one micro-batch (under bf16 autocast with `bf16`) and its summed loss: what
// every LM-trained step divides by its target count and backpropagates (PPO-ptx included).
torch::Tensor lm_batch_loss_sum(GptImpl& model, const LmBatch& batch, bool bf16);

// Token windows (B, T+1) from data/token_shards as inputs (B, T) and next-token targets (B, T) on `device`.
LmBatch lm_batch_from_windows(const torch::Tensor& windows, const torch::Device& device);

struct StepStats {
    double loss = 0.0;       // mean CE per target token over the whole step
    double grad_norm = 0.0;  // global norm before clipping
    int64_t targets = 0;     // target tokens in the step
};

// Forward + backward over every micro-batch (gradients accumulate in .grad), then one AdamW
// step at `lr` with global-norm clipping to grad_clip (0 = off); gradients end zeroed.
// `bf16` runs the forward under autocast. With `sync` (a distributed run) `micro_batches` are this
// rank's share of the step and loss, targets and gradients are those of all ranks together.
StepStats lm_train_step(GptImpl& model, AdamW& optimizer, const std::vector<LmBatch>& micro_batches, double lr,
                        double grad_clip, bool bf16, GradientSync* sync = nullptr);

// Backward only (no optimizer step): leaves the accumulated gradient in .grad and returns the
// mean loss. lm_train_step is this plus clip + step; tests use it to compare gradients.
double lm_accumulate_gradients(GptImpl& model, const std::vector<LmBatch>& micro_batches, bool bf16,
                               int64_t* targets_out = nullptr);

// Mean CE per target token over `batches` in eval mode without gradients; restores train mode.
double lm_eval_loss(GptImpl& model, const std::vector<LmBatch>& batches, bool bf16);

}  // namespace rlhf
