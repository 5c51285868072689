// Critic-free RL (ppo.advantage: grpo | rloo) with a verifiable reward, whole runs on a tiny model:
// the checker's reward rises with no critic allocated, resume is exact, bad input is one line.
//
// The task: "Guess NAME's age", answered by an SFT policy that learned to say a RANDOM number of
// 1..5, so it is right about 1 time in 5 when the gold answer (the same for every name) is 3; the
// checker (ppo.reward: checker:ages) pays 1 when the reply's number is 3. Only the reward can
// teach which number that is.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/load.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/stages/ppo.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/stages/sft.h"
#include "rlhf/train/metrics.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

// pretrain -> sft on "Guess NAME's age" -> a uniform 1..5, trained once per test binary and
// copied into each test's own directory.
struct GuessTiny {
    test::TempDir dir;
    GuessTiny() {
        test::copy_cached_fixture("grpo-guess-tiny", [](const std::filesystem::path& fixture) { make(fixture); }, dir.path());
    }
    static void make(const std::filesystem::path& dir) {
        test::write_text(dir / "corpus.txt", demo_corpus(30000) + "Guess age's 1 2 3 4 5\n");
        RunConfig pre = test::tiny_pretrain_config(dir / "corpus.txt", dir / "base");
        pre.train.max_steps = 20;
        REQUIRE(run_pretrain(pre, {}) == 0);
        std::string sft, prompts;
        const char* names[] = {"Anna", "Ben", "Clara", "David", "Ella", "Finn", "Grace", "Hugo", "Iris", "Jack"};
        for (int i = 0; i < 100; ++i) {  // each name with each reply 1..5 twice: uniform replies
            sft += "{\"prompt\": \"Guess " + std::string(names[i % 10]) + "'s age\", \"response\": \"" +
                   std::to_string(i / 10 % 5 + 1) + ".\"}\n";
        }
        for (int i = 0; i < 20; ++i) {
            prompts += "{\"prompt\": \"Guess " + std::string(names[i % 10]) + "'s age\", \"answer\": 3}\n";
        }
        test::write_text(dir / "sft.jsonl", sft);
        test::write_text(dir / "prompts.jsonl", prompts);
        RunConfig cfg = config(dir, "sft", "sft", "base");
        cfg.data.files = {(dir / "sft.jsonl").string()};
        cfg.data.val_fraction = 0;
        cfg.optim.lr = 1e-2;
        cfg.optim.min_lr = 1e-3;
        cfg.optim.lr_warmup_steps = 5;
        cfg.train.max_steps = 60;
        cfg.train.batch_size = 8;
        cfg.train.eval_every = 0;
        cfg.train.eval_prompts = 0;
        cfg.checkpoint.every = 0;
        REQUIRE(run_sft(cfg, {}) == 0);
    }
    RunConfig config(const std::string& stage, const std::string& out, const std::string& init_from) const {
        return config(dir.path(), stage, out, init_from);
    }
    static RunConfig config(const std::filesystem::path& dir, const std::string& stage, const std::string& out,
                            const std::string& init_from) {
        return test::fine_tune_config(stage, dir, out, init_from);
    }
    // GRPO on the checker: 8 prompts x 4 samples per iteration, no KL (no reference either).
    RunConfig grpo_config(const std::string& out) const {
        RunConfig cfg = config("ppo", out, "sft");
        cfg.data.files = {(dir / "prompts.jsonl").string()};
        cfg.data.val_fraction = 0.2;  // 4 of the 20 evaluate, 16 train: two batches of 8 per epoch
        cfg.ppo.reward = RewardSource::CheckerAges;
        cfg.ppo.advantage = Advantage::Grpo;
        cfg.ppo.group_size = 4;
        cfg.ppo.rollout_batch = 8;
        cfg.ppo.minibatch = 8;
        cfg.ppo.max_new_tokens = 6;
        cfg.ppo.kl_coef = 0;
        cfg.optim.lr = 1e-2;
        cfg.optim.min_lr = 1e-2;
        cfg.optim.lr_warmup_steps = 0;
        cfg.train.max_steps = 25;
        cfg.train.batch_size = 8;
        cfg.train.eval_every = 25;
        cfg.train.eval_prompts = 4;
        cfg.train.log_samples = 0;
        cfg.checkpoint.every = 0;
        return cfg;
    }
};

double mean_accuracy(const std::vector<nlohmann::json>& steps, size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += steps[i]["checker_accuracy"].get<double>();
    return s / static_cast<double>(to - from);
}

}  // namespace

