// Data-parallel runs: 2 ranks on c10d's Gloo over loopback, started by `rlhf launch` (and by
// hand with torchrun's variables), against one process with the same global batch.
#include <catch2/catch.hpp>
#include <torch/cuda.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/distributed.h"
#include "rlhf/core/error.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/stages/sft.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/metrics.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

// A port of its own for every rendezvous of this test process (ctest runs one test at a time,
// but a port just closed may linger in TIME_WAIT).
int next_port() {
    static int n = 0;
    return 20000 + static_cast<int>(::getpid() % 2000) * 10 + (n++ % 10);
}

std::string launch(int nproc) {
    return "launch --nproc-per-node " + std::to_string(nproc) + " --master-port " + std::to_string(next_port()) + " ";
}

// `rlhf ARGS`, which must succeed (its output is shown when it does not).
test::CommandResult run_ok(const std::string& args) {
    auto r = test::run_cli(args);
    INFO(args << "\n" << r.output);
    REQUIRE(r.exit_code == 0);
    return r;
}

// Per-step losses of two runs agree to `tol` from `first_step` on (both must have the steps).
void require_same_losses(const std::filesystem::path& a, const std::filesystem::path& b, double tol,
                         int64_t first_step = 1) {
    std::map<int64_t, double> la, lb;
    for (const auto& r : test::metric_records(a, "train")) la[r["step"].get<int64_t>()] = r["loss"].get<double>();
    for (const auto& r : test::metric_records(b, "train")) lb[r["step"].get<int64_t>()] = r["loss"].get<double>();
    REQUIRE(!lb.empty());
    int compared = 0;
    for (const auto& [step, loss] : lb) {
        if (step < first_step) continue;
        INFO("step " << step << ": " << a << " vs " << b);
        REQUIRE(la.count(step) == 1);
        REQUIRE(std::abs(la[step] - loss) <= tol);
        ++compared;
    }
    REQUIRE(compared >= 5);
}

const char* kNames[] = {"Anna", "Ben", "Clara", "David", "Ella", "Finn", "Grace", "Hugo", "Iris", "Jack"};

struct Workspace {
    test::TempDir dir;
    Workspace() {
        test::write_text(dir / "corpus.txt", demo_corpus(30000) + "Greet Hello Go away\n");
        std::string demos, ranked;
        for (int i = 0; i < 100; ++i) {
            const std::string name = kNames[i % 10];
            demos += "{\"prompt\": \"Greet " + name + "\", \"response\": \"Hello " + name + ".\"}\n";
            ranked += "{\"prompt\": \"Greet " + name + "\", \"responses\": [\"Hello " + name +
                      ".\", \"Hello.\", \"Go away.\"]}\n";
        }
        test::write_text(dir / "sft.jsonl", demos);
        test::write_text(dir / "ranked.jsonl", ranked);
    }
    RunConfig pretrain(const std::string& out) const {
        RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / out);
        cfg.runtime.threads = 1;
        cfg.train.batch_size = 4;
        cfg.train.grad_accum_steps = 2;
        cfg.train.max_steps = 12;
        cfg.train.eval_every = 6;
        cfg.optim.lr_decay_steps = 12;  // the same schedule for runs cut short
        cfg.checkpoint.every = 6;
        cfg.checkpoint.keep_last = 0;
        return cfg;
    }
    // A base model for sft and reward, made once.
    std::string base() const {
        if (!std::filesystem::exists(dir / "base" / "checkpoints")) {
            RunConfig cfg = pretrain("base");
            cfg.train.grad_accum_steps = 1;
            REQUIRE(run_pretrain(cfg, {}) == 0);
        }
        return (dir / "base").string();
    }
    RunConfig finetune(const std::string& stage, const std::string& out) const {
        RunConfig cfg;
        cfg.stage = enum_from_name<Stage>(stage).value();
        cfg.source = "<test>";
        cfg.out_dir = (dir / out).string();
        cfg.init_from = base();
        cfg.model = pretrain("base").model;  // as a resolved config names it (file() writes every key)
        cfg.runtime.threads = 1;
        cfg.runtime.log_level = "warn";
        cfg.data.files = {(dir / (stage == "sft" ? "sft.jsonl" : "ranked.jsonl")).string()};
        cfg.data.val_fraction = 0.1;
        cfg.optim.lr = 3e-3;
        cfg.optim.lr_warmup_steps = 2;
        cfg.optim.lr_decay_steps = 12;
        cfg.optim.weight_decay = 0;
        cfg.train.max_steps = 12;
        cfg.train.batch_size = 3;  // SFT: unequal target counts per micro-batch and rank
        cfg.train.grad_accum_steps = 2;
        cfg.train.eval_every = 0;
        cfg.train.eval_batches = 2;
        cfg.train.eval_prompts = 0;
        cfg.checkpoint.every = 6;
        cfg.checkpoint.keep_last = 0;
        return cfg;
    }
    // The config as a YAML file for the CLI.
    std::string file(const RunConfig& cfg, const std::string& name) const {
        const auto path = dir / (name + ".yaml");
        test::write_text(path, dump_config(cfg));
        return test::shell_quote(path.string());
    }
};

}  // namespace

