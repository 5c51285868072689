// Hugging Face tokenizer.json files beyond GPT-2's: byte-level BPEs configured as Qwen2's (NFC,
// its split regex, added tokens past the vocabulary), Llama-3's (its regex, ignore_merges) and
// SmolLM2's (digits one by one, then GPT-2's split) — trained by the `tokenizers` library
// (tests/reference/hf_tokenizers.py) — give its ids on text that exercises each rule, decode
// back, survive our save and load and our tokenizer.json export, and treat special tokens in user
// text as plain text. Their chat templates render as transformers renders them.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/hf_dir.h"
#include "rlhf/core/error.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/tokenizer/pretokenizer.h"
#include "rlhf/tokenizer/tokenizer.h"
#include "support/helpers.h"
#include "support/hf_logits.h"

using namespace rlhf;
using Catch::Contains;

namespace {

// Contractions in both cases, digit runs, punctuation runs, NFD accents (NFC'd by Qwen), CJK,
// emoji, tabs, \r\n, runs of spaces before a word and at the end, and the family's special tokens.
const std::vector<std::string> kTexts = {
    "Hello world! It's 12345 steps, isn't it? WE'LL see, THEY'VE said.",
    "cafe\xcc\x81 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae \xf0\x9f\xa4\x96\xf0\x9f\x9a\x80 3.14159",
    "def f(x):\n\treturn x * 2  # comment\n\n\n    indented    spaces\r\nwindows line   ",
    "<|im_end|> <|eot_id|> <|endoftext|> are plain text here",
    "1234567 12 1 000",
    "",
};

}  // namespace

TEST_CASE("Qwen2/Llama-3/SmolLM2 tokenizer.json: the library's ids", "[integration][hf][tokenizer][light]") {
    test::TempDir dir;
    test::make_transformers_reference_files("hf_tokenizers.py", dir.path());
    const std::string texts = test::shell_quote(nlohmann::json(kTexts).dump());
    for (const std::string kind : {"qwen2", "llama3", "smollm2"}) {
        INFO(kind);
        const Tokenizer tok = Tokenizer::load(dir / kind);
        const auto want = test::reference_json("hf_tokenizers.py", "encode " + test::shell_quote((dir / kind).string()) + " " + texts);
        for (size_t i = 0; i < kTexts.size(); ++i) {
            INFO("text " << i << ": " << kTexts[i]);
            const auto ids = tok.encode(kTexts[i]);
            CHECK(ids == want["ids"][i].get<std::vector<int32_t>>());
            if (kind != "qwen2" || i != 1) CHECK(tok.decode(ids) == kTexts[i]);  // Qwen2 NFC-normalises text 1
        }
        // The end of text comes from tokenizer_config.json; Qwen's and Llama-3's added tokens sit at their ids.
        CHECK(tok.piece(tok.eos_id()) == (kind == "llama3" ? "<|end_of_text|>" : "<|endoftext|>"));
        if (kind == "qwen2") CHECK(tok.piece_to_id("<|im_end|>") == 422);

        // Our save and load keep the split, ignore_merges and the end of text.
        tok.save(dir / (kind + "_saved"));
        const Tokenizer back = Tokenizer::load(dir / (kind + "_saved"));
        CHECK(back.same_vocabulary(tok));
        CHECK(back.eos_id() == tok.eos_id());
        for (const auto& text : kTexts) CHECK(back.encode(text) == tok.encode(text));

        // Out as a tokenizer.json (what `convert --to-hf` writes), which the library reads with our ids.
        std::filesystem::create_directories(dir / (kind + "_hf"));
        test::write_text(dir / (kind + "_hf") / "tokenizer.json", hf_tokenizer_json(tok).dump());
        const auto again = test::reference_json("hf_tokenizers.py", "encode " + test::shell_quote((dir / (kind + "_hf")).string()) + " " + texts);
        CHECK(again["ids"] == want["ids"]);
    }
    // The command line: import-hf makes a tokenizer directory that encodes as the library does.
    auto r = test::run_cli("tokenizer import-hf --from " + test::shell_quote((dir / "llama3").string()) + " --out " +
                           test::shell_quote((dir / "imported").string()));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    r = test::run_shell("printf '%s' " + test::shell_quote(kTexts[0]) + " | " + test::shell_quote(RLHF_CLI_PATH) +
                        " tokenizer encode --tokenizer " + test::shell_quote((dir / "imported").string()));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto want = test::reference_json("hf_tokenizers.py", "encode " + test::shell_quote((dir / "llama3").string()) + " " + texts);
    CHECK(nlohmann::json::parse(r.output.substr(r.output.find('['))) == want["ids"][0]);
}

