// Hugging Face's Llama-family decoders in and out: LlamaForCausalLM (Llama 3.x, SmolLM2),
// Qwen2ForCausalLM (Qwen2, Qwen2.5) and Qwen3ForCausalLM, read into our GPT with model.arch:
// llama (model/gpt.h), and written back as the same classes.
//
//   Hugging Face                                  ours
//   model.embed_tokens.weight                     transformer.wte.weight
//   model.layers.N.input_layernorm.weight         transformer.h.N.ln_1.weight
//   model.layers.N.self_attn.{q,k,v}_proj.*       transformer.h.N.attn.c_attn.* (rows [q | k | v])
//   model.layers.N.self_attn.o_proj.weight        transformer.h.N.attn.c_proj.weight
//   model.layers.N.self_attn.{q,k}_norm.weight    transformer.h.N.attn.{q,k}_norm.weight (Qwen3)
//   model.layers.N.post_attention_layernorm.weight transformer.h.N.ln_2.weight
//   model.layers.N.mlp.{gate,up}_proj.weight      transformer.h.N.mlp.c_fc.weight (rows [gate | up])
//   model.layers.N.mlp.down_proj.weight           transformer.h.N.mlp.c_proj.weight
//   model.norm.weight                             transformer.ln_f.weight
//   lm_head.weight                                lm_head.weight (untied models only)
//
// config.json is read in both styles transformers writes: 4.x (rope_theta and rope_scaling at the
// top, torch_dtype) and 5.x (rope_parameters, dtype). Weights may be F32, F16 or BF16, in one
// file or in shards; they load as fp32. An embedding with more rows than the tokenizer (Qwen pads
// to 151,936) keeps them.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/hf_gpt2.h"

namespace rlhf {

// Whether config.json's model_type is one import_hf_llama reads (llama, qwen2, qwen3).
bool is_hf_llama_family(const std::string& model_type);

// config.json -> our model config; what we cannot compute the same way (another rope type, a
// sliding window, biases on o_proj or the MLP) is an rlhf::Error naming the key.
ModelConfig llama_config_from_hf(const nlohmann::json& j, const std::string& where);

// The directory (config.json, weights, a byte-level BPE tokenizer) as our model, fp32 on the CPU.
ImportedHfModel import_hf_llama(const std::filesystem::path& dir);

// Our tensors by our names -> a directory transformers loads as Qwen3ForCausalLM (model.qk_norm),
// Qwen2ForCausalLM (model.qkv_bias) or LlamaForCausalLM; a reward model (score.*) as the
// ...ForSequenceClassification class with one label, score.bias stored beside as for GPT-2.
// `dir` must not exist; it appears complete or not at all.
void export_hf_llama(const ModelConfig& config, const std::map<std::string, torch::Tensor>& weights,
                     const Tokenizer& tokenizer, const std::filesystem::path& dir);

// Either family by config.json's model_type (gpt2, llama, qwen2, qwen3), and out by model.arch.
ImportedHfModel import_hf_model(const std::filesystem::path& dir);
void export_hf_model(const ModelConfig& config, const std::map<std::string, torch::Tensor>& weights,
                     const Tokenizer& tokenizer, const std::filesystem::path& dir);

}  // namespace rlhf
