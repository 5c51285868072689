// Flags shared by `rlhf generate` and `rlhf chat`: the checkpoint, the runtime and how to sample.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/model/generate.h"

namespace rlhf::cli {

struct SamplingFlags {
    std::string checkpoint;
    std::string weights = "auto";  // checkpoint.h: model_weights_file
    int64_t max_new_tokens = 0;  // 0 = min(256, block_size / 2)
    double temperature = 0.8;
    int64_t top_k = 200;
    double top_p = 1.0;
    uint64_t seed = 1337;
    bool no_cache = false;
    bool truncate_left = false;
    std::string device = "cpu";
    std::string dtype = "float32";
    int threads = 0;
};

void add_sampling_flags(CLI::App& cmd, SamplingFlags& flags);
// --weights auto | ema | raw: which weights of a checkpoint are the model (checkpoint.h).
void add_weights_flag(CLI::App& cmd, std::string& weights);

// Sets up threads/device, loads the checkpoint, and turns the flags into SamplingOptions
// (stop at EOS, never sample ids beyond the tokenizer). Validates the sampling values.
struct SamplingSession {
    LoadedModel loaded;
    SamplingOptions options;
    torch::Generator generator;
};
SamplingSession open_sampling_session(const SamplingFlags& flags);

}  // namespace rlhf::cli
