// Generated tasks with a GOLD CHECKER, for the built-in end-to-end demo: everything the four
// stages need, written deterministically from a seed, and a function that says whether an answer
// is right — so each stage's effect can be measured, not guessed.
//
//   rlhf data synth --task ages --out data/synth/ages [--seed 1337]
//
// Task "ages": short word problems about ages, in the spirit of InstructGPT's example ("If my
// brother was half my age when I was 8, how old will he be when I am 50?"), four templates, whole
// numbers up to ~90. The right answer is one sentence ending in the number ("He will be 46.").
//
// What is written (DIR/):
//   corpus.txt     pre-training text: age facts told as little stories and worked problems in a
//                  plain "Q: … A: …" layout, always right (what the base model knows)
//   sft.jsonl      demonstrations {"prompt", "response"} by IMPERFECT labelers: some answers are
//                  wrong (an off-by-a-few number, or the wrong operation) and some sloppy (right,
//                  but padded with filler), so SFT alone plateaus below the gold answers
//   ranked.jsonl   comparisons {"prompt", "responses", "ranks"}: K = 4..9 candidate answers ranked
//                  by the gold checker — right and concise > right but verbose > wrong (wrong
//                  answers tie) > no answer
//   prompts.jsonl  held-out prompts {"prompt", "answer"}, none of them in the other files
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace rlhf {

struct SynthProblem {
    std::string question;
    int64_t answer = 0;
    std::string subject;  // how the answer sentence starts: "He will be", "She is", "I am", …
};

// The task names `rlhf data synth` knows.
const std::vector<std::string>& synth_task_names();

// One problem of `task` (throws rlhf::Error for an unknown task, naming the known ones).
SynthProblem synth_problem(const std::string& task, std::mt19937_64& rng);

// The concise right answer: "<subject> <answer>."
std::string gold_response(const SynthProblem& p);

// The gold checker: the last whole number in `response` (nullopt if none).
std::optional<int64_t> last_number(const std::string& response);
bool gold_correct(const std::string& response, int64_t answer);

struct SynthSizes {
    int64_t corpus_stories = 20000;
    int64_t worked_per_story = 2;  // right "Q: … A: …" problems in the corpus after each story
    int64_t demonstrations = 4000;
    int64_t comparisons = 2000;
    int64_t held_out = 200;
    double wrong_share = 0.3;   // demonstrations with a wrong answer
    double sloppy_share = 0.2;  // demonstrations right but padded
};

struct SynthStats {
    int64_t corpus_bytes = 0, demonstrations = 0, wrong_demonstrations = 0, comparisons = 0, pairs = 0, held_out = 0;
};

// Writes the four files into out_dir (atomically each). The same seed gives the same bytes.
SynthStats write_synth_task(const std::string& task, const std::filesystem::path& out_dir, uint64_t seed,
                            const SynthSizes& sizes = {});

}  // namespace rlhf
