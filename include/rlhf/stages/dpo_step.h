// DPO's forwards and its optimizer step (rl/dpo_loss.h holds the loss itself):
//   response_logprobs   log π(y|x) of each row: the response tokens' log-probs summed
//   reference_logprobs  the frozen reference's, once for every completion of the run
//   dpo_train_step      micro-batches -> policy log-probs -> pair losses against the cached
//                       reference log-probs -> backward (gradient accumulation, data parallel)
//                       -> one AdamW step
//   dpo_eval            the same metrics on held-out groups, no gradient
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "rlhf/config/config.h"
#include "rlhf/data/dpo_batches.h"
#include "rlhf/model/gpt.h"
#include "rlhf/rl/dpo_loss.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/optimizer.h"

namespace rlhf {

// (N,) float32: Σ_t log p(targets[n, t] | inputs[n, ≤t]) over the targets that are not
// kIgnoreIndex (the response and its EOS), under bf16 autocast with `bf16`. Right padding needs
// no attention mask: under causal attention no real token sees a later pad.
torch::Tensor response_logprobs(GptImpl& model, const DpoBatch& batch, bool bf16);

// The response log-probs of every completion of `groups` under `model` (eval mode, no gradient),
// `batch_size` groups per forward: (total,) float32 on the model's device, indexed by global
// completion index (total = the number of completions the indices run over).
torch::Tensor reference_logprobs(GptImpl& model, const std::vector<DpoGroup>& groups, int64_t total, int64_t batch_size,
                                 int64_t pad_id, bool bf16);

struct DpoStepStats {
    rl::DpoMetrics metrics;  // over the step's pairs, before the update
    double grad_norm = 0.0;
    int64_t groups = 0, rows = 0, tokens = 0;
};

// Forward + backward over every micro-batch (the loss is the mean over ALL pairs of the step:
// each micro-batch adds Σ pair losses / the step's pairs), then one AdamW step at `lr` with
// clipping; gradients end zeroed. `reference` holds reference_logprobs' cache. With `sync` (a
// distributed run) `micro_batches` are this rank's share and counts, metrics and gradients are
// summed over ranks. One host sync.
DpoStepStats dpo_train_step(GptImpl& policy, AdamW& optimizer, const std::vector<DpoBatch>& micro_batches,
                            const torch::Tensor& reference, const DpoConfig& cfg, double lr, double grad_clip, bool bf16,
                            GradientSync* sync = nullptr);

// The metrics over `batches` in eval mode without gradients; restores train mode.
rl::DpoMetrics dpo_eval(GptImpl& policy, const std::vector<DpoBatch>& batches, const torch::Tensor& reference,
                        const DpoConfig& cfg, bool bf16);

}  // namespace rlhf
