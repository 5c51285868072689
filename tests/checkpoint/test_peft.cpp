// LoRA adapters out to Hugging Face PEFT and back (`rlhf convert --to-peft / --from-peft`), and a
// LoRA checkpoint's merged export (`--to-hf`): PEFT on transformers computes our logits, our own
// adapters read back bit for bit, and an adapter PEFT itself made reads in. Pip flavour only
// (transformers and peft live in its venv); skipped cleanly elsewhere.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/fs.h"
#include "rlhf/model/lora.h"
#include "support/helpers.h"
#include "support/hf_logits.h"

using namespace rlhf;
using Catch::Contains;

namespace {

constexpr int64_t kToyVocabIds = 262;  // the toy vocabulary's

// A LoRA checkpoint (stage sft, step 0) on the model of `base_run`, every adapter random.
std::filesystem::path make_lora_checkpoint(const std::filesystem::path& base_run, const std::filesystem::path& out) {
    const auto base_dir = resolve_checkpoint(base_run);
    RunConfig cfg = read_checkpoint_info(base_dir).config;
    cfg.stage = Stage::Sft;
    cfg.out_dir = out.string();
    cfg.init_from = base_dir.string();
    cfg.data = DataConfig{};
    cfg.data.files = {"unused.jsonl"};
    cfg.model.lora.rank = 4;
    cfg.model.lora.alpha = 8;
    cfg.model.lora.targets = cfg.model.arch == ModelArch::Llama
                                 ? std::vector<std::string>{"q", "k", "v", "o", "gate", "up", "down"}
                                 : std::vector<std::string>{"q", "v", "o", "fc", "proj"};
    Gpt model(cfg.model);
    const auto weights = base_dir / "model.safetensors";
    load_weights_file(weights, *model, false, AdapterLoad::Merge);
    torch::manual_seed(9);
    {
        torch::NoGradGuard no_grad;
        for (auto& p : model->named_parameters()) {
            if (is_lora_tensor(p.key())) p.value().normal_(0.0, 0.2);
        }
    }
    CheckpointExtras extras;
    extras.lora_base = {std::filesystem::absolute(weights), hex64(file_fnv1a64(weights)), cfg.model.vocab_size};
    return save_checkpoint(out / "checkpoints", cfg, TrainState{}, *model, OptimizerState{}, load_checkpoint_tokenizer(base_dir), 0,
                           extras);
}

}  // namespace

TEST_CASE("LoRA adapters out to PEFT and back, and merged", "[integration][hf][lora]") {
    const std::string arch = GENERATE("gpt2", "llama");
    INFO(arch);
    test::TempDir dir;
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    test::write_text(dir / "vocab.json", vocab);
    test::write_text(dir / "merges.txt", merges);
    test::make_transformers_reference_files(arch == "gpt2" ? "hf_gpt2.py" : "hf_llama.py", dir.path());
    const auto q = [&](const std::string& rel) { return test::shell_quote((dir / rel).string()); };
    const auto run = [&](const std::string& args) {
        const auto r = test::run_cli(args);
        INFO(args << "\n" << r.output);
        REQUIRE(r.exit_code == 0);
    };
    run("convert --from-hf " + q(arch == "gpt2" ? "lm" : "llama") + " --out " + q("base"));
    make_lora_checkpoint(dir / "base", dir / "lora");
    run("convert --to-hf " + q("base") + " --out " + q("base_hf"));
    run("convert --to-peft " + q("lora") + " --out " + q("adapter"));
    run("convert --to-hf " + q("lora") + " --out " + q("merged_hf"));
    const test::HfBatch batch = test::left_padded_batch(kToyVocabIds);
    const auto pair = [&](const std::string& base, const std::string& adapter) {
        return (dir / base).string() + ":" + (adapter == "-" ? "-" : (dir / adapter).string());
    };
    // One Python start: PEFT makes its own adapter, then the logits of every pair.
    const auto reference = test::reference_json(
        "peft_reference.py", "make " + q("base_hf") + " " + q("peft_made") + " " + batch.arg() + " " +
                                 test::shell_quote(pair("base_hf", "adapter")) + " " + test::shell_quote(pair("merged_hf", "-")) +
                                 " " + test::shell_quote(pair("base_hf", "peft_made")));
    run("convert --from-peft " + q("adapter") + " --base " + q("base") + " --out " + q("back"));
    run("convert --from-peft " + q("peft_made") + " --base " + q("base") + " --out " + q("peft_in"));
    const auto logits_of = [&](const std::string& run_dir) {
        LoadedModel loaded = load_model_from_checkpoint(dir / run_dir, torch::kCPU);
        return test::batch_logits(*loaded.model, batch);
    };
    const auto ours = logits_of("lora");
    const auto base_logits = logits_of("base");
    REQUIRE(test::worst_logit_gap(reference["logits"][pair("base_hf", "adapter")], base_logits, batch, kToyVocabIds) > 1e-2);

    // PEFT's adapter on transformers' base = our adapter forward; the merged export too.
    double worst = test::worst_logit_gap(reference["logits"][pair("base_hf", "adapter")], ours, batch, kToyVocabIds);
    INFO("PEFT: max |logit difference| " << worst);
    CHECK(worst < 1e-4);
    worst = test::worst_logit_gap(reference["logits"][pair("merged_hf", "-")], ours, batch, kToyVocabIds);
    INFO("merged export: max |logit difference| " << worst);
    CHECK(worst < 1e-4);
    // Our adapters back from PEFT's files: the same numbers, so the same logits to the bit.
    CHECK(torch::equal(logits_of("back"), ours));
    // An adapter PEFT made (its own names, its own layout) reads in and computes PEFT's logits.
    worst = test::worst_logit_gap(reference["logits"][pair("base_hf", "peft_made")], logits_of("peft_in"), batch, kToyVocabIds);
    INFO("PEFT-made adapter: max |logit difference| " << worst);
    CHECK(worst < 1e-4);
}

TEST_CASE("PEFT conversion errors are one clear line", "[integration][lora]") {
    test::TempDir dir;
    std::filesystem::create_directories(dir / "adapter");
    test::write_text(dir / "adapter" / "adapter_config.json", R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_dora": true})");
    auto r = test::run_cli("convert --from-peft " + test::shell_quote((dir / "adapter").string()) + " --base " +
                           test::shell_quote((dir / "nowhere").string()) + " --out " + test::shell_quote((dir / "out").string()));
    REQUIRE(r.exit_code != 0);
    REQUIRE_THAT(r.output, Contains("use_dora") && Contains("DoRA"));
    r = test::run_cli("convert --from-peft " + test::shell_quote((dir / "adapter").string()) + " --out x");
    REQUIRE(r.exit_code != 0);
    REQUIRE_THAT(r.output, Contains("--base"));
}
