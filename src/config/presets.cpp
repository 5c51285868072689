#include "rlhf/config/presets.h"

#include <spdlog/fmt/fmt.h>


namespace rlhf {

namespace {

ModelConfig gpt2_shape(int n_layer, int n_head, int n_embd) {
    ModelConfig m;
    m.arch = ModelArch::Gpt2;
    m.n_layer = n_layer;
    m.n_head = n_head;
    m.n_embd = n_embd;
    m.block_size = 1024;
    m.vocab_size = kGpt2PaddedVocab;
    m.bias = true;
    m.activation = Activation::GeluTanh;  // GPT-2's layout, so that a preset model converts to and from Hugging Face's GPT-2
    return m;
}

// The Llama/Qwen decoders' switches as their config.json files set them.
struct LlamaShape {
    int n_layer, n_head, n_kv_head, n_embd, head_dim, intermediate, vocab, context;
    double rope_theta, norm_eps;
    bool qkv_bias, qk_norm;
};

ModelConfig llama_shape(const LlamaShape& s) {
    ModelConfig m;
    m.arch = ModelArch::Llama;
    m.n_layer = s.n_layer;
    m.n_head = s.n_head;
    m.n_kv_head = s.n_kv_head;
    m.n_embd = s.n_embd;
    m.head_dim = s.head_dim;
    m.intermediate_size = s.intermediate;
    m.vocab_size = s.vocab;
    m.block_size = s.context;  // max_position_embeddings; a run allocates only what it uses
    m.rope_theta = s.rope_theta;
    m.norm_eps = s.norm_eps;
    m.qkv_bias = s.qkv_bias;
    m.qk_norm = s.qk_norm;
    m.bias = false;
    m.activation = Activation::Silu;
    m.tie_embeddings = true;  // all five tie their head to the embedding
    return m;
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
    static const std::vector<ModelPreset> presets = [] {
        std::vector<ModelPreset> p = {
            {"gpt2", gpt2_shape(12, 12, 768)},
            {"gpt2-medium", gpt2_shape(24, 16, 1024)},
            {"gpt2-large", gpt2_shape(36, 20, 1280)},
            {"gpt2-xl", gpt2_shape(48, 25, 1600)},
            //                      L   nh kv  C     hd   I     V       context  theta  eps    qkv_b  qk_n
            {"smollm2-135m", llama_shape({30, 9, 3, 576, 64, 1536, 49152, 8192, 1e5, 1e-5, false, false})},
            {"smollm2-360m", llama_shape({32, 15, 5, 960, 64, 2560, 49152, 8192, 1e5, 1e-5, false, false})},
            {"qwen2.5-0.5b", llama_shape({24, 14, 2, 896, 64, 4864, 151936, 32768, 1e6, 1e-6, true, false})},
            {"qwen3-0.6b", llama_shape({28, 16, 8, 1024, 128, 3072, 151936, 40960, 1e6, 1e-6, false, true})},
            {"llama-3.2-1b", llama_shape({16, 32, 8, 2048, 64, 8192, 128256, 131072, 5e5, 1e-5, false, false})},
        };
        ModelConfig& llama = p.back().shape;  // Llama-3.2's long-context rotary scaling
        llama.rope_scaling = RopeScaling::Llama3;
        llama.rope_factor = 32;
        llama.rope_low_freq_factor = 1;
        llama.rope_high_freq_factor = 4;
        llama.rope_original_context = 8192;
        for (auto& preset : p) preset.shape.preset = preset.name;
        return p;
    }();
    return presets;
}

std::vector<std::string> preset_names() {
    std::vector<std::string> names = {"custom"};
    for (const auto& p : model_presets()) names.push_back(p.name);
    return names;
}

// One visit of every shape field with its key; `visit(key, field_of_a, field_of_b)`.
template <typename Visit>
static void for_each_shape_field(ModelConfig& a, const ModelConfig& b, Visit&& visit) {
    visit("model.arch", a.arch, b.arch);
    visit("model.n_layer", a.n_layer, b.n_layer);
    visit("model.n_head", a.n_head, b.n_head);
    visit("model.n_embd", a.n_embd, b.n_embd);
    visit("model.block_size", a.block_size, b.block_size);
    visit("model.vocab_size", a.vocab_size, b.vocab_size);
    visit("model.bias", a.bias, b.bias);
    visit("model.activation", a.activation, b.activation);
    visit("model.n_kv_head", a.n_kv_head, b.n_kv_head);
    visit("model.head_dim", a.head_dim, b.head_dim);
    visit("model.intermediate_size", a.intermediate_size, b.intermediate_size);
    visit("model.norm_eps", a.norm_eps, b.norm_eps);
    visit("model.rope_theta", a.rope_theta, b.rope_theta);
    visit("model.rope_scaling", a.rope_scaling, b.rope_scaling);
    visit("model.rope_factor", a.rope_factor, b.rope_factor);
    visit("model.rope_low_freq_factor", a.rope_low_freq_factor, b.rope_low_freq_factor);
    visit("model.rope_high_freq_factor", a.rope_high_freq_factor, b.rope_high_freq_factor);
    visit("model.rope_original_context", a.rope_original_context, b.rope_original_context);
    visit("model.qkv_bias", a.qkv_bias, b.qkv_bias);
    visit("model.qk_norm", a.qk_norm, b.qk_norm);
    visit("model.tie_embeddings", a.tie_embeddings, b.tie_embeddings);
}

bool apply_model_preset(ModelConfig& cfg, const std::set<std::string>& explicit_keys) {
    if (cfg.preset == "custom") return true;
    for (const auto& p : model_presets()) {
        if (p.name != cfg.preset) continue;
        for_each_shape_field(cfg, p.shape, [&](const char* key, auto& field, const auto& preset_value) {
            if (!explicit_keys.count(key)) field = preset_value;
        });
        return true;
    }
    return false;
}

std::vector<std::pair<std::string, std::string>> model_shape_keys(const ModelConfig& cfg) {
    std::vector<std::pair<std::string, std::string>> keys;
    ModelConfig copy = cfg;
    for_each_shape_field(copy, cfg, [&](const char* key, auto& field, const auto&) {
        keys.emplace_back(key, fmt::format("{}", field));
    });
    return keys;
}

int kv_heads(const ModelConfig& cfg) { return cfg.n_kv_head > 0 ? cfg.n_kv_head : cfg.n_head; }
int head_width(const ModelConfig& cfg) { return cfg.head_dim > 0 ? cfg.head_dim : cfg.n_embd / cfg.n_head; }
int mlp_width(const ModelConfig& cfg) { return cfg.intermediate_size > 0 ? cfg.intermediate_size : 4 * cfg.n_embd; }

}  // namespace rlhf
