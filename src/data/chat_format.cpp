#include "rlhf/data/chat_format.h"

#include <algorithm>
#include <cmath>

#include "rlhf/core/error.h"

namespace rlhf {

Tokenizer with_chat_tokens(const Tokenizer& tokenizer) { return tokenizer.with_added_tokens(kChatRoleTokens); }

bool has_chat_tokens(const Tokenizer& tokenizer) {
    return std::all_of(kChatRoleTokens.begin(), kChatRoleTokens.end(),
                       [&](const std::string& t) { return tokenizer.added_token_id(t) >= 0; });
}

namespace {

int32_t role_id(const Tokenizer& tokenizer, const std::string& role) {
    const int32_t id = tokenizer.added_token_id("<|" + role + "|>");
    if (id < 0) {
        throw Error("the tokenizer has no chat tokens", tokenizer.source(),
                    "use a checkpoint made by the sft stage (it adds them), or run sft first");
    }
    return id;
}

void append(RenderedExample& out, const std::vector<int32_t>& ids, uint8_t mask) {
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.loss_mask.insert(out.loss_mask.end(), ids.size(), mask);
}

}  // namespace

RenderedExample render_conversation(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer) {
    RenderedExample out;
    append(out, {tokenizer.bos_id()}, 0);
    for (const auto& turn : turns) {
        append(out, {role_id(tokenizer, turn.role)}, 0);
        const bool reply = turn.role == "assistant";
        append(out, tokenizer.encode(turn.content), reply ? 1 : 0);
        if (reply) append(out, {tokenizer.eos_id()}, 1);  // stopping is part of the reply
    }
    return out;
}

std::vector<int32_t> render_prompt(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer) {
    auto ids = render_conversation(turns, tokenizer).ids;
    ids.push_back(role_id(tokenizer, "assistant"));
    return ids;
}

std::optional<RenderedExample> fit_to_window(RenderedExample ex, int64_t max_ids, double min_prompt_fraction) {
    const auto len = static_cast<int64_t>(ex.ids.size());
    if (len <= max_ids) return ex;
    // The final reply starts after the last prompt token (the last 0 before the trailing 1s).
    int64_t reply_start = len;
    while (reply_start > 0 && ex.loss_mask[static_cast<size_t>(reply_start - 1)] == 1) --reply_start;
    const int64_t prompt_len = reply_start, reply_len = len - reply_start;
    const auto min_prompt = std::min<int64_t>(
        prompt_len, std::max<int64_t>(3, static_cast<int64_t>(std::ceil(min_prompt_fraction * static_cast<double>(max_ids)))));
    const int64_t keep_prompt = std::min(prompt_len, std::max(min_prompt, max_ids - reply_len));
    const int64_t keep_reply = std::min(reply_len, max_ids - keep_prompt);
    if (keep_reply <= 0) return std::nullopt;

    RenderedExample out;
    out.prompt_truncated = keep_prompt < prompt_len;
    out.response_truncated = keep_reply < reply_len;
    auto take = [&](int64_t from, int64_t to) {
        out.ids.insert(out.ids.end(), ex.ids.begin() + from, ex.ids.begin() + to);
        out.loss_mask.insert(out.loss_mask.end(), ex.loss_mask.begin() + from, ex.loss_mask.begin() + to);
    };
    if (out.prompt_truncated) {
        take(0, 2);  // BOS and the first role marker say what kind of text follows
        take(prompt_len - (keep_prompt - 2), prompt_len);
    } else {
        take(0, prompt_len);
    }
    take(prompt_len, prompt_len + keep_reply);
    return out;
}

}  // namespace rlhf
