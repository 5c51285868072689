// What a training micro-batch's forward keeps for its backward, estimated from the model's shape
// (for the start-up line: a user sees before the first step whether a batch will fit). Counted
// from the tensors our forward saves (src/model/gpt.cpp, causal_attention.cpp, lora.cpp) under
// each precision and attention path; tests/model/test_activation_memory.cpp checks it against the
// memory a forward really holds. Not counted: dropout masks, the backward's own transient
// gradients (about two (rows, T, V) tensors at the LM head), and the weights and optimizer.
#pragma once

#include <cstdint>

#include "rlhf/config/config.h"

namespace rlhf {

// One micro-batch: `rows` sequences of `tokens` positions each (padded stages: the longest).
struct ActivationShape {
    int64_t rows = 0;
    int64_t tokens = 0;
    bool padded = false;     // an attention mask (padding, packing): some attention paths then
                             // keep the (rows, heads, T, T) probabilities
    bool lm_head = true;     // log-probs over the vocabulary (false: a reward model's scalar head)
};

struct ActivationEstimate {
    int64_t blocks = 0;        // bytes the transformer blocks keep after the forward (with
                               // checkpointing: each segment's input)
    int64_t rebuilt = 0;       // checkpointing: one segment's activations, rebuilt in the backward
    int64_t head = 0;          // the final norm and the (rows, T, V) log-probs
    int64_t weight_copies = 0; // bf16 autocast: the bf16 copies of the weights the matmuls keep
    int64_t after_forward() const { return blocks + head + weight_copies; }
    int64_t peak() const { return after_forward() + rebuilt; }
};

// `checkpoint_blocks`: blocks per checkpointed segment (activation_checkpoint_blocks), 0 = off.
ActivationEstimate estimate_activations(const ModelConfig& model, const ActivationShape& shape, bool bf16,
                                        int64_t checkpoint_blocks);

}  // namespace rlhf
