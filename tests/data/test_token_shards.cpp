#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <fstream>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/jsonl.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/tokenizer/train.h"
#include "rlhf/data/demo_corpus.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

TEST_CASE("shards round-trip tokens as uint16 and as uint32", "[data]") {
    test::TempDir dir;
    for (uint32_t vocab : {300u, 70000u}) {
        std::vector<int32_t> tokens;
        for (int i = 0; i < 1000; ++i) tokens.push_back(static_cast<int32_t>((i * 7919) % vocab));
        const auto path = dir / ("train_00000" + std::to_string(vocab == 300 ? 0 : 1) + ".bin");
        write_shard(path, tokens, vocab, 0xfeedULL);
        Shard shard(path);
        REQUIRE(shard.header().token_bytes == (vocab == 300 ? 2u : 4u));
        REQUIRE(shard.size() == 1000);
        REQUIRE(shard.header().tokenizer_fingerprint == 0xfeedULL);
        std::vector<int64_t> back(1000);
        shard.read(0, 1000, back.data());
        for (int i = 0; i < 1000; ++i) REQUIRE(back[static_cast<size_t>(i)] == tokens[static_cast<size_t>(i)]);
        REQUIRE(std::filesystem::file_size(path) == kShardHeaderBytes + 1000 * shard.header().token_bytes);
    }
}

TEST_CASE("a truncated, corrupted or foreign shard is a clear error", "[data]") {
    test::TempDir dir;
    std::vector<int32_t> tokens(500, 7);
    write_shard(dir / "train_000000.bin", tokens, 100, 1);
    const std::string good = read_file(dir / "train_000000.bin");

    atomic_write(dir / "cut.bin", good.substr(0, good.size() - 10));
    REQUIRE_THROWS_WITH(Shard(dir / "cut.bin"), Contains("cut.bin") && Contains("truncated"));
    atomic_write(dir / "header.bin", good.substr(0, 20));
    REQUIRE_THROWS_WITH(Shard(dir / "header.bin"), Contains("truncated"));
    std::string flipped = good;
    flipped[kShardHeaderBytes + 100] ^= 0x01;
    atomic_write(dir / "flip.bin", flipped);
    REQUIRE_THROWS_WITH(Shard(dir / "flip.bin"), Contains("checksum"));
    atomic_write(dir / "text.bin", std::string(200, 'x'));
    REQUIRE_THROWS_WITH(Shard(dir / "text.bin"), Contains("not a token shard"));
    REQUIRE_THROWS_WITH(TokenShards(dir.path(), "train", /*expected fingerprint*/ 2), Contains("different tokenizer"));
    REQUIRE_THROWS_WITH(TokenShards(dir.path(), "val", 1), Contains("no val_*.bin shards"));
}

// Batches are a pure function of (seed, index) and lie inside the data.
TEST_CASE("batches are a pure function of (seed, index), in the data", "[data]") {
    test::TempDir dir;
    std::vector<int32_t> tokens;
    for (int i = 0; i < 5000; ++i) tokens.push_back(i % 1000);
    write_shard(dir / "train_000000.bin", std::vector<int32_t>(tokens.begin(), tokens.begin() + 3000), 1000, 9);
    write_shard(dir / "train_000001.bin", std::vector<int32_t>(tokens.begin() + 3000, tokens.end()), 1000, 9);
    TokenShards shards(dir.path(), "train", 9);
    REQUIRE(shards.total_tokens() == 5000);
    REQUIRE(shards.num_windows(17) == (3000 - 16) + (2000 - 16));
    auto a = shards.batch(6, 16, 42, 7), b = shards.batch(6, 16, 42, 7), c = shards.batch(6, 16, 42, 8);
    REQUIRE(a.sizes() == torch::IntArrayRef({6, 17}));
    REQUIRE(torch::equal(a, b));
    REQUIRE_FALSE(torch::equal(a, c));
    // every window is a run of consecutive ids (mod 1000) from one shard
    auto diffs = (c.index({torch::indexing::Slice(), torch::indexing::Slice(1, torch::indexing::None)}) -
                  c.index({torch::indexing::Slice(), torch::indexing::Slice(0, -1)}))
                     .remainder(1000);
    REQUIRE((diffs == 1).all().item<bool>());
}

