// safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {…}}, then raw tensor bytes.
// Portable (Python, Rust, HF tools read it) and safe to load from strangers: no code, only data.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rlhf {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes tensors (any device; copied to CPU, made contiguous) atomically. Names must be unique.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
    std::map<std::string, torch::Tensor> tensors;  // CPU tensors owning their memory
    std::map<std::string, std::string> metadata;
};

// Reads and validates the whole file; damage of any kind is an rlhf::Error naming the file.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

}  // namespace rlhf
