// GPT-2's byte-level BPE: the pre-tokeniser against GPT-2's pattern by hand, a toy vocabulary
// (no data needed), and the real GPT-2 files against the ids tiktoken gives 324 texts
// (../shared/data/gpt2-bpe), through the library and through the CLI.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "rlhf/core/fs.h"
#include "rlhf/tokenizer/gpt2_bpe.h"
#include "rlhf/tokenizer/gpt2_pretokenize.h"
#include "rlhf/tokenizer/tokenizer.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

std::vector<std::string> pieces(std::string_view text) {
    std::vector<std::string> out;
    for (auto p : gpt2_pretokenize(text)) out.emplace_back(p);
    return out;
}

using Pieces = std::vector<std::string>;

}  // namespace

// GPT-2's pattern: contractions, letters, numbers, other, and white space runs.
TEST_CASE("GPT-2's pattern: contractions, letters, digits, other, space", "[tokenizer][gpt2]") {
    CHECK(pieces("Hello world") == Pieces{"Hello", " world"});
    CHECK(pieces("I'm you're they've it's we'll he'd") ==
          Pieces{"I", "'m", " you", "'re", " they", "'ve", " it", "'s", " we", "'ll", " he", "'d"});
    CHECK(pieces("IT'S") == Pieces{"IT", "'", "S"});  // case-sensitive, as GPT-2's pattern
    CHECK(pieces("'sup") == Pieces{"'s", "up"});
    CHECK(pieces("3.14 1,000") == Pieces{"3", ".", "14", " 1", ",", "000"});
    // A run of white space leaves its last character to the word after it, unless it ends the text.
    CHECK(pieces("a  b") == Pieces{"a", " ", " b"});
    CHECK(pieces("hello  world   ") == Pieces{"hello", " ", " world", "   "});
    CHECK(pieces("a\n\nb") == Pieces{"a", "\n", "\n", "b"});
    CHECK(pieces("\n\n\n") == Pieces{"\n\n\n"});
    CHECK(pieces("x \ty") == Pieces{"x", " ", "\t", "y"});
    CHECK(pieces(" ?!") == Pieces{" ?!"});
    // Unicode classes: letters (é, Cyrillic, CJK), numbers (Arabic-Indic digits), NBSP is white space.
    CHECK(pieces("café Привет 世界") == Pieces{"café", " Привет", " 世界"});
    CHECK(pieces("x ١٢٣") == Pieces{"x", " ١٢٣"});
    CHECK(pieces("a\xC2\xA0" "b") == Pieces{"a", "\xC2\xA0", "b"});
    // Invalid UTF-8: one "other" character per byte, nothing dropped.
    CHECK(pieces("a\xFF\xFE b") == Pieces{"a", "\xFF\xFE", " b"});
    std::string joined;
    for (const auto& p : pieces("  mixed\t\n text, 42 -- ünïcödé!  ")) joined += p;
    CHECK(joined == "  mixed\t\n text, 42 -- ünïcödé!  ");
    CHECK(pieces("").empty());
}

// Byte-level BPE on a toy vocabulary: merges by rank, exact decode of any bytes.
TEST_CASE("toy byte-level BPE: merges by rank, decodes any bytes", "[tokenizer][gpt2]") {
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    Tokenizer tok = Tokenizer::from_gpt2_bpe(Gpt2Bpe(vocab, "vocab.json", merges, "merges.txt"), "toy");
    CHECK(tok.kind() == Tokenizer::Kind::gpt2_bpe);
    CHECK(tok.encode("hello") == std::vector<int32_t>{259});
    CHECK(tok.encode("hello world") == std::vector<int32_t>{259, 260, 'o', 'r', 'l', 'd'});
    CHECK(tok.encode("shell") == std::vector<int32_t>{'s', 258});
    // <|endoftext|> is BOS and EOS; no text encodes to it; PAD is the added <|pad|> right after.
    CHECK(tok.eos_id() == 261);
    CHECK(tok.bos_id() == 261);
    CHECK(tok.pad_id() == 262);
    CHECK(tok.unk_id() == -1);
    CHECK(tok.vocab_size() == 263);
    CHECK(tok.encode("<|endoftext|>").size() > 1);
    const std::string bytes = std::string("caf\xC3\xA9 \xFF\x00 end", 11);
    CHECK(tok.decode(tok.encode(bytes)) == bytes);
    CHECK(tok.decode({261, 259, 262}) == "hello");  // specials and PAD are dropped
    // Saved and loaded (Hugging Face's file names), the same tokenizer.
    test::TempDir dir;
    tok.save(dir / "bpe");
    CHECK(std::filesystem::exists(dir / "bpe" / "vocab.json"));
    CHECK(std::filesystem::exists(dir / "bpe" / "merges.txt"));
    Tokenizer back = Tokenizer::load(dir / "bpe");
    CHECK(back.same_vocabulary(tok));
    CHECK(back.pad_id() == 262);
    CHECK(back.encode("hello world") == tok.encode("hello world"));
    CHECK(Tokenizer::is_tokenizer_dir(dir / "bpe"));
}