// The splits by hand, with no library: Qwen2 cuts digits one by one, Llama-3 in threes,
// contractions match in either case, and the text between matches is kept.
TEST_CASE("pre-tokenizer splits: digits, contractions, the gaps kept", "[tokenizer]") {
    const std::string qwen = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    auto split = [](const std::string& pattern, const std::string& text) {
        nlohmann::json doc = {{"normalizer", nullptr},
                              {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {
                                  {{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                                  {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}}};
        const auto pre = PreTokenizer::from_tokenizer_json(doc, "test");
        std::vector<std::string> out;
        for (auto p : pre.split(text)) out.emplace_back(p);
        return out;
    };
    CHECK(split(qwen, "ab 123") == std::vector<std::string>{"ab", " ", "1", "2", "3"});
    std::string llama = qwen;
    llama.replace(llama.find("\\p{N}|"), 6, "\\p{N}{1,3}|");
    CHECK(split(llama, "12345") == std::vector<std::string>{"123", "45"});
    CHECK(split(qwen, "IT'S ok") == std::vector<std::string>{"IT", "'S", " ok"});
    CHECK(split("x", "axbxxc") == std::vector<std::string>{"a", "x", "b", "x", "x", "c"});  // gaps are pieces
    CHECK(split("x?", "ab") == std::vector<std::string>{"ab"});  // empty matches split nothing

    // What it cannot reproduce is refused by name.
    auto refused = [](const std::string& text) {
        try {
            PreTokenizer::from_tokenizer_json(nlohmann::json::parse(text), "tokenizer.json");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK_THAT(refused(R"({"normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "ByteLevel"}})"),
               Contains("normalizer 'Lowercase'"));
    CHECK_THAT(refused(R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Removed"}})"),
               Contains("behavior 'Removed'"));
    CHECK_THAT(refused(R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(x"}, "behavior": "Isolated"}})"),
               Contains("does not compile"));
    CHECK_THAT(refused(R"({"pre_tokenizer": {"type": "Whitespace"}})"), Contains("'Whitespace'"));
    CHECK_THAT(refused(R"({"pre_tokenizer": {"type": "Digits"}})"), Contains("no ByteLevel"));
}

// The models' chat formats against transformers' apply_chat_template (the templates written in
// hf_tokenizers.py in each family's style): a conversation's ids and its generation prompt, for
// the template a tokenizer_config.json brings and for ours on export.
TEST_CASE("chat formats give transformers' apply_chat_template ids", "[integration][hf][tokenizer][light]") {
    test::TempDir dir;
    test::make_transformers_reference_files("hf_tokenizers.py", dir.path());
    const auto convs = nlohmann::json::parse(R"([
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4, of course."}],
        [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Name a colour."},
         {"role": "assistant", "content": "Blue!"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "  A joke, please \n"}, {"role": "assistant", "content": "Why did the chicken cross? "}]])");
    // Every tokenizer directory to check, with the ids ours must add after a conversation; then
    // one Python start renders the conversations with each.
    struct Check {
        Tokenizer tok;
        std::filesystem::path hf_dir;
        std::vector<int32_t> trailing;
        std::string name;
    };
    std::vector<Check> checks;
    for (const std::string kind : {"qwen2", "llama3", "smollm2"}) {
        INFO(kind);
        const Tokenizer tok = read_hf_tokenizer(dir / kind);
        REQUIRE(tok.chat_template().style == (kind == "llama3" ? ChatStyle::llama3 : ChatStyle::chatml));
        CHECK(tok.chat_template().empty_think == (kind == "qwen2"));
        CHECK(tok.chat_template().default_system.empty() == (kind != "smollm2"));
        // ChatML's template writes "\n" after the last <|im_end|>; our rendering ends at it.
        checks.push_back({tok, dir / kind, kind == "llama3" ? std::vector<int32_t>{} : tok.encode("\n"), kind});

        // Our own template for each format, on export (a model taught the format here).
        for (const std::string style : {"rlhf", "chatml", "llama3"}) {
            if ((style == "llama3") != (kind == "llama3")) continue;
            ChatTemplate t;
            t.style = *parse_chat_style(style);
            if (style == "llama3") t.bos = "<|begin_of_text|>";
            Tokenizer ours = tok.with_chat_template(t);
            ours = ours.with_added_tokens(chat_tokens_to_add(ours));
            const auto out = dir / (kind + "_" + style);
            std::filesystem::create_directories(out);
            test::write_text(out / "tokenizer.json", hf_tokenizer_json(ours).dump());
            test::write_text(out / "tokenizer_config.json", hf_tokenizer_config(ours, 64).dump());
            checks.push_back({ours, out, {}, kind + " exported as " + style});
        }
    }
    std::string args = "chat " + test::shell_quote(convs.dump());
    for (const auto& c : checks) args += " " + test::shell_quote(c.hf_dir.string());
    const auto wants = test::json_lines(test::run_transformers_reference("hf_tokenizers.py", args));
    REQUIRE(wants.size() == checks.size());
    for (size_t n = 0; n < checks.size(); ++n) {
        INFO(checks[n].name);
        for (size_t i = 0; i < convs.size(); ++i) {
            INFO("conversation " << i);
            const auto turns = parse_chat_turns(convs[i], "test");
            auto ids = render_conversation(turns, checks[n].tok).ids;
            ids.insert(ids.end(), checks[n].trailing.begin(), checks[n].trailing.end());
            CHECK(ids == wants[n]["ids"][i].get<std::vector<int32_t>>());
            CHECK(render_prompt({turns.begin(), turns.end() - 1}, checks[n].tok) == wants[n]["prompt"][i].get<std::vector<int32_t>>());
        }
    }
    // `rlhf tokenizer apply-chat` on a Hugging Face directory: the library's ids.
    const auto& want = wants[3];  // llama3's own tokenizer
    REQUIRE(checks[3].hf_dir == dir / "llama3");
    auto r = test::run_shell("printf '%s' " + test::shell_quote(convs[2].dump()) + " | " + test::shell_quote(RLHF_CLI_PATH) +
                             " tokenizer apply-chat --tokenizer " + test::shell_quote((dir / "llama3").string()));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(nlohmann::json::parse(r.output.substr(r.output.find('['))) == want["ids"][2]);
}
