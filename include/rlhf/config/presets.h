// Named model sizes (GPT-2 family). A preset fills n_layer, n_head, n_embd and block_size, and
// GPT-2's layout — arch gpt2 (pre-LN), biases, tanh GELU, vocab_size 50304 — unless the config
// sets them explicitly.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "rlhf/config/config.h"

namespace rlhf {

// GPT-2's 50257 ids, <|pad|> and the chat markers, padded to a multiple of 64 as nanoGPT does
// (faster matmuls); the rows beyond the tokenizer are never sampled (SamplingOptions::vocab_limit).
inline constexpr int kGpt2PaddedVocab = 50304;

struct ModelPreset {
    std::string name;
    int n_layer, n_head, n_embd, block_size;
};

// gpt2 (124M), gpt2-medium (350M), gpt2-large (774M), gpt2-xl (1558M) — sizes of Radford et al.
// 2019 as released by OpenAI (counted with vocab 50257, block 1024, biases on).
const std::vector<ModelPreset>& model_presets();

// Applies cfg.preset to cfg unless it is "custom"; `explicit_keys` holds the model.* keys the user
// set, which win over the preset. Returns false for an unknown preset name.
bool apply_model_preset(ModelConfig& cfg, const std::set<std::string>& explicit_keys);

}  // namespace rlhf