// Broken GPT-2 BPE files are one clear line naming the file (and line).
TEST_CASE("broken GPT-2 BPE files are one clear line naming the file", "[tokenizer][gpt2]") {
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    REQUIRE_THROWS_WITH(Gpt2Bpe(vocab, "vocab.json", "#version: 0.2\nl l\nh e x\n", "merges.txt"),
                        Contains("merges.txt:3") && Contains("two pieces"));
    REQUIRE_THROWS_WITH(Gpt2Bpe(vocab, "vocab.json", "q z\n", "merges.txt"),
                        Contains("merges.txt:1") && Contains("lacks"));
    REQUIRE_THROWS_WITH(Gpt2Bpe("{\"a\": 0}", "vocab.json", "", "merges.txt"), Contains("vocab.json") && Contains("byte"));
    REQUIRE_THROWS_WITH(Gpt2Bpe("[1, 2", "vocab.json", "", "merges.txt"), Contains("vocab.json") && Contains("JSON"));
    REQUIRE_THROWS_WITH(Gpt2Bpe("{\"a\": 5}", "vocab.json", "", "merges.txt"), Contains("ids must be"));
    REQUIRE_THROWS_WITH(Tokenizer::from_gpt2_bpe(Gpt2Bpe(vocab, "v", merges, "m"), "toy", "<|nope|>"),
                        Contains("<|nope|>"));
}

// GPT-2's real files give tiktoken's ids for all 324 reference texts, and decode back.
TEST_CASE("GPT-2's files give tiktoken's ids for 324 texts, decode back", "[tokenizer][gpt2][data]") {
    const auto dir = test::shared_data_or_skip("gpt2-bpe");
    Tokenizer tok = Tokenizer::load(dir);  // encoder.json + vocab.bpe
    REQUIRE(tok.spm_vocab_size() == 50257);
    REQUIRE(tok.eos_id() == 50256);
    REQUIRE(tok.pad_id() == 50257);
    int64_t texts = 0;
    std::ifstream in(dir / "reference_encodings.jsonl");
    for (std::string line; std::getline(in, line);) {
        const auto r = nlohmann::json::parse(line);
        const auto text = r["text"].get<std::string>();
        const auto expected = r["ids"].get<std::vector<int32_t>>();
        INFO("text " << texts << ": " << text.substr(0, 80));
        REQUIRE(tok.encode(text) == expected);
        REQUIRE(tok.decode(expected) == text);
        ++texts;
    }
    REQUIRE(texts == 324);
}

TEST_CASE("rlhf tokenizer import-gpt2 and encode print tiktoken's ids", "[integration][tokenizer][gpt2][data][cli][light]") {
    const auto dir = test::shared_data_or_skip("gpt2-bpe");
    test::TempDir out;
    auto r = test::run_cli("tokenizer import-gpt2 --encoder " + test::shell_quote((dir / "encoder.json").string()) +
                           " --vocab " + test::shell_quote((dir / "vocab.bpe").string()) + " --out " +
                           test::shell_quote((out / "gpt2").string()));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    REQUIRE(std::filesystem::exists(out / "gpt2" / "added_tokens.json"));
    r = test::run_cli("tokenizer encode --tokenizer " + test::shell_quote((out / "gpt2").string()) + " --jsonl " +
                      test::shell_quote((dir / "reference_encodings.jsonl").string()));
    REQUIRE(r.exit_code == 0);
    std::ifstream in(dir / "reference_encodings.jsonl");
    std::istringstream printed(r.output);
    int64_t n = 0;
    for (std::string line, got; std::getline(in, line); ++n) {
        REQUIRE(std::getline(printed, got));
        INFO("record " << n);
        REQUIRE(nlohmann::json::parse(got) == nlohmann::json::parse(line)["ids"]);
    }
    REQUIRE(n == 324);
    // Hugging Face's names work too; a bad merges line is file:line and writes nothing.
    test::write_text(out / "merges.txt", "#version: 0.2\nĠ t\nbroken\n");
    r = test::run_cli("tokenizer import-gpt2 --vocab-json " + test::shell_quote((dir / "encoder.json").string()) +
                      " --merges " + test::shell_quote((out / "merges.txt").string()) + " --out " +
                      test::shell_quote((out / "bad").string()));
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("merges.txt:3"));
    CHECK_FALSE(std::filesystem::exists(out / "bad"));
}

