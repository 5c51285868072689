// Weights out: a checkpoint as a directory transformers' from_pretrained loads (see hf_gpt2.h).
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/hf_dir.h"
#include "rlhf/checkpoint/hf_gpt2.h"
#include "rlhf/checkpoint/hf_llama.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"

namespace rlhf {

namespace {

bool is_reward_model(const std::map<std::string, torch::Tensor>& weights) { return weights.count("score.weight") > 0; }

// GPT2Config as transformers writes it, with the fields that change what the model computes.
nlohmann::json hf_config(const ModelConfig& m, const Tokenizer& tokenizer, bool reward) {
    nlohmann::json j = {
        {"model_type", "gpt2"},
        {"architectures", {reward ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel"}},
        {"vocab_size", m.vocab_size},
        {"n_positions", m.block_size},
        {"n_embd", m.n_embd},
        {"n_layer", m.n_layer},
        {"n_head", m.n_head},
        {"n_inner", nullptr},  // 4 × n_embd
        // transformers' "gelu" is the exact (erf) GELU; "gelu_new" is GPT-2's tanh approximation.
        {"activation_function", m.activation == Activation::GeluTanh ? "gelu_new" : "gelu"},
        {"layer_norm_epsilon", 1e-5},
        {"resid_pdrop", m.dropout},
        {"embd_pdrop", m.dropout},
        {"attn_pdrop", m.dropout},
        {"initializer_range", 0.02},
        {"scale_attn_weights", true},
        {"scale_attn_by_inverse_layer_idx", false},
        {"reorder_and_upcast_attn", false},
        {"tie_word_embeddings", true},
        {"use_cache", true},
        {"bos_token_id", tokenizer.bos_id()},
        {"eos_token_id", tokenizer.eos_id()},
        {"pad_token_id", tokenizer.pad_id()},  // GPT2ForSequenceClassification reads the last non-pad token
        {"dtype", "float32"},
    };
    if (reward) {
        j["num_labels"] = 1;
        j["id2label"] = {{"0", "LABEL_0"}};
        j["label2id"] = {{"LABEL_0", 0}};
    }
    return j;
}

// Our tensors -> transformers' (Conv1D weights transposed, zero biases where ours has none, a
// reward head with its normalisation folded in).
NamedTensors hf_tensors(const ModelConfig& m, const std::map<std::string, torch::Tensor>& weights) {
    if (!weights.count("transformer.wte.weight")) {
        throw Error("the checkpoint has no tensor 'transformer.wte.weight'", "model.safetensors", "");
    }
    NamedTensors out;
    for (const auto& [name, tensor] : weights) {
        if (name.rfind("transformer.", 0) != 0) continue;  // score.* below
        auto value = tensor.to(torch::kFloat32);
        out.emplace_back(name, is_hf_conv1d_weight(name) ? value.t().contiguous() : value);
    }
    if (!m.bias) {
        const int64_t C = m.n_embd;
        auto zeros = [](int64_t n) { return torch::zeros({n}); };
        out.emplace_back("transformer.ln_f.bias", zeros(C));
        for (int l = 0; l < m.n_layer; ++l) {
            const std::string p = "transformer.h." + std::to_string(l) + ".";
            out.emplace_back(p + "ln_1.bias", zeros(C));
            out.emplace_back(p + "ln_2.bias", zeros(C));
            out.emplace_back(p + "attn.c_attn.bias", zeros(3 * C));
            out.emplace_back(p + "attn.c_proj.bias", zeros(C));
            out.emplace_back(p + "mlp.c_fc.bias", zeros(4 * C));
            out.emplace_back(p + "mlp.c_proj.bias", zeros(C));
        }
    }
    if (is_reward_model(weights)) {
        // score = gain · (w·h + b) + bias: fold into one affine map.
        auto f32 = [&](const char* name) { return weights.at(name).to(torch::kFloat32); };
        const auto gain = f32("score.norm_gain"), shift = f32("score.norm_bias");
        out.emplace_back("score.weight", (f32("score.weight") * gain).reshape({1, m.n_embd}));
        out.emplace_back("score.bias", (f32("score.bias") * gain + shift).reshape({1}));
    }
    return out;
}

}  // namespace

void export_hf_gpt2(const ModelConfig& config, const std::map<std::string, torch::Tensor>& weights,
                    const Tokenizer& tokenizer, const std::filesystem::path& dir) {
    if (config.arch != ModelArch::Gpt2) {
        throw Error("a " + name_of(config.arch) + " (post-LN) model has no Hugging Face GPT-2 equivalent", "model.arch",
                    "only pre-LN (gpt2) and llama models export");
    }
    const bool reward = is_reward_model(weights);
    const NamedTensors tensors = hf_tensors(config, weights);  // every check before anything is written
    write_hf_directory(dir, tensors, hf_config(config, tokenizer, reward), tokenizer, config.block_size);
}

void export_checkpoint_to_hf(const std::filesystem::path& checkpoint, const std::filesystem::path& dir,
                             const std::string& weights) {
    const auto step_dir = resolve_checkpoint(checkpoint);
    const CheckpointInfo info = read_checkpoint_info(step_dir);
    const Tokenizer tokenizer = load_checkpoint_tokenizer(step_dir);
    const auto weights_file = model_weights_file(step_dir, weights);
    // A LoRA checkpoint's base read in, and its adapters merged: transformers' classes have none.
    export_hf_model(info.config.model, read_model_tensors(weights_file, /*merge_adapters=*/true), tokenizer, dir);
    if (weights_file.filename() == kEmaFile) spdlog::info("exported the EMA weights ({})", weights_file.string());
    if (tokenizer.kind() != Tokenizer::Kind::gpt2_bpe) {
        spdlog::warn("{}: a SentencePiece tokenizer is written as tokenizer.model, which sentencepiece reads; "
                     "transformers' AutoTokenizer does not load it as GPT-2's", dir.string());
    }
}

}  // namespace rlhf
