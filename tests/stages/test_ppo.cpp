// Whole PPO runs on a tiny model (seconds each): a toy reward with a known optimum rises, the
// invariants other tools broke hold on every iteration, resume is exact, bad input is one line.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/stages/ppo.h"
#include "rlhf/stages/ppo_setup.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/stages/reward.h"
#include "rlhf/stages/sft.h"
#include "rlhf/train/metrics.h"
#include "support/greetings.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

RunConfig base_config(const std::string& stage, const std::filesystem::path& dir, const std::string& out,
                      const std::string& init_from) {
    return test::fine_tune_config(stage, dir, out, init_from);
}

// pretrain -> sft on "Greet NAME" -> "Hello NAME." (the policy and reference for PPO), trained
// once per test binary and copied into each test's own directory.
struct SftTiny {
    test::TempDir dir;
    SftTiny() {
        test::copy_cached_fixture("ppo-sft-tiny", [](const std::filesystem::path& fixture) { make(fixture); }, dir.path());
    }
    static void make(const std::filesystem::path& at) {
        test::write_text(at / "corpus.txt", demo_corpus(30000) + "Greet Hello oooo\n");
        RunConfig pre = test::tiny_pretrain_config(at / "corpus.txt", at / "base");
        pre.train.max_steps = 20;
        REQUIRE(run_pretrain(pre, {}) == 0);
        std::string sft, prompts;
        for (int i = 0; i < 100; ++i) {
            const std::string name = test::kGreetNames[i % 10];
            sft += "{\"prompt\": \"Greet " + name + "\", \"response\": \"Hello " + name + ".\"}\n";
            if (i < 10) prompts += "{\"prompt\": \"Greet " + name + "\"}\n";
        }
        test::write_text(at / "sft.jsonl", sft);
        test::write_text(at / "prompts.jsonl", prompts);
        REQUIRE(run_sft(sft_config(at), {}) == 0);
    }
    RunConfig sft_config() const { return sft_config(dir.path()); }
    static RunConfig sft_config(const std::filesystem::path& at) {
        RunConfig cfg = base_config("sft", at, "sft", "base");
        cfg.data.files = {(at / "sft.jsonl").string()};
        cfg.data.val_fraction = 0;
        cfg.optim.lr = 1e-2;
        cfg.optim.min_lr = 1e-3;
        cfg.optim.lr_warmup_steps = 5;
        cfg.train.max_steps = 60;
        cfg.train.batch_size = 8;
        cfg.train.eval_every = 0;
        cfg.train.eval_prompts = 0;
        cfg.checkpoint.every = 0;
        return cfg;
    }
    // Toy reward: the number of 'o' tokens in the reply ("Hello" has one; more pays, but a reply
    // that never ends scores -1).
    RunConfig ppo_config(const std::string& out) const {
        RunConfig cfg = base_config("ppo", dir.path(), out, "sft");
        cfg.data.files = {(dir / "prompts.jsonl").string()};
        cfg.data.val_fraction = 0.2;
        cfg.ppo.toy_reward = "count:o";
        cfg.ppo.critic_from = CriticFrom::Policy;
        cfg.ppo.rollout_batch = 16;
        cfg.ppo.minibatch = 8;
        cfg.ppo.epochs = 2;
        cfg.ppo.max_new_tokens = 16;
        cfg.ppo.kl_coef = 0.05;
        cfg.optim.lr = 3e-3;
        cfg.optim.min_lr = 3e-3;
        cfg.optim.lr_warmup_steps = 0;
        cfg.train.max_steps = 30;
        cfg.train.batch_size = 4;  // 2 micro-batches per minibatch: gradient accumulation
        cfg.train.eval_every = 15;
        cfg.train.eval_prompts = 4;
        cfg.train.log_samples = 0;
        cfg.checkpoint.every = 10;
        return cfg;
    }
    // The same for `steps` iterations, with no evaluation and no checkpoint before the end.
    RunConfig short_ppo_config(const std::string& out, int64_t steps) const {
        RunConfig cfg = ppo_config(out);
        cfg.train.max_steps = steps;
        cfg.train.eval_every = 0;
        cfg.checkpoint.every = 0;
        return cfg;
    }
};

double mean_of(const std::vector<nlohmann::json>& recs, size_t from, size_t to, const char* key) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += recs[i][key].get<double>();
    return s / static_cast<double>(to - from);
}

}  // namespace

