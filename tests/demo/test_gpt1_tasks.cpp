// scripts/gpt1_tasks.sh --small end to end (about 30 s; needs ../shared/data): the held-out
// splits, the pre-training, eight fine-tuning runs that `rlhf eval --task` accepts, and the table —
// and a second run reuses every finished run.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/core/fs.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

// Fine-tunes every task from pre-trained and from scratch.
TEST_CASE("scripts/gpt1_tasks.sh --small runs every task", "[integration][demo]") {
    const auto shared = test::shared_data_or_skip("gpt1-tasks");
    test::TempDir dir;
    const std::string command = "cd " + test::shell_quote(RLHF_SOURCE_DIR) + " && RLHF=" + test::shell_quote(RLHF_CLI_PATH) +
                                " scripts/gpt1_tasks.sh --small --no-setup --shared " + test::shell_quote(shared.string()) +
                                " --runs " + test::shell_quote((dir / "runs").string()) + " --data " +
                                test::shell_quote((dir / "data").string());
    const auto bogus = test::run_shell(command + " --nope");
    CHECK(bogus.exit_code == 2);
    CHECK_THAT(bogus.output, Contains("unknown option '--nope'"));

    const auto first = test::run_shell(command);
    INFO(first.output);
    REQUIRE(first.exit_code == 0);
    CHECK_THAT(first.output, Contains("| task | metric | pre-trained | from scratch |"));
    const auto summary = nlohmann::json::parse(read_file(dir / "runs" / "summary.json"));
    REQUIRE(summary["tasks"].size() == 4);
    const std::map<std::string, int> heldout = {{"sst2", 48}, {"rte", 48}, {"stsb", 48}, {"story-cloze", 48}};  // --small: 48 each
    for (const auto& t : summary["tasks"]) {
        const std::string task = t["task"];
        for (const char* start : {"pretrained", "scratch"}) {
            CHECK(t[start]["count"] == heldout.at(task));
            CHECK(t[start].contains(task == "stsb" ? "pearson" : "accuracy"));
            // Each a run directory of 6 steps (the --small size) that rlhf eval reads.
            CHECK(read_checkpoint_info(resolve_checkpoint(dir / "runs" / start / task)).state.step == 6);
        }
    }
    // The two starts share one vocabulary: the comparison differs only in the weights.
    CHECK(load_checkpoint_tokenizer(resolve_checkpoint(dir / "runs" / "pretrained" / "rte"))
              .same_vocabulary(load_checkpoint_tokenizer(resolve_checkpoint(dir / "runs" / "scratch" / "rte"))));

    const auto again = test::run_shell(command);
    REQUIRE(again.exit_code == 0);
    CHECK_THAT(again.output, Contains("already at step 6"));
    CHECK_THAT(again.output, Contains("reusing " + (dir / "runs" / "eval" / "scratch-rte.json").string()));
}
