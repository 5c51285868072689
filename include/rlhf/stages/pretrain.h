// Stage 1, pre-training: maximise sum_t log p(x_t | x_<t) on token shards.
//
//   rlhf train configs/pretrain/shakespeare_char.yaml [--set key=value ...] [--resume]
#pragma once

#include "rlhf/config/config.h"

namespace rlhf {

struct StageOptions {
    bool resume = false;  // continue from <out_dir>/checkpoints/latest (start fresh if there is none)
};

// Runs the stage; returns the process exit code (0 done; 128+signal after a SIGINT/SIGTERM stop,
// with a checkpoint saved). User errors are thrown as rlhf::Error.
int run_pretrain(RunConfig cfg, const StageOptions& opts);

}  // namespace rlhf
