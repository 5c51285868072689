// SFT demonstrations as users have them, read into one shape: a conversation of role turns.
//
//   format          record (JSONL, or a JSON array of such objects)        becomes
//   prompt_response {"prompt", "response"} (TRL: {"prompt", "completion"}) user, assistant
//   gsm8k           {"question", "answer"}                                 user, assistant
//   alpaca          {"instruction", "input", "output"}                     user (instruction + input), assistant
//   messages        {"messages": [{"role", "content"}, ...]}               the turns as given
//   auto            decided per file from its first record
//
// data.fields renames the source keys (fields: {prompt: question, response: answer}). Every
// error names file:line. With on_error = skip a bad record is counted and left out instead.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rlhf {

struct ChatTurn {
    std::string role;     // system | user | assistant
    std::string content;
};

struct Conversation {
    std::vector<ChatTurn> turns;  // ends with an assistant turn with non-empty content
    std::string where;            // file:line it came from
};

struct SftReadOptions {
    std::string format = "auto";   // auto | prompt_response | gsm8k | alpaca | messages
    std::string prompt_field;      // "" = the format's own key
    std::string response_field;
    std::string messages_field;
    bool skip_bad = false;         // data.on_error: skip
};

struct SftReadStats {
    int64_t read = 0;              // records kept
    int64_t skipped = 0;           // bad records left out (skip_bad)
    std::string first_skip;        // the first skipped record's error, for the log
};

// A JSON list of {"role", "content"} (roles system, user — or human — and assistant; a system turn
// first only). Throws rlhf::Error naming `where`.
std::vector<ChatTurn> parse_chat_turns(const nlohmann::json& list, const std::string& where);

// Reads every file in order. Throws rlhf::Error (file:line) on the first bad record unless
// skip_bad; always throws if no usable example remains.
std::vector<Conversation> read_sft_examples(const std::vector<std::string>& files, const SftReadOptions& opts,
                                            SftReadStats* stats = nullptr);

}  // namespace rlhf
