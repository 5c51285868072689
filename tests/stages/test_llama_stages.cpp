// A llama model (model.arch: llama, tests/support's tiny_llama: grouped-query attention, q/k
// norms, an untied head, llama3 rope scaling) through every stage on the Greet-NAME task, in
// the ChatML chat format as Qwen models speak it: pretrain learns, SFT (chat.template: chatml,
// a longer window than pre-training's) adds <|im_start|> and <|im_end|>, learns and exports to
// Hugging Face's Qwen3 class, a reward model and DPO train from the SFT policy in its format
// (DPO starting at ln 2 from its reference), and PPO and GRPO run with their invariants checked
// (ratio 1 and KL 0 at the first update), their replies stopping at <|im_end|>. What each stage learns on a
// GPT-2 is tested in its own file; this one shows the llama blocks plug into all of them. The
// second test starts where a user with a hub model does: a transformers-made Qwen2 chat model,
// imported (pip flavour: it needs transformers).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/stages/dpo.h"
#include "rlhf/stages/ppo.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/stages/reward.h"
#include "rlhf/stages/sft.h"
#include "support/greetings.h"
#include "support/helpers.h"

using namespace rlhf;

namespace {

RunConfig stage_config(const std::string& stage, const test::TempDir& dir, const std::string& out, const std::string& from) {
    RunConfig cfg = test::fine_tune_config(stage, dir.path(), out, from);
    cfg.optim.lr = 3e-3;
    cfg.optim.min_lr = 3e-4;
    cfg.optim.lr_warmup_steps = 2;
    cfg.train.batch_size = 8;
    cfg.train.eval_every = 0;
    cfg.train.eval_prompts = 0;
    cfg.checkpoint.every = 0;
    return cfg;
}

double mean_loss(const std::vector<nlohmann::json>& recs, size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += recs[i]["loss"].get<double>();
    return s / static_cast<double>(to - from);
}

// The Greet-NAME files the stages read: sft.jsonl (80 demonstrations), prompts.jsonl (20 prompts)
// and ranked.jsonl (60 ranked groups).
void write_greet_files(const test::TempDir& dir) {
    std::string sft_rows, prompts;
    for (int i = 0; i < 80; ++i) {
        const std::string name = test::kGreetNames[i % 10];
        sft_rows += "{\"prompt\": \"Greet " + name + "\", \"response\": \"Hello " + name + ".\"}\n";
        if (i < 20) prompts += "{\"prompt\": \"Greet " + name + "\"}\n";
    }
    test::write_text(dir / "sft.jsonl", sft_rows);
    test::write_text(dir / "prompts.jsonl", prompts);
    test::write_text(dir / "ranked.jsonl", test::ranked_greetings(60));
}

// DPO, PPO (against the reward model in dir/rm, a critic from it) and GRPO with a KL loss, each
// from the SFT policy in dir/sft for two steps, checked where each must hold from the start: DPO's
// loss is ln 2 (the policy is its reference), and the runtime invariants (ratio 1 and KL 0 before
// the first update, in fp32) stop PPO or GRPO if broken. The SFT policy ends some of its replies
// with the chat format's end-of-turn token, where rollouts stop: were the stop token EOS, every
// reply would run to max_new_tokens.
void check_dpo_ppo_grpo(const test::TempDir& dir) {
    RunConfig dpo = stage_config("dpo", dir, "dpo", "sft");
    dpo.data.files = {(dir / "ranked.jsonl").string()};
    dpo.train.max_steps = 2;
    REQUIRE(run_dpo(dpo, {}) == 0);
    auto steps = test::metric_records(dpo.out_dir, "train");
    REQUIRE(steps.size() == 2);
    CHECK(steps.front()["loss"].get<double>() == Approx(std::log(2.0)).margin(1e-4));

    RunConfig ppo = stage_config("ppo", dir, "ppo", "sft");
    ppo.data.files = {(dir / "prompts.jsonl").string()};
    ppo.data.val_fraction = 0;
    ppo.ppo.reward_model = (dir / "rm").string();
    ppo.ppo.rollout_batch = 8;
    ppo.ppo.minibatch = 8;
    ppo.ppo.max_new_tokens = 16;
    ppo.ppo.check_invariants = CheckInvariants::Error;
    ppo.train.max_steps = 2;
    REQUIRE(run_ppo(ppo, {}) == 0);
    steps = test::metric_records(ppo.out_dir, "train");
    REQUIRE(steps.size() == 2);
    CHECK(steps.front()["eos_rate"].get<double>() > 0);
    CHECK(steps.front()["response_length"].get<double>() < ppo.ppo.max_new_tokens);

    RunConfig grpo = ppo;
    grpo.out_dir = (dir / "grpo").string();
    grpo.ppo.advantage = Advantage::Grpo;
    grpo.ppo.group_size = 4;
    grpo.ppo.kl_penalty = KlPenalty::Loss;
    REQUIRE(run_ppo(grpo, {}) == 0);
    steps = test::metric_records(grpo.out_dir, "train");
    REQUIRE(steps.size() == 2);
    CHECK(steps.front()["kl"].get<double>() == 0.0);
}

// The same stages with LoRA adapters (docs/lora.md) over the SFT policy: a reward model whose
// checkpoint holds its head and adapters only, DPO at ln 2 from its start, and PPO whose reference
// is the policy with its adapters off (KL exactly 0 at first) and whose critic, from the policy,
// trains adapters of its own plus its head.
void check_lora_stages(const test::TempDir& dir) {
    auto lora = [](RunConfig& cfg) {
        cfg.model.lora.rank = 4;
        cfg.model.lora.alpha = 8;
        cfg.model.lora.targets = {"q", "k", "v", "o", "gate", "up", "down"};
    };
    RunConfig rm = stage_config("reward", dir, "lora_rm", "sft");
    rm.data.files = {(dir / "ranked.jsonl").string()};
    rm.train.max_steps = 2;
    lora(rm);
    REQUIRE(run_reward(rm, {}) == 0);
    for (const auto& [name, _] : load_safetensors(resolve_checkpoint(rm.out_dir) / "model.safetensors").tensors) {
        INFO(name);
        CHECK((is_lora_tensor(name) || name.rfind("score.", 0) == 0));
    }
    REQUIRE_NOTHROW(load_reward_model_from_checkpoint(rm.out_dir, torch::kCPU));

    RunConfig dpo = stage_config("dpo", dir, "lora_dpo", "sft");
    dpo.data.files = {(dir / "ranked.jsonl").string()};
    dpo.train.max_steps = 2;
    lora(dpo);
    REQUIRE(run_dpo(dpo, {}) == 0);
    auto steps = test::metric_records(dpo.out_dir, "train");
    REQUIRE(steps.size() == 2);
    CHECK(steps.front()["loss"].get<double>() == Approx(std::log(2.0)).margin(1e-4));

    RunConfig ppo = stage_config("ppo", dir, "lora_ppo", "sft");
    ppo.data.files = {(dir / "prompts.jsonl").string()};
    ppo.data.val_fraction = 0;
    ppo.ppo.reward_model = (dir / "rm").string();
    ppo.ppo.critic_from = CriticFrom::Policy;
    ppo.ppo.rollout_batch = 8;
    ppo.ppo.minibatch = 8;
    ppo.ppo.max_new_tokens = 16;
    ppo.ppo.check_invariants = CheckInvariants::Error;
    ppo.train.max_steps = 2;
    lora(ppo);
    REQUIRE(run_ppo(ppo, {}) == 0);
    steps = test::metric_records(ppo.out_dir, "train");
    REQUIRE(steps.size() == 2);
    CHECK(steps.front()["kl"].get<double>() == 0.0);
    CHECK(steps.back()["value_loss"].get<double>() > 0);
}

}  // namespace

