// PPO's prompts: JSONL records {"prompt": …} (data.fields.prompt renames the key), rendered in the
// chat format up to the assistant's turn, and split into the prompts PPO trains on and the fixed
// ones its greedy evaluation answers. With a checker reward (data/answer_checkers.h) every record
// also carries its gold answer ({"prompt": …, "answer": 16}; data.fields.answer renames the key).
//
// A prompt that is an HH-RLHF dialogue ("\n\nHuman: …\n\nAssistant: …\n\nHuman: …\n\nAssistant:")
// keeps its turns; anything else is one user turn. A prompt longer than the context leaves
// beside the response is left out and counted. A bad record's error names its file:line; an
// error about the whole set names the first file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rlhf/data/sft_examples.h"  // ChatTurn
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

struct PromptSetOptions {
    std::string field = "prompt";  // the record's key
    bool skip_bad = false;         // data.on_error: skip
    int64_t max_prompt_tokens = 0; // block_size - max_new_tokens: the room a prompt has
    std::string room_explained;    // how max_prompt_tokens came about, for the error when none fits
    double val_fraction = 0.0;     // share of prompts held out (data.val_fraction)
    uint64_t split_seed = 0;       // which ones
    int64_t eval_prompts = 0;      // at most this many of the held-out ones evaluate; the rest train
    std::string checker;           // "" = no answers read; else a checker name: every record needs its answer
    std::string answer_field = "answer";
};

struct PromptSet {
    std::vector<std::vector<int32_t>> train, eval;  // rendered ids, each ending in <|assistant|>
    std::vector<std::string> eval_text;             // the last user turn of each eval prompt, for samples
    std::vector<double> train_answers, eval_answers;  // the gold answers, beside train and eval (with a checker)
    int64_t read = 0, too_long = 0, skipped = 0;
    int64_t held_out_training = 0;  // held out, but beyond eval_prompts: they train rather than idle
};

// The turns of one prompt text; `where` (file:line) names it in errors.
std::vector<ChatTurn> prompt_turns(const std::string& text, const std::string& where);

// Reads every file in order. Throws rlhf::Error when no prompt is left for training.
PromptSet read_prompt_set(const std::vector<std::string>& files, const PromptSetOptions& opts, const Tokenizer& tokenizer);

}  // namespace rlhf
