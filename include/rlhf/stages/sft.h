// Stage 2, supervised fine-tuning: from a pre-trained checkpoint, maximise log p(reply | prompt)
// on demonstrations, with the loss on reply tokens (and their EOS) only.
//
//   rlhf train configs/sft/gsm8k.yaml [--set key=value ...] [--resume]
#pragma once

#include "rlhf/config/config.h"
#include "rlhf/stages/pretrain.h"  // StageOptions

namespace rlhf {

int run_sft(RunConfig cfg, const StageOptions& opts);

}  // namespace rlhf
