#include "rlhf/data/comparisons.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>

#include "rlhf/core/error.h"
#include "rlhf/data/jsonl.h"

namespace rlhf {

namespace {

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

std::string trim(const std::string& s) {
    const auto a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

const std::string kHuman = "\n\nHuman:";
const std::string kAssistant = "\n\nAssistant:";

std::string pick(const std::string& configured, const char* fallback) {
    return configured.empty() ? fallback : configured;
}

std::string detect_format(const nlohmann::json& r, const ComparisonReadOptions& o, const std::string& where) {
    if (!r.is_object()) throw Error("expected a JSON object, got " + r.dump().substr(0, 40), where, "");
    if (r.contains("responses")) return "ranked";
    if (r.contains("response1") && r.contains("response2")) return "pandalm";
    if (r.contains("chosen") && r.contains("rejected")) return r.contains(pick(o.prompt_field, "prompt")) ? "pairwise" : "hh";
    throw Error("cannot tell the comparison format from the keys of the first record", where,
                "set data.format (ranked | pairwise | hh | pandalm); see docs/reward.md");
}

// A prompt given as a string, or as a list of {role, text|content} turns (OASST's "history").
std::vector<ChatTurn> read_prompt(const nlohmann::json& r, const ComparisonReadOptions& o, const std::string& where) {
    const std::string key = pick(o.prompt_field, "prompt");
    if (r.contains(key) && r.at(key).is_string()) {
        const std::string text = r.at(key).get<std::string>();
        if (blank(text)) throw Error("empty prompt", where, "");
        return {{"user", text}};
    }
    const char* list_key = r.contains(key) ? key.c_str() : r.contains("history") ? "history" : r.contains("messages") ? "messages" : nullptr;
    if (!list_key) throw Error("missing field \"" + key + "\"", where, "give the prompt as a string or a list of turns");
    const auto& list = r.at(list_key);
    if (!list.is_array() || list.empty()) {
        throw Error(std::string("field \"") + list_key + "\" must be a string or a non-empty list of {role, text}", where, "");
    }
    std::vector<ChatTurn> turns;
    for (const auto& m : list) {
        if (!m.is_object()) throw Error(std::string("field \"") + list_key + "\" must hold {role, text} objects", where, "");
        std::string role = json_string_field(m, "role", where);
        const std::string text = json_string_field(m, m.contains("text") ? "text" : "content", where);
        if (role == "prompter" || role == "human") role = "user";
        if (role != "user" && role != "assistant" && role != "system") {
            throw Error("unknown role \"" + role + "\"", where, "roles are system, user (prompter) and assistant");
        }
        turns.push_back({role, text});
    }
    if (turns.back().role != "user") throw Error("the prompt must end with a user turn", where, "");
    return turns;
}

RankedGroup read_ranked(const nlohmann::json& r, const ComparisonReadOptions& o, const std::string& where) {
    RankedGroup g;
    g.prompt = read_prompt(r, o, where);
    const auto it = r.find("responses");
    if (it == r.end()) throw Error("missing field \"responses\" (a list, best first)", where, "");
    if (!it->is_array()) {
        throw Error("field \"responses\" must be a list of responses, best first, got " + it->dump().substr(0, 60), where,
                    "give at least two responses: [\"best\", \"worse\", ...]");
    }
    std::vector<int> object_ranks;
    for (const auto& resp : *it) {
        if (resp.is_string()) {
            g.responses.push_back(resp.get<std::string>());
        } else if (resp.is_object()) {
            g.responses.push_back(json_string_field(resp, resp.contains("text") ? "text" : "content", where));
            if (resp.contains("rank")) {
                if (!resp.at("rank").is_number_integer()) throw Error("a response's \"rank\" must be an integer", where, "");
                object_ranks.push_back(resp.at("rank").get<int>());
            }
        } else {
            throw Error("each response must be a string or {\"text\", \"rank\"}", where, "");
        }
    }
    const auto K = g.responses.size();
    if (K < 2) throw Error("a group needs at least 2 responses, got " + std::to_string(K), where, "");
    if (r.contains("ranks")) {
        const auto& ranks = r.at("ranks");
        if (!ranks.is_array()) throw Error("field \"ranks\" must be a list of integers", where, "");
        for (const auto& v : ranks) {
            if (!v.is_number_integer()) throw Error("field \"ranks\" must be a list of integers", where, "");
            g.ranks.push_back(v.get<int>());
        }
        if (g.ranks.size() != K) {
            throw Error("\"ranks\" has " + std::to_string(g.ranks.size()) + " entries but there are " +
                            std::to_string(K) + " responses",
                        where, "give one rank per response (0 = best; equal ranks are ties)");
        }
    } else if (object_ranks.size() == K) {
        g.ranks = object_ranks;
    } else if (!object_ranks.empty()) {
        throw Error("only " + std::to_string(object_ranks.size()) + " of " + std::to_string(K) + " responses have a rank",
                    where, "rank every response, or none (then the list order is the ranking)");
    } else {
        for (size_t i = 0; i < K; ++i) g.ranks.push_back(static_cast<int>(i));
    }
    if (std::any_of(g.ranks.begin(), g.ranks.end(), [](int v) { return v < 0; })) {
        throw Error("ranks must be >= 0 (0 = best)", where, "");
    }
    return g;
}

// HH-RLHF: chosen and rejected are whole dialogues that share everything up to the last
// "\n\nAssistant:"; that shared part is the prompt. A few replies themselves run on into a
// "Human:" turn, so the prompt ends at the last Assistant marker inside the common prefix (as
// TRL's prompt extraction does), not at the last marker of either dialogue.
RankedGroup read_hh(const nlohmann::json& r, const std::string& where) {
    const std::string chosen = json_string_field(r, "chosen", where), rejected = json_string_field(r, "rejected", where);
    if (chosen.find(kAssistant) == std::string::npos || rejected.find(kAssistant) == std::string::npos) {
        throw Error("a dialogue has no \"Assistant:\" turn", where,
                    "HH-RLHF records are \"\\n\\nHuman: …\\n\\nAssistant: …\" dialogues");
    }
    size_t common = 0;
    while (common < chosen.size() && common < rejected.size() && chosen[common] == rejected[common]) ++common;
    const size_t cut = common >= kAssistant.size() ? chosen.rfind(kAssistant, common - kAssistant.size()) : std::string::npos;
    if (cut == std::string::npos) {
        throw Error("chosen and rejected share no dialogue up to an Assistant turn", where,
                    "the prompt is their shared prefix; skip such records with data.on_error: skip");
    }
    RankedGroup g;
    g.prompt = parse_hh_dialogue(chosen.substr(0, cut), where);
    if (g.prompt.back().role != "user") throw Error("the dialogue does not end with a Human turn before the reply", where, "");
    g.responses = {trim(chosen.substr(cut + kAssistant.size())), trim(rejected.substr(cut + kAssistant.size()))};
    g.ranks = {0, 1};
    return g;
}

// PandaLM: three annotators label each pair 0 (tie), 1 or 2 (that response is better); the
// majority decides. Returns false for a tie.
bool read_pandalm(const nlohmann::json& r, const std::string& where, RankedGroup& g) {
    std::string prompt = json_string_field(r, "instruction", where);
    if (r.contains("input")) {
        const std::string input = json_string_field(r, "input", where);
        if (!blank(input)) prompt += "\n\n" + input;
    }
    if (blank(prompt)) throw Error("empty instruction", where, "");
    std::array<int, 3> votes{};
    int annotators = 0;
    for (const char* key : {"annotator1", "annotator2", "annotator3"}) {
        if (!r.contains(key)) continue;
        const auto& v = r.at(key);
        if (!v.is_number_integer() || v.get<int>() < 0 || v.get<int>() > 2) {
            throw Error(std::string("field \"") + key + "\" must be 0 (tie), 1 or 2", where, "");
        }
        ++votes[static_cast<size_t>(v.get<int>())];
        ++annotators;
    }
    if (annotators == 0) throw Error("no annotator labels (annotator1..annotator3)", where, "");
    g.prompt = {{"user", prompt}};
    g.responses = {json_string_field(r, "response1", where), json_string_field(r, "response2", where)};
    if (2 * votes[1] > annotators) g.ranks = {0, 1};
    else if (2 * votes[2] > annotators) g.ranks = {1, 0};
    else return false;  // a tie or no majority: no comparison
    return true;
}

}  // namespace

std::vector<std::pair<int, int>> ranked_pairs(const std::vector<int>& ranks) {
    std::vector<std::pair<int, int>> pairs;
    for (size_t a = 0; a < ranks.size(); ++a) {
        for (size_t b = 0; b < ranks.size(); ++b) {
            if (ranks[a] < ranks[b]) pairs.emplace_back(static_cast<int>(a), static_cast<int>(b));
        }
    }
    return pairs;
}

std::vector<ChatTurn> parse_hh_dialogue(const std::string& text_in, const std::string& where) {
    // Some copies drop the leading blank line; the markers are otherwise "\n\nHuman:" and
    // "\n\nAssistant:" wherever a turn starts.
    const std::string text = text_in.rfind("Human:", 0) == 0 ? "\n\n" + text_in : text_in;
    std::vector<ChatTurn> turns;
    size_t pos = 0;
    std::string role;
    auto next_marker = [&](size_t from, std::string& found_role) {
        const auto h = text.find(kHuman, from), a = text.find(kAssistant, from);
        if (h == std::string::npos && a == std::string::npos) return std::string::npos;
        found_role = h < a ? "user" : "assistant";
        return std::min(h, a);
    };
    pos = next_marker(0, role);
    if (pos == std::string::npos || role != "user") {
        throw Error("the dialogue does not start with a \"Human:\" turn", where,
                    "HH-RLHF records are \"\\n\\nHuman: …\\n\\nAssistant: …\" dialogues");
    }
    if (!blank(text.substr(0, pos))) throw Error("text before the first \"Human:\" turn", where, "");
    while (pos != std::string::npos) {
        const size_t start = pos + (role == "user" ? kHuman.size() : kAssistant.size());
        std::string next_role;
        const size_t end = next_marker(start, next_role);
        turns.push_back({role, trim(text.substr(start, end == std::string::npos ? std::string::npos : end - start))});
        pos = end;
        role = next_role;
    }
    return turns;
}

std::vector<RankedGroup> read_comparisons(const std::vector<std::string>& files, const ComparisonReadOptions& opts,
                                          ComparisonReadStats* stats_out) {
    ComparisonReadStats stats;
    std::vector<RankedGroup> out;
    if (files.empty()) throw Error("no comparison files given", "data.files", "list the ranked-comparison files");
    for (const auto& file : files) {
        std::string format = opts.format == "auto" ? "" : opts.format;
        read_records(
            file,
            [&](const nlohmann::json& r, const std::string& where) {
                if (format.empty()) format = detect_format(r, opts, where);
                if (!r.is_object()) throw Error("expected a JSON object", where, "");
                RankedGroup g;
                if (format == "ranked") {
                    g = read_ranked(r, opts, where);
                } else if (format == "pairwise") {
                    g.prompt = read_prompt(r, opts, where);
                    g.responses = {json_string_field(r, "chosen", where), json_string_field(r, "rejected", where)};
                    g.ranks = {0, 1};
                } else if (format == "hh") {
                    g = read_hh(r, where);
                } else if (!read_pandalm(r, where, g)) {
                    ++stats.tied_records;
                    return;
                }
                // An empty response is kept: it is something a model said (nothing) and a labeler
                // ranked; HH-RLHF and PandaLM both hold a few.
                const auto pairs = ranked_pairs(g.ranks);
                if (pairs.empty()) {
                    throw Error("all ranks are tied: the group gives no comparison", where,
                                "rank at least one response above another");
                }
                g.where = where;
                stats.pairs += static_cast<int64_t>(pairs.size());
                ++stats.groups;
                out.push_back(std::move(g));
            },
            count_skips(opts.skip_bad, stats.skipped, stats.first_skip));
    }
    if (out.empty()) {
        throw Error("no usable comparisons" + (stats.skipped ? " (" + std::to_string(stats.skipped) + " skipped as bad)" : std::string()),
                    files.front(), "check the files and data.format");
    }
    if (stats_out) *stats_out = stats;
    return out;
}

}  // namespace rlhf
