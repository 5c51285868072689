// Generated tasks with a GOLD CHECKER, for the built-in end-to-end demo: everything the four
// stages need, written deterministically from a seed, and a function that says whether an answer
// is right — so each stage's effect can be measured, not guessed.
//
//   rlhf data synth --task ages --out data/synth/ages [--seed 1337]
//
// Task "ages": short word problems about ages, in the spirit of InstructGPT's example ("If my
// brother was half my age when I was 8, how old will he be when I am 50?"), four templates, ages
// up to 25 and steps of 1..5. The right answer is one sentence ending in the number ("My brother will be 16.").
//
// What is written (DIR/):
//   corpus.txt     pre-training text: age facts told as statements with their conclusion ("I am 12.
//                  My sister is 15."), always right; no questions (what the base model knows)
//   sft.jsonl      demonstrations {"prompt", "response"} by IMPERFECT labelers: some give a wrong
//                  number (mostly a typical mistake: a step forgotten, the wrong direction), some
//                  "I do not know.", some pad a right answer, so SFT alone plateaus
//   ranked.jsonl   comparisons {"prompt", "responses", "ranks"}: K = 4..9 distinct answers ranked
//                  by the gold checker — right and concise > right but padded > wrong (wrong
//                  answers tie) > no answer
//   train_prompts.jsonl  the demonstrations' questions with their answers {"prompt", "answer"}:
//                  what RL on the gold checker trains on (ppo.reward: checker:ages)
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
    std::string subject;    // how the answer sentence starts: "My brother will be", "My sister is", "Anna is"
    std::string statement;  // the same fact told as a story sentence, answer included (the corpus)
    std::vector<int64_t> mistakes;  // typical wrong answers: a step forgotten, the wrong direction
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
    int64_t facts_per_story = 3;  // statements per corpus paragraph
    int64_t demonstrations = 4000;
    int64_t comparisons = 2000;
    int64_t held_out = 200;
    double wrong_share = 0.3;       // demonstrations with a wrong number (a typical mistake)
    double no_answer_share = 0.15;  // demonstrations that say "I do not know."
    double sloppy_share = 0.15;     // demonstrations right but padded
};

struct SynthStats {
    int64_t corpus_bytes = 0, demonstrations = 0, comparisons = 0, pairs = 0, held_out = 0;
    int64_t wrong_demonstrations = 0;  // a wrong number or no answer
};

// Writes the four files into out_dir (atomically each). The same seed gives the same bytes.
SynthStats write_synth_task(const std::string& task, const std::filesystem::path& out_dir, uint64_t seed,
                            const SynthSizes& sizes = {});

}  // namespace rlhf
