// Hugging Face GPT-2 weights in: a directory as `save_pretrained` (or the hub) leaves it —
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
#include <string>

#include "rlhf/config/config.h"
#include "rlhf/model/gpt.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

struct ImportedGpt2 {
    ModelConfig config;  // vocab_size = the tokenizer's (GPT-2's vocabulary + <|pad|>)
    Gpt model{nullptr};  // on the CPU, fp32
    Tokenizer tokenizer;
};

// Every problem (missing or malformed config.json, another architecture, a missing or misshaped
// tensor) is an rlhf::Error naming the file and the key or tensor.
ImportedGpt2 import_hf_gpt2(const std::filesystem::path& dir);

}  // namespace rlhf
