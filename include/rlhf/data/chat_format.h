// The chat format: how a conversation becomes token ids, and which ids the SFT loss covers.
//
//   <BOS> [<|system|> system text] <|user|> user text <|assistant|> reply <EOS> <|user|> … <|assistant|> reply <EOS>
//
// The role markers are added tokens (ids after the SentencePiece vocabulary, see
// tokenizer.h), so no text can forge one. The loss mask covers each assistant reply AND the EOS
// that ends it — the model must learn to stop — and nothing else. A prompt for generation is
// the same rendering cut after the final <|assistant|>; the reply ends when the model emits EOS.
// docs/chat-format.md has the details.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rlhf/data/sft_examples.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

// The one place the format's special tokens are defined and added.
inline const std::vector<std::string> kChatRoleTokens = {"<|system|>", "<|user|>", "<|assistant|>"};
Tokenizer with_chat_tokens(const Tokenizer& tokenizer);
bool has_chat_tokens(const Tokenizer& tokenizer);

struct RenderedExample {
    std::vector<int32_t> ids;
    std::vector<uint8_t> loss_mask;  // 1 on reply tokens and their EOS
    bool prompt_truncated = false;
    bool response_truncated = false;  // cut from the right: its EOS is gone
};

// The whole conversation. The tokenizer must have the chat tokens.
RenderedExample render_conversation(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer);

// The ids a reply is generated after: the turns rendered, then <|assistant|>.
std::vector<int32_t> render_prompt(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer);

// Fits an example into max_ids ids (block_size + 1: inputs and shifted targets). Too long: the
// prompt (everything before the final reply) loses tokens from its left end, keeping BOS and its
// first role marker, but keeps at least min(its length, min_prompt_fraction * max_ids) tokens;
// then the final reply is cut from the right. nullopt if no reply token would remain.
std::optional<RenderedExample> fit_to_window(RenderedExample example, int64_t max_ids, double min_prompt_fraction);

}  // namespace rlhf
