#include "rlhf/config/presets.h"

namespace rlhf {

const std::vector<ModelPreset>& model_presets() {
    static const std::vector<ModelPreset> presets = {
        {"gpt2", 12, 12, 768, 1024},
        {"gpt2-medium", 24, 16, 1024, 1024},
        {"gpt2-large", 36, 20, 1280, 1024},
        {"gpt2-xl", 48, 25, 1600, 1024},
    };
    return presets;
}

bool apply_model_preset(ModelConfig& cfg, const std::set<std::string>& explicit_keys) {
    if (cfg.preset == "custom") return true;
    for (const auto& p : model_presets()) {
        if (p.name != cfg.preset) continue;
        if (!explicit_keys.count("model.n_layer")) cfg.n_layer = p.n_layer;
        if (!explicit_keys.count("model.n_head")) cfg.n_head = p.n_head;
        if (!explicit_keys.count("model.n_embd")) cfg.n_embd = p.n_embd;
        if (!explicit_keys.count("model.block_size")) cfg.block_size = p.block_size;
        // GPT-2's layout, so that a preset model converts to and from Hugging Face's GPT-2.
        if (!explicit_keys.count("model.arch")) cfg.arch = "gpt2";
        if (!explicit_keys.count("model.bias")) cfg.bias = true;
        if (!explicit_keys.count("model.activation")) cfg.activation = "gelu_tanh";
        if (!explicit_keys.count("model.vocab_size")) cfg.vocab_size = kGpt2PaddedVocab;
        return true;
    }
    return false;
}

}  // namespace rlhf
