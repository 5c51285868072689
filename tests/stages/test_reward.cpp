// Whole reward-model runs: a tiny pre-trained model learns generated rankings (seconds each).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/stages/reward.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/reward_step.h"
#include "support/greetings.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

struct RewardBase {
    test::TempDir dir;
    RewardBase() {
        test::write_text(dir / "corpus.txt", demo_corpus(30000) + "Greet Hello Go away Bye\n");
        RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "base");
        cfg.train.max_steps = 20;
        REQUIRE(run_pretrain(cfg, {}) == 0);
        test::write_text(dir / "ranked.jsonl", test::ranked_greetings(120));
        std::string demos;
        for (const char* name : test::kGreetNames) demos += std::string("{\"prompt\": \"Greet ") + name + "\", \"response\": \"Hello " + name + ".\"}\n";
        test::write_text(dir / "demos.jsonl", demos);
    }
    RunConfig reward_config(const std::string& out) const {
        RunConfig cfg;
        cfg.stage = Stage::Reward;
        cfg.source = "<test>";
        cfg.out_dir = (dir / out).string();
        cfg.init_from = (dir / "base").string();
        cfg.runtime.threads = 2;
        cfg.runtime.deterministic = true;  // results compared bit for bit, also under load
        cfg.runtime.log_level = "warn";
        cfg.data.files = {(dir / "ranked.jsonl").string()};
        cfg.data.val_fraction = 0.2;
        cfg.reward.reference_files = {(dir / "demos.jsonl").string()};
        cfg.optim.lr = 3e-3;
        cfg.optim.min_lr = 3e-4;
        cfg.optim.lr_warmup_steps = 5;
        cfg.optim.lr_decay_steps = 60;
        cfg.optim.weight_decay = 0;
        cfg.train.max_steps = 60;
        cfg.train.batch_size = 8;
        cfg.train.eval_every = 30;
        cfg.train.eval_batches = 10;
        cfg.checkpoint.every = 10;
        cfg.checkpoint.keep_last = 0;
        return cfg;
    }
};

}  // namespace

// Reward model learns the rankings and is normalised on the demonstrations.
TEST_CASE("reward model learns the rankings and is normalised", "[integration][reward]") {
    RewardBase base;
    RunConfig cfg = base.reward_config("rm");
    REQUIRE(run_reward(cfg, {}) == 0);
    auto evals = test::metric_records(cfg.out_dir, "eval");
    REQUIRE(evals.size() == 3);  // steps 0, 30, 60
    INFO(evals.front().dump() << "\n" << evals.back().dump());
    REQUIRE(evals.back()["val_accuracy"].get<double>() >= 0.9);
    REQUIRE(evals.back()["val_loss"].get<double>() < 0.5 * evals.front()["val_loss"].get<double>());
    REQUIRE(evals.back()["val_margin"].get<double>() > 0);

    // The saved model scores the reference demonstrations at mean 0, and ranks as it learned.
    auto rm = load_reward_model_from_checkpoint(cfg.out_dir, torch::kCPU);
    REQUIRE(rm.info.stage_state["lineage"]["stage"] == "pretrain");  // where it came from
    REQUIRE_THAT(rm.info.stage_state["lineage"]["checkpoint"].get<std::string>(), Contains("base"));
    REQUIRE(rm.model->score->norm_bias.item<double>() != 0.0);
    std::vector<std::vector<int32_t>> demos;
    for (const char* name : test::kGreetNames) {
        demos.push_back(render_conversation({{"user", std::string("Greet ") + name}, {"assistant", std::string("Hello ") + name + "."}},
                                            rm.tokenizer).ids);
    }
    auto demo_rewards = rm.model->normalise(raw_rewards_of(*rm.model, demos, rm.tokenizer.pad_id(), 4, false));
    REQUIRE(std::abs(demo_rewards.mean().item<double>()) < 1e-4);
    auto rude = render_conversation({{"user", "Greet Anna"}, {"assistant", "Go away."}}, rm.tokenizer).ids;
    auto rude_reward = rm.model->normalise(raw_rewards_of(*rm.model, {rude}, rm.tokenizer.pad_id(), 1, false));
    REQUIRE(rude_reward.item<double>() < demo_rewards[0].item<double>());

    // rlhf score prints the same normalised number; generate refuses a reward model clearly.
    auto scored = test::run_cli("score --checkpoint " + test::shell_quote(cfg.out_dir) +
                                " --prompt 'Greet Anna' --response 'Hello Anna.' --threads 1");
    REQUIRE(scored.exit_code == 0);
    REQUIRE(std::stod(scored.output) == Approx(demo_rewards[0].item<double>()).margin(1e-4));
    auto gen = test::run_cli("generate --checkpoint " + test::shell_quote(cfg.out_dir) + " --prompt hi");
    REQUIRE(gen.exit_code == 1);
    REQUIRE_THAT(gen.output, Contains("reward-model checkpoint") && Contains("rlhf score"));
}

