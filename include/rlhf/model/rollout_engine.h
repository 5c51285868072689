// The rollout engine: generate() for RL's batches, where one prompt is answered several times
// (GRPO's groups) and answers stop at very different lengths.
//
//   1. Shared prefixes: identical prompts admitted together are prefilled once, and their keys
//      and values copied to each of their rows.
//   2. Stopped rows leave the batch: every `check_every` tokens the rows that emitted a stop token
//      (or reached max_new_tokens) are dropped from the KV cache and the per-row state, so a
//      decoding step costs what the running rows cost. On a GPU the check is the only host sync,
//      so it happens every 8 tokens, not every token.
//   3. Continuous batching: with more prompts than `max_active`, waiting prompts take the freed
//      slots. Rows of different ages share the cache right-aligned: each row's keys end at the
//      cache's last column and left padding is masked, as in generate()'s left-padded batch.
//
// Each row samples from its own stream at its own step (model/sampling_streams.h), so a row gets
// the tokens generate() gives it for the same seed, whatever rows it meets. Its log-probs agree
// with generate()'s to float rounding, not to the bit: BLAS kernels block a matrix product
// differently for different row counts (MKL's fp32 GEMM gives other bits below 8 rows), and a
// row's batch changes as rows leave. tests/model/test_rollout_engine.cpp compares the two.
//
// The result has generate()'s layout (all prompts left-padded to the longest), so callers read it
// the same way; Generation::decode_slots counts the row-steps actually computed.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "rlhf/model/generate.h"

namespace rlhf {

struct RolloutEngineOptions {
    int64_t max_active = 0;       // rows decoded at once (bounds the KV cache); 0 = every prompt
    int64_t check_every = 0;      // tokens between checks for stopped rows; 0 = 1 on CPU, 8 on a GPU
    double compact_share = 0.125; // stopped rows leave once they are this share of the batch (0 = at once)
    bool share_prefixes = true;   // prefill identical prompts once
    bool time_prefill = false;    // RolloutCounts::prefill_seconds (on a GPU each admission then syncs)
};

// What the engine computed (for benchmarks and the padding metric).
struct RolloutCounts {
    int64_t prefill_rows = 0;     // prompts prefilled (after sharing)
    int64_t prefill_tokens = 0;   // their padded tokens
    int64_t decode_steps = 0;     // single-token forwards
    int64_t decode_slots = 0;     // rows x steps over those forwards
    double prefill_seconds = 0;   // admissions: prefill and cache rebuild (with time_prefill)
};

// prompts, opts, pad_id and row_seeds as generate()'s; `counts` (optional) receives the work done.
Generation generate_rollouts(GptImpl& model, const std::vector<std::vector<int32_t>>& prompts, const SamplingOptions& opts,
                             int64_t pad_id, const std::vector<uint64_t>& row_seeds,
                             const RolloutEngineOptions& engine = {}, RolloutCounts* counts = nullptr);

// Rows [r0, r1) of a generation in the layout generate() gives those rows alone: the columns of
// padding every row has (left of the prompts, right of the responses) are cut.
Generation generation_rows(const Generation& g, int64_t r0, int64_t r1);

}  // namespace rlhf
