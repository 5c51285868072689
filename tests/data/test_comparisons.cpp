// Reward-model data: every comparison format, ties, the HH-RLHF dialogue split, gzip, bad
// records, and the K-wise collation (one row per completion).
#include <catch2/catch.hpp>
#include <torch/torch.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include "rlhf/core/fs.h"
#include "rlhf/data/comparisons.h"
#include "rlhf/data/ranked_batches.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

std::vector<RankedGroup> read_groups(const test::TempDir& dir, const std::string& name, const std::string& text,
                                  ComparisonReadOptions opts = {}, ComparisonReadStats* stats = nullptr) {
    test::write_text(dir / name, text);
    return read_comparisons({(dir / name).string()}, opts, stats);
}

void write_gzip(const std::filesystem::path& path, const std::string& text) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f);
    REQUIRE(gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
    gzclose(f);
}

std::string hh(const std::string& prompt, const std::string& chosen, const std::string& rejected) {
    nlohmann::json j = {{"chosen", prompt + "\n\nAssistant: " + chosen}, {"rejected", prompt + "\n\nAssistant: " + rejected}};
    return j.dump() + "\n";
}

}  // namespace

// Ranked pairs: every strictly better response over every worse one; ties give none.
TEST_CASE("ranked pairs: each better response over each worse, no ties", "[reward][data]") {
    using P = std::vector<std::pair<int, int>>;
    REQUIRE(ranked_pairs({0, 1, 2}) == P{{0, 1}, {0, 2}, {1, 2}});
    REQUIRE(ranked_pairs({1, 0}) == P{{1, 0}});
    REQUIRE(ranked_pairs({0, 1, 1}) == P{{0, 1}, {0, 2}});  // the tied pair (1, 2) drops out
    REQUIRE(ranked_pairs({2, 2}).empty());
    std::vector<int> nine(9);
    for (int i = 0; i < 9; ++i) nine[static_cast<size_t>(i)] = i;
    REQUIRE(ranked_pairs(nine).size() == 36);  // C(9, 2)
}

TEST_CASE("every comparison format reads a small fixture", "[reward][data]") {
    test::TempDir dir;
    auto ranked = read_groups(dir, "r.jsonl",
                           "{\"prompt\": \"Q?\", \"responses\": [\"best\", \"mid\", \"worst\"]}\n"
                           "{\"prompt\": \"Q2\", \"responses\": [\"a\", \"b\", \"c\", \"d\"], \"ranks\": [1, 0, 1, 2]}\n");
    REQUIRE(ranked.size() == 2);
    REQUIRE(ranked[0].prompt.size() == 1);
    REQUIRE(ranked[0].prompt[0].content == "Q?");
    REQUIRE(ranked[0].ranks == std::vector<int>{0, 1, 2});
    REQUIRE(ranked[1].ranks == std::vector<int>{1, 0, 1, 2});
    REQUIRE(ranked[1].where == (dir / "r.jsonl").string() + ":2");

    // OASST ranked.jsonl as it is: a history of turns and {text, rank} responses.
    auto oasst = read_groups(dir, "o.jsonl",
                          R"({"history": [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello"},)"
                          R"( {"role": "prompter", "text": "How?"}], "responses": [{"message_id": "x", "rank": 1, "text": "B"},)"
                          R"( {"message_id": "y", "rank": 0, "text": "A"}]})"
                          "\n");
    REQUIRE(oasst[0].prompt.size() == 3);
    REQUIRE(oasst[0].prompt[0].role == "user");
    REQUIRE(oasst[0].prompt[1].role == "assistant");
    REQUIRE(oasst[0].responses == std::vector<std::string>{"B", "A"});
    REQUIRE(oasst[0].ranks == std::vector<int>{1, 0});

    auto trl = read_groups(dir, "p.jsonl", "{\"prompt\": \"P\", \"chosen\": \"good\", \"rejected\": \"bad\"}\n");
    REQUIRE(trl[0].responses == std::vector<std::string>{"good", "bad"});
    REQUIRE(trl[0].ranks == std::vector<int>{0, 1});

    auto dialogue = read_groups(dir, "hh.jsonl", hh("\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke", "Sure: ...", "No."));
    REQUIRE(dialogue[0].prompt.size() == 3);
    REQUIRE(dialogue[0].prompt[0].role == "user");
    REQUIRE(dialogue[0].prompt[0].content == "Hi there");
    REQUIRE(dialogue[0].prompt[1].content == "Hello!");
    REQUIRE(dialogue[0].prompt[2].content == "Tell me a joke");
    REQUIRE(dialogue[0].responses == std::vector<std::string>{"Sure: ...", "No."});

    ComparisonReadStats stats;
    auto panda = read_groups(dir, "panda.json",
                          R"([{"instruction": "Fix", "input": "teh cat", "response1": "the cat", "response2": "teh cat",)"
                          R"( "annotator1": 1, "annotator2": 1, "annotator3": 0},)"
                          "\n"
                          R"( {"instruction": "Say hi", "input": "", "response1": "hi", "response2": "hello",)"
                          R"( "annotator1": 0, "annotator2": 0, "annotator3": 2},)"
                          "\n"
                          R"( {"instruction": "Add", "input": "1+1", "response1": "3", "response2": "2",)"
                          R"( "annotator1": 2, "annotator2": 1, "annotator3": 2}])",
                          {}, &stats);
    REQUIRE(panda.size() == 2);  // the tie (majority 0) gives no pair
    REQUIRE(stats.tied_records == 1);
    REQUIRE(panda[0].prompt[0].content == "Fix\n\nteh cat");
    REQUIRE(panda[0].ranks == std::vector<int>{0, 1});
    REQUIRE(panda[1].ranks == std::vector<int>{1, 0});
    REQUIRE(panda[1].where == (dir / "panda.json").string() + ":3");
}

