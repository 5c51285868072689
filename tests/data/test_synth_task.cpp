// The generated "ages" task: deterministic files, held-out prompts kept out of the rest,
// imperfect labelers at the configured rate, rankings that agree with the gold checker, and
// `rlhf eval` reporting gold accuracy for a checkpoint.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>

#include "rlhf/core/fs.h"
#include "rlhf/data/comparisons.h"
#include "rlhf/data/jsonl.h"
#include "rlhf/data/synth_task.h"
#include "rlhf/stages/pretrain.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

// An independent solver for the four "ages" templates, so the gold answers are checked by
// something other than the generator that made them.
int64_t solve(const std::string& q) {
    std::smatch m;
    auto n = [&](size_t i) { return std::stoll(m[i].str()); };
    if (std::regex_match(q, m, std::regex(R"(If my \w+ was half my age when I was (\d+), how old will my \w+ be when I am (\d+)\?)"))) {
        return n(2) - n(1) / 2;
    }
    if (std::regex_match(q, m, std::regex(R"(My \w+ is (\d+) years? older than me\. I am (\d+)\. How old is my \w+\?)"))) {
        return n(2) + n(1);
    }
    if (std::regex_match(q, m, std::regex(R"(My \w+ is (\d+) years? younger than me\. I am (\d+)\. How old is my \w+\?)"))) {
        return n(2) - n(1);
    }
    if (std::regex_match(q, m, std::regex(R"(In (\d+) years? \w+ will be (\d+)\. How old is \w+ now\?)"))) return n(2) - n(1);
    FAIL("no template matches: " << q);
    return -1;
}

// The typical mistakes of each template (docs/synth-task.md), independently: every wrong answer
// a labeler gives must be one of them.
std::set<int64_t> typical_mistakes(const std::string& q) {
    std::smatch m;
    auto n = [&](size_t i) { return std::stoll(m[i].str()); };
    if (std::regex_search(q, m, std::regex(R"(when I was (\d+), .* when I am (\d+)\?)"))) {
        return {n(2) - n(1), n(1) / 2, n(2), n(2) % 2 ? -1 : n(2) / 2};
    }
    if (std::regex_search(q, m, std::regex(R"(is (\d+) years? (older|younger) than me\. I am (\d+)\.)"))) {
        return {n(3), n(1), m[2] == "older" ? n(3) - n(1) : n(3) + n(1)};
    }
    if (std::regex_search(q, m, std::regex(R"(In (\d+) years? \w+ will be (\d+)\.)"))) return {n(2), n(1), n(2) + n(1)};
    FAIL("no template matches: " << q);
    return {};
}

// The corpus's statements, each checked the same way: "… I am C. My sister is X." etc.
int64_t check_statements(const std::string& corpus) {
    const std::regex statement(
        R"((My \w+ is (\d+) years? (older|younger) than me\. I am (\d+)\. My \w+ is (\d+)\.)|)"
        R"((In (\d+) years? \w+ will be (\d+)\. \w+ is (\d+)\.)|)"
        R"((When I was (\d+), my \w+ was half my age\. When I am (\d+), my \w+ will be (\d+)\.))");
    int64_t checked = 0;
    for (auto it = std::sregex_iterator(corpus.begin(), corpus.end(), statement); it != std::sregex_iterator(); ++it) {
        const auto& m = *it;
        auto n = [&](size_t i) { return std::stoll(m[i].str()); };
        INFO(m.str());
        if (m[1].matched) REQUIRE(n(5) == (m[3] == "older" ? n(4) + n(2) : n(4) - n(2)));
        if (m[6].matched) REQUIRE(n(9) == n(8) - n(7));
        if (m[10].matched) REQUIRE(n(13) == n(12) - n(11) / 2);
        ++checked;
    }
    return checked;
}

SynthSizes small() {
    SynthSizes s;
    s.corpus_stories = 300;
    s.demonstrations = 1000;
    s.comparisons = 200;
    s.held_out = 100;
    return s;
}
}  // namespace

TEST_CASE("the gold checker reads the last whole number", "[synth]") {
    REQUIRE(last_number("He will be 46.") == 46);
    REQUIRE(last_number("When I was 8 he was 4, so now he is 46.") == 46);
    REQUIRE_FALSE(last_number("I do not know.").has_value());
    REQUIRE(gold_correct("She is 12. I am sure.", 12));
    REQUIRE_FALSE(gold_correct("She is 13.", 12));
    std::mt19937_64 rng(3);
    for (int i = 0; i < 200; ++i) {
        const SynthProblem p = synth_problem("ages", rng);
        INFO(p.question << " -> " << p.answer);
        REQUIRE(p.answer >= 1);
        REQUIRE(gold_correct(gold_response(p), p.answer));
    }
    std::mt19937_64 other(0);
    REQUIRE_THROWS_WITH(synth_problem("chess", other), Contains("unknown task") && Contains("ages"));
}

