// The built-in demo end to end at a reduced size (scripts/demo.sh --small, a few minutes): every
// stage runs and leaves its final checkpoint, the report is written, PPO's gold accuracy is not
// below SFT's — and a second run reuses every finished stage instead of training again.
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

TEST_CASE("scripts/demo.sh --small runs all four stages and PPO is not below SFT", "[integration][demo]") {
    test::TempDir dir;
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
    for (const char* stage : {"pretrain", "sft", "reward", "ppo"}) {
        REQUIRE(std::filesystem::exists(dir / "runs" / stage / "checkpoints" / "latest" / "model.safetensors"));
    }
    REQUIRE(summary["sft"]["answers_sampled"] == 400);  // 200 held-out questions x 2 samples
    REQUIRE(summary["sft"]["accuracy_sampled"].get<double>() > summary["pretrain"]["accuracy_sampled"].get<double>());
    REQUIRE(summary["ppo"]["accuracy_sampled"].get<double>() >= summary["sft"]["accuracy_sampled"].get<double>());
    const double kl = summary["ppo"]["kl"].get<double>();
    REQUIRE(std::isfinite(kl));
    for (const char* png : {"pretrain.png", "sft.png", "reward.png", "ppo.png"}) {
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