// Data prepare splits each file's tail into val and ends documents with EOS.
TEST_CASE("data prepare: each file's tail to val, EOS after documents", "[data]") {
    test::TempDir dir;
    const std::string a = demo_corpus(6000, 1), b = demo_corpus(4000, 2);
    test::write_text(dir / "a.txt", a);
    test::write_text(dir / "b.txt", b);
    TokenizerTrainOptions topts;
    topts.inputs = {dir / "a.txt", dir / "b.txt"};
    topts.model_type = "char";
    Tokenizer tok = train_tokenizer(topts);
    auto stats = prepare_token_shards(tok, {dir / "a.txt", dir / "b.txt"}, dir / "shards", 0.25);
    // char tokenizer: one token per byte (ASCII), plus one EOS closing each file
    const auto na = static_cast<int64_t>(a.size() + 1), nb = static_cast<int64_t>(b.size() + 1);
    REQUIRE(stats.train_tokens + stats.val_tokens == na + nb);
    REQUIRE(stats.val_tokens == na / 4 + nb / 4);
    REQUIRE(shards_tokenizer_fingerprint(dir / "shards") == tok.fingerprint());
    Shard val(dir / "shards" / "val_000000.bin");
    std::vector<int64_t> last(1);
    val.read(val.size() - 1, 1, last.data());
    REQUIRE(last[0] == tok.eos_id());
    REQUIRE(std::filesystem::exists(dir / "shards" / "tokenizer.model"));
}