// Synth writes the same bytes for a seed and keeps held-out prompts out.
TEST_CASE("synth is byte-identical per seed, keeps held-out prompts out", "[synth]") {
    test::TempDir dir;
    const auto a = write_synth_task("ages", dir / "a", 7, small());
    write_synth_task("ages", dir / "b", 7, small());
    write_synth_task("ages", dir / "c", 8, small());
    for (const char* f : {"corpus.txt", "sft.jsonl", "ranked.jsonl", "prompts.jsonl"}) {
        INFO(f);
        REQUIRE(read_file(dir / "a" / f) == read_file(dir / "b" / f));
        REQUIRE(read_file(dir / "a" / f) != read_file(dir / "c" / f));
    }
    REQUIRE(a.held_out == 100);

    std::set<std::string> held;
    read_jsonl(dir / "a" / "prompts.jsonl", [&](const nlohmann::json& r, const std::string&) {
        held.insert(r["prompt"].get<std::string>());
        REQUIRE(r["answer"].get<int64_t>() >= 1);
    });
    REQUIRE(held.size() == 100);
    const std::string corpus = read_file(dir / "a" / "corpus.txt");
    read_jsonl(dir / "a" / "prompts.jsonl", [&](const nlohmann::json& r, const std::string&) {
        REQUIRE(solve(r["prompt"].get<std::string>()) == r["answer"].get<int64_t>());
        REQUIRE(corpus.find(r["prompt"].get<std::string>()) == std::string::npos);
    });
    // The corpus: every statement is right, and there is nothing else in it.
    REQUIRE(check_statements(corpus) == 300 * 3);
    REQUIRE(corpus.find('?') == std::string::npos);  // statements, never a question to answer

    // Imperfect labelers, by an independent solve: about 30% give a wrong number, 15% no answer.
    int64_t wrong = 0, no_answer = 0, total = 0;
    read_jsonl(dir / "a" / "sft.jsonl", [&](const nlohmann::json& r, const std::string&) {
        const auto q = r["prompt"].get<std::string>();
        const auto response = r["response"].get<std::string>();
        REQUIRE_FALSE(held.count(q));
        no_answer += response == "I do not know.";
        if (response != "I do not know." && !gold_correct(response, solve(q))) {
            ++wrong;
            INFO(q << " -> " << response);
            REQUIRE(typical_mistakes(q).count(*last_number(response)));
        }
        ++total;
    });
    REQUIRE(total == 1000);
    REQUIRE(wrong + no_answer == a.wrong_demonstrations);
    REQUIRE(wrong > 250);
    REQUIRE(wrong < 350);
    REQUIRE(no_answer > 100);
    REQUIRE(no_answer < 200);

    // Rankings: K = 4..9, readable by the reward stage's reader; rank 0 is the concise right
    // answer, rank 2 answers are wrong, and wrong answers tie.
    auto groups = read_comparisons({(dir / "a" / "ranked.jsonl").string()}, {});
    REQUIRE(groups.size() == 200);
    for (const auto& g : groups) {
        REQUIRE(g.responses.size() >= 4);
        REQUIRE(g.responses.size() <= 9);
        REQUIRE_FALSE(held.count(g.prompt.front().content));
        const int64_t answer = solve(g.prompt.front().content);
        for (size_t k = 0; k < g.responses.size(); ++k) {
            INFO(g.responses[k] << " rank " << g.ranks[k]);
            REQUIRE(gold_correct(g.responses[k], answer) == (g.ranks[k] <= 1));  // 0, 1 right; 2, 3 not
            if (g.ranks[k] == 2) {  // a typical mistake, or a stray number at least 3 away
                const int64_t n = *last_number(g.responses[k]);
                REQUIRE((typical_mistakes(g.prompt.front().content).count(n) || std::abs(n - answer) >= 3));
            }
        }
        REQUIRE(std::count(g.ranks.begin(), g.ranks.end(), 0) == 1);
        REQUIRE(std::set<std::string>(g.responses.begin(), g.responses.end()).size() == g.responses.size());
    }
}

