#include "rlhf/data/prompt_set.h"

#include <spdlog/spdlog.h>

#include <cctype>

#include "rlhf/core/error.h"
#include "rlhf/data/answer_checkers.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/comparisons.h"  // parse_hh_dialogue
#include "rlhf/data/epoch_sampler.h"  // held_out_items
#include "rlhf/data/jsonl.h"

namespace rlhf {

std::vector<ChatTurn> prompt_turns(const std::string& text, const std::string& where) {
    if (text.find("Human:") == std::string::npos) return {{"user", text}};
    std::string dialogue = text;
    const std::string tail = "\n\nAssistant:";
    while (!dialogue.empty() && std::isspace(static_cast<unsigned char>(dialogue.back()))) dialogue.pop_back();
    if (dialogue.size() >= tail.size() && dialogue.compare(dialogue.size() - tail.size(), tail.size(), tail) == 0) {
        dialogue.resize(dialogue.size() - tail.size());
    }
    auto turns = parse_hh_dialogue(dialogue, where);
    if (turns.back().role != "user") throw Error("the dialogue does not end with a Human turn", where, "");
    return turns;
}

namespace {
// The record's gold answer, as the checker compares it.
double read_answer(const nlohmann::json& r, const PromptSetOptions& opts, const std::string& where) {
    const std::string& key = opts.answer_field;
    if (!r.contains(key)) {
        throw Error("no \"" + key + "\" field: the checker " + opts.checker + " needs each prompt's gold answer", where,
                    "add it ({\"prompt\": ..., \"" + key + "\": ...}) or name the field with data.fields.answer");
    }
    const auto gold = gold_answer(opts.checker, r[key]);
    if (!gold) {
        throw Error("the \"" + key + "\" field (" + r[key].dump().substr(0, 60) + ") holds no answer the checker " +
                        opts.checker + " can compare with",
                    where, opts.checker == "ages" ? "a whole number" : "a number, or a solution ending in '#### N'");
    }
    return *gold;
}
}  // namespace

PromptSet read_prompt_set(const std::vector<std::string>& files, const PromptSetOptions& opts, const Tokenizer& tokenizer) {
    PromptSet set;
    std::string first_skip;
    std::vector<std::vector<int32_t>> all;
    std::vector<std::string> texts;
    std::vector<double> answers;
    for (const auto& file : files) {
        read_records(
            file,
            [&](const nlohmann::json& r, const std::string& where) {
                const std::string text = json_string_field(r, opts.field, where);
                if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw Error("empty prompt", where, "");
                auto turns = prompt_turns(text, where);
                double answer = 0;
                if (!opts.checker.empty()) answer = read_answer(r, opts, where);
                ++set.read;
                auto ids = render_prompt(turns, tokenizer);
                if (static_cast<int64_t>(ids.size()) > opts.max_prompt_tokens) {
                    ++set.too_long;
                    return;
                }
                all.push_back(std::move(ids));
                texts.push_back(turns.back().content);
                answers.push_back(answer);
            },
            count_skips(opts.skip_bad, set.skipped, first_skip));
    }
    if (set.skipped > 0) spdlog::warn("prompts: skipped {} bad record(s); the first: {}", set.skipped, first_skip);
    if (set.read == 0) throw Error("no prompts", files.front(), "one {\"" + opts.field + "\": ...} per line");
    if (all.empty()) {
        throw Error("all " + std::to_string(set.read) + " prompts are longer than the " +
                        std::to_string(opts.max_prompt_tokens) + " tokens the context leaves beside the response" +
                        (opts.room_explained.empty() ? "" : " (" + opts.room_explained + ")"),
                    files.front(), "use shorter prompts or lower ppo.max_new_tokens");
    }
    // Held-out prompts beyond eval_prompts would be evaluated by nothing: they train.
    const auto held = held_out_items(all.size(), opts.val_fraction, opts.split_seed);
    for (size_t i = 0; i < all.size(); ++i) {
        if (held[i] && static_cast<int64_t>(set.eval.size()) < opts.eval_prompts) {
            set.eval.push_back(std::move(all[i]));
            set.eval_text.push_back(std::move(texts[i]));
            if (!opts.checker.empty()) set.eval_answers.push_back(answers[i]);
        } else {
            set.held_out_training += held[i];
            set.train.push_back(std::move(all[i]));
            if (!opts.checker.empty()) set.train_answers.push_back(answers[i]);
        }
    }
    if (set.train.empty()) throw Error("no training prompts left after the validation split", "data.val_fraction", "lower it");
    return set;
}

}  // namespace rlhf
