#include "rlhf/checkpoint/hf_llama.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>
#include <torch/torch.h>

#include <set>

#include "rlhf/checkpoint/hf_dir.h"
#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"

namespace rlhf {

namespace {

int positive_int(const nlohmann::json& j, const char* key, const std::string& where) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0) {
        throw Error(std::string("needs a positive integer \"") + key + "\"", where + ": " + key, "");
    }
    return j[key].get<int>();
}

// The rotary settings: transformers 5.x keeps them in rope_parameters, 4.x in rope_theta and
// rope_scaling (whose type is "rope_type", or "type" in older files).
void read_rope(const nlohmann::json& j, ModelConfig& m, const std::string& where) {
    nlohmann::json params = j.value("rope_parameters", nlohmann::json());
    std::string key = "rope_parameters";
    if (params.is_null()) {
        params = j.value("rope_scaling", nlohmann::json());
        key = "rope_scaling";
        if (params.is_null()) params = nlohmann::json::object();
    }
    if (!params.is_object()) throw Error(key + " is not an object", where + ": " + key, "");
    m.rope_theta = params.value("rope_theta", j.value("rope_theta", 10000.0));
    const std::string type = params.value("rope_type", params.value("type", std::string("default")));
    if (type == "default") return;
    if (type != "llama3") {
        throw Error("rope type '" + type + "' is not supported", where + ": " + key,
                    "default and llama3 rotary positions are (model.rope_scaling)");
    }
    m.rope_scaling = RopeScaling::Llama3;
    m.rope_factor = params.value("factor", 8.0);
    m.rope_low_freq_factor = params.value("low_freq_factor", 1.0);
    m.rope_high_freq_factor = params.value("high_freq_factor", 4.0);
    m.rope_original_context = params.value("original_max_position_embeddings", 8192);
}

std::string shape_text(const torch::Tensor& t) { return fmt::format("{}", fmt::join(t.sizes(), "×")); }

std::string layer_prefix(int l) { return "model.layers." + std::to_string(l) + "."; }
std::string our_prefix(int l) { return "transformer.h." + std::to_string(l) + "."; }

// Hugging Face's tensors -> ours by name: q/k/v and gate/up stacked into one matrix each. Every
// tensor is used or refused; the model's shape checks come after.
std::map<std::string, torch::Tensor> our_tensors(const ModelConfig& m, std::map<std::string, torch::Tensor> hf,
                                                 const std::string& where) {
    std::map<std::string, torch::Tensor> ours;
    auto take = [&](const std::string& name) {
        auto it = hf.find(name);
        if (it == hf.end()) throw Error("tensor '" + name + "' is missing", where, "is config.json the one saved with these weights?");
        auto t = it->second.to(torch::kFloat32);
        hf.erase(it);
        return t;
    };
    ours["transformer.wte.weight"] = take("model.embed_tokens.weight");
    ours["transformer.ln_f.weight"] = take("model.norm.weight");
    if (!m.tie_embeddings) ours["lm_head.weight"] = take("lm_head.weight");
    else hf.erase("lm_head.weight");  // a tied head saved anyway is the embedding again
    for (int l = 0; l < m.n_layer; ++l) {
        const std::string h = layer_prefix(l), o = our_prefix(l);
        ours[o + "ln_1.weight"] = take(h + "input_layernorm.weight");
        ours[o + "ln_2.weight"] = take(h + "post_attention_layernorm.weight");
        ours[o + "attn.c_attn.weight"] = torch::cat(
            {take(h + "self_attn.q_proj.weight"), take(h + "self_attn.k_proj.weight"), take(h + "self_attn.v_proj.weight")});
        if (m.qkv_bias) {
            ours[o + "attn.c_attn.bias"] = torch::cat(
                {take(h + "self_attn.q_proj.bias"), take(h + "self_attn.k_proj.bias"), take(h + "self_attn.v_proj.bias")});
        }
        ours[o + "attn.c_proj.weight"] = take(h + "self_attn.o_proj.weight");
        if (m.qk_norm) {
            ours[o + "attn.q_norm.weight"] = take(h + "self_attn.q_norm.weight");
            ours[o + "attn.k_norm.weight"] = take(h + "self_attn.k_norm.weight");
        }
        ours[o + "mlp.c_fc.weight"] = torch::cat({take(h + "mlp.gate_proj.weight"), take(h + "mlp.up_proj.weight")});
        ours[o + "mlp.c_proj.weight"] = take(h + "mlp.down_proj.weight");
        hf.erase(h + "self_attn.rotary_emb.inv_freq");  // a buffer older transformers saved
    }
    for (const auto& [name, _] : hf) {
        if (name.rfind("score.", 0) == 0) continue;  // a sequence classifier's head: init_from takes the trunk
        throw Error("tensor '" + name + "' is not part of a " + name_of(m.arch) + " model of config.json's shape", where,
                    "is config.json the one saved with these weights?");
    }
    return ours;
}

}  // namespace

