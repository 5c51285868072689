// The built-in demo end to end at its plumbing size (scripts/demo.sh --tiny, about a minute):
// every stage runs and leaves its final checkpoint, and the report is written. The tiny stages are
// too short for the accuracies to say much (docs/demo.md has the figures of the full demo), so
// this asserts what holds at any size: the reward model and DPO order most held-out pairs right,
// every KL is finite — and, the demo being deterministic (runtime.deterministic), GRPO retrained
// with --only gives the very same summary, also on a busy machine, reusing the data and the other
// stages' scores. (A finished run that --resume leaves alone: tests/demo/test_gpt1_tasks.cpp.)
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "rlhf/core/fs.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {
std::string demo_command(const test::TempDir& dir) {
    return "cd " + test::shell_quote(RLHF_SOURCE_DIR) + " && RLHF=" + test::shell_quote(RLHF_CLI_PATH) +
           " scripts/demo.sh --tiny --no-setup --runs " + test::shell_quote((dir / "runs").string()) + " --data " +
           test::shell_quote((dir / "data").string());
}
}  // namespace

TEST_CASE("scripts/demo.sh --tiny runs every stage", "[integration][demo]") {
    test::TempDir dir;
    // --only names a stage, and the stages it starts from must be there.
    const auto bogus = test::run_shell(demo_command(dir) + " --only nope");
    REQUIRE(bogus.exit_code == 2);
    REQUIRE_THAT(bogus.output, Contains("--only 'nope' is not a stage"));
    const auto too_early = test::run_shell(demo_command(dir) + " --only grpo");
    REQUIRE(too_early.exit_code == 1);
    REQUIRE_THAT(too_early.output, Contains("--only grpo starts from") && Contains("run the whole demo first"));

    const auto first = test::run_shell(demo_command(dir));
    INFO(first.output);
    REQUIRE(first.exit_code == 0);
    REQUIRE_THAT(first.output, Contains("gold acc (T=1)") && Contains("Q: "));

    const auto summary = nlohmann::json::parse(read_file(dir / "runs" / "summary.json"));
    // The step counts of scripts/demo.sh's --tiny sizes: each stage ran to its end.
    const std::map<std::string, int> steps = {{"pretrain", 30}, {"sft", 20}, {"reward", 10},
                                              {"dpo", 4},       {"grpo", 3},  {"ppo", 4}};
    for (const auto& [stage, step] : steps) {
        INFO(stage);
        REQUIRE(summary[stage]["checkpoint_step"] == step);
        REQUIRE(std::filesystem::exists(dir / "runs" / stage / "checkpoints" / "latest" / "model.safetensors"));
    }
    INFO(summary.dump(1));
    REQUIRE(summary["sft"]["answers_sampled"] == 24);  // --tiny: 24 held-out questions x 1 sample
    // Right or near answers over "I do not know." and wrong numbers: learned in 10 steps.
    REQUIRE(summary["reward"]["pairwise_accuracy"].get<double>() > 0.6);
    for (const char* stage : {"dpo", "grpo", "ppo"}) {
        INFO(stage);
        REQUIRE(std::isfinite(summary[stage]["kl_to_sft"].get<double>()));
    }
    REQUIRE(summary["dpo"]["pair_accuracy"].get<double>() > 0.5);
    for (const char* png : {"pretrain.png", "sft.png", "reward.png", "dpo.png", "grpo.png", "ppo.png"}) {
        if (std::filesystem::exists("/usr/lib/python3/dist-packages/matplotlib")) {
            REQUIRE(std::filesystem::file_size(dir / "runs" / "plots" / png) > 1000);
        }
    }

    // GRPO retrained from nothing (RL amplifies any difference in the sums): the same numbers. The
    // other stages are not trained or evaluated again: the data and PPO's scores are reused.
    const auto ppo_metrics = read_file(dir / "runs" / "ppo" / "metrics.jsonl");
    const auto grpo_again = test::run_shell(demo_command(dir) + " --only grpo");
    INFO(grpo_again.output);
    REQUIRE(grpo_again.exit_code == 0);
    REQUIRE_THAT(grpo_again.output, Contains("reusing " + (dir / "data").string()));
    REQUIRE_THAT(grpo_again.output, Contains("ppo: reusing"));  // its scores are newer than its checkpoint
    REQUIRE(read_file(dir / "runs" / "ppo" / "metrics.jsonl") == ppo_metrics);
    REQUIRE(nlohmann::json::parse(read_file(dir / "runs" / "summary.json")) == summary);
}