// ppo raises a toy reward with a known optimum, KL finite, invariants on every iteration.
namespace {

// An iteration's phase times (metrics time_*) are there and fill its wall time: what is left
// untimed (prompt sampling, the invariants' check) is small.
void check_phase_times(const nlohmann::json& s) {
    double phases = 0;
    for (const char* p : {"generation", "reward", "policy", "reference", "critic", "advantages", "update", "ptx"}) {
        INFO("time_" << p);
        const double t = s.at(std::string("time_") + p).get<double>();
        REQUIRE(t >= 0.0);
        phases += t;
    }
    const double wall = s.at("time_iteration").get<double>();
    REQUIRE(s.at("time_generation").get<double>() > 0.0);
    REQUIRE(s.at("time_update").get<double>() > 0.0);
    REQUIRE(phases <= wall);
    REQUIRE(phases >= 0.9 * wall);
    REQUIRE(s.at("generated_tokens_per_s").get<double>() > 0.0);
    const double padding = s.at("decode_padding_share").get<double>();
    REQUIRE((padding >= 0.0 && padding < 1.0));
}

}  // namespace

TEST_CASE("ppo raises a toy reward, KL finite, invariants hold", "[integration][ppo]") {
    SftTiny sft;
    RunConfig cfg = sft.ppo_config("ppo");
    // Rollouts in chunks of 5 (5 + 5 + 5 + 1 sequences, each chunk padded to its own prompt and
    // response widths, then re-padded into one batch): the ratio-1 invariant below holds only if
    // that re-padding leaves every row's log-probs as they were.
    cfg.ppo.rollout_chunk = 5;
    REQUIRE(run_ppo(cfg, {}) == 0);
    auto steps = test::metric_records(cfg.out_dir, "train");
    REQUIRE(steps.size() == 30);
    INFO(steps.front().dump() << "\n" << steps.back().dump());
    // The policy starts as the reference: the first iteration's KL is exactly 0.
    REQUIRE(std::abs(steps.front()["kl"].get<double>()) < 1e-6);
    // critic_from: policy starts with a zero head (OpenAI's code): values 0, so the first
    // iteration's returns are the advantages and the explained variance is exactly 0.
    REQUIRE(steps.front()["explained_variance"].get<double>() == 0.0);
    for (const auto& s : steps) {
        INFO("step " << s["step"]);
        // Before the first update of an iteration the policy is the one that sampled: ratio 1.
        REQUIRE(s["first_minibatch_ratio_deviation"].get<double>() <= 1e-5);
        REQUIRE(s["first_minibatch_approx_kl"].get<double>() <= 1e-10);
        // generate()'s log-probs (KV cache, a token at a time) are the training forward's.
        REQUIRE(s["sampling_logprob_gap"].get<double>() <= 1e-5);
        REQUIRE(s["sampling_logprob_gap_max"].get<double>() <= 1e-4);
        REQUIRE(std::abs(s["sampling_kl"].get<double>()) <= 1e-8);
        REQUIRE(std::isfinite(s["kl"].get<double>()));
        check_phase_times(s);
    }
    const double first = mean_of(steps, 0, 5, "score_mean"), last = mean_of(steps, 25, 30, "score_mean");
    REQUIRE(last > first + 0.5);
    // The KL it pays for that stays well below what it earns: β·KL < the score gained.
    const auto& end = steps.back();
    REQUIRE(end["beta"].get<double>() * end["kl"].get<double>() < end["score_mean"].get<double>() - first);
    auto evals = test::metric_records(cfg.out_dir, "eval");
    REQUIRE(evals.size() == 3);
}

// ppo without advantage whitening: the mean removed, the scale kept, and the toy reward still rises.
TEST_CASE("ppo without advantage whitening still learns",
          "[integration][ppo]") {
    SftTiny sft;
    RunConfig whitened = sft.ppo_config("whitened");
    whitened.train.max_steps = 2;
    whitened.checkpoint.every = 0;
    whitened.train.eval_every = 0;
    RunConfig kept = sft.ppo_config("kept");
    kept.ppo.whiten_advantages = false;
    REQUIRE(run_ppo(whitened, {}) == 0);
    REQUIRE(run_ppo(kept, {}) == 0);
    auto w = test::metric_records(whitened.out_dir, "train"), k = test::metric_records(kept.out_dir, "train");
    // The same rollouts (the same policy samples them); the first update then differs only in
    // the advantages' scale: whitened to std 1 against the raw spread of a few 'o' tokens.
    REQUIRE(w.front()["score_mean"] == k.front()["score_mean"]);
    REQUIRE(w.front()["policy_loss"] != k.front()["policy_loss"]);
    REQUIRE(k.size() == 30);
    REQUIRE(mean_of(k, 25, 30, "score_mean") > mean_of(k, 0, 5, "score_mean") + 0.5);
}