bool is_hf_llama_family(const std::string& model_type) {
    return model_type == "llama" || model_type == "qwen2" || model_type == "qwen3";
}

ModelConfig llama_config_from_hf(const nlohmann::json& j, const std::string& where) {
    const std::string type = j.value("model_type", "");
    if (!is_hf_llama_family(type)) {
        throw Error("model_type is '" + type + "'", where + ": model_type", "llama, qwen2 or qwen3 convert as model.arch: llama");
    }
    ModelConfig m;
    m.arch = ModelArch::Llama;
    m.activation = Activation::Silu;
    m.bias = false;
    m.n_layer = positive_int(j, "num_hidden_layers", where);
    m.n_head = positive_int(j, "num_attention_heads", where);
    m.n_embd = positive_int(j, "hidden_size", where);
    m.n_kv_head = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                      ? positive_int(j, "num_key_value_heads", where) : m.n_head;
    m.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? positive_int(j, "head_dim", where) : m.n_embd / m.n_head;
    m.intermediate_size = positive_int(j, "intermediate_size", where);
    m.vocab_size = positive_int(j, "vocab_size", where);
    m.block_size = positive_int(j, "max_position_embeddings", where);
    m.norm_eps = j.value("rms_norm_eps", 1e-6);
    m.tie_embeddings = j.value("tie_word_embeddings", false);
    m.qkv_bias = type == "qwen2";
    m.qk_norm = type == "qwen3";
    const std::string act = j.value("hidden_act", "silu");
    if (act != "silu") throw Error("hidden_act '" + act + "' is not supported", where + ": hidden_act", "SwiGLU with silu is");
    if (m.n_head % m.n_kv_head != 0) throw Error("num_key_value_heads does not divide num_attention_heads", where, "");
    if (m.head_dim % 2 != 0) throw Error("head_dim is odd", where + ": head_dim", "");
    // Llama's and Qwen3's attention_bias adds a bias to o_proj too; Qwen2's q/k/v biases are its own.
    if (type != "qwen2" && j.value("attention_bias", false)) {
        throw Error("attention_bias (biases on q, k, v and o) is not supported", where + ": attention_bias", "");
    }
    if (j.value("mlp_bias", false)) throw Error("mlp_bias is not supported", where + ": mlp_bias", "");
    if (j.value("use_sliding_window", false)) {
        throw Error("sliding-window attention is not supported", where + ": use_sliding_window", "");
    }
    if (j.contains("layer_types") && j["layer_types"].is_array()) {  // transformers 5: per-layer attention kinds
        for (const auto& kind : j["layer_types"]) {
            if (kind != "full_attention") throw Error("layer type " + kind.dump() + " is not supported", where + ": layer_types", "");
        }
    }
    const double partial = j.value("partial_rotary_factor", 1.0);
    if (partial != 1.0) throw Error("partial rotary embeddings are not supported", where + ": partial_rotary_factor", "");
    read_rope(j, m, where);
    return m;
}

