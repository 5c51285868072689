// Where a fine-tuning stage (sft, reward; ppo's policy) starts: init_from's checkpoint for a
// fresh run, or the run's own newest checkpoint when resuming. The tokenizer travels with the
// checkpoint, the model shape is the checkpoint's, and the chat format (chat.template) is set
// here, once for every stage; our format's role tokens are added with the embedding grown to match.
#pragma once

#include <filesystem>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/config.h"
#include "rlhf/model/gpt.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

struct StartPoint {
    std::filesystem::path dir;  // the step directory the weights come from
    CheckpointInfo info;        // its config and state
    Tokenizer tokenizer;        // the checkpoint's, in the run's chat format (with our chat tokens for rlhf)
    Gpt trunk{nullptr};         // its GPT weights (a reward model's head is not part of it), on CPU
    // The checkpoints this run descends from, newest first, for state.json's stage_state:
    // {"checkpoint": dir, "stage": …, "step": …, "from": <that checkpoint's own lineage>}.
    nlohmann::json lineage;
    // model.lora: the trunk's base weights (init_from's, or a resumed run's own base); only the
    // adapters train (the rest has requires_grad off), and save_stage_checkpoint stores them with it.
    LoraBase lora_base;
};

// Errors (one clear line each) when init_from is missing, tokenizer.path names another tokenizer,
// or a model shape key in the config contradicts the checkpoint. Sets cfg.model to the
// checkpoint's shape (keeping cfg.model.dropout and cfg.model.lora) with the grown vocabulary.
// A fresh run takes init_from's model as it is (a LoRA checkpoint's adapters merged), with
// fresh adapters of its own when model.lora asks for them.
StartPoint load_start_point(RunConfig& cfg, const std::filesystem::path& resume_dir);

// Adds `tokens` to start.tokenizer (those it has are kept once) and grows the trunk's embedding to
// match; a new row starts as the mean of the base vocabulary's rows. Updates cfg.model.vocab_size.
void add_tokens(StartPoint& start, RunConfig& cfg, const std::vector<std::string>& tokens);

// A fresh start, no checkpoint (classify from scratch): tokenizer.path's tokenizer with `tokens`
// added, and a new GPT of cfg.model's shape (model.vocab_size 0 = the tokenizer's size).
StartPoint fresh_start_point(RunConfig& cfg, const std::vector<std::string>& tokens);

}  // namespace rlhf
