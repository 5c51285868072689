#include <catch2/catch.hpp>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/tokenizer/tokenizer.h"
#include "rlhf/tokenizer/train.h"
#include "rlhf/data/demo_corpus.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {
Tokenizer train_on(const test::TempDir& dir, const std::string& text, const std::string& type, int vocab) {
    test::write_text(dir / "corpus.txt", text);
    TokenizerTrainOptions o;
    o.inputs = {dir / "corpus.txt"};
    o.model_type = type;
    o.vocab_size = vocab;
    return train_tokenizer(o);
}
}  // namespace

// Trained tokenizers reserve distinct UNK, BOS, EOS and PAD ids.
TEST_CASE("trained tokenizers reserve distinct UNK, BOS, EOS, PAD ids", "[tokenizer]") {
    test::TempDir dir;
    for (const auto& [type, vocab] : std::vector<std::pair<std::string, int>>{{"char", 0}, {"bpe", 400}, {"unigram", 400}}) {
        Tokenizer tok = train_on(dir, demo_corpus(20000), type, vocab);
        INFO(type);
        REQUIRE(tok.unk_id() == 0);
        REQUIRE(tok.bos_id() == 1);
        REQUIRE(tok.eos_id() == 2);
        REQUIRE(tok.pad_id() == 3);
        REQUIRE(tok.piece_to_id("\n") == 4);
        REQUIRE(tok.piece_to_id("\t") == 5);
    }
}

// Encoding adds no BOS or EOS and decoding round-trips text exactly.
TEST_CASE("encoding adds no BOS or EOS, decoding round-trips exactly", "[tokenizer]") {
    test::TempDir dir;
    const std::string text = "First line:\n  two  spaces\tand a tab.\n\nEnd.";
    for (const auto& [type, vocab] : std::vector<std::pair<std::string, int>>{{"char", 0}, {"bpe", 350}, {"unigram", 350}}) {
        Tokenizer tok = train_on(dir, demo_corpus(20000) + text, type, vocab);
        auto ids = tok.encode(text);
        INFO(type);
        REQUIRE(!ids.empty());
        REQUIRE(ids.front() != tok.bos_id());
        REQUIRE(ids.back() != tok.eos_id());
        REQUIRE(tok.decode(ids) == text);
        // specials are dropped on decode
        std::vector<int32_t> framed = {tok.bos_id()};
        framed.insert(framed.end(), ids.begin(), ids.end());
        framed.push_back(tok.eos_id());
        framed.push_back(tok.pad_id());
        REQUIRE(tok.decode(framed) == text);
    }
}

TEST_CASE("byte fallback encodes characters never seen in training", "[tokenizer]") {
    test::TempDir dir;
    Tokenizer tok = train_on(dir, demo_corpus(20000), "bpe", 400);
    const std::string unseen = "na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac";  // "naïve — 日本"
    auto ids = tok.encode(unseen);
    REQUIRE(std::find(ids.begin(), ids.end(), tok.unk_id()) == ids.end());
    REQUIRE(tok.decode(ids) == unseen);
}

// A char tokenizer holds exactly the corpus alphabet plus six fixed pieces.
TEST_CASE("a char tokenizer is the corpus alphabet plus six pieces", "[tokenizer]") {
    test::TempDir dir;
    Tokenizer tok = train_on(dir, "abcabc\nbca a\n", "char", 0);
    // <unk> <s> </s> <pad> "\n" "\t" + {a, b, c, ' ' (as the whitespace piece)}
    REQUIRE(tok.vocab_size() == 10);
    REQUIRE(tok.decode(tok.encode("cab a\n")) == "cab a\n");
}

TEST_CASE("tokenizers save, load and keep their fingerprint", "[tokenizer]") {
    test::TempDir dir;
    Tokenizer tok = train_on(dir, demo_corpus(10000), "bpe", 400);
    tok.save(dir / "tok");
    Tokenizer back = Tokenizer::load(dir / "tok");
    REQUIRE(back.fingerprint() == tok.fingerprint());
    REQUIRE(back.encode("The old king sees the sea.") == tok.encode("The old king sees the sea."));
    REQUIRE(std::filesystem::exists(dir / "tok" / "tokenizer.vocab"));
}

TEST_CASE("tokenizer errors are clear", "[tokenizer]") {
    test::TempDir dir;
    REQUIRE_THROWS_WITH(Tokenizer::load(dir / "missing"), Contains("tokenizer model not found"));
    test::write_text(dir / "junk.model", "this is not a protobuf");
    REQUIRE_THROWS_WITH(Tokenizer::load(dir / "junk.model"), Contains("junk.model") && Contains("not a valid"));
    test::write_text(dir / "empty.txt", "");
    TokenizerTrainOptions o;
    o.inputs = {dir / "empty.txt"};
    o.model_type = "char";
    REQUIRE_THROWS_WITH(train_tokenizer(o), Contains("no text"));
    o.model_type = "bpe";
    REQUIRE_THROWS_WITH(train_tokenizer(o), Contains("vocab size is required"));
    o.model_type = "wordpiece";
    REQUIRE_THROWS_WITH(train_tokenizer(o), Contains("unknown model type"));
    Tokenizer tok = train_on(dir, "abc", "char", 0);
    REQUIRE_THROWS_WITH(tok.decode({1000}), Contains("outside the vocabulary"));

    // Too few pieces for the corpus's characters asks for a larger size, too many for a smaller one.
    test::write_text(dir / "alphabet.txt", "the quick brown fox jumps over the lazy dog\n0123456789 ,.;:!?\n");
    o.inputs = {dir / "alphabet.txt"};
    o.model_type = "bpe";
    o.vocab_size = 12;
    REQUIRE_THROWS_WITH(train_tokenizer(o), Contains("larger --vocab-size") && !Contains("smaller --vocab-size"));
    o.vocab_size = 5000;  // more than the text can make: fewer pieces (hard_vocab_limit is off), no error
    REQUIRE(train_tokenizer(o).vocab_size() < 5000);
}

TEST_CASE("a long text without newlines trains a tokenizer", "[tokenizer]") {
    test::TempDir dir;
    std::string words;
    while (words.size() < 2'000'000) words += "lorem ipsum dolor sit amet ";  // 2 MB, one line
    test::write_text(dir / "one_line.txt", words);
    TokenizerTrainOptions o;
    o.inputs = {dir / "one_line.txt"};
    o.model_type = "bpe";
    o.vocab_size = 400;  // byte fallback's 256 pieces plus the alphabet plus merges
    Tokenizer tok = train_tokenizer(o);
    REQUIRE(tok.decode(tok.encode("dolor sit amet")) == "dolor sit amet");
}

TEST_CASE("a real UTF-8 book with BOM and CRLF round-trips", "[tokenizer][shared-data]") {
    const auto book = test::shared_data_or_skip("gutenberg/frankenstein_84-0.txt");
    TokenizerTrainOptions o;
    o.inputs = {book};
    o.model_type = "bpe";
    o.vocab_size = 2000;
    Tokenizer tok = train_tokenizer(o);
    const std::string text = read_text_file(book);
    REQUIRE(text.rfind("\xEF\xBB\xBF", 0) == std::string::npos);  // BOM stripped
    REQUIRE(text.find('\r') == std::string::npos);                // CRLF normalised
    auto ids = tok.encode(text);
    REQUIRE(tok.decode(ids) == text);
    REQUIRE(static_cast<double>(text.size()) / static_cast<double>(ids.size()) > 3.0);  // real compression
}