// Gzipped JSONL is read directly; a damaged archive is one clear error.
TEST_CASE("gzipped JSONL is read, a damaged archive is one clear error", "[reward][data]") {
    test::TempDir dir;
    std::string text;
    for (int i = 0; i < 200; ++i) text += hh("\n\nHuman: question " + std::to_string(i), "yes " + std::to_string(i), "no");
    write_gzip(dir / "hh.jsonl.gz", text);
    auto groups = read_comparisons({(dir / "hh.jsonl.gz").string()}, {});
    REQUIRE(groups.size() == 200);
    REQUIRE(groups[199].responses[0] == "yes 199");
    REQUIRE(groups[199].where == (dir / "hh.jsonl.gz").string() + ":200");

    // Cut the archive in half: the reader must stop with the file and a line, not crash.
    const std::string bytes = read_file(dir / "hh.jsonl.gz");
    test::write_text(dir / "cut.jsonl.gz", bytes.substr(0, bytes.size() / 2));
    REQUIRE_THROWS_WITH(read_comparisons({(dir / "cut.jsonl.gz").string()}, {}),
                        Contains("cut.jsonl.gz:") && Contains("corrupted gzip"));
    std::string flipped = bytes;
    for (size_t i = 40; i < 80; ++i) flipped[i] = static_cast<char>(~flipped[i]);
    test::write_text(dir / "flip.jsonl.gz", flipped);
    REQUIRE_THROWS_WITH(read_comparisons({(dir / "flip.jsonl.gz").string()}, {}), Contains("flip.jsonl.gz:"));
}

