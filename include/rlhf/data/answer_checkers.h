// Verifiable rewards' checkers (docs/grpo.md): a program, not a model, says whether a response's
// final answer is the gold one written beside the prompt.
//
//   ages   the demo task's gold checker (data/synth_task.h): the response's last whole number
//          equals the answer
//   gsm8k  the response's final number — the first one after its last "####" when it writes one
//          (GSM8K's own answer format), else its last number; commas dropped ("1,000" = 1000) —
//          equals the number after "####" in the answer field (or the field itself, a number)
//
// "formatted": the response gives an answer in the form the checker reads (ages: a number;
// gsm8k: "#### N"), for an optional format reward.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rlhf {

const std::vector<std::string>& answer_checker_names();  // ages, gsm8k

// The gold number of a prompt record's answer field; nullopt when it holds none the checker can
// compare with (ages: a whole number; gsm8k: a number, or text with "#### N").
std::optional<double> gold_answer(const std::string& checker, const nlohmann::json& field);

struct CheckerVerdict {
    bool correct = false;
    bool formatted = false;
};
CheckerVerdict check_answer(const std::string& checker, const std::string& response, double gold);

// The last number in `text` ("-3", "1,234", "2.5"; nullopt if none), and the first one at or after `from`.
std::optional<double> last_decimal(const std::string& text);
std::optional<double> first_decimal(const std::string& text, size_t from);

}  // namespace rlhf