// Torchrun's variables are read, and an inconsistent set is one clear error.
TEST_CASE("torchrun's variables are read, a bad set is one clear error", "[unit][distributed]") {
    auto clear = [] {
        for (const char* k : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(k);
    };
    clear();
    CHECK_FALSE(read_dist_env().launched);
    ::setenv("WORLD_SIZE", "2", 1);
    CHECK_THROWS_WITH(read_dist_env(), Contains("WORLD_SIZE is set but RANK is not"));
    ::setenv("RANK", "2", 1);
    CHECK_THROWS_WITH(read_dist_env(), Contains("RANK=2 is not below WORLD_SIZE=2"));
    ::setenv("RANK", "1", 1);
    CHECK_THROWS_WITH(read_dist_env(), Contains("MASTER_ADDR is not set"));
    ::setenv("MASTER_ADDR", "10.0.0.1", 1);
    ::setenv("MASTER_PORT", "http", 1);
    CHECK_THROWS_WITH(read_dist_env(), Contains("MASTER_PORT='http' is not a whole number"));
    ::setenv("MASTER_PORT", "29555", 1);
    ::setenv("LOCAL_RANK", "1", 1);
    const DistEnv env = read_dist_env();
    CHECK(env.launched);
    CHECK(env.rank == 1);
    CHECK(env.world_size == 2);
    CHECK(env.local_world_size == 2);
    CHECK(env.master_addr == "10.0.0.1");
    CHECK(env.master_port == 29555);
    CHECK(device_for_rank("cuda", env) == "cuda:1");
    CHECK(device_for_rank("cpu", env) == "cpu");
    CHECK(device_for_rank("auto", env) == (torch::cuda::is_available() ? "cuda:1" : "cpu"));
    CHECK_THROWS_WITH(device_for_rank("cuda:0", env), Contains("would put all 2 ranks of this machine on one GPU"));
    clear();
}

TEST_CASE("each rank draws a contiguous share of a step's micro-batches", "[unit][distributed]") {
    Distributed one;  // a world of one draws them all
    CHECK(my_micro_batches(8, 4, one) == std::vector<uint64_t>{8, 9, 10, 11});
    CHECK_NOTHROW(check_accum_divides(3, one, "<test>"));
}

// 2 ranks train what 1 process trains with the same global batch: pretrain, sft, reward.
TEST_CASE("2 ranks train as 1 process does: pretrain, sft, reward",
          "[integration][distributed]") {
    Workspace ws;
    for (const std::string stage : {"pretrain", "sft", "reward"}) {
        DYNAMIC_SECTION(stage) {
            RunConfig one = stage == "pretrain" ? ws.pretrain("one") : ws.finetune(stage, "one");
            RunConfig two = one;
            two.out_dir = (ws.dir / "two").string();
            // Pretrain: many small buckets (each started from the hooks as it fills, in order);
            // the others: all gradients in one bucket.
            if (stage == "pretrain") two.runtime.dist_bucket_mb = 0.01;
            run_ok("train " + ws.file(one, "one"));
            auto r2 = run_ok(launch(2) + "train " + ws.file(two, "two"));
            require_same_losses(ws.dir / "one", ws.dir / "two", 1e-5);
            // Rank 0 alone wrote the run; the other rank printed nothing at info level.
            CHECK_THAT(r2.output, !Contains("[rank 1]"));
            CHECK(latest_checkpoint(ws.dir / "two").filename() == "step-000012");
        }
    }
}

// 2 ranks run the PPO one process runs: rollouts, whitening, adaptive beta, PPO-ptx, eval.
TEST_CASE("2 ranks run PPO as 1 process does, PPO-ptx and eval included",
          "[integration][distributed]") {
    Workspace ws;
    REQUIRE(run_sft(ws.finetune("sft", "sft"), {}) == 0);
    std::string prompts;
    for (const char* name : kNames) prompts += std::string("{\"prompt\": \"Greet ") + name + "\"}\n";
    test::write_text(ws.dir / "prompts.jsonl", prompts);
    RunConfig one = ws.finetune("ppo", "one");
    one.init_from = (ws.dir / "sft").string();
    one.data.files = {(ws.dir / "prompts.jsonl").string()};
    one.data.val_fraction = 0.3;
    one.train.eval_prompts = 3;  // 3 eval prompts: 1 on rank 0, 2 on rank 1
    one.train.eval_every = 5;
    one.train.max_steps = 10;
    one.train.batch_size = 1;  // micro-batches within each rank's share of a minibatch
    one.train.grad_accum_steps = 1;
    one.checkpoint.every = 0;
    one.ppo.toy_reward = "count:o";
    one.ppo.critic_from = CriticFrom::Policy;
    one.ppo.rollout_batch = 6;  // 7 training prompts: batches of 6 and 1 (shared 3 + 3, then 0 + 1)
    one.ppo.rollout_chunk = 8;
    one.ppo.minibatch = 3;  // rows shared 1 + 2 (and 0 + 1 in the one-row batch)
    one.ppo.epochs = 2;
    one.ppo.max_new_tokens = 12;
    one.ppo.kl_coef = 0.05;
    one.ppo.kl_target = 1.0;  // adaptive β from the KL of all ranks' sequences
    one.ppo.whiten_rewards = true;
    one.ppo.ptx_coef = 1.0;
    one.ppo.ptx_batch = 3;  // windows shared 1 and 2
    one.ppo.ptx_shards = (ws.dir / "base" / "data").string();
    one.optim.lr = 3e-3;
    RunConfig two = one;
    two.out_dir = (ws.dir / "two").string();
    two.ppo.rollout_chunk = 2;  // 3 rollouts per rank in chunks of 2 + 1: the samples do not depend on it
    run_ok("train " + ws.file(one, "one"));
    run_ok(launch(2) + "train " + ws.file(two, "two"));
    auto a = test::metric_records(ws.dir / "one", "train"), b = test::metric_records(ws.dir / "two", "train");
    REQUIRE(a.size() == 10);
    REQUIRE(b.size() == 10);
    for (size_t i = 0; i < a.size(); ++i) {
        for (const char* key : {"loss", "value_loss", "ptx_loss", "score_mean", "score_std", "kl", "beta", "entropy",
                                "explained_variance", "eos_rate", "response_length", "clip_fraction", "grad_norm",
                                "first_minibatch_ratio_deviation"}) {
            INFO("step " << i + 1 << ", " << key << ": " << a[i][key] << " vs " << b[i][key]);
            REQUIRE(std::abs(a[i][key].get<double>() - b[i][key].get<double>()) <= 1e-5);
        }
        REQUIRE(a[i]["grad_norm"].get<double>() > 0);  // it did learn
    }
    REQUIRE(a.back()["beta"].get<double>() != 0.05);  // β did adapt
    std::set<int64_t> batch_sizes;  // the epoch's last batch: one rollout, on rank 1 alone
    for (const auto& r : b) batch_sizes.insert(r["rollouts"].get<int64_t>());
    CHECK(batch_sizes == std::set<int64_t>{1, 6});
    auto eval_of = [](const std::filesystem::path& run) {
        std::vector<double> out;
        for (const auto& r : read_metrics(run / "metrics.jsonl")) if (r["type"] == "eval") out.push_back(r["eval_score"].get<double>());
        return out;
    };
    const auto ea = eval_of(ws.dir / "one"), eb = eval_of(ws.dir / "two");
    REQUIRE(ea.size() == 3);
    REQUIRE(eb.size() == 3);
    for (size_t i = 0; i < ea.size(); ++i) REQUIRE(std::abs(ea[i] - eb[i]) <= 1e-5);
    CHECK(latest_checkpoint(ws.dir / "two").filename() == "step-000010");

    // A 2-rank PPO checkpoint resumes on one process (the same files, the same next iteration).
    RunConfig part = two;
    part.out_dir = (ws.dir / "part").string();
    part.train.max_steps = 5;
    run_ok(launch(2) + "train " + ws.file(part, "part"));
    part.train.max_steps = 10;
    run_ok("train " + ws.file(part, "part") + " --resume");
    auto c = test::metric_records(ws.dir / "part", "train");
    REQUIRE(c.size() == 10);
    for (size_t i = 5; i < c.size(); ++i) {
        INFO("step " << i + 1);
        REQUIRE(std::abs(a[i]["loss"].get<double>() - c[i]["loss"].get<double>()) <= 1e-5);
        REQUIRE(std::abs(a[i]["kl"].get<double>() - c[i]["kl"].get<double>()) <= 1e-5);
    }

}

TEST_CASE("a 2-rank run resumes exactly on 2 ranks and on 1 process", "[integration][distributed]") {
    Workspace ws;
    RunConfig full = ws.pretrain("full");
    RunConfig part = ws.pretrain("part");
    part.train.max_steps = 6;
    auto r = test::run_cli(launch(2) + "train " + ws.file(full, "full"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    r = test::run_cli(launch(2) + "train " + ws.file(part, "part"));
    REQUIRE(r.exit_code == 0);
    std::filesystem::copy(ws.dir / "part", ws.dir / "single", std::filesystem::copy_options::recursive | std::filesystem::copy_options::copy_symlinks);
    part.train.max_steps = 12;
    r = test::run_cli(launch(2) + "train " + ws.file(part, "part") + " --resume");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    require_same_losses(ws.dir / "full", ws.dir / "part", 0.0);  // bit for bit

    RunConfig single = part;
    single.out_dir = (ws.dir / "single").string();
    r = test::run_cli("train " + ws.file(single, "single") + " --resume");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    require_same_losses(ws.dir / "full", ws.dir / "single", 1e-5, 7);

    // Ranks that do not see the same checkpoints (no shared out_dir) refuse to start.
    RunConfig elsewhere = full;
    elsewhere.out_dir = (ws.dir / "elsewhere").string();
    const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(next_port()) + " WORLD_SIZE=2 ";
    const std::string bin = test::shell_quote(RLHF_CLI_PATH);
    r = test::run_shell("{ " + env + "RANK=1 " + bin + " train " + ws.file(elsewhere, "elsewhere") + " --resume & " + env +
                        "RANK=0 " + bin + " train " + ws.file(full, "full") + " --set train.max_steps=20 --resume; " +
                        "echo \"rank 0 exit $?\"; wait; }");
    INFO(r.output);
    CHECK_THAT(r.output, Contains("the ranks start from different steps"));
    CHECK_THAT(r.output, Contains("rank 0 exit 1"));
}

// A killed rank makes the others exit with one line naming it, within the timeout.
TEST_CASE("a killed rank makes the others exit in time, naming it",
          "[integration][distributed]") {
    Workspace ws;
    RunConfig cfg = ws.pretrain("killed");
    cfg.train.max_steps = 100000;
    cfg.train.log_every = 1;
    cfg.runtime.dist_timeout = 60;
    const std::string config = ws.file(cfg, "killed");
    const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(next_port()) + " WORLD_SIZE=2 ";
    const std::string bin = test::shell_quote(RLHF_CLI_PATH);
    // Rank 1 is SIGKILLed once training is under way; rank 0 must notice, say so, and exit.
    const auto r = test::run_shell(
        "{ cd " + test::shell_quote(ws.dir.path().string()) + " && (" + env + "RANK=1 " + bin + " train " + config +
        " >/dev/null 2>&1 & echo $! > rank1.pid); start=$(date +%s); " + env + "RANK=0 timeout 120 " + bin + " train " +
        config + " & rank0=$!; for i in $(seq 600); do grep -q '\"step\":3,' killed/metrics.jsonl 2>/dev/null && break; sleep 0.2; done; " +
        "kill -9 $(cat rank1.pid); wait $rank0; code=$?; echo \"rank 0 exit $code after $(( $(date +%s) - start )) s\"; }");
    INFO(r.output);
    CHECK_THAT(r.output, Contains("lost rank 1"));
    CHECK_THAT(r.output, Contains("rank 0 exit 1 "));  // not 0, nor 124 from the test's own timeout
}

// SIGTERM to the launcher stops every rank after the same step, with one checkpoint.
TEST_CASE("SIGTERM to the launcher stops every rank at the same step",
          "[integration][distributed]") {
    Workspace ws;
    RunConfig cfg = ws.pretrain("stopped");
    cfg.train.max_steps = 100000;
    cfg.checkpoint.every = 0;
    const std::string dir = test::shell_quote(ws.dir.path().string());
    const auto r = test::run_shell("{ cd " + dir + "; " + test::shell_quote(RLHF_CLI_PATH) + " " + launch(2) + "train " +
                                   ws.file(cfg, "stopped") + " & pid=$!; " +
                                   "for i in $(seq 600); do grep -q '\"step\":5,' stopped/metrics.jsonl 2>/dev/null && break; sleep 0.2; done; " +
                                   "kill -TERM $pid; wait $pid; echo \"launch exit $?\"; }");
    INFO(r.output);
    CHECK_THAT(r.output, Contains("launch exit 143"));
    const auto latest = latest_checkpoint(ws.dir / "stopped");
    REQUIRE(!latest.empty());
    CHECK(read_checkpoint_info(latest).state.step == test::metric_records(ws.dir / "stopped", "train").back()["step"].get<int64_t>());
    // The resume hint is the launch the user typed, not one rank's own command.
    CHECK_THAT(r.output, Contains("continue with: ") && Contains(" launch --nproc-per-node 2 --master-port ") &&
                             Contains(" train ") && Contains(" --resume"));
}

TEST_CASE("bad distributed input is one clear line and a non-zero exit", "[integration][distributed][light]") {
    Workspace ws;
    RunConfig cfg = ws.pretrain("bad");
    cfg.runtime.dist_timeout = 3;
    const std::string config = ws.file(cfg, "bad");
    const std::string bin = test::shell_quote(RLHF_CLI_PATH);
    auto run = [&](const std::string& env) { return test::run_shell(env + " " + bin + " train " + config); };

    auto r = run("WORLD_SIZE=2");
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Contains("WORLD_SIZE is set but RANK is not"));
    r = run("RANK=2 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999");
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Contains("RANK=2 is not below WORLD_SIZE=2"));
    // Nobody serves the store at this port: rank 1 gives up after runtime.dist_timeout.
    r = run("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(next_port()));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Contains("rank 1 cannot reach rank 0 at 127.0.0.1:"));
    // Rank 1 never comes: rank 0 names it.
    r = run("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(next_port()));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Contains("rank 1 did not join"));
    // Rank 0 fails while preparing the data: rank 1, waiting for it, says why instead of timing out.
    // Both must first meet at the rendezvous: on a loaded machine two starts can be seconds apart,
    // so this pair waits longer for each other (the failure itself takes no timeout to report).
    RunConfig joined = cfg;
    joined.runtime.dist_timeout = 60;
    RunConfig missing = joined;
    missing.data.text = {(ws.dir / "no-such-corpus.txt").string()};
    const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(next_port()) + " WORLD_SIZE=2 ";
    r = test::run_shell("{ " + env + "RANK=0 " + bin + " train " + ws.file(missing, "missing") + " & " + env + "RANK=1 " +
                        bin + " train " + ws.file(joined, "joined") + "; echo \"rank 1 exit $?\"; wait; }");
    INFO(r.output);
    CHECK_THAT(r.output, Contains("[rank 1] distributed run: rank 0 failed while preparing the tokenizer and token shards"));
    CHECK_THAT(r.output, Contains("no-such-corpus.txt"));
    CHECK_THAT(r.output, Contains("rank 1 exit 1"));
    // 3 micro-batches per step cannot be split over 2 ranks.
    cfg.train.grad_accum_steps = 3;
    r = test::run_cli(launch(2) + "train " + ws.file(cfg, "bad3"));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Contains("train.grad_accum_steps = 3 micro-batches per step cannot be shared by 2 ranks"));
    for (const auto& line : {std::string("Traceback"), std::string("terminate called"), std::string("Exception raised from")}) {
        CHECK_THAT(r.output, !Contains(line));
    }
}

#ifdef RLHF_TORCHRUN
TEST_CASE("torchrun starts the same 2-rank run as rlhf launch", "[integration][distributed]") {
    Workspace ws;
    RunConfig one = ws.pretrain("one");
    RunConfig two = one;
    two.out_dir = (ws.dir / "two").string();
    auto r = test::run_cli(launch(2) + "train " + ws.file(one, "one"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    r = test::run_shell(std::string(RLHF_TORCHRUN) + " --nproc_per_node=2 --master_port=" + std::to_string(next_port()) +
                        " --no_python " + test::shell_quote(RLHF_CLI_PATH) + " train " + ws.file(two, "two"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    require_same_losses(ws.dir / "one", ws.dir / "two", 0.0);
}
#endif
