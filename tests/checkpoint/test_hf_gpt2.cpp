// `rlhf convert`: a random GPT-2 made by Hugging Face transformers (tests/reference/hf_gpt2.py, in
// the LibTorch 2.x flavour's venv) converted and run here must give transformers' logits on a
// left-padded batch; the converted checkpoint fine-tunes, generates, and goes back out
// (--to-hf) to a directory transformers loads with the same logits and token ids, and back in
// bit for bit; a reward model goes out as a sequence classifier; bad input is one line and
// writes nothing.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/fs.h"
#include "rlhf/model/generate.h"
#include "rlhf/model/reward_model.h"
#include "support/helpers.h"
#include "support/hf_logits.h"

using namespace rlhf;
using Catch::Contains;

namespace {

struct HfWorkspace {
    test::TempDir dir;
    HfWorkspace() {
        const auto [vocab, merges] = test::toy_gpt2_bpe_files();
        std::filesystem::create_directories(dir / "hf");
        test::write_text(dir / "hf" / "vocab.json", vocab);
        test::write_text(dir / "hf" / "merges.txt", merges);
        test::make_transformers_reference_files("hf_gpt2.py", dir / "hf");
    }
    std::string q(const std::string& rel) const { return test::shell_quote((dir / rel).string()); }
};

nlohmann::json reference_json(const std::string& args) { return test::reference_json("hf_gpt2.py", args); }

using test::HfBatch;
using test::left_padded_batch;
using test::worst_logit_gap;
torch::Tensor our_logits(GptImpl& model, const HfBatch& b) { return test::batch_logits(model, b); }
torch::Tensor ids_tensor(const HfBatch& b) { return b.ids_tensor(); }
torch::Tensor mask_tensor(const HfBatch& b) { return b.mask_tensor(); }

}  // namespace

// An imported GPT-2 gives transformers' logits on a left-padded batch, from either naming.
TEST_CASE("imported GPT-2 gives transformers' logits, left-padded batch", "[integration][hf][light]") {
    HfWorkspace ws;
    const HfBatch batch = left_padded_batch(262);
    const auto reference = reference_json("logits " + ws.q("hf") + " " + batch.arg());
    // A loop, not sections: Catch2 would run the test case (and transformers) once per section.
    for (const std::string sub : {"lm", "hub"}) {
        INFO(sub);
        auto r = test::run_cli("convert --from-hf " + ws.q("hf/" + sub) + " --out " + ws.q("run_" + sub));
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        LoadedModel m = load_model_from_checkpoint(ws.dir / ("run_" + sub), torch::kCPU);
        REQUIRE(m.model->config().activation == Activation::GeluTanh);
        REQUIRE(m.model->config().bias);
        REQUIRE(m.model->config().vocab_size == 263);  // 262 + <|pad|>
        REQUIRE(m.tokenizer.pad_id() == 262);
        const double worst = worst_logit_gap(reference, our_logits(*m.model, batch), batch, 262);
        INFO("max |logit difference| " << worst);
        REQUIRE(worst < 1e-4);
    }
}