// ppo.reference_temperature: the KL is taken to the reference at that temperature.
TEST_CASE("ppo.reference_temperature sets the KL's reference", "[integration][ppo]") {
    SftTiny sft;
    auto first_iteration = [&](const std::string& out, double reference_temperature) {
        RunConfig cfg = sft.ppo_config(out);
        cfg.ppo.reference_temperature = reference_temperature;
        cfg.train.max_steps = 1;
        cfg.checkpoint.every = 0;
        cfg.train.eval_every = 0;
        REQUIRE(run_ppo(cfg, {}) == 0);
        return test::metric_records(cfg.out_dir, "train").front();
    };
    // The policy starts as the reference. At the rollout's own temperature (1, and 0 = the
    // rollout's) the KL of the first rollouts is 0; against the same model sharpened to T = 0.5 it
    // is KL(pi || pi_0.5) > 0 on the same samples (same seed), paid on every token.
    const auto same = first_iteration("same", 0.0), explicit_one = first_iteration("one", 1.0);
    const auto sharper = first_iteration("sharper", 0.5);
    REQUIRE(std::abs(same["kl"].get<double>()) < 1e-6);
    REQUIRE(explicit_one["kl"] == same["kl"]);
    REQUIRE(sharper["score_mean"] == same["score_mean"]);  // the same samples
    REQUIRE(sharper["kl"].get<double>() > 0.01);
    // Only the reference moved: the policy's own ratio is still 1 before its first update.
    REQUIRE(sharper["first_minibatch_ratio_deviation"].get<double>() <= 1e-5);
}

TEST_CASE("ppo resumed from a checkpoint equals an uninterrupted run", "[integration][ppo]") {
    SftTiny sft;
    RunConfig full = sft.ppo_config("full");
    full.train.max_steps = 6;
    full.train.eval_every = 0;
    full.ppo.ema_decay = 0.9;
    full.ppo.kl_target = 1.0;  // adaptive β must come back too
    full.checkpoint.every = 3;
    REQUIRE(run_ppo(full, {}) == 0);
    RunConfig part = full;
    part.out_dir = (sft.dir / "part").string();
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
        for (const char* key : {"loss", "score_mean", "kl", "beta", "value_loss"}) {
            INFO(key);
            REQUIRE(a[i][key].get<double>() == b[i][key].get<double>());
        }
    }
    // The EMA comes back too: the resumed run's equals the uninterrupted run's, bit for bit.
    const auto full_step = resolve_checkpoint(full.out_dir), part_step = resolve_checkpoint(part.out_dir);
    const auto ema_full = load_safetensors(full_step / kEmaFile), ema_part = load_safetensors(part_step / kEmaFile);
    REQUIRE(ema_full.tensors.size() == ema_part.tensors.size());
    for (const auto& [name, t] : ema_full.tensors) {
        INFO(name);
        REQUIRE(torch::equal(t, ema_part.tensors.at(name)));
    }
    // Readers take the EMA as the model (InstructGPT); --weights raw the trained weights.
    const auto raw_file = load_safetensors(full_step / "model.safetensors");
    LoadedModel as_read = load_model_from_checkpoint(full.out_dir, torch::kCPU);
    LoadedModel raw = load_model_from_checkpoint(full.out_dir, torch::kCPU, "raw");
    REQUIRE(as_read.weights_file.filename() == kEmaFile);
    bool differs = false;
    for (const auto& item : as_read.model->named_parameters()) {
        INFO(item.key());
        REQUIRE(torch::equal(item.value(), ema_full.tensors.at(item.key())));
        REQUIRE(torch::equal(raw.model->named_parameters()[item.key()], raw_file.tensors.at(item.key())));
        differs = differs || !torch::equal(item.value(), raw_file.tensors.at(item.key()));
    }
    REQUIRE(differs);  // decay 0.9 over 6 iterations: the EMA is not the last weights
    // A checkpoint without an EMA: "ema" is a clear error, "auto" its weights.
    REQUIRE_THROWS_WITH(load_model_from_checkpoint(sft.dir / "sft", torch::kCPU, "ema"), Contains("no EMA weights"));
    REQUIRE(load_model_from_checkpoint(sft.dir / "sft", torch::kCPU).weights_file.filename() == "model.safetensors");
}