TEST_CASE("bad comparison records: file:line, or skipped and counted", "[reward][data]") {
    test::TempDir dir;
    const std::string good = "{\"prompt\": \"Q\", \"responses\": [\"a\", \"b\"]}\n";
    REQUIRE_THROWS_WITH(read_groups(dir, "one.jsonl", good + "{\"prompt\": \"Q\", \"responses\": [\"a\"]}\n"),
                        Contains("one.jsonl:2") && Contains("at least 2 responses"));
    REQUIRE_THROWS_WITH(read_groups(dir, "tied.jsonl", good + "{\"prompt\": \"Q\", \"responses\": [\"a\", \"b\"], \"ranks\": [1, 1]}\n"),
                        Contains("tied.jsonl:2") && Contains("all ranks are tied"));
    REQUIRE_THROWS_WITH(read_groups(dir, "len.jsonl", "{\"prompt\": \"Q\", \"responses\": [\"a\", \"b\", \"c\"], \"ranks\": [0, 1]}\n"),
                        Contains("len.jsonl:1") && Contains("\"ranks\" has 2 entries but there are 3 responses"));
    REQUIRE_THROWS_WITH(read_groups(dir, "noasst.jsonl", "{\"chosen\": \"\\n\\nHuman: hi\", \"rejected\": \"\\n\\nHuman: hi\"}\n"),
                        Contains("noasst.jsonl:1") && Contains("no \"Assistant:\" turn"));
    REQUIRE(read_groups(dir, "empty.jsonl", "{\"prompt\": \"Q\", \"chosen\": \"b\", \"rejected\": \"\"}\n")[0].responses[1].empty());
    REQUIRE_THROWS_WITH(read_groups(dir, "json.jsonl", good + "{\"prompt\": \n"), Contains("json.jsonl:2") && Contains("invalid JSON"));
    REQUIRE_THROWS_WITH(read_groups(dir, "str.jsonl", good + "{\"prompt\": \"Q\", \"responses\": \"just one\"}\n"),
                        Contains("str.jsonl:2") && Contains("\"responses\" must be a list") && !Contains("missing"));

    ComparisonReadOptions skip;
    skip.skip_bad = true;
    ComparisonReadStats stats;
    auto kept = read_groups(dir, "mixed.jsonl",
                         good + "{\"prompt\": \"Q\", \"responses\": [\"a\"]}\n" + good +
                             "{\"prompt\": \"Q\", \"responses\": [\"a\", \"b\"], \"ranks\": [0, 0]}\nnot json\n",
                         skip, &stats);
    REQUIRE(kept.size() == 2);
    REQUIRE(stats.skipped == 3);
    REQUIRE_THAT(stats.first_skip, Contains("mixed.jsonl:2"));
    REQUIRE_THROWS_WITH(read_groups(dir, "allbad.jsonl", "{\"prompt\": \"Q\", \"responses\": [\"a\"]}\n", skip),
                        Contains("no usable comparisons") && Contains("1 skipped"));
}

// Collation: one row per completion, pairs weighted 1/|P| within their group.
TEST_CASE("collation: a row per completion, pairs weighted 1/|P|", "[reward][data]") {
    RenderedGroup a{{{1, 2, 3}, {1, 2}, {1, 2, 3, 4}, {1}}, {0, 1, 1, 2}};  // K = 4 with a tie: 5 pairs
    RenderedGroup b{{{5, 6}, {7}}, {1, 0}};                                // K = 2: the second is better
    auto batch = collate_groups({&a, &b}, /*pad_id=*/0);
    REQUIRE(batch.ids.sizes() == torch::IntArrayRef{6, 4});  // 6 forwards, not 2 * 6 pairs
    REQUIRE(batch.pairs == 6);
    REQUIRE(batch.groups == 2);
    REQUIRE(torch::equal(batch.key_mask.sum(1), torch::tensor({3, 2, 4, 1, 2, 1}, torch::kLong)));
    REQUIRE(batch.better[5].item<int64_t>() == 5);
    REQUIRE(batch.worse[5].item<int64_t>() == 4);
    REQUIRE(batch.pair_weight.sum().item<double>() == Approx(2.0));  // each group weighs 1
    REQUIRE(batch.pair_weight[0].item<float>() == Approx(0.2));
}

TEST_CASE("shared HH-RLHF, OASST and PandaLM files read as shipped", "[reward][data][shared]") {
    const auto hh_dir = test::shared_data_or_skip("hh-rlhf");
    ComparisonReadStats stats;
    std::vector<std::string> files;
    for (const char* subset : {"harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"}) {
        files.push_back((hh_dir / subset / "shared_from_test.jsonl.gz").string());
    }
    auto groups = read_comparisons(files, {}, &stats);
    REQUIRE(groups.size() == 6809);  // the README's count of shared pairs; every one has a shared prompt
    REQUIRE(groups.front().prompt.front().role == "user");

    auto oasst = read_comparisons({(test::shared_data_or_skip("oasst-ranked") / "ranked.jsonl").string()}, {}, &stats);
    REQUIRE(oasst.size() == 197);
    size_t largest = 0;
    for (const auto& g : oasst) largest = std::max(largest, g.responses.size());
    REQUIRE(largest == 9);

    // 6 PandaLM records carry `true` where a response should be: skipped and counted.
    ComparisonReadOptions skip;
    skip.skip_bad = true;
    auto panda = read_comparisons({(test::shared_data_or_skip("pandalm") / "testset-v1.shared.json").string()}, skip, &stats);
    REQUIRE(stats.skipped == 6);
    REQUIRE_THAT(stats.first_skip, Contains("\"response1\" must be a string"));
    REQUIRE(panda.size() + 6 == 375 + 393);  // the README's majority labels 1 and 2
    REQUIRE(stats.tied_records == 96);       // and its ties
}
