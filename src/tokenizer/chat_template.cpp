#include "rlhf/tokenizer/chat_template.h"

#include <regex>
#include <vector>

#include "rlhf/core/error.h"

namespace rlhf {

std::string chat_style_name(ChatStyle style) {
    switch (style) {
        case ChatStyle::rlhf: return "rlhf";
        case ChatStyle::chatml: return "chatml";
        case ChatStyle::llama3: return "llama3";
        case ChatStyle::unrecognised: return "unrecognised";
    }
    return "unrecognised";
}

std::optional<ChatStyle> parse_chat_style(const std::string& name) {
    for (ChatStyle s : {ChatStyle::rlhf, ChatStyle::chatml, ChatStyle::llama3}) {
        if (name == chat_style_name(s)) return s;
    }
    return std::nullopt;
}

namespace {

// The string literals inside a template's {{ … }} and {% … %} tags, unescaped ("\n" -> newline).
// Text outside the tags is output too, but a template that writes its markers there is rare, and
// its apostrophes would read as quotes.
std::vector<std::string> string_literals(const std::string& jinja) {
    std::vector<std::string> out;
    size_t i = 0;
    while ((i = jinja.find('{', i)) != std::string::npos) {
        if (i + 1 >= jinja.size() || (jinja[i + 1] != '{' && jinja[i + 1] != '%')) { ++i; continue; }
        const std::string close = jinja[i + 1] == '{' ? "}}" : "%}";
        i += 2;
        while (i < jinja.size() && jinja.compare(i, 2, close) != 0) {
            const char quote = jinja[i];
            if (quote != '\'' && quote != '"') { ++i; continue; }
            std::string lit;
            for (++i; i < jinja.size() && jinja[i] != quote; ++i) {
                if (jinja[i] == '\\' && i + 1 < jinja.size()) {
                    const char c = jinja[++i];
                    lit += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
                } else {
                    lit += jinja[i];
                }
            }
            ++i;  // the closing quote
            out.push_back(std::move(lit));
        }
    }
    return out;
}

bool any_contains(const std::vector<std::string>& literals, const std::string& what) {
    for (const auto& l : literals) if (l.find(what) != std::string::npos) return true;
    return false;
}

}  // namespace

ChatTemplate recognise_chat_template(const std::string& jinja, const std::string& bos_token) {
    ChatTemplate t;
    t.jinja = jinja;
    t.style = ChatStyle::unrecognised;
    const auto literals = string_literals(jinja);
    if (any_contains(literals, "<|im_start|>") && any_contains(literals, "<|im_end|>")) {
        t.style = ChatStyle::chatml;
        // Qwen2.5 and SmolLM2 write a system turn of their own when the conversation has none.
        const std::string open = "<|im_start|>system\n", close = "<|im_end|>";
        for (const auto& l : literals) {
            const size_t a = l.find(open);
            if (a == std::string::npos) continue;
            const size_t b = l.find(close, a + open.size());
            if (b != std::string::npos && b > a + open.size()) t.default_system = l.substr(a + open.size(), b - a - open.size());
        }
        // Qwen3: with thinking off, the reply follows an empty reasoning block.
        t.empty_think = any_contains(literals, "<think>") && jinja.find("enable_thinking") != std::string::npos;
        return t;
    }
    if (any_contains(literals, "<|start_header_id|>") && any_contains(literals, "<|eot_id|>")) {
        t.style = ChatStyle::llama3;
        if (jinja.find("bos_token") != std::string::npos) t.bos = bos_token;
        // Llama-3.1/3.2 open every conversation with a system turn: "Cutting Knowledge Date: …\n"
        // "Today Date: " + date_string + "\n\n". transformers fills in today's date; we take the
        // template's own fallback date, so that a rendering does not change from day to day.
        for (const auto& l : literals) {
            if (l.rfind("Cutting Knowledge Date:", 0) != 0) continue;
            std::smatch date;
            static const std::regex date_default(R"re(date_string\s*=\s*["']([^"']+)["'])re");
            if (!any_contains(literals, "Today Date: ") || !std::regex_search(jinja, date, date_default)) {
                t.style = ChatStyle::unrecognised;  // a date we cannot reproduce
                return t;
            }
            t.system_preamble = l + "Today Date: " + date[1].str() + "\n\n";
        }
        return t;
    }
    return t;
}

std::string chat_template_jinja(const ChatTemplate& t) {
    if (!t.jinja.empty()) return t.jinja;
    switch (t.style) {
        case ChatStyle::rlhf:
            return "{{ bos_token }}{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] }}"
                   "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";
        case ChatStyle::chatml:
            return "{% for m in messages %}{% if not loop.first %}{{ '\n' }}{% endif %}"
                   "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' }}{% endfor %}"
                   "{% if add_generation_prompt %}{% if messages %}{{ '\n' }}{% endif %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        case ChatStyle::llama3:
            return std::string(t.bos.empty() ? "" : "{{ bos_token }}") +
                   "{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + "
                   "'<|eot_id|>' }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
        case ChatStyle::unrecognised: break;
    }
    return "";
}

nlohmann::json chat_template_to_json(const ChatTemplate& t) {
    return {{"style", chat_style_name(t.style)},   {"default_system", t.default_system},
            {"system_preamble", t.system_preamble}, {"bos", t.bos},
            {"empty_think", t.empty_think},         {"jinja", t.jinja}};
}

ChatTemplate chat_template_from_json(const nlohmann::json& j, const std::string& source) {
    ChatTemplate t;
    try {
        const std::string style = j.at("style").get<std::string>();
        if (style == "unrecognised") {
            t.style = ChatStyle::unrecognised;
        } else if (auto s = parse_chat_style(style)) {
            t.style = *s;
        } else {
            throw Error("unknown chat style '" + style + "'", source, "rlhf, chatml, llama3 or unrecognised");
        }
        t.default_system = j.value("default_system", "");
        t.system_preamble = j.value("system_preamble", "");
        t.bos = j.value("bos", "");
        t.empty_think = j.value("empty_think", false);
        t.jinja = j.value("jinja", "");
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("malformed: ") + e.what(), source, "");
    }
    return t;
}

}  // namespace rlhf
