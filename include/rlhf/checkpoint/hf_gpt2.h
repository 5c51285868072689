// Hugging Face GPT-2 weights in and out: a directory as `save_pretrained` (or the hub) leaves it —
// config.json, model.safetensors, and the tokenizer files (vocab.json + merges.txt, or
// tokenizer.json) — read into our GPT.
//
// The layers already carry Hugging Face's names (transformer.h.N.attn.c_attn.weight, …); what
// differs is the layout: GPT-2's Conv1D stores weights as (in, out) where our Linear stores
// (out, in), so c_attn, c_proj and c_fc weights are transposed. The hub's files name tensors
// without the "transformer." prefix; both forms are read. The LM head is the tied embedding.
// The model gets GPT-2's shape: biases, tanh GELU (model.activation: gelu_tanh), layer-norm
// epsilon 1e-5 (ours), and the vocabulary grown from 50257 by the tokenizer's added <|pad|>
// (a new row = the mean of the others, as for chat tokens).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "rlhf/checkpoint/hf_dir.h"
#include "rlhf/config/config.h"
#include "rlhf/model/gpt.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

// Every problem (missing or malformed config.json, another architecture, a missing or misshaped
// tensor) is an rlhf::Error naming the file and the key or tensor.
ImportedHfModel import_hf_gpt2(const std::filesystem::path& dir);

// Weights out (hf_gpt2_export.cpp): `weights` are a checkpoint's model tensors by our names (a GPT,
// or a reward model with score.*), written to `dir` as transformers' GPT2LMHeadModel — or, for a
// reward model, GPT2ForSequenceClassification with one label — with config.json and the
// tokenizer's files. `dir` must not exist; it appears complete or not at all.
//   - A model without biases gets zero biases (GPT-2 has them everywhere): the same function.
//   - A reward model's normalisation is folded into score.weight, and its head's bias is stored as
//     score.bias (1,), which GPT2ForSequenceClassification has no place for: its logits plus
//     score.bias are our scores (differences and rankings need no bias).
//   - GPT-2 BPE: vocab.json, merges.txt, and tokenizer_config.json with the added tokens (<|pad|>,
//     chat markers) as special tokens, so AutoTokenizer gives our ids. SentencePiece: its
//     tokenizer.model only (transformers cannot load it as GPT-2's tokenizer).
// A post-LN (gpt1) model has no GPT-2 equivalent and is an rlhf::Error.
void export_hf_gpt2(const ModelConfig& config, const std::map<std::string, torch::Tensor>& weights,
                    const Tokenizer& tokenizer, const std::filesystem::path& dir);
// The same for a saved checkpoint (a run directory or a step directory); `weights` as
// model_weights_file (checkpoint.h) chooses a PPO run's EMA or its trained weights.
void export_checkpoint_to_hf(const std::filesystem::path& checkpoint, const std::filesystem::path& dir,
                             const std::string& weights = "auto");

// Whether a Hugging Face GPT-2 tensor is a Conv1D weight, stored (in, out) where our Linear is (out, in).
bool is_hf_conv1d_weight(const std::string& name);

}  // namespace rlhf
