// Whole SFT runs: a tiny pre-trained model fine-tuned on generated demonstrations (seconds each).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/stages/sft.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/metrics.h"
#include "support/greetings.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

struct SftBase {
    test::TempDir dir;
    SftBase() {
        test::write_text(dir / "corpus.txt", demo_corpus(30000) + "Greet Hello\n");
        RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "base");
        cfg.train.max_steps = 20;
        REQUIRE(run_pretrain(cfg, {}) == 0);
        test::write_text(dir / "sft.jsonl", test::greeting_demos(200));
    }
    RunConfig sft_config(const std::string& out) const {
        RunConfig cfg;
        cfg.stage = Stage::Sft;
        cfg.source = "<test>";
        cfg.out_dir = (dir / out).string();
        cfg.init_from = (dir / "base").string();
        cfg.runtime.threads = 2;
        cfg.runtime.deterministic = true;  // results compared bit for bit, also under load
        cfg.runtime.log_level = "warn";
        cfg.data.files = {(dir / "sft.jsonl").string()};
        cfg.data.val_fraction = 0.1;
        cfg.optim.lr = 1e-2;
        cfg.optim.min_lr = 1e-3;
        cfg.optim.lr_warmup_steps = 5;
        cfg.optim.lr_decay_steps = 120;  // the same schedule for runs cut short
        cfg.optim.weight_decay = 0;
        cfg.train.max_steps = 120;
        cfg.train.batch_size = 8;
        cfg.train.eval_every = 60;
        cfg.train.eval_batches = 3;
        cfg.train.eval_prompts = 8;
        cfg.checkpoint.every = 10;
        cfg.checkpoint.keep_last = 0;
        return cfg;
    }
};

}  // namespace

// Sft lowers val loss, learns to stop, and grows the vocabulary by the chat tokens.
TEST_CASE("sft lowers val loss, learns to stop, adds the chat tokens", "[integration][sft]") {
    SftBase base;
    RunConfig cfg = base.sft_config("sft");
    REQUIRE(run_sft(cfg, {}) == 0);
    auto evals = test::metric_records(cfg.out_dir, "eval");
    REQUIRE(evals.size() == 3);  // steps 0, 60, 120
    INFO(evals.front().dump() << "\n" << evals.back().dump());
    REQUIRE(evals.back()["val_loss"].get<double>() < 0.5 * evals.front()["val_loss"].get<double>());
    REQUIRE(evals.back()["eos_rate"].get<double>() >= 0.9);

    auto loaded = load_model_from_checkpoint(cfg.out_dir, torch::kCPU);
    REQUIRE(has_chat_format(loaded.tokenizer));
    auto base_ckpt = load_model_from_checkpoint(base.dir / "base", torch::kCPU);
    REQUIRE(loaded.info.config.model.vocab_size == base_ckpt.info.config.model.vocab_size + 3);
    REQUIRE(loaded.tokenizer.vocab_size() == loaded.info.config.model.vocab_size);
}

TEST_CASE("sft resumed from a checkpoint equals an uninterrupted run", "[integration][sft]") {
    SftBase base;
    RunConfig full = base.sft_config("full");
    full.data.packing = true;
    full.train.max_steps = 40;
    REQUIRE(run_sft(full, {}) == 0);
    RunConfig part = base.sft_config("part");
    part.data.packing = true;
    part.train.max_steps = 20;
    REQUIRE(run_sft(part, {}) == 0);
    part.train.max_steps = 40;
    StageOptions resume;
    resume.resume = true;
    REQUIRE(run_sft(part, resume) == 0);
    auto a = test::metric_records(full.out_dir, "train"), b = test::metric_records(part.out_dir, "train");
    REQUIRE(a.size() == 40);
    REQUIRE(b.size() == 40);
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("step " << i + 1);
        REQUIRE(a[i]["loss"].get<double>() == b[i]["loss"].get<double>());
    }
}

TEST_CASE("sft input errors are one clear line", "[integration][sft]") {
    SftBase base;
    RunConfig cfg = base.sft_config("bad");
    cfg.init_from = (base.dir / "nope").string();
    REQUIRE_THROWS_WITH(run_sft(cfg, {}), Contains("init_from") && Contains("does not exist"));

    test::write_text(base.dir / "broken.jsonl", test::greeting_demos(3) + "{\"prompt\": \"x\"\n");
    cfg = base.sft_config("bad2");
    cfg.data.files = {(base.dir / "broken.jsonl").string()};
    REQUIRE_THROWS_WITH(run_sft(cfg, {}), Contains("broken.jsonl:4") && Contains("invalid JSON"));
    cfg.out_dir = (base.dir / "bad3").string();
    cfg.data.on_error = OnError::Skip;
    cfg.train.max_steps = 2;
    REQUIRE(run_sft(cfg, {}) == 0);  // the bad line is counted and left out

    cfg = base.sft_config("bad4");
    cfg.model.n_layer = 7;
    REQUIRE_THROWS_WITH(run_sft(cfg, {}), Contains("model.n_layer") && Contains("init_from"));

    // A key given at its default value counts too (--set model.n_embd=128 on a narrower checkpoint).
    cfg = base.sft_config("bad5");
    REQUIRE(cfg.model.n_embd == 128);
    cfg.given_keys = {"model.n_embd"};
    REQUIRE_THROWS_WITH(run_sft(cfg, {}), Contains("model.n_embd is 128") && Contains("init_from"));
}

// In a padded embedding the chat markers' rows start as the mean, like grown ones.
TEST_CASE("chat markers' rows in a padded embedding start as the mean", "[integration][gpt2]") {
    test::TempDir dir;
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    std::filesystem::create_directories(dir / "tok");
    test::write_text(dir / "tok" / "vocab.json", vocab);
    test::write_text(dir / "tok" / "merges.txt", merges);
    auto r = test::run_cli("data demo-corpus --out " + test::shell_quote((dir / "corpus.txt").string()) + " --bytes 20000");
    REQUIRE(r.exit_code == 0);
    r = test::run_cli("train " + test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/pretrain.yaml") +
                      " --set data.text=[" + (dir / "corpus.txt").string() + "] tokenizer.path=" + (dir / "tok").string() +
                      " out_dir=" + (dir / "pre").string() +
                      " model.vocab_size=320 train.max_steps=4 train.eval_every=0 checkpoint.every=0 runtime.threads=1");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    RunConfig cfg;
    cfg.stage = Stage::Sft;
    cfg.init_from = (dir / "pre").string();
    StartPoint start = load_start_point(cfg, {});
    REQUIRE(cfg.model.vocab_size == 320);  // rows to spare: not grown
    REQUIRE(start.tokenizer.vocab_size() == 266);  // 262 + <|pad|> + 3 chat markers
    torch::NoGradGuard no_grad;
    const auto wte = start.trunk->transformer->wte->weight;
    const auto mean = wte.narrow(0, 0, 262).mean(0);
    for (int64_t id = 263; id < 266; ++id) CHECK(test::max_abs_diff(wte[id], mean) < 1e-6);
    CHECK(test::max_abs_diff(wte[300], mean) > 1e-3);  // rows beyond the tokenizer are left alone
}