// A GPT-2 BPE tokenizer goes through pre-training, SFT and their checkpoints.
TEST_CASE("a GPT-2 BPE tokenizer works in pretrain, SFT, checkpoints", "[integration][gpt2]") {
    test::TempDir dir;
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    std::filesystem::create_directories(dir / "tok");
    test::write_text(dir / "tok" / "vocab.json", vocab);
    test::write_text(dir / "tok" / "merges.txt", merges);
    auto cli = [&](const std::string& args) {
        auto r = test::run_cli(args);
        INFO(args << "\n" << r.output);
        REQUIRE(r.exit_code == 0);
        return r;
    };
    cli("data demo-corpus --out " + test::shell_quote((dir / "corpus.txt").string()) + " --bytes 20000");
    cli("data demo-sft --out " + test::shell_quote((dir / "sft.jsonl").string()) + " --count 100");
    const std::string tiny = test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/");
    cli("train " + tiny + "pretrain.yaml --set data.text=[" + (dir / "corpus.txt").string() + "] tokenizer.path=" +
        (dir / "tok").string() + " out_dir=" + (dir / "pre").string() +
        " train.max_steps=4 train.eval_every=0 checkpoint.every=0 runtime.threads=1");
    cli("train " + tiny + "sft.yaml --set init_from=" + (dir / "pre").string() + " data.files=[" +
        (dir / "sft.jsonl").string() + "] out_dir=" + (dir / "sft").string() +
        " train.max_steps=2 train.eval_every=0 checkpoint.every=0 runtime.threads=1");
    // Both checkpoints carry the BPE files; SFT's adds the chat markers after <|pad|>.
    const Tokenizer original = Tokenizer::load(dir / "tok");
    const Tokenizer pre = Tokenizer::load(dir / "pre" / "checkpoints" / "step-000004");
    const Tokenizer sft = Tokenizer::load(dir / "sft" / "checkpoints" / "step-000002");
    CHECK(pre.kind() == Tokenizer::Kind::gpt2_bpe);
    CHECK(pre.same_vocabulary(original));
    CHECK(sft.fingerprint() == original.fingerprint());
    CHECK(sft.pad_id() == 262);
    CHECK(sft.vocab_size() > original.vocab_size());
    CHECK(sft.added_tokens().front() == "<|pad|>");
    CHECK(sft.encode("hello world") == original.encode("hello world"));
}

// Hugging Face's added_tokens.json ({token: id}) is read at its ids, and a token off its id is an error.
TEST_CASE("added_tokens.json is read at its ids, an id off is an error",
          "[tokenizer][gpt2]") {
    test::TempDir dir;
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    test::write_text(dir / "vocab.json", vocab);
    test::write_text(dir / "merges.txt", merges);
    // <|endoftext|> (261) is the base vocabulary's own; <|pad|> is already 262.
    test::write_text(dir / "added_tokens.json", R"({"<|user|>": 263, "<|endoftext|>": 261, "<|pad|>": 262})");
    const Tokenizer tok = Tokenizer::load(dir.path());
    CHECK(tok.vocab_size() == 264);
    CHECK(tok.piece_to_id("<|user|>") == 263);
    CHECK(tok.pad_id() == 262);
    // "[PAD]" at 262 would land at 263, after our <|pad|>: ids would shift silently.
    test::write_text(dir / "added_tokens.json", R"({"[PAD]": 262})");
    REQUIRE_THROWS_WITH(Tokenizer::load(dir.path()), Contains("[PAD]") && Contains("262") && Contains("added_tokens.json"));
}
