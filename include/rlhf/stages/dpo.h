// DPO (Rafailov et al. 2023): from an SFT checkpoint, train the policy directly on ranked
// comparisons — every ordered pair of each prompt's responses — against a frozen reference (the
// SFT weights, or dpo.reference), with no reward model and no sampling. docs/dpo.md.
//
//   rlhf train configs/demo/dpo.yaml [--set key=value ...] [--resume]
#pragma once

#include "rlhf/config/config.h"
#include "rlhf/stages/pretrain.h"  // StageOptions

namespace rlhf {

int run_dpo(RunConfig cfg, const StageOptions& opts);

}  // namespace rlhf