// ppo's rollout chunks change the memory it needs, not what it samples or learns.
namespace {

// Two finished runs logged the same `steps` iterations: each of `keys` within `tolerance`.
void require_same_iterations(const RunConfig& a_cfg, const RunConfig& b_cfg, size_t steps, std::initializer_list<const char*> keys,
                             double tolerance) {
    const auto a = test::metric_records(a_cfg.out_dir, "train"), b = test::metric_records(b_cfg.out_dir, "train");
    REQUIRE(a.size() == steps);
    REQUIRE(b.size() == steps);
    for (size_t i = 0; i < steps; ++i) {
        for (const char* key : keys) {
            INFO(b_cfg.out_dir << ", step " << i + 1 << ", " << key << ": " << a[i][key] << " vs " << b[i][key]);
            REQUIRE(std::abs(a[i][key].get<double>() - b[i][key].get<double>()) <= tolerance);
        }
    }
}

}  // namespace

TEST_CASE("ppo's rollout chunks change memory, not results", "[integration][ppo]") {
    // Every rollout row samples from its own random stream, so chunks of 16 and of 5 (5 + 5 + 5 + 1)
    // give the same iterations, and so does the static engine (generate() chunk by chunk) that the
    // rollout engine replaced.
    SftTiny sft;
    RunConfig whole = sft.short_ppo_config("whole", 4);
    whole.ppo.rollout_chunk = 16;
    RunConfig chunked = whole;
    chunked.out_dir = (sft.dir / "chunked").string();
    chunked.ppo.rollout_chunk = 5;
    RunConfig static_engine = chunked;
    static_engine.out_dir = (sft.dir / "static").string();
    static_engine.ppo.rollout_engine = RolloutEngine::Static;
    REQUIRE(run_ppo(whole, {}) == 0);
    REQUIRE(run_ppo(chunked, {}) == 0);
    REQUIRE(run_ppo(static_engine, {}) == 0);
    for (const auto& other : {chunked, static_engine}) {
        require_same_iterations(whole, other, 4, {"loss", "score_mean", "kl", "value_loss", "response_length"}, 1e-5);
    }
    // The static engine decodes stopped rows as padding; the rollout engine drops them.
    const auto engine = test::metric_records(chunked.out_dir, "train"), fixed = test::metric_records(static_engine.out_dir, "train");
    for (size_t i = 0; i < engine.size(); ++i) {
        INFO("step " << i + 1);
        REQUIRE(fixed[i]["decode_padding_share"].get<double>() > 0.0);
        REQUIRE(engine[i]["decode_padding_share"].get<double>() < fixed[i]["decode_padding_share"].get<double>());
    }
}

TEST_CASE("ppo with activation checkpointing trains as without", "[integration][ppo]") {
    // The policy and the critic recompute their blocks in the backward; the iterations must not change.
    SftTiny sft;
    RunConfig plain = sft.short_ppo_config("plain", 2);
    RunConfig checkpointed = plain;
    checkpointed.out_dir = (sft.dir / "checkpointed").string();
    checkpointed.train.activation_checkpointing = "every_2";
    REQUIRE(run_ppo(plain, {}) == 0);
    REQUIRE(run_ppo(checkpointed, {}) == 0);
    require_same_iterations(plain, checkpointed, 2, {"loss", "value_loss", "kl", "score_mean", "grad_norm"}, 1e-6);
}

TEST_CASE("ppo warns when every answer is cut and scores alike", "[integration][ppo]") {
    // One new token never reaches the end of "Hello NAME.", and the toy reward counts no 'o' in
    // it: a run that learns nothing without an error. The alarms say so once the window is full.
    SftTiny sft;
    RunConfig cfg = sft.short_ppo_config("cut", 2);
    cfg.ppo.max_new_tokens = 1;
    cfg.ppo.missing_eos_penalty = false;
    cfg.ppo.alarm_window = 2;
    REQUIRE(run_ppo(cfg, {}) == 0);
    const auto records = test::metric_records(cfg.out_dir, "train");
    REQUIRE(records.size() == 2);
    REQUIRE(records[0]["alarm_truncated"] == 0);  // the window was not full yet
    REQUIRE(records[1]["alarm_truncated"] == 1);
    REQUIRE(records[1]["alarm_reward_flat"] == 1);
    const std::string log = read_file(std::filesystem::path(cfg.out_dir) / "train.log");
    REQUIRE_THAT(log, Contains("iteration 2: 100% of the responses of the last 2 iterations reached ppo.max_new_tokens (1)"));
    REQUIRE_THAT(log, Contains("every answer of the last 2 iterations got the same score"));
}