TEST_CASE("a llama model goes through every stage", "[integration][llama]") {
    test::TempDir dir;
    test::write_text(dir / "corpus.txt", demo_corpus(30000) + "Greet Hello Go away Bye\n");
    RunConfig pre = test::tiny_pretrain_config(dir / "corpus.txt", dir / "base");
    pre.model = test::tiny_llama(0);
    pre.model.qkv_bias = false;  // Qwen3's switches, so that the SFT export has a Hugging Face class
    pre.train.max_steps = 20;
    REQUIRE(run_pretrain(pre, {}) == 0);
    auto steps = test::metric_records(pre.out_dir, "train");
    REQUIRE(steps.size() == 20);
    CHECK(mean_loss(steps, 15, 20) < mean_loss(steps, 0, 5) - 0.5);

    // SFT: learns the task; its checkpoint keeps the llama switches and exports as Qwen3.
    write_greet_files(dir);
    RunConfig sft = stage_config("sft", dir, "sft", "base");
    sft.data.files = {(dir / "sft.jsonl").string()};
    sft.data.val_fraction = 0;
    sft.optim.lr = 1e-2;
    sft.train.max_steps = 30;
    sft.checkpoint.export_hf = true;
    sft.chat.template_ = "chatml";
    sft.model.block_size = 48;  // ChatML's prompt is ~30 characters; rotary positions take any window
    sft.given_keys = {"model.block_size"};
    REQUIRE(run_sft(sft, {}) == 0);
    steps = test::metric_records(sft.out_dir, "train");
    CHECK(mean_loss(steps, 25, 30) < 0.5 * mean_loss(steps, 0, 5));
    const auto step_dir = resolve_checkpoint(sft.out_dir);
    const ModelConfig m = read_checkpoint_info(step_dir).config.model;
    CHECK(m.arch == ModelArch::Llama);
    CHECK(m.block_size == 48);
    const Tokenizer tok = load_checkpoint_tokenizer(step_dir);
    CHECK(tok.chat_template().style == ChatStyle::chatml);
    CHECK(tok.added_tokens() == std::vector<std::string>{"<|im_start|>", "<|im_end|>"});  // not our role tokens
    CHECK(m.n_kv_head == 2);
    CHECK(m.qk_norm);
    CHECK_FALSE(m.tie_embeddings);
    const auto hf = nlohmann::json::parse(read_file(step_dir / "hf" / "config.json"));
    CHECK(hf["model_type"] == "qwen3");
    CHECK(hf["tie_word_embeddings"] == false);
    CHECK(hf["vocab_size"].get<int>() == m.vocab_size);

    // A reward model on ranked greetings, from the SFT policy.
    RunConfig rm = stage_config("reward", dir, "rm", "sft");
    rm.data.files = {(dir / "ranked.jsonl").string()};
    rm.train.max_steps = 12;
    REQUIRE(run_reward(rm, {}) == 0);
    steps = test::metric_records(rm.out_dir, "train");
    REQUIRE(steps.size() == 12);
    CHECK(mean_loss(steps, 8, 12) < mean_loss(steps, 0, 4));
    auto r = test::run_cli("convert --to-hf " + test::shell_quote(rm.out_dir) + " --out " + test::shell_quote((dir / "rm_hf").string()));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(nlohmann::json::parse(read_file(dir / "rm_hf" / "config.json"))["architectures"][0] == "Qwen3ForSequenceClassification");

    check_dpo_ppo_grpo(dir);
    check_lora_stages(dir);
}

