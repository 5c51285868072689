// Named model sizes (GPT-2 family). A preset fills n_layer, n_head, n_embd and block_size unless
// the config sets them explicitly.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "rlhf/config/config.h"

namespace rlhf {

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
