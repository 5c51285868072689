// Named model shapes. A preset fills every model key the config does not set itself:
//   - GPT-2 family (gpt2 … gpt2-xl): n_layer, n_head, n_embd, block_size and GPT-2's layout — arch
//     gpt2 (pre-LN), biases, tanh GELU, vocab_size 50304.
//   - Llama/Qwen family (smollm2-135m … llama-3.2-1b): the released models' config.json shapes,
//     at random init (benchmarks, from-scratch runs); `rlhf convert --from-hf` brings their weights.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "rlhf/config/config.h"

namespace rlhf {

// GPT-2's 50257 ids, <|pad|> and the chat markers, padded to a multiple of 64 as nanoGPT does
// (faster matmuls); the rows beyond the tokenizer are never sampled (SamplingOptions::vocab_limit).
inline constexpr int kGpt2PaddedVocab = 50304;

struct ModelPreset {
    std::string name;
    ModelConfig shape;  // every key the preset sets (preset itself = name)
};

// gpt2 (124M), gpt2-medium (350M), gpt2-large (774M), gpt2-xl (1558M) — sizes of Radford et al.
// 2019 as released by OpenAI (counted with vocab 50257, block 1024, biases on); then smollm2-135m,
// smollm2-360m, qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b as their config.json files give them.
const std::vector<ModelPreset>& model_presets();
std::vector<std::string> preset_names();  // "custom" first, then model_presets()' names

// Applies cfg.preset to cfg unless it is "custom"; `explicit_keys` holds the model.* keys the user
// set, which win over the preset. Returns false for an unknown preset name.
bool apply_model_preset(ModelConfig& cfg, const std::set<std::string>& explicit_keys);

// Every key that fixes a model's weights or function ("model.n_layer" -> "12", …), dropout and
// the preset's name excepted: what a checkpoint and a config must agree on.
std::vector<std::pair<std::string, std::string>> model_shape_keys(const ModelConfig& cfg);

// The values the llama-only keys take when unused, for the other archs' checks.
int kv_heads(const ModelConfig& cfg);          // n_kv_head, or n_head when 0
int head_width(const ModelConfig& cfg);        // head_dim, or n_embd / n_head when 0
int mlp_width(const ModelConfig& cfg);         // intermediate_size, or 4 * n_embd when 0

}  // namespace rlhf