// The path a user takes with a hub chat model (Qwen2.5-0.5B-Instruct's directory, at toy size):
// transformers makes a Qwen2 over a tokenizer.json that has <|im_start|>, <|im_end|> and a
// ChatML template with Qwen3's empty think block; `rlhf convert --from-hf` imports it with its
// 32k context and spare embedding rows, and SFT, reward, DPO, PPO and GRPO run from it in the
// format the template names (chat.template: auto), with no token added for the chat format.
TEST_CASE("stages from an imported Qwen2 chat model", "[integration][hf][llama]") {
    test::TempDir dir;
    test::make_transformers_reference_files("hf_tokenizers.py", dir / "tok");
    test::run_transformers_reference("hf_llama.py", "chat-model " + test::shell_quote((dir / "tok" / "qwen2").string()) +
                                                         " " + test::shell_quote((dir / "hub").string()));
    auto r = test::run_cli("convert --from-hf hub --out qwen", dir.path());
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const int hub_ids = load_checkpoint_tokenizer(resolve_checkpoint(dir / "qwen")).vocab_size();

    write_greet_files(dir);

    // SFT from random weights (transformers' initialisation): 150 steps of 6 ms.
    RunConfig sft = stage_config("sft", dir, "sft", "qwen");
    sft.data.files = {(dir / "sft.jsonl").string()};
    sft.data.val_fraction = 0;
    sft.optim.lr = 2e-2;
    sft.train.max_steps = 150;
    sft.model.block_size = 64;  // of the hub model's 32,768: memory follows the window a run uses
    sft.given_keys = {"model.block_size"};
    REQUIRE(run_sft(sft, {}) == 0);
    auto steps = test::metric_records(sft.out_dir, "train");
    CHECK(mean_loss(steps, 140, 150) < 0.5 * mean_loss(steps, 0, 10));
    const auto step_dir = resolve_checkpoint(sft.out_dir);
    const ModelConfig m = read_checkpoint_info(step_dir).config.model;
    CHECK(m.qkv_bias);
    CHECK(m.vocab_size == 448);  // the spare rows kept
    const Tokenizer tok = load_checkpoint_tokenizer(step_dir);
    CHECK(tok.chat_template().style == ChatStyle::chatml);
    CHECK(tok.chat_template().empty_think);
    CHECK(tok.vocab_size() == hub_ids);  // <|im_start|> and <|im_end|> were the hub's already

    RunConfig rm = stage_config("reward", dir, "rm", "sft");
    rm.data.files = {(dir / "ranked.jsonl").string()};
    rm.train.max_steps = 4;
    REQUIRE(run_reward(rm, {}) == 0);
    REQUIRE(test::metric_records(rm.out_dir, "train").size() == 4);

    check_dpo_ppo_grpo(dir);
}