// Reward run resumed from a checkpoint equals an uninterrupted run.
TEST_CASE("a resumed reward run equals an uninterrupted one", "[integration][reward]") {
    RewardBase base;
    RunConfig full = base.reward_config("full");
    full.train.max_steps = 30;
    full.train.eval_every = 0;
    REQUIRE(run_reward(full, {}) == 0);
    RunConfig part = base.reward_config("part");
    part.train.max_steps = 20;
    part.train.eval_every = 0;
    REQUIRE(run_reward(part, {}) == 0);
    part.train.max_steps = 30;
    StageOptions resume;
    resume.resume = true;
    REQUIRE(run_reward(part, resume) == 0);
    auto a = test::metric_records(full.out_dir, "train"), b = test::metric_records(part.out_dir, "train");
    REQUIRE(a.size() == 30);
    REQUIRE(b.size() == 30);
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("step " << i + 1);
        REQUIRE(a[i]["loss"].get<double>() == b[i]["loss"].get<double>());
    }
    auto ma = load_reward_model_from_checkpoint(full.out_dir, torch::kCPU), mb = load_reward_model_from_checkpoint(part.out_dir, torch::kCPU);
    auto pa = ma.model->named_parameters(), pb = mb.model->named_parameters();
    for (const auto& item : pa) REQUIRE(torch::equal(item.value(), pb[item.key()]));
    REQUIRE(ma.model->score->norm_bias.item<double>() == mb.model->score->norm_bias.item<double>());
}

TEST_CASE("reward input errors are one clear line", "[integration][reward]") {
    RewardBase base;
    RunConfig cfg = base.reward_config("bad");
    test::write_text(base.dir / "short.jsonl", test::ranked_greetings(4) + "{\"prompt\": \"Greet Ben\", \"responses\": [\"Hi\"]}\n");
    cfg.data.files = {(base.dir / "short.jsonl").string()};
    REQUIRE_THROWS_WITH(run_reward(cfg, {}), Contains("short.jsonl:5") && Contains("at least 2 responses"));

    cfg = base.reward_config("bad2");
    cfg.data.on_error = OnError::Skip;
    cfg.data.files = {(base.dir / "short.jsonl").string()};
    cfg.train.max_steps = 2;
    REQUIRE(run_reward(cfg, {}) == 0);  // the bad group is counted and left out

    cfg = base.reward_config("bad3");
    cfg.model.dropout = 0.1;  // config validation refuses it (rlhf train and rlhf config show alike)
    REQUIRE_THROWS_WITH(load_config_text(dump_config(cfg), "<test>"), Contains("model.dropout"));

    cfg = base.reward_config("bad4");
    cfg.init_from = (base.dir / "missing").string();
    REQUIRE_THROWS_WITH(run_reward(cfg, {}), Contains("init_from") && Contains("does not exist"));
}
