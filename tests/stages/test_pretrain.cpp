// Whole pre-training runs on a tiny model and a generated corpus (seconds each).
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/tokenizer/tokenizer.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/train/metrics.h"
#include "rlhf/data/demo_corpus.h"
#include "support/helpers.h"

using namespace rlhf;

namespace {

std::vector<double> train_losses(const std::filesystem::path& run_dir) {
    std::vector<double> out;
    for (const auto& r : read_metrics(run_dir / "metrics.jsonl")) {
        if (r["type"] == "train") out.push_back(r["loss"].get<double>());
    }
    return out;
}

}  // namespace

TEST_CASE("pretraining a tiny model lowers train and val loss", "[integration][pretrain]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(40000));
    RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "run");
    cfg.train.max_steps = 60;
    REQUIRE(run_pretrain(cfg, {}) == 0);

    std::vector<double> first_eval, last_eval;
    for (const auto& r : read_metrics(dir / "run" / "metrics.jsonl")) {
        if (r["type"] != "eval") continue;
        if (first_eval.empty()) first_eval = {r["train_loss"].get<double>(), r["val_loss"].get<double>()};
        last_eval = {r["train_loss"].get<double>(), r["val_loss"].get<double>()};
    }
    INFO("train " << first_eval[0] << " -> " << last_eval[0] << ", val " << first_eval[1] << " -> " << last_eval[1]);
    REQUIRE(last_eval[0] < first_eval[0] - 1.0);
    REQUIRE(last_eval[1] < first_eval[1] - 1.0);
    REQUIRE(train_losses(dir / "run").size() == 60);
    // the run directory holds what the docs promise
    for (const char* f : {"config.yaml", "train.log", "metrics.jsonl", "tokenizer/tokenizer.model", "data/meta.json",
                          "checkpoints/latest/model.safetensors", "checkpoints/step-000060/state.json"}) {
        INFO(f);
        REQUIRE(std::filesystem::exists(dir / "run" / f));
    }
    REQUIRE(read_checkpoint_info(resolve_checkpoint(dir / "run")).state.step == 60);
}

// A resumed run reproduces the uninterrupted run's losses exactly.
TEST_CASE("a resumed run reproduces the uninterrupted losses exactly", "[integration][pretrain]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(30000));
    for (double dropout : {0.0, 0.1}) {  // dropout exercises the saved RNG stream
        RunConfig full = test::tiny_pretrain_config(dir / "corpus.txt", dir / ("full" + std::to_string(dropout)));
        full.model.dropout = dropout;
        full.train.max_steps = 24;
        full.optim.lr_decay_steps = 24;  // the schedule must not depend on where the first part stops
        full.checkpoint.every = 8;
        REQUIRE(run_pretrain(full, {}) == 0);

        RunConfig part = full;
        part.out_dir = (dir / ("part" + std::to_string(dropout))).string();
        part.train.max_steps = 8;  // stops (and checkpoints) at step 8 ...
        REQUIRE(run_pretrain(part, {}) == 0);
        part.train.max_steps = 24;  // ... then continues to 24
        StageOptions resume;
        resume.resume = true;
        REQUIRE(run_pretrain(part, resume) == 0);

        auto a = train_losses(full.out_dir), b = train_losses(part.out_dir);
        INFO("dropout " << dropout);
        REQUIRE(a.size() == 24);
        REQUIRE(b.size() == 24);
        for (size_t i = 0; i < a.size(); ++i) {
            INFO("step " << i + 1);
            REQUIRE(a[i] == b[i]);  // bit for bit
        }
    }
}

// A crash after the last checkpoint is resumed without duplicate metrics.
TEST_CASE("a run resumed after a crash has no duplicate metrics", "[integration][pretrain]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(20000));
    RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "run");
    cfg.train.max_steps = 12;
    cfg.checkpoint.every = 5;
    REQUIRE(run_pretrain(cfg, {}) == 0);
    // Pretend the process died at step 12 before its final checkpoint: drop it.
    std::filesystem::remove_all(dir / "run" / "checkpoints" / "step-000012");
    atomic_symlink("step-000010", dir / "run" / "checkpoints" / "latest");
    StageOptions resume;
    resume.resume = true;
    REQUIRE(run_pretrain(cfg, resume) == 0);
    auto losses = train_losses(dir / "run");
    REQUIRE(losses.size() == 12);  // steps 11 and 12 were rewritten, not appended twice
}

// A fresh start drops metrics a run killed before its first checkpoint left.
TEST_CASE("a fresh start drops metrics of a run killed uncheckpointed", "[integration][pretrain]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(20000));
    RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "run");
    cfg.train.max_steps = 4;
    ensure_dir(dir / "run");
    test::write_text(dir / "run" / "metrics.jsonl", "{\"type\":\"train\",\"step\":1,\"loss\":9}\n");
    REQUIRE(run_pretrain(cfg, {}) == 0);
    REQUIRE(train_losses(dir / "run").size() == 4);
    REQUIRE(train_losses(dir / "run")[0] != 9.0);
}

