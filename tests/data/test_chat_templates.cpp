// The models' own chat formats by hand (no library): which Hugging Face templates are recognised
// as ChatML or Llama-3's header format and what they keep (a default system turn, Qwen3's empty
// think block, Llama-3.2's date lines), the ids and loss mask of each rendering, the end-of-turn
// token, the record that travels with a tokenizer, and what `chat.template` does to a tokenizer.
// tests/tokenizer/test_hf_tokenizer.cpp checks the same renderings against transformers.
#include <catch2/catch.hpp>

#include "rlhf/core/error.h"
#include "rlhf/data/chat_format.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

// Template sources as they sit in a tokenizer_config.json: "\n" is spelt as backslash-n.
const std::string kChatmlWithSystem =
    "{%- for m in messages %}{%- if loop.first and m['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are helpful, it\\'s said.<|im_end|>\\n' }}{%- endif %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
const std::string kChatmlThink =
    "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}";
const std::string kLlama32 =
    "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}{{- \"<|eot_id|>\" }}";
const std::string kMistral = "{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}";

std::vector<int32_t> cat(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

}  // namespace

TEST_CASE("Hugging Face chat templates are recognised by their markers", "[chat][tokenizer]") {
    ChatTemplate t = recognise_chat_template(kChatmlWithSystem, "");
    CHECK(t.style == ChatStyle::chatml);
    CHECK(t.default_system == "You are helpful, it's said.");
    CHECK_FALSE(t.empty_think);
    CHECK(t.jinja == kChatmlWithSystem);

    t = recognise_chat_template(kChatmlThink, "");
    CHECK(t.style == ChatStyle::chatml);
    CHECK(t.default_system.empty());
    CHECK(t.empty_think);

    t = recognise_chat_template(kLlama32, "<|begin_of_text|>");
    CHECK(t.style == ChatStyle::llama3);
    CHECK(t.bos == "<|begin_of_text|>");
    CHECK(t.system_preamble == "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");

    CHECK(recognise_chat_template(kMistral, "<s>").style == ChatStyle::unrecognised);
    CHECK(chat_template_from_json(chat_template_to_json(recognise_chat_template(kLlama32, "<s>")), "<test>").system_preamble ==
          recognise_chat_template(kLlama32, "<s>").system_preamble);
}

