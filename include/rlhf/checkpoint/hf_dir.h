// What every Hugging Face model directory shares, whatever the architecture: config.json, the
// weights (model.safetensors, or shards named by model.safetensors.index.json), the tokenizer
// files, and writing such a directory so that it appears complete or not at all.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/config.h"
#include "rlhf/model/gpt.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

struct ImportedHfModel {
    ModelConfig config;  // vocab_size = the embedding rows (grown for <|pad|> where needed)
    Gpt model{nullptr};  // on the CPU, fp32
    Tokenizer tokenizer;
};

// Whether config.json's vocab_size has room for the tokenizer's own vocabulary (an rlhf::Error
// naming `config_file` otherwise: the files do not belong together).
void check_hf_vocabulary(const ModelConfig& hf, const Tokenizer& tokenizer, const std::string& config_file);
// The imported model with room for the tokenizer's added tokens (<|pad|>): an embedding without
// spare rows (the hub's GPT-2: 50257) grows, each new row the mean of the others; spare rows
// (ours exported, padded to a multiple of 64, Qwen's 151,936) are kept as they are.
ImportedHfModel with_room_for_tokens(const ModelConfig& hf, Gpt model, Tokenizer tokenizer);

// config.json parsed; a missing or malformed file is an rlhf::Error naming it.
nlohmann::json read_hf_config(const std::filesystem::path& dir);

// Every tensor of the model, by Hugging Face's names, as stored (any dtype). Reads
// model.safetensors, or the shards model.safetensors.index.json lists.
std::map<std::string, torch::Tensor> read_hf_weights(const std::filesystem::path& dir);

// The directory's byte-level BPE tokenizer (tokenizer.json with its own split, or vocab.json +
// merges.txt with GPT-2's) with tokenizer_config.json's added tokens at their ids.
Tokenizer read_hf_tokenizer(const std::filesystem::path& dir);

// tokenizer_config.json for our byte-level BPE tokenizer: the added tokens as special tokens at
// their ids, and no clean-up of spaces on decode (it would change text our decode returns exactly).
nlohmann::json hf_tokenizer_config(const Tokenizer& tokenizer, int block_size);

// A byte-level BPE tokenizer as a Hugging Face tokenizer.json: vocabulary, merges, its split and
// normalizer, and our added tokens as special tokens at their ids.
nlohmann::json hf_tokenizer_json(const Tokenizer& tokenizer);

// Writes config.json, model.safetensors and the tokenizer's files into `dir`, which must not
// exist; it is built beside its place and renamed, so it is complete or absent. A BPE with its
// own split (Qwen, Llama-3) also gets a tokenizer.json, which transformers' fast tokenizer reads.
void write_hf_directory(const std::filesystem::path& dir, const NamedTensors& tensors, const nlohmann::json& config,
                        const Tokenizer& tokenizer, int block_size);

}  // namespace rlhf
