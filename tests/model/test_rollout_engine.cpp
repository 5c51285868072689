// The rollout engine (shared prefixes, stopped rows leaving, waiting prompts joining) against the
// static generate() it replaces in RL: each row must get the same tokens from the same seed.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/model/generate.h"
#include "rlhf/model/gpt.h"
#include "rlhf/model/rollout_engine.h"
#include "support/helpers.h"

using namespace rlhf;
using torch::indexing::Slice;

namespace {

Gpt tiny_rollout_model(const std::string& arch) {
    torch::manual_seed(7);
    ModelConfig cfg = test::tiny_model_of(arch, 50);
    cfg.block_size = 48;
    Gpt model(cfg);
    model->eval();
    return model;
}

// GRPO's layout: `groups` prompts of mixed lengths, each `group` times in consecutive rows.
std::vector<std::vector<int32_t>> grouped_prompts(int groups, int group) {
    std::vector<std::vector<int32_t>> out;
    for (int g = 0; g < groups; ++g) {
        std::vector<int32_t> prompt;
        for (int i = 0; i < 2 + 5 * (g % 3) + g; ++i) prompt.push_back(5 + (g * 7 + i * 3) % 40);
        for (int k = 0; k < group; ++k) out.push_back(prompt);
    }
    return out;
}

std::vector<uint64_t> row_seeds(size_t n) {
    std::vector<uint64_t> out;
    for (size_t i = 0; i < n; ++i) out.push_back(1000 + 17 * i);
    return out;
}

SamplingOptions early_stopping(double temperature) {
    SamplingOptions o;
    o.max_new_tokens = 16;
    o.temperature = temperature;
    o.stop_ids = {6, 11, 19, 23, 31};  // ~10% of a random model's mass: rows stop at very different steps
    return o;
}

}  // namespace

TEST_CASE("the rollout engine samples generate()'s tokens", "[model][rollout]") {
    const std::string arch = GENERATE("gpt2", "llama");
    struct Case {
        const char* what;
        int groups, group;
        RolloutEngineOptions engine;
        double temperature;
    };
    const std::vector<Case> cases = {
        {"groups of 4, all rows at once", 5, 4, {0, 1, 0.0, true}, 1.0},
        {"2 slots for 12 rows: waiting rows join", 3, 4, {2, 1, 0.0, true}, 1.0},
        {"5 slots, checked every 3 tokens", 4, 3, {5, 3, 0.0, true}, 1.0},
        {"stopped rows leave a third at a time", 6, 4, {9, 1, 0.34, true}, 1.0},
        {"no sharing, one row per prompt", 7, 1, {3, 2, 0.0, false}, 1.0},
        {"greedy", 3, 2, {4, 1, 0.0, true}, 0.0},
    };
    Gpt model = tiny_rollout_model(arch);
    for (const auto& c : cases) {
        DYNAMIC_SECTION(arch << ": " << c.what) {
            const auto prompts = grouped_prompts(c.groups, c.group);
            const auto seeds = row_seeds(prompts.size());
            const SamplingOptions o = early_stopping(c.temperature);
            const Generation reference = generate(*model, prompts, o, /*pad_id=*/3, seeds);
            RolloutCounts counts;
            const Generation g = generate_rollouts(*model, prompts, o, 3, seeds, c.engine, &counts);
            REQUIRE(g.prompt_len == reference.prompt_len);
            REQUIRE(torch::equal(g.tokens, reference.tokens));
            REQUIRE(torch::equal(g.attention_mask, reference.attention_mask));
            REQUIRE(torch::equal(g.response_mask, reference.response_mask));
            REQUIRE(test::max_abs_diff(g.logprobs, reference.logprobs) < 1e-5);
            // Sampled rows stopped early in every case, and the engine did not decode them further.
            const int64_t rows = g.response.size(0), produced = g.response.size(1);
            const int64_t tokens = g.response_mask.sum().item<int64_t>();
            if (c.temperature > 0) REQUIRE(tokens < rows * produced);
            REQUIRE(g.decode_slots == counts.decode_slots);
            if (c.engine.check_every == 1 && c.engine.compact_share == 0) REQUIRE(counts.decode_slots == tokens);  // no step for a stopped row
            else REQUIRE(counts.decode_slots >= tokens);
            if (c.engine.share_prefixes && c.engine.max_active == 0) REQUIRE(counts.prefill_rows == c.groups);
            if (!c.engine.share_prefixes) REQUIRE(counts.prefill_rows == rows);
        }
    }
}

TEST_CASE("a stopped row checked late decodes masked padding", "[model][rollout]") {
    // Between checks a stopped row stays in the batch (a GPU syncs only at checks); what it
    // computes there must not reach the result.
    Gpt model = tiny_rollout_model("gpt2");
    const auto prompts = grouped_prompts(4, 2);
    const auto seeds = row_seeds(prompts.size());
    const SamplingOptions o = early_stopping(1.0);
    const Generation reference = generate(*model, prompts, o, 3, seeds);
    RolloutCounts counts;
    const Generation g = generate_rollouts(*model, prompts, o, 3, seeds, {0, 4, 0.0, true}, &counts);
    REQUIRE(torch::equal(g.tokens, reference.tokens));
    REQUIRE(torch::equal(g.response_mask, reference.response_mask));
    REQUIRE(test::max_abs_diff(g.logprobs, reference.logprobs) < 1e-5);
    REQUIRE(counts.decode_slots > g.response_mask.sum().item<int64_t>());  // the extra steps were computed
}

TEST_CASE("generation_rows gives the layout generate() gives them", "[model][rollout]") {
    // PPO generates a rank's rows together and scores them in chunks: each chunk must be what a
    // static generate() of that chunk returns, padding columns and all.
    Gpt model = tiny_rollout_model("gpt2");
    const auto prompts = grouped_prompts(4, 3);
    const auto seeds = row_seeds(prompts.size());
    const SamplingOptions o = early_stopping(1.0);
    const Generation whole = generate_rollouts(*model, prompts, o, 3, seeds, {4, 1, 0.0, true});
    for (const auto& [r0, r1] : std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 8}, {8, 12}}) {
        INFO("rows " << r0 << ".." << r1);
        const std::vector<std::vector<int32_t>> part(prompts.begin() + r0, prompts.begin() + r1);
        const std::vector<uint64_t> part_seeds(seeds.begin() + r0, seeds.begin() + r1);
        const Generation alone = generate(*model, part, o, 3, part_seeds);
        const Generation rows = generation_rows(whole, r0, r1);
        REQUIRE(rows.prompt_len == alone.prompt_len);
        REQUIRE(torch::equal(rows.tokens, alone.tokens));
        REQUIRE(torch::equal(rows.attention_mask, alone.attention_mask));
        REQUIRE(torch::equal(rows.response_mask, alone.response_mask));
        REQUIRE(test::max_abs_diff(rows.logprobs, alone.logprobs) < 1e-5);
    }
}

TEST_CASE("the rollout engine keeps generate()'s errors", "[model][rollout]") {
    Gpt model = tiny_rollout_model("gpt2");
    SamplingOptions o = early_stopping(1.0);
    REQUIRE_THROWS_WITH(generate_rollouts(*model, {{5, 6}}, o, 3, {1, 2}), Catch::Contains("one seed per prompt"));
    REQUIRE_THROWS_WITH(generate_rollouts(*model, {{}}, o, 3, {1}), Catch::Contains("empty"));
    o.max_new_tokens = 48;
    REQUIRE_THROWS_WITH(generate_rollouts(*model, {{5}}, o, 3, {1}), Catch::Contains("no room for a prompt"));
}
