// The built-in demo end to end at a reduced size (scripts/demo.sh --small, a few minutes): every
// stage runs and leaves its final checkpoint, the report is written, PPO's and GRPO's gold
// accuracy is not below SFT's — and a second run reuses every finished stage instead of training
// again.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "rlhf/core/fs.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {
std::string demo_command(const test::TempDir& dir) {
    return "cd " + test::shell_quote(RLHF_SOURCE_DIR) + " && RLHF=" + test::shell_quote(RLHF_CLI_PATH) +
           " scripts/demo.sh --small --no-setup --runs " + test::shell_quote((dir / "runs").string()) + " --data " +
           test::shell_quote((dir / "data").string());
}
}  // namespace

TEST_CASE("scripts/demo.sh --small runs every stage and PPO and GRPO are not below SFT", "[integration][demo]") {
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
    // The step counts of scripts/demo.sh's --small sizes: each stage ran to its end.
    REQUIRE(summary["pretrain"]["checkpoint_step"] == 600);
    REQUIRE(summary["sft"]["checkpoint_step"] == 200);
    REQUIRE(summary["reward"]["checkpoint_step"] == 100);
    REQUIRE(summary["ppo"]["checkpoint_step"] == 40);
    REQUIRE(summary["dpo"]["checkpoint_step"] == 40);
    REQUIRE(summary["grpo"]["checkpoint_step"] == 20);
    for (const char* stage : {"pretrain", "sft", "reward", "dpo", "grpo", "ppo"}) {
        REQUIRE(std::filesystem::exists(dir / "runs" / stage / "checkpoints" / "latest" / "model.safetensors"));
    }
    REQUIRE(summary["sft"]["answers_sampled"] == 400);  // 200 held-out questions x 2 samples
    REQUIRE(summary["sft"]["accuracy_sampled"].get<double>() > summary["pretrain"]["accuracy_sampled"].get<double>());
    REQUIRE(summary["ppo"]["accuracy_sampled"].get<double>() >= summary["sft"]["accuracy_sampled"].get<double>());
    const double kl = summary["ppo"]["kl"].get<double>();
    REQUIRE(std::isfinite(kl));
    // GRPO is trained on the gold checker itself; every tuned model's KL to SFT is measured.
    REQUIRE(summary["grpo"]["accuracy_sampled"].get<double>() >= summary["sft"]["accuracy_sampled"].get<double>());
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

    // Again: nothing is generated or trained a second time.
    const auto metrics_before = read_file(dir / "runs" / "ppo" / "metrics.jsonl");
    const auto again = test::run_shell(demo_command(dir));
    INFO(again.output);
    REQUIRE(again.exit_code == 0);
    REQUIRE_THAT(again.output, Contains("reusing " + (dir / "data").string()));
    REQUIRE(read_file(dir / "runs" / "ppo" / "metrics.jsonl") == metrics_before);
    REQUIRE(nlohmann::json::parse(read_file(dir / "runs" / "summary.json")) == summary);
}
