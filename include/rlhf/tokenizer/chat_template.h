// Which chat format a tokenizer's model speaks, recorded with the tokenizer (chat_template.json in
// its directory) the way Hugging Face keeps a Jinja `chat_template` in tokenizer_config.json.
// We do not run Jinja: a Hugging Face template is recognised as one of the two formats today's
// open models use, and data/chat_format.cpp renders that format itself.
//
//   rlhf    ours: <BOS> <|user|> text <|assistant|> reply <EOS> (docs/chat-format.md)
//   chatml  Qwen2/2.5/3, SmolLM2: <|im_start|>role\ntext<|im_end|>\n … ; a default system turn
//           when the template writes one (Qwen2.5, SmolLM2); Qwen3's empty <think></think> block
//           before the final reply (its non-thinking mode)
//   llama3  Llama-3.x: <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ntext<|eot_id|> … ;
//           3.1/3.2 always open with a system turn holding their knowledge-cutoff and date lines
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace rlhf {

enum class ChatStyle { rlhf, chatml, llama3, unrecognised };

struct ChatTemplate {
    ChatStyle style = ChatStyle::rlhf;
    std::string default_system;   // chatml: the system text of a conversation that has none ("" = no system turn)
    std::string system_preamble;  // llama3: when set, a system turn always, its text starting with these lines
    std::string bos;              // the piece a rendering starts with ("" = none): llama3's <|begin_of_text|>
    bool empty_think = false;     // chatml: "<think>\n\n</think>\n\n" before the final reply (Qwen3)
    std::string jinja;            // the Hugging Face template it came from, written back on export ("" = none)
};

std::string chat_style_name(ChatStyle style);
// "rlhf" | "chatml" | "llama3"; nullopt otherwise.
std::optional<ChatStyle> parse_chat_style(const std::string& name);

// Recognises a Hugging Face chat template by the markers it writes; `bos_token` is
// tokenizer_config.json's. Anything else is ChatStyle::unrecognised, keeping `jinja`, so that a
// stage that needs the format can say which key to set (while pre-training never needs it).
ChatTemplate recognise_chat_template(const std::string& jinja, const std::string& bos_token);

// The Jinja template a Hugging Face export carries: the model's own when it came with one, else
// one written here for the style, so that transformers' apply_chat_template renders what we train
// on (our rendering has no text after the last end-of-turn token, and neither has this template).
std::string chat_template_jinja(const ChatTemplate& t);

// Our record of it (chat_template.json), and back (an rlhf::Error naming `source` when malformed).
nlohmann::json chat_template_to_json(const ChatTemplate& t);
ChatTemplate chat_template_from_json(const nlohmann::json& j, const std::string& source);

}  // namespace rlhf
