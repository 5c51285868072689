// The reward model's loss, metrics and optimizer step (InstructGPT eq. 1):
//
//   loss = mean over groups i of  -(1/|P_i|) · sum_{(w,l) in P_i} log σ(r(x, y_w) - r(x, y_l) - margin)
//
// where P_i are the ranked pairs of group i (ties give none). One forward per completion; each
// pair reads two of the rows. margin = 0 is the paper's loss.
#pragma once

#include <torch/types.h>

#include <vector>

#include "rlhf/data/ranked_batches.h"
#include "rlhf/model/reward_model.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/optimizer.h"

namespace rlhf {

// Sum over the batch's groups of each group's mean pair loss (divide by the groups of the whole
// step for the mean). rewards: (N,) one per row of the batch.
torch::Tensor ranked_pair_loss(const torch::Tensor& rewards, const RankedBatch& batch, double margin);

// What validation reports, over all pairs of the batches seen.
struct PairStats {
    double loss = 0.0;         // mean over groups, as trained
    double accuracy = 0.0;     // share of pairs with r_better > r_worse (a tie counts half)
    double margin = 0.0;       // mean r_better - r_worse
    double better_mean = 0.0, better_std = 0.0;  // rewards of the better response of each pair
    double worse_mean = 0.0, worse_std = 0.0;    // and of the worse one
    int64_t groups = 0, pairs = 0;
};

// Accumulates PairStats over batches (raw rewards).
class PairStatsAccumulator {
public:
    void add(const torch::Tensor& rewards, const RankedBatch& batch, double margin);
    PairStats result() const;

private:
    double loss_sum_ = 0.0, correct_ = 0.0;
    std::vector<double> better_, worse_;
    int64_t groups_ = 0;
};

struct RewardStepStats {
    double loss = 0.0;        // mean group loss of the step
    double accuracy = 0.0;    // pairwise accuracy on the step's own pairs (before the update)
    double grad_norm = 0.0;
    int64_t groups = 0, pairs = 0, rows = 0;
    int64_t tokens = 0;       // real (unpadded) tokens scored
};

// Forward + backward over every micro-batch (one loss normalised by the step's total groups),
// then one AdamW step at `lr` with clipping; gradients end zeroed. With `sync` (a distributed run)
// `micro_batches` are this rank's share and every count, the loss and the gradients are summed
// over ranks.
RewardStepStats reward_train_step(RewardModelImpl& model, AdamW& optimizer, const std::vector<RankedBatch>& micro_batches,
                                  double lr, double grad_clip, bool bf16, double margin, GradientSync* sync = nullptr);

// Eval mode, no gradients; restores train mode.
PairStats reward_eval(RewardModelImpl& model, const std::vector<RankedBatch>& batches, bool bf16, double margin);

// Raw rewards of single sequences (prompt + response ids each), in batches of `batch_size`.
torch::Tensor raw_rewards_of(RewardModelImpl& model, const std::vector<std::vector<int32_t>>& sequences,
                             int64_t pad_id, int64_t batch_size, bool bf16);

}  // namespace rlhf
