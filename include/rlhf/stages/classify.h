// GPT-1's task fine-tuning (stage: classify; Radford et al. 2018): a pre-trained GPT (init_from,
// either layout) or a fresh one (init_from empty: the from-scratch baseline) learns a labelled task
// through the input transformations of data/task_inputs.h, a linear head on the extract token
// (model/task_model.h) and L = task loss + task.lm_coef · LM loss (train/task_step.h).
//
//   rlhf train configs/gpt1/sst2.yaml [--set key=value ...] [--resume]
#pragma once

#include <filesystem>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/config.h"
#include "rlhf/data/task_examples.h"
#include "rlhf/model/task_model.h"
#include "rlhf/stages/pretrain.h"  // StageOptions

namespace rlhf {

int run_classify(RunConfig cfg, const StageOptions& opts);

// How the stage reads data.files: the config's task and data keys as the reader's options.
TaskReadOptions task_read_options(const RunConfig& cfg);

// For `rlhf eval --task`: a classify checkpoint's model (eval mode, on `device`) and tokenizer.
// Any other stage's checkpoint is an rlhf::Error naming it.
struct LoadedTaskModel {
    TaskModel model{nullptr};
    Tokenizer tokenizer;
    CheckpointInfo info;
};
LoadedTaskModel load_task_model(const std::filesystem::path& path, const torch::Device& device);

}  // namespace rlhf
