// Pieces every stage driver needs before its loop: the run directory, the tokenizer, and (for
// pre-training) the token shards — each made once and reused by later runs and resumes.
#pragma once

#include <filesystem>

#include "rlhf/config/config.h"
#include "rlhf/core/distributed.h"
#include "rlhf/core/runtime.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

// This process's runtime: logging, threads, seed and device, and the process group when torchrun
// or `rlhf launch` started it (RANK, WORLD_SIZE, …): then "cuda" means cuda:LOCAL_RANK, threads 0
// shares the cores among the node's ranks, and train.grad_accum_steps must divide by the world size.
// The process group is distributed() from then on.
Runtime init_stage_runtime(const RunConfig& cfg);

// Creates out_dir, starts its train.log, and refuses to overwrite a run that has checkpoints
// unless resuming. Returns the newest checkpoint when resuming (empty path if none).
std::filesystem::path open_run_dir(const RunConfig& cfg, bool resume);

// tokenizer.path if set; else the tokenizer stored with data.shards; else one trained from
// data.text into <out_dir>/tokenizer (reused while the settings and each input's path, size
// and modification time are unchanged).
Tokenizer resolve_tokenizer(const RunConfig& cfg);

// data.shards if set; else data.text tokenized into <out_dir>/data (reused while the inputs
// (path, size, modification time), val_fraction and tokenizer are unchanged). Returns the
// shard directory.
std::filesystem::path resolve_token_shards(const RunConfig& cfg, const Tokenizer& tokenizer);

// model.vocab_size = 0 becomes the tokenizer's size; a smaller explicit size is an error.
void resolve_vocab_size(RunConfig& cfg, const Tokenizer& tokenizer);

}  // namespace rlhf
