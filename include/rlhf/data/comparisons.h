// Ranked comparisons for the reward model, read into one shape: a prompt (conversation turns)
// and K >= 2 responses with their ranks (0 = best; equal ranks are ties and give no pair).
//
//   format    record                                                          becomes
//   ranked    {"prompt", "responses": [best, …, worst]}                       ranks 0..K-1
//             … + "ranks": [r_1, …, r_K] (ties allowed)                       those ranks
//             responses may be {"text", "rank"} objects; the prompt may be    (OASST ranked.jsonl
//             a "history" / "messages" list of {role, text|content}           reads as it is)
//   pairwise  {"prompt", "chosen", "rejected"} (TRL)                          K = 2
//   hh        {"chosen", "rejected"}: whole Anthropic HH-RLHF dialogues        K = 2; the prompt is
//             "\n\nHuman: …\n\nAssistant: …"                                  the shared dialogue up
//                                                                             to the last Assistant:
//   pandalm   {"instruction", "input", "response1", "response2",               K = 2; the majority
//              "annotator1".."annotator3"} (0 tie, 1 or 2 better)             label; a tie: no pair
//   auto      decided per file from its first record
//
// Files may be JSONL, gzipped JSONL (*.gz) or one JSON array. Every error names file:line; with
// skip_bad a bad record is counted and left out instead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rlhf/data/sft_examples.h"  // ChatTurn

namespace rlhf {

struct RankedGroup {
    std::vector<ChatTurn> prompt;        // ends with a user turn; the responses are assistant replies
    std::vector<std::string> responses;  // K >= 2
    std::vector<int> ranks;              // K; 0 = best; equal = tie
    std::string where;                   // file:line
};

// Pairs (better, worse) of a group: every a ranked strictly above b. Ties give none.
std::vector<std::pair<int, int>> ranked_pairs(const std::vector<int>& ranks);

struct ComparisonReadOptions {
    std::string format = "auto";  // auto | ranked | pairwise | hh | pandalm
    std::string prompt_field;     // "" = "prompt"
    bool skip_bad = false;        // data.on_error: skip
};

struct ComparisonReadStats {
    int64_t groups = 0;        // groups kept
    int64_t pairs = 0;         // ranked pairs in them
    int64_t tied_records = 0;  // pandalm records whose majority label is a tie (no pair; left out)
    int64_t skipped = 0;       // bad records left out (skip_bad)
    std::string first_skip;    // the first skipped record's error, for the log
};

// Reads every file in order. Throws rlhf::Error (file:line) on the first bad record unless
// skip_bad: fewer than 2 responses, a rank list of the wrong length, all ranks tied, a dialogue
// with no Assistant turn, a damaged .gz. Always throws if no group remains. (An empty response
// is data, not an error: it is ranked like any other.)
std::vector<RankedGroup> read_comparisons(const std::vector<std::string>& files, const ComparisonReadOptions& opts,
                                          ComparisonReadStats* stats = nullptr);

// An HH-RLHF dialogue ("\n\nHuman: …\n\nAssistant: …") as turns; throws rlhf::Error(where) when
// it has no Human or no Assistant turn.
std::vector<ChatTurn> parse_hh_dialogue(const std::string& text, const std::string& where);

}  // namespace rlhf