TEST_CASE("ChatML and Llama-3 renderings: ids, loss mask, end of turn", "[chat][tokenizer]") {
    test::TempDir dir;
    const Tokenizer base = test::chat_char_tokenizer(dir.path());  // with our role tokens too
    auto enc = [&](const std::string& s) { return base.encode(s); };
    const std::vector<ChatTurn> talk = {{"user", "Hi"}, {"assistant", "Yo"}};

    SECTION("chatml: turns joined by a newline; the reply and <|im_end|> in the loss") {
        Tokenizer tok = base.with_added_tokens({"<|im_start|>", "<|im_end|>"});
        tok = with_chat_setting(tok, "chatml", "<test>");
        REQUIRE(chat_tokens_to_add(tok).empty());
        const int32_t S = tok.piece_to_id("<|im_start|>"), E = tok.piece_to_id("<|im_end|>");
        const auto r = render_conversation(talk, tok);
        const auto prompt = cat({{S}, enc("user\nHi"), {E}, enc("\n"), {S}, enc("assistant\n")});
        CHECK(r.ids == cat({prompt, enc("Yo"), {E}}));
        CHECK(render_prompt({talk[0]}, tok) == prompt);
        std::vector<uint8_t> mask(prompt.size(), 0);
        mask.insert(mask.end(), enc("Yo").size() + 1, 1);
        CHECK(r.loss_mask == mask);
        CHECK(end_of_turn_id(tok) == E);
        CHECK(render_chat_text(talk, tok, false) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>");

        // A default system turn, and Qwen3's empty think block before the reply (prompt side).
        ChatTemplate t = tok.chat_template();
        t.default_system = "Be kind.";
        const Tokenizer sys = tok.with_chat_template(t);
        CHECK(render_chat_text({talk[0]}, sys, true) == "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                                                        "<|im_start|>assistant\n");
        CHECK(render_chat_text({{"system", "Terse."}, talk[0]}, sys, true).find("Be kind.") == std::string::npos);
        t.default_system = "";
        t.empty_think = true;
        Tokenizer think = tok.with_chat_template(t);
        CHECK(chat_tokens_to_add(think) == std::vector<std::string>{"<think>", "</think>"});
        think = think.with_added_tokens(chat_tokens_to_add(think));
        CHECK(render_chat_text(talk, think, false) ==
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nYo<|im_end|>");
        const auto rt = render_conversation(talk, think);
        const auto pt = render_prompt({talk[0]}, think);
        CHECK(std::equal(pt.begin(), pt.end(), rt.ids.begin()));
        CHECK(std::count(rt.loss_mask.begin(), rt.loss_mask.end(), 1) == static_cast<long>(enc("Yo").size() + 1));

        // The format travels with the tokenizer.
        sys.save(dir / "saved");
        const Tokenizer back = Tokenizer::load(dir / "saved");
        CHECK(back.chat_template().style == ChatStyle::chatml);
        CHECK(back.chat_template().default_system == "Be kind.");
        CHECK(render_conversation(talk, back).ids == render_conversation(talk, sys).ids);
    }
    SECTION("llama3: BOS, headers, trimmed text, the preamble's system turn") {
        Tokenizer tok = base.with_added_tokens({"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"});
        tok = tok.with_chat_template(recognise_chat_template(kLlama32, "<|begin_of_text|>"));
        REQUIRE(has_chat_format(tok));
        const int32_t B = tok.piece_to_id("<|begin_of_text|>"), H = tok.piece_to_id("<|start_header_id|>"),
                      HE = tok.piece_to_id("<|end_header_id|>"), T = tok.piece_to_id("<|eot_id|>");
        const auto r = render_conversation({{"system", " Terse. "}, {"user", " Hi\n"}, {"assistant", "Yo "}}, tok);
        const auto prompt = cat({{B, H}, enc("system"), {HE}, enc("\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nTerse."),
                                 {T, H}, enc("user"), {HE}, enc("\n\nHi"), {T, H}, enc("assistant"), {HE}, enc("\n\n")});
        CHECK(r.ids == cat({prompt, enc("Yo"), {T}}));
        CHECK(std::count(r.loss_mask.begin(), r.loss_mask.end(), 1) == static_cast<long>(enc("Yo").size() + 1));
        CHECK(end_of_turn_id(tok) == T);
        // Cut from the left, a prompt keeps its head: BOS and the first header.
        const auto cut = render_prompt_within({{"user", std::string(80, 'a')}}, tok, 30);
        CHECK(cut.size() == 30);
        const auto head = cat({{B, H}, enc("system"), {HE}}), tail = cat({{H}, enc("assistant"), {HE}, enc("\n\n")});
        CHECK(std::vector<int32_t>(cut.begin(), cut.begin() + static_cast<long>(head.size())) == head);
        CHECK(std::vector<int32_t>(cut.end() - static_cast<long>(tail.size()), cut.end()) == tail);
    }
    SECTION("chat.template: auto keeps a model's own; an unknown template names the key; rlhf is ours") {
        const Tokenizer mistral = base.with_chat_template(recognise_chat_template(kMistral, "<s>"));
        CHECK_FALSE(has_chat_format(mistral));
        CHECK_THROWS_WITH(with_chat_setting(mistral, "auto", "run.yaml: chat.template"),
                          Contains("run.yaml: chat.template") && Contains("set chat.template: chatml or llama3"));
        CHECK_THROWS_WITH(render_prompt(talk, mistral), Contains("set chat.template"));
        // Teaching a model ChatML afresh: the stage adds its two tokens.
        const Tokenizer fresh = with_chat_setting(mistral, "chatml", "<test>");
        CHECK(chat_tokens_to_add(fresh) == std::vector<std::string>{"<|im_start|>", "<|im_end|>"});
        const Tokenizer ours = with_chat_setting(mistral, "rlhf", "<test>");
        CHECK(ours.chat_template().style == ChatStyle::rlhf);
        CHECK(render_conversation(talk, ours).ids ==
              cat({{ours.bos_id(), ours.piece_to_id("<|user|>")}, enc("Hi"), {ours.piece_to_id("<|assistant|>")}, enc("Yo"),
                   {ours.eos_id()}}));
        CHECK(end_of_turn_id(ours) == ours.eos_id());
    }
}
