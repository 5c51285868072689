// One PPO iteration's experience: the rollout (prompts, sampled responses) and what was computed
// from it without gradients, as padded (B, ·) tensors. Rollouts are made in chunks
// (ppo.rollout_chunk sequences, each chunk padded to its own widths) and, in a data-parallel run,
// on several ranks; assemble_experience and gather_experience put them together into the one
// batch a single process would hold.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "rlhf/core/distributed.h"
#include "rlhf/model/generate.h"

namespace rlhf::rl {

// All (B, N) over response tokens unless noted.
struct Experience {
    torch::Tensor tokens, attention_mask;  // (B, P + N) int64, bool
    int64_t prompt_len = 0;                // P
    torch::Tensor mask;                    // float 1 on response tokens up to and including the stop
    torch::Tensor old_logprobs, ref_logprobs, old_values, entropy;
    torch::Tensor rollout_logprobs;        // generate()'s own (the sampler's), beside the trainer's old_logprobs
    torch::Tensor token_weights;           // the policy loss's per-token weights (ppo.rollout_correction); undefined = none
    torch::Tensor advantages, returns, kl;  // filled in after the rollout
    torch::Tensor scores;                  // (B,) after the missing-EOS penalty and the clip
    torch::Tensor has_eos;                 // (B,) bool
};

// The rows `rows` (int64 indices on the tensors' device) of every tensor.
Experience take_rows(const Experience& e, const torch::Tensor& rows);

// One chunk of a rollout, all (b, n) over its own response width n unless noted.
struct RolloutChunk {
    Generation g;
    torch::Tensor scores, has_eos;  // (b,)
    torch::Tensor correct;          // (b,) the checker's 1/0 (undefined without a checker)
    torch::Tensor old_logprobs, ref_logprobs, old_values, entropy;
};

// The chunks as one Experience: prompts left-padded to the longest prompt and responses
// right-padded to the longest response. The new columns are masked padding, exactly what
// generate() itself puts around shorter rows, so every row's numbers stay what they were.
// No chunks (a rank with no share of a small batch): zero rows on `device`.
Experience assemble_experience(const std::vector<RolloutChunk>& chunks, int64_t pad_id, const torch::Device& device);

// Data-parallel rollouts: every rank made `mine`, rows first_row … first_row + mine's rows - 1
// of the `global_rows` sequences (contiguous shares in rank order). Returns the whole batch on every rank,
// re-padded to the widest prompt and response of any rank, so that the cross-sequence statistics
// (whitening, score and KL means, β, explained variance) are those of one process. A world of
// one returns `mine`.
Experience gather_experience(const Experience& mine, int64_t global_rows, int64_t first_row, int64_t pad_id,
                             const Distributed& dist);

}  // namespace rlhf::rl
