// Stage 4, PPO: the SFT policy tuned against the reward model with a per-token KL penalty to the
// frozen SFT reference, a critic, GAE and optional PPO-ptx (InstructGPT step 3).
//
//   rlhf train configs/demo/ppo.yaml [--set key=value ...] [--resume]
#pragma once

#include "rlhf/config/config.h"
#include "rlhf/stages/pretrain.h"  // StageOptions

namespace rlhf {

int run_ppo(RunConfig cfg, const StageOptions& opts);

}  // namespace rlhf