TEST_CASE("rlhf data synth and rlhf eval from the command line", "[integration][synth][cli]") {
    test::TempDir dir;
    auto synth = test::run_cli("data synth --task ages --out " + test::shell_quote((dir / "ages").string()));
    REQUIRE(synth.exit_code == 0);
    REQUIRE(std::filesystem::exists(dir / "ages" / "ranked.jsonl"));
    // train_prompts.jsonl: the demonstrations' questions, in order, each with its gold answer.
    std::vector<std::string> demo_questions, prompt_questions;
    read_jsonl(dir / "ages" / "sft.jsonl", [&](const nlohmann::json& r, const std::string&) {
        demo_questions.push_back(r["prompt"].get<std::string>());
    });
    read_jsonl(dir / "ages" / "train_prompts.jsonl", [&](const nlohmann::json& r, const std::string&) {
        prompt_questions.push_back(r["prompt"].get<std::string>());
        REQUIRE(r["answer"].is_number_integer());
    });
    REQUIRE(prompt_questions == demo_questions);

    // A tiny pre-trained model: accuracy is whatever it is, but every prompt is answered and judged.
    RunConfig cfg = test::tiny_pretrain_config(dir / "ages" / "corpus.txt", dir / "base");
    cfg.train.max_steps = 5;
    REQUIRE(run_pretrain(cfg, {}) == 0);
    auto ev = test::run_cli("eval --checkpoint " + test::shell_quote((dir / "base").string()) +
                            " --task ages --threads 1 --max-new-tokens 8 --prompts " +
                            test::shell_quote((dir / "ages" / "prompts.jsonl").string()) + " --out " +
                            test::shell_quote((dir / "answers.jsonl").string()));
    INFO(ev.output);
    REQUIRE(ev.exit_code == 0);
    const auto line = ev.output.substr(ev.output.rfind("{\"accuracy\""));
    auto summary = nlohmann::json::parse(line.substr(0, line.find('\n')));
    REQUIRE(summary["count"] == 200);
    REQUIRE(summary["accuracy"].get<double>() >= 0.0);
    int64_t answers = 0;
    read_jsonl(dir / "answers.jsonl", [&](const nlohmann::json& r, const std::string&) {
        REQUIRE(r["correct"].get<bool>() == gold_correct(r["response"].get<std::string>(), r["answer"].get<int64_t>()));
        ++answers;
    });
    REQUIRE(answers == 200);

    // Sampled: every prompt answered --samples times, all of them judged; greedy refuses --samples.
    auto sampled = test::run_cli("eval --checkpoint " + test::shell_quote((dir / "base").string()) +
                                 " --task ages --threads 1 --max-new-tokens 4 --temperature 1 --samples 2 --prompts " +
                                 test::shell_quote((dir / "ages" / "prompts.jsonl").string()));
    INFO(sampled.output);
    REQUIRE(sampled.exit_code == 0);
    const auto sampled_line = sampled.output.substr(sampled.output.rfind("{\"accuracy\""));
    auto sampled_summary = nlohmann::json::parse(sampled_line.substr(0, sampled_line.find('\n')));
    REQUIRE(sampled_summary["count"] == 400);
    REQUIRE(sampled_summary["samples"] == 2);
    REQUIRE_FALSE(sampled_summary.contains("kl_to_reference"));

    // --reference: the KL of the sampled answers to another model's distribution; to the model
    // itself it is 0 (generate()'s log-probs against the training forward's: equal to ~1e-6).
    auto self_kl = test::run_cli("eval --checkpoint " + test::shell_quote((dir / "base").string()) +
                                 " --task ages --threads 1 --max-new-tokens 4 --temperature 1 --reference " +
                                 test::shell_quote((dir / "base").string()) + " --prompts " +
                                 test::shell_quote((dir / "ages" / "prompts.jsonl").string()));
    INFO(self_kl.output);
    REQUIRE(self_kl.exit_code == 0);
    const auto kl_line = self_kl.output.substr(self_kl.output.rfind("{\"accuracy\""));
    REQUIRE(std::abs(nlohmann::json::parse(kl_line.substr(0, kl_line.find('\n')))["kl_to_reference"].get<double>()) < 1e-4);
    auto greedy_kl = test::run_cli("eval --checkpoint " + test::shell_quote((dir / "base").string()) +
                                   " --task ages --reference " + test::shell_quote((dir / "base").string()) +
                                   " --prompts " + test::shell_quote((dir / "ages" / "prompts.jsonl").string()));
    REQUIRE(greedy_kl.exit_code == 1);
    REQUIRE_THAT(greedy_kl.output, Contains("--reference with greedy decoding"));
    auto greedy_samples = test::run_cli("eval --checkpoint " + test::shell_quote((dir / "base").string()) +
                                        " --task ages --samples 2 --prompts " +
                                        test::shell_quote((dir / "ages" / "prompts.jsonl").string()));
    REQUIRE(greedy_samples.exit_code == 1);
    REQUIRE_THAT(greedy_samples.output, Contains("--temperature"));

    test::write_text(dir / "bad.jsonl", "{\"prompt\": \"How old?\"}\n");
    auto bad = test::run_cli("eval --checkpoint " + test::shell_quote((dir / "base").string()) +
                             " --task ages --prompts " + test::shell_quote((dir / "bad.jsonl").string()));
    REQUIRE(bad.exit_code == 1);
    REQUIRE_THAT(bad.output, Contains("bad.jsonl:1") && Contains("answer"));
}