// grpo and rloo raise a checker's reward with no critic and, at kl_coef 0, no reference.
TEST_CASE("grpo and rloo raise a checker's reward, no critic", "[integration][grpo]") {
    GuessTiny guess;
    for (const char* advantage : {"grpo", "rloo"}) {
        INFO(advantage);
        RunConfig cfg = guess.grpo_config(advantage);
        cfg.ppo.advantage = enum_from_name<Advantage>(advantage).value();
        REQUIRE(run_ppo(cfg, {}) == 0);
        auto steps = test::metric_records(cfg.out_dir, "train");
        REQUIRE(steps.size() == 25);
        INFO(steps.front().dump() << "\n" << steps.back().dump());
        for (const auto& s : steps) {
            REQUIRE(s["rollouts"].get<int64_t>() == 32);                  // 8 prompts x 4 samples
            REQUIRE(s["first_minibatch_ratio_deviation"].get<double>() <= 1e-5);
            REQUIRE(s["kl"].get<double>() == 0.0);                        // no reference: no KL
            REQUIRE(s["value_loss"].is_null());                           // no critic: nothing to report
            REQUIRE(s["explained_variance"].is_null());
        }
        // The SFT policy says a random number of five; the checker's reward teaches the right one.
        const double first = mean_accuracy(steps, 0, 3), last = mean_accuracy(steps, 22, 25);
        REQUIRE(first < 0.5);
        REQUIRE(last > first + 0.3);
        // Nothing of a critic was allocated or saved.
        const auto step_dir = resolve_checkpoint(cfg.out_dir);
        REQUIRE_FALSE(std::filesystem::exists(step_dir / "critic.safetensors"));
        REQUIRE_FALSE(std::filesystem::exists(step_dir / "critic_optimizer.safetensors"));
    }
}

// grpo resumed from a checkpoint equals an uninterrupted run (KL as a k3 loss, token sums).
TEST_CASE("grpo resumed equals an uninterrupted run", "[integration][grpo]") {
    GuessTiny guess;
    RunConfig full = guess.grpo_config("full");
    full.ppo.kl_coef = 0.05;
    full.ppo.kl_penalty = KlPenalty::Loss;
    full.ppo.loss_aggregation = LossAggregation::TokenSum;
    full.ppo.scale_by_std = false;
    full.ppo.clip_high = 0.28;
    full.ppo.format_reward = 0.1;
    full.train.max_steps = 6;
    full.train.eval_every = 0;
    full.checkpoint.every = 3;
    REQUIRE(run_ppo(full, {}) == 0);
    RunConfig part = full;
    part.out_dir = (guess.dir / "part").string();
    part.train.max_steps = 3;
    REQUIRE(run_ppo(part, {}) == 0);
    part.train.max_steps = 6;
    StageOptions resume;
    resume.resume = true;
    REQUIRE(run_ppo(part, resume) == 0);
    auto a = test::metric_records(full.out_dir, "train"), b = test::metric_records(part.out_dir, "train");
    REQUIRE(a.size() == 6);
    REQUIRE(b.size() == 6);
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("step " << i + 1);
        for (const char* key : {"loss", "score_mean", "kl", "kl_loss", "checker_accuracy", "grad_norm"}) {
            INFO(key);
            REQUIRE(a[i][key].get<double>() == b[i][key].get<double>());
        }
    }
    // The k3 term is a loss here, not a reward: the policy moved, so after the first step it is > 0.
    REQUIRE(a.back()["kl_loss"].get<double>() > 0);
}

TEST_CASE("grpo and checker input errors are one clear line", "[integration][grpo]") {
    const std::string yaml = "stage: ppo\ninit_from: runs/x\ndata:\n  files: [p.jsonl]\nppo:\n  reward: checker:ages\n"
                             "  advantage: grpo\n  critic_from: policy\n";
    REQUIRE_THROWS_WITH(load_config_text(yaml, "g.yaml"), Contains("ppo.group_size") && Contains("needs >= 2 samples"));
    REQUIRE_THROWS_WITH(load_config_text(yaml, "g.yaml", {"ppo.group_size=1"}), Contains("ppo.group_size"));
    REQUIRE_THROWS_WITH(load_config_text(yaml, "g.yaml", {"ppo.group_size=4", "ppo.reward=checker:chess"}),
                        Contains("ppo.reward") && Contains("'checker:chess' is not one of"));
    REQUIRE_NOTHROW(load_config_text(yaml, "g.yaml", {"ppo.group_size=4"}));

    GuessTiny guess;
    RunConfig cfg = guess.grpo_config("bad");
    test::write_text(guess.dir / "no_answer.jsonl", "{\"prompt\": \"Guess Anna's age\", \"answer\": 3}\n{\"prompt\": \"Guess Ben's age\"}\n");
    cfg.data.files = {(guess.dir / "no_answer.jsonl").string()};
    REQUIRE_THROWS_WITH(run_ppo(cfg, {}), Contains("no_answer.jsonl:2") && Contains("no \"answer\" field") &&
                                              Contains("data.fields.answer"));
    test::write_text(guess.dir / "bad_answer.jsonl", "{\"prompt\": \"Guess Anna's age\", \"answer\": \"three\"}\n");
    cfg.data.files = {(guess.dir / "bad_answer.jsonl").string()};
    REQUIRE_THROWS_WITH(run_ppo(cfg, {}), Contains("bad_answer.jsonl:1") && Contains("a whole number"));
}

