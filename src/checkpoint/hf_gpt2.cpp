#include "rlhf/checkpoint/hf_gpt2.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>

#include "rlhf/checkpoint/hf_dir.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"

namespace rlhf {

namespace {

// config.json -> our model shape; anything we cannot run the same way is an error naming the key.
ModelConfig model_config_of(const nlohmann::json& j, const std::filesystem::path& file) {
    const std::string where = file.string();
    auto get_int = [&](const char* key) -> int {
        if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0) {
            throw Error(std::string("needs a positive integer \"") + key + "\"", where, "");
        }
        return j[key].get<int>();
    };
    const std::string model_type = j.value("model_type", "");
    if (model_type != "gpt2") {
        throw Error("model_type is '" + model_type + "', not 'gpt2'", where + ": model_type",
                    "only GPT-2 (GPT2LMHeadModel) checkpoints convert");
    }
    const std::string act = j.value("activation_function", "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh" && act != "gelu") {
        throw Error("activation_function '" + act + "' is not supported", where + ": activation_function",
                    "gelu_new / gelu_pytorch_tanh (tanh GELU) or gelu");
    }
    const double eps = j.value("layer_norm_epsilon", 1e-5);
    if (std::abs(eps - 1e-5) > 1e-12) {
        throw Error("layer_norm_epsilon " + std::to_string(eps) + " is not GPT-2's 1e-5 (the only one we run)",
                    where + ": layer_norm_epsilon", "");
    }
    ModelConfig m;
    m.arch = ModelArch::Gpt2;
    m.n_layer = get_int("n_layer");
    m.n_head = get_int("n_head");
    m.n_embd = get_int("n_embd");
    m.block_size = get_int("n_positions");
    m.vocab_size = get_int("vocab_size");
    m.bias = true;
    m.activation = act == "gelu" ? Activation::Gelu : Activation::GeluTanh;
    m.dropout = 0.0;
    if (j.contains("n_inner") && !j["n_inner"].is_null() && j["n_inner"].get<int64_t>() != 4 * m.n_embd) {
        throw Error("n_inner is not 4 × n_embd", where + ": n_inner", "");
    }
    if (m.n_embd % m.n_head != 0) throw Error("n_embd is not divisible by n_head", where, "");
    if (!j.value("tie_word_embeddings", true)) {
        throw Error("an untied LM head is not supported (ours is the embedding)", where + ": tie_word_embeddings", "");
    }
    if (!j.value("scale_attn_weights", true)) throw Error("unscaled attention is not supported", where + ": scale_attn_weights", "");
    for (const char* key : {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"}) {
        if (j.value(key, false)) throw Error(std::string(key) + " is not supported", where + ": " + key, "");
    }
    return m;
}

// Hugging Face's tensor name -> ours ("" = not a weight we hold), and whether it is a Conv1D weight.
bool ends_with(const std::string& name, const std::string& suffix) {
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::pair<std::string, bool> our_name(std::string name) {
    // A sequence-classification head (score.*, a reward model's) is not a GPT's: the trunk is
    // what init_from takes.
    if (name.rfind("score.", 0) == 0) return {"", false};
    if (name.rfind("transformer.", 0) != 0) name = "transformer." + name;
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias")) return {"", false};  // causal masks
    if (name == "transformer.lm_head.weight") return {"", false};  // tied to wte
    return {name, is_hf_conv1d_weight(name)};
}

}  // namespace

bool is_hf_conv1d_weight(const std::string& name) {
    for (const char* suffix : {".c_attn.weight", ".c_proj.weight", ".c_fc.weight"}) {
        const std::string s = suffix;
        if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) return true;
    }
    return false;
}

ImportedHfModel import_hf_gpt2(const std::filesystem::path& dir) {
    if (!std::filesystem::is_directory(dir)) throw Error("not a directory", dir.string(), "");
    ModelConfig hf = model_config_of(read_hf_config(dir), dir / "config.json");
    Tokenizer tokenizer = read_hf_tokenizer(dir);
    check_hf_vocabulary(hf, tokenizer, (dir / "config.json").string());
    const auto file = dir / "model.safetensors";
    const auto tensors = read_hf_weights(dir);

    Gpt model(hf);
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> params;
    for (const auto& item : model->named_parameters()) params.emplace(item.key(), item.value());
    std::set<std::string> filled;
    for (const auto& [hf_name, tensor] : tensors) {
        const auto [name, conv1d] = our_name(hf_name);
        if (name.empty()) continue;
        auto it = params.find(name);
        if (it == params.end()) {
            throw Error("tensor '" + hf_name + "' is not part of a GPT-2 of this shape", file.string(),
                        "is config.json the one saved with these weights?");
        }
        auto value = tensor.to(torch::kFloat32);
        if (conv1d) value = value.t();  // Conv1D (in, out) -> Linear (out, in)
        if (value.sizes() != it->second.sizes()) {
            throw Error("tensor '" + hf_name + "' has shape " + fmt::format("{}", fmt::join(tensor.sizes(), "×")) +
                            ", a GPT-2 of config.json's shape needs " +
                            fmt::format("{}", fmt::join(it->second.sizes(), "×")) + (conv1d ? " (transposed)" : ""),
                        file.string(), "is config.json the one saved with these weights?");
        }
        it->second.copy_(value);
        filled.insert(name);
    }
    for (const auto& [name, p] : params) {
        if (!filled.count(name)) throw Error("tensor '" + name + "' is missing", file.string(), "");
    }
    return with_room_for_tokens(hf, model, std::move(tokenizer));
}

}  // namespace rlhf