// ppo resumes against the SFT checkpoint it started from, not a newer one, and refuses a changed one.
TEST_CASE("ppo resumes against its own SFT checkpoint",
          "[integration][ppo]") {
    SftTiny sft;
    RunConfig full = sft.ppo_config("full");
    full.train.max_steps = 4;
    full.train.eval_every = 0;
    full.checkpoint.every = 2;
    REQUIRE(run_ppo(full, {}) == 0);
    RunConfig part = full;
    part.out_dir = (sft.dir / "part").string();
    part.train.max_steps = 2;
    REQUIRE(run_ppo(part, {}) == 0);
    const auto started_from = resolve_checkpoint(sft.dir / "sft");
    // The SFT run trains on: init_from's newest checkpoint is now another one.
    RunConfig more = sft.sft_config();
    more.train.max_steps = 62;
    StageOptions resume;
    resume.resume = true;
    REQUIRE(run_sft(more, resume) == 0);
    REQUIRE(resolve_checkpoint(sft.dir / "sft") != started_from);
    part.train.max_steps = 4;
    REQUIRE(run_ppo(part, resume) == 0);
    auto a = test::metric_records(full.out_dir, "train"), b = test::metric_records(part.out_dir, "train");
    REQUIRE(b.size() == 4);
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("step " << i + 1);
        REQUIRE(a[i]["kl"].get<double>() == b[i]["kl"].get<double>());  // the same reference
        REQUIRE(a[i]["loss"].get<double>() == b[i]["loss"].get<double>());
    }
    // Its weights replaced: one line, naming the checkpoint.
    std::filesystem::copy_file(resolve_checkpoint(sft.dir / "sft") / "model.safetensors", started_from / "model.safetensors",
                               std::filesystem::copy_options::overwrite_existing);
    part.train.max_steps = 6;
    REQUIRE_THROWS_WITH(run_ppo(part, resume), Contains("changed since this run started") && Contains(started_from.string()));
    // Gone: one line too.
    std::filesystem::remove_all(started_from);
    REQUIRE_THROWS_WITH(run_ppo(part, resume), Contains("is gone") && Contains("init_from"));
}

// ppo's held-out prompts beyond train.eval_prompts train instead of being dropped.
TEST_CASE("ppo trains on held-out prompts beyond eval_prompts", "[integration][ppo]") {
    SftTiny sft;
    RunConfig cfg = sft.ppo_config("split");
    cfg.train.max_steps = 1;
    cfg.train.eval_prompts = 1;  // of the 2 prompts val_fraction 0.2 holds out from 10
    cfg.runtime.log_level = "info";
    REQUIRE(run_ppo(cfg, {}) == 0);
    const std::string log = read_file(std::filesystem::path(cfg.out_dir) / "train.log");
    CHECK_THAT(log, Contains("prompts: 9 for training, 1 for evaluation"));
    CHECK_THAT(log, Contains("1 of the data.val_fraction held out are beyond train.eval_prompts = 1 and train"));
    // The sampler's cursor indexes those prompts: a resume that would see others is refused.
    cfg.train.eval_prompts = 2;
    cfg.train.max_steps = 2;
    StageOptions resume;
    resume.resume = true;
    REQUIRE_THROWS_WITH(run_ppo(cfg, resume), Contains("trained on 9 prompts") && Contains("gives 8"));
}

TEST_CASE("ppo.frozen_dtype auto follows runtime.dtype", "[ppo]") {
    RunConfig cfg;
    REQUIRE(cfg.ppo.frozen_dtype == "auto");
    const auto frozen_bf16 = [&](const std::string& runtime, const std::string& frozen) {
        cfg.runtime.dtype = runtime;
        cfg.ppo.frozen_dtype = frozen;
        return frozen_models_bf16(cfg);
    };
    CHECK_FALSE(frozen_bf16("float32", "auto"));
    CHECK(frozen_bf16("bfloat16", "auto"));
    CHECK_FALSE(frozen_bf16("bfloat16", "float32"));  // an explicit choice wins
    CHECK(frozen_bf16("float32", "bfloat16"));
}