// LoRA (model.lora) through sft and grpo: only the adapters train and keep optimizer state; a
// checkpoint holds the adapters (and the grown embedding) and names its base, which must not
// change; resume is exact; and GRPO's reference is the policy with its adapters off, so its KL
// starts at exactly 0 (the adapters start at B = 0) with no second copy of the model.
TEST_CASE("LoRA sft and grpo: adapters train, the base is the reference", "[integration][grpo][lora]") {
    GuessTiny guess;
    auto lora = [](RunConfig& cfg) {
        cfg.model.lora.rank = 4;
        cfg.model.lora.alpha = 8;
        cfg.model.lora.targets = {"q", "v", "o", "fc"};
    };
    RunConfig sft = guess.config("sft", "lora-sft", "base");
    sft.data.files = {(guess.dir / "sft.jsonl").string()};
    sft.data.val_fraction = 0;
    sft.optim.lr = 1e-2;
    sft.train.max_steps = 4;
    sft.train.batch_size = 8;
    sft.train.eval_every = 0;
    sft.train.eval_prompts = 0;
    sft.checkpoint.every = 2;
    lora(sft);
    REQUIRE(run_sft(sft, {}) == 0);
    RunConfig part = sft;
    part.out_dir = (guess.dir / "lora-sft-part").string();
    part.train.max_steps = 2;
    REQUIRE(run_sft(part, {}) == 0);
    part.train.max_steps = 4;
    StageOptions resume;
    resume.resume = true;
    REQUIRE(run_sft(part, resume) == 0);
    const auto a = test::metric_records(sft.out_dir, "train"), b = test::metric_records(part.out_dir, "train");
    REQUIRE(a.size() == 4);
    REQUIRE(b.size() == 4);
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("step " << i + 1);
        REQUIRE(a[i]["loss"].get<double>() == b[i]["loss"].get<double>());
        REQUIRE(a[i]["grad_norm"].get<double>() == b[i]["grad_norm"].get<double>());
    }

    // The checkpoint: adapters, the embedding the chat tokens grew, its base named and hashed.
    const auto step_dir = resolve_checkpoint(sft.out_dir);
    const auto saved = load_safetensors(step_dir / "model.safetensors");
    const auto base_weights = resolve_checkpoint(guess.dir / "base") / "model.safetensors";
    REQUIRE(saved.metadata.at("lora_base") == std::filesystem::absolute(base_weights).string());
    for (const auto& [name, _] : saved.tensors) {
        INFO(name);
        REQUIRE((is_lora_tensor(name) || name == "transformer.wte.weight"));
    }
    REQUIRE(saved.tensors.size() == 1 + 2 * 2 * 4);  // wte + 2 layers x (A, B) x 4 targets
    for (const auto& [name, _] : load_safetensors(step_dir / "optimizer.safetensors").tensors) REQUIRE(is_lora_tensor(name));
    // Read as a whole model: the base's weights untouched, the adapters trained.
    LoadedModel loaded = load_model_from_checkpoint(sft.out_dir, torch::kCPU);
    const auto base = load_safetensors(base_weights).tensors;
    auto params = loaded.model->named_parameters();
    REQUIRE(torch::equal(params["transformer.h.1.mlp.c_fc.weight"], base.at("transformer.h.1.mlp.c_fc.weight")));
    REQUIRE(params["transformer.h.1.mlp.lora_fc.lora_B"].abs().max().item<double>() > 0);

    // GRPO from the LoRA SFT run, with a KL to its reference (the adapters-off base).
    RunConfig grpo = guess.grpo_config("lora-grpo");
    grpo.init_from = sft.out_dir;
    grpo.ppo.kl_coef = 0.05;
    grpo.ppo.kl_penalty = KlPenalty::Loss;
    grpo.train.max_steps = 3;
    grpo.train.eval_every = 0;
    grpo.checkpoint.every = 3;
    lora(grpo);
    REQUIRE(run_ppo(grpo, {}) == 0);
    const auto steps = test::metric_records(grpo.out_dir, "train");
    REQUIRE(steps.size() == 3);
    REQUIRE(steps[0]["kl"].get<double>() == 0.0);  // the same function, to the bit
    REQUIRE(steps[2]["kl"].get<double>() > 0);  // the adapters moved the policy off its base
    const auto grpo_saved = load_safetensors(resolve_checkpoint(grpo.out_dir) / "model.safetensors");
    REQUIRE(grpo_saved.metadata.at("lora_base") == (step_dir / "model.safetensors").string());
    REQUIRE_NOTHROW(load_model_from_checkpoint(grpo.out_dir, torch::kCPU));

    // A base that changed under its adapters is refused, naming it.
    {
        auto tensors = load_safetensors(step_dir / "model.safetensors");
        tensors.tensors.at("transformer.wte.weight").add_(1e-3);
        NamedTensors changed(tensors.tensors.begin(), tensors.tensors.end());
        save_safetensors(step_dir / "model.safetensors", changed, tensors.metadata);
    }
    REQUIRE_THROWS_WITH(load_model_from_checkpoint(grpo.out_dir, torch::kCPU),
                        Contains("changed since it was written") && Contains(step_dir.string()));
}