ImportedHfModel import_hf_llama(const std::filesystem::path& dir) {
    if (!std::filesystem::is_directory(dir)) throw Error("not a directory", dir.string(), "");
    const auto config_file = (dir / "config.json").string();
    const ModelConfig hf = llama_config_from_hf(read_hf_config(dir), config_file);
    Tokenizer tokenizer = read_hf_tokenizer(dir);
    check_hf_vocabulary(hf, tokenizer, config_file);
    const auto ours = our_tensors(hf, read_hf_weights(dir), dir.string());
    Gpt model(hf);
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
        const auto it = ours.find(item.key());
        if (it == ours.end()) throw Error("tensor '" + item.key() + "' has no source", dir.string(), "");
        if (it->second.sizes() != item.value().sizes()) {
            throw Error("tensor '" + item.key() + "' has shape " + shape_text(it->second) + ", a model of config.json's " +
                            "shape needs " + shape_text(item.value()),
                        dir.string(), "is config.json the one saved with these weights?");
        }
        item.value().copy_(it->second);
    }
    return with_room_for_tokens(hf, model, std::move(tokenizer));
}

void export_hf_llama(const ModelConfig& m, const std::map<std::string, torch::Tensor>& weights, const Tokenizer& tokenizer,
                     const std::filesystem::path& dir) {
    RLHF_CHECK(m.arch == ModelArch::Llama, "model.arch", "not a llama model", "");
    if (m.qk_norm && m.qkv_bias) {
        throw Error("a model with both qk_norm and qkv_bias has no Hugging Face class (Qwen3 has the first, Qwen2 the second)",
                    "model.qkv_bias", "");
    }
    const std::string type = m.qk_norm ? "qwen3" : m.qkv_bias ? "qwen2" : "llama";
    const std::string family = type == "qwen3" ? "Qwen3" : type == "qwen2" ? "Qwen2" : "Llama";
    const bool reward = weights.count("score.weight") > 0;
    auto get = [&](const std::string& name) {
        auto it = weights.find(name);
        if (it == weights.end()) throw Error("the checkpoint has no tensor '" + name + "'", "model.safetensors", "");
        return it->second.to(torch::kFloat32).contiguous();
    };
    const int64_t q = int64_t{m.n_head} * head_width(m), kv = int64_t{kv_heads(m)} * head_width(m), I = mlp_width(m);
    NamedTensors out;
    out.emplace_back("model.embed_tokens.weight", get("transformer.wte.weight"));
    out.emplace_back("model.norm.weight", get("transformer.ln_f.weight"));
    if (!m.tie_embeddings && !reward) out.emplace_back("lm_head.weight", get("lm_head.weight"));  // a reward model has no LM head
    for (int l = 0; l < m.n_layer; ++l) {
        const std::string h = layer_prefix(l), o = our_prefix(l);
        out.emplace_back(h + "input_layernorm.weight", get(o + "ln_1.weight"));
        out.emplace_back(h + "post_attention_layernorm.weight", get(o + "ln_2.weight"));
        const auto qkv = get(o + "attn.c_attn.weight").split_with_sizes({q, kv, kv});
        out.emplace_back(h + "self_attn.q_proj.weight", qkv[0].contiguous());
        out.emplace_back(h + "self_attn.k_proj.weight", qkv[1].contiguous());
        out.emplace_back(h + "self_attn.v_proj.weight", qkv[2].contiguous());
        if (m.qkv_bias) {
            const auto b = get(o + "attn.c_attn.bias").split_with_sizes({q, kv, kv});
            out.emplace_back(h + "self_attn.q_proj.bias", b[0].contiguous());
            out.emplace_back(h + "self_attn.k_proj.bias", b[1].contiguous());
            out.emplace_back(h + "self_attn.v_proj.bias", b[2].contiguous());
        }
        out.emplace_back(h + "self_attn.o_proj.weight", get(o + "attn.c_proj.weight"));
        if (m.qk_norm) {
            out.emplace_back(h + "self_attn.q_norm.weight", get(o + "attn.q_norm.weight"));
            out.emplace_back(h + "self_attn.k_norm.weight", get(o + "attn.k_norm.weight"));
        }
        const auto gate_up = get(o + "mlp.c_fc.weight").split_with_sizes({I, I});
        out.emplace_back(h + "mlp.gate_proj.weight", gate_up[0].contiguous());
        out.emplace_back(h + "mlp.up_proj.weight", gate_up[1].contiguous());
        out.emplace_back(h + "mlp.down_proj.weight", get(o + "mlp.c_proj.weight"));
    }
    if (reward) {  // score = gain · (w·h + b) + shift, folded into one affine map (as for GPT-2)
        const auto gain = get("score.norm_gain"), shift = get("score.norm_bias");
        out.emplace_back("score.weight", (get("score.weight") * gain).reshape({1, m.n_embd}));
        out.emplace_back("score.bias", (get("score.bias") * gain + shift).reshape({1}));
    }
    // config.json in transformers 4.x's style, which 5.x reads too.
    nlohmann::json config = {
        {"model_type", type},
        {"architectures", {family + (reward ? "ForSequenceClassification" : "ForCausalLM")}},
        {"vocab_size", m.vocab_size},
        {"hidden_size", m.n_embd},
        {"intermediate_size", I},
        {"num_hidden_layers", m.n_layer},
        {"num_attention_heads", m.n_head},
        {"num_key_value_heads", kv_heads(m)},
        {"head_dim", head_width(m)},
        {"hidden_act", "silu"},
        {"max_position_embeddings", m.block_size},
        {"rms_norm_eps", m.norm_eps},
        {"rope_theta", m.rope_theta},
        {"rope_scaling", nullptr},
        {"tie_word_embeddings", m.tie_embeddings},
        {"attention_bias", false},
        {"attention_dropout", m.dropout},
        {"use_sliding_window", false},
        {"use_cache", true},
        {"initializer_range", 0.02},
        {"bos_token_id", tokenizer.bos_id()},
        {"eos_token_id", tokenizer.eos_id()},
        {"pad_token_id", tokenizer.pad_id()},
        {"torch_dtype", "float32"},
    };
    if (m.rope_scaling == RopeScaling::Llama3) {
        config["rope_scaling"] = {{"rope_type", "llama3"},
                                  {"factor", m.rope_factor},
                                  {"low_freq_factor", m.rope_low_freq_factor},
                                  {"high_freq_factor", m.rope_high_freq_factor},
                                  {"original_max_position_embeddings", m.rope_original_context}};
    }
    if (reward) {
        config["num_labels"] = 1;
        config["id2label"] = {{"0", "LABEL_0"}};
        config["label2id"] = {{"LABEL_0", 0}};
    }
    write_hf_directory(dir, out, config, tokenizer, m.block_size);
}

void export_hf_model(const ModelConfig& config, const std::map<std::string, torch::Tensor>& weights,
                     const Tokenizer& tokenizer, const std::filesystem::path& dir) {
    if (config.arch == ModelArch::Llama) export_hf_llama(config, weights, tokenizer, dir);
    else export_hf_gpt2(config, weights, tokenizer, dir);
}

ImportedHfModel import_hf_model(const std::filesystem::path& dir) {
    if (!std::filesystem::is_directory(dir)) throw Error("not a directory", dir.string(), "");
    const auto j = read_hf_config(dir);
    const std::string type = j.value("model_type", "");
    if (is_hf_llama_family(type)) return import_hf_llama(dir);
    if (type == "gpt2") return import_hf_gpt2(dir);
    throw Error("model_type is '" + type + "'", (dir / "config.json").string() + ": model_type",
                "gpt2, llama (Llama 3.x, SmolLM2), qwen2 (Qwen2, Qwen2.5) and qwen3 convert");
}

}  // namespace rlhf
