// The chat format: how a conversation becomes token ids, and which ids the SFT loss covers. The
// tokenizer says which format its model speaks (tokenizer/chat_template.h); this file renders it.
//
//   rlhf    <BOS> [<|system|> system text] <|user|> user text <|assistant|> reply <EOS> <|user|> …
//   chatml  <|im_start|>system\ntext<|im_end|>\n<|im_start|>user\ntext<|im_end|>\n<|im_start|>assistant\nreply<|im_end|>
//   llama3  <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\ntext<|eot_id|><|start_header_id|>assistant…
//
// Our role markers are added tokens (ids after the SentencePiece vocabulary, see tokenizer.h), and
// so are ChatML's and Llama-3's: no text encodes to them, so no text can forge a turn. The loss
// mask covers each assistant reply AND the end-of-turn token that closes it (EOS, <|im_end|>,
// <|eot_id|>) — the model must learn to stop — and nothing else. A prompt for generation is the
// same rendering cut where the final reply would begin; the reply ends when the model emits the
// end-of-turn token. A reply is encoded on its own, as the model generates it: a Hugging Face
// template encodes "assistant\n" + reply as one string, which differs only for a reply that
// begins with whitespace. The text after the last end-of-turn token (ChatML's "\n") is left out,
// so a rendering ends where a generated reply ends. docs/chat-format.md has the details.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rlhf/data/sft_examples.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

// The one place our format's special tokens are defined and added.
inline const std::vector<std::string> kChatRoleTokens = {"<|system|>", "<|user|>", "<|assistant|>"};
Tokenizer with_chat_tokens(const Tokenizer& tokenizer);
// The tokens of the tokenizer's format that its vocabulary lacks, which a stage adds (growing the
// embedding): our role tokens for rlhf, <|im_start|> <|im_end|> for a model taught ChatML afresh.
std::vector<std::string> chat_tokens_to_add(const Tokenizer& tokenizer);
// Whether the tokenizer's chat format can be rendered (rlhf: our tokens were added, by sft).
bool has_chat_format(const Tokenizer& tokenizer);
// The token that ends a reply, the stop token of generation and rollouts: EOS, <|im_end|>, <|eot_id|>.
int32_t end_of_turn_id(const Tokenizer& tokenizer);

// The tokenizer with the format `setting` names (chat.template: auto | rlhf | chatml | llama3);
// auto keeps the tokenizer's own. An unrecognised Hugging Face template is an rlhf::Error naming
// `where`. The format's tokens may still be missing: see chat_tokens_to_add.
Tokenizer with_chat_setting(const Tokenizer& tokenizer, const std::string& setting, const std::string& where);

struct RenderedExample {
    std::vector<int32_t> ids;
    std::vector<uint8_t> loss_mask;  // 1 on reply tokens and the end-of-turn token after each
    bool prompt_truncated = false;
    bool response_truncated = false;  // cut from the right: its EOS is gone
    int64_t head = 2;  // leading ids a cut prompt keeps: BOS and the first turn's role marker(s)
};

// The whole conversation. The tokenizer must have its format's tokens.
RenderedExample render_conversation(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer);

// The ids a reply is generated after: the turns rendered, then the assistant's header.
std::vector<int32_t> render_prompt(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer);

// render_prompt cut to at most max_ids ids from the left, keeping the head (BOS and the first role
// marker: what kind of text follows, as fit_to_window keeps it) and the end (the question and the
// assistant's header).
std::vector<int32_t> render_prompt_within(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer, int64_t max_ids);

// The same renderings as text, special tokens spelt out (`rlhf tokenizer apply-chat --text`).
std::string render_chat_text(const std::vector<ChatTurn>& turns, const Tokenizer& tokenizer, bool generation_prompt);

// Fits an example into max_ids ids (block_size + 1: inputs and shifted targets). Too long: the
// prompt (everything before the final reply) loses tokens from its left end, keeping its first
// `head` ids (BOS and the first role marker), but keeps at least min(its length, min_prompt_fraction * max_ids) tokens;
// then the final reply is cut from the right. nullopt if no reply token would remain.
std::optional<RenderedExample> fit_to_window(RenderedExample example, int64_t max_ids, double min_prompt_fraction);

}  // namespace rlhf
