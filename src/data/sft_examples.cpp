#include "rlhf/data/sft_examples.h"

#include <nlohmann/json.hpp>

#include <functional>

#include "rlhf/core/error.h"
#include "rlhf/data/jsonl.h"

namespace rlhf {

namespace {

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

std::string field(const nlohmann::json& r, const std::string& key, const std::string& where) {
    return json_string_field(r, key, where);
}

}  // namespace

std::vector<ChatTurn> parse_chat_turns(const nlohmann::json& list, const std::string& where) {
    if (!list.is_array()) throw Error("expected a list of {role, content}", where, "");
    std::vector<ChatTurn> turns;
    for (const auto& m : list) {
        ChatTurn turn{field(m, "role", where), field(m, "content", where)};
        if (turn.role == "human") turn.role = "user";
        if (turn.role != "system" && turn.role != "user" && turn.role != "assistant") {
            throw Error("unknown role \"" + turn.role + "\"", where, "roles are system, user and assistant");
        }
        if (turn.role == "system" && !turns.empty()) throw Error("a system turn may only come first", where, "");
        turns.push_back(std::move(turn));
    }
    return turns;
}

namespace {

std::string pick(const std::string& configured, const char* fallback) {
    return configured.empty() ? fallback : configured;
}

std::string detect_format(const nlohmann::json& r, const SftReadOptions& o, const std::string& where) {
    if (!r.is_object()) throw Error("expected a JSON object, got " + r.dump().substr(0, 40), where, "");
    if (r.contains(pick(o.messages_field, "messages"))) return "messages";
    if (r.contains("instruction") && r.contains("output")) return "alpaca";
    if (r.contains(pick(o.prompt_field, "prompt"))) return "prompt_response";
    if (r.contains("question") && r.contains("answer")) return "gsm8k";
    throw Error("cannot tell the data format from the keys of the first record", where,
                "set data.format (prompt_response | gsm8k | alpaca | messages) and data.fields");
}

Conversation parse_record(const nlohmann::json& r, const std::string& format, const SftReadOptions& o,
                          const std::string& where) {
    if (!r.is_object()) throw Error("expected a JSON object", where, "");
    Conversation conv;
    conv.where = where;
    if (format == "messages") {
        const std::string key = pick(o.messages_field, "messages");
        auto it = r.find(key);
        if (it == r.end()) throw Error("missing field \"" + key + "\"", where, "set data.fields.messages");
        if (!it->is_array()) throw Error("field \"" + key + "\" must be a list of {role, content}", where, "");
        conv.turns = parse_chat_turns(*it, where);
    } else {
        std::string prompt, response;
        if (format == "alpaca") {
            prompt = field(r, "instruction", where);
            if (r.contains("input")) {
                const std::string input = field(r, "input", where);
                if (!blank(input)) prompt += "\n\n" + input;
            }
            response = field(r, "output", where);
        } else if (format == "gsm8k") {
            prompt = field(r, pick(o.prompt_field, "question"), where);
            response = field(r, pick(o.response_field, "answer"), where);
        } else {  // prompt_response; TRL names the response "completion"
            prompt = field(r, pick(o.prompt_field, "prompt"), where);
            std::string key = pick(o.response_field, "response");
            if (o.response_field.empty() && !r.contains(key) && r.contains("completion")) key = "completion";
            response = field(r, key, where);
        }
        if (blank(prompt)) throw Error("empty prompt", where, "");
        conv.turns = {{"user", prompt}, {"assistant", response}};
    }
    if (conv.turns.empty() || conv.turns.back().role != "assistant") {
        throw Error("the conversation does not end with an assistant turn", where,
                    "only assistant turns are trained on; end each example with one");
    }
    if (blank(conv.turns.back().content)) throw Error("empty response", where, "");
    return conv;
}

}  // namespace

std::vector<Conversation> read_sft_examples(const std::vector<std::string>& files, const SftReadOptions& opts,
                                            SftReadStats* stats_out) {
    SftReadStats stats;
    std::vector<Conversation> out;
    if (files.empty()) throw Error("no example files given", "data.files", "list the SFT data files");
    for (const auto& file : files) {
        std::string format = opts.format == "auto" ? "" : opts.format;
        read_records(
            file,
            [&](const nlohmann::json& r, const std::string& where) {
                if (format.empty()) format = detect_format(r, opts, where);
                out.push_back(parse_record(r, format, opts, where));
                ++stats.read;
            },
            count_skips(opts.skip_bad, stats.skipped, stats.first_skip));
    }
    if (out.empty()) {
        throw Error("no usable examples" + (stats.skipped ? " (" + std::to_string(stats.skipped) + " skipped as bad)" : std::string()),
                    files.front(), "check the files and data.format / data.fields");
    }
    if (stats_out) *stats_out = stats;
    return out;
}

}  // namespace rlhf