// Data prepare encodes a file without newlines in bounded pieces, with the whole text's ids.
TEST_CASE("data prepare encodes a newline-free file in bounded pieces", "[data]") {
    test::TempDir dir;
    std::string line;  // ~400 KB on one line: words, double spaces and punctuation
    for (int i = 0; line.size() < 400'000; ++i) line += "word" + std::to_string(i % 97) + (i % 13 ? " " : ",  ");
    test::write_text(dir / "line.txt", line);
    TokenizerTrainOptions topts;
    topts.inputs = {dir / "line.txt"};
    topts.model_type = "bpe";
    topts.vocab_size = 300;
    Tokenizer tok = train_tokenizer(topts);

    size_t pieces = 0, longest = 0;
    for (size_t pos = 0; pos < line.size(); ++pieces) {
        const size_t end = encode_piece_end(line, pos);
        REQUIRE(end > pos);
        longest = std::max(longest, end - pos);
        pos = end;
    }
    REQUIRE(pieces >= 6);
    REQUIRE(longest <= (size_t{1} << 16));
    // No newline and no space: cut between characters, never inside one (here 2- and 3-byte ones).
    std::string dense;
    while (dense.size() < 200'000) dense += "\xC3\xA9\xE2\x82\xACx";
    for (size_t pos = 0; pos < dense.size();) {
        pos = encode_piece_end(dense, pos);
        REQUIRE((pos == dense.size() || (static_cast<unsigned char>(dense[pos]) & 0xC0) != 0x80));
    }
    // A newline before the cut point is used when none follows within reach.
    const std::string lines = std::string(1000, 'a') + "\n" + std::string(200'000, 'b');
    REQUIRE(encode_piece_end(lines, 0) == 1001);

    // The same ids as the whole text, with a SentencePiece BPE and with GPT-2's byte-level BPE.
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    std::filesystem::create_directories(dir / "gpt2");
    test::write_text(dir / "gpt2" / "vocab.json", vocab);
    test::write_text(dir / "gpt2" / "merges.txt", merges);
    for (const Tokenizer& t : {tok, Tokenizer::load(dir / "gpt2")}) {
        std::filesystem::remove_all(dir / "shards");
        prepare_token_shards(t, {dir / "line.txt"}, dir / "shards", 0.0);
        Shard shard(dir / "shards" / "train_000000.bin");
        std::vector<int64_t> got(static_cast<size_t>(shard.size()));
        shard.read(0, shard.size(), got.data());
        std::vector<int32_t> want = t.encode(line);
        want.push_back(t.eos_id());
        REQUIRE(std::vector<int64_t>(want.begin(), want.end()) == got);
    }
}

// A shard deleted from a prepared directory is an error, not less data.
TEST_CASE("a deleted shard is an error, not less data", "[data]") {
    test::TempDir dir;
    test::write_text(dir / "a.txt", demo_corpus(6000, 1));
    TokenizerTrainOptions topts;
    topts.inputs = {dir / "a.txt"};
    topts.model_type = "char";
    Tokenizer tok = train_tokenizer(topts);
    auto stats = prepare_token_shards(tok, {dir / "a.txt"}, dir / "shards", 0.5, /*tokens_per_shard=*/1000);
    REQUIRE(stats.val_shards >= 2);
    REQUIRE(TokenShards(dir / "shards", "val", tok.fingerprint()).total_tokens() == stats.val_tokens);
    std::filesystem::remove(dir / "shards" / "val_000001.bin");
    REQUIRE_THROWS_WITH(TokenShards(dir / "shards", "val", tok.fingerprint()),
                        Contains("meta.json lists " + std::to_string(stats.val_tokens)) && Contains("missing"));
    std::vector<std::filesystem::path> val_shards;
    for (const auto& entry : std::filesystem::directory_iterator(dir / "shards")) {
        if (entry.path().filename().string().rfind("val_", 0) == 0) val_shards.push_back(entry.path());
    }
    for (const auto& p : val_shards) std::filesystem::remove(p);
    REQUIRE_THROWS_WITH(TokenShards(dir / "shards", "val", tok.fingerprint()),
                        Contains("no val_*.bin shards: they were deleted"));
}

TEST_CASE("data prepare rejects an empty corpus and a bad val fraction", "[data]") {
    test::TempDir dir;
    test::write_text(dir / "a.txt", "hello world\n");
    test::write_text(dir / "empty.txt", "");
    TokenizerTrainOptions topts;
    topts.inputs = {dir / "a.txt"};
    topts.model_type = "char";
    Tokenizer tok = train_tokenizer(topts);
    REQUIRE_THROWS_WITH(prepare_token_shards(tok, {dir / "empty.txt"}, dir / "s", 0.1), Contains("no text"));
    REQUIRE_THROWS_WITH(prepare_token_shards(tok, {dir / "a.txt"}, dir / "s", 1.0), Contains("--val-fraction"));
}

TEST_CASE("JSONL errors name file:line", "[data]") {
    test::TempDir dir;
    test::write_text(dir / "p.jsonl", "{\"prompt\": \"a\"}\n\n{\"prompt\": \"caf\\u00e9 \\\"q\\\"\"}\n{\"prompt\": 3}\n{broken\n");
    std::vector<std::string> seen;
    REQUIRE_THROWS_WITH(read_jsonl(dir / "p.jsonl",
                                   [&](const nlohmann::json& r, const std::string& where) {
                                       seen.push_back(json_string_field(r, "prompt", where));
                                   }),
                        Contains("p.jsonl:4") && Contains("must be a string"));
    REQUIRE(seen == std::vector<std::string>{"a", "caf\xc3\xa9 \"q\""});
    REQUIRE_THROWS_WITH(read_jsonl(dir / "p.jsonl", [](const nlohmann::json&, const std::string&) {}),
                        Contains("p.jsonl:5") && Contains("invalid JSON"));
}