// Editing a corpus in place remakes the cached tokenizer and shards.
TEST_CASE("a corpus edited in place remakes the tokenizer and shards", "[integration][pretrain]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(20000));
    RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "run");
    cfg.train.max_steps = 2;
    REQUIRE(run_pretrain(cfg, {}) == 0);
    const auto before = Tokenizer::load(dir / "run" / "tokenizer").fingerprint();
    test::write_text(dir / "corpus.txt", demo_corpus(20000) + "Zebras quickly jump over 7 foxes!\n");
    cfg.out_dir = (dir / "run").string();
    std::filesystem::remove_all(dir / "run" / "checkpoints");  // start over in the same out_dir
    REQUIRE(run_pretrain(cfg, {}) == 0);
    const Tokenizer after = Tokenizer::load(dir / "run" / "tokenizer");
    REQUIRE(after.fingerprint() != before);
    REQUIRE(after.piece_to_id("Z") >= 0);  // the new characters are in the new vocabulary
    REQUIRE(shards_tokenizer_fingerprint(dir / "run" / "data") == after.fingerprint());
}

TEST_CASE("starting over a run that has checkpoints needs --resume", "[integration][pretrain]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(20000));
    RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "run");
    cfg.train.max_steps = 3;
    REQUIRE(run_pretrain(cfg, {}) == 0);
    REQUIRE_THROWS_WITH(run_pretrain(cfg, {}), Catch::Contains("already holds checkpoints") && Catch::Contains("--resume"));
}

TEST_CASE("SIGKILL at any moment leaves a loadable latest checkpoint", "[integration][pretrain]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(20000));
    // Checkpoint every step, so kills land inside checkpoint writes as well as between them.
    const std::string args = "train " + test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/pretrain.yaml") +
                             " --set out_dir=run data.text=corpus.txt train.max_steps=100000 checkpoint.every=1"
                             " checkpoint.keep_last=3 train.eval_every=0";
    std::mt19937 rng(7);
    int kills_with_checkpoint = 0;
    const auto metrics = dir / "run" / "metrics.jsonl";
    auto metrics_size = [&] { return std::filesystem::exists(metrics) ? std::filesystem::file_size(metrics) : 0; };
    for (int attempt = 0; attempt < 5; ++attempt) {
        const auto size_before = metrics_size();
        pid_t pid = fork();
        if (pid == 0) {
            if (chdir(dir.path().c_str()) != 0) _exit(99);
            const std::string cmd = test::shell_quote(RLHF_CLI_PATH) + " " + args + (attempt ? " --resume" : "") +
                                    " > /dev/null 2>&1";
            execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
            _exit(98);
        }
        // Once this attempt has logged a step (its start-up is no moment worth testing), a random
        // moment of the next 0.6 s: that lands in and between checkpoint writes.
        for (int i = 0; i < 300 && metrics_size() == size_before; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 600));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        auto latest = latest_checkpoint(dir / "run");
        if (latest.empty()) continue;  // killed before the first checkpoint
        ++kills_with_checkpoint;
        // Everything in `latest` loads.
        CheckpointInfo info = read_checkpoint_info(latest);
        LoadedModel loaded = load_model_from_checkpoint(dir / "run", torch::kCPU);
        REQUIRE(loaded.info.state.step == info.state.step);
        REQUIRE(info.state.step > 0);
    }
    REQUIRE(kills_with_checkpoint >= 3);
}

TEST_CASE("SIGTERM saves a checkpoint and exits with 128 + 15", "[integration][pretrain]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(20000));
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir.path().c_str()) != 0) _exit(99);
        const std::string cmd = test::shell_quote(RLHF_CLI_PATH) + " train " +
                                test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/pretrain.yaml") +
                                " --set out_dir=run data.text=corpus.txt train.max_steps=100000 checkpoint.every=0"
                                " train.eval_every=0 > log.txt 2>&1";
        execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
        _exit(98);
    }
    // Wait until training is under way (metrics appear), then ask it to stop.
    for (int i = 0; i < 300 && !std::filesystem::exists(dir / "run" / "metrics.jsonl"); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    INFO(read_file(dir / "log.txt"));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 128 + SIGTERM);
    auto latest = latest_checkpoint(dir / "run");
    REQUIRE_FALSE(latest.empty());
    REQUIRE(read_checkpoint_info(latest).state.step == static_cast<int64_t>(train_losses(dir / "run").size()));
    // The hint repeats every --set: pasting it continues this run, not one with the config's values.
    REQUIRE_THAT(read_file(dir / "log.txt"),
                 Catch::Contains("continue with: ") && Catch::Contains("/configs/tiny/pretrain.yaml --set out_dir=run "
                                                                      "data.text=corpus.txt train.max_steps=100000 "
                                                                      "checkpoint.every=0 train.eval_every=0 --resume"));
}
