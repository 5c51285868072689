// Stage 3, the reward model: from an SFT (or pre-trained) checkpoint, learn a scalar r(x, y) from
// ranked comparisons, K responses per prompt, all C(K,2) pairs of a prompt in one batch element
// (InstructGPT eq. 1); then normalise it on a reference set.
//
//   rlhf train configs/reward/oasst_ranked.yaml [--set key=value ...] [--resume]
#pragma once

#include "rlhf/config/config.h"
#include "rlhf/stages/pretrain.h"  // StageOptions

namespace rlhf {

int run_reward(RunConfig cfg, const StageOptions& opts);

}  // namespace rlhf