TEST_CASE("ppo with PPO-ptx and bf16 frozen models", "[integration][ppo]") {
    SftTiny sft;
    RunConfig cfg = sft.ppo_config("ptx");
    cfg.train.max_steps = 3;
    cfg.train.eval_every = 0;
    cfg.ppo.ptx_coef = 2.0;
    cfg.ppo.ptx_shards = (sft.dir / "base" / "data").string();  // the pre-training run's shards
    cfg.runtime.dtype = "bfloat16";  // the run-time invariants hold within bf16's tolerances; the
                                     // reference in bf16 too (ppo.frozen_dtype: auto)
    cfg.ppo.rollout_correction = RolloutCorrection::Tis;  // bf16's small sampler/trainer gap, weighed
    REQUIRE(run_ppo(cfg, {}) == 0);
    auto steps = test::metric_records(cfg.out_dir, "train");
    REQUIRE(steps.size() == 3);
    for (const auto& s : steps) {
        // Measured ~0.0002-0.0015 here; the run stops (check_invariants: error) beyond 0.02.
        REQUIRE(s["sampling_logprob_gap"].get<double>() < 0.02);
        // bf16 rounding differs between the cached decode and the full forward: the gap is seen.
        REQUIRE(s["sampling_logprob_gap_max"].get<double>() > s["sampling_logprob_gap"].get<double>());
        REQUIRE(s["sampling_kl"].get<double>() > 0.0);
        REQUIRE(s["time_ptx"].get<double>() > 0.0);
        REQUIRE_THAT(s["rollout_weight_mean"].get<double>(), Catch::Matchers::WithinAbs(1.0, 0.05));
        REQUIRE(s["rollout_corrected_share"].get<double>() < 0.05);
        check_phase_times(s);
        REQUIRE(std::isfinite(s["ptx_loss"].get<double>()));
        REQUIRE(s["ptx_loss"].get<double>() > 0.0);
        // bf16 reference vs fp32 policy: no longer bit-identical, but close at the start.
        REQUIRE(std::isfinite(s["kl"].get<double>()));
    }
    REQUIRE(std::abs(steps.front()["kl"].get<double>()) < 0.5);
}

TEST_CASE("ppo input errors are one clear line", "[integration][ppo]") {
    SftTiny sft;
    RunConfig cfg = sft.ppo_config("bad");
    test::write_text(sft.dir / "empty.jsonl", "\n");
    cfg.data.files = {(sft.dir / "empty.jsonl").string()};
    REQUIRE_THROWS_WITH(run_ppo(cfg, {}), Contains("empty.jsonl") && Contains("no prompts"));

    cfg = sft.ppo_config("bad2");
    std::string long_prompts;
    for (int i = 0; i < 3; ++i) long_prompts += "{\"prompt\": \"" + std::string(40, 'a') + "\"}\n";
    test::write_text(sft.dir / "long.jsonl", long_prompts);
    cfg.data.files = {(sft.dir / "long.jsonl").string()};
    REQUIRE_THROWS_WITH(run_ppo(cfg, {}), Contains("all 3 prompts are longer") && Contains("ppo.max_new_tokens"));

    // A reward model trained on another tokenizer cannot score this policy's ids.
    test::write_text(sft.dir / "other.txt", demo_corpus(20000, 99) + "XYZ qj\n");
    RunConfig other = test::tiny_pretrain_config(sft.dir / "other.txt", sft.dir / "other_base");
    other.train.max_steps = 2;
    REQUIRE(run_pretrain(other, {}) == 0);
    test::write_text(sft.dir / "ranked.jsonl", "{\"prompt\": \"Greet Anna\", \"responses\": [\"Hello Anna.\", \"Go.\"]}\n"
                                               "{\"prompt\": \"Greet Ben\", \"responses\": [\"Hello Ben.\", \"Go.\"]}\n");
    RunConfig rm = base_config("reward", sft.dir.path(), "other_rm", "other_base");
    rm.data.files = {(sft.dir / "ranked.jsonl").string()};
    rm.data.val_fraction = 0;
    rm.train.max_steps = 1;
    rm.train.eval_every = 0;
    REQUIRE(run_reward(rm, {}) == 0);
    cfg = sft.ppo_config("bad3");
    cfg.ppo.toy_reward = "";
    cfg.ppo.reward_model = rm.out_dir;
    REQUIRE_THROWS_WITH(run_ppo(cfg, {}), Contains("ppo.reward_model") && Contains("tokenizer"));

    // A reward run as init_from would make its trunk the policy and the reference without a word.
    cfg = sft.ppo_config("bad4");
    cfg.init_from = rm.out_dir;
    REQUIRE_THROWS_WITH(run_ppo(cfg, {}), Contains("init_from is a reward model") && Contains("ppo.reward_model"));
}