// An imported GPT-2 fine-tunes with SFT, exports with transformers' logits and ids, and re-imports bit for bit.
TEST_CASE("imported GPT-2: SFT, export to transformers, exact re-import",
          "[integration][hf]") {
    HfWorkspace ws;
    auto r = test::run_cli("convert --from-hf " + ws.q("hf/lm") + " --out " + ws.q("gpt2"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    r = test::run_cli("data demo-sft --out " + ws.q("sft.jsonl") + " --count 50");
    REQUIRE(r.exit_code == 0);
    const std::string tiny = test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/sft.yaml");
    r = test::run_cli("train " + tiny + " --set init_from=" + (ws.dir / "gpt2").string() + " data.files=[" +
                      (ws.dir / "sft.jsonl").string() + "] out_dir=" + (ws.dir / "sft").string() +
                      " train.max_steps=2 train.eval_every=0 checkpoint.every=0 checkpoint.export_hf=true runtime.threads=1");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    r = test::run_cli("generate --checkpoint " + ws.q("sft") + " --prompt hello --max-new-tokens 5 --seed 1");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);

    // Out: the CLI's export and the one written beside the checkpoint are the same bytes.
    r = test::run_cli("convert --to-hf " + ws.q("sft") + " --out " + ws.q("export"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto step = resolve_checkpoint(ws.dir / "sft");
    REQUIRE(read_file(step / "hf" / "model.safetensors") == read_file(ws.dir / "export" / "model.safetensors"));
    LoadedModel sft = load_model_from_checkpoint(ws.dir / "sft", torch::kCPU);
    const int64_t vocab = sft.model->config().vocab_size;
    REQUIRE(vocab == 266);  // 262 + <|pad|> + the three chat markers
    const HfBatch batch = left_padded_batch(vocab);
    const auto reference = reference_json("causal " + ws.q("export") + " " + batch.arg());
    const double worst = worst_logit_gap(reference, our_logits(*sft.model, batch), batch, vocab);
    INFO("max |logit difference| " << worst);
    REQUIRE(worst < 1e-4);

    // AutoTokenizer gives our ids, decodes them back, and knows our PAD and EOS.
    const std::vector<std::string> texts = {"hello world", "Hi!\n\n  hello  it's", "h\xc3\xa9llo 42\t"};
    const auto encoded = reference_json("encode " + ws.q("export") + " " + test::shell_quote(nlohmann::json(texts).dump()));
    REQUIRE(encoded["pad"].get<int>() == sft.tokenizer.pad_id());
    REQUIRE(encoded["eos"].get<int>() == sft.tokenizer.eos_id());
    for (size_t i = 0; i < texts.size(); ++i) {
        INFO(texts[i]);
        CHECK(encoded["rows"][i]["ids"].get<std::vector<int32_t>>() == sft.tokenizer.encode(texts[i]));
        CHECK(encoded["rows"][i]["decoded_equal"].get<bool>());
    }

    // And back in: every tensor bit for bit, the same vocabulary.
    r = test::run_cli("convert --from-hf " + ws.q("export") + " --out " + ws.q("back"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto before = load_safetensors(step / "model.safetensors");
    const auto after = load_safetensors(resolve_checkpoint(ws.dir / "back") / "model.safetensors");
    REQUIRE(before.tensors.size() == after.tensors.size());
    for (const auto& [name, tensor] : before.tensors) {
        INFO(name);
        REQUIRE(after.tensors.count(name));
        REQUIRE(torch::equal(tensor, after.tensors.at(name)));
    }
    LoadedModel back = load_model_from_checkpoint(ws.dir / "back", torch::kCPU);
    REQUIRE(back.tokenizer.same_vocabulary(sft.tokenizer));
    REQUIRE(back.model->config().activation == Activation::GeluTanh);

    // An existing --out is refused, and left alone.
    r = test::run_cli("convert --to-hf " + ws.q("sft") + " --out " + ws.q("export"));
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("already exists"));
}

// A reward model exports as GPT2ForSequenceClassification: its logit plus score.bias is our score.
TEST_CASE("a reward model exports as GPT2ForSequenceClassification",
          "[integration][hf]") {
    HfWorkspace ws;
    const Tokenizer tok = Tokenizer::load(ws.dir / "hf" / "lm");  // 262 + <|pad|>
    RunConfig cfg;
    cfg.stage = Stage::Reward;
    cfg.init_from = cfg.data.files.emplace_back("unused");
    cfg.model = test::tiny_model(tok.vocab_size());
    cfg.model.bias = false;  // exported as zero biases
    cfg.model.activation = Activation::Gelu;  // exact GELU: transformers' "gelu"
    torch::manual_seed(3);
    RewardModel rm(cfg.model);
    {
        torch::NoGradGuard no_grad;
        for (auto& p : rm->parameters()) p.normal_(0.0, 0.3);  // layer norms too: a wrong mapping cannot pass
    }
    rm->set_normalisation(torch::randn({16}) * 3 + 5, /*with_gain=*/true);
    save_checkpoint(ws.dir / "rm" / "checkpoints", cfg, TrainState{}, *rm, OptimizerState{}, tok, 0);
    auto r = test::run_cli("convert --to-hf " + ws.q("rm") + " --out " + ws.q("rm_hf"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto config = nlohmann::json::parse(read_file(ws.dir / "rm_hf" / "config.json"));
    REQUIRE(config["architectures"][0] == "GPT2ForSequenceClassification");

    // Right padding with PAD: transformers reads the last non-PAD token, as we read the last real one.
    HfBatch batch{{{104, 101, 108, 108, 111, 262, 262, 262, 262}, {72, 105, 33, 259, 260, 10, 261, 7, 200}},
                {{1, 1, 1, 1, 1, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 1, 1}}};
    const auto reference = reference_json("reward " + ws.q("rm_hf") + " " + batch.arg());
    torch::NoGradGuard no_grad;
    rm->eval();
    const auto ours = rm->scores(ids_tensor(batch), mask_tensor(batch));  // (2,)
    INFO("ours " << ours << " transformers " << reference.dump());
    REQUIRE(test::max_abs_diff(ours, torch::tensor(reference.get<std::vector<float>>())) < 1e-4);
}

TEST_CASE("bad Hugging Face input is one clear line and writes nothing", "[integration][hf][light]") {
    HfWorkspace ws;
    auto convert = [&](const std::string& from, const std::string& out) {
        return test::run_cli("convert --from-hf " + ws.q(from) + " --out " + ws.q(out));
    };
    std::filesystem::copy(ws.dir / "hf" / "lm", ws.dir / "bad", std::filesystem::copy_options::recursive);
    std::filesystem::remove(ws.dir / "bad" / "config.json");
    auto r = convert("bad", "out1");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("config.json") && Contains("no config.json"));
    CHECK_FALSE(std::filesystem::exists(ws.dir / "out1"));

    test::write_text(ws.dir / "bad" / "config.json", "{\"model_type\": \"gpt2\", \"n_layer\": ");
    r = convert("bad", "out1");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("config.json") && Contains("not valid JSON"));
    CHECK_FALSE(std::filesystem::exists(ws.dir / "out1"));

    test::write_text(ws.dir / "bad" / "config.json", "{\"model_type\": \"mistral\", \"n_layer\": 2}");
    r = convert("bad", "out2");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("model_type") && Contains("mistral") && Contains("qwen3"));

    // config.json of a wider model than the tensors: the first misshaped tensor is named.
    auto cfg = nlohmann::json::parse(read_file(ws.dir / "hf" / "lm" / "config.json"));
    cfg["n_embd"] = 64;
    test::write_text(ws.dir / "bad" / "config.json", cfg.dump());
    r = convert("bad", "out3");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("has shape") && Contains("model.safetensors"));
    CHECK_FALSE(std::filesystem::exists(ws.dir / "out3"));

    // A tensor missing from model.safetensors is named.
    std::filesystem::copy_file(ws.dir / "hf" / "lm" / "config.json", ws.dir / "bad" / "config.json",
                               std::filesystem::copy_options::overwrite_existing);
    auto st = load_safetensors(ws.dir / "hf" / "lm" / "model.safetensors");
    NamedTensors kept;
    for (const auto& [name, tensor] : st.tensors) {
        if (name != "transformer.h.1.mlp.c_fc.bias") kept.emplace_back(name, tensor);
    }
    save_safetensors(ws.dir / "bad" / "model.safetensors", kept, {{"format", "pt"}});
    r = convert("bad", "out4");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("h.1.mlp.c_fc.bias") && Contains("missing"));
    CHECK_FALSE(std::filesystem::exists(ws.dir / "out4"));
}

// Rlhf convert --to-hf refuses what GPT-2 cannot hold, with one line and nothing written.
TEST_CASE("convert --to-hf refuses what GPT-2 cannot hold, in one line", "[integration][hf][light]") {
    test::TempDir dir;
    auto to_hf = [&](const std::string& from, const std::string& out) {
        return test::run_cli("convert --to-hf " + test::shell_quote((dir / from).string()) + " --out " +
                             test::shell_quote((dir / out).string()));
    };
    auto r = to_hf("nothing", "out1");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("checkpoint not found"));
    CHECK_FALSE(std::filesystem::exists(dir / "out1"));

    // A post-LN (GPT-1 layout) model has no GPT2LMHeadModel equivalent.
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    test::write_text(dir / "vocab.json", vocab);
    test::write_text(dir / "merges.txt", merges);
    const Tokenizer tok = Tokenizer::load(dir.path());
    RunConfig cfg;
    cfg.model = test::tiny_model(tok.vocab_size());
    cfg.model.arch = ModelArch::Gpt1;
    cfg.data.text = {"unused"};
    Gpt model(cfg.model);
    save_checkpoint(dir / "gpt1" / "checkpoints", cfg, TrainState{}, *model, OptimizerState{}, tok, 0);
    r = to_hf("gpt1", "out2");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("post-LN") && Contains("model.arch"));
    CHECK_FALSE(std::filesystem::exists(dir / "out2"));

    r = test::run_cli("convert --out " + test::shell_quote((dir / "out3").string()));
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("--from-hf") && Contains("--to-hf"));
    // And a run that would export a GPT-1 layout at every checkpoint is refused before it starts.
    r = test::run_cli("train " + test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/pretrain.yaml") +
                      " --set model.arch=gpt1 checkpoint.export_hf=true");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("checkpoint.export_hf"));
}
