// Hugging Face tokenizer.json files beyond GPT-2's: byte-level BPEs configured as Qwen2's (NFC,
// its split regex, added tokens past the vocabulary), Llama-3's (its regex, ignore_merges) and
// SmolLM2's (digits one by one, then GPT-2's split) — trained by the `tokenizers` library
// (tests/reference/hf_tokenizers.py) — give its ids on text that exercises each rule, decode
// back, survive our save and load and our tokenizer.json export, and treat special tokens in user
// text as plain text.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/hf_dir.h"
#include "rlhf/core/error.h"
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

TEST_CASE("Qwen2/Llama-3/SmolLM2 tokenizer.json: the library's ids", "[integration][hf][tokenizer]") {
    test::TempDir dir;
    test::run_transformers_reference("hf_tokenizers.py", "make " + test::shell_quote(dir.path().string()));
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
