#include "rlhf/data/chat_format.h"

#include <algorithm>
#include <cmath>

#include "rlhf/core/error.h"

namespace rlhf {

Tokenizer with_chat_tokens(const Tokenizer& tokenizer) { return tokenizer.with_added_tokens(kChatRoleTokens); }

namespace {

const std::string kImStart = "<|im_start|>", kImEnd = "<|im_end|>";
const std::string kStartHeader = "<|start_header_id|>", kEndHeader = "<|end_header_id|>", kEotId = "<|eot_id|>";

// The id of a whole special piece, or -1. (SentencePiece answers an unknown piece with UNK's id.)
int32_t exact_id(const Tokenizer& tokenizer, const std::string& piece) {
    const int32_t id = tokenizer.piece_to_id(piece);
    return id >= 0 && tokenizer.piece(id) == piece ? id : -1;
}

std::vector<std::string> format_tokens(const ChatTemplate& t) {
    switch (t.style) {
        case ChatStyle::rlhf: return kChatRoleTokens;
        case ChatStyle::chatml: {
            std::vector<std::string> out = {kImStart, kImEnd};
            if (t.empty_think) out.insert(out.end(), {"<think>", "</think>"});
            return out;
        }
        case ChatStyle::llama3: {
            std::vector<std::string> out = {kStartHeader, kEndHeader, kEotId};
            if (!t.bos.empty()) out.push_back(t.bos);
            return out;
        }
        case ChatStyle::unrecognised: break;
    }
    return {};
}

int32_t special_id(const Tokenizer& tokenizer, const std::string& piece) {
    const int32_t id = exact_id(tokenizer, piece);
    if (id >= 0) return id;
    if (tokenizer.chat_template().style == ChatStyle::rlhf) {
        throw Error("the tokenizer has no chat tokens", tokenizer.source(),
                    "use a checkpoint made by the sft stage (it adds them), or run sft first");
    }
    throw Error("the tokenizer has no " + piece + " token, which its chat format (" +
                    chat_style_name(tokenizer.chat_template().style) + ") needs",
                tokenizer.source(), "set chat.template: rlhf (ours: sft adds its tokens)");
}

std::string trimmed(const std::string& s) {  // Jinja's `trim`, as Llama-3's template applies it
    const char* ws = " \t\n\r\f\v";
    const size_t a = s.find_first_not_of(ws);
    return a == std::string::npos ? "" : s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// A rendering before encoding: text runs (encoded each on its own, as Hugging Face encodes the
// text between two special tokens) and special tokens, each with its loss mask.
struct Segment {
    std::string text;
    int32_t id = -1;  // a special token, or -1 for text
    uint8_t mask = 0;
};

class Rendering {
public:
    explicit Rendering(const Tokenizer& tokenizer) : tok_(tokenizer) {}
    void text(std::string t, uint8_t mask = 0) { if (!t.empty()) segments_.push_back({std::move(t), -1, mask}); }
    void token(const std::string& piece, uint8_t mask = 0) { segments_.push_back({"", special_id(tok_, piece), mask}); }
    void token_id(int32_t id, uint8_t mask = 0) { segments_.push_back({"", id, mask}); }
    RenderedExample ids() const {
        RenderedExample out;
        for (const auto& s : segments_) {
            const std::vector<int32_t> ids = s.id >= 0 ? std::vector<int32_t>{s.id} : tok_.encode(s.text);
            out.ids.insert(out.ids.end(), ids.begin(), ids.end());
            out.loss_mask.insert(out.loss_mask.end(), ids.size(), s.mask);
        }
        return out;
    }
    std::string text() const {
        std::string out;
        for (const auto& s : segments_) out += s.id >= 0 ? tok_.piece(s.id) : s.text;
        return out;
    }

private:
    const Tokenizer& tok_;
    std::vector<Segment> segments_;
};

// <BOS> <|role|> text … ; a reply is followed by EOS.
int64_t render_rlhf(const std::vector<ChatTurn>& turns, bool generation_prompt, Rendering& r, const Tokenizer& tok) {
    r.token_id(tok.bos_id());
    for (const auto& turn : turns) {
        const uint8_t reply = turn.role == "assistant" ? 1 : 0;
        r.token("<|" + turn.role + "|>");
        r.text(turn.content, reply);
        if (reply) r.token_id(tok.eos_id(), 1);  // stopping is part of the reply
    }
    if (generation_prompt) r.token("<|assistant|>");
    return 2;
}

// <|im_start|>role\ncontent<|im_end|>, turns joined by "\n".
int64_t render_chatml(std::vector<ChatTurn> turns, bool generation_prompt, Rendering& r, const Tokenizer& tok) {
    const ChatTemplate& t = tok.chat_template();
    if (!t.default_system.empty() && (turns.empty() || turns.front().role != "system")) {
        turns.insert(turns.begin(), ChatTurn{"system", t.default_system});
    }
    auto think = [&] {  // Qwen3 with thinking off: the reply follows an empty reasoning block
        if (!t.empty_think) return;
        r.token("<think>");
        r.text("\n\n");
        r.token("</think>");
        r.text("\n\n");
    };
    for (size_t i = 0; i < turns.size(); ++i) {
        if (i > 0) r.text("\n");
        r.token(kImStart);
        if (turns[i].role == "assistant") {
            r.text("assistant\n");
            if (i + 1 == turns.size() && !generation_prompt) think();
            r.text(turns[i].content, 1);
            r.token(kImEnd, 1);
        } else {
            r.text(turns[i].role + "\n" + turns[i].content);
            r.token(kImEnd);
        }
    }
    if (generation_prompt) {
        if (!turns.empty()) r.text("\n");
        r.token(kImStart);
        r.text("assistant\n");
        think();
    }
    const std::string first = turns.empty() ? "assistant" : turns.front().role;
    return 1 + static_cast<int64_t>(tok.encode(first + "\n").size());
}

// [BOS] <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> …, content trimmed; 3.1/3.2
// open with a system turn holding their preamble.
int64_t render_llama3(std::vector<ChatTurn> turns, bool generation_prompt, Rendering& r, const Tokenizer& tok) {
    const ChatTemplate& t = tok.chat_template();
    if (!t.bos.empty()) r.token(t.bos);
    auto header = [&](const std::string& role) {
        r.token(kStartHeader);
        r.text(role);
        r.token(kEndHeader);
    };
    const std::string first = !t.system_preamble.empty() ? "system" : turns.empty() ? "assistant" : turns.front().role;
    if (!t.system_preamble.empty()) {
        std::string system;
        if (!turns.empty() && turns.front().role == "system") {
            system = trimmed(turns.front().content);
            turns.erase(turns.begin());
        }
        header("system");
        r.text("\n\n" + t.system_preamble + system);
        r.token(kEotId);
    }
    for (const auto& turn : turns) {
        header(turn.role);
        if (turn.role == "assistant") {
            r.text("\n\n");
            r.text(trimmed(turn.content), 1);
            r.token(kEotId, 1);
        } else {
            r.text("\n\n" + trimmed(turn.content));
            r.token(kEotId);
        }
    }
    if (generation_prompt) {
        header("assistant");
        r.text("\n\n");
    }
    return (t.bos.empty() ? 0 : 1) + 2 + static_cast<int64_t>(tok.encode(first).size());
}

// Renders into `r`; returns the head a cut prompt keeps.
int64_t render(const std::vector<ChatTurn>& turns, const Tokenizer& tok, bool generation_prompt, Rendering& r) {
    switch (tok.chat_template().style) {
        case ChatStyle::rlhf: return render_rlhf(turns, generation_prompt, r, tok);
        case ChatStyle::chatml: return render_chatml(turns, generation_prompt, r, tok);
        case ChatStyle::llama3: return render_llama3(turns, generation_prompt, r, tok);
        case ChatStyle::unrecognised: break;
    }
    throw Error("the tokenizer's chat template (from tokenizer_config.json) is neither ChatML nor Llama-3's header format",
                tok.source(), "set chat.template: chatml or llama3 if it is one of them, or rlhf (ours)");
}

}  // namespace

std::vector<std::string> chat_tokens_to_add(const Tokenizer& tokenizer) {
    std::vector<std::string> missing;
    for (const auto& t : format_tokens(tokenizer.chat_template())) if (exact_id(tokenizer, t) < 0) missing.push_back(t);
    return missing;
}

bool has_chat_format(const Tokenizer& tokenizer) {
    const auto tokens = format_tokens(tokenizer.chat_template());
    return !tokens.empty() && std::all_of(tokens.begin(), tokens.end(), [&](const std::string& t) { return exact_id(tokenizer, t) >= 0; });
}

int32_t end_of_turn_id(const Tokenizer& tokenizer) {
    switch (tokenizer.chat_template().style) {
        case ChatStyle::chatml: return special_id(tokenizer, kImEnd);
        case ChatStyle::llama3: return special_id(tokenizer, kEotId);
        default: return tokenizer.eos_id();
    }
}

Tokenizer with_chat_setting(const Tokenizer& tokenizer, const std::string& setting, const std::string& where) {
    Tokenizer out = tokenizer;
    if (setting == "auto") {
        if (tokenizer.chat_template().style == ChatStyle::unrecognised) {
            throw Error("the tokenizer's chat template (from tokenizer_config.json) is neither ChatML nor Llama-3's header format",
                        where, "set chat.template: chatml or llama3 if it is one of them, or rlhf (ours)");
        }
    } else {
        const auto style = parse_chat_style(setting);
        if (!style) throw Error("'" + setting + "' is not one of: auto, rlhf, chatml, llama3", where, "");
        if (*style != tokenizer.chat_template().style) {  // a format the model has not spoken yet (TRL's setup_chat_format)
            ChatTemplate t;
            t.style = *style;
            if (t.style == ChatStyle::llama3 && exact_id(tokenizer, "<|begin_of_text|>") >= 0) t.bos = "<|begin_of_text|>";
            out = tokenizer.with_chat_template(t);
        }
    }
    return out;
}

RenderedExample render_conversation(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer) {
    Rendering r(tokenizer);
    const int64_t head = render(turns, tokenizer, /*generation_prompt=*/false, r);
    RenderedExample out = r.ids();
    out.head = head;
    return out;
}

std::vector<int32_t> render_prompt(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer) {
    Rendering r(tokenizer);
    render(turns, tokenizer, /*generation_prompt=*/true, r);
    return r.ids().ids;
}

std::vector<int32_t> render_prompt_within(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer, int64_t max_ids) {
    Rendering r(tokenizer);
    const int64_t head = render(turns, tokenizer, /*generation_prompt=*/true, r);
    std::vector<int32_t> ids = r.ids().ids;
    const int64_t keep = std::max(max_ids, head + 1);
    if (static_cast<int64_t>(ids.size()) > keep) ids.erase(ids.begin() + head, ids.end() - (keep - head));
    return ids;
}

std::string render_chat_text(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer, bool generation_prompt) {
    Rendering r(tokenizer);
    render(turns, tokenizer, generation_prompt, r);
    return r.text();
}

std::optional<RenderedExample> fit_to_window(RenderedExample ex, int64_t max_ids, double min_prompt_fraction) {
    const auto len = static_cast<int64_t>(ex.ids.size());
    if (len <= max_ids) return ex;
    // The final reply starts after the last prompt token (the last 0 before the trailing 1s).
    int64_t reply_start = len;
    while (reply_start > 0 && ex.loss_mask[static_cast<size_t>(reply_start - 1)] == 1) --reply_start;
    const int64_t prompt_len = reply_start, reply_len = len - reply_start;
    const auto min_prompt = std::min<int64_t>(
        prompt_len, std::max<int64_t>(ex.head + 1, static_cast<int64_t>(std::ceil(min_prompt_fraction * static_cast<double>(max_ids)))));
    const int64_t keep_prompt = std::min(prompt_len, std::max(min_prompt, max_ids - reply_len));
    const int64_t keep_reply = std::min(reply_len, max_ids - keep_prompt);
    if (keep_reply <= 0) return std::nullopt;

    RenderedExample out;
    out.head = ex.head;
    out.prompt_truncated = keep_prompt < prompt_len;
    out.response_truncated = keep_reply < reply_len;
    auto take = [&](int64_t from, int64_t to) {
        out.ids.insert(out.ids.end(), ex.ids.begin() + from, ex.ids.begin() + to);
        out.loss_mask.insert(out.loss_mask.end(), ex.loss_mask.begin() + from, ex.loss_mask.begin() + to);
    };
    if (out.prompt_truncated) {
        take(0, ex.head);  // BOS and the first role marker say what kind of text follows
        take(prompt_len - (keep_prompt - ex.head), prompt_len);
    } else {
        take(0, prompt_len);
    }
    take(prompt_len, prompt_len + keep_reply);
    return out;
}

}  // namespace rlhf
